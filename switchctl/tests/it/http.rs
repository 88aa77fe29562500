//! HTTP discipline of the CAPI client: pagination, retries, rate limits, error display, bodies.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::RawQuery,
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use switchctl::{
    Client, Error, Session,
    capi::{MetadataPatch, NewDestination},
};
use tokio::io::AsyncReadExt;

use crate::support::*;

const APP_GUID: &str = "1cb006ee-fb05-47e1-b541-c34179ddc446";

/// A logged-in client for the mock at `api` (token valid for an hour).
async fn client_for(api: &str) -> (Client, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), api, &format!("bearer {}", jwt(3600, "u")), |_| {});
    let session = Session::connect(options(home.path())).await.expect("session");
    (session.client().clone(), home)
}

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A handler answering `answers[n]` to the n-th call (the last one from then on).
fn sequence(
    calls: Arc<AtomicUsize>,
    answers: Vec<fn() -> Response>,
) -> impl Fn() -> std::future::Ready<Response> + Clone {
    move || {
        let n = calls.fetch_add(1, Ordering::SeqCst);
        let answer = answers.get(n).or(answers.last()).expect("answers");
        std::future::ready(answer())
    }
}

fn app() -> Response {
    json(200, shared("cc-docs-examples/apps__single_app.json"))
}

fn route_json(guid: &str, host: &str) -> serde_json::Value {
    let mut route: serde_json::Value =
        serde_json::from_str(&shared("cc-docs-examples/routes__single_route.json")).expect("route json");
    route["guid"] = guid.into();
    route["host"] = host.into();
    route
}

#[tokio::test]
async fn lists_follow_pagination_next_across_all_pages() {
    let queries = log();
    let q = queries.clone();
    let router = Router::new().route(
        "/v3/apps/{guid}/routes",
        get(move |headers: HeaderMap, RawQuery(query): RawQuery| {
            let q = q.clone();
            async move {
                let query = query.unwrap_or_default();
                record(&q, query.clone());
                let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default().to_owned();
                let page: usize = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("page="))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let next = (page < 3).then(|| {
                    serde_json::json!({"href": format!("http://{host}/v3/apps/{APP_GUID}/routes?page={}&per_page=2", page + 1)})
                });
                let resources: Vec<_> =
                    (0..2).map(|i| route_json(&format!("route-{page}-{i}"), &format!("h{page}{i}"))).collect();
                let body = serde_json::json!({
                    "pagination": {"total_results": 6, "total_pages": 3, "next": next, "previous": null},
                    "resources": resources,
                });
                json(200, body.to_string())
            }
        }),
    );
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let routes = client.app_routes(APP_GUID).await.expect("routes");

    let guids: Vec<_> = routes.iter().map(|r| r.guid.as_str()).collect();
    assert_eq!(guids, ["route-1-0", "route-1-1", "route-2-0", "route-2-1", "route-3-0", "route-3-1"]);
    assert_eq!(seen(&queries), ["per_page=500", "page=2&per_page=2", "page=3&per_page=2"]);
}

#[tokio::test]
async fn a_get_is_retried_on_502_and_503_and_then_succeeds() {
    let calls = counter();
    let answers: Vec<fn() -> Response> = vec![
        || {
            (axum::http::StatusCode::BAD_GATEWAY, "502 Bad Gateway: Registered endpoint failed to handle the request.")
                .into_response()
        },
        || cc_error(503, "503-CF-ServiceUnavailable-db"),
        app,
    ];
    let router = Router::new().route("/v3/apps/{guid}", get(sequence(calls.clone(), answers)));
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let app = client.get_app(APP_GUID).await.expect("app after retries");

    assert_eq!(app.guid, APP_GUID);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_end_after_the_attempt_limit_with_the_last_error() {
    let calls = counter();
    let router = Router::new()
        .route("/v3/apps/{guid}", get(sequence(calls.clone(), vec![|| cc_error(503, "503-CF-ServiceUnavailable-db")])));
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let err = client.get_app(APP_GUID).await.expect_err("always 503");

    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let shown = err.to_string();
    assert!(shown.starts_with("CF-ServiceUnavailable (10015): Database connection failure — "), "{shown}");
    assert!(shown.ends_with(&format!("[GET /v3/apps/{APP_GUID} → HTTP 503]")), "{shown}");
    assert_eq!(err.exit_code(), 1);
}

#[tokio::test]
async fn an_unsafe_post_is_not_retried_on_503_but_a_destination_insert_is() {
    let builds = counter();
    let inserts = counter();
    let bodies = log();
    let b = bodies.clone();
    let insert_calls = inserts.clone();
    let router = Router::new()
        .route("/v3/builds", post(sequence(builds.clone(), vec![|| cc_error(503, "503-CF-ServiceUnavailable-db")])))
        .route(
            "/v3/routes/{guid}/destinations",
            post(move |body: String| {
                let b = b.clone();
                let n = insert_calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    record(&b, body);
                    if n == 0 {
                        cc_error(503, "503-CF-ServiceUnavailable-db")
                    } else {
                        json(200, shared("cc-docs-examples/routes__list_of_route_destinations.json"))
                    }
                }
            }),
        );
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let err = client.create_build("pkg").await.expect_err("503");
    assert_eq!(builds.load(Ordering::SeqCst), 1, "POST /v3/builds is sent once");
    assert_eq!(err.api().map(|e| e.status), Some(503));

    let all = client.insert_destinations("r", &[NewDestination::to_app("maint")]).await.expect("insert");
    assert_eq!(inserts.load(Ordering::SeqCst), 2, "an insert is safe to repeat");
    assert_eq!(all.len(), 2);
    let sent: serde_json::Value = serde_json::from_str(&seen(&bodies)[0]).expect("body json");
    assert_eq!(sent, serde_json::json!({"destinations": [{"app": {"guid": "maint"}}]}));
}

