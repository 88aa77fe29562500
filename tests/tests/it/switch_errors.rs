//! Acceptance (issue 4): errors are surfaced clearly (message and exit code) and change nothing;
//! `--dry-run` makes no write; `on` twice reports the app is already in maintenance; `off`
//! refuses when the app has no running instance unless `--force`.

use tests::InstanceState;

use crate::switch_support::{Maint, Run, Setup, Switchctl, TempDir, World, not_implemented};

fn stderr_has(run: &Run, any: &[&str]) -> bool {
    let text = run.stderr.to_lowercase();
    any.iter().any(|m| text.contains(&m.to_lowercase()))
}

fn assert_failed_with(run: &Run, codes: &[i32], any: &[&str]) {
    println!("{run}");
    assert!(run.code.is_some_and(|c| codes.contains(&c)), "exit code one of {codes:?}\n{run}");
    assert!(stderr_has(run, any), "stderr says one of {any:?}\n{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_logged_in_says_cf_login_and_exits_2() {
    let home = TempDir::new("empty");
    let run =
        Switchctl::spawn(home.path(), &["on".into(), "shop".into()]).wait(std::time::Duration::from_secs(30)).await;
    assert_failed_with(&run, &[2], &["cf login"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_target_space_says_cf_target_and_exits_2() {
    let w = World::new(Setup::default()).await;
    let path = w.config_path();
    let mut config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("config")).expect("json");
    config.remove("SpaceFields");
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json")).expect("write config");
    let run = w.run(&["on", "shop"]).await;
    assert_failed_with(&run, &[2], &["cf target", "--space"]);
    assert!(w.cc_writes().is_empty(), "nothing written: {:?}", w.cc_writes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_app_is_named() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let run = w.run(&["on", "nope"]).await;
    assert!(!not_implemented(&run), "switchctl on is implemented\n{run}");
    assert_failed_with(&run, &[1, 2], &["nope"]);
    assert!(stderr_has(&run, &["not found", "does not exist", "no app"]), "says it is not there\n{run}");
    assert!(w.cc_writes().is_empty(), "nothing written: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_maintenance_app_is_named() {
    let w = World::new(Setup { maint: Maint::Missing, ..Setup::default() }).await;
    let before = w.all_dests();
    let run = w.run(&["on", "shop"]).await;
    assert!(!not_implemented(&run), "switchctl on is implemented\n{run}");
    assert_failed_with(&run, &[1, 2], &["maintenance-app"]);
    assert!(
        stderr_has(&run, &["not found", "does not exist", "no app", "cf push", "push"]),
        "says it is not there\n{run}"
    );
    assert!(w.cc_writes().is_empty(), "nothing written: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_maintenance_app_is_refused() {
    let w = World::new(Setup { maint: Maint::Stopped, ..Setup::default() }).await;
    let before = w.all_dests();
    let run = w.run(&["on", "shop"]).await;
    assert!(!not_implemented(&run), "switchctl on is implemented\n{run}");
    assert_failed_with(&run, &[1, 2], &["maintenance-app"]);
    assert!(
        stderr_has(&run, &["stopped", "not running", "not started", "cf start", "no running"]),
        "says it is stopped\n{run}"
    );
    assert!(w.cc_writes().is_empty(), "nothing written: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);
    w.assert_restored(&before, "after a refused on").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_app_in_another_space_is_refused() {
    let w = World::new(Setup { maint: Maint::OtherSpace, ..Setup::default() }).await;
    let before = w.all_dests();
    let run = w.run(&["on", "shop"]).await;
    assert!(!not_implemented(&run), "switchctl on is implemented\n{run}");
    assert_failed_with(&run, &[1, 2], &["maintenance-app", "route's space"]);
    assert_eq!(w.all_dests(), before, "destinations unchanged");
    w.assert_consistent("maintenance app in another space").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_is_told_which_role_is_needed() {
    let w = World::new(Setup { user: "auditor", ..Setup::default() }).await;
    let before = w.all_dests();
    let run = w.run(&["on", "shop"]).await;
    assert!(!not_implemented(&run), "switchctl on is implemented\n{run}");
    assert_failed_with(&run, &[1, 2], &["space developer", "space supporter"]);
    assert_eq!(w.all_dests(), before, "destinations unchanged");
    w.assert_restored(&before, "auditor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_makes_no_write() {
    let w = World::new(Setup { extra_routes: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let run = w.run(&["on", "shop", "--dry-run"]).await;
    run.expect_code(0);
    assert!(w.cc_writes().is_empty(), "on --dry-run: only GET/HEAD: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), before);
    for r in &w.routes {
        assert!(run.stdout.contains(&r.host), "the plan names {}\n{run}", r.host);
    }

    w.run(&["on", "shop"]).await.expect_code(0);
    w.cf.faults.clear_log();
    let on_state = w.all_dests();
    let run = w.run(&["off", "shop", "--dry-run"]).await;
    run.expect_code(0);
    assert!(w.cc_writes().is_empty(), "off --dry-run: only GET/HEAD: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), on_state);
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_twice_reports_already_in_maintenance_and_json_has_the_contract_shape() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    let first = w.run(&["--json", "on", "shop"]).await;
    first.expect_code(0);
    let doc = first.report();
    assert_eq!(doc["app"], "shop", "{doc}");
    assert_eq!(doc["action"], "on", "{doc}");
    assert_eq!(doc["ok"], true, "{doc}");
    let routes = doc["routes"].as_array().expect("routes array");
    assert_eq!(routes.len(), w.routes.len(), "{doc}");
    for r in routes {
        for key in ["url", "route_guid", "result"] {
            assert!(r.get(key).is_some(), "route entry has {key}: {r}");
        }
        assert!(w.routes.iter().any(|x| Some(x.guid.as_str()) == r["route_guid"].as_str()), "{r}");
    }
    w.cf.faults.clear_log();
    let second = w.run(&["on", "shop"]).await;
    second.expect_code(0);
    assert!(
        (second.stdout.clone() + &second.stderr).to_lowercase().contains("already"),
        "says shop is already in maintenance\n{second}"
    );
    assert!(w.cc_writes().is_empty(), "nothing to write: {:?}", w.cc_writes());
    w.assert_all_on(&before, "on twice").await;
    w.run(&["off", "shop"]).await.expect_code(0);
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_refuses_without_a_running_instance_unless_forced() {
    let w = World::new(Setup::default()).await;
    let before = w.all_dests();
    w.run(&["on", "shop"]).await.expect_code(0);
    let on_state = w.all_dests();
    w.cf.set_instance_states(&w.app.web_process, Some(vec![InstanceState::Crashed, InstanceState::Crashed]));
    w.cf.faults.clear_log();
    let run = w.run(&["off", "shop"]).await;
    assert_failed_with(&run, &[1], &["--force"]);
    assert!(w.cc_writes().is_empty(), "preflight refused before any write: {:?}", w.cc_writes());
    assert_eq!(w.all_dests(), on_state);
    w.assert_consistent("off refused").await;

    let forced = w.run(&["off", "shop", "--force", "--no-verify"]).await;
    forced.expect_code(0);
    assert_eq!(w.all_dests(), before, "--force restores the destinations");
    w.cf.set_instance_states(&w.app.web_process, None);
    w.assert_restored(&before, "after off --force").await;
}
