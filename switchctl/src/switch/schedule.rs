//! When: `run --at TIME` waits before any change, and `--deadline TIME` warns once when the window
//! is still open past it.

use std::time::Duration;

use nix::sys::signal::Signal;
use time::OffsetDateTime;

use super::signals::Signals;
use crate::{output::Output, settings::rfc3339};

/// How often the countdown is refreshed on a terminal; printed lines and JSON events come at most
/// once a minute (and at the start).
const TICK: Duration = Duration::from_secs(1);

/// Waits until `at` with a countdown; `Err(signal)` when a signal arrived first (nothing changed).
pub async fn wait_until(out: &Output, at: OffsetDateTime, signals: &mut Signals) -> Result<(), Signal> {
    // Signals during the wait come here (as during `run`'s command), not to the switch's
    // "finish the steps under way": there is no step yet.
    signals.set_in_command(true);
    let waited = wait(out, at, signals).await;
    signals.set_in_command(false);
    waited
}

async fn wait(out: &Output, at: OffsetDateTime, signals: &mut Signals) -> Result<(), Signal> {
    let until = rfc3339(at);
    let mut last_said: Option<u64> = None;
    loop {
        let left = at - OffsetDateTime::now_utc();
        if left <= time::Duration::ZERO {
            out.app_done("waiting");
            return Ok(());
        }
        let secs = u64::try_from(left.whole_seconds()).unwrap_or(0);
        let minute = secs / 60;
        let announce = last_said != Some(minute);
        out.progress("waiting", &format!("waiting until {until} (in {}); Ctrl-C cancels", human(secs)), announce);
        if announce {
            last_said = Some(minute);
            out.event("waiting", serde_json::json!({"until": until, "seconds_left": secs}));
        }
        let nap = Duration::try_from(left).unwrap_or(TICK).min(TICK);
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            Some(signal) = signals.next() => {
                out.app_done("waiting");
                return Err(signal);
            }
        }
    }
}

/// The deadline's watch: it ends when dropped.
#[derive(Debug)]
pub struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Warns once (a notice, and a `deadline` event, which `--notify` sends) when `deadline` passes
/// while the returned watch lives.
pub fn watch_deadline(out: &Output, deadline: OffsetDateTime, apps: Vec<String>) -> Watch {
    let out = out.clone();
    Watch(tokio::spawn(async move {
        let left = deadline - OffsetDateTime::now_utc();
        if left > time::Duration::ZERO {
            tokio::time::sleep(Duration::try_from(left).unwrap_or_default()).await;
        }
        let until = rfc3339(deadline);
        out.notice(&format!("warning: the window is still open past its deadline {until}"));
        out.event("deadline", serde_json::json!({"state": "passed", "deadline": until, "apps": apps}));
    }))
}

/// `1h 02m 03s`, `4m 05s`, `6s`.
pub fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}
