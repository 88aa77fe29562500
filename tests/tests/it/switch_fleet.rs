//! Fleets: 50 apps by label selector with faults injected (each app ends consistent, the summary
//! says which failed, the printed command finishes), the request budget per app, and the
//! benchmark of issue 6 (500 apps with 2 routes each, 50 ms per request, CC's rate limiter; run
//! it with `bench/switchctl`).

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use http::Method;
use serde_json::Value;
use tests::{
    faults::{Failure, Matcher, RateLimit},
    serve::Server,
};

use crate::switch_support::{Dest, MaintenanceProcess, Setup, World};

/// The label the fleet's apps carry.
pub(crate) const SELECTOR: &str = "team=orders";

/// One app of the fleet: its GUID, name and routes.
pub(crate) struct Member {
    pub(crate) guid: String,
    pub(crate) name: String,
    pub(crate) routes: Vec<String>,
}

/// Adds `count` apps `f-000…`, labelled `team=orders`, each with `routes` routes served by one
/// instance; returns them and their servers (which must live as long as the test).
pub(crate) async fn add_fleet(w: &World, count: usize, routes: usize) -> (Vec<Member>, Vec<Server>) {
    let mut members = Vec::new();
    let mut servers = Vec::new();
    for i in 0..count {
        let name = format!("f-{i:03}");
        let app = w.cf.add_app_with(&w.std.space, &name, 1, true);
        w.cf.label_app(&app.guid, "team", "orders");
        servers.extend(w.cf.serve_instances(&app.guid, &name, "web", 1).await.expect("instances"));
        let mut list = Vec::new();
        for r in 0..routes {
            let route = w.cf.add_route(&w.std.space, &w.std.domain, &format!("{name}-{r}"), "");
            w.cf.map_route(&route, &app.guid, "web", 8080);
            list.push(route);
        }
        members.push(Member { guid: app.guid, name, routes: list });
    }
    assert!(w.cf.router.wait_settled(Duration::from_secs(30)).await, "router settles");
    w.cf.faults.clear_log();
    (members, servers)
}

/// The destinations of shop's routes and of every fleet route.
pub(crate) fn every_dest(w: &World, fleet: &[Member]) -> BTreeMap<String, Vec<Dest>> {
    let mut all = w.all_dests();
    for route in fleet.iter().flat_map(|m| &m.routes) {
        all.insert(route.clone(), w.dests(route));
    }
    all
}

