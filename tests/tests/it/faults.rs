//! Faults on demand: failures, dropped connections, latency, CC's rate limit, pauses, the log.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use tests::{Failure, Matcher, PausePoint, RateLimit};

use crate::common::{Env, assert_error, destinations};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nth_matching_request_fails_as_asked() {
    let env = Env::new().await;
    let apps = Matcher::new(Method::GET, "/v3/apps");
    env.cf.faults.fail_nth(apps.clone(), 2, Failure::Status503);
    assert_eq!(env.get("/v3/apps").await.status, 200);
    assert_error(&env.get("/v3/apps").await, "503-CF-ServiceUnavailable-db");
    assert_eq!(env.get("/v3/apps").await.status, 200);
    env.cf.faults.fail_next(apps.clone(), Failure::Status500);
    assert_error(&env.get("/v3/apps").await, "500-UnknownError");
    env.cf.faults.fail_next(apps.clone(), Failure::Status502);
    let bad_gateway = env.get("/v3/apps").await;
    assert_eq!(bad_gateway.status, 502);
    assert!(bad_gateway.text().starts_with("502 Bad Gateway"));
    env.cf.faults.fail_next(apps.clone(), Failure::Drop);
    let dropped = env.http.get(&env.url("/v3/apps"), Some(&env.dev)).await;
    assert!(dropped.is_err(), "connection closed without an answer: {dropped:?}");
    assert_eq!(env.get("/v3/apps").await.status, 200);

    let log = env.cf.faults.log();
    let statuses: Vec<u16> = log.iter().filter(|r| r.path == "/v3/apps").map(|r| r.status).collect();
    assert_eq!(statuses, [200, 503, 200, 500, 502, 0, 200]);
    assert_eq!(env.cf.faults.count(&apps), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_method_path_query_body_and_status() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.faults.clear_log();
    env.get("/v3/routes?hosts=shop").await;
    env.send(Method::POST, &format!("/v3/routes/{route}/destinations"), &destinations(&[&a.guid])).await;
    let log = env.cf.faults.log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.clone(), log[0].path.as_str(), log[0].query.as_deref(), log[0].status),
        (Method::GET, "/v3/routes", Some("hosts=shop"), 200)
    );
    assert_eq!(serde_json::from_str::<serde_json::Value>(&log[1].body).ok(), Some(destinations(&[&a.guid])));
    assert_eq!((log[1].service, log[1].status), ("cc", 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_fixed_plus_jitter() {
    let env = Env::new().await;
    env.cf.faults.set_latency(Duration::from_millis(100), Duration::from_millis(50));
    let started = Instant::now();
    env.get("/v3/apps").await;
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(1000), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_cc_headers_and_body() {
    let env = Env::new().await;
    let rate = RateLimit { unauthenticated_limit: 3, ..RateLimit::new(3, Duration::from_secs(60)) };
    env.cf.faults.set_rate_limit(Some(rate));
    // CC's estimate floors to tenths of the limit: 2/3 left reads 0.6 * 3 = 1, 1/3 reads 0.
    for remaining in ["1", "0", "0"] {
        let ok = env.get("/v3/apps").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(remaining));
    }
    let limited = env.get("/v3/apps").await;
    assert_error(&limited, "429-CF-RateLimitExceeded");
    assert_eq!(limited.header("content-type"), Some("text/plain; charset=utf-8"));
    let retry: u64 = limited.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(limited.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    let reset: i64 = limited.header("x-ratelimit-reset").and_then(|v| v.parse().ok()).expect("reset");
    assert!(reset >= tests::clock::unix_now());
    // Roots are exempt; an invalid token gets 401 rather than 429; no token is counted per IP.
    assert_eq!(env.http.get(&env.url("/v3"), None).await.expect("answer").status, 200);
    assert_error(&env.get_as("/v3/apps", "bearer nope").await, "401-CF-InvalidAuthToken");
    for _ in 0..3 {
        env.http.get(&env.url("/v3/apps"), None).await.expect("answer");
    }
    let ip = env.http.get(&env.url("/v3/apps"), None).await.expect("answer");
    assert_error(&ip, "429-CF-IPBasedRateLimitExceeded");

    env.cf.faults.set_rate_limit(None);
    env.cf.faults.fail_next(Matcher::any_method("/v3/**"), Failure::RateLimited { retry_after: 7 });
    let once = env.get("/v3/spaces").await;
    assert_error(&once, "429-CF-RateLimitExceeded");
    assert_eq!(once.header("retry-after"), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_request_waits_until_released() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let pause = env.cf.faults.pause(Matcher::new(Method::POST, "/v3/routes/*/destinations"), PausePoint::Before);
    let url = env.url(&format!("/v3/routes/{route}/destinations"));
    let (http, dev, body) = (env.http.clone(), env.dev.clone(), destinations(&[&a.guid]));
    let request = tokio::spawn(async move { http.json(Method::POST, &url, Some(&dev), &body).await });
    assert!(pause.wait_held(1, Duration::from_secs(5)).await, "request reached the pause");
    assert!(env.cf.cc.state().route(&route).is_some_and(|r| r.destinations.is_empty()), "nothing applied while held");
    assert!(!request.is_finished());
    // Other requests are not held.
    assert_eq!(env.get(&format!("/v3/routes/{route}/destinations")).await.json()["destinations"], json!([]));
    pause.release();
    let reply =
        tokio::time::timeout(Duration::from_secs(5), request).await.expect("released").expect("task").expect("answer");
    assert_eq!(reply.status, 200);
    assert_eq!(env.cf.cc.state().route(&route).map(|r| r.destinations.len()), Some(1));
    assert_eq!(pause.held(), 1);

    // After the handler: the change is visible while the answer is held.
    let after = env.cf.faults.pause(Matcher::new(Method::PATCH, "/v3/routes/*/destinations"), PausePoint::After);
    let url = env.url(&format!("/v3/routes/{route}/destinations"));
    let (http, dev) = (env.http.clone(), env.dev.clone());
    let request =
        tokio::spawn(async move { http.json(Method::PATCH, &url, Some(&dev), &json!({ "destinations": [] })).await });
    assert!(after.wait_held(1, Duration::from_secs(5)).await);
    assert_eq!(env.cf.cc.state().route(&route).map(|r| r.destinations.len()), Some(0));
    after.release();
    let reply =
        tokio::time::timeout(Duration::from_secs(5), request).await.expect("released").expect("task").expect("answer");
    assert_eq!(reply.status, 200);
}
