//! Acceptance (issue 4): faults of the Cloud Controller during `on` and `off` (500 and 503 on a
//! write, a dropped connection, 429 with `Retry-After`, CC's rate limiter, an access token that
//! expires mid-run). Each run completes, or exits 1 leaving every route answering from the app or
//! the maintenance app, with a message that says what failed; a rerun completes.

use std::{collections::BTreeMap, time::Duration};

use http::Method;
use serde_json::Value;
use tests::{Failure, Matcher, RateLimit};

use crate::switch_support::{Run, Setup, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum During {
    On,
    Off,
}

/// Injects a fault with `inject`, runs the command, checks the outcome, reruns, checks the end.
async fn fault_case(during: During, inject: impl FnOnce(&World), message: &[&str]) -> Run {
    fault_case_on(Setup::default(), during, inject, message).await
}

/// [`fault_case`] on a double started from `setup`.
async fn fault_case_on(setup: Setup, during: During, inject: impl FnOnce(&World), message: &[&str]) -> Run {
    let w = World::new(Setup { routes: 3, second_process: true, ..setup }).await;
    let before = w.all_dests();
    let cmd = match during {
        During::On => "on",
        During::Off => {
            w.run(&["on", "shop"]).await.expect_code(0);
            "off"
        }
    };
    inject(&w);
    let run = w.run(&[cmd, "shop"]).await;
    println!("{run}");
    assert_eq!(w.cf.faults.armed(), 0, "`{cmd}` met the injected fault\n{run}");
    match run.code {
        Some(0) => {}
        Some(1) => {
            let text = run.stderr.to_lowercase() + &run.stdout.to_lowercase();
            assert!(
                message.iter().any(|m| text.contains(&m.to_lowercase())),
                "exit 1 must say what failed (one of {message:?})\n{run}"
            );
        }
        _ => panic!("`{cmd}` under a fault exits 0, or 1 with a consistent state\n{run}"),
    }
    w.assert_consistent(&format!("{cmd} under a fault")).await;
    let rerun = w.run(&[cmd, "shop"]).await;
    assert_eq!(rerun.code, Some(0), "a rerun completes\n{rerun}");
    match during {
        During::On => {
            w.assert_all_on(&before, "on after a fault, rerun").await;
            w.run(&["off", "shop"]).await.expect_code(0);
        }
        During::Off => {}
    }
    w.assert_restored(&before, "after off").await;
    run
}

const SERVER_ERROR: &[&str] = &["500", "unknown error", "unknownerror"];
const UNAVAILABLE: &[&str] = &["503", "unavailable"];
const DROPPED: &[&str] = &["connection", "closed", "no answer", "error sending", "reset"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_500_on_the_removal_of_the_app() {
    fault_case(
        During::On,
        |w| w.cf.faults.fail_next(Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*"), Failure::Status500),
        SERVER_ERROR,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_500_on_the_metadata() {
    fault_case(
        During::On,
        |w| w.cf.faults.fail_nth(Matcher::new(Method::PATCH, "/v3/routes/*"), 2, Failure::Status500),
        SERVER_ERROR,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_503_on_the_insert() {
    fault_case(
        During::On,
        |w| w.cf.faults.fail_next(Matcher::new(Method::POST, "/v3/routes/*/destinations"), Failure::Status503),
        UNAVAILABLE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_dropped_connection_on_the_removal_of_the_app() {
    fault_case(
        During::On,
        |w| w.cf.faults.fail_next(Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*"), Failure::Drop),
        DROPPED,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_429_and_retry_after() {
    let run = fault_case(
        During::On,
        |w| {
            w.cf.faults.fail_next(
                Matcher::new(Method::POST, "/v3/routes/*/destinations"),
                Failure::RateLimited { retry_after: 1 },
            );
        },
        &["429", "rate limit"],
    )
    .await;
    assert_eq!(run.code, Some(0), "a 429 with Retry-After: 1 is waited out\n{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_under_cc_rate_limiter() {
    let run = fault_case(
        During::On,
        |w| w.cf.faults.set_rate_limit(Some(RateLimit::new(8, Duration::from_secs(1)))),
        &["429", "rate limit"],
    )
    .await;
    assert_eq!(run.code, Some(0), "CC's rate limiter (8/s) is waited out\n{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_500_on_the_removal_of_the_maintenance_app() {
    fault_case(
        During::Off,
        |w| w.cf.faults.fail_next(Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*"), Failure::Status500),
        SERVER_ERROR,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_dropped_connection_on_the_insert() {
    fault_case(
        During::Off,
        |w| w.cf.faults.fail_next(Matcher::new(Method::POST, "/v3/routes/*/destinations"), Failure::Drop),
        DROPPED,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_503_on_the_metadata_removal() {
    fault_case(
        During::Off,
        |w| w.cf.faults.fail_next(Matcher::new(Method::PATCH, "/v3/routes/*"), Failure::Status503),
        UNAVAILABLE,
    )
    .await;
}

fn read_config(w: &World) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(w.config_path()).expect("config.json");
    serde_json::from_str(&text).expect("config.json is JSON")
}

/// Access tokens live 60 s (whole seconds) and switchctl renews those expiring within a minute, so
/// the token of config.json expires (for switchctl) at the next second boundary of the run, and
/// again about a second after each renewal.
/// The run completes; the renewed tokens are written back to config.json, mode 0600, with every
/// other field as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_mid_run_is_renewed_and_written_back() {
    let w =
        World::new(Setup { routes: 3, access_token_lifetime: Some(Duration::from_secs(60)), ..Setup::default() }).await;
    let before = w.all_dests();
    // Stretch the run past the first expiry.
    w.cf.faults.set_latency(Duration::from_millis(100), Duration::ZERO);
    let config_before = read_config(&w);
    let on = w.run(&["on", "shop"]).await;
    on.expect_code(0);
    println!("on took {:?}", on.took);
    w.cf.faults.set_latency(Duration::ZERO, Duration::ZERO);
    w.assert_all_on(&before, "on with expiring tokens").await;

    let log = w.cf.faults.log();
    let refreshes: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, r)| r.service == "uaa" && r.path == "/oauth/token" && r.body.contains("grant_type=refresh_token"))
        .map(|(i, _)| i)
        .collect();
    let first_cc = log.iter().position(|r| r.service == "cc").expect("CC requests");
    assert!(!refreshes.is_empty(), "the token was renewed during the run: {log:?}");
    assert!(refreshes.iter().any(|&i| i > first_cc), "renewed mid-run, after CC requests");
    let unauthorized = log.iter().filter(|r| r.service == "cc" && r.status == 401).count();
    println!("token renewals: {}, CC 401 answers: {unauthorized}", refreshes.len());

    let config_after = read_config(&w);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.config_path()).expect("config.json").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "config.json is written back with mode 0600");
    }
    let access_before = config_before["AccessToken"].as_str().unwrap_or_default();
    let access_after = config_after["AccessToken"].as_str().unwrap_or_default();
    assert_ne!(access_after, access_before, "the renewed access token is written back");
    assert!(access_after.starts_with("bearer "), "stored as `bearer <jwt>` like cf: {access_after}");
    let others = |c: &BTreeMap<String, Value>| {
        c.iter()
            .filter(|(k, _)| *k != "AccessToken" && *k != "RefreshToken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(others(&config_after), others(&config_before), "every other field intact");
    assert!(config_after["RefreshToken"].as_str().is_some_and(|t| !t.is_empty()), "a refresh token is kept");

    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    w.assert_restored(&before, "off with expiring tokens").await;
}

/// The same with refresh token rotation on (UAA's `jwt.token.refresh.rotate: true`): every renewal
/// spends the refresh token, so switchctl must keep and write back the new one, or `off` could not
/// renew again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_renewal_with_rotating_refresh_tokens_keeps_the_new_refresh_token() {
    let w =
        World::new(Setup { routes: 2, access_token_lifetime: Some(Duration::from_secs(60)), ..Setup::default() }).await;
    w.cf.uaa.set_refresh_token_rotation(true);
    let before = w.all_dests();
    w.cf.faults.set_latency(Duration::from_millis(100), Duration::ZERO);
    let refresh_before = read_config(&w)["RefreshToken"].as_str().unwrap_or_default().to_owned();
    let on = w.run(&["on", "shop"]).await;
    on.expect_code(0);
    w.cf.faults.set_latency(Duration::ZERO, Duration::ZERO);
    w.assert_all_on(&before, "on with rotating refresh tokens").await;
    let refresh_after = read_config(&w)["RefreshToken"].as_str().unwrap_or_default().to_owned();
    assert!(!refresh_after.is_empty() && refresh_after != refresh_before, "the rotated refresh token is written back");

    w.cf.faults.set_latency(Duration::from_millis(100), Duration::ZERO);
    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    w.cf.faults.set_latency(Duration::ZERO, Duration::ZERO);
    w.assert_restored(&before, "off with rotating refresh tokens").await;
}

/// Acceptance (issue 12, item 5): the Cloud Controller carries a write out and still answers with
/// an error (a Diego error in an `after_commit` hook, an answer lost on the way back). A 500 is
/// not repeated (switchctl cannot know the write is safe to send again from the status alone):
/// switchctl reads the route again, sees the change made, goes on, and the route's line says so.
/// A 503 or a lost answer of these idempotent writes is sent again, and the repeat finds the change
/// made. Either way the run completes.
async fn after_commit_case(during: During, matcher: Matcher, failure: Failure) {
    // On the production profile: three routers with their own delays, CC's limiter.
    let production = Setup { production: true, ..Setup::default() };
    let inject = |w: &World| w.cf.faults.fail_nth_after_commit(matcher, 1, failure);
    let run = fault_case_on(production, during, inject, &[]).await;
    assert_eq!(run.code, Some(0), "a write the Cloud Controller made despite its error is gone on from\n{run}");
    if failure == Failure::RunnerError {
        assert!(
            run.stdout.contains("but had made the change"),
            "the route's line says the Cloud Controller made the change it answered with an error\n{run}"
        );
    }
}

fn insert() -> Matcher {
    Matcher::new(Method::POST, "/v3/routes/*/destinations")
}

fn delete() -> Matcher {
    Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*")
}

fn metadata() -> Matcher {
    Matcher::new(Method::PATCH, "/v3/routes/*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_runner_error_after_the_insert_committed() {
    after_commit_case(During::On, insert(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_runner_error_after_the_removal_committed() {
    after_commit_case(During::On, delete(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_runner_error_after_the_record_was_written() {
    after_commit_case(During::On, metadata(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_with_a_dropped_answer_after_the_removal_committed() {
    after_commit_case(During::On, delete(), Failure::Drop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_runner_error_after_the_insert_committed() {
    after_commit_case(During::Off, insert(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_runner_unavailable_after_the_insert_committed() {
    after_commit_case(During::Off, insert(), Failure::RunnerUnavailable).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_runner_error_after_the_removal_committed() {
    after_commit_case(During::Off, delete(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_runner_error_after_the_record_was_cleared() {
    after_commit_case(During::Off, metadata(), Failure::RunnerError).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_with_a_dropped_answer_after_the_record_was_cleared() {
    after_commit_case(During::Off, metadata(), Failure::Drop).await;
}