/// The summary event of a `--json` run.
fn summary(run: &crate::switch_support::Run) -> Value {
    run.events().into_iter().rev().find(|e| e["event"] == "summary").unwrap_or_else(|| panic!("no summary: {run}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_apps_by_selector_with_faults_end_consistent() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 50, 1).await;
    let before = every_dest(&w, &fleet);
    let maint = w.maint_guid();

    let faults = &w.cf.faults;
    faults.fail_nth(Matcher::new(Method::POST, "/v3/routes/*/destinations"), 5, Failure::Status500);
    // The fleet's mapped routes come in one list (`/v3/routes?app_guids=…`); each app then lists
    // its labelled routes: the 30th list is one app's.
    faults.fail_nth(Matcher::new(Method::GET, "/v3/routes"), 30, Failure::Status500);
    faults.fail_nth(Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*"), 10, Failure::Status503);
    faults.fail_nth(Matcher::new(Method::PATCH, "/v3/routes/*"), 20, Failure::RateLimited { retry_after: 1 });
    let on = w.run(&["--json", "on", "--selector", SELECTOR, "--parallel", "8"]).await;
    on.expect_code(1);
    let doc = summary(&on);
    let apps = doc["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 50, "every selected app is reported, the maintenance app and shop are not: {doc}");
    let failed: Vec<&str> = apps.iter().filter(|a| a["ok"] == false).filter_map(|a| a["app"].as_str()).collect();
    assert_eq!(failed.len(), 2, "the 500 on an insert and the 500 on a route list fail one app each: {doc}");
    for m in &fleet {
        let dests = w.dests(&m.routes[0]);
        let has = |g: &str| dests.iter().any(|d| d.0 == g);
        if failed.contains(&m.name.as_str()) {
            assert!(has(&m.guid), "{}: a failed app keeps serving its route: {dests:?}", m.name);
        } else {
            assert!(has(&maint) && !has(&m.guid), "{}: switched: {dests:?}", m.name);
        }
    }
    assert_eq!(w.dests(&w.routes[0].guid), before[&w.routes[0].guid], "shop is not selected");
    for name in &failed {
        assert!(on.stderr.contains(name), "stderr names {name}: {on}");
    }
    // `status` of a failed app shows it serving its route, with nothing left half-done.
    for name in &failed {
        let status = w.run(&["--json", "status", name, "--probe-via", &w.probe_via()]).await;
        status.expect_code(0);
        let doc = status.json();
        assert_eq!(doc["ok"], true, "{name}: no problem reported: {doc}");
        assert_eq!(doc["routes"][0]["answered_by"], "app", "{name}: {doc}");
    }
    let finish =
        on.stderr.split('`').find(|c| c.starts_with("switchctl --org") && c.contains(" on ")).expect("command");
    let finish: Vec<&str> = finish.split_whitespace().skip(1).collect();
    w.run(&finish).await.expect_code(0);
    for m in &fleet {
        let dests = w.dests(&m.routes[0]);
        assert!(dests.iter().all(|d| d.0 == maint) && dests.len() == 1, "{}: on after the finish: {dests:?}", m.name);
    }

    // Without faults, `off` of the fleet: every app restored, within the request budget.
    faults.clear_log();
    let off = w.run(&["off", "--selector", SELECTOR, "--parallel", "8"]).await;
    off.expect_code(0);
    assert!(off.stdout.contains("OK: 50 of 50 apps restored."), "{off}");
    assert!(off.stdout.contains("f-000") && off.stdout.contains("restored"), "the table lists the apps: {off}");
    let requests = w.cc_log().len();
    // 6 per app: its labelled routes, its web stats, and 4 for its route; the bindings of the
    // fleet's routes in one list per 50 routes.
    assert!(requests <= 50 * 6 + 10, "off: {requests} requests for 50 apps with 1 route each");
    assert_eq!(every_dest(&w, &fleet), before, "every route as before");
}

/// Acceptance (issue 12, item 4): 50 apps in blue/green pairs, each pair sharing a route besides
/// each app's own. With a task per app, both apps of a pair decide from a listing the other's task
/// makes stale: on `off` each keeps the maintenance app because the other's record is still
/// there, and the shared route keeps serving the maintenance page next to both apps. One task per
/// shared route, knowing both apps, restores it exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_apps_in_blue_green_pairs_sharing_routes_round_trip_under_parallel_16() {
    let w = World::new(Setup { routes: 1, production: true, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 50, 1).await;
    let shared: Vec<String> = fleet
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let route = w.cf.add_route(&w.std.space, &w.std.domain, &format!("pair-{i:02}"), "");
            for m in pair {
                w.cf.map_route(&route, &m.guid, "web", 8080);
            }
            route
        })
        .collect();
    assert!(w.cf.router.wait_settled(Duration::from_secs(30)).await, "router settles");
    let every = |w: &World| {
        let mut all = every_dest(w, &fleet);
        all.extend(shared.iter().map(|r| (r.clone(), w.dests(r))));
        all
    };
    let before = every(&w);
    let maint = w.maint_guid();

    let on = w.run(&["on", "--selector", SELECTOR, "--parallel", "16"]).await;
    on.expect_code(0);
    for route in fleet.iter().flat_map(|m| &m.routes).chain(&shared) {
        let to: Vec<String> = w.dests(route).into_iter().map(|d| d.0).collect();
        assert_eq!(to, std::slice::from_ref(&maint), "route {route}: only the maintenance app, once\n{on}");
    }
    assert!(on.stdout.contains("switched together with f-001"), "the shared route's line says so: {on}");

    let off = w.run(&["off", "--selector", SELECTOR, "--parallel", "16"]).await;
    off.expect_code(0);
    assert_eq!(every(&w), before, "every route, shared ones included, exactly as before\n{off}");
    for route in &shared {
        let (labels, annotations) = w.switch_metadata(route);
        assert!(labels.is_empty() && annotations.is_empty(), "no record left on {route}: {labels:?}");
    }

    // One app of a pair out of maintenance: the maintenance app stays on the shared route for the
    // other; the other's `off` takes it away.
    let (a, b) = (&fleet[0], &fleet[1]);
    w.run(&["on", &a.name, &b.name]).await.expect_code(0);
    w.run(&["off", &a.name]).await.expect_code(0);
    let to: Vec<String> = w.dests(&shared[0]).into_iter().map(|d| d.0).collect();
    assert!(
        to.contains(&maint) && to.contains(&a.guid) && !to.contains(&b.guid),
        "{} still in maintenance: {to:?}",
        b.name
    );
    w.run(&["off", &b.name]).await.expect_code(0);
    assert_eq!(every(&w), before, "the last one out takes the maintenance app away");
}

/// Acceptance (issue 12, item 2): Diego refuses a process's routes past its limit after CC
/// committed the mapping, so a maintenance app carrying too many routes stops taking new ones.
/// `on` counts before any change and refuses a fleet that would pass three quarters of the limit;
/// a fleet that fits is switched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_past_the_maintenance_apps_routes_capacity_is_refused_before_any_change() {
    // About 11 routes of ~125 bytes fit in 1400 bytes; three quarters of it, about 8.
    const LIMIT: usize = 1400;
    let w = World::new(Setup { routes: 1, diego_routes_limit: Some(LIMIT), ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 10, 1).await;
    let before = every_dest(&w, &fleet);
    let limit = LIMIT.to_string();

    let refused = w.run(&["on", "--selector", SELECTOR, "--routes-limit", &limit]).await;
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("maintenance app \"maintenance-app\" in space \"dev\" would carry 10 routes")
            && refused.stderr.contains("Nothing was changed"),
        "says which maintenance app, how many routes and that nothing changed: {refused}"
    );
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());
    assert_eq!(every_dest(&w, &fleet), before);

    let names: Vec<&str> = fleet.iter().take(5).map(|m| m.name.as_str()).collect();
    let mut args = vec!["on"];
    args.extend(&names);
    args.extend(["--routes-limit", &limit]);
    w.run(&args).await.expect_code(0);
    for m in fleet.iter().take(5) {
        let to: Vec<String> = w.dests(&m.routes[0]).into_iter().map(|d| d.0).collect();
        assert_eq!(to, std::slice::from_ref(&w.maint_guid()), "{} switched", m.name);
    }
    let more = w.run(&["on", "--selector", SELECTOR, "--routes-limit", &limit]).await;
    more.expect_code(2);
    assert!(more.stderr.contains("It carries 5 routes now, so about 3 more fit"), "{more}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_too_large_for_one_maintenance_app_is_spread_over_a_pool_and_off_needs_only_the_records() {
    // As above: about 8 routes fit one maintenance app; 10 fit two. On the production profile
    // (three routers, CC's limiter), with Diego's limit shrunk to reach it with a few routes.
    const LIMIT: usize = 1400;
    let w =
        World::new(Setup { routes: 1, diego_routes_limit: Some(LIMIT), production: true, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 10, 1).await;
    let second = w.cf.add_app(&w.std.space, "maintenance-b");
    let process = MaintenanceProcess::start();
    w.cf.router.register(&second.guid, "web", vec![process.addr]);
    assert!(w.cf.router.wait_settled(Duration::from_secs(10)).await, "router settles");
    let before = every_dest(&w, &fleet);
    let limit = LIMIT.to_string();

    let one = w.run(&["on", "--selector", SELECTOR, "--routes-limit", &limit]).await;
    one.expect_code(2);
    assert!(one.stderr.contains("--maintenance-app, once each: the run has 1 now"), "says to add a pool: {one}");
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());

    let pool = ["--maintenance-app", "maintenance-app", "--maintenance-app", "maintenance-b"];
    let mut args = vec!["on", "--selector", SELECTOR, "--routes-limit", &limit, "--parallel", "4"];
    args.extend(pool);
    w.run(&args).await.expect_code(0);
    let maints = [w.maint_guid(), second.guid.clone()];
    let mut carried: BTreeMap<String, usize> = BTreeMap::new();
    for m in &fleet {
        let to: Vec<String> = w.dests(&m.routes[0]).into_iter().map(|d| d.0).collect();
        assert!(to.len() == 1 && maints.contains(&to[0]), "{}: to one of the pool: {to:?}", m.name);
        let (_, annotations) = w.switch_metadata(&m.routes[0]);
        let record: Value =
            serde_json::from_str(&annotations[&crate::switch_support::state_key(&m.guid)]).expect("record");
        assert_eq!(record["maintenance_app"], to[0].as_str(), "{}: the record names the one it went to", m.name);
        *carried.entry(to[0].clone()).or_default() += 1;
    }
    assert_eq!(carried.values().copied().collect::<Vec<_>>(), [5, 5], "spread evenly: {carried:?}");

    // `off` without any --maintenance-app: each record says where its route went.
    w.run(&["off", "--selector", SELECTOR]).await.expect_code(0);
    assert_eq!(every_dest(&w, &fleet), before, "restored exactly, maintenance-b gone from every route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_across_spaces_and_a_missing_name() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let missing = w.run(&["on", "shop", "nope", "nada"]).await;
    missing.expect_code(2);
    assert!(missing.stderr.contains("apps not found in org org / space dev: nope, nada"), "{missing}");
    let none = w.run(&["on", "--selector", "team=nobody"]).await;
    none.expect_code(2);
    assert!(none.stderr.contains("no app in org org / space dev matches the label selector"), "{none}");
    // An app in the other space, which has no maintenance app: refused before any change.
    w.cf.add_app(&w.std.other_space, "shop");
    let across = w.run(&["on", "shop", "--all-spaces"]).await;
    across.expect_code(2);
    assert!(across.stderr.contains("space \"other\""), "names the space without a maintenance app: {across}");
    assert!(w.cc_writes().is_empty(), "nothing was changed: {:?}", w.cc_writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_spaces_switches_each_app_to_its_own_spaces_maintenance_app() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    // A second `shop` in space `other`, with its own route and its own maintenance app.
    let other = w.cf.add_app(&w.std.other_space, "shop");
    let _servers = w.cf.serve_instances(&other.guid, "shop", "web", 1).await.expect("instances");
    let route = w.cf.add_route(&w.std.other_space, &w.std.domain, "shop-other", "");
    w.cf.map_route(&route, &other.guid, "web", 8080);
    let other_maint = w.cf.add_app(&w.std.other_space, "maintenance-app");
    let process = MaintenanceProcess::start();
    w.cf.router.register(&other_maint.guid, "web", vec![process.addr]);
    assert!(w.cf.router.wait_settled(Duration::from_secs(10)).await, "router settles");
    let (before, before_other) = (w.all_dests(), w.dests(&route));

    let on = w.run(&["on", "shop", "--all-spaces"]).await;
    on.expect_code(0);
    assert!(on.stdout.contains("dev/shop") && on.stdout.contains("other/shop"), "labels name the spaces: {on}");
    let to = |route: &str| w.dests(route).into_iter().map(|d| d.0).collect::<Vec<_>>();
    assert_eq!(to(&w.routes[0].guid), [w.maint_guid()], "dev's shop to dev's maintenance app");
    assert_eq!(to(&route), std::slice::from_ref(&other_maint.guid), "other's shop to other's maintenance app");

    w.run(&["off", "shop", "--all-spaces"]).await.expect_code(0);
    assert_eq!((w.all_dests(), w.dests(&route)), (before, before_other), "both restored");
}

/// Maintenance apps beside `maintenance-app` until `routes` fit by the capacity rule (three
/// quarters of Diego's 128 KiB at 124 bytes per route of the fleet: 792 each); their names
/// and processes.
async fn add_pool(w: &World, routes: usize) -> (Vec<String>, Vec<MaintenanceProcess>) {
    let per_route = 100 + "f-000-0.apps.example.com".len();
    let per_app = 128 * 1024 * 3 / 4 / per_route;
    let mut names = vec!["maintenance-app".to_owned()];
    let mut processes = Vec::new();
    for i in 1..routes.div_ceil(per_app) {
        let name = format!("maintenance-{i}");
        let app = w.cf.add_app(&w.std.space, &name);
        let process = MaintenanceProcess::start();
        w.cf.router.register(&app.guid, "web", vec![process.addr]);
        processes.push(process);
        names.push(name);
    }
    assert!(w.cf.wait_settled(Duration::from_secs(10)).await, "routers settle");
    (names, processes)
}

/// `--maintenance-app NAME` for each of `names`.
fn pool_flags(names: &[String]) -> Vec<&str> {
    names.iter().flat_map(|n| ["--maintenance-app", n.as_str()]).collect()
}

/// One row of the fleet benchmark: the command, requests, writes, 429s, wall time.
type BenchRow = (&'static str, usize, usize, usize, Duration);

/// `on` then `off` of the fleet by selector with `extra` flags, each CC request `latency` late and
/// CC's limiter at `rate`; a row each, once every route is checked restored.
async fn on_and_off_rows(
    w: &World,
    fleet: &[Member],
    (latency, rate): (Duration, &RateLimit),
    extra: &[&str],
) -> Vec<BenchRow> {
    let before = every_dest(w, fleet);
    w.cf.faults.set_latency(latency, Duration::ZERO);
    w.cf.faults.set_rate_limit(Some(rate.clone()));
    let mut rows = Vec::new();
    for command in ["on", "off"] {
        w.cf.faults.clear_log();
        let mut args = vec![command, "--selector", SELECTOR, "--parallel", "32"];
        args.extend(extra);
        let started = Instant::now();
        let run = w.spawn(&args).wait(Duration::from_secs(600)).await;
        let took = started.elapsed();
        run.expect_code(0);
        let log = w.cc_log();
        let limited = log.iter().filter(|r| r.status == 429).count();
        let writes = log.iter().filter(|r| r.method != Method::GET).count();
        rows.push((command, log.len(), writes, limited, took));
    }
    w.cf.faults.set_latency(Duration::ZERO, Duration::ZERO);
    w.cf.faults.set_rate_limit(None);
    assert_eq!(every_dest(w, fleet), before, "every route restored");
    rows
}

fn print_rows(title: &str, rows: &[BenchRow]) {
    println!();
    println!("{title}");
    println!("| | requests | writes | 429s | wall time | target |");
    println!("|---|---:|---:|---:|---:|---|");
    for (command, requests, writes, limited, took) in rows {
        let met = if took.as_secs_f64() <= 60.0 { "met" } else { "MISSED" };
        println!(
            "| switchctl {command} | {requests} | {writes} | {limited} | {:.1} s | ≤ 60 s: {met} |",
            took.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run bench/switchctl"]
async fn five_hundred_apps_on_and_off_requests_and_time() {
    const APPS: usize = 500;
    const ROUTES: usize = 2;
    let latency = Duration::from_millis(50);
    let rate = RateLimit::new(2000, Duration::from_secs(10));
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, APPS, ROUTES).await;
    // 1,000 routes are more than one maintenance app can carry under Diego's default limit.
    let (names, _processes) = add_pool(&w, APPS * ROUTES).await;
    let rows = on_and_off_rows(&w, &fleet, (latency, &rate), &pool_flags(&names)).await;
    print_rows(
        &format!(
            "{APPS} apps x {ROUTES} routes by selector, {} ms per CC request, rate limit {} per {} s, --parallel 32, \
             verified through the router double",
            latency.as_millis(),
            rate.limit,
            rate.reset_interval.as_secs()
        ),
        &rows,
    );
}

/// Issue 12's benchmark: the same fleet on the production profile (three routers with 50–500 ms
/// delays each, Diego's 128 KiB routes limit, CC's limiter over 4 instances), with CC's window
/// scaled from an hour to 10 s so that it binds within a run, 50 ms per CC request, and a pool
/// of maintenance apps sized by the capacity rule ([`add_pool`]: 2 for 1,000 routes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run bench/switchctl"]
async fn five_hundred_apps_on_the_production_profile() {
    const APPS: usize = 500;
    const ROUTES: usize = 2;
    let latency = Duration::from_millis(50);
    let rate = RateLimit::capi_default().instances(4).interval(Duration::from_secs(10));
    let w = World::new(Setup { routes: 1, production: true, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, APPS, ROUTES).await;
    let (names, _processes) = add_pool(&w, APPS * ROUTES).await;
    let pool = names.len();
    let rows = on_and_off_rows(&w, &fleet, (latency, &rate), &pool_flags(&names)).await;
    print_rows(
        &format!(
            "production profile: {APPS} apps x {ROUTES} routes by selector, 3 routers 50-500 ms, {} ms per CC \
             request, CC's limiter {} per {} s over 4 instances, a pool of {pool} maintenance apps, --parallel 32",
            latency.as_millis(),
            rate.limit,
            rate.reset_interval.as_secs()
        ),
        &rows,
    );
}
