//! Issue 4's benchmark: an app with 10 routes, 50 ms latency on every CC request, `on` then `off`
//! with `--no-verify --settle 0` (no probe waits). Counts the API requests and the wall time,
//! beside what the cf CLI needs for the same switch with `cf map-route` + `cf unmap-route` per
//! route (FACTS.md §4.1/§4.2), and prints the table with the targets (a third of the cf CLI's
//! requests; on + off within 3 s). Timing is not a test: run it with `bench/switchctl`.
//!
//! What CI checks is the request budget, which does not depend on the machine's speed: per route
//! and direction one metadata write, one insert, one read and one replace (make before break,
//! state written first, a fresh read before the replace), plus a fixed number of lookups.

use std::time::Duration;

use http::Method;

use crate::switch_support::{Setup, World};

/// `cf map-route`: GET domains, GET apps, GET routes, POST destinations (route exists).
const CF_MAP_ROUTE: usize = 4;
/// `cf unmap-route`: GET domains, GET apps, GET routes, DELETE destination.
const CF_UNMAP_ROUTE: usize = 4;
const ROUTES: usize = 10;
const LATENCY: Duration = Duration::from_millis(50);

/// Requests per route and direction: metadata, insert, read, replace.
const PER_ROUTE: usize = 4;
/// Lookups per run: app, maintenance app, its web stats, the app's routes, the
/// labelled routes, their route-service bindings, the maintenance app's routes (`on`'s capacity
/// check, `off`'s search for unlabelled routes), each domain once (and a spare).
const FIXED: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_and_off_stay_within_the_request_budget() {
    let w = World::new(Setup { routes: ROUTES, ..Setup::default() }).await;
    let before = w.all_dests();
    for command in ["on", "off"] {
        w.cf.faults.clear_log();
        w.run(&[command, "shop", "--no-verify", "--settle", "0"]).await.expect_code(0);
        let requests = w.cf.faults.log().iter().filter(|r| r.service == "cc").count();
        assert!(requests <= ROUTES * PER_ROUTE + FIXED, "{command}: {requests} requests for {ROUTES} routes");
    }
    w.assert_restored(&before, "after off").await;
}

