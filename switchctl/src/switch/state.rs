//! The switch's state, kept in Cloud Foundry itself: a label and an annotation on each route,
//! written before anything else changes on that route.
//!
//! * label `switchctl.cf-maintenance/m-<APP_GUID>` = `on`: finds APP's switched routes again
//!   (`label_selector`), even once APP has no destination left on them;
//! * annotation of the same key: a [`Record`] of APP's original destinations on the route, so that
//!   `off` can put back exactly what was there (process type, port, protocol).
//!
//! Keeping the state on the routes (not in a local file, not on the app) means any operator on any
//! machine can finish or undo a switch, and a crash leaves nothing that `on`/`off` cannot resume.

use serde::{Deserialize, Serialize};

use crate::capi::{Destination, DestinationApp, MetadataPatch, NewDestination, ProcessType, Route};

/// Prefix of every label and annotation key switchctl writes on routes.
pub const KEY_PREFIX: &str = "switchctl.cf-maintenance/m-";

/// The value of the label on a switched route.
pub const LABEL_VALUE: &str = "on";

/// CAPI's limit for an annotation value, in characters (`MAX_ANNOTATION_VALUE_SIZE`).
pub const MAX_ANNOTATION_CHARS: usize = 5000;

/// The version of the [`Record`] format.
pub const RECORD_VERSION: u32 = 1;

/// The label and annotation key for the app `app_guid`.
pub fn key(app_guid: &str) -> String {
    format!("{KEY_PREFIX}{app_guid}")
}

/// The app GUID a switchctl key names, if `key` is one.
pub fn app_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(KEY_PREFIX).filter(|g| !g.is_empty())
}

/// One of APP's original destinations on a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDestination {
    /// Process type, e.g. `web`.
    pub process: String,
    /// App port (CAPI's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// `http1` or `http2` (the route's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Deprecated weight; only recorded when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// What CC stores for a destination of an app created without a port, which decides whether a
/// port the API shows was sent explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultPort {
    /// A buildpack app: 8080 is stored, so the port shown is the port stored.
    Stored,
    /// A Docker or CNB app: -1 is stored and shown as this port (the image's first exposed TCP
    /// port, else 8080: `RouteMappingModel#presented_port`). A destination showing it is
    /// recorded without a port, because sending it back explicitly would fail for a port below
    /// 1024 (422) and would change `process.ports` and the destination's GUID otherwise.
    Presented(u32),
}

impl SavedDestination {
    /// What to record of `d`, for an app whose destinations without a port are stored as `default`.
    pub fn of(d: &Destination, default: DefaultPort) -> SavedDestination {
        let implicit = matches!(default, DefaultPort::Presented(p) if d.port == Some(p));
        SavedDestination {
            process: d.process_type().to_owned(),
            port: if implicit { None } else { d.port },
            protocol: d.protocol.clone(),
            weight: d.weight,
        }
    }

    /// The destination to insert to put it back for `app_guid`.
    pub fn to_new(&self, app_guid: &str) -> NewDestination {
        NewDestination {
            app: DestinationApp {
                guid: app_guid.to_owned(),
                process: Some(ProcessType { kind: self.process.clone() }),
            },
            port: self.port,
            protocol: self.protocol.clone(),
        }
    }

    /// Whether `d` is this destination of `app_guid` (same app, process type and port: CAPI's key).
    pub fn is(&self, app_guid: &str, d: &Destination) -> bool {
        d.app.guid == app_guid && d.process_type() == self.process && (self.port.is_none() || d.port == self.port)
    }
}

/// The annotation value: who switched the route, to what, when, and what APP had there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version ([`RECORD_VERSION`]).
    pub v: u32,
    /// APP's GUID.
    pub app: String,
    /// APP's name when switched.
    pub app_name: String,
    /// The maintenance app's GUID.
    pub maintenance_app: String,
    /// When the route was switched (RFC 3339, UTC).
    pub since: String,
    /// APP's original destinations on the route.
    pub destinations: Vec<SavedDestination>,
    /// The maintenance app was already mapped to the route, by hand and for no other switched app,
    /// when APP was switched: `off` leaves it there, as it found it. Absent in older records
    /// (switchctl ignores fields it does not know, so the format version stays 1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maintenance_kept: bool,
}

