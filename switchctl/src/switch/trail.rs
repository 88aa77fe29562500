//! The audit trail of an app's route mappings: the one trace left of a switched route whose
//! switchctl record (label *and* annotation) someone removed by hand. Such a route is served by
//! the maintenance app only and nothing on it names APP; but the Cloud Controller recorded an
//! `audit.app.unmap-route` event of APP with the route, process, port and protocol when `on`
//! removed APP's destinations (cloud_controller_ng `app/actions/update_route_destinations.rb`
//! calls `AppEventRepository#record_unmap_route`). `off` and `status` read it so that they never
//! call such an app restored or healthy.

use std::collections::{HashMap, HashSet};

use super::{
    outcome::{Cause, RouteReport, RouteState},
    state,
};
use crate::{
    capi::{Client, DestinationApp, MappingEventData, NewDestination, ProcessType, Route},
    error::Error,
};

/// A route APP lost without a record.
#[derive(Debug, Clone)]
pub struct LostRoute {
    /// The route as it is now.
    pub route: Route,
    /// When APP's last destination on it was removed.
    pub unmapped_at: String,
    /// APP's destinations removed since it was last mapped there, oldest first.
    pub destinations: Vec<NewDestination>,
    /// The maintenance app's destination GUID.
    pub maintenance_destination: String,
}

impl LostRoute {
    /// The body of `POST /v3/routes/:guid/destinations` that puts APP's destinations back.
    pub fn body(&self) -> String {
        serde_json::json!({ "destinations": self.destinations }).to_string()
    }

    /// The route's report, at `url`: only the maintenance app serves it, and the cause says how to
    /// repair it.
    pub fn report(&self, url: String) -> RouteReport {
        RouteReport::failed(url, self.route.guid.clone(), self.cause(), RouteState::MaintenanceUnrecorded)
    }

    /// Why the route is reported: with the exact repair.
    fn cause(&self) -> Cause {
        Cause::RecordLost {
            unmapped_at: self.unmapped_at.clone(),
            body: self.body(),
            maintenance_destination: self.maintenance_destination.clone(),
        }
    }
}

/// The routes `app_guid` was unmapped from, that only the maintenance app `maint_guid` serves now
/// and that carry no switchctl record at all, leaving out the routes in `known` (found by their
/// record already). Reads the newest 100 mapping events (CC keeps them 31 days) and each such route.
pub async fn lost_routes(
    client: &Client,
    app_guid: &str,
    maint_guid: &str,
    known: &HashSet<&str>,
) -> Result<Vec<LostRoute>, Error> {
    let events = client.route_mapping_events(app_guid).await?;
    let mut candidates = unmapped_since_last_map(events.iter().map(|e| (e.kind.as_str(), &e.created_at, e.mapping())));
    candidates.retain(|route, _| !known.contains(route.as_str()));
    let mut lost = Vec::new();
    for (route_guid, (unmapped_at, removed)) in candidates {
        let route = match client.get_route(&route_guid).await {
            Ok(route) => route,
            // Deleted since: nothing is in maintenance there.
            Err(e) if e.api().is_some_and(|a| a.status == 404) => continue,
            Err(e) => return Err(e),
        };
        let Some(maint) = route.destinations.iter().find(|d| d.app.guid == maint_guid) else { continue };
        let app_there = route.destinations.iter().any(|d| d.app.guid == app_guid);
        if app_there || !state::labelled_apps(&route).is_empty() {
            continue;
        }
        let destinations = removed.iter().map(|d| to_new(app_guid, d)).collect();
        let maintenance_destination = maint.guid.clone();
        lost.push(LostRoute { route, unmapped_at, destinations, maintenance_destination });
    }
    lost.sort_by(|a, b| a.route.guid.cmp(&b.route.guid));
    Ok(lost)
}

/// Per route, the unmap events newer than the newest map event (events come newest first), with
/// the time of the newest.
fn unmapped_since_last_map<'e>(
    events: impl Iterator<Item = (&'e str, &'e String, Option<MappingEventData>)>,
) -> HashMap<String, (String, Vec<MappingEventData>)> {
    let mut mapped_again = HashSet::new();
    let mut out: HashMap<String, (String, Vec<MappingEventData>)> = HashMap::new();
    for (kind, at, data) in events {
        let Some(data) = data else { continue };
        if mapped_again.contains(&data.route_guid) {
            continue;
        }
        match kind {
            "audit.app.map-route" => {
                mapped_again.insert(data.route_guid.clone());
            }
            "audit.app.unmap-route" => {
                let entry = out.entry(data.route_guid.clone()).or_insert_with(|| (at.clone(), Vec::new()));
                entry.1.insert(0, data);
            }
            _ => {}
        }
    }
    out
}

/// A removed destination as one to insert again. The port goes along only when it was explicit:
/// a Docker or CNB app's destination created without one is stored as -1, and CC refuses an
/// explicit port outside 1024–65535 (`app/messages/route_update_destinations_message.rb`).
fn to_new(app_guid: &str, d: &MappingEventData) -> NewDestination {
    NewDestination {
        app: DestinationApp {
            guid: app_guid.to_owned(),
            process: d.process_type.clone().map(|kind| ProcessType { kind }),
        },
        port: d.app_port.filter(|p| (1024..=65535).contains(p)).and_then(|p| u32::try_from(p).ok()),
        protocol: d.protocol.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(route: &str, process: &str, port: i64) -> Option<MappingEventData> {
        serde_json::from_value(serde_json::json!({
            "route_guid": route, "process_type": process, "app_port": port, "protocol": "http1",
            "destination_guid": "d", "weight": null
        }))
        .ok()
    }

    #[test]
    fn only_unmaps_newer_than_the_last_map_count() {
        let t = |s: &str| s.to_owned();
        let (t1, t2, t3, t4) = (t("t1"), t("t2"), t("t3"), t("t4"));
        // Newest first: r1 lost web and worker at t4/t3; r2 was unmapped at t2 but mapped again at t3.
        let events = vec![
            ("audit.app.unmap-route", &t4, data("r1", "web", 8080)),
            ("audit.app.unmap-route", &t3, data("r1", "worker", 9000)),
            ("audit.app.map-route", &t3, data("r2", "web", 8080)),
            ("audit.app.unmap-route", &t2, data("r2", "web", 8080)),
            ("audit.app.restage", &t1, None),
        ];
        let got = unmapped_since_last_map(events.into_iter());
        assert_eq!(got.len(), 1, "{got:?}");
        let (at, removed) = &got["r1"];
        assert_eq!(at, "t4");
        let processes: Vec<_> = removed.iter().map(|d| d.process_type.as_deref().unwrap_or("")).collect();
        assert_eq!(processes, ["worker", "web"]);
    }

    #[test]
    fn a_docker_apps_stored_port_is_not_sent_back() {
        let docker = to_new("a", &data("r", "web", -1).expect("data"));
        assert_eq!(docker.port, None);
        let buildpack = to_new("a", &data("r", "web", 8080).expect("data"));
        assert_eq!(buildpack.port, Some(8080));
        let lost = LostRoute {
            route: serde_json::from_value(serde_json::json!({"guid": "r", "url": "u"})).expect("route"),
            unmapped_at: "t".into(),
            destinations: vec![docker],
            maintenance_destination: "m".into(),
        };
        assert_eq!(
            lost.body(),
            r#"{"destinations":[{"app":{"guid":"a","process":{"type":"web"}},"protocol":"http1"}]}"#
        );
    }
}
