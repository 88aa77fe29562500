//! Acceptance (issue 4): under steady load through the router with CF's 0–500 ms propagation
//! delays, `switchctl on` and `off` never let a request see a 404 or a 502; once `on` returns only
//! the maintenance app answers, once `off` returns only the app does.

use std::time::{Duration, Instant};

use crate::switch_support::{Answer, Load, Setup, World, tally};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_404_or_502_under_load_during_on_and_off() {
    let w =
        World::new(Setup { router_delay: (Duration::ZERO, Duration::from_millis(500)), routes: 3, ..Setup::default() })
            .await;
    let before = w.all_dests();
    let load = Load::start(w.cf.router_url(), w.routes.clone(), 300);
    load.wait_more(60, Duration::from_secs(10)).await;

    let on_start = Instant::now();
    let on = w.run(&["on", "shop"]).await;
    let on_end = Instant::now();
    on.expect_code(0);
    load.wait_more(150, Duration::from_secs(10)).await;

    let off_start = Instant::now();
    let off = w.run(&["off", "shop"]).await;
    let off_end = Instant::now();
    off.expect_code(0);
    load.wait_more(150, Duration::from_secs(10)).await;
    let samples = load.stop().await;

    let during_on = tally(samples.iter().filter(|s| s.sent >= on_start && s.sent < on_end));
    let between = tally(samples.iter().filter(|s| s.sent >= on_end && s.sent < off_start));
    let during_off = tally(samples.iter().filter(|s| s.sent >= off_start && s.sent < off_end));
    let after = tally(samples.iter().filter(|s| s.sent >= off_end));
    let all = tally(&samples);
    println!("load test: 3 routes, ~300 req/s, router delay 0-500 ms");
    println!("on took {:?}, off took {:?}", on.took, off.took);
    println!("{:<12} {:>6} {:>12} {:>5} {:>5} {:>6}", "phase", "app", "maintenance", "404", "502", "other");
    for (name, t) in [
        ("during on", &during_on),
        ("on..off", &between),
        ("during off", &during_off),
        ("after off", &after),
        ("all", &all),
    ] {
        let n = |a| t.get(&a).copied().unwrap_or(0);
        println!(
            "{name:<12} {:>6} {:>12} {:>5} {:>5} {:>6}",
            n(Answer::App),
            n(Answer::Maintenance),
            n(Answer::NotFound),
            n(Answer::BadGateway),
            n(Answer::Other)
        );
    }
    let count = |a| all.get(&a).copied().unwrap_or(0);
    assert_eq!(
        (count(Answer::NotFound), count(Answer::BadGateway), count(Answer::Other)),
        (0, 0, 0),
        "no 404, no 502, no failed request during the whole run: {all:?}"
    );
    assert!(
        between.keys().all(|a| *a == Answer::Maintenance) && !between.is_empty(),
        "once `on` returned, only the maintenance app answers: {between:?}"
    );
    assert!(
        after.keys().all(|a| *a == Answer::App) && !after.is_empty(),
        "once `off` returned, only shop answers: {after:?}"
    );
    assert!(
        during_on.contains_key(&Answer::App) || during_on.contains_key(&Answer::Maintenance),
        "traffic flowed during `on`: {during_on:?}"
    );
    w.assert_restored(&before, "after off").await;
}
