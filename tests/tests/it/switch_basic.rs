//! `switchctl on / off / status` end to end: the real `switchctl` and `maintenance-app` binaries
//! against the double. Round trip with every kind of destination, skipped routes, idempotence,
//! `--dry-run`, preflight errors, `status` and `--json`.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::switch_support::{Answer, HttpRoute, Maint, Setup, World, state_key};

/// Adds an app `other` (two built-in instances) mapped to `shop`'s route `www`, and an http2
/// destination of `shop`'s web process on port 8443 to the route `shop…/api`; returns `other`'s
/// GUID and its servers (dropping them stops the instances).
async fn add_other_app_and_http2(w: &World) -> (String, Vec<tests::serve::Server>) {
    let other = w.cf.add_app_with(&w.std.space, "other", 2, true);
    let servers = w.cf.serve_instances(&other.guid, "other", "web", 2).await.expect("other instances");
    w.cf.map_route(&w.routes[2].guid, &other.guid, "web", 8080);
    let token = w.cf.bearer("developer").expect("developer");
    let body = json!({"destinations": [{"app": {"guid": w.app.guid}, "port": 8443, "protocol": "http2"}]});
    let url = format!("{}/v3/routes/{}/destinations", w.cf.api_url(), w.routes[1].guid);
    let reply = w.http.json(Method::POST, &url, Some(&token), &body).await.expect("CC answers");
    assert_eq!(reply.status, 200, "http2 destination added: {}", reply.text());
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    w.cf.faults.clear_log();
    (other.guid, servers)
}

