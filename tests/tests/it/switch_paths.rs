//! `--except PATH` and `--only PATH`: a prefix kept on the app while its host route is in
//! maintenance, or a prefix alone taken down; under steady load, through the router double's
//! longest-prefix matching (gorouter `registry/container/trie.go`), and `off` gives back exactly
//! the route set it found (compared on the Cloud Controller's routes, not only `shop`'s).
//!
//! Request budget per path prefix, asserted below from the double's log: `on` 1 lookup
//! (`GET /v3/routes?…paths=…`), 1 route create and 1 destination insert; `off` 1 lookup and 1
//! route delete; plus, per app, 1 record write on `on` and 1 clear on `off` (`PATCH /v3/apps/…`).
//!
//! The router double registers a change 0–100 ms late, so `--except` runs get `--settle 1`: the
//! new path route must be on the routers before its host route switches (switchctl waits
//! `--settle` for that, paths.rs).

use std::{collections::BTreeSet, time::Duration};

use http::Method;
use tests::{Failure, Matcher};

use crate::switch_basic::answers_of as answers;
use crate::switch_fleet::add_fleet;
use crate::switch_support::{Answer, HttpRoute, Load, Setup, TempDir, World, tally, wait_for, waiting_command};

/// The app-level key of the path record (switchctl's `paths::PATHS_KEY`).
const PATHS_KEY: &str = "switchctl.cf-maintenance/paths";

/// `shop` with its host route `shop.apps.example.com` and `www.apps.example.com`, no path route.
async fn world() -> World {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let www = w.cf.add_route(&w.std.space, &w.std.domain, "www", "");
    w.cf.map_route(&www, &w.app.guid, "web", 8080);
    w
}

/// A route as compared: host, path, destinations (app, process, port).
type RouteEntry = (String, String, Vec<(String, String, Option<u16>)>);

/// Every route of the Cloud Controller: (host, path, destinations as app/process/port), sorted.
fn route_set(w: &World) -> BTreeSet<RouteEntry> {
    let st = w.cf.cc.state();
    st.routes
        .iter()
        .map(|r| {
            let mut d: Vec<_> =
                r.destinations.iter().map(|d| (d.app_guid.clone(), d.process_type.clone(), d.port)).collect();
            d.sort();
            (r.host.clone(), r.path.clone(), d)
        })
        .collect()
}

/// The path record on `shop`, if any.
fn record(w: &World) -> Option<serde_json::Value> {
    let st = w.cf.cc.state();
    let app = st.app(&w.app.guid).expect("shop");
    app.metadata.annotations.get(PATHS_KEY).map(|t| serde_json::from_str(t).expect("record is JSON"))
}

/// Traffic to `shop.apps.example.com` at `path`.
fn at(w: &World, path: &str) -> HttpRoute {
    HttpRoute { guid: w.routes[0].guid.clone(), host: w.routes[0].host.clone(), request_path: path.to_owned() }
}

