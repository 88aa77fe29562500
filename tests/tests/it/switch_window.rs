//! The window's edges: `--stop-processes` (stopped while the window is open, restored exactly,
//! also after a SIGKILL; someone else's scaling left alone unless `--force`), `--reason` (in the
//! record, `status` and every event), `--notify` against a receiver in the test (every event in
//! order; a failing or hanging receiver never holds `off` past its timeout), the hooks, and
//! `run --at` (nothing changes before it; Ctrl-C while waiting changes nothing).
//!
//! Request budget, counted from the double's log below: `--stop-processes` with N process types
//! costs `on` 1 process list, 1 app metadata write and N scales, and `off` 1 process list, N scales
//! and 1 app metadata write; `--reason` alone 1 write each way; `--notify`, the hooks and `--at` no
//! Cloud Controller request (`run --at` with --stop-processes reads the processes once more, to
//! check them before the wait).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::switch_support::{Setup, TempDir, World, printed, wait_for, waiting_command, with_command};

/// The app-level key of the window's record (switchctl's `window::WINDOW_KEY`).
const WINDOW_KEY: &str = "switchctl.cf-maintenance/window";

/// `shop` with a `worker` (3 instances) and a `clock` (1).
async fn world() -> World {
    let w = World::new(Setup::default()).await;
    w.cf.add_process(&w.app.guid, "worker", 3);
    w.cf.add_process(&w.app.guid, "clock", 1);
    w
}

/// Desired instances of `shop`'s process `kind`, as the Cloud Controller holds them.
fn instances(w: &World, kind: &str) -> u32 {
    let st = w.cf.cc.state();
    st.processes.iter().find(|p| p.app_guid == w.app.guid && p.process_type == kind).map(|p| p.instances).expect(kind)
}

/// Sets `shop`'s process `kind` to `n` instances, as someone with `cf scale` would.
fn scale(w: &World, kind: &str, n: u32) {
    let mut st = w.cf.cc.state();
    let p = st.processes.iter_mut().find(|p| p.app_guid == w.app.guid && p.process_type == kind).expect(kind);
    p.instances = n;
}

/// The window's record on `shop`, if any.
fn record(w: &World) -> Option<serde_json::Value> {
    let st = w.cf.cc.state();
    let app = st.app(&w.app.guid).expect("shop");
    app.metadata.annotations.get(WINDOW_KEY).map(|t| serde_json::from_str(t).expect("record is JSON"))
}

