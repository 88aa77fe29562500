//! The gorouter double: host and path routing, round robin, gorouter's 404 and 502, and the delay
//! model. With per-change delays of 0–500 ms, a one-call replace of app A by app B under steady
//! load yields 404s (the unmap of A can land before the map of B), while add-B / wait until B
//! answers / remove-A yields none.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use http::Method;
use serde_json::json;
use tests::{Options, client::Http};

use crate::common::{Env, destinations};

async fn through_router(env: &Env, host: &str, path: &str) -> tests::client::Reply {
    let url = format!("{}{path}", env.cf.router_url());
    env.http.send(Method::GET, &url, &[("host", host)], None).await.expect("router answers")
}

/// The backends (`x-backend`) that answer `n` requests to `shop.apps.example.com/`, sorted.
async fn backends(env: &Env, n: usize) -> Vec<String> {
    let mut served = Vec::new();
    for _ in 0..n {
        let reply = through_router(env, "shop.apps.example.com", "/").await;
        served.push(reply.header("x-backend").unwrap_or("").to_owned());
    }
    served.sort();
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_longest_path_round_robin_with_gorouter_errors() {
    let env = Env::with(Options { router_delay: (Duration::ZERO, Duration::ZERO), ..Options::default() }).await;
    let web = env.cf.add_app_with(&env.std.space, "web", 2, true);
    let api = env.cf.add_app(&env.std.space, "api");
    let root = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let api_route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "/api");
    env.cf.map_route(&root, &web.guid, "web", 8080);
    env.cf.map_route(&api_route, &api.guid, "web", 8080);
    let _web = env.cf.serve_instances(&web.guid, "web", "web", 2).await.expect("backends");
    let api_servers = env.cf.serve_instances(&api.guid, "api", "web", 1).await.expect("backends");
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);

    let served = backends(&env, 4).await;
    assert_eq!(served, ["web/0", "web/0", "web/1", "web/1"], "round robin over both instances");
    let api_reply = through_router(&env, "SHOP.apps.example.com:80", "/api/v1?x=1").await;
    assert_eq!(api_reply.header("x-backend"), Some("api/0"));
    assert_eq!(
        through_router(&env, "shop.apps.example.com", "/apiary")
            .await
            .header("x-backend")
            .map(|b| b.starts_with("web")),
        Some(true)
    );

    let unknown = through_router(&env, "nope.apps.example.com", "/").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text(), "404 Not Found: Requested route ('nope.apps.example.com') does not exist.\n");
    assert_eq!(unknown.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(unknown.header("x-cf-routererror"), Some("unknown_route"));

    drop(api_servers);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let dead = through_router(&env, "shop.apps.example.com", "/api").await;
    assert_eq!(dead.status, 502, "{}", dead.text());
    // proxy/round_tripper/error_handler.go appends the dial error: `endpoint_failure (…)`.
    assert!(dead.header("x-cf-routererror").is_some_and(|h| h.starts_with("endpoint_failure (")));

    let stop = env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", web.guid), &json!({})).await;
    assert_eq!(stop.status, 200);
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    // Gorouter keeps the emptied pool and answers 503 no_endpoints (handlers/lookup.go).
    let stopped = through_router(&env, "shop.apps.example.com", "/").await;
    assert_eq!(stopped.status, 503, "no running instance: no endpoint");
    assert_eq!(stopped.header("x-cf-routererror"), Some("no_endpoints"));
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    a: u64,
    b: u64,
    /// The route had nobody: gorouter's 404 unknown_route or 503 no_endpoints.
    not_found: u64,
    bad_gateway: u64,
    other: u64,
}

