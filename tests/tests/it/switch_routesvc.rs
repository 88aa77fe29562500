//! `switchctl on / off` for routes a plain probe cannot verify: a route bound to a route service
//! (an SSO that answers with its login redirect, or a service that passes requests on) and a route
//! on a domain enforcing route policies. Each is switched and restored exactly, reported with how
//! it was checked (`reach`), and never ends in a timeout with both apps mapped.

use std::time::Duration;

use http::Method;
use serde_json::Value;
use tests::route_service::Behaviour;

use crate::switch_support::{Answer, Setup, World};

/// The `route` event of `url` in a `--json` run.
fn route_event(run: &crate::switch_support::Run, url: &str) -> Value {
    run.events()
        .into_iter()
        .find(|e| e["event"] == "route" && e["route"]["url"] == url)
        .map(|e| e["route"].clone())
        .unwrap_or_else(|| panic!("no route event for {url}: {run}"))
}

/// What the route at `host` answers through the router with an SSO session cookie.
async fn with_session(w: &World, host: &str) -> Answer {
    let url = format!("{}/", w.cf.router_url());
    let reply = w.http.send(Method::GET, &url, &[("host", host), ("cookie", "session=s1")], None).await.ok();
    match reply {
        Some(r) if r.header("x-maintenance-app") == Some("cf-maintenance") => Answer::Maintenance,
        Some(r) if r.status == 200 && r.header("x-backend").is_some_and(|b| b.starts_with("shop/")) => Answer::App,
        _ => Answer::Other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_behind_an_sso_route_service_is_switched_and_reported_not_verified_without_a_timeout() {
    let w = World::new(Setup { routes: 2, production: true, ..Setup::default() }).await;
    let sso = w.cf.start_route_service(Behaviour::Sso).await.expect("sso starts");
    let bound = &w.routes[0];
    w.cf.bind_route_service(&bound.guid, "corp-sso", &sso.url());
    let before = w.all_dests();
    let maint = w.maint_guid();

    let plan = w.run(&["on", "shop", "--dry-run"]).await;
    plan.expect_code(0);
    assert!(
        plan.stdout.lines().any(|l| l.starts_with("Would switch route shop.apps.example.com to")
            && l.contains("bound to route service corp-sso")),
        "the plan lists the bound route: {plan}"
    );

    w.cf.faults.clear_log();
    let on = w.run(&["--json", "on", "shop", "--settle", "1", "--timeout", "20"]).await;
    on.expect_code(0);
    assert!(on.took < Duration::from_secs(15), "no wait for the timeout: {:?}", on.took);
    let event = route_event(&on, "shop.apps.example.com");
    assert_eq!(
        (event["result"].clone(), event["state"].clone()),
        ("switched".into(), "maintenance_only".into()),
        "{event}"
    );
    assert_eq!(event["reach"]["kind"], "route_service", "{event}");
    assert_eq!(event["reach"]["service"]["name"], "corp-sso", "{event}");
    assert_eq!(event["reach"]["through"]["result"], "answered_itself", "{event}");
    assert!(event["reach"]["through"]["last"].as_str().is_some_and(|l| l.contains("302")), "{event}");
    let plain = route_event(&on, "shop.apps.example.com/api");
    assert!(plain.get("reach").is_none(), "the plain route is verified as usual: {plain}");
    // One bindings request for both routes, not one per route.
    let lists: Vec<_> = w.cc_log().into_iter().filter(|r| r.path == "/v3/service_route_bindings").collect();
    assert_eq!(lists.len(), 1, "{lists:?}");
    let query = lists[0].query.clone().unwrap_or_default();
    assert!(w.routes.iter().all(|r| query.contains(&r.guid)), "route_guids of both routes: {query}");

    assert_eq!(w.dests(&bound.guid).iter().map(|d| d.0.clone()).collect::<Vec<_>>(), [maint.as_str()]);
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await);
    assert_eq!(with_session(&w, &bound.host).await, Answer::Maintenance, "behind the SSO, the page answers");
    assert_eq!(w.probe(&w.routes[1]).await, Answer::Maintenance);

    let off = w.run(&["--json", "off", "shop", "--settle", "1", "--timeout", "20"]).await;
    off.expect_code(0);
    assert!(off.took < Duration::from_secs(15), "no wait for the timeout: {:?}", off.took);
    let event = route_event(&off, "shop.apps.example.com");
    assert_eq!(event["result"], "restored", "{event}");
    assert_eq!(event["reach"]["through"]["result"], "answered_itself", "{event}");
    assert_eq!(w.all_dests(), before, "destinations restored exactly");
    assert!(w.routes.iter().all(|r| w.switch_metadata(&r.guid).0.is_empty()), "no label left");
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await);
    assert_eq!(with_session(&w, &bound.host).await, Answer::App);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_behind_a_passing_route_service_is_verified_through_it() {
    let w = World::new(Setup { routes: 2, production: true, ..Setup::default() }).await;
    let proxy = w.cf.start_route_service(Behaviour::Proxy).await.expect("proxy starts");
    w.cf.bind_route_service(&w.routes[0].guid, "logger", &proxy.url());
    let before = w.all_dests();

    let on = w.run(&["--json", "on", "shop", "--settle", "1"]).await;
    on.expect_code(0);
    let event = route_event(&on, "shop.apps.example.com");
    assert_eq!(event["reach"]["through"]["result"], "passed_on", "{event}");
    w.assert_all_on(&before, "after on").await;

    let off = w.run(&["--json", "off", "shop", "--settle", "1"]).await;
    off.expect_code(0);
    let event = route_event(&off, "shop.apps.example.com");
    assert_eq!(event["reach"]["through"]["result"], "passed_on", "{event}");
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_on_a_route_policy_domain_is_switched_and_reported_as_not_probed() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let domain = w.cf.add_policy_domain("apps.identity", "space");
    let route = w.cf.add_route(&w.std.space, &domain, "shop", "");
    w.cf.map_route(&route, &w.app.guid, "web", 8080);
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await);
    let before = w.dests(&route);
    let maint = w.maint_guid();

    let on = w.run(&["--json", "on", "shop", "--settle", "1", "--timeout", "5"]).await;
    on.expect_code(0);
    let event = route_event(&on, "shop.apps.identity");
    assert_eq!(
        (event["result"].clone(), event["state"].clone()),
        ("switched".into(), "maintenance_only".into()),
        "{event}"
    );
    assert_eq!(event["reach"]["kind"], "route_policies", "{event}");
    assert_eq!(event["reach"]["domain"], "apps.identity", "{event}");
    assert_eq!(w.dests(&route).iter().map(|d| d.0.clone()).collect::<Vec<_>>(), [maint]);
    let text = w.run(&["off", "shop", "--settle", "1", "--timeout", "5"]).await;
    text.expect_code(0);
    assert!(
        text.stdout
            .contains("Restoring route shop.apps.identity to shop... OK (domain apps.identity enforces route policies"),
        "{text}"
    );
    assert_eq!(w.dests(&route), before, "restored exactly");
    assert!(w.switch_metadata(&route).0.is_empty(), "no label left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_does_not_probe_a_route_on_a_route_policy_domain() {
    let w = World::new(Setup { routes: 1, ..Setup::default() }).await;
    let domain = w.cf.add_policy_domain("apps.identity", "any");
    let route = w.cf.add_route(&w.std.space, &domain, "shop", "");
    w.cf.map_route(&route, &w.app.guid, "web", 8080);
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await);
    let status = w.run(&["--json", "status", "shop"]).await;
    status.expect_code(0);
    let doc = status.json();
    let policy = doc["routes"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["url"] == "shop.apps.identity"))
        .cloned()
        .unwrap_or_else(|| panic!("the route is listed: {doc}"));
    assert_eq!(policy["answered_by"], "not probed", "{policy}");
}