#[tokio::test]
async fn a_429_waits_as_retry_after_says_then_succeeds() {
    let calls = counter();
    let answers: Vec<fn() -> Response> = vec![
        || {
            let mut r = cc_error(429, "429-CF-RateLimitExceeded");
            let h = r.headers_mut();
            h.insert("retry-after", "1".parse().expect("header"));
            h.insert("content-type", "text/plain; charset=utf-8".parse().expect("header"));
            h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
            r
        },
        app,
    ];
    let router = Router::new().route("/v3/apps/{guid}", get(sequence(calls.clone(), answers)));
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let started = Instant::now();
    client.get_app(APP_GUID).await.expect("app after waiting");

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited only {:?}", started.elapsed());
}

#[tokio::test]
async fn a_retry_after_beyond_the_limit_fails_at_once_with_a_hint() {
    let calls = counter();
    let answers: Vec<fn() -> Response> = vec![|| {
        let mut r = cc_error(429, "429-CF-RateLimitExceeded");
        r.headers_mut().insert("retry-after", "3600".parse().expect("header"));
        r
    }];
    let router = Router::new().route("/v3/apps/{guid}", get(sequence(calls.clone(), answers)));
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let started = Instant::now();
    let err = client.get_app(APP_GUID).await.expect_err("too long to wait");

    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let shown = err.to_string();
    assert!(shown.starts_with("CF-RateLimitExceeded (10013): Rate Limit Exceeded — "), "{shown}");
    assert!(shown.contains("rate limit is used up"), "{shown}");
}

/// A server that reads each request's head and closes the connection without answering.
async fn dropping_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = counter();
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            // Bounded: stop at the end of the head, at EOF, or after 64 KiB.
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            drop(socket);
        }
    });
    (format!("http://{addr}"), accepted)
}

#[tokio::test]
async fn a_dropped_connection_repeats_safe_requests_but_not_an_unsafe_post() {
    let (api, accepted) = dropping_server().await;
    let (client, _home) = client_for(&api).await;

    let err = client.create_build("pkg").await.expect_err("dropped");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "POST /v3/builds is not sent again");
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("may or may not have been carried out"), "{err}");

    accepted.store(0, Ordering::SeqCst);
    let err = client.get_app(APP_GUID).await.expect_err("dropped every time");
    assert_eq!(accepted.load(Ordering::SeqCst), 4, "a GET is tried max_attempts times");
    assert!(err.to_string().contains("tried 4 times"), "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_reported_on_one_line_as_a_configuration_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let api = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let (client, _home) = client_for(&api).await;

    let err = client.create_build("pkg").await.expect_err("refused");

    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach the Cloud Controller at {api} (connection refused, tried 4 times); check the API target \
             (`cf api`) and the network"
        )
    );
    assert!(std::error::Error::source(&err).is_none(), "no HTTP library chain: {err:?}");
    assert_eq!(err.exit_code(), 2, "nothing was sent, so nothing was changed");
}

