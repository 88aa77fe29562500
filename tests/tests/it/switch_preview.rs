//! `--preview` and `run --smoke`/`--smoke-url`: while the window is open the preview route answers
//! from the app and the public routes from the maintenance app; a passing smoke test reopens and
//! the preview route is gone; a failing one keeps the window open with its exit code, and the
//! printed finish command removes the preview; `off` after a SIGKILL finds the preview in the
//! window's record.
//!
//! Request budget of `--preview`, counted from the double's log below: `on` 1 read of the app's
//! switched routes, 1 look-up of the preview host, 1 app metadata write (the record), 1 route
//! create, 1 destinations insert; `off` 1 look-up, 1 route delete, 1 app metadata write (the
//! record cleared). `--smoke-url` costs no Cloud Controller request.

use std::{path::Path, time::Duration};

use crate::switch_support::{Answer, HttpRoute, TempDir, World, printed, wait_for, with_command};

/// The app-level key of the window's record (switchctl's `window::WINDOW_KEY`).
const WINDOW_KEY: &str = "switchctl.cf-maintenance/window";

/// The preview routes in the Cloud Controller: (guid, host).
fn previews(w: &World) -> Vec<(String, String)> {
    let st = w.cf.cc.state();
    st.routes.iter().filter(|r| r.host.contains("-preview-")).map(|r| (r.guid.clone(), r.host.clone())).collect()
}

/// The window's record on `shop`, if any.
fn record(w: &World) -> Option<serde_json::Value> {
    let st = w.cf.cc.state();
    let app = st.app(&w.app.guid).expect("shop");
    app.metadata.annotations.get(WINDOW_KEY).map(|t| serde_json::from_str(t).expect("record is JSON"))
}

/// A command that writes SWITCHCTL_PREVIEW_URL to `dir/url`, says it started and waits, at most
/// 30 s, for `dir/release`.
fn waiting_command(dir: &Path) -> Vec<String> {
    let script = format!(
        "cd '{}' && printf %s \"$SWITCHCTL_PREVIEW_URL\" > url && touch started && i=0; \
         while [ ! -f release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        dir.display()
    );
    vec!["sh".to_owned(), "-c".to_owned(), script]
}

fn count(w: &World, method: &str, pred: impl Fn(&str) -> bool) -> usize {
    w.cc_log().iter().filter(|r| r.method.as_str() == method && pred(&r.path)).count()
}

