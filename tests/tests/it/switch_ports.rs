//! Docker apps' ports (issue 12): CC stores a Docker or CNB app's destination created without a
//! port as -1 and shows it as the image's first exposed port; an explicit port must be
//! 1024–65535. `on` and `off` must leave what CC stores, and so `process.ports`, exactly as they
//! found it, for the switched app and for every other app on a shared route.

use std::collections::BTreeMap;

use crate::switch_support::{Dest, Setup, World};

/// Per route: every destination as CC stores it (app, process, stored port, protocol), sorted.
type Stored = BTreeMap<String, Vec<Dest>>;

fn stored(w: &World, routes: &[&str]) -> Stored {
    routes.iter().map(|g| ((*g).to_owned(), w.dests(g))).collect()
}

/// `process.ports` of every process of `apps`.
fn ports(w: &World, apps: &[&str]) -> Vec<(String, String, Option<Vec<u16>>)> {
    let st = w.cf.cc.state();
    let mut out: Vec<_> = st
        .processes
        .iter()
        .filter(|p| apps.contains(&p.app_guid.as_str()))
        .map(|p| (p.app_guid.clone(), p.process_type.clone(), p.ports.clone()))
        .collect();
    out.sort();
    out
}

/// Destination GUIDs of `app` on `route`.
fn guids_of(w: &World, route: &str, app: &str) -> Vec<String> {
    let st = w.cf.cc.state();
    st.route(route)
        .map(|r| r.destinations.iter().filter(|d| d.app_guid == app).map(|d| d.guid.clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_apps_on_port_80_and_8081_round_trip_exactly() {
    let w = World::new(Setup { routes: 1, production: true, ..Setup::default() }).await;
    let (space, domain) = (w.std.space.clone(), w.std.domain.clone());
    // `legacy`: an image exposing port 80, mapped as `cf map-route` maps it (no port: -1, shown as 80).
    let legacy = w.cf.add_docker_app(&space, "legacy", &[80]);
    let _legacy_servers = w.cf.serve_instances(&legacy.guid, "legacy", "web", 1).await.expect("instances");
    let legacy_route = w.cf.add_route(&space, &domain, "legacy", "");
    w.cf.map_route_port(&legacy_route, &legacy.guid, "web", None);
    // `api`: an image exposing 8081 and 9000: one destination without a port (shown as 8081) and
    // one with 9000 sent explicitly (then in `process.ports`).
    let api = w.cf.add_docker_app(&space, "api", &[8081, 9000]);
    let _api_servers = w.cf.serve_instances(&api.guid, "api", "web", 1).await.expect("instances");
    let api_route = w.cf.add_route(&space, &domain, "api", "");
    w.cf.map_route_port(&api_route, &api.guid, "web", None);
    let api_admin = w.cf.add_route(&space, &domain, "api-admin", "");
    w.cf.map_route_port(&api_admin, &api.guid, "web", Some(9000));
    assert!(w.cf.router.wait_settled(std::time::Duration::from_secs(5)).await, "router settles");

    let routes = [legacy_route.as_str(), api_route.as_str(), api_admin.as_str()];
    let apps = [legacy.guid.as_str(), api.guid.as_str()];
    let (before, ports_before) = (stored(&w, &routes), ports(&w, &apps));
    assert_eq!(before[&legacy_route][0].2, None, "the double stores -1 for a Docker app without a port");

    for name in ["legacy", "api"] {
        w.run(&["on", name]).await.expect_code(0);
        let off = w.run(&["off", name]).await;
        off.expect_code(0);
        assert_eq!(stored(&w, &routes), before, "{name}: destinations as CC stored them\n{off}");
        assert_eq!(ports(&w, &apps), ports_before, "{name}: process.ports unchanged");
    }
    let answer = w
        .http
        .get(
            &format!("{}/v3/routes/{legacy_route}/destinations", w.cf.api_url()),
            Some(&w.cf.bearer("developer").expect("token")),
        )
        .await
        .expect("CC answers");
    assert_eq!(answer.json()["destinations"][0]["port"], 80, "presented as the image's port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_app_sharing_a_route_keeps_its_destination_through_another_apps_window() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let legacy = w.cf.add_docker_app(&w.std.space, "legacy", &[80]);
    let _servers = w.cf.serve_instances(&legacy.guid, "legacy", "web", 1).await.expect("instances");
    let shared = w.routes[0].guid.clone();
    w.cf.map_route_port(&shared, &legacy.guid, "web", None);
    let (before, kept) = (stored(&w, &[&shared]), guids_of(&w, &shared, &legacy.guid));

    let on = w.run(&["on", "shop"]).await;
    on.expect_code(0);
    assert_eq!(guids_of(&w, &shared, &legacy.guid), kept, "legacy's destination untouched by on\n{on}");
    w.run(&["off", "shop"]).await.expect_code(0);
    assert_eq!(guids_of(&w, &shared, &legacy.guid), kept, "legacy's destination untouched by off");
    assert_eq!(stored(&w, &[&shared]), before, "the shared route as it was");
}
