//! What `on` and `off` do to one route, decided from the route as the API shows it. Pure: no
//! requests, so the decisions are tested without a Cloud Controller, and `--dry-run` shows exactly
//! what a run would do.

use super::{
    outcome::{Cause, RouteState},
    probe::Target,
    state::{self, DefaultPort, Record},
};
use crate::capi::{BoundService, Destination, Domain, NewDestination, Route};

/// Why a route is left alone.
pub fn skip_reason(route: &Route, domain: Option<&Domain>) -> Option<&'static str> {
    if route.is_tcp() {
        return Some(
            "TCP route: the TCP router would send HTTP clients' bytes to the maintenance app unchanged; not switched",
        );
    }
    if domain.is_some_and(|d| d.internal) {
        return Some(
            "internal route: container-to-container traffic does not pass the router (and would need network \
             policies to the maintenance app); not switched",
        );
    }
    None
}

/// How a route's changes can be checked from here. A plain probe says who answers only when the
/// router sends it to the route's destinations; two kinds of route break that:
///
/// * **Bound to a route service**: the router sends every request to the service first
///   (gorouter `handlers/routeservice.go`). One that passes requests on lets the maintenance
///   app's marker through; one that answers itself (an SSO's 302 to its login page) never does,
///   and from outside the two cannot be told apart until the marker shows up. So `on` probes a
///   bound route for the marker for at most `--settle` (at least a second): seen, the service
///   passes requests on and the route is verified as any other; not seen, the route is switched
///   all the same, after `--settle`, and reported as not verified — never rolled back or failed
///   for a service that answers itself. `off` learns it from one probe before its change: a
///   marked answer came through the service.
/// * **On a domain enforcing route policies** (CC 3.228): the router refuses every caller
///   without an instance identity that a route policy allows, so probes from here cannot
///   succeed (over HTTPS the TLS handshake fails). Such a route is never probed, not even
///   before the first change; it is switched with `--settle` after each change and reported so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probing {
    /// Probed as usual.
    Direct,
    /// Bound to a route service not yet known to pass requests on or not.
    RouteService(BoundService),
    /// Bound to a route service that passes requests on: probed as usual, through it.
    PassingOn(BoundService),
    /// Bound to a route service that answers itself: not probed, switched after `--settle`.
    AnsweringItself {
        /// The service.
        service: BoundService,
        /// Its answer.
        last: String,
    },
    /// On a domain enforcing route policies: never probed.
    Never {
        /// The domain's name.
        domain: String,
        /// Its `route_policies_scope`.
        scope: Option<String>,
    },
}

impl Probing {
    /// Whether the route is probed before the first change (the reachability check): a route on
    /// a route-policy domain would fail it from anywhere but an app instance.
    pub fn preflight(&self) -> bool {
        !matches!(self, Probing::Never { .. })
    }
}

/// How `route` on `domain`, bound to `bound` (if it is), can be checked. The domain's refusal
/// comes first: gorouter refuses the caller before a route service sees the request.
pub fn probing(domain: Option<&Domain>, bound: Option<&BoundService>) -> Probing {
    match (domain, bound) {
        (Some(d), _) if d.enforce_route_policies => {
            Probing::Never { domain: d.name.clone(), scope: d.route_policies_scope.clone() }
        }
        (_, Some(service)) => Probing::RouteService(service.clone()),
        _ => Probing::Direct,
    }
}

/// Where users reach the route.
pub fn target(route: &Route, domain: Option<&Domain>) -> Target {
    let fqdn = match domain {
        Some(d) if route.host.is_empty() => d.name.clone(),
        Some(d) => format!("{}.{}", route.host, d.name),
        // Without the domain, the URL minus the path is the same thing.
        None => route.url.strip_suffix(route.path.as_str()).unwrap_or(&route.url).to_owned(),
    };
    Target { fqdn, path: route.path.clone() }
}

/// The route's URL as cf shows it (`host.domain/path`).
pub fn url(route: &Route, domain: Option<&Domain>) -> String {
    if !route.url.is_empty() {
        return route.url.clone();
    }
    let t = target(route, domain);
    format!("{}{}", t.fqdn, t.path)
}

/// What `on` does to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnPlan {
    /// Labelled for APP, APP gone, the maintenance app there: nothing to do.
    Already,
    /// APP has no destination on it and it carries no label for APP (changed meanwhile).
    NotMapped,
    /// The steps still to take, in order.
    Switch {
        /// The record to write first (`None`: the route already carries one; keep it, since the
        /// route's current destinations may already be reduced).
        record: Option<String>,
        /// Whether the maintenance destination must be added.
        insert_maintenance: bool,
        /// APP's destinations to remove (as the route shows them now).
        remove: Vec<Destination>,
    },
}

