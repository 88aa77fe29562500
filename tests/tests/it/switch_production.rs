//! The production profile (issue 12): three routers behind a random balancer with their own
//! 50–500 ms delays, Diego's routes limit, CC's rate limiter at capi-release's 2000 per hour over
//! 4 instances, staging and stopping that take time, all at once. A buildpack app with two routes
//! and Docker apps on port 80 and 8081 go into maintenance and come back exactly, with no request
//! failing on any router meanwhile.

use std::time::Duration;

use crate::switch_support::{Answer, Load, Setup, World, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buildpack_and_a_docker_app_round_trip_exactly_on_the_production_profile() {
    let w = World::new(Setup { routes: 2, production: true, ..Setup::default() }).await;
    assert_eq!(w.cf.routers().len(), 3, "the profile runs three routers");
    let legacy = w.cf.add_docker_app(&w.std.space, "legacy", &[80]);
    let _legacy = w.cf.serve_instances(&legacy.guid, "legacy", "web", 1).await.expect("instances");
    let route = w.cf.add_route(&w.std.space, &w.std.domain, "legacy", "");
    w.cf.map_route_port(&route, &legacy.guid, "web", None);
    // A second image exposing 8081: its destination is stored as -1 and shown as 8081 too.
    let image = w.cf.add_docker_app(&w.std.space, "image", &[8081]);
    let _image = w.cf.serve_instances(&image.guid, "image", "web", 1).await.expect("instances");
    let route81 = w.cf.add_route(&w.std.space, &w.std.domain, "image", "");
    w.cf.map_route_port(&route81, &image.guid, "web", None);
    assert!(w.cf.wait_settled(Duration::from_secs(10)).await, "routers settle");
    let before = (w.all_dests(), w.dests(&route), w.dests(&route81));
    let ports = |w: &World| {
        let st = w.cf.cc.state();
        let of = |app: &str| st.processes.iter().find(|p| p.app_guid == app).map(|p| p.ports.clone());
        (of(&legacy.guid), of(&image.guid))
    };
    let ports_before = ports(&w);

    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 100);
    load.wait_more(20, Duration::from_secs(10)).await;
    let on = w.run(&["on", "shop", "legacy", "image"]).await;
    on.expect_code(0);
    for r in w.routes.iter().map(|r| r.guid.as_str()).chain([route.as_str(), route81.as_str()]) {
        let to: Vec<String> = w.dests(r).into_iter().map(|d| d.0).collect();
        assert_eq!(to, std::slice::from_ref(&w.maint_guid()), "{r}: only the maintenance app\n{on}");
    }
    load.wait_more(20, Duration::from_secs(10)).await;
    let off = w.run(&["off", "shop", "legacy", "image"]).await;
    off.expect_code(0);
    load.wait_more(20, Duration::from_secs(10)).await;
    let samples = load.stop().await;

    let after = (w.all_dests(), w.dests(&route), w.dests(&route81));
    assert_eq!(after, before, "every destination as CC stored it\n{off}");
    assert_eq!(ports(&w), ports_before, "legacy's and image's process.ports unchanged");
    let all = tally(&samples);
    let count = |a| all.get(&a).copied().unwrap_or(0);
    assert_eq!(
        (count(Answer::NotFound), count(Answer::BadGateway), count(Answer::Other)),
        (0, 0, 0),
        "no 404, no router 503, no 502 on any router: {all:?}"
    );
    assert!(count(Answer::Maintenance) > 0 && count(Answer::App) > 0, "the load saw both sides: {all:?}");
}