/// `n` answers on the preview route through the router.
async fn preview_answers(w: &World, host: &str, n: usize) -> Vec<Answer> {
    let route = HttpRoute { guid: String::new(), host: format!("{host}.apps.example.com"), request_path: "/".into() };
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(w.probe(&route).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_smoke_url_previews_the_app_during_the_window_and_reopens() {
    let w = World::new(Default::default()).await;
    let before = w.all_dests();
    let dir = TempDir::new("preview-pass");
    let command = waiting_command(dir.path());
    let job = w.spawn(&with_command(&["run", "shop", "--preview", "--smoke-url", "/"], &command));
    wait_for(&dir.path().join("started")).await;

    let [(guid, host)] = previews(&w).try_into().expect("one preview route while the command runs");
    assert!(host.starts_with("shop-preview-") && host.len() == "shop-preview-".len() + 8, "{host}");
    let url = std::fs::read_to_string(dir.path().join("url")).expect("url written");
    assert_eq!(url, format!("http://{host}.apps.example.com"), "exported to the command");
    let rec = record(&w).expect("the record names the preview");
    assert_eq!(rec["preview"]["url"], format!("{host}.apps.example.com"), "{rec}");
    assert_eq!(rec["preview"]["created"], true);
    // Same process, port and protocol as the app's first HTTP route had.
    assert_eq!(w.dests(&guid), before[&w.routes[0].guid], "the recorded destinations");
    assert!(preview_answers(&w, &host, 10).await.iter().all(|a| *a == Answer::App), "preview answers from the app");
    w.assert_all_on(&before, "while the command runs").await;
    let status = w.run(&["status", "shop"]).await;
    assert!(status.stdout.contains(&format!("preview: {host}.apps.example.com")), "{status}");

    std::fs::write(dir.path().join("release"), "").expect("release");
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(0);
    assert!(run.stdout.contains("smoke test passed"), "{run}");
    assert!(run.stdout.contains(&format!("preview: http://{host}.apps.example.com (route created")), "{run}");
    assert!(previews(&w).is_empty(), "the preview route is deleted: {run}");
    assert!(record(&w).is_none(), "the record is cleared");
    w.assert_restored(&before, "after the window").await;

    // The budget (see the module docs).
    assert_eq!(count(&w, "POST", |p| p == "/v3/routes"), 1, "one route created");
    assert_eq!(count(&w, "DELETE", |p| p == format!("/v3/routes/{guid}")), 1, "one route deleted");
    assert_eq!(count(&w, "POST", |p| p == format!("/v3/routes/{guid}/destinations")), 1, "one insert");
    assert_eq!(count(&w, "PATCH", |p| p == format!("/v3/apps/{}", w.app.guid)), 2, "record written, cleared");
    let lookups = w
        .cc_log()
        .iter()
        .filter(|r| r.method.as_str() == "GET" && r.query.as_deref().is_some_and(|q| q.contains("hosts=")))
        .count();
    assert_eq!(lookups, 2, "one look-up each way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_test_keeps_the_window_and_the_printed_off_removes_the_preview() {
    let w = World::new(Default::default()).await;
    let before = w.all_dests();
    let run = w.run(&["run", "shop", "--preview", "--smoke", "sh -c \"exit 3\"", "--", "true"]).await;
    run.expect_code(3);
    assert!(run.stderr.contains("smoke test FAILED"), "{run}");
    w.assert_all_on(&before, "after the failed smoke test").await;
    let [(_, host)] = previews(&w).try_into().expect("the preview stays with the window");
    assert!(preview_answers(&w, &host, 5).await.iter().all(|a| *a == Answer::App));
    let command = printed(&run.stderr, "off");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let off = w.run(&command).await;
    off.expect_code(0);
    assert!(previews(&w).is_empty(), "the finish command removes the preview: {off}");
    assert!(record(&w).is_none());
    w.assert_restored(&before, "after the finish command").await;
}

/// `--smoke-url` fails when the app stops answering through the preview route during the
/// command: the window stays, exit 1, and the printed finish command closes it once the app is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_smoke_url_keeps_the_window_and_names_the_url() {
    let w = World::new(Default::default()).await;
    let before = w.all_dests();
    let dir = TempDir::new("preview-smoke-url");
    let command = waiting_command(dir.path());
    let args = with_command(&["run", "shop", "--preview", "--smoke-url", "/health", "--timeout", "2"], &command);
    let job = w.spawn(&args);
    wait_for(&dir.path().join("started")).await;
    let [(_, host)] = previews(&w).try_into().expect("one preview route while the command runs");
    // The app's instances go away while the command runs: the router answers 502 for them.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    w.cf.router.register(&w.app.guid, "web", vec![gone]);
    std::fs::write(dir.path().join("release"), "").expect("release");
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(1);
    let url = format!("GET http://{host}.apps.example.com/health");
    assert!(
        run.stderr.contains(&format!("smoke test FAILED: {url}: no 2xx/3xx answer from the app within 2s")),
        "{run}"
    );
    w.assert_all_on(&before, "after the failed smoke test").await;
    assert_eq!(previews(&w).len(), 1, "the preview stays with the window");

    w.cf.router.register(&w.app.guid, "web", w.app_addrs());
    let command = printed(&run.stderr, "off");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    w.run(&command).await.expect_code(0);
    assert!(previews(&w).is_empty() && record(&w).is_none(), "closed by the finish command");
    w.assert_restored(&before, "after the finish command").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_after_a_sigkill_finds_the_preview_in_the_record() {
    let w = World::new(Default::default()).await;
    let before = w.all_dests();
    let dir = TempDir::new("preview-kill");
    let command = waiting_command(dir.path());
    let mut job = w.spawn(&with_command(&["run", "shop", "--preview"], &command));
    wait_for(&dir.path().join("started")).await;
    assert_eq!(previews(&w).len(), 1);
    job.kill();
    let killed = job.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "killed: {killed}");
    std::fs::write(dir.path().join("release"), "").expect("release the orphaned command");
    // A rerun of `on` neither switches the preview route nor makes a second one.
    w.run(&["on", "shop", "--preview"]).await.expect_code(0);
    let [(guid, host)] = previews(&w).try_into().expect("still one preview route");
    assert!(!w.dests(&guid).is_empty() && w.dests(&guid).iter().all(|d| d.0 == w.app.guid), "still the app's");
    assert!(preview_answers(&w, &host, 5).await.iter().all(|a| *a == Answer::App));
    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert!(previews(&w).is_empty(), "removed from the record's note: {off}");
    assert!(record(&w).is_none());
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_test_without_preview_is_a_usage_error_before_any_change() {
    let w = World::new(Default::default()).await;
    for smoke in [["--smoke", "true"], ["--smoke-url", "/"]] {
        let run = w.run(&["run", "shop", smoke[0], smoke[1], "--", "true"]).await;
        run.expect_code(2);
        assert!(run.stderr.contains("--preview"), "the usage error names what is missing: {run}");
    }
    assert!(w.cc_writes().is_empty(), "nothing changed: {:?}", w.cc_writes());
}
