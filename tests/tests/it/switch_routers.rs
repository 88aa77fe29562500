//! Several gorouters behind one balancer: `switchctl on` and `off` must hold on every router, not
//! only on the one a keep-alive connection happens to reach. Three routers, each applying every
//! route change after its own 0–500 ms delay, steady load on new connections (so the balancer
//! spreads it): no 404, no 502, no router 503 during either command, and when each returns, every
//! router's table sends every route only where it should. Also: a wildcard route round-trips.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tests::Balance;

use crate::switch_support::{Answer, HttpRoute, Load, Setup, World, tally};

/// What each router's table serves each route with now: (router, route, sorted endpoints).
fn tables(w: &World) -> Vec<(usize, String, Vec<SocketAddr>)> {
    let mut out = Vec::new();
    for (i, router) in w.cf.routers().iter().enumerate() {
        for r in &w.routes {
            let mut endpoints = router.endpoints_for(&r.host, &r.request_path);
            endpoints.sort();
            out.push((i, r.host.clone() + &r.request_path, endpoints));
        }
    }
    out
}

/// The rows of `tables` that do not serve exactly `want`.
fn disagreeing(w: &World, want: &[SocketAddr]) -> Vec<(usize, String, Vec<SocketAddr>)> {
    let mut want = want.to_vec();
    want.sort();
    tables(w).into_iter().filter(|(_, _, e)| *e != want).collect()
}

/// Round trips per run: a prober that verifies one router gets through one round trip unharmed
/// about one time in seven (measured with the keep-alive prober), through three about one in 350.
const ROUND_TRIPS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_router_agrees_when_on_and_off_return_and_no_request_fails_meanwhile() {
    let w = World::new(Setup {
        router_delay: (Duration::ZERO, Duration::from_millis(500)),
        routes: 2,
        routers: (3, Balance::RoundRobin),
        ..Setup::default()
    })
    .await;
    assert_eq!(w.cf.routers().len(), 3);
    let before = w.all_dests();
    let maint = [w.maint_addr().expect("the maintenance app runs")];
    let load = Load::spread(w.cf.router_url(), w.routes.clone(), 200);
    load.wait_more(40, Duration::from_secs(10)).await;

    let mut lagging = Vec::new();
    let mut windows = Vec::new();
    for round in 0..ROUND_TRIPS {
        let on_start = Instant::now();
        let on = w.run(&["on", "shop"]).await;
        let on_end = Instant::now();
        // Read before anything else: the routers keep applying whatever is still on their way.
        lagging.extend(disagreeing(&w, &maint).into_iter().map(|d| (round, "on", d)));
        on.expect_code(0);
        load.wait_more(40, Duration::from_secs(10)).await;

        let off_start = Instant::now();
        let off = w.run(&["off", "shop"]).await;
        let off_end = Instant::now();
        lagging.extend(disagreeing(&w, &w.app_addrs()).into_iter().map(|d| (round, "off", d)));
        off.expect_code(0);
        load.wait_more(40, Duration::from_secs(10)).await;
        windows.push((on_start, on_end, off_start, off_end, on.took, off.took));
    }
    let samples = load.stop().await;

    let during = |from: Instant, to: Instant| tally(samples.iter().filter(|s| s.sent >= from && s.sent < to));
    let spread = w.cf.router_connections().expect("a balancer in front of three routers");
    println!("3 routers, 0-500 ms each, ~200 req/s on new connections; connections per router {spread:?}");
    for (on_start, on_end, off_start, off_end, on_took, off_took) in &windows {
        let (on, off) = (during(*on_start, *on_end), during(*off_start, *off_end));
        println!("on took {on_took:?}: {on:?}; off took {off_took:?}: {off:?}");
        assert!(on.contains_key(&Answer::App) || on.contains_key(&Answer::Maintenance), "traffic during on");
    }
    let all = tally(&samples);
    println!("all: {all:?}");
    assert!(spread.iter().all(|n| *n >= 20), "the balancer spread the load over every router: {spread:?}");
    // Each `on` and `off` asked every route for an instance by name, 25 times in a row at least,
    // and `off` again for the maintenance app's instance until no router held it.
    let pinned: usize = w.cf.routers().iter().map(|r| r.pinned_requests()).sum();
    assert!(pinned >= ROUND_TRIPS * 3 * w.routes.len() * 25, "probes named an instance: {pinned}");
    assert!(
        lagging.is_empty(),
        "when `on` (`off`) returns, every router sends every route only to the maintenance app (to shop): \
         {lagging:?}"
    );
    let count = |a| all.get(&a).copied().unwrap_or(0);
    assert_eq!(
        (count(Answer::NotFound), count(Answer::BadGateway), count(Answer::Other)),
        (0, 0, 0),
        "no 404, no router 503, no 502, no failed request on any router: {all:?}"
    );
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_route_round_trips_through_on_and_off_verified() {
    let mut w = World::new(Setup {
        router_delay: (Duration::ZERO, Duration::from_millis(200)),
        routes: 1,
        routers: (3, Balance::Random),
        ..Setup::default()
    })
    .await;
    let guid = w.cf.add_route(&w.std.space, &w.std.domain, "*", "");
    w.cf.map_route(&guid, &w.app.guid, "web", 8080);
    // Users reach it under any host of the domain that has no route of its own.
    w.routes.push(HttpRoute { guid, host: "anyone.apps.example.com".into(), request_path: "/".into() });
    assert!(w.cf.wait_settled(Duration::from_secs(5)).await);
    w.assert_consistent("before on").await;
    let before = w.all_dests();

    let on = w.run(&["on", "shop"]).await;
    on.expect_code(0);
    assert!(on.stdout.contains("*.apps.example.com"), "the report names the wildcard route: {on}");
    let maint = [w.maint_addr().expect("the maintenance app runs")];
    assert_eq!(disagreeing(&w, &maint), [], "every router sends the wildcard's hosts to the maintenance app");
    w.assert_all_on(&before, "after on").await;

    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert_eq!(disagreeing(&w, &w.app_addrs()), [], "every router sends the wildcard's hosts to shop again");
    // switchctl asked under a host of its own making, never for the literal `*` (which gorouter
    // would serve too, but which cannot be a TLS name when probing without --probe-via).
    let hosts: Vec<String> = w.cf.routers().iter().flat_map(|r| r.hosts_seen()).collect();
    assert!(hosts.iter().all(|h| !h.contains('*')), "{hosts:?}");
    assert!(hosts.iter().any(|h| h.starts_with("switchctl-probe-") && h.ends_with(".apps.example.com")), "{hosts:?}");
    w.assert_restored(&before, "after off").await;
}