/// A fleet's apps with 2 routes each, per app and direction. `on`: its labelled routes and 4 per
/// route (its mapped routes and their bindings come in lists for 50 apps at once). `off`: its
/// labelled routes, its web process's stats and 4 per route (the bindings come with the
/// maintenance app's routes). Before these lists: `on` 11 and `off` 12 (a list of the app's
/// routes, one of their bindings, and the process list before the stats).
const FLEET_ON_PER_APP: usize = 1 + 2 * PER_ROUTE;
const FLEET_OFF_PER_APP: usize = 2 + 2 * PER_ROUTE;
/// Per fleet run: the apps by selector, the maintenance app, its stats and its routes, the
/// domain, and per 50 apps one list of routes and one of bindings (a spare or two).
const FLEET_FIXED: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_app_fleet_stays_within_the_request_budget() {
    const APPS: usize = 50;
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let (fleet, _servers) = crate::switch_fleet::add_fleet(&w, APPS, 2).await;
    let before = crate::switch_fleet::every_dest(&w, &fleet);
    for (command, per_app) in [("on", FLEET_ON_PER_APP), ("off", FLEET_OFF_PER_APP)] {
        w.cf.faults.clear_log();
        let args = [command, "--selector", crate::switch_fleet::SELECTOR, "--parallel", "8"];
        w.run(&args).await.expect_code(0);
        let requests = w.cf.faults.log().iter().filter(|r| r.service == "cc").count();
        let budget = APPS * per_app + FLEET_FIXED;
        assert!(requests <= budget, "{command}: {requests} requests for {APPS} apps with 2 routes, budget {budget}");
        println!("{command}: {requests} requests for {APPS} apps with 2 routes (budget {budget})");
    }
    assert_eq!(crate::switch_fleet::every_dest(&w, &fleet), before, "restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run bench/switchctl"]
async fn ten_routes_on_and_off_requests_and_time() {
    let w = World::new(Setup { routes: ROUTES, ..Setup::default() }).await;
    let before = w.all_dests();
    w.cf.faults.set_latency(LATENCY, Duration::ZERO);

    let on = w.run(&["on", "shop", "--no-verify", "--settle", "0"]).await;
    on.expect_code(0);
    let on_log = w.cf.faults.log();
    w.cf.faults.clear_log();
    let off = w.run(&["off", "shop", "--no-verify", "--settle", "0"]).await;
    off.expect_code(0);
    let off_log = w.cf.faults.log();
    w.cf.faults.set_latency(Duration::ZERO, Duration::ZERO);
    w.assert_restored(&before, "bench: after off").await;

    let count =
        |log: &[tests::faults::LoggedRequest], service: &str| log.iter().filter(|r| r.service == service).count();
    let writes = |log: &[tests::faults::LoggedRequest]| {
        log.iter().filter(|r| r.service == "cc" && r.method != Method::GET && r.method != Method::HEAD).count()
    };
    let (on_cc, off_cc) = (count(&on_log, "cc"), count(&off_log, "cc"));
    let (on_uaa, off_uaa) = (count(&on_log, "uaa"), count(&off_log, "uaa"));
    // Switching on = map the maintenance app + unmap the app; off = map the app + unmap the
    // maintenance app: per route and direction one map-route and one unmap-route.
    let cf_on = ROUTES * (CF_MAP_ROUTE + CF_UNMAP_ROUTE);
    let cf_off = cf_on;
    let cf_time = |n: usize| LATENCY * u32::try_from(n).unwrap_or(u32::MAX);
    let total = on_cc + off_cc;
    let cf_total = cf_on + cf_off;

    println!("benchmark: {ROUTES} routes, {} ms per CC request, --no-verify --settle 0", LATENCY.as_millis());
    println!("{:<34} {:>9} {:>7} {:>11}", "", "requests", "writes", "wall time");
    println!(
        "{:<34} {:>9} {:>7} {:>11.2?}",
        "switchctl on (+uaa)",
        format!("{on_cc}+{on_uaa}"),
        writes(&on_log),
        on.took
    );
    println!(
        "{:<34} {:>9} {:>7} {:>11.2?}",
        "switchctl off (+uaa)",
        format!("{off_cc}+{off_uaa}"),
        writes(&off_log),
        off.took
    );
    println!(
        "{:<34} {:>9} {:>7} {:>11.2?}",
        "switchctl on + off",
        total,
        writes(&on_log) + writes(&off_log),
        on.took + off.took
    );
    println!("{:<34} {:>9} {:>7} {:>11.2?}", "cf map-route+unmap-route ×10 (on)", cf_on, ROUTES * 2, cf_time(cf_on));
    println!("{:<34} {:>9} {:>7} {:>11.2?}", "cf map-route+unmap-route ×10 (off)", cf_off, ROUTES * 2, cf_time(cf_off));
    println!("{:<34} {:>9} {:>7} {:>11.2?}", "cf on + off (sequential)", cf_total, ROUTES * 4, cf_time(cf_total));
    println!("ratio switchctl/cf requests: {:.2} (target <= 0.33)", total as f64 / cf_total as f64);
    let mut by_kind: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in on_log.iter().chain(off_log.iter()).filter(|r| r.service == "cc") {
        let shape: Vec<&str> =
            r.path.split('/').map(|s| if s.len() == 36 && s.matches('-').count() == 4 { ":guid" } else { s }).collect();
        *by_kind.entry(format!("{} {}", r.method, shape.join("/"))).or_insert(0) += 1;
    }
    for (k, n) in &by_kind {
        println!("  {n:>4}  {k}");
    }

    let verdict = |ok: bool| if ok { "PASS" } else { "MISSED" };
    let (ratio_ok, time_ok) = (total * 3 <= cf_total, on.took + off.took <= Duration::from_secs(3));
    println!("target: requests <= 1/3 of cf's ({}): {}", cf_total / 3, verdict(ratio_ok));
    println!("target: on + off <= 3 s excluding probe waits: {}", verdict(time_ok));
}
