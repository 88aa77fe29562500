//! What the command line asked for, with every decision made: clap's structs ([`crate::cli`]) are
//! turned into these once, and nothing below [`crate::run`] sees clap (ripgrep's low args → high
//! args).
//!
//! The commands switchctl prints for the operator to paste (finish a window, resume a switch,
//! undo it) are rendered from these settings by [`Settings::command`], so they repeat every flag
//! that changes behaviour and cannot forget one.

use std::time::Duration;

use clap_complete::Shell;

use crate::cli::{
    Cli, Command, ContentArgs, ContentMode, DEFAULT_CONCURRENCY, DEFAULT_MAINTENANCE_APP, DEFAULT_PARALLEL,
    DEFAULT_ROUTES_LIMIT, DEFAULT_SETTLE, DEFAULT_TIMEOUT, Fleet, MessageArgs, OffArgs, OnFailure, RunArgs, StatusArgs,
    SwitchArgs, VerifyArgs, WindowArgs,
};

/// Every setting of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `-v` count.
    pub verbose: u8,
    /// `--skip-ssl-validation` (or `CF_SKIP_SSL_VALIDATION`).
    pub skip_ssl_validation: bool,
    /// `--org`, else the targeted org.
    pub org: Option<String>,
    /// `--space`, else the targeted space.
    pub space: Option<String>,
    /// How output looks.
    pub output: OutputMode,
    /// `--max-wait`: the longest one request waits for the rate limit.
    pub max_wait: Duration,
    /// What to do.
    pub action: Action,
    /// The window's edges (`on`, `off`, `run`; empty for `status`).
    pub window: Window,
}

/// The window around a switch: writers stopped, why, who is told, when it starts and should end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// `--stop-processes`.
    pub stop: Option<StopProcesses>,
    /// `--reason`.
    pub reason: Option<String>,
    /// `--notify` URLs (with any credentials: never print them, see [`redact_url`]).
    pub notify: Vec<String>,
    /// `--on-open`, split into words.
    pub on_open: Vec<String>,
    /// `--on-close`, split into words.
    pub on_close: Vec<String>,
    /// `--deadline`.
    pub deadline: Option<time::OffsetDateTime>,
    /// `run --at`.
    pub at: Option<time::OffsetDateTime>,
    /// `off --force` / `run --force`: put back recorded counts someone else changed.
    pub force: bool,
    /// `--preview`, with `--preview-host` when given.
    pub preview: Option<Preview>,
    /// `--except` / `--only`.
    pub paths: Paths,
    /// `--message`, `--title`, `--until`, `--retry-after`, `--mode`, `--status`.
    pub content: Content,
}

/// What an app's users see while it is in maintenance; `None` fields come from the maintenance
/// app's own settings. Written as the per-app document of the maintenance app (its README's
/// "Live content").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// `--message` (`message`'s TEXT).
    pub message: Option<String>,
    /// `--title`.
    pub title: Option<String>,
    /// `--until`.
    pub until: Option<time::OffsetDateTime>,
    /// `--retry-after`.
    pub retry_after: Option<u64>,
    /// `--mode`.
    pub mode: Option<ContentMode>,
    /// `--status`.
    pub status: Option<u16>,
}

impl Content {
    fn from_args(args: &ContentArgs, now: time::OffsetDateTime) -> Content {
        Content {
            message: args.message.clone(),
            title: args.title.clone(),
            until: args.until.as_deref().and_then(|t| parse_time(t, now).ok()),
            retry_after: args.retry_after,
            mode: args.mode,
            status: args.status,
        }
    }

    /// Whether nothing was asked for.
    pub fn is_empty(&self) -> bool {
        *self == Content::default()
    }

    /// Fields given here replace those of `older`; the rest stay.
    pub fn over(&self, older: &Content) -> Content {
        Content {
            message: self.message.clone().or_else(|| older.message.clone()),
            title: self.title.clone().or_else(|| older.title.clone()),
            until: self.until.or(older.until),
            retry_after: self.retry_after.or(older.retry_after),
            mode: self.mode.or(older.mode),
            status: self.status.or(older.status),
        }
    }

