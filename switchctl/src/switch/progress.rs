//! What `on`, `off` and `run` show while they work, in one of three styles:
//!
//! * **live** (stdout and stderr are terminals): a line per app at work with its phase and elapsed
//!   time (indicatif), a line above them for each failure, and the summary at the end;
//! * **lines** (a pipe or a file): cf-style lines as routes and phases complete;
//! * **JSON** (`--json`): one JSON object per line, each with `event` and `elapsed_s`.
//!
//! Writes never stop the work: the first failure to write is kept and reported at the end.

use std::{
    collections::HashMap,
    io::{IsTerminal as _, Write as _},
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::output::{Report, RouteReport};
use crate::error::Error;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Live lines per app on a terminal.
    Live,
    /// Plain lines.
    Lines,
    /// One JSON event per line.
    Json,
}

impl Style {
    /// JSON with `--json`; live when stdout and stderr are both terminals (and `TERM` is not
    /// `dumb`); lines otherwise.
    pub fn detect(json: bool) -> Style {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if json {
            Style::Json
        } else if std::io::stdout().is_terminal() && std::io::stderr().is_terminal() && !dumb {
            Style::Live
        } else {
            Style::Lines
        }
    }
}

/// The progress display shared by every task of a run (cheap to clone).
#[derive(Debug, Clone)]
pub struct Progress {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    style: Style,
    started: Instant,
    /// More than one app: lines name their app.
    fleet: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    error: Option<std::io::Error>,
}

impl Progress {
    /// A display in `style`; `fleet` when several apps are worked on.
    pub fn new(style: Style, fleet: bool) -> Progress {
        let multi = (style == Style::Live).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let state = State { multi, ..State::default() };
        Progress { shared: Arc::new(Shared { style, started: Instant::now(), fleet, state: Mutex::new(state) }) }
    }

    /// The style.
    pub fn style(&self) -> Style {
        self.shared.style
    }

    /// Whether several apps are worked on.
    pub fn fleet(&self) -> bool {
        self.shared.fleet
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-written that matters for display.
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A line of text on stdout (live and lines styles).
    pub fn line(&self, text: &str) {
        if self.shared.style == Style::Json {
            return;
        }
        let mut state = self.state();
        write_stdout(&mut state, text);
    }

    /// One JSON event (JSON style only): `{"event": kind, "elapsed_s": …, …fields}`.
    pub fn event(&self, kind: &str, fields: impl Serialize) {
        if self.shared.style != Style::Json {
            return;
        }
        let mut object = Map::new();
        object.insert("event".into(), Value::from(kind));
        let elapsed = (self.shared.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        object.insert("elapsed_s".into(), Value::from(elapsed));
        match serde_json::to_value(fields) {
            Ok(Value::Object(fields)) => object.extend(fields),
            Ok(other) => {
                object.insert("data".into(), other);
            }
            Err(e) => {
                self.state().error.get_or_insert(std::io::Error::other(e));
                return;
            }
        }
        let text = Value::Object(object).to_string();
        let mut state = self.state();
        write_stdout(&mut state, &text);
    }

    /// `app` entered `phase` (e.g. `switching`, `staging`): its live line, a JSON event, and in
    /// the lines style a line when `announce`.
    pub fn phase(&self, app: &str, phase: &str, detail: Option<&str>, announce: bool) {
        match self.shared.style {
            Style::Json => self.event("phase", json!({"app": app, "phase": phase, "detail": detail})),
            Style::Lines if announce => {
                let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
                self.line(&format!("{}{phase}{detail}", self.prefix(app)));
            }
            Style::Lines => {}
            Style::Live => {
                let bar = self.bar(app);
                bar.set_message(match detail {
                    Some(d) => format!("{phase}: {d}"),
                    None => phase.to_owned(),
                });
            }
        }
    }

    /// A route of `app` is done; `text` is its cf-style line.
    pub fn route(&self, app: &str, action: &str, report: &RouteReport, text: &str) {
        match self.shared.style {
            Style::Json => self.event("route", json!({"app": app, "action": action, "route": report})),
            Style::Lines => self.line(&format!("{}{text}", self.prefix(app))),
            Style::Live => {
                let bar = self.bar(app);
                bar.inc(1);
                if report.result == super::output::Outcome::Failed {
                    let mut state = self.state();
                    write_stdout(&mut state, &format!("{}{text}", self.prefix(app)));
                }
            }
        }
    }

    /// `app`'s part is over: its live line goes, a JSON event says how it ended.
    pub fn app_done(&self, app: &str, report: &Report) {
        match self.shared.style {
            Style::Json => self.event("app", report),
            Style::Lines => {}
            Style::Live => {
                let mut state = self.state();
                if let Some(bar) = state.bars.remove(app) {
                    bar.finish_and_clear();
                    if let Some(multi) = &state.multi {
                        multi.remove(&bar);
                    }
                }
            }
        }
    }

    /// Sets the number of routes an app's live line counts to.
    pub fn routes_total(&self, app: &str, total: usize) {
        if self.shared.style == Style::Live {
            let bar = self.bar(app);
            bar.set_length(total as u64);
            bar.set_style(route_style());
        }
    }

    /// `[app] ` in a fleet, nothing for one app.
    pub fn prefix(&self, app: &str) -> String {
        if self.shared.fleet { format!("[{app}] ") } else { String::new() }
    }

    fn bar(&self, app: &str) -> ProgressBar {
        let mut state = self.state();
        if let Some(bar) = state.bars.get(app) {
            return bar.clone();
        }
        let bar = ProgressBar::new_spinner().with_style(spinner_style()).with_prefix(app.to_owned());
        let bar = match &state.multi {
            Some(multi) => multi.add(bar),
            None => bar,
        };
        bar.enable_steady_tick(Duration::from_millis(120));
        state.bars.insert(app.to_owned(), bar.clone());
        bar
    }

    /// Clears what is left of the live lines; the first write error, if any.
    pub fn finish(&self) -> Result<(), Error> {
        let mut state = self.state();
        for (_, bar) in state.bars.drain() {
            bar.finish_and_clear();
        }
        state.error.take().map_or(Ok(()), |e| Err(Error::Output(e)))
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn route_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {pos}/{len} routes {wide_bar} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Writes a line to stdout, above the live lines if there are any.
fn write_stdout(state: &mut State, text: &str) {
    if state.error.is_some() {
        return;
    }
    let write = || {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{text}").and_then(|()| stdout.flush())
    };
    let result = match &state.multi {
        Some(multi) => multi.suspend(write),
        None => write(),
    };
    if let Err(e) = result {
        state.error = Some(e);
    }
}