/// Requests of the double's log matching `method` and a path containing `part`, and a query
/// containing `query`.
fn count(w: &World, method: &str, part: &str, query: &str) -> usize {
    w.cc_log()
        .iter()
        .filter(|r| r.method.as_str() == method && r.path.contains(part))
        .filter(|r| query.is_empty() || r.query.as_deref().is_some_and(|q| q.contains(query)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn except_keeps_a_prefix_on_the_app_under_load_and_off_restores_the_route_set_exactly() {
    let w = world().await;
    let before = route_set(&w);
    let router = w.cf.router_url();
    let hooks = Load::start(router.clone(), vec![at(&w, "/webhooks/x")], 50);
    let root = Load::start(router, vec![at(&w, "/")], 50);
    hooks.wait_more(10, Duration::from_secs(10)).await;

    let on = w.run(&["on", "shop", "--except", "/webhooks", "--settle", "1"]).await;
    on.expect_code(0);
    assert!(on.stdout.contains("Path route shop.apps.example.com/webhooks created"), "{on}");
    assert!(on.stdout.contains("Path route www.apps.example.com/webhooks created"), "{on}");
    assert_eq!(answers(&w, &at(&w, "/"), 5).await, vec![Answer::Maintenance; 5], "/ switched");
    assert_eq!(answers(&w, &at(&w, "/webhooks/x"), 5).await, vec![Answer::App; 5], "/webhooks stays");
    // A longer path that only starts with the prefix's letters is not under it (whole segments).
    assert_eq!(answers(&w, &at(&w, "/webhooksx"), 3).await, vec![Answer::Maintenance; 3]);
    let rec = record(&w).expect("the path record is on the app");
    assert_eq!(rec["role"], "except");
    assert_eq!(rec["routes"].as_array().map(Vec::len), Some(2));
    let on_log = w.cc_log().len();

    hooks.wait_more(10, Duration::from_secs(10)).await;
    let off = w.run(&["off", "shop", "--settle", "1"]).await;
    off.expect_code(0);
    assert!(
        off.stdout.contains("Path route shop.apps.example.com/webhooks (kept on the app (--except)) deleted"),
        "{off}"
    );
    hooks.wait_more(10, Duration::from_secs(10)).await;
    let hooks = hooks.stop().await;
    let root = root.stop().await;

    let t = tally(&hooks);
    assert_eq!(t.keys().copied().collect::<Vec<_>>(), vec![Answer::App], "/webhooks/x never left the app: {t:?}");
    let t = tally(&root);
    assert!(t.get(&Answer::Maintenance).copied().unwrap_or(0) > 0, "/ did switch: {t:?}");
    assert!(!t.contains_key(&Answer::NotFound) && !t.contains_key(&Answer::BadGateway), "{t:?}");
    assert_eq!(route_set(&w), before, "off restores the route set exactly");
    assert!(record(&w).is_none(), "the record is cleared");

    // The budget: per prefix and host route, one lookup, create and insert on `on`; one lookup
    // and delete on `off`; one record write and one clear. (`on` also inserts the maintenance
    // app on the 2 host routes, `off` deletes its destinations: not counted here.)
    let log = w.cc_log();
    let (on_part, off_part) = log.split_at(on_log);
    let n = |part: &[tests::faults::LoggedRequest], m: &str, route_only: bool, q: &str| {
        part.iter()
            .filter(|r| r.method.as_str() == m && r.path.starts_with("/v3/routes"))
            .filter(|r| !route_only || r.path.matches('/').count() <= 3)
            .filter(|r| r.query.as_deref().unwrap_or("").contains(q))
            .count()
    };
    assert_eq!(n(on_part, "GET", false, "paths=%2Fwebhooks"), 2, "on: lookups");
    assert_eq!(n(on_part, "POST", true, ""), 2, "on: creates");
    assert_eq!(n(on_part, "POST", false, ""), 2 + 2 + 2, "on: creates, path route inserts, host route inserts");
    assert_eq!(n(off_part, "GET", false, "paths=%2Fwebhooks"), 2, "off: lookups");
    assert_eq!(n(off_part, "DELETE", true, ""), 2, "off: route deletes");
    assert_eq!(count(&w, "PATCH", &format!("/v3/apps/{}", w.app.guid), ""), 2, "record written, then cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_takes_a_prefix_alone_down_under_load_and_off_restores_the_route_set_exactly() {
    let w = world().await;
    let before = route_set(&w);
    let router = w.cf.router_url();
    let checkout = Load::start(router.clone(), vec![at(&w, "/checkout/x")], 50);
    let root = Load::start(router, vec![at(&w, "/")], 50);
    root.wait_more(10, Duration::from_secs(10)).await;

    let on = w.run(&["on", "shop", "--only", "/checkout"]).await;
    on.expect_code(0);
    assert_eq!(answers(&w, &at(&w, "/checkout/x"), 5).await, vec![Answer::Maintenance; 5], "/checkout down");
    assert_eq!(answers(&w, &at(&w, "/"), 5).await, vec![Answer::App; 5], "/ stays on the app");
    assert_eq!(w.dests(&w.routes[0].guid).len(), 1, "the host route is untouched");
    let status = w.run(&["status", "shop"]).await;
    assert!(status.stdout.contains("only shop.apps.example.com/checkout (created by switchctl)"), "{status}");
    checkout.wait_more(20, Duration::from_secs(10)).await;

    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert_eq!(answers(&w, &at(&w, "/checkout/x"), 5).await, vec![Answer::App; 5], "/checkout back");
    root.wait_more(10, Duration::from_secs(10)).await;
    let checkout = checkout.stop().await;
    let root = root.stop().await;

    let t = tally(&root);
    assert_eq!(t.keys().copied().collect::<Vec<_>>(), vec![Answer::App], "/ never left the app: {t:?}");
    let t = tally(&checkout);
    assert!(t.get(&Answer::Maintenance).copied().unwrap_or(0) > 0, "/checkout went down: {t:?}");
    assert!(!t.contains_key(&Answer::NotFound) && !t.contains_key(&Answer::BadGateway), "{t:?}");
    assert!(!t.contains_key(&Answer::Other), "{t:?}");
    assert_eq!(route_set(&w), before, "off restores the route set exactly");
    assert!(record(&w).is_none());
}

/// In a fleet, one app whose `--except` path route cannot be made keeps its host routes (its
/// excepted paths would go down with them), while the others' windows open; `off` of the fleet
/// then restores the route set exactly. (Before, one app's failed path route kept every app of
/// the fleet out of maintenance.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_path_route_keeps_only_its_own_app_out_of_the_window() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 2, 1).await;
    let before = route_set(&w);
    // The first path route's creation fails (before CC commits it): f-000's, the first app.
    w.cf.faults.fail_next(Matcher::new(Method::POST, "/v3/routes"), Failure::Status500);
    let on = w.run(&["on", "--selector", "team=orders", "--except", "/webhooks"]).await;
    on.expect_code(1);
    let maint = w.maint_guid();
    let to = |route: &str| w.dests(route).into_iter().map(|d| d.0).collect::<Vec<_>>();
    assert_eq!(to(&fleet[0].routes[0]), [fleet[0].guid.clone()], "f-000 keeps its host route: {on}");
    assert_eq!(to(&fleet[1].routes[0]), [maint], "f-001's window opened: {on}");
    assert!(on.stderr.contains("f-000"), "the failure names the app: {on}");
    let webhooks: Vec<String> = {
        let st = w.cf.cc.state();
        st.routes.iter().filter(|r| r.path == "/webhooks").map(|r| r.host.clone()).collect()
    };
    assert_eq!(webhooks, ["f-001-0"], "only f-001's path route exists");

    w.run(&["off", "--selector", "team=orders"]).await.expect_code(0);
    assert_eq!(route_set(&w), before, "off restores the route set exactly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_except_window_is_restored_exactly_by_off() {
    let w = world().await;
    // A path route that existed before, with another app's destination: reused, never deleted.
    let other = w.cf.add_app(&w.std.space, "legal");
    let legal = w.cf.add_route(&w.std.space, &w.std.domain, "www", "/legal");
    w.cf.map_route(&legal, &other.guid, "web", 8080);
    let before = route_set(&w);
    let dir = TempDir::new("paths-kill");
    let command = waiting_command(dir.path());
    let mut args = vec!["run", "shop", "--except", "/legal", "--settle", "1", "--"];
    args.extend(command.iter().map(String::as_str));
    let mut job = w.spawn(&args);
    wait_for(&dir.path().join("started")).await;
    assert_eq!(answers(&w, &at(&w, "/legal/terms"), 3).await, vec![Answer::App; 3]);
    job.kill();
    let killed = job.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "killed: {killed}");
    std::fs::write(dir.path().join("release"), "").expect("release the orphaned command");
    let rec = record(&w).expect("the record survives");
    let created: Vec<bool> = rec["routes"].as_array().expect("routes").iter().map(|e| e["created"] == true).collect();
    assert_eq!(created, vec![true, false], "shop's /legal is switchctl's, www's existed: {rec}");

    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert!(off.stdout.contains("www.apps.example.com/legal existed before: left, 1 destination(s)"), "{off}");
    assert_eq!(route_set(&w), before, "exactly as before: {off}");
    assert!(record(&w).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_and_uncovered_path_routes_are_usage_errors_before_any_change() {
    let w = World::new(Setup { routes: 2, ..Setup::default() }).await;
    let before = route_set(&w);
    let both = w.run(&["on", "shop", "--except", "/a", "--only", "/b"]).await;
    both.expect_code(2);
    let relative = w.run(&["on", "shop", "--except", "webhooks"]).await;
    relative.expect_code(2);
    assert!(relative.stderr.contains("missing the beginning '/'"), "{relative}");
    w.run(&["on", "shop", "--only", "/"]).await.expect_code(2);
    w.run(&["on", "shop", "--only", "/a?b"]).await.expect_code(2);
    // `shop` has `shop.apps.example.com/api`, which --except /webhooks does not cover.
    let uncovered = w.run(&["on", "shop", "--except", "/webhooks"]).await;
    uncovered.expect_code(2);
    assert!(uncovered.stderr.contains("shop.apps.example.com/api"), "names the route: {uncovered}");
    assert_eq!(route_set(&w), before);
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());
    let help = w.run(&["on", "--help"]).await;
    let words = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("does not strip the prefix"), "{help}");
}