    /// The flags that ask for this content again.
    pub fn flags(&self) -> Vec<String> {
        let mut words = Vec::new();
        if let Some(m) = &self.message {
            words.extend(["--message".into(), quote(m)]);
        }
        if let Some(t) = &self.title {
            words.extend(["--title".into(), quote(t)]);
        }
        if let Some(u) = self.until {
            words.extend(["--until".into(), rfc3339(u)]);
        }
        if let Some(r) = self.retry_after {
            words.extend(["--retry-after".into(), r.to_string()]);
        }
        if let Some(m) = self.mode {
            words.extend(["--mode".into(), m.as_str().to_owned()]);
        }
        if let Some(c) = self.status {
            words.extend(["--status".into(), c.to_string()]);
        }
        words
    }
}

/// `--preview`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// `--preview-host`; else a random one.
    pub host: Option<String>,
}

/// Which path prefixes of the host routes `on` treats apart (`--except`, `--only`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Paths {
    /// Every route switches.
    #[default]
    All,
    /// These prefixes stay on the app.
    Except(Vec<String>),
    /// Only these prefixes go to maintenance; the host routes stay on the app.
    Only(Vec<String>),
}

impl Paths {
    /// The prefixes, with the flag that names them; `None` for [`Paths::All`].
    pub fn prefixes(&self) -> Option<(&'static str, &[String])> {
        match self {
            Paths::All => None,
            Paths::Except(p) => Some(("--except", p)),
            Paths::Only(p) => Some(("--only", p)),
        }
    }
}

/// Which processes `--stop-processes` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopProcesses {
    /// These types.
    Named(Vec<String>),
    /// Every type the app has but `web`.
    AllButWeb,
}

impl StopProcesses {
    /// The flag's value as given.
    pub fn flag(&self) -> String {
        match self {
            StopProcesses::Named(types) => types.join(","),
            StopProcesses::AllButWeb => ALL_BUT_WEB.to_owned(),
        }
    }
}

/// `--stop-processes all-but-web`.
pub const ALL_BUT_WEB: &str = "all-but-web";

/// `--except`/`--only` (clap refuses both at once), each prefix once.
fn paths_of(args: &WindowArgs) -> Paths {
    let unique = |v: &[String]| {
        let mut out: Vec<String> = Vec::new();
        for p in v {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    };
    if !args.except.is_empty() {
        Paths::Except(unique(&args.except))
    } else if !args.only.is_empty() {
        Paths::Only(unique(&args.only))
    } else {
        Paths::All
    }
}

impl Window {
    fn from_args(args: &WindowArgs, at: Option<&str>, force: bool) -> Window {
        let now = time::OffsetDateTime::now_utc();
        let mut types: Vec<String> =
            args.stop_processes.iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        types.dedup();
        let stop = if types.iter().any(|t| t == ALL_BUT_WEB) {
            Some(StopProcesses::AllButWeb)
        } else {
            (!types.is_empty()).then_some(StopProcesses::Named(types))
        };
        let words = |v: &Option<String>| v.as_deref().and_then(split_words).unwrap_or_default();
        Window {
            stop,
            reason: args.reason.clone(),
            notify: args.notify.clone(),
            on_open: words(&args.on_open),
            on_close: words(&args.on_close),
            // Parsed once by clap already; an HH:MM is taken again as the next one from now.
            deadline: args.deadline.as_deref().and_then(|t| parse_time(t, now).ok()),
            at: at.and_then(|t| parse_time(t, now).ok()),
            force,
            preview: args.preview.then(|| Preview { host: args.preview_host.clone() }),
            paths: paths_of(args),
            content: Content::from_args(&args.content, now),
        }
    }

    /// Flags a printed `verb` command needs to carry this window on: `on` repeats what it
    /// records and who it tells, `off` who it tells and `--force`.
    pub fn flags(&self, verb: &str) -> Vec<String> {
        let mut words = Vec::new();
        if verb == "on" {
            if let Some(stop) = &self.stop {
                words.extend(["--stop-processes".into(), quote(&stop.flag())]);
            }
            if let Some(reason) = &self.reason {
                words.extend(["--reason".into(), quote(reason)]);
            }
            if let Some(deadline) = self.deadline {
                words.extend(["--deadline".into(), rfc3339(deadline)]);
            }
            words.extend(self.content.flags());
            if let Some((flag, prefixes)) = self.paths.prefixes() {
                for p in prefixes {
                    words.extend([flag.into(), quote(p)]);
                }
            }
            if !self.on_open.is_empty() {
                words.extend(["--on-open".into(), quote(&shell_words(&self.on_open))]);
            }
            // A rerun finds a random preview host in the window's record; a chosen one is repeated.
            if let Some(preview) = &self.preview {
                words.push("--preview".into());
                if let Some(host) = &preview.host {
                    words.extend(["--preview-host".into(), quote(host)]);
                }
            }
        }
        if verb == "on" || verb == "off" {
            // URLs with credentials stay out of printed commands: from SWITCHCTL_NOTIFY, a pasted
            // command in the same shell still has them.
            for url in self.notify.iter().filter(|u| !has_secret(u)) {
                words.extend(["--notify".into(), quote(url)]);
            }
        }
        if verb == "off" {
            if !self.on_close.is_empty() {
                words.extend(["--on-close".into(), quote(&shell_words(&self.on_close))]);
            }
            if self.force {
                words.push("--force".into());
            }
        }
        words
    }
}

/// RFC 3339 in UTC, seconds precision.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// `value` as a time: RFC 3339 (`2026-12-05T23:30:00Z`, `…+01:00`), or `HH:MM` in UTC, meaning the
/// next such time after `now` (UTC because pipelines run on UTC machines and a local offset cannot
/// be read safely in a threaded program; write an offset for local time).
pub fn parse_time(value: &str, now: time::OffsetDateTime) -> Result<time::OffsetDateTime, String> {
    let value = value.trim();
    if let Ok(t) = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let bad = || format!("{value:?} is not a time: write RFC 3339 (2026-12-05T23:30:00Z, …+01:00) or HH:MM (UTC)");
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    let (h, m) = (h.parse::<u8>().map_err(|_| bad())?, m.parse::<u8>().map_err(|_| bad())?);
    let clock = time::Time::from_hms(h, m, 0).map_err(|_| bad())?;
    let now = now.to_offset(time::UtcOffset::UTC);
    let today = now.replace_time(clock);
    Ok(if today > now { today } else { today + time::Duration::days(1) })
}

/// Whether a URL carries credentials (userinfo or a query, where webhook tokens live).
pub fn has_secret(url: &str) -> bool {
    reqwest::Url::parse(url).map_or(true, |u| !u.username().is_empty() || u.password().is_some() || u.query().is_some())
}

/// A URL as it may be printed: without userinfo, query or fragment.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let secret = has_secret(url);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            if secret { format!("{u}?…") } else { u.to_string() }
        }
        Err(_) => "(a URL)".to_owned(),
    }
}

