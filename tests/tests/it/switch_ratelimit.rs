//! Fleets under CC's rate limiter as capi-release deploys it: 2000 requests per user per window
//! over 4 CC instances (500 each, counted apart), `X-RateLimit-Remaining` floored to tenths, a
//! 429's `Retry-After` the rest of the window. The hour is scaled down to seconds, and most of the
//! budget is used up first (as an operator's earlier `cf` commands would), so that a small fleet
//! runs into the limit.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use tests::{client::Http, faults::RateLimit};

use crate::{
    switch_fleet::{SELECTOR, add_fleet, every_dest},
    switch_support::World,
};

/// Requests used up before the run: each instance is left 12 of its 500, Remaining reads 0.
const USED: usize = 1950;

/// Waits for the developer's next window to begin, then uses `USED` requests of it; returns the
/// window's end (epoch seconds). The window's phase is fixed per user (CC
/// `user_reset_interval.rb`), so the test aligns on it rather than guess.
async fn use_up_budget(w: &World, window: Duration) -> i64 {
    let end = use_up(w, window, USED).await;
    let http = Http::new();
    let bearer = w.cf.bearer("developer").expect("developer");
    let last = http.get(&format!("{}/v3/info", w.cf.api_url()), Some(&bearer)).await.expect("answer");
    assert_eq!(last.header("x-ratelimit-remaining"), Some("0"), "floored estimate reads 0 with budget left");
    assert_eq!(last.status, 200);
    end
}

