//! Telling people: `--notify URL` and the `--on-open` / `--on-close` hooks.
//!
//! Every window event (the `--json` objects, without per-route and phase lines and notices, see
//! [`crate::output::Tap`]) is queued for each URL and POSTed by one task per URL, so each receiver
//! gets them in order and none waits for another. A request gets [`TIMEOUT`]; a connection error,
//! a 5xx or a 429 is tried [`ATTEMPTS`] times in all; a timeout is not retried (a hanging receiver
//! would hold every later event three times as long). The switch never waits for a receiver:
//! before exit, [`Notifier::flush`] gives the queues at most [`TIMEOUT`] to drain, then names what
//! was not delivered. A failing receiver warns once (through [`Output::notice`]), with its URL
//! shown without credentials or query ([`redact_url`]).

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{
    output::{Output, Tap},
    settings::{Settings, redact_url},
};

/// One POST's limit, and the longest wait for the queues before exit.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per event, the first included.
pub const ATTEMPTS: u32 = 3;
/// The longest a hook may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// The hooks still running, each in a task of its own: the window goes on without waiting for
/// them, and [`finish_hooks`] gives them a bounded time before exit. Process-wide because hooks
/// are started from deep in a window and awaited once, at the very end of `main`'s run.
static HOOKS: std::sync::Mutex<Vec<(String, tokio::task::JoinHandle<()>)>> = std::sync::Mutex::new(Vec::new());

/// The queues of `--notify`.
#[derive(Debug)]
pub struct Notifier {
    queues: Vec<Queue>,
}

#[derive(Debug)]
struct Queue {
    shown: String,
    pending: Arc<AtomicUsize>,
}

impl Notifier {
    /// Starts a task per `--notify` URL and taps `out`'s events into them; `None` without URLs.
    pub fn install(out: &Output, settings: &Settings) -> Option<Notifier> {
        out.set_reason(settings.window.reason.clone());
        if settings.window.notify.is_empty() {
            return None;
        }
        let http = match reqwest::Client::builder().timeout(TIMEOUT).connect_timeout(TIMEOUT).build() {
            Ok(http) => http,
            Err(e) => {
                out.notice(&format!("warning: cannot send notifications: {}", e.without_url()));
                return None;
            }
        };
        let mut queues = Vec::new();
        let mut senders: Vec<(UnboundedSender<Value>, Arc<AtomicUsize>)> = Vec::new();
        for url in &settings.window.notify {
            let (tx, rx) = unbounded_channel();
            let pending = Arc::new(AtomicUsize::new(0));
            tokio::spawn(deliver(http.clone(), url.clone(), rx, Arc::clone(&pending), out.clone()));
            queues.push(Queue { shown: redact_url(url), pending: Arc::clone(&pending) });
            senders.push((tx, pending));
        }
        out.set_tap(Tap::new(move |event| {
            for (tx, pending) in &senders {
                pending.fetch_add(1, Ordering::SeqCst);
                if tx.send(event.clone()).is_err() {
                    pending.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }));
        Some(Notifier { queues })
    }

    /// Waits at most [`TIMEOUT`] for every queue to drain; says what was not delivered.
    pub async fn flush(&self, out: &Output) {
        let deadline = Instant::now() + TIMEOUT;
        while self.queues.iter().any(|q| q.pending.load(Ordering::SeqCst) > 0) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for q in &self.queues {
            let left = q.pending.load(Ordering::SeqCst);
            if left > 0 {
                out.notice(&format!(
                    "warning: {} not delivered to {} (it did not answer in time)",
                    if left == 1 { "1 notification".to_owned() } else { format!("{left} notifications") },
                    q.shown
                ));
            }
        }
    }
}

/// Delivers `url`'s queue in order until the sender goes.
async fn deliver(
    http: reqwest::Client,
    url: String,
    mut rx: UnboundedReceiver<Value>,
    pending: Arc<AtomicUsize>,
    out: Output,
) {
    let mut warned = false;
    while let Some(event) = rx.recv().await {
        if let Err(why) = post(&http, &url, &event).await
            && !std::mem::replace(&mut warned, true)
        {
            out.notice(&format!(
                "warning: notification to {} failed: {why}; the window goes on without waiting for it",
                redact_url(&url)
            ));
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One event, tried up to [`ATTEMPTS`] times.
async fn post(http: &reqwest::Client, url: &str, event: &Value) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match http.post(url).json(event).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                last = format!("HTTP {}", r.status().as_u16());
                if !(r.status().is_server_error() || r.status().as_u16() == 429) {
                    return Err(last);
                }
            }
            Err(e) if e.is_timeout() => return Err(format!("no answer within {} s", TIMEOUT.as_secs())),
            // reqwest's message names the URL, which may carry a token.
            Err(e) => last = crate::error::describe(&e.without_url()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(300) * attempt).await;
        }
    }
    Err(last)
}

/// The environment of a hook.
#[derive(Debug, Clone, Copy)]
pub struct HookEnv<'a> {
    /// `opened` or `closed`.
    pub event: &'a str,
    /// The apps.
    pub apps: &'a [&'a str],
    /// `--reason`.
    pub reason: Option<&'a str>,
}

/// Starts a hook (`--on-open`, `--on-close`) without a shell and returns at once: telling people
/// must not hold the window. A task waits for it (at most [`HOOK_TIMEOUT`], then kills it) and
/// warns when it fails; [`finish_hooks`] waits for those tasks before exit.
pub async fn hook(out: &Output, flag: &str, command: &[String], env: HookEnv<'_>) {
    let Some((program, args)) = command.split_first() else { return };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(out.child_stdout())
        .kill_on_drop(true)
        .env("SWITCHCTL_EVENT", env.event)
        .env("SWITCHCTL_APPS", env.apps.join("\n"))
        .env("SWITCHCTL_REASON", env.reason.unwrap_or_default());
    if let [one] = env.apps {
        cmd.env("SWITCHCTL_APP", one);
    }
    let name = format!("{flag} {program}");
    let warn = {
        let (out, name) = (out.clone(), name.clone());
        move |why: String| out.notice(&format!("warning: {name}: {why}; the window goes on"))
    };
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return warn(format!("cannot run it: {e}")),
    };
    let waiting = tokio::spawn(async move {
        match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => warn(format!("failed ({status})")),
            Ok(Err(e)) => warn(format!("lost track of it: {e}")),
            Err(_) => {
                let _ = child.kill().await;
                warn(format!("still running after {} s, killed", HOOK_TIMEOUT.as_secs()));
            }
        }
    });
    HOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((name, waiting));
}

/// Before exit: the hooks still running get at most [`TIMEOUT`] in all; those still running then
/// are killed (their task is dropped, and the child with it), each named in a warning.
pub async fn finish_hooks(out: &Output) {
    let hooks = std::mem::take(&mut *HOOKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    for (name, mut task) in hooks {
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            out.notice(&format!("warning: {name}: still running at exit, killed"));
        }
    }
}