/// Sends GETs through the router one after another (≤ 1 every 2 ms) until `stop`, at most
/// 20 000 requests or 60 s.
fn steady_load(router: String, host: &'static str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Counts> {
    tokio::spawn(async move {
        let http = Http::new();
        let mut c = Counts::default();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for _ in 0..20_000 {
            if stop.load(Ordering::Relaxed) || tokio::time::Instant::now() > deadline {
                break;
            }
            match http.send(Method::GET, &format!("{router}/"), &[("host", host)], None).await {
                Ok(r) if r.status == 200 && r.header("x-backend") == Some("a/0") => c.a += 1,
                Ok(r) if r.status == 200 && r.header("x-backend") == Some("b/0") => c.b += 1,
                Ok(r)
                    if r.status == 404 || (r.status == 503 && r.header("x-cf-routererror") == Some("no_endpoints")) =>
                {
                    c.not_found += 1
                }
                Ok(r) if r.status == 502 => c.bad_gateway += 1,
                _ => c.other += 1,
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        c
    })
}

async fn destination_of(env: &Env, route: &str, app: &str) -> Option<String> {
    let list = env.get(&format!("/v3/routes/{route}/destinations?app_guids={app}")).await.json();
    list["destinations"][0]["guid"].as_str().map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_replace_drops_requests_but_make_before_break_does_not() {
    const SWAPS: usize = 12;
    // Each one-call swap exposes a gap only when the removal reaches the router before the
    // addition (about half the time): 24 swaps make "no 404 at all" a one-in-16-million event.
    const REPLACES: usize = 24;
    let env =
        Env::with(Options { router_delay: (Duration::ZERO, Duration::from_millis(500)), ..Options::default() }).await;
    let a = env.cf.add_app(&env.std.space, "a");
    let b = env.cf.add_app(&env.std.space, "b");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&route, &a.guid, "web", 8080);
    let _a = env.cf.serve_instances(&a.guid, "a", "web", 1).await.expect("backends");
    let _b = env.cf.serve_instances(&b.guid, "b", "web", 1).await.expect("backends");
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    let path = format!("/v3/routes/{route}/destinations");

    // 1. One PATCH per swap: CC is atomic, the router is not.
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(env.cf.router_url(), "shop.apps.example.com", Arc::clone(&stop));
    let mut current = &a;
    for i in 0..REPLACES {
        let next = if i % 2 == 0 { &b } else { &a };
        let r = env.send(Method::PATCH, &path, &destinations(&[&next.guid])).await;
        assert_eq!(r.status, 200);
        assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
        current = next;
    }
    stop.store(true, Ordering::Relaxed);
    let replace = load.await.expect("load task");
    let _ = current;

    // 2. Make before break: add the new app, wait until it answers, then remove the old one.
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(env.cf.router_url(), "shop.apps.example.com", Arc::clone(&stop));
    for i in 0..SWAPS {
        let (old, new, tag) = if i % 2 == 0 { (&a, &b, "b/0") } else { (&b, &a, "a/0") };
        let r = env.send(Method::POST, &path, &destinations(&[&new.guid])).await;
        assert_eq!(r.status, 200);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let reply = through_router(&env, "shop.apps.example.com", "/").await;
            if reply.header("x-backend") == Some(tag) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "new app never answered");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let old_dest = destination_of(&env, &route, &old.guid).await.expect("old destination");
        let url = env.url(&format!("{path}/{old_dest}"));
        let del = env.http.send(Method::DELETE, &url, &[("authorization", &env.dev)], None).await.expect("answer");
        assert_eq!(del.status, 204);
        assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    }
    stop.store(true, Ordering::Relaxed);
    let mbb = load.await.expect("load task");

    println!("router delay 0-500 ms, steady load");
    println!("one-call replace, {REPLACES} swaps:    {replace:?}");
    println!("make-before-break, {SWAPS} swaps:   {mbb:?}");
    assert!(replace.not_found > 0, "a one-call replace should expose a window with no route: {replace:?}");
    assert_eq!(mbb.not_found, 0, "make-before-break never leaves the route empty: {mbb:?}");
    assert_eq!((replace.bad_gateway, mbb.bad_gateway, replace.other, mbb.other), (0, 0, 0, 0));
    assert!(mbb.a > 0 && mbb.b > 0 && replace.a > 0 && replace.b > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_failing_readiness_get_no_traffic() {
    let env = Env::with(Options { router_delay: (Duration::ZERO, Duration::ZERO), ..Options::default() }).await;
    let web = env.cf.add_app_with(&env.std.space, "web", 2, true);
    let root = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&root, &web.guid, "web", 8080);
    let _web = env.cf.serve_instances(&web.guid, "web", "web", 2).await.expect("backends");
    // Instance 0 fails its readiness check: the route emitter unregisters it, instance 1 serves.
    env.cf.set_unready(&web.web_process, 1);
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    let served = backends(&env, 4).await;
    assert_eq!(served, ["web/1"; 4], "only the ready instance");
    env.cf.set_unready(&web.web_process, 0);
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    let served = backends(&env, 4).await;
    assert_eq!(served, ["web/0", "web/0", "web/1", "web/1"], "both again once ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_routers_behind_a_balancer_get_whole_connections_and_tables_of_their_own() {
    let env = Env::with(Options {
        router_delay: (Duration::ZERO, Duration::ZERO),
        routers: 3,
        balance: tests::Balance::RoundRobin,
        ..Options::default()
    })
    .await;
    let web = env.cf.add_app_with(&env.std.space, "web", 2, true);
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&route, &web.guid, "web", 8080);
    let servers = env.cf.serve_instances(&web.guid, "web", "web", 2).await.expect("backends");
    assert!(env.cf.wait_settled(Duration::from_secs(2)).await);
    let mut addrs: Vec<_> = servers.iter().map(tests::serve::Server::addr).collect();
    addrs.sort();
    for router in env.cf.routers() {
        let mut e = router.endpoints_for("shop.apps.example.com", "/");
        e.sort();
        assert_eq!(e, addrs, "every router got the registration");
    }
    let url = format!("{}/", env.cf.router_url());
    let fresh = Http::fresh();
    for _ in 0..6 {
        let r = fresh.send(Method::GET, &url, &[("host", "shop.apps.example.com")], None).await.expect("answer");
        assert_eq!(r.status, 200);
    }
    assert_eq!(env.cf.router_connections(), Some(vec![2, 2, 2]), "one connection per request, round robin");
    // Two requests on one connection: one connection handed to one router, both answered.
    let mut conn = tokio::net::TcpStream::connect(env.cf.router_addr()).await.expect("connect");
    let get = "GET / HTTP/1.1\r\nhost: shop.apps.example.com\r\n\r\n";
    let last = "GET / HTTP/1.1\r\nhost: shop.apps.example.com\r\nconnection: close\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut conn, format!("{get}{last}").as_bytes()).await.expect("write");
    let mut answers = String::new();
    let read = tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut answers);
    tokio::time::timeout(Duration::from_secs(5), read).await.expect("answered in time").expect("read");
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    assert_eq!(env.cf.router_connections(), Some(vec![3, 2, 2]), "two requests, one connection");
    let hosts: Vec<usize> = env.cf.routers().iter().map(|r| r.hosts_seen().len()).collect();
    assert_eq!(hosts, [1, 1, 1]);
}