/// Splits `line` into words as a POSIX shell would (single and double quotes, backslashes), with
/// no expansion; `None` when a quote is not closed or a backslash ends the line.
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next()? {
                    '\n' => {}
                    c => word.push(c),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Words as one line a shell splits back into them.
pub fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

/// Text for people, or JSON events for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Lines (live on a terminal).
    Text,
    /// One JSON event per stdout line.
    Json,
}

/// The command.
#[derive(Debug, Clone)]
pub enum Action {
    /// `on`.
    On(Switch),
    /// `off`.
    Off(Off),
    /// `run`.
    Run(Run),
    /// `status`.
    Status(Status),
    /// `message`.
    Message(Message),
    /// `completions SHELL`.
    Completions(Shell),
}

/// Which apps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetSelection {
    /// Names.
    pub apps: Vec<String>,
    /// A CAPI label selector.
    pub selector: Option<String>,
    /// Every space of the org.
    pub all_spaces: bool,
    /// Apps at once.
    pub parallel: u16,
}

/// How a change is confirmed before the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Probe the routes (through `via`, a router address, when given) for up to `timeout`.
    Probe {
        /// `--probe-via HOST:PORT`.
        via: Option<String>,
        /// `--timeout`.
        timeout: Duration,
        /// `--settle`: how long a route that cannot be probed (bound to a route service that
        /// answers itself, or on a domain enforcing route policies) gets for the router to take a
        /// change.
        settle: Duration,
    },
    /// `--no-verify`: wait this long after each change instead.
    Settle(Duration),
}

impl Verification {
    fn from_args(args: &VerifyArgs) -> Verification {
        if args.no_verify {
            Verification::Settle(Duration::from_secs(args.settle))
        } else {
            Verification::Probe {
                via: args.probe_via.clone(),
                timeout: Duration::from_secs(args.timeout),
                settle: Duration::from_secs(args.settle),
            }
        }
    }

    /// Whether routes are probed.
    pub fn probes(&self) -> bool {
        matches!(self, Verification::Probe { .. })
    }
}

