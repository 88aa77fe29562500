//! The one owner of everything switchctl prints, in one of three styles:
//!
//! * **live** (stdout and stderr are terminals, no `-v`): a line per app at work with its phase
//!   and elapsed time (indicatif); every other line is printed above them, so none tears a bar;
//! * **lines** (a pipe, a file, or `-v`, whose log would tear live bars): plain lines;
//! * **JSON** (`--json`): one JSON object per stdout line, each with `event` and `elapsed_s`;
//!   errors are events too (and a line on stderr for the person watching).
//!
//! A write that fails (a closed pipe: `switchctl on shop | head -1`, an SSH session gone) ends
//! that stream's output and nothing else: the switch goes on, and the exit code says how the work
//! went, not whether someone read about it. Nothing here can panic on a closed stream, unlike
//! `println!`/`eprintln!`, which are not used anywhere else in the crate.

use std::{
    collections::HashMap,
    io::{IsTerminal as _, Write},
    process::Stdio,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::settings::OutputMode;

/// How output is shown.
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
    /// JSON with `--json`; live when stdout and stderr are both terminals, `TERM` is not `dumb`
    /// and no `-v` log writes to stderr; lines otherwise.
    pub fn detect(mode: OutputMode, verbose: u8) -> Style {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        if mode == OutputMode::Json {
            Style::Json
        } else if verbose == 0 && std::io::stdout().is_terminal() && std::io::stderr().is_terminal() && !dumb {
            Style::Live
        } else {
            Style::Lines
        }
    }
}

/// The output of one invocation, shared by every task (cheap to clone).
#[derive(Debug, Clone)]
pub struct Output {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    style: Style,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// More than one app: lines name their app.
    fleet: bool,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    /// `--reason`: carried in every event.
    reason: Option<String>,
    /// Where window events are also sent (`--notify`).
    tap: Option<Tap>,
    stdout_closed: bool,
    stderr_closed: bool,
}

/// Receives every event worth telling people (not per-route or phase lines, not notices: those
/// would flood a chat, and a notice may be about the receiver itself).
#[derive(Clone)]
pub struct Tap(Arc<dyn Fn(&Value) + Send + Sync>);

impl Tap {
    /// A tap calling `f` with each event.
    pub fn new(f: impl Fn(&Value) + Send + Sync + 'static) -> Tap {
        Tap(Arc::new(f))
    }
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

/// Event kinds never sent to a [`Tap`].
const UNTAPPED: [&str; 3] = ["phase", "route", "notice"];

/// Which stream a line goes to.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Output {
    /// Output in `style`.
    pub fn new(style: Style) -> Output {
        let multi = (style == Style::Live).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let state = State { multi, ..State::default() };
        Output { shared: Arc::new(Shared { style, started: Instant::now(), state: Mutex::new(state) }) }
    }

    /// The style.
    pub fn style(&self) -> Style {
        self.shared.style
    }

    /// Whether several apps are worked on (lines then name their app).
    pub fn fleet(&self) -> bool {
        self.state().fleet
    }

