//! switchctl never leaves users with the wrong answer (issue 11): each test is one way the world
//! is unkind (probes that reach nobody, a router that never catches up, an operator who removed a
//! label, mapped the maintenance app by hand, mistyped the command, closed the pipe or dropped the
//! SSH session), against the double with the real binaries.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;

use crate::switch_support::{Run, Setup, Switchctl, World, binary, printed, state_key};

/// A free loopback port nobody listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_that_reaches_nobody_changes_nothing_and_says_how_to_reach_the_routes() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let nowhere = closed_port();
    for verb in ["on", "run"] {
        let mut args = vec![verb, "shop", "--probe-via", &nowhere];
        if verb == "run" {
            args.extend(["--", "true"]);
        }
        let run = w.run(&args).await;
        run.expect_code(2);
        assert!(w.cc_writes().is_empty(), "{verb}: not a single write: {:?}\n{run}", w.cc_writes());
        assert!(run.stderr.contains("--probe-via HOST:PORT"), "{verb}: says how to reach the routes\n{run}");
        let unverified = printed(&run.stderr, "on");
        assert!(unverified.iter().any(|a| a == "--no-verify"), "{verb}: offers --no-verify\n{run}");
        assert!(!run.stderr.contains("did not answer"), "{verb}: does not blame the maintenance app\n{run}");
    }
    assert_eq!(w.all_dests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_that_times_out_takes_the_maintenance_app_away_again() {
    let w = World::new(Setup { routes: 2, ..Setup::default() }).await;
    let before = w.all_dests();
    // The router learns of changes long after switchctl stops waiting.
    w.cf.router.set_delay(Duration::from_secs(6), Duration::from_secs(6));
    let run = w.run(&["--json", "on", "shop", "--timeout", "1"]).await;
    run.expect_code(1);
    let report = run.report();
    for route in report["routes"].as_array().expect("routes") {
        assert_eq!(route["state"], "serving", "back to exactly what it was: {route}");
        assert_eq!(route["cause"]["kind"], "not_answering", "{route}");
    }
    assert_eq!(w.all_dests(), before, "no maintenance destination is left behind");
    for r in &w.routes {
        assert_eq!(w.switch_metadata(&r.guid), Default::default(), "no record is left behind");
    }
    w.cf.router.set_delay(Duration::ZERO, Duration::from_millis(100));
    assert!(w.cf.router.wait_settled(Duration::from_secs(15)).await, "the slow changes land");
    w.assert_restored(&before, "after the rolled-back on").await;

    // The same in reverse: `off` whose app never answers puts the route back in maintenance.
    w.run(&["on", "shop"]).await.expect_code(0);
    w.cf.router.set_delay(Duration::from_secs(6), Duration::from_secs(6));
    let run = w.run(&["--json", "off", "shop", "--timeout", "1"]).await;
    run.expect_code(1);
    for route in run.report()["routes"].as_array().expect("routes") {
        assert_eq!(route["state"], "maintenance_only", "{route}");
    }
    w.cf.router.set_delay(Duration::ZERO, Duration::from_millis(100));
    assert!(w.cf.router.wait_settled(Duration::from_secs(15)).await, "the slow changes land");
    w.assert_all_on(&before, "after the rolled-back off").await;
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_finish_command_run_prints_works_pasted_as_printed() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let run = w.run(&["run", "shop", "--timeout", "20", "--concurrency", "2", "--", "false"]).await;
    run.expect_code(1);
    w.assert_all_on(&before, "a failed command keeps the app in maintenance").await;
    let finish = printed(&run.stderr, "off");
    for flag in ["--probe-via", "--timeout", "--concurrency"] {
        assert!(finish.iter().any(|a| a == flag), "the finish command repeats {flag}: {finish:?}");
    }
    let done = Switchctl::spawn(w.home.path(), &finish).wait(Duration::from_secs(90)).await;
    done.expect_code(0);
    w.assert_restored(&before, "after the printed finish command").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_label_was_removed_by_hand_is_still_found_and_restored() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    let key = state_key(&w.app.guid);
    {
        let mut st = w.cf.cc.state();
        let route = st.route_mut(&w.routes[0].guid).expect("route");
        route.metadata.labels.remove(&key);
    }
    let status = w.run(&["status", "shop"]).await;
    status.expect_code(1);
    assert!(status.stdout.contains("label was removed"), "status reports the route\n{status}");
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "off restores the unlabelled route from its annotation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_command_does_not_open_the_window() {
    let w = World::new(Setup::default()).await;
    let run = w.run(&["run", "shop", "--", "migrat.sh"]).await;
    run.expect_code(127);
    assert!(run.stderr.contains("migrat.sh") && run.stderr.contains("nothing was changed"), "{run}");
    let dir = crate::switch_support::TempDir::new("noexec");
    let script = dir.path().join("migrate.sh");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    let run = w.run(&["run", "shop", "--", &script.display().to_string()]).await;
    run.expect_code(126);
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_not_the_switch() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    // `switchctl -v on shop 2>&1 | head -3`: both streams into one pipe whose reader goes away.
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut child = Command::new(binary("switchctl"))
        .args(["-v", "on", "shop", "--probe-via", &w.probe_via(), "--settle", "0"])
        .env_clear()
        .env("CF_HOME", w.home.path())
        .env("HOME", w.home.path())
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("clone"))
        .stderr(writer)
        .spawn()
        .expect("start switchctl");
    let mut lines = BufReader::new(reader);
    for _ in 0..3 {
        let mut line = String::new();
        lines.read_line(&mut line).expect("a line");
    }
    drop(lines);
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "switchctl did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "no panic (101), no error for a broken pipe");
    w.assert_all_on(&before, "the switch went on to its end").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_mid_switch_leaves_a_state_the_rerun_finishes() {
    let w = World::new(Setup { routes: 3, ..Setup::default() }).await;
    let before = w.all_dests();
    w.cf.router.set_delay(Duration::from_millis(300), Duration::from_millis(600));
    let child = w.spawn(&["on", "shop", "--concurrency", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.cc_writes().is_empty() {
        assert!(Instant::now() < deadline, "switchctl never wrote");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.signal(Signal::SIGHUP);
    let hung = child.wait(Duration::from_secs(60)).await;
    assert_eq!(hung.code, Some(128 + 1), "SIGHUP is handled like SIGTERM\n{hung}");
    assert!(hung.stderr.contains("SIGHUP received"), "{hung}");
    w.assert_consistent("after SIGHUP").await;
    w.cf.router.set_delay(Duration::ZERO, Duration::from_millis(100));
    w.run(&["on", "shop"]).await.expect_code(0);
    w.assert_all_on(&before, "the rerun finishes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_destination_mapped_by_hand_survives_the_round_trip() {
    let w = World::new(Setup::default()).await;
    let maint = w.maint_guid();
    w.cf.map_route(&w.routes[0].guid, &maint, "web", 8080);
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    w.run(&["off", "shop"]).await.expect_code(0);
    assert_eq!(w.all_dests(), before, "exactly what was there before, the hand-mapped destination included");
    let again = w.run(&["off", "shop"]).await;
    again.expect_code(0);
}

fn assert_json_lines(run: &Run) {
    assert!(!run.stdout.trim().is_empty(), "{run}");
    for line in run.stdout.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not one JSON event ({e}): {line:?}\n{run}"));
        assert!(value["event"].is_string(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stdout_line_of_every_json_command_is_one_event() {
    let w = World::new(Setup::default()).await;
    for args in [
        vec!["--json", "status", "shop"],
        vec!["--json", "on", "shop"],
        vec!["--json", "status"],
        vec!["--json", "off", "shop"],
        vec!["--json", "run", "shop", "--", "sh", "-c", "echo not json; echo {"],
    ] {
        let run = w.run(&args).await;
        run.expect_code(0);
        assert_json_lines(&run);
    }
    let run = w.run(&["--json", "on", "nope"]).await;
    run.expect_code(2);
    assert_json_lines(&run);
    assert!(
        run.events().iter().any(|e| e["event"] == "error" && e["message"].as_str().is_some_and(|m| m.contains("nope")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_exits_1_when_a_route_is_wrong() {
    let w = World::new(Setup::default()).await;
    w.run(&["status", "shop"]).await.expect_code(0);
    w.run(&["on", "shop"]).await.expect_code(0);
    w.run(&["status", "shop"]).await.expect_code(0);
    w.run(&["status"]).await.expect_code(0);
    // Someone maps shop back by hand: users get a mix.
    w.cf.map_route(&w.routes[0].guid, &w.app.guid, "web", 8080);
    let run = w.run(&["status", "shop"]).await;
    run.expect_code(1);
    assert!(run.stdout.contains("both serve"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_the_api_refuses_is_a_usage_error() {
    let w = World::new(Setup::default()).await;
    let run = w.run(&["on", "--selector", "tier in (a"]).await;
    run.expect_code(2);
    assert!(!run.stderr.contains("please report"), "{run}");
}

/// Every `` `cf curl -X METHOD PATH [-d 'BODY']` `` command in `text`, in order.
fn printed_curls(text: &str) -> Vec<(http::Method, String, Option<serde_json::Value>)> {
    let mut out = Vec::new();
    for (i, part) in text.split('`').enumerate() {
        let Some(rest) = part.strip_prefix("cf curl -X ").filter(|_| i % 2 == 1) else { continue };
        let (method, rest) = rest.split_once(' ').expect("a method and a path");
        let (path, body) = match rest.split_once(" -d '") {
            Some((path, body)) => {
                let body = body.strip_suffix('\'').expect("the body is quoted");
                (path, Some(serde_json::from_str(body).expect("the body is JSON")))
            }
            None => (rest, None),
        };
        out.push((method.parse().expect("a method"), path.to_owned(), body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_whole_record_was_removed_is_reported_with_a_repair_that_restores_it() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    let (key, lost) = (state_key(&w.app.guid), w.routes[0].guid.clone());
    {
        let mut st = w.cf.cc.state();
        let route = st.route_mut(&lost).expect("route");
        route.metadata.labels.remove(&key);
        route.metadata.annotations.remove(&key);
    }
    let status = w.run(&["status", "shop"]).await;
    status.expect_code(1);
    assert!(status.stdout.contains(&lost) && status.stdout.contains("was unmapped"), "status reports it\n{status}");

    // The other routes are restored; the one without a record is not called restored.
    let off = w.run(&["off", "shop"]).await;
    off.expect_code(1);
    let curls = printed_curls(&off.stderr);
    assert_eq!(curls.len(), 2, "a POST that maps shop back and a DELETE of the maintenance app\n{off}");
    assert!(w.dests(&lost).iter().all(|d| d.0 == w.maint_guid()), "off changed nothing on it");

    // Run as printed, the repair restores the route exactly (same process, port and protocol).
    let auth = w.cf.bearer("developer").expect("developer");
    for (method, path, body) in curls {
        let url = format!("{}{path}", w.cf.api_url());
        let reply = w.http.json(method, &url, Some(&auth), &body.unwrap_or(serde_json::Value::Null)).await;
        assert!(reply.expect("CC answers").status.is_success(), "{path}");
    }
    w.assert_restored(&before, "after the printed repair").await;
    w.run(&["status", "shop"]).await.expect_code(0);
    w.run(&["off", "shop"]).await.expect_code(0);
}