/// Settings of a switch (`on`, and the switching part of `off` and `run`).
#[derive(Debug, Clone)]
pub struct Switch {
    /// The apps.
    pub fleet: FleetSelection,
    /// The maintenance apps.
    pub maintenance: Pool,
    /// Plan only.
    pub dry_run: bool,
    /// How changes are confirmed.
    pub verify: Verification,
    /// Routes at once per app.
    pub concurrency: u16,
    /// `--routes-limit`: Diego's limit on one process's routes, in bytes.
    pub routes_limit: u64,
}

/// The maintenance apps of a switch: one, or a pool that a fleet's routes are spread over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// `--maintenance-app`, in the order given, without repeats. Empty only with a selector and
    /// no name given.
    pub names: Vec<String>,
    /// `--maintenance-selector`: every app of the space it picks is in the pool too.
    pub selector: Option<String>,
}

impl Pool {
    /// The pool `--maintenance-app` (`names`, clap's default when none was given) and
    /// `--maintenance-selector` ask for. A selector alone does not drag the default name in: a
    /// space whose maintenance apps are labelled need not also have one called `maintenance-app`.
    pub fn new(names: &[String], selector: Option<&str>) -> Pool {
        let mut unique: Vec<String> = Vec::new();
        for n in names {
            if !unique.contains(n) {
                unique.push(n.clone());
            }
        }
        if selector.is_some() && unique == [DEFAULT_MAINTENANCE_APP] {
            unique.clear();
        }
        Pool { names: unique, selector: selector.map(str::to_owned) }
    }

    /// The default: the one app called `maintenance-app`.
    pub fn single(name: &str) -> Pool {
        Pool { names: vec![name.to_owned()], selector: None }
    }

    /// How lines name the pool: `maintenance-app`, `maint-a, maint-b`, `apps labelled tier=maint`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.names.clone();
        if let Some(s) = &self.selector {
            parts.push(format!("the apps labelled {s}"));
        }
        parts.join(", ")
    }

    /// Whether `name` is one of the pool's names (apps picked by the selector are known only once
    /// resolved).
    pub fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The flags that ask for this pool again (none for the default).
    pub fn flags(&self) -> Vec<String> {
        let mut words = Vec::new();
        if self.names != [DEFAULT_MAINTENANCE_APP] || self.selector.is_some() {
            for n in &self.names {
                words.extend(["--maintenance-app".into(), quote(n)]);
            }
        }
        if let Some(s) = &self.selector {
            words.extend(["--maintenance-selector".into(), quote(s)]);
        }
        words
    }
}

/// Settings of `off`.
#[derive(Debug, Clone)]
pub struct Off {
    /// As for `on`.
    pub switch: Switch,
    /// Restore even if the app does not run.
    pub force: bool,
}

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct Run {
    /// As for `on`.
    pub switch: Switch,
    /// `--restage`, with its timeouts.
    pub restage: Option<RestageTimeouts>,
    /// What happens to the apps when the window's work fails.
    pub on_failure: OnFailure,
    /// COMMAND and its arguments (may be empty with `--restage`).
    pub command: Vec<String>,
    /// `--smoke`, split into words.
    pub smoke: Vec<String>,
    /// `--smoke-url`.
    pub smoke_url: Option<String>,
}

/// How long staging and starting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestageTimeouts {
    /// Until the build is staged.
    pub staging: Duration,
    /// Until every web instance runs.
    pub startup: Duration,
}

/// Settings of `message`.
#[derive(Debug, Clone)]
pub struct Message {
    /// The app in maintenance.
    pub app: String,
    /// The fields to change (the others stay as they are).
    pub content: Content,
    /// `--clear`: remove the app's content.
    pub clear: bool,
    /// How each instance is checked.
    pub verify: Verification,
}

impl Message {
    fn from_args(args: &MessageArgs) -> Message {
        let content = ContentArgs {
            message: args.text.clone(),
            title: args.title.clone(),
            until: args.until.clone(),
            retry_after: args.retry_after,
            mode: args.mode,
            status: args.status,
        };
        Message {
            app: args.app.clone(),
            content: Content::from_args(&content, time::OffsetDateTime::now_utc()),
            clear: args.clear,
            verify: Verification::from_args(&args.verify),
        }
    }
}