    /// Says whether several apps are worked on.
    pub fn set_fleet(&self, fleet: bool) {
        self.state().fleet = fleet;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-written that matters for display.
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A line of text on stdout (live and lines styles).
    pub fn line(&self, text: &str) {
        if self.shared.style != Style::Json {
            self.write(Stream::Stdout, text);
        }
    }

    /// An error for the operator: `switchctl: error: TEXT` on stderr, and with `--json` also an
    /// `error` event on stdout.
    pub fn error(&self, text: &str) {
        self.write(Stream::Stderr, &format!("switchctl: error: {text}"));
        self.event("error", serde_json::json!({ "message": text }));
    }

    /// A notice on stderr that is not an error (a signal arrived, a warning), and with `--json`
    /// also a `notice` event.
    pub fn notice(&self, text: &str) {
        self.write(Stream::Stderr, &format!("switchctl: {text}"));
        self.event("notice", serde_json::json!({ "message": text }));
    }

    /// Carries `reason` in every event from now on.
    pub fn set_reason(&self, reason: Option<String>) {
        self.state().reason = reason;
    }

    /// Sends every window event to `tap` from now on (in every style).
    pub fn set_tap(&self, tap: Tap) {
        self.state().tap = Some(tap);
    }

    /// A progress line that is not an event (e.g. a countdown): the live line `key` on a terminal;
    /// in the lines style a line on stderr only when `announce` (a log must not get one a second).
    pub fn progress(&self, key: &str, text: &str, announce: bool) {
        match self.shared.style {
            Style::Live => self.bar(key).set_message(text.to_owned()),
            Style::Lines if announce => self.write(Stream::Stderr, &format!("switchctl: {text}")),
            Style::Lines | Style::Json => {}
        }
    }

    /// One JSON event: `{"event": kind, "elapsed_s": …, "reason": …, …fields}` on stdout in the JSON
    /// style, and to the tap (`--notify`) in every style.
    pub fn event(&self, kind: &str, fields: impl Serialize) {
        let (reason, tap) = {
            let state = self.state();
            (state.reason.clone(), state.tap.clone().filter(|_| !UNTAPPED.contains(&kind)))
        };
        if self.shared.style != Style::Json && tap.is_none() {
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
            // Our own types serialise; should one not, the event says so rather than vanish.
            Err(e) => {
                object.insert("serialisation_error".into(), Value::from(e.to_string()));
            }
        }
        if let Some(reason) = reason {
            object.entry("reason").or_insert(Value::from(reason));
        }
        let object = Value::Object(object);
        if let Some(tap) = tap {
            (tap.0)(&object);
        }
        if self.shared.style == Style::Json {
            self.write(Stream::Stdout, &object.to_string());
        }
    }

    /// `app` entered `phase` (e.g. `switching`, `staging`): its live line, a JSON event, and in
    /// the lines style a line when `announce`.
    pub fn phase(&self, app: &str, phase: &str, detail: Option<&str>, announce: bool) {
        match self.shared.style {
            Style::Json => self.event("phase", serde_json::json!({"app": app, "phase": phase, "detail": detail})),
            Style::Lines if announce => {
                // Named even for one app: "staging" alone would not say whose.
                let detail = detail.map(|d| format!(": {d}")).unwrap_or_default();
                self.line(&format!("{app}: {phase}{detail}"));
            }
            Style::Lines => {}
            Style::Live => {
                self.bar(app).set_message(match detail {
                    Some(d) => format!("{phase}: {d}"),
                    None => phase.to_owned(),
                });
            }
        }
    }

    /// A route of `app` is done: `text` is its line, `event` its JSON. On a terminal a fleet's
    /// route lines only count on the app's live line (failures are printed); one app's are all
    /// printed, as in a pipe.
    pub fn route(&self, app: &str, text: &str, failed: bool, event: impl Serialize) {
        match self.shared.style {
            Style::Json => self.event("route", event),
            Style::Lines => self.line(&format!("{}{text}", self.prefix(app))),
            Style::Live => {
                self.bar(app).inc(1);
                if failed || !self.fleet() {
                    self.line(&format!("{}{text}", self.prefix(app)));
                }
            }
        }
    }

    /// `app`'s part is over: its live line goes.
    pub fn app_done(&self, app: &str) {
        if self.shared.style != Style::Live {
            return;
        }
        let mut state = self.state();
        if let Some(bar) = state.bars.remove(app) {
            bar.finish_and_clear();
            if let Some(multi) = &state.multi {
                multi.remove(&bar);
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
        if self.fleet() { format!("[{app}] ") } else { String::new() }
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

    /// Clears what is left of the live lines (before a child takes the terminal, and at the end).
    pub fn clear(&self) {
        let mut state = self.state();
        for (_, bar) in state.bars.drain() {
            bar.finish_and_clear();
        }
    }

    /// Where `run`'s COMMAND writes its standard output: the terminal as it is, except with
    /// `--json`, where stdout carries only events and the command's output goes to stderr.
    pub fn child_stdout(&self) -> Stdio {
        if self.shared.style == Style::Json { Stdio::from(std::io::stderr()) } else { Stdio::inherit() }
    }

    /// Writes one line; a stream that failed once is closed for good (see the module docs).
    fn write(&self, stream: Stream, text: &str) {
        let mut state = self.state();
        let closed = match stream {
            Stream::Stdout => state.stdout_closed,
            Stream::Stderr => state.stderr_closed,
        };
        if closed {
            return;
        }
        let write = || match stream {
            Stream::Stdout => write_line(&mut std::io::stdout().lock(), text),
            Stream::Stderr => write_line(&mut std::io::stderr().lock(), text),
        };
        let result = match &state.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        };
        if result.is_err() {
            match stream {
                Stream::Stdout => state.stdout_closed = true,
                Stream::Stderr => state.stderr_closed = true,
            }
        }
    }
}

fn write_line(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "{text}")?;
    out.flush()
}

/// An error line on stderr for when there is no [`Output`] yet (the runtime did not start);
/// a closed stderr is ignored here too.
pub fn early_error(text: &str) {
    let _ = write_line(&mut std::io::stderr().lock(), &format!("switchctl: error: {text}"));
}

/// The `error` event of a command line that did not parse (`--json` was among its words).
pub fn usage_error_event(text: &str) {
    let first = text.lines().next().unwrap_or(text).trim_start_matches("error: ");
    let event = serde_json::json!({"event": "error", "elapsed_s": 0.0, "message": first, "exit_code": 2});
    let _ = write_line(&mut std::io::stdout().lock(), &event.to_string());
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn route_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {pos}/{len} routes {wide_bar} {elapsed:>4}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// `1 app`, `2 apps`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// Rows in aligned columns (the last column is not padded).
pub fn table<const N: usize>(rows: &[[String; N]]) -> Vec<String> {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == N {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}