/// Decides what `on` does to `route` for `app` (GUID, name) and the maintenance app `maint`.
pub fn plan_on(route: &Route, app: (&str, &str, DefaultPort), maint: &str, since: &str) -> Result<OnPlan, Cause> {
    if route.destinations.iter().any(|d| d.weight.is_some()) {
        return Err(Cause::Weighted);
    }
    let record = Record::read(route, app.0).map_err(|e| Cause::Record { problem: e.to_string() })?;
    let remove: Vec<Destination> = route.destinations.iter().filter(|d| d.app.guid == app.0).cloned().collect();
    let has_maintenance = route.destinations.iter().any(|d| d.app.guid == maint);
    if record.is_some() {
        // Resume: whatever the route shows now, the record already written is the truth.
        if remove.is_empty() && has_maintenance {
            return Ok(OnPlan::Already);
        }
        return Ok(OnPlan::Switch { record: None, insert_maintenance: !has_maintenance, remove });
    }
    if remove.is_empty() {
        return Ok(OnPlan::NotMapped);
    }
    let mut record = Record::new(app, maint, since, route);
    // Mapped already, and not for another app switchctl switched: someone put it there on purpose,
    // and `off` must leave it as it found it.
    record.maintenance_kept = has_maintenance && state::labelled_apps(route).iter().all(|a| *a == app.0);
    let record = record.encode().map_err(|e| Cause::Record { problem: e.to_string() })?;
    Ok(OnPlan::Switch { record: Some(record), insert_maintenance: !has_maintenance, remove })
}

/// What `off` does to a route labelled for APP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffPlan {
    /// The record the route carries.
    pub record: Record,
    /// The recorded destinations to put back (all of them, as recorded), empty when all are there.
    pub insert: Vec<NewDestination>,
    /// The maintenance destinations to remove (as the route shows them now).
    pub remove: Vec<Destination>,
    /// Keep the maintenance app: another app on the route is still in maintenance, or it was
    /// there before APP was switched.
    pub keep_maintenance: bool,
}

/// Decides what `off` does to `route` for `app_guid`. `Ok(None)`: the route carries no record for APP.
pub fn plan_off(route: &Route, app_guid: &str) -> Result<Option<OffPlan>, Cause> {
    let Some(record) = Record::read(route, app_guid).map_err(|e| Cause::Record { problem: e.to_string() })? else {
        return Ok(None);
    };
    let all_there = record.destinations.iter().all(|s| route.destinations.iter().any(|d| s.is(app_guid, d)));
    let insert = if all_there { Vec::new() } else { record.destinations.iter().map(|s| s.to_new(app_guid)).collect() };
    let keep_maintenance = record.maintenance_kept || state::labelled_apps(route).iter().any(|a| *a != app_guid);
    let remove = if keep_maintenance {
        Vec::new()
    } else {
        route.destinations.iter().filter(|d| d.app.guid == record.maintenance_app).cloned().collect()
    };
    Ok(Some(OffPlan { record, insert, remove, keep_maintenance }))
}