/// Waits for a new window and uses `used` requests of it; the window's end.
async fn use_up(w: &World, window: Duration, used: usize) -> i64 {
    let http = Http::new();
    let bearer = w.cf.bearer("developer").expect("developer");
    let url = format!("{}/v3/info", w.cf.api_url());
    let reset = |r: &tests::client::Reply| r.header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok());
    let first = http.get(&url, Some(&bearer)).await.expect("answer");
    let end = reset(&first).expect("X-RateLimit-Reset");
    let deadline = Instant::now() + window + Duration::from_secs(5);
    let mut fresh = None;
    // A window start is seen as the first answer with a later reset; polled, with a deadline.
    while Instant::now() < deadline {
        let r = http.get(&url, Some(&bearer)).await.expect("answer");
        if reset(&r).is_some_and(|r| r > end) {
            fresh = reset(&r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fresh = fresh.expect("a new window began");
    for _ in 1..used {
        let r = http.get(&url, Some(&bearer)).await.expect("answer");
        assert_eq!(r.status, 200, "budget left while using it up");
    }
    fresh
}

/// Runs `args`, checking all along that every route answers from its app or the maintenance app.
async fn run_checked(w: &World, args: &[&str]) -> crate::switch_support::Run {
    let child = w.spawn(args);
    let done = AtomicBool::new(false);
    let run = async {
        let run = child.wait(Duration::from_secs(120)).await;
        done.store(true, Ordering::Relaxed);
        run
    };
    let checks = async {
        let mut n = 0;
        while !done.load(Ordering::Relaxed) && n < 2000 {
            w.assert_consistent("while the run waits for the rate limit").await;
            n += 1;
        }
    };
    tokio::join!(run, checks).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_under_capi_rate_limits_waits_out_the_window_and_completes() {
    let window = Duration::from_secs(6);
    let w = World::new(crate::switch_support::Setup { routes: 1, ..Default::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 20, 1).await;
    let before = every_dest(&w, &fleet);
    w.cf.faults.set_rate_limit(Some(RateLimit::capi_default().instances(4).interval(window)));
    use_up_budget(&w, window).await;
    w.cf.faults.clear_log();

    let on = run_checked(&w, &["on", "--selector", SELECTOR, "--parallel", "4"]).await;
    on.expect_code(0);
    assert!(on.stderr.contains("rate limited by the Cloud Controller"), "the wait is told: {on}");
    assert!(w.cc_log().iter().any(|r| r.status == 429), "the run ran into the limit");
    let maint = w.maint_guid();
    for m in &fleet {
        for route in &m.routes {
            let dests = w.dests(route);
            assert!(dests.len() == 1 && dests[0].0 == maint, "{}: on: {dests:?}", m.name);
        }
    }
    w.cf.faults.set_rate_limit(None);
    w.run(&["off", "--selector", SELECTOR]).await.expect_code(0);
    assert_eq!(every_dest(&w, &fleet), before, "restored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_beyond_max_wait_stops_consistent_and_its_printed_command_finishes() {
    let window = Duration::from_secs(10);
    let w = World::new(crate::switch_support::Setup { routes: 1, ..Default::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 20, 1).await;
    let before = every_dest(&w, &fleet);
    w.cf.faults.set_rate_limit(Some(RateLimit::capi_default().instances(4).interval(window)));
    let end = use_up_budget(&w, window).await;

    let on = run_checked(&w, &["--max-wait", "1", "on", "--selector", SELECTOR, "--parallel", "4"]).await;
    on.expect_code(1);
    let said = format!("{}{}", on.stdout, on.stderr);
    assert!(said.contains("beyond --max-wait 1s"), "says why it stopped: {on}");
    let maint = w.maint_guid();
    for m in &fleet {
        for route in &m.routes {
            let dests = w.dests(route);
            let on = dests.len() == 1 && dests[0].0 == maint;
            assert!(on || before[route] == dests, "{}: fully switched or untouched: {dests:?}", m.name);
        }
    }
    // The summary's command, which names every app left to switch (each route's line names its own).
    let finish = on.stderr.split("finish with `").nth(1).and_then(|c| c.split('`').next()).expect("finish command");
    assert!(finish.contains("--max-wait 1"), "the finish command keeps --max-wait: {finish}");
    let finish: Vec<&str> = finish.split_whitespace().skip(1).collect();
    // Run as printed once the window has reset (polled, with a deadline).
    let deadline = Instant::now() + window + Duration::from_secs(5);
    while tests::clock::unix_now() <= end && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run_checked(&w, &finish).await.expect_code(0);
    for m in &fleet {
        for route in &m.routes {
            let dests = w.dests(route);
            assert!(dests.len() == 1 && dests[0].0 == maint, "{}: on after the finish: {dests:?}", m.name);
        }
    }
}

/// Issue 12: a run that certainly needs more than the window has left, with the window ending
/// past `--max-wait`, is refused once every app is read, before any change, and the printed
/// command that allows the wait does the whole run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_that_cannot_fit_the_rate_limit_before_max_wait_is_refused_before_any_change() {
    let window = Duration::from_secs(20);
    let w = World::new(crate::switch_support::Setup { routes: 1, ..Default::default() }).await;
    let (fleet, _servers) = add_fleet(&w, 60, 1).await;
    let before = every_dest(&w, &fleet);
    w.cf.faults.set_rate_limit(Some(RateLimit::capi_default().instances(4).interval(window)));
    // About 60 left per instance, 240 in all: the reads of the run fit, its 240 writes and reads
    // of the routes do not.
    use_up(&w, window, 4 * (500 - 60)).await;
    w.cf.faults.clear_log();

    let on = w.run(&["--max-wait", "1", "on", "--selector", SELECTOR, "--parallel", "4"]).await;
    on.expect_code(2);
    assert!(on.stderr.contains("this run needs about 240 more requests"), "says how many: {on}");
    assert!(on.stderr.contains("Nothing was changed"), "{on}");
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());
    assert!(!w.cc_log().iter().any(|r| r.status == 429), "refused before meeting the limit");
    assert_eq!(every_dest(&w, &fleet), before);

    let waiting =
        on.stderr.split("wait for it with `").nth(1).and_then(|c| c.split('`').next()).expect("the waiting command");
    assert!(!waiting.contains("--max-wait 1 "), "the waiting command allows the wait: {waiting}");
    let waiting: Vec<&str> = waiting.split_whitespace().skip(1).collect();
    run_checked(&w, &waiting).await.expect_code(0);
    let maint = w.maint_guid();
    for m in &fleet {
        let dests = w.dests(&m.routes[0]);
        assert!(dests.len() == 1 && dests[0].0 == maint, "{}: on: {dests:?}", m.name);
    }
}