/// A server that answers one request with the app and then stops listening.
async fn answers_once_then_closes() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        drop(listener);
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = shared("cc-docs-examples/apps__single_app.json");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut socket, answer.as_bytes()).await.expect("answer");
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_api_lost_after_it_answered_is_an_operational_failure_with_the_same_line() {
    let api = answers_once_then_closes().await;
    let (client, _home) = client_for(&api).await;
    client.get_app(APP_GUID).await.expect("the first answer");

    let err = client.get_app(APP_GUID).await.expect_err("refused");

    assert!(err.to_string().starts_with(&format!("cannot reach the Cloud Controller at {api} (connection refused")));
    assert!(std::error::Error::source(&err).is_none(), "no HTTP library chain: {err:?}");
    assert_eq!(err.exit_code(), 1, "requests went through before, so something may have changed");
}

#[tokio::test]
async fn errors_are_shown_as_title_code_detail_and_what_to_do() {
    let router = Router::new()
        .route("/v3/routes/{guid}/destinations", post(|| async { cc_error(403, "403-CF-NotAuthorized") }))
        .route("/v3/apps/{guid}", get(|| async { cc_error(404, "404-CF-ResourceNotFound-app") }));
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let err = client.insert_destinations("r1", &[]).await.expect_err("403");
    assert_eq!(
        err.to_string(),
        "CF-NotAuthorized (10003): You are not authorized to perform the requested action — you need the Space \
         Developer role (SpaceDeveloper; Space Supporter suffices for route changes) in the app's space (`cf \
         space-users ORG SPACE` shows who has it; an org or space manager can grant it with `cf set-space-role`) \
         [POST /v3/routes/r1/destinations → HTTP 403]"
    );
    let err = client.get_app("nope").await.expect_err("404");
    assert!(err.to_string().starts_with("CF-ResourceNotFound (10010): App not found — check the app"), "{err}");
}

#[tokio::test]
async fn destination_and_metadata_changes_send_the_documented_bodies() {
    let bodies = log();
    let (b1, b2) = (bodies.clone(), bodies.clone());
    let router = Router::new()
        .route(
            "/v3/routes/{guid}/destinations",
            post(move |body: String| {
                let b = b1.clone();
                async move {
                    record(&b, ("POST destinations", body));
                    json(200, shared("cc-docs-examples/routes__list_of_route_destinations.json"))
                }
            })
            .get(|| async { json(200, shared("cc-docs-examples/routes__list_of_route_destinations.json")) }),
        )
        .route(
            "/v3/routes/{guid}",
            patch(move |body: String| {
                let b = b2.clone();
                async move {
                    record(&b, ("PATCH route", body));
                    json(200, shared("cc-docs-examples/routes__single_route.json"))
                }
            }),
        );
    let api = serve(router).await;
    let (client, _home) = client_for(&api).await;

    let current = client.route_destinations("r").await.expect("list");
    let mut keep: Vec<NewDestination> = current.iter().skip(1).map(NewDestination::from).collect();
    keep.push(NewDestination::to_app("maint"));
    client.insert_destinations("r", &keep).await.expect("insert");
    let mut patch = MetadataPatch::default();
    patch.labels.insert("switchctl.example.com/state".into(), Some("on".into()));
    patch.annotations.insert("switchctl.example.com/saved".into(), None);
    client.patch_route_metadata("r", &patch).await.expect("metadata");

    let sent: Vec<(String, serde_json::Value)> = seen(&bodies)
        .into_iter()
        .map(|(what, body)| (what.to_owned(), serde_json::from_str(&body).expect("json body")))
        .collect();
    assert_eq!(
        sent,
        vec![
            (
                "POST destinations".to_owned(),
                serde_json::json!({"destinations": [
                    {"app": {"guid": "01856e12-8ee8-11e9-98a5-bb397dbc818f", "process": {"type": "api"}},
                     "port": 9000, "protocol": "http1"},
                    {"app": {"guid": "maint"}}
                ]})
            ),
            (
                "PATCH route".to_owned(),
                serde_json::json!({"metadata": {"labels": {"switchctl.example.com/state": "on"},
                                                "annotations": {"switchctl.example.com/saved": null}}})
            ),
        ]
    );
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let router = Router::new().route(
        "/v3/apps/{guid}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            app()
        }),
    );
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), &api, &format!("bearer {}", jwt(3600, "u")), |_| {});
    let mut opts = options(home.path());
    opts.http.request_timeout = Duration::from_millis(300);
    opts.http.retry.max_attempts = 2;
    let session = Session::connect(opts).await.expect("session");

    let started = Instant::now();
    let err = session.client().get_app(APP_GUID).await.expect_err("timeout");

    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert!(err.to_string().contains("no answer in time (tried 2 times)"), "{err}");
}