/// Why a [`Record`] cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The JSON would not fit into an annotation.
    #[error(
        "the record of the app's {count} destinations on this route would be {chars} characters, more than the \
         {MAX_ANNOTATION_CHARS} an annotation holds; the route was not changed (map fewer destinations of the app \
         to it, or switch it by hand with `cf map-route`/`cf unmap-route`)"
    )]
    TooLong {
        /// Characters needed.
        chars: usize,
        /// Destinations recorded.
        count: usize,
    },
    /// The route carries the label but no readable annotation.
    #[error(
        "the route carries switchctl's label {key} but its annotation is {problem}, so the app's original \
         destinations are unknown; map them back by hand (`cf map-route`), then remove the label and annotation \
         with `cf curl -X PATCH /v3/routes/{route} -d '{{\"metadata\":{{\"labels\":{{\"{key}\":null}},\
         \"annotations\":{{\"{key}\":null}}}}}}'`"
    )]
    Unreadable {
        /// The route's GUID.
        route: String,
        /// The key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl Record {
    /// A record of `app`'s destinations on `route` (only APP's are kept).
    pub fn new(app: (&str, &str, DefaultPort), maintenance_guid: &str, since: &str, route: &Route) -> Record {
        let (app_guid, app_name, default) = app;
        Record {
            v: RECORD_VERSION,
            app: app_guid.to_owned(),
            app_name: app_name.to_owned(),
            maintenance_app: maintenance_guid.to_owned(),
            since: since.to_owned(),
            maintenance_kept: false,
            destinations: route
                .destinations
                .iter()
                .filter(|d| d.app.guid == app_guid)
                .map(|d| SavedDestination::of(d, default))
                .collect(),
        }
    }

    /// Compact JSON, checked against the annotation size limit.
    pub fn encode(&self) -> Result<String, RecordError> {
        // Serialising plain strings and numbers cannot fail; an empty string would be caught below anyway.
        let text = serde_json::to_string(self).unwrap_or_default();
        let chars = text.chars().count();
        if chars > MAX_ANNOTATION_CHARS {
            return Err(RecordError::TooLong { chars, count: self.destinations.len() });
        }
        Ok(text)
    }

    /// The record `route` carries for `app_guid`: `Ok(None)` when the route has neither label nor
    /// annotation for it. The annotation alone is enough (someone may have removed the label by
    /// hand): it is the record, the label only makes the route easy to find.
    pub fn read(route: &Route, app_guid: &str) -> Result<Option<Record>, RecordError> {
        let key = key(app_guid);
        let labelled = route.metadata.labels.contains_key(&key);
        let unreadable = |problem: &str| RecordError::Unreadable {
            route: route.guid.clone(),
            key: key.clone(),
            problem: problem.into(),
        };
        let Some(text) = route.metadata.annotations.get(&key) else {
            return if labelled { Err(unreadable("missing")) } else { Ok(None) };
        };
        let record: Record = serde_json::from_str(text).map_err(|_| unreadable("not a switchctl record"))?;
        if record.v != RECORD_VERSION {
            return Err(unreadable(&format!("of format version {}, which this switchctl does not know", record.v)));
        }
        if record.app != app_guid {
            return Err(unreadable(&format!("about another app ({})", record.app)));
        }
        Ok(Some(record))
    }
}

/// The metadata patch that marks a route as switched for `app_guid`.
pub fn set_patch(app_guid: &str, annotation: String) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    patch.labels.insert(key(app_guid), Some(LABEL_VALUE.to_owned()));
    patch.annotations.insert(key(app_guid), Some(annotation));
    patch
}

/// The metadata patch that removes `app_guid`'s label and annotation.
pub fn clear_patch(app_guid: &str) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    patch.labels.insert(key(app_guid), None);
    patch.annotations.insert(key(app_guid), None);
    patch
}

/// One write of several apps' records, `(app GUID, annotation)` each.
pub fn set_patches(records: &[(&str, &String)]) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    for (app, annotation) in records {
        let one = set_patch(app, (*annotation).clone());
        patch.labels.extend(one.labels);
        patch.annotations.extend(one.annotations);
    }
    patch
}

/// One write that removes several apps' records.
pub fn clear_patches(apps: &[&str]) -> MetadataPatch {
    let mut patch = MetadataPatch::default();
    for app in apps {
        let one = clear_patch(app);
        patch.labels.extend(one.labels);
        patch.annotations.extend(one.annotations);
    }
    patch
}

/// Whether `route` carries APP's whole record (label and annotation), as [`set_patch`] writes it.
pub fn has_record(route: &Route, app_guid: &str) -> bool {
    let key = key(app_guid);
    route.metadata.labels.contains_key(&key) && route.metadata.annotations.contains_key(&key)
}

/// Whether `route` carries no part of APP's record, as [`clear_patch`] leaves it.
pub fn has_no_record(route: &Route, app_guid: &str) -> bool {
    let key = key(app_guid);
    !route.metadata.labels.contains_key(&key) && !route.metadata.annotations.contains_key(&key)
}