/// Settings of `status`.
#[derive(Debug, Clone)]
pub struct Status {
    /// One app, or every switched route of the space.
    pub app: Option<String>,
    /// The maintenance apps.
    pub maintenance: Pool,
    /// `None` with `--no-probe`; else where probes go (`--probe-via`).
    pub probe: Option<Option<String>>,
}

impl Settings {
    /// The settings `cli` asks for.
    pub fn from_cli(cli: &Cli) -> Settings {
        let action = match &cli.command {
            Command::On(args) => Action::On(Switch::from_args(args)),
            Command::Off(args) => Action::Off(Off::from_args(args)),
            Command::Run(args) => Action::Run(Run::from_args(args)),
            Command::Status(args) => Action::Status(Status::from_args(args)),
            Command::Message(args) => Action::Message(Message::from_args(args)),
            Command::Completions { shell } => Action::Completions(*shell),
        };
        let window = match &cli.command {
            Command::On(args) => Window::from_args(&args.window, None, false),
            Command::Off(args) => Window::from_args(&args.switch.window, None, args.force),
            Command::Run(args) => Window::from_args(&args.switch.window, args.at.as_deref(), args.force),
            Command::Status(_) | Command::Message(_) | Command::Completions { .. } => Window::default(),
        };
        Settings {
            verbose: cli.verbose,
            max_wait: Duration::from_secs(cli.max_wait),
            skip_ssl_validation: cli.skip_ssl_validation,
            org: cli.org.clone(),
            space: cli.space.clone(),
            output: if cli.json { OutputMode::Json } else { OutputMode::Text },
            action,
            window,
        }
    }

    /// The command line that runs `verb` (`on`, `off`, `status`) on `apps` in `org`/`space` with
    /// the behaviour of this invocation's switch settings, as one line for a POSIX shell:
    /// `switchctl --org O --space S off a b --probe-via … --timeout …`.
    pub fn command(&self, verb: &str, org: &str, space: &str, apps: &[&str]) -> String {
        let mut words: Vec<String> = vec!["switchctl".into()];
        if self.skip_ssl_validation {
            words.push("--skip-ssl-validation".into());
        }
        // The finish command must be allowed the same waits as the run it finishes.
        if self.max_wait != crate::capi::DEFAULT_MAX_WAIT {
            words.extend(["--max-wait".into(), self.max_wait.as_secs().to_string()]);
        }
        words.extend(["--org".into(), quote(org), "--space".into(), quote(space), verb.into()]);
        words.extend(apps.iter().map(|a| quote(a)));
        if let Some(switch) = self.switch() {
            if verb == "status" {
                words.extend(switch.maintenance.flags());
                if let Verification::Probe { via: Some(via), .. } = &switch.verify {
                    words.extend(["--probe-via".into(), quote(via)]);
                }
            } else {
                words.extend(switch.flags());
                words.extend(self.window.flags(verb));
            }
        }
        words.join(" ")
    }

    /// The switch settings of `on`, `off` and `run`.
    pub fn switch(&self) -> Option<&Switch> {
        match &self.action {
            Action::On(s) => Some(s),
            Action::Off(o) => Some(&o.switch),
            Action::Run(r) => Some(&r.switch),
            Action::Status(_) | Action::Message(_) | Action::Completions(_) => None,
        }
    }
}

impl Switch {
    fn from_args(args: &SwitchArgs) -> Switch {
        let verify = Verification::from_args(&args.verify);
        Switch {
            fleet: FleetSelection::from_args(&args.fleet),
            maintenance: Pool::new(&args.maintenance_app, args.maintenance_selector.as_deref()),
            dry_run: args.dry_run,
            verify,
            concurrency: args.concurrency,
            routes_limit: args.routes_limit,
        }
    }

    /// The flags that change how a switch behaves, as given (defaults left out), for a printed
    /// command: the maintenance app, how changes are verified, how many routes at once.
    pub fn flags(&self) -> Vec<String> {
        let mut words = Vec::new();
        words.extend(self.maintenance.flags());
        match &self.verify {
            Verification::Probe { via, timeout, settle } => {
                if let Some(via) = via {
                    words.extend(["--probe-via".into(), quote(via)]);
                }
                if timeout.as_secs() != DEFAULT_TIMEOUT {
                    words.extend(["--timeout".into(), timeout.as_secs().to_string()]);
                }
                if settle.as_secs() != DEFAULT_SETTLE {
                    words.extend(["--settle".into(), settle.as_secs().to_string()]);
                }
            }
            Verification::Settle(settle) => {
                words.extend(["--no-verify".into(), "--settle".into(), settle.as_secs().to_string()]);
            }
        }
        if self.concurrency != DEFAULT_CONCURRENCY {
            words.extend(["--concurrency".into(), self.concurrency.to_string()]);
        }
        if self.fleet.parallel != DEFAULT_PARALLEL {
            words.extend(["--parallel".into(), self.fleet.parallel.to_string()]);
        }
        if self.routes_limit != DEFAULT_ROUTES_LIMIT {
            words.extend(["--routes-limit".into(), self.routes_limit.to_string()]);
        }
        words
    }
}