/// What `route` is in for `app_guid`, with `maint` as the maintenance app: read after a failure, so
/// that the report says what the Cloud Controller holds, not what switchctl hoped.
pub fn state_of(route: &Route, app_guid: &str, maint: &str) -> RouteState {
    let app = route.destinations.iter().any(|d| d.app.guid == app_guid);
    let maintenance = route.destinations.iter().any(|d| d.app.guid == maint);
    let recorded = route.metadata.labels.contains_key(&state::key(app_guid))
        || route.metadata.annotations.contains_key(&state::key(app_guid));
    match (app, maintenance, recorded) {
        (true, true, _) => RouteState::BothServe,
        (true, false, false) => RouteState::Serving,
        (true, false, true) => RouteState::RecordOnly,
        (false, true, true) => RouteState::MaintenanceOnly,
        (false, true, false) => RouteState::MaintenanceUnrecorded,
        (false, false, _) => RouteState::Unserved,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dest(guid: &str, app: &str, process: &str, port: u32, protocol: &str) -> serde_json::Value {
        json!({"guid": guid, "app": {"guid": app, "process": {"type": process}}, "weight": null, "port": port, "protocol": protocol})
    }

    fn route(destinations: Vec<serde_json::Value>, labels: serde_json::Value, annotations: serde_json::Value) -> Route {
        serde_json::from_value(json!({
            "guid": "r", "protocol": "http", "host": "shop", "path": "/api", "port": null,
            "url": "shop.apps.example.com/api", "destinations": destinations,
            "metadata": {"labels": labels, "annotations": annotations}
        }))
        .expect("route")
    }

    #[test]
    fn a_route_policy_domain_is_never_probed_and_a_bound_route_goes_through_its_service() {
        let domain = |json: serde_json::Value| -> Domain { serde_json::from_value(json).expect("domain") };
        let plain = domain(json!({"guid": "d", "name": "apps.example.com", "internal": false}));
        let enforcing = domain(json!({"guid": "e", "name": "apps.identity", "enforce_route_policies": true,
                                      "route_policies_scope": "space"}));
        let service = BoundService { name: "sso".into(), instance_guid: "i".into(), url: None };
        assert_eq!(probing(Some(&plain), None), Probing::Direct);
        assert_eq!(probing(Some(&plain), Some(&service)), Probing::RouteService(service.clone()));
        let never = probing(Some(&enforcing), Some(&service));
        assert_eq!(never, Probing::Never { domain: "apps.identity".into(), scope: Some("space".into()) });
        assert!(!never.preflight() && Probing::RouteService(service).preflight());
    }

    #[test]
    fn a_fresh_route_gets_a_record_the_maintenance_app_and_loses_only_the_apps_destinations() {
        let r = route(
            vec![
                dest("1", "A", "web", 8080, "http1"),
                dest("2", "B", "web", 8080, "http1"),
                dest("3", "A", "api", 9000, "http2"),
            ],
            json!({}),
            json!({}),
        );
        let OnPlan::Switch { record, insert_maintenance, remove } =
            plan_on(&r, ("A", "shop", DefaultPort::Stored), "M", "t").expect("plan")
        else {
            panic!("switch")
        };
        assert!(record.expect("record").contains(r#""destinations":[{"process":"web","port":8080,"protocol":"http1"},{"process":"api","port":9000,"protocol":"http2"}]"#));
        assert!(insert_maintenance);
        assert_eq!(remove.iter().map(|d| d.guid.as_str()).collect::<Vec<_>>(), ["1", "3"]);
    }

    #[test]
    fn a_labelled_route_resumes_without_rewriting_the_record() {
        let k = state::key("A");
        let rec = Record::new(
            ("A", "shop", DefaultPort::Stored),
            "M",
            "t",
            &route(vec![dest("1", "A", "web", 8080, "http1")], json!({}), json!({})),
        );
        let ann = rec.encode().expect("fits");
        let half = route(
            vec![dest("1", "A", "web", 8080, "http1"), dest("9", "M", "web", 8080, "http1")],
            json!({ &k: "on" }),
            json!({ &k: &ann }),
        );
        assert_eq!(
            plan_on(&half, ("A", "shop", DefaultPort::Stored), "M", "t2"),
            Ok(OnPlan::Switch { record: None, insert_maintenance: false, remove: half.destinations[..1].to_vec() })
        );
        let done = route(vec![dest("9", "M", "web", 8080, "http1")], json!({ &k: "on" }), json!({ &k: &ann }));
        assert_eq!(plan_on(&done, ("A", "shop", DefaultPort::Stored), "M", "t2"), Ok(OnPlan::Already));
        let unlabelled = route(vec![dest("2", "B", "web", 8080, "http1")], json!({}), json!({}));
        assert_eq!(plan_on(&unlabelled, ("A", "shop", DefaultPort::Stored), "M", "t"), Ok(OnPlan::NotMapped));
    }

    #[test]
    fn off_puts_back_the_record_and_keeps_the_maintenance_app_for_another_switched_app() {
        let k = state::key("A");
        let rec = Record::new(
            ("A", "shop", DefaultPort::Stored),
            "M",
            "t",
            &route(
                vec![dest("1", "A", "web", 8080, "http1"), dest("3", "A", "api", 9000, "http2")],
                json!({}),
                json!({}),
            ),
        );
        let ann = rec.encode().expect("fits");
        let switched = route(vec![dest("9", "M", "web", 8080, "http1")], json!({ &k: "on" }), json!({ &k: &ann }));
        let plan = plan_off(&switched, "A").expect("plan").expect("labelled");
        assert_eq!(plan.insert.len(), 2);
        assert_eq!(
            serde_json::to_value(&plan.insert[1]).expect("json"),
            json!({"app": {"guid": "A", "process": {"type": "api"}}, "port": 9000, "protocol": "http2"})
        );
        assert_eq!(plan.remove.len(), 1);
        assert!(!plan.keep_maintenance);

        let kb = state::key("B");
        let shared =
            route(vec![dest("9", "M", "web", 8080, "http1")], json!({ &k: "on", &kb: "on" }), json!({ &k: &ann }));
        let plan = plan_off(&shared, "A").expect("plan").expect("labelled");
        assert!(plan.keep_maintenance && plan.remove.is_empty());

        let restored_half = route(
            vec![
                dest("1", "A", "web", 8080, "http1"),
                dest("3", "A", "api", 9000, "http2"),
                dest("9", "M", "web", 8080, "http1"),
            ],
            json!({ &k: "on" }),
            json!({ &k: &ann }),
        );
        assert!(plan_off(&restored_half, "A").expect("plan").expect("labelled").insert.is_empty());
        assert_eq!(plan_off(&route(vec![], json!({}), json!({})), "A"), Ok(None));
    }

    #[test]
    fn a_maintenance_destination_mapped_by_hand_is_recorded_and_kept_by_off() {
        let by_hand = route(
            vec![dest("1", "A", "web", 8080, "http1"), dest("9", "M", "web", 8080, "http1")],
            json!({}),
            json!({}),
        );
        let OnPlan::Switch { record, insert_maintenance, .. } =
            plan_on(&by_hand, ("A", "shop", DefaultPort::Stored), "M", "t").expect("plan")
        else {
            panic!("switch")
        };
        assert!(!insert_maintenance);
        let record = record.expect("record");
        assert!(record.contains(r#""maintenance_kept":true"#), "{record}");
        let k = state::key("A");
        let switched = route(vec![dest("9", "M", "web", 8080, "http1")], json!({ &k: "on" }), json!({ &k: &record }));
        let plan = plan_off(&switched, "A").expect("plan").expect("recorded");
        assert!(plan.keep_maintenance && plan.remove.is_empty());
        // Mapped for another switched app is not "by hand": the last app's `off` removes it.
        let kb = state::key("B");
        let for_b = route(
            vec![dest("1", "A", "web", 8080, "http1"), dest("9", "M", "web", 8080, "http1")],
            json!({ &kb: "on" }),
            json!({}),
        );
        let Ok(OnPlan::Switch { record: Some(record), .. }) =
            plan_on(&for_b, ("A", "shop", DefaultPort::Stored), "M", "t")
        else {
            panic!("switch")
        };
        assert!(!record.contains("maintenance_kept"), "{record}");
    }

    #[test]
    fn the_state_of_a_route_is_read_from_its_destinations_and_record() {
        let k = state::key("A");
        let a = || dest("1", "A", "web", 8080, "http1");
        let m = || dest("9", "M", "web", 8080, "http1");
        let case = |d: Vec<serde_json::Value>, recorded: bool| {
            let meta = if recorded { json!({ &k: "x" }) } else { json!({}) };
            state_of(&route(d, json!({}), meta), "A", "M")
        };
        assert_eq!(case(vec![a()], false), RouteState::Serving);
        assert_eq!(case(vec![a()], true), RouteState::RecordOnly);
        assert_eq!(case(vec![a(), m()], true), RouteState::BothServe);
        assert_eq!(case(vec![m()], true), RouteState::MaintenanceOnly);
        assert_eq!(case(vec![m()], false), RouteState::MaintenanceUnrecorded);
        assert_eq!(case(vec![], true), RouteState::Unserved);
    }

    #[test]
    fn weighted_tcp_and_internal_routes_are_not_touched() {
        let mut r = route(vec![dest("1", "A", "web", 8080, "http1")], json!({}), json!({}));
        r.destinations[0].weight = Some(100);
        assert_eq!(plan_on(&r, ("A", "shop", DefaultPort::Stored), "M", "t"), Err(Cause::Weighted));
        let mut tcp = route(vec![], json!({}), json!({}));
        tcp.port = Some(1024);
        assert!(skip_reason(&tcp, None).is_some_and(|s| s.starts_with("TCP")));
        let internal: Domain =
            serde_json::from_value(json!({"guid": "d", "name": "apps.internal", "internal": true})).expect("domain");
        assert!(
            skip_reason(&route(vec![], json!({}), json!({})), Some(&internal))
                .is_some_and(|s| s.starts_with("internal"))
        );
    }

    #[test]
    fn targets_and_urls_come_from_host_domain_and_path() {
        let d: Domain = serde_json::from_value(json!({"guid": "d", "name": "apps.example.com"})).expect("domain");
        let r = route(vec![], json!({}), json!({}));
        assert_eq!(target(&r, Some(&d)), Target { fqdn: "shop.apps.example.com".into(), path: "/api".into() });
        assert_eq!(target(&r, None), Target { fqdn: "shop.apps.example.com".into(), path: "/api".into() });
        let mut bare = r.clone();
        bare.host = String::new();
        assert_eq!(target(&bare, Some(&d)).fqdn, "apps.example.com");
        assert_eq!(url(&r, Some(&d)), "shop.apps.example.com/api");
    }
}