/// The apps (GUIDs) whose switchctl label or annotation `route` carries.
pub fn labelled_apps(route: &Route) -> Vec<&str> {
    let mut apps: Vec<&str> = route.metadata.labels.keys().filter_map(|k| app_of_key(k)).collect();
    for app in route.metadata.annotations.keys().filter_map(|k| app_of_key(k)) {
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    apps
}

/// Now, RFC 3339 in UTC to the second.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(destinations: serde_json::Value, labels: serde_json::Value, annotations: serde_json::Value) -> Route {
        serde_json::from_value(serde_json::json!({
            "guid": "r", "protocol": "http", "host": "shop", "path": "", "url": "shop.example.com",
            "destinations": destinations,
            "metadata": {"labels": labels, "annotations": annotations}
        }))
        .expect("route")
    }

    #[test]
    fn the_record_is_compact_json_of_the_apps_destinations_only() {
        let r = route(
            serde_json::json!([
                {"guid": "d1", "app": {"guid": "A", "process": {"type": "web"}}, "weight": null, "port": 8080, "protocol": "http1"},
                {"guid": "d2", "app": {"guid": "B", "process": {"type": "web"}}, "weight": null, "port": 8080, "protocol": "http1"},
                {"guid": "d3", "app": {"guid": "A", "process": {"type": "api"}}, "weight": null, "port": 9000, "protocol": "http2"}
            ]),
            serde_json::json!({}),
            serde_json::json!({}),
        );
        let record = Record::new(("A", "shop", DefaultPort::Stored), "M", "2026-01-02T03:04:05Z", &r);
        assert_eq!(
            record.encode().expect("fits"),
            r#"{"v":1,"app":"A","app_name":"shop","maintenance_app":"M","since":"2026-01-02T03:04:05Z","destinations":[{"process":"web","port":8080,"protocol":"http1"},{"process":"api","port":9000,"protocol":"http2"}]}"#
        );
    }

    #[test]
    fn a_record_over_5000_characters_is_refused() {
        let mut record = Record::new(
            ("A", "shop", DefaultPort::Stored),
            "M",
            "now",
            &route(serde_json::json!([]), serde_json::json!({}), serde_json::json!({})),
        );
        record.destinations = (0..200)
            .map(|i| SavedDestination {
                process: format!("process-{i:04}"),
                port: Some(8080),
                protocol: Some("http1".into()),
                weight: None,
            })
            .collect();
        assert!(matches!(record.encode(), Err(RecordError::TooLong { count: 200, .. })));
    }

    #[test]
    fn a_record_is_read_back_and_damage_is_reported() {
        let record = Record::new(
            ("A", "shop", DefaultPort::Stored),
            "M",
            "now",
            &route(serde_json::json!([]), serde_json::json!({}), serde_json::json!({})),
        );
        let text = record.encode().expect("fits");
        let k = key("A");
        let ok = route(serde_json::json!([]), serde_json::json!({ &k: "on" }), serde_json::json!({ &k: text }));
        assert_eq!(Record::read(&ok, "A"), Ok(Some(record.clone())));
        let none = route(serde_json::json!([]), serde_json::json!({}), serde_json::json!({}));
        assert_eq!(Record::read(&none, "A"), Ok(None));
        let missing = route(serde_json::json!([]), serde_json::json!({ &k: "on" }), serde_json::json!({}));
        assert!(matches!(Record::read(&missing, "A"), Err(RecordError::Unreadable { .. })));
        let bad = route(serde_json::json!([]), serde_json::json!({ &k: "on" }), serde_json::json!({ &k: "{" }));
        let err = Record::read(&bad, "A").expect_err("unreadable").to_string();
        assert!(err.contains("annotation is not a switchctl record") && !err.contains("EOF"), "plain words: {err}");
        assert!(err.contains("cf curl -X PATCH /v3/routes/r -d '{"), "a runnable repair with the real GUID: {err}");
        let unlabelled = route(serde_json::json!([]), serde_json::json!({}), serde_json::json!({ &k: &text }));
        assert_eq!(Record::read(&unlabelled, "A"), Ok(Some(record)), "the annotation alone is the record");
    }

    #[test]
    fn patches_set_and_clear_both_label_and_annotation() {
        let json = serde_json::to_value(set_patch("A", "x".into())).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"labels": {"switchctl.cf-maintenance/m-A": "on"}, "annotations": {"switchctl.cf-maintenance/m-A": "x"}})
        );
        let json = serde_json::to_value(clear_patch("A")).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"labels": {"switchctl.cf-maintenance/m-A": null}, "annotations": {"switchctl.cf-maintenance/m-A": null}})
        );
        assert_eq!(app_of_key("switchctl.cf-maintenance/m-A"), Some("A"));
        assert_eq!(app_of_key("other/m-A"), None);
    }

    #[test]
    fn now_is_rfc3339_utc_to_the_second() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z') && now.len() == 20, "{now}");
    }
}