impl FleetSelection {
    fn from_args(fleet: &Fleet) -> FleetSelection {
        FleetSelection {
            apps: fleet.apps.clone(),
            selector: fleet.selector.clone(),
            all_spaces: fleet.all_spaces,
            parallel: fleet.parallel,
        }
    }
}

impl Off {
    fn from_args(args: &OffArgs) -> Off {
        Off { switch: Switch::from_args(&args.switch), force: args.force }
    }
}

impl Run {
    fn from_args(args: &RunArgs) -> Run {
        Run {
            switch: Switch::from_args(&args.switch),
            restage: args.restage.then(|| RestageTimeouts {
                staging: Duration::from_secs(args.staging_timeout),
                startup: Duration::from_secs(args.startup_timeout),
            }),
            on_failure: args.on_failure,
            command: args.command.clone(),
            smoke: args.smoke.as_deref().and_then(split_words).unwrap_or_default(),
            smoke_url: args.smoke_url.clone(),
        }
    }
}

impl Status {
    fn from_args(args: &StatusArgs) -> Status {
        Status {
            app: args.app.clone(),
            maintenance: Pool::new(&args.maintenance_app, args.maintenance_selector.as_deref()),
            probe: (!args.no_probe).then(|| args.probe_via.clone()),
        }
    }
}