/// Requests of the double's log matching `method` and a path containing `part`.
fn count(w: &World, method: &str, part: &str) -> usize {
    w.cc_log().iter().filter(|r| r.method.as_str() == method && r.path.contains(part)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_the_writers_while_the_command_runs_and_restores_them_exactly() {
    let w = world().await;
    let before = w.all_dests();
    let dir = TempDir::new("window-stop");
    let command = waiting_command(dir.path());
    let args = ["run", "shop", "--stop-processes", "worker,clock", "--reason", "CHG-42 schema v7"];
    let job = w.spawn(&with_command(&args, &command));
    wait_for(&dir.path().join("started")).await;
    assert_eq!((instances(&w, "worker"), instances(&w, "clock")), (0, 0), "stopped while the command runs");
    assert_eq!(instances(&w, "web"), 2, "web untouched");
    w.assert_all_on(&before, "while the command runs").await;
    let rec = record(&w).expect("the record is on the app during the window");
    assert_eq!(rec["processes"], serde_json::json!({"clock": 1, "worker": 3}), "{rec}");
    assert_eq!(rec["reason"], "CHG-42 schema v7");
    let status = w.run(&["status", "shop"]).await;
    assert!(status.stdout.contains("reason: CHG-42 schema v7"), "{status}");
    assert!(status.stdout.contains("stopped process worker: 3 recorded, 0 now"), "{status}");
    let status = w.run(&["--json", "status", "shop"]).await;
    let window = status.events().into_iter().find(|e| e["event"] == "window").expect("a window event");
    assert_eq!(window["processes"][1], serde_json::json!({"process": "worker", "recorded": 3, "now": 0}));
    assert_eq!(window["reason"], "CHG-42 schema v7");
    // Without an app, status finds every open window of the space by the record's label.
    let status = w.run(&["status"]).await;
    assert!(status.stdout.contains("Window of app shop") && status.stdout.contains("CHG-42"), "{status}");

    std::fs::write(dir.path().join("release"), "").expect("release");
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(0);
    assert_eq!((instances(&w, "worker"), instances(&w, "clock")), (3, 1), "restored exactly: {run}");
    assert!(record(&w).is_none(), "the record is cleared after the window");
    w.assert_restored(&before, "after the window").await;
    assert!(run.stdout.contains("process worker: stopped (3 → 0 instances)"), "{run}");
    assert!(run.stdout.contains("process worker: restored (0 → 3 instances)"), "{run}");

    // The budget: 2 scales each way, one record write and one clear.
    assert_eq!(count(&w, "POST", "/actions/scale"), 4);
    assert_eq!(count(&w, "PATCH", &format!("/v3/apps/{}", w.app.guid)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_window_is_restored_exactly_by_off() {
    let w = world().await;
    let before = w.all_dests();
    let dir = TempDir::new("window-kill");
    let command = waiting_command(dir.path());
    let mut job = w.spawn(&with_command(&["run", "shop", "--stop-processes", "worker"], &command));
    wait_for(&dir.path().join("started")).await;
    assert_eq!(instances(&w, "worker"), 0);
    job.kill();
    let killed = job.wait(Duration::from_secs(10)).await;
    assert_eq!(killed.code, None, "killed: {killed}");
    std::fs::write(dir.path().join("release"), "").expect("release the orphaned command");
    assert_eq!(instances(&w, "worker"), 0, "nothing restores it behind our back");
    assert_eq!(instances(&w, "clock"), 1, "a process not named is untouched");
    // A rerun of `on` must not record the 0 it finds now.
    w.run(&["on", "shop", "--stop-processes", "worker"]).await.expect_code(0);
    assert_eq!(record(&w).expect("record")["processes"]["worker"], 3);
    let off = w.run(&["off", "shop"]).await;
    off.expect_code(0);
    assert_eq!(instances(&w, "worker"), 3, "restored exactly from the record: {off}");
    assert!(record(&w).is_none());
    w.assert_restored(&before, "after off").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_someone_else_scaled_is_left_alone_unless_forced() {
    let w = world().await;
    w.run(&["on", "shop", "--stop-processes", "all-but-web"]).await.expect_code(0);
    assert_eq!((instances(&w, "worker"), instances(&w, "clock"), instances(&w, "web")), (0, 0, 2));
    scale(&w, "worker", 5);
    let off = w.run(&["off", "shop"]).await;
    off.expect_code(1);
    assert!(off.stdout.contains("process worker: scaled to 5 instances by someone else"), "{off}");
    assert_eq!((instances(&w, "worker"), instances(&w, "clock")), (5, 1), "worker left, clock restored");
    assert_eq!(record(&w).expect("kept for --force")["processes"], serde_json::json!({"worker": 3}));
    let start = off.stderr.find("`switchctl --org").unwrap_or_else(|| panic!("no command: {off}"));
    let rest = &off.stderr[start + 1..];
    let command: Vec<&str> = rest[..rest.find('`').expect("closing backtick")].split_whitespace().skip(1).collect();
    assert_eq!(command.last(), Some(&"--force"), "{command:?}");
    w.run(&command).await.expect_code(0);
    assert_eq!(instances(&w, "worker"), 3, "--force restores the recorded count");
    assert!(record(&w).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_process_type_or_web_is_a_usage_error_before_any_change() {
    let w = world().await;
    let run = w.run(&["on", "shop", "--stop-processes", "wroker"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("no process type wroker") && run.stderr.contains("web, worker, clock"), "{run}");
    let run = w.run(&["on", "shop", "--stop-processes", "worker,web"]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("cannot stop web"), "{run}");
    assert!(w.cc_writes().is_empty(), "nothing changed: {:?}", w.cc_writes());
}

/// How a test receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Fail,
    Hang,
}

/// A local HTTP receiver: every POSTed body, in arrival order.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}/hook?token=s3cret", listener.local_addr().expect("addr"));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let got = Arc::clone(&bodies);
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let got = Arc::clone(&got);
                tokio::spawn(async move {
                    // One request per connection is all a test needs; bounded reads.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body_at = loop {
                        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await
                        else {
                            return;
                        };
                        if n == 0 || buf.len() > 1 << 20 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..body_at]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < body_at + len {
                        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await
                        else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    if let Ok(v) = serde_json::from_slice(&buf[body_at..body_at + len]) {
                        got.lock().expect("bodies").push(v);
                    }
                    let reply: &[u8] = match answer {
                        Answer::Ok => b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
                        Answer::Fail => {
                            b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        }
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    };
                    let _ = conn.write_all(reply).await;
                });
            }
        });
        Receiver { url, bodies, task }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().expect("bodies").clone()
    }
}

/// The events `--notify` sends: all but per-route, phase and notice lines.
fn told(events: &[serde_json::Value]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| !["route", "phase", "notice"].contains(&e["event"].as_str().unwrap_or("")))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_window_event_reaches_the_receiver_in_order_and_hooks_run() {
    let w = world().await;
    let receiver = Receiver::start(Answer::Ok).await;
    let dir = TempDir::new("window-notify");
    let on_open = format!(
        "sh -c 'printf \"%s|%s\" \"$SWITCHCTL_APP\" \"$SWITCHCTL_REASON\" > \"{}/opened\"'",
        dir.path().display()
    );
    let on_close = format!("sh -c 'printf %s \"$SWITCHCTL_EVENT\" > \"{}/closed\"'", dir.path().display());
    let args = [
        "--json",
        "run",
        "shop",
        "--notify",
        &receiver.url,
        "--reason",
        "CHG-7",
        "--stop-processes",
        "worker",
        "--on-open",
        &on_open,
        "--on-close",
        &on_close,
        "--",
        "true",
    ];
    let run = w.run(&args).await;
    run.expect_code(0);
    let sent = told(&run.events());
    let got = receiver.bodies();
    assert_eq!(got, sent, "every window event, in order, as --json prints it");
    let kinds: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap_or("")).collect();
    for kind in ["start", "window", "processes", "command", "summary"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let states: Vec<&str> =
        got.iter().filter(|e| e["event"] == "window").map(|e| e["state"].as_str().unwrap_or("")).collect();
    assert_eq!(states, ["opened", "closed"]);
    assert!(got.iter().all(|e| e["reason"] == "CHG-7"), "the reason is in every event: {got:?}");
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"), "no token printed: {run}");
    assert_eq!(std::fs::read_to_string(dir.path().join("opened")).expect("on-open ran"), "shop|CHG-7");
    assert_eq!(std::fs::read_to_string(dir.path().join("closed")).expect("on-close ran"), "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_receiver_never_holds_off_past_its_timeout() {
    let w = world().await;
    // Baseline: the same off without notifications.
    w.run(&["on", "shop"]).await.expect_code(0);
    let plain = w.run(&["off", "shop"]).await;
    plain.expect_code(0);

    let failing = Receiver::start(Answer::Fail).await;
    w.run(&["on", "shop"]).await.expect_code(0);
    let off = w.run(&["off", "shop", "--notify", &failing.url]).await;
    off.expect_code(0);
    assert!(off.stderr.contains("HTTP 500") && off.stderr.contains("the window goes on"), "{off}");
    assert!(!off.stderr.contains("s3cret"), "{off}");
    assert!(failing.bodies().len() >= 3, "retried: {}", failing.bodies().len());

    let hanging = Receiver::start(Answer::Hang).await;
    w.run(&["on", "shop"]).await.expect_code(0);
    let off = w.run(&["off", "shop", "--notify", &hanging.url]).await;
    off.expect_code(0);
    assert!(off.stderr.contains("not delivered") || off.stderr.contains("no answer"), "{off}");
    // The notification timeout is 5 s; flushing waits at most that long past the work.
    let bound = plain.took + Duration::from_secs(5) + Duration::from_secs(2);
    assert!(off.took <= bound, "off took {:?} with a hanging receiver (plain {:?})", off.took, plain.took);
    assert!(!hanging.bodies().is_empty(), "it was asked");
}

/// An `on` that cannot switch an app tells the receivers so, with the commands that finish it
/// (`on` again) or undo it (`off`), and both work pasted (before, a failed `on` sent no window
/// event at all: the receiver never learned that the window did not open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_that_fails_sends_a_failed_event_whose_commands_work() {
    let w = world().await;
    let before = w.all_dests();
    let receiver = Receiver::start(Answer::Ok).await;
    // The maintenance app's instance stops answering: the check after its destination is added
    // fails, and the route is taken back.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    w.cf.router.register(&w.maint_guid(), "web", vec![gone]);
    let on = w.run(&["--json", "on", "shop", "--notify", &receiver.url, "--timeout", "2"]).await;
    on.expect_code(1);
    let events = receiver.bodies();
    let failed = events
        .iter()
        .find(|e| e["event"] == "window" && e["state"] == "failed")
        .unwrap_or_else(|| panic!("a failed window event in {events:?}"));
    assert_eq!(failed["apps"], serde_json::json!(["shop"]), "{failed}");
    assert!(!events.iter().any(|e| e["event"] == "window" && e["state"] == "opened"), "{events:?}");

    // Undo: nothing is left in maintenance.
    let undo = printed(failed["undo"][0].as_str().unwrap_or_default(), "off");
    w.run(&undo.iter().map(String::as_str).collect::<Vec<_>>()).await.expect_code(0);
    assert_eq!(w.all_dests(), before, "undone");

    // Finish, once the maintenance app answers again: shop goes into maintenance.
    w.cf.router.register(&w.maint_guid(), "web", vec![w.maint_addr().expect("the maintenance app runs")]);
    let finish = printed(failed["finish"][0].as_str().unwrap_or_default(), "on");
    w.run(&finish.iter().map(String::as_str).collect::<Vec<_>>()).await.expect_code(0);
    assert!(w.all_dests().values().flatten().all(|d| d.0 == w.maint_guid()), "finished: {:?}", w.all_dests());
    w.run(&["off", "shop"]).await.expect_code(0);
    assert_eq!(w.all_dests(), before, "restored");
}

/// A hook that hangs runs beside the window: the window does not wait for it, and at exit it gets
/// the flush's 5 s at most, then is killed (before, `run` waited its full 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_hook_never_holds_the_window() {
    let w = world().await;
    let plain = w.run(&["run", "shop", "--", "true"]).await;
    plain.expect_code(0);
    let run = w.run(&["run", "shop", "--on-open", "sleep 60", "--", "true"]).await;
    run.expect_code(0);
    let bound = plain.took + Duration::from_secs(5) + Duration::from_secs(2);
    assert!(run.took <= bound, "run took {:?} with a hanging hook (plain {:?})", run.took, plain.took);
    assert!(run.stderr.contains("--on-open sleep: still running at exit, killed"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_at_changes_nothing_before_its_time_and_ctrl_c_cancels_the_wait() {
    let w = world().await;
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let at = at.format(&time::format_description::well_known::Rfc3339).expect("format");
    let dir = TempDir::new("window-at");
    let command = waiting_command(dir.path());
    let started = Instant::now();
    let job = w.spawn(&with_command(&["run", "shop", "--at", &at, "--stop-processes", "worker"], &command));
    // Bounded: until the command starts (at most 30 s), nothing may be written before `at`.
    while !dir.path().join("started").exists() {
        if started.elapsed() < Duration::from_millis(2500) {
            assert!(w.cc_writes().is_empty(), "a write before --at: {:?}", w.cc_writes());
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(2500), "started early: {:?}", started.elapsed());
    std::fs::write(dir.path().join("release"), "").expect("release");
    job.wait(Duration::from_secs(60)).await.expect_code(0);
    assert_eq!(instances(&w, "worker"), 3);

    // Ctrl-C while waiting: nothing changed.
    w.cf.faults.clear_log();
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let later = later.format(&time::format_description::well_known::Rfc3339).expect("format");
    let job = w.spawn_job(&["run", "shop", "--at", &later, "--reason", "later", "--", "true"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Its signal handlers are installed just before the wait.
    while !job.catches_sigint() {
        assert!(Instant::now() < deadline, "switchctl never got to the wait");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    job.interrupt();
    let run = job.wait(Duration::from_secs(10)).await;
    run.expect_code(130);
    assert!(run.stderr.contains("nothing was changed"), "{run}");
    assert!(w.cc_writes().is_empty(), "{:?}", w.cc_writes());
    assert!(record(&w).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_open_past_its_deadline_warns_once_and_tells_the_receivers() {
    let w = World::new(Setup::default()).await;
    let receiver = Receiver::start(Answer::Ok).await;
    let deadline = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let deadline = deadline.format(&time::format_description::well_known::Rfc3339).expect("format");
    let dir = TempDir::new("window-deadline");
    let command = waiting_command(dir.path());
    let args = ["run", "shop", "--deadline", &deadline, "--notify", &receiver.url];
    let job = w.spawn(&with_command(&args, &command));
    wait_for(&dir.path().join("started")).await;
    let until = Instant::now() + Duration::from_secs(30);
    while !receiver.bodies().iter().any(|e| e["event"] == "deadline") {
        assert!(Instant::now() < until, "no deadline event: {:?}", receiver.bodies());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(dir.path().join("release"), "").expect("release");
    let run = job.wait(Duration::from_secs(60)).await;
    run.expect_code(0);
    assert_eq!(run.stderr.matches("still open past its deadline").count(), 1, "{run}");
    let opened = receiver.bodies().into_iter().find(|e| e["event"] == "window").expect("opened");
    assert_eq!(opened["state"], "opened");
    assert_eq!(opened["deadline"].as_str().map(|d| d.len()), Some(20), "RFC 3339 to the second: {opened}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_names_the_processes_it_would_stop_and_changes_nothing() {
    let w = world().await;
    let run = w.run(&["on", "shop", "--dry-run", "--stop-processes", "worker", "--reason", "CHG-1"]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("process worker: would be stopped (3 → 0 instances)"), "{run}");
    assert!(w.cc_writes().is_empty(), "{:?}", w.cc_writes());
    assert_eq!(instances(&w, "worker"), 3);
}
