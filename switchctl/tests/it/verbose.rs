//! `-v` tracing shows the requests and never a token.
//!
//! This runs the binary: a subscriber set per thread in-process can miss events while other
//! tests on other threads register the same call sites (tracing's interest cache is global).

use axum::{
    Router,
    http::HeaderMap,
    routing::{get, post},
};

use crate::{cli::switchctl, support::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_output_traces_requests_and_never_contains_a_token() {
    let first = jwt(3600, "first");
    let second = jwt(3600, "second");
    let calls = log();
    let (c, t) = (calls.clone(), (first.clone(), second.clone()));
    let router = Router::new()
        .route(
            "/oauth/token",
            post(move |body: String| {
                let (first, second) = t.clone();
                async move {
                    // The first renewal (expired token) gives `first`, the next (after a 401) `second`.
                    if body.contains("refresh_token=NEW-REFRESH-1") {
                        token_answer(&second, Some("NEW-REFRESH-2"))
                    } else {
                        token_answer(&first, Some("NEW-REFRESH-1"))
                    }
                }
            }),
        )
        .route(
            "/v3/spaces",
            get(move |headers: HeaderMap| {
                let c = c.clone();
                async move {
                    let n = { c.lock().expect("lock").len() };
                    record(&c, authorization(&headers));
                    if n == 0 {
                        cc_error(401, "401-CF-InvalidAuthToken")
                    } else {
                        json(200, r#"{"pagination":{"next":null},"resources":[{"guid":"space-2","name":"other"}]}"#)
                    }
                }
            }),
        );
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    let old = jwt(-5, "old");
    write_cf_config(home.path(), &api, &format!("bearer {old}"), |_| {});

    // `--space other` makes switchctl look the space up: an expired token is renewed first, the
    // Cloud Controller then rejects it once, it is renewed again, and the lookup succeeds.
    let mut cmd = switchctl(home.path());
    cmd.args(["-vv", "on", "shop", "--space", "other"]);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run switchctl");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();

    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // After the target, `on` looks the app up; this mock knows no apps (404), which ends the run.
    assert!(stderr.contains("/v3/apps?names=shop&space_guids=space-2"), "{stderr}");
    assert_eq!(seen(&calls), vec![Some(format!("bearer {first}")), Some(format!("bearer {second}"))]);
    assert!(stderr.contains(&format!("url={api}/v3/spaces?names=other&organization_guids=")), "{stderr}");
    assert!(stderr.contains("status=401") && stderr.contains("status=200"), "{stderr}");
    assert!(stderr.contains("authorization: [redacted]"), "{stderr}");
    assert!(stderr.contains("UAA token request"), "{stderr}");
    // Both request logs show the method the same way.
    assert!(stderr.contains(&format!("method=POST url={api}/oauth/token")), "{stderr}");
    assert!(stderr.contains(&format!("method=GET url={api}/v3/spaces")), "{stderr}");
    assert!(!stderr.contains("method=\""), "{stderr}");
    for secret in
        [old.as_str(), first.as_str(), second.as_str(), CONFIG_REFRESH_TOKEN, "NEW-REFRESH-1", "NEW-REFRESH-2"]
    {
        assert!(!stderr.contains(secret) && !stdout.contains(secret), "a token shows in the output:\n{stderr}");
        // Nor a recognisable piece of one (the JWT payload).
        if let Some(payload) = secret.split('.').nth(1) {
            assert!(!stderr.contains(payload), "a token payload shows in the output:\n{stderr}");
        }
    }
}
