//! `switchctl run`: a window with a command (success, failure, Ctrl-C, `--on-failure off`) and
//! with `--restage` (success, a failed build, instances that never run), against the double and
//! the real maintenance app.

use std::{path::Path, time::Duration};

use tests::cc::state::InstanceState;

use crate::switch_support::{Run, Setup, TempDir, World, wait_for};

/// A command that records its environment in `dir/env`, says it started (`dir/started`) and waits,
/// at most 30 s, for `dir/release`, then exits with `code`. Through `sh -c`: switchctl itself
/// uses no shell.
fn waiting_command(dir: &Path, code: i32) -> Vec<String> {
    let script = format!(
        "cd '{}' && printf '%s|%s|%s' \"$SWITCHCTL_APPS\" \"$SWITCHCTL_ORG\" \"$SWITCHCTL_SPACE\" > env && \
         touch started && i=0; while [ ! -f release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; exit {code}",
        dir.display()
    );
    vec!["sh".to_owned(), "-c".to_owned(), script]
}

/// The first `` `switchctl …` `` command in `text`, as arguments.
fn printed_command(text: &str, action: &str) -> Vec<String> {
    let start = text.find("`switchctl --org").unwrap_or_else(|| panic!("no command in {text}"));
    let rest = &text[start + 1..];
    let command = &rest[..rest.find('`').expect("closing backtick")];
    assert!(command.contains(&format!(" {action} ")), "{command}");
    command.split_whitespace().skip(1).map(str::to_owned).collect()
}

fn args<'a>(fixed: &[&'a str], command: &'a [String]) -> Vec<&'a str> {
    let mut all: Vec<&str> = fixed.to_vec();
    all.push("--");
    all.extend(command.iter().map(String::as_str));
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeding_command_runs_in_maintenance_and_the_apps_come_back() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let dir = TempDir::new("run-ok");
    let command = waiting_command(dir.path(), 0);
    let job = w.spawn(&args(&["run", "shop"], &command));
    wait_for(&dir.path().join("started")).await;
    w.assert_all_on(&before, "while the command runs").await;
    let env = std::fs::read_to_string(dir.path().join("env")).expect("env written");
    assert_eq!(env, "shop|org|dev", "the command learns the apps, org and space");
    std::fs::write(dir.path().join("release"), "").expect("release");
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(0);
    assert!(run.stdout.contains("OK: the window is closed"), "{run}");
    w.assert_restored(&before, "after the window").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_keeps_the_apps_in_maintenance_and_its_exit_code() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let run = w.run(&["run", "shop", "--", "sh", "-c", "echo migrating; exit 7"]).await;
    run.expect_code(7);
    assert!(run.stdout.contains("migrating"), "the command's output is inherited: {run}");
    assert!(run.stderr.contains("failed") && run.stderr.contains("Staying in maintenance: shop"), "{run}");
    w.assert_all_on(&before, "after the failed command").await;
    let finish = printed_command(&run.stderr, "off");
    let finish: Vec<&str> = finish.iter().map(String::as_str).collect();
    w.run(&finish).await.expect_code(0);
    w.assert_restored(&before, "after the printed command").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_the_command_is_a_failure() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let dir = TempDir::new("run-int");
    // The script ends as a process ended by SIGINT would: 130.
    let mut command = waiting_command(dir.path(), 0);
    command[2] = format!("trap 'exit 130' INT; {}", command[2]);
    let job = w.spawn_job(&args(&["run", "shop"], &command));
    wait_for(&dir.path().join("started")).await;
    job.interrupt();
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(130);
    assert!(run.stderr.contains("SIGINT received"), "{run}");
    w.assert_all_on(&before, "after Ctrl-C").await;
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_off_takes_the_apps_back() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let run = w.run(&["run", "shop", "--on-failure", "off", "--", "sh", "-c", "exit 3"]).await;
    run.expect_code(3);
    assert!(run.stderr.contains("out of maintenance again"), "{run}");
    w.assert_restored(&before, "after --on-failure off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_does_not_exist_is_127_and_nothing_is_exposed() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let run = w.run(&["run", "shop", "--", "no-such-command-here"]).await;
    run.expect_code(127);
    assert!(run.stderr.contains("\"no-such-command-here\" is not found on PATH"), "{run}");
    // Found out before the window opens: nothing changed, nothing to finish.
    assert!(w.cc_writes().is_empty(), "no write: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before, "after a missing command");
    let usage = w.run(&["run", "shop"]).await;
    usage.expect_code(2);
    assert!(usage.stderr.contains("nothing to do in the window"), "{usage}");
}

fn current_droplet(w: &World) -> Option<String> {
    let st = w.cf.cc.state();
    st.app(&w.app.guid).and_then(|a| a.droplet_guid.clone())
}

fn assert_json_lines(run: &Run) {
    let events = run.events();
    assert!(events.iter().all(|e| e["event"].is_string() && e["elapsed_s"].is_number()), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restage_stages_restarts_and_takes_the_app_out() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let old = current_droplet(&w);
    let run = w.run(&["--json", "run", "shop", "--restage"]).await;
    run.expect_code(0);
    assert_json_lines(&run);
    let phases: Vec<String> = run
        .events()
        .iter()
        .filter(|e| e["event"] == "phase" && e["app"] == "shop")
        .filter_map(|e| e["phase"].as_str().map(str::to_owned))
        .collect();
    for phase in ["switching", "staging", "restarting", "starting", "restaged", "restoring"] {
        assert!(phases.iter().any(|p| p == phase), "phase {phase} in {phases:?}");
    }
    assert_ne!(current_droplet(&w), old, "a new droplet is current");
    let writes = w.cc_writes();
    for step in ["POST /v3/builds", "/actions/stop", "/relationships/current_droplet", "/actions/start"] {
        assert!(writes.iter().any(|x| x.contains(step)), "{step} in {writes:?}");
    }
    w.assert_restored(&before, "after the restage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_build_keeps_the_app_in_maintenance_with_the_error() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let old = current_droplet(&w);
    w.cf.fail_staging(&w.app.guid, Some("StagingError - Staging error: buildpack compile failed"));
    let run = w.run(&["run", "shop", "--restage"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("staging failed: StagingError - Staging error: buildpack compile failed"), "{run}");
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    assert_eq!(current_droplet(&w), old, "the old droplet stays current");
    w.assert_all_on(&before, "after the failed build").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_that_never_run_time_out_and_the_app_stays_in_maintenance() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    w.cf.set_instance_states(&w.app.web_process, Some(vec![InstanceState::Starting; 2]));
    let run = w.run(&["run", "shop", "--restage", "--startup-timeout", "2"]).await;
    run.expect_code(1);
    assert!(run.stderr.contains("not every web instance of shop runs after 2s (2 STARTING; 2 wanted)"), "{run}");
    assert!(run.stderr.contains("still in maintenance: shop"), "{run}");
    w.cf.set_instance_states(&w.app.web_process, None);
    w.assert_all_on(&before, "after the timeout").await;
}
