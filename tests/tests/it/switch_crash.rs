//! Acceptance (issue 4): crash safety. `switchctl on` is killed (SIGKILL) at each step of its
//! per-route sequence, held there by a pause in the double: every route still answers from the app
//! or the maintenance app (never 404), a new `on` completes, and `off` restores the destinations
//! exactly (app, process, port, protocol), internal and TCP routes untouched.

use std::time::{Duration, Instant};

use http::Method;
use tests::{Matcher, PausePoint};

use crate::switch_support::{Setup, World};

async fn crash_at(method: Method, pattern: &str, point: PausePoint) {
    let context = format!("killed at {method} {pattern} ({point:?})");
    let w = World::new(Setup { routes: 3, extra_routes: true, second_process: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let matcher = Matcher::new(method, pattern);
    let pause = w.cf.faults.pause(matcher.clone(), point);
    let mut child = w.spawn(&["on", "shop"]);
    let held = pause.wait_held(1, Duration::from_secs(30)).await;
    if !held {
        pause.release();
        let run = child.wait(Duration::from_secs(30)).await;
        panic!("{context}: switchctl never sent the request\n{run}");
    }
    child.kill();
    let killed = child.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "{context}: killed by a signal\n{killed}");
    let done_before = w.cf.faults.count(&matcher);
    let held_n = pause.held();
    pause.release();
    // The held requests were sent before the kill; let them land (or be dropped) first.
    let deadline = Instant::now() + Duration::from_secs(3);
    while w.cf.faults.count(&matcher) < done_before + held_n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.assert_consistent(&context).await;

    let on = w.run(&["on", "shop"]).await;
    assert_eq!(on.code, Some(0), "{context}: a new `on` completes\n{on}");
    w.assert_all_on(&before, &format!("{context}, then on")).await;

    let off = w.run(&["off", "shop"]).await;
    assert_eq!(off.code, Some(0), "{context}: `off` completes\n{off}");
    w.assert_restored(&before, &format!("{context}, then on, off")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_metadata_is_written() {
    crash_at(Method::PATCH, "/v3/routes/*", PausePoint::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_metadata_is_written() {
    crash_at(Method::PATCH, "/v3/routes/*", PausePoint::After).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_maintenance_app_is_added() {
    crash_at(Method::POST, "/v3/routes/*/destinations", PausePoint::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_maintenance_app_is_added() {
    crash_at(Method::POST, "/v3/routes/*/destinations", PausePoint::After).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_while_reading_destinations_before_the_app_is_removed() {
    crash_at(Method::GET, "/v3/routes/*/destinations", PausePoint::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_before_the_app_is_removed() {
    crash_at(Method::DELETE, "/v3/routes/*/destinations/*", PausePoint::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_after_the_app_is_removed() {
    // The first route has two destinations of shop (web and admin): the kill may fall between them.
    crash_at(Method::DELETE, "/v3/routes/*/destinations/*", PausePoint::After).await;
}

/// `off` killed after it re-added the app but before it removed the maintenance app: a new `off`
/// finishes and restores exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_during_off_then_off_again() {
    let w = World::new(Setup { routes: 3, second_process: true, ..Setup::default() }).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    let pause = w.cf.faults.pause(Matcher::new(Method::DELETE, "/v3/routes/*/destinations/*"), PausePoint::Before);
    let mut child = w.spawn(&["off", "shop"]);
    if !pause.wait_held(1, Duration::from_secs(30)).await {
        pause.release();
        let run = child.wait(Duration::from_secs(30)).await;
        panic!("off never deleted the maintenance destination\n{run}");
    }
    child.kill();
    let killed = child.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "killed by a signal\n{killed}");
    pause.release();
    w.assert_consistent("off killed before the replace").await;
    let off = w.run(&["off", "shop"]).await;
    assert_eq!(off.code, Some(0), "a new `off` completes\n{off}");
    w.assert_restored(&before, "off killed, then off").await;
}