/// `value` as one word for a POSIX shell.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/=:,@+%".contains(&b));
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn settings(args: &[&str]) -> Settings {
        Settings::from_cli(&Cli::parse_from(args))
    }

    #[test]
    fn names_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("shop-v2"), "shop-v2");
        assert_eq!(quote("my app"), "'my app'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn a_printed_command_repeats_every_flag_that_changes_behaviour() {
        let s = settings(&[
            "switchctl",
            "--skip-ssl-validation",
            "run",
            "shop",
            "--maintenance-app",
            "maint 2",
            "--probe-via",
            "127.0.0.1:8081",
            "--timeout",
            "30",
            "--concurrency",
            "2",
            "--parallel",
            "3",
            "--dry-run",
            "--",
            "true",
        ]);
        assert_eq!(
            s.command("off", "o", "dev", &["shop", "c d"]),
            "switchctl --skip-ssl-validation --org o --space dev off shop 'c d' --maintenance-app 'maint 2' \
             --probe-via 127.0.0.1:8081 --timeout 30 --concurrency 2 --parallel 3"
        );
        let s = settings(&["switchctl", "on", "shop", "--no-verify", "--settle", "7"]);
        assert_eq!(
            s.command("off", "o", "s", &["shop"]),
            "switchctl --org o --space s off shop --no-verify --settle 7"
        );
        assert_eq!(s.command("status", "o", "s", &["shop"]), "switchctl --org o --space s status shop");
        let s = settings(&["switchctl", "on", "shop"]);
        assert_eq!(s.command("on", "o", "s", &["shop"]), "switchctl --org o --space s on shop");
        // Probing, --settle is still the wait for routes that cannot be probed: repeated when set.
        let s = settings(&["switchctl", "on", "shop", "--settle", "2"]);
        assert_eq!(s.command("off", "o", "s", &["shop"]), "switchctl --org o --space s off shop --settle 2");
    }

    #[test]
    fn hook_commands_split_like_a_shell() {
        let words = split_words(r#"notify --to "ops team" 'a b' c\ d"#).expect("splits");
        assert_eq!(words, ["notify", "--to", "ops team", "a b", "c d"]);
        assert_eq!(split_words(r#"sh -c 'echo "$X"'"#).expect("splits"), ["sh", "-c", r#"echo "$X""#]);
        assert_eq!(split_words("''").expect("splits"), [""]);
        assert_eq!(split_words("  ").expect("splits"), Vec::<String>::new());
        assert_eq!(split_words("echo 'open"), None);
        assert_eq!(split_words("echo \\"), None);
    }

    #[test]
    fn times_are_rfc3339_or_the_next_hh_mm_in_utc() {
        use time::macros::datetime;
        let now = datetime!(2026-12-05 22:30 UTC);
        assert_eq!(parse_time("23:15", now), Ok(datetime!(2026-12-05 23:15 UTC)));
        assert_eq!(parse_time("06:00", now), Ok(datetime!(2026-12-06 06:00 UTC)), "the next one");
        assert_eq!(parse_time("22:30", now), Ok(datetime!(2026-12-06 22:30 UTC)), "now is past");
        assert_eq!(parse_time("2026-12-06T01:00:00+01:00", now), Ok(datetime!(2026-12-06 00:00 UTC)));
        for bad in ["25:00", "tomorrow", "12", "12:60", ""] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }

    #[test]
    fn printed_commands_carry_the_window_but_never_a_notify_secret() {
        assert_eq!(redact_url("https://u:p@hooks.example.com/x?token=abc"), "https://hooks.example.com/x?…");
        assert_eq!(redact_url("https://hooks.example.com/x"), "https://hooks.example.com/x");
        let s = settings(&[
            "switchctl",
            "run",
            "shop",
            "--notify",
            "https://hooks.example.com/a",
            "--notify",
            "https://hooks.example.com/b?token=abc",
            "--stop-processes",
            "worker,clock",
            "--reason",
            "CHG 1",
            "--deadline",
            "2026-12-06T01:00:00+01:00",
            "--on-close",
            "say 'closed now'",
            "--force",
            "--",
            "true",
        ]);
        let off = s.command("off", "o", "s", &["shop"]);
        let expected = r#"switchctl --org o --space s off shop --notify https://hooks.example.com/a --on-close 'say '\''closed now'\''' --force"#;
        assert_eq!(off, expected);
        assert_eq!(split_words(&off).expect("splits")[10], "say 'closed now'", "pastes back as given");
        let on = s.command("on", "o", "s", &["shop"]);
        let expected = "switchctl --org o --space s on shop --stop-processes worker,clock --reason 'CHG 1' \
                        --deadline 2026-12-06T00:00:00Z --notify https://hooks.example.com/a";
        assert_eq!(on, expected);
        assert!(!on.contains("abc") && !off.contains("abc"));
        let s = settings(&["switchctl", "on", "shop", "--stop-processes", "worker", "--stop-processes", "all-but-web"]);
        assert_eq!(s.window.stop, Some(StopProcesses::AllButWeb));
    }

    #[test]
    fn a_printed_on_repeats_the_content_and_message_keeps_what_is_not_given() {
        let s = settings(&[
            "switchctl",
            "on",
            "shop",
            "--message",
            "Back at 6",
            "--until",
            "2026-12-06T18:00:00Z",
            "--mode",
            "json",
        ]);
        let line = s.command("on", "o", "s", &["shop"]);
        assert!(line.ends_with("--message 'Back at 6' --until 2026-12-06T18:00:00Z --mode json"), "{line}");
        let s = settings(&["switchctl", "message", "shop", "--title", "T"]);
        let Action::Message(m) = &s.action else { panic!("message") };
        let older = Content { message: Some("old".into()), title: Some("old".into()), ..Content::default() };
        let merged = m.content.over(&older);
        assert_eq!((merged.message.as_deref(), merged.title.as_deref()), (Some("old"), Some("T")));
    }

    #[test]
    fn flags_become_typed_settings() {
        let s = settings(&["switchctl", "--json", "off", "a", "--force", "--no-verify"]);
        assert_eq!(s.output, OutputMode::Json);
        let Action::Off(off) = &s.action else { panic!("off") };
        assert!(off.force);
        assert_eq!(off.switch.verify, Verification::Settle(Duration::from_secs(5)));
        let s = settings(&["switchctl", "run", "a", "--restage", "--staging-timeout", "9"]);
        let Action::Run(run) = &s.action else { panic!("run") };
        assert_eq!(run.restage.map(|t| t.staging), Some(Duration::from_secs(9)));
        let s = settings(&["switchctl", "status", "--no-probe"]);
        let Action::Status(status) = &s.action else { panic!("status") };
        assert_eq!(status.probe, None);
    }
}