/// What `n` requests to `route` got.
pub(crate) async fn answers_of(w: &World, route: &HttpRoute, n: usize) -> Vec<Answer> {
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(w.probe(route).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_and_off_restore_every_kind_of_destination_exactly() {
    let w = World::new(Setup { routes: 3, extra_routes: true, second_process: true, ..Setup::default() }).await;
    let (other, _servers) = add_other_app_and_http2(&w).await;
    let before = w.all_dests();
    let maint = w.maint_guid();

    let on = w.run(&["on", "shop"]).await;
    on.expect_code(0);
    for r in &w.routes {
        assert!(on.stdout.contains(&format!("Switching route {} to maintenance-app... OK", url_of(r))), "{on}");
    }
    assert!(on.stdout.contains("Skipping route shop.apps.internal: internal route"), "{on}");
    assert!(on.stdout.contains("Skipping route tcp.example.com:61001: TCP route"), "{on}");
    for r in &w.routes {
        let d = w.dests(&r.guid);
        assert!(d.iter().all(|x| x.0 != w.app.guid), "{}: shop is gone: {d:?}", r.host);
        assert_eq!(d.iter().filter(|x| x.0 == maint).count(), 1, "{}: one maintenance destination: {d:?}", r.host);
        let (labels, annotations) = w.switch_metadata(&r.guid);
        assert_eq!(labels.get(&state_key(&w.app.guid)).map(String::as_str), Some("on"));
        let record: Value = serde_json::from_str(&annotations[&state_key(&w.app.guid)]).expect("record is JSON");
        assert_eq!((record["v"].clone(), record["app_name"].clone()), (json!(1), json!("shop")), "{record}");
        assert_eq!(record["maintenance_app"], json!(maint), "{record}");
    }
    // The shared route keeps `other`; shop's routes answer from the maintenance app only.
    assert!(w.dests(&w.routes[2].guid).iter().any(|x| x.0 == other), "other is kept on www");
    for r in &w.routes[..2] {
        let got = answers_of(&w, r, 6).await;
        assert!(got.iter().all(|a| *a == Answer::Maintenance), "{}: {got:?}", r.host);
    }
    let record: Value =
        serde_json::from_str(&w.switch_metadata(&w.routes[1].guid).1[&state_key(&w.app.guid)]).expect("json");
    // CAPI lists destinations by GUID: compare as sets.
    let mut got: Vec<Value> = record["destinations"].as_array().cloned().unwrap_or_default();
    got.sort_by_key(ToString::to_string);
    let mut want = vec![
        json!({"process": "web", "port": 8080, "protocol": "http1"}),
        json!({"process": "web", "port": 8443, "protocol": "http2"}),
    ];
    want.sort_by_key(ToString::to_string);
    assert_eq!(got, want, "the record holds shop's destinations on /api with port and protocol");

    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert!(off.stdout.contains(&format!("Restoring route {} to shop... OK", url_of(&w.routes[0]))), "{off}");
    assert_eq!(w.all_dests(), before, "destinations restored exactly (app, process, port, protocol)");
    for r in &w.routes {
        let (labels, annotations) = w.switch_metadata(&r.guid);
        assert!(labels.is_empty() && annotations.is_empty(), "{}: no switchctl metadata left", r.host);
    }
    for r in &w.routes[..2] {
        let got = answers_of(&w, r, 6).await;
        assert!(got.iter().all(|a| *a == Answer::App), "{}: {got:?}", r.host);
    }
    // Nothing left to restore: a second `off` is a no-op.
    w.cf.faults.clear_log();
    w.run(&["off", "shop"]).await.expect_code(0);
    assert!(w.cc_writes().is_empty(), "off twice writes nothing: {:?}", w.cc_writes());
}

fn url_of(r: &HttpRoute) -> String {
    let path = r.request_path.strip_suffix("/items").unwrap_or("");
    format!("{}{}", r.host, if r.request_path == "/" { "" } else { path })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_twice_is_idempotent_and_json_reports_each_route() {
    let w = World::new(Setup { routes: 2, extra_routes: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let first = w.run(&["--json", "on", "shop"]).await;
    first.expect_code(0);
    let doc = first.report();
    assert_eq!(
        (doc["app"].clone(), doc["action"].clone(), doc["ok"].clone()),
        (json!("shop"), json!("on"), json!(true))
    );
    let routes = doc["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 4, "2 HTTP routes, 1 internal, 1 TCP: {doc}");
    let results: Vec<&str> = routes.iter().filter_map(|r| r["result"].as_str()).collect();
    assert_eq!(results.iter().filter(|r| **r == "switched").count(), 2, "{doc}");
    assert_eq!(results.iter().filter(|r| **r == "skipped").count(), 2, "{doc}");
    let switched = routes.iter().find(|r| r["result"] == "switched").expect("a switched route");
    assert_eq!(switched["destinations_removed"][0]["app"], json!(w.app.guid), "{switched}");
    assert_eq!(switched["destinations_added"][0]["app"], json!(w.maint_guid()), "{switched}");

    w.cf.faults.clear_log();
    let second = w.run(&["on", "shop"]).await;
    second.expect_code(0);
    assert!(second.stdout.contains("is already in maintenance"), "{second}");
    assert!(w.cc_writes().is_empty(), "the second on writes nothing: {:?}", w.cc_writes());
    w.assert_all_on(&before, "on twice").await;

    let off = w.run(&["--json", "off", "shop"]).await;
    off.expect_code(0);
    let doc = off.report();
    assert_eq!(doc["action"], "off");
    assert!(doc["routes"].as_array().is_some_and(|r| r.iter().all(|r| r["result"] == "restored")), "{doc}");
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shows_the_plan_and_only_reads() {
    let w = World::new(Setup { routes: 2, second_process: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let plan = w.run(&["--json", "on", "shop", "--dry-run"]).await;
    plan.expect_code(0);
    let writes: Vec<String> =
        w.cc_log().iter().filter(|r| r.method != Method::GET).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(writes.is_empty(), "only GETs: {writes:?}");
    assert_eq!(w.all_dests(), before);
    let doc = plan.report();
    assert_eq!(doc["dry_run"], true, "{doc}");
    let first = doc["routes"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["route_guid"] == json!(w.routes[0].guid)))
        .expect("the first route is planned");
    assert_eq!(first["destinations_removed"].as_array().map(Vec::len), Some(2), "web and admin: {first}");
    assert_eq!(first["destinations_added"][0]["app_name"], "maintenance-app", "{first}");
    let key = state_key(&w.app.guid);
    assert_eq!(first["metadata"]["labels"][&key], "on", "{first}");
    assert!(first["metadata"]["annotations"][&key].as_str().is_some_and(|a| a.contains("\"port\":9000")), "{first}");

    let text = w.run(&["on", "shop", "--dry-run"]).await;
    text.expect_code(0);
    assert!(text.stdout.contains("Would switch route shop.apps.example.com to maintenance-app"), "{text}");
    assert!(text.stdout.contains("Dry run, nothing changed"), "{text}");
    assert!(w.cc_writes().is_empty(), "{:?}", w.cc_writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_errors_change_nothing() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let run = w.run(&["on", "nope"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("app \"nope\" not found") && run.stderr.contains("cf apps"), "{run}");
    let run = w.run(&["on", "shop", "--maintenance-app", "closed-sign"]).await;
    run.expect_code(2);
    assert!(
        run.stderr.contains("maintenance app \"closed-sign\" not found") && run.stderr.contains("cf push"),
        "{run}"
    );
    let run = w.run(&["on", "maintenance-app"]).await;
    run.expect_code(2);
    assert!(w.cc_writes().is_empty(), "{:?}", w.cc_writes());

    let stopped = World::new(Setup { routes: 1, maint: Maint::Stopped, ..Setup::default() }).await;
    let before = stopped.all_dests();
    let run = stopped.run(&["on", "shop"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("it is STOPPED") && run.stderr.contains("cf start maintenance-app"), "{run}");
    assert!(stopped.cc_writes().is_empty(), "{:?}", stopped.cc_writes());
    assert_eq!(stopped.all_dests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_destinations_answers_since_and_problems() {
    let w = World::new(Setup { routes: 2, ..Setup::default() }).await;
    let via = w.probe_via();
    let run = w.run(&["status", "shop", "--probe-via", &via]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("answered by:   the app (HTTP 200)"), "{run}");
    assert!(run.stdout.contains("maintenance:   no"), "{run}");

    w.run(&["on", "shop"]).await.expect_code(0);
    let run = w.run(&["status", "shop", "--probe-via", &via]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("destinations:  maintenance-app web:8080 http1"), "{run}");
    assert!(run.stdout.contains("answered by:   the maintenance app"), "{run}");
    assert!(run.stdout.contains("maintenance:   shop since 20"), "{run}");
    assert!(!run.stdout.contains("PROBLEM"), "{run}");

    // A maintenance destination without a label, and a label with shop still mapped.
    let stray = w.cf.add_route(&w.std.space, &w.std.domain, "stray", "");
    w.cf.map_route(&stray, &w.maint_guid(), "web", 8080);
    w.cf.map_route(&w.routes[0].guid, &w.app.guid, "web", 8080);
    let run = w.run(&["--json", "status", "--probe-via", &via]).await;
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["ok"], false, "{doc}");
    let routes = doc["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 3, "every labelled route and the stray one: {doc}");
    let problems = |guid: &str| -> String {
        routes.iter().find(|r| r["route_guid"] == json!(guid)).map(|r| r["problems"].to_string()).unwrap_or_default()
    };
    assert!(problems(&stray).contains("no switchctl record"), "{doc}");
    assert!(problems(&stray).contains(&format!("cf curl -X DELETE /v3/routes/{stray}/destinations/")), "{doc}");
    assert!(problems(&w.routes[0].guid).contains("shop and the maintenance app both serve the route"), "{doc}");
    assert_eq!(problems(&w.routes[1].guid), "[]", "{doc}");
    let since = routes
        .iter()
        .find(|r| r["route_guid"] == json!(w.routes[1].guid))
        .map(|r| r["maintenance"][0]["since"].clone());
    assert!(since.is_some_and(|s| s.as_str().is_some_and(|s| s.ends_with('Z'))), "{doc}");
}
