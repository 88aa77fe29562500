//! Acceptance (issue 4): two `switchctl on APP` started at once end consistent (every route on the
//! maintenance app alone, exactly one maintenance destination each), and `off` restores exactly.

use crate::switch_support::{Setup, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ons_at_once_end_consistent_and_off_restores() {
    let w = World::new(Setup { routes: 3, extra_routes: true, second_process: true, ..Setup::default() }).await;
    let before = w.all_dests();
    for round in 0..2 {
        let concurrency = if round == 0 { "4" } else { "1" };
        let a = w.spawn(&["on", "shop", "--concurrency", concurrency]);
        let b = w.spawn(&["on", "shop", "--concurrency", concurrency]);
        let timeout = std::time::Duration::from_secs(90);
        let (a, b) = tokio::join!(a.wait(timeout), b.wait(timeout));
        println!("round {round}: exit codes {:?} {:?}", a.code, b.code);
        for run in [&a, &b] {
            assert!(matches!(run.code, Some(0 | 1)), "each run exits 0 or 1\n{run}");
        }
        assert!(a.code == Some(0) || b.code == Some(0), "at least one `on` completes\n{a}\n{b}");
        w.assert_all_on(&before, &format!("round {round}: two ons at once")).await;
        let off = w.run(&["off", "shop"]).await;
        off.expect_code(0);
        w.assert_restored(&before, &format!("round {round}: off")).await;
    }
}
