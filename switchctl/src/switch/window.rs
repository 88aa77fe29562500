//! `switchctl run APP… [--restage] -- COMMAND…`: a whole maintenance window with a known end.
//!
//! 1. `on` for every app (nothing else happens unless every app is in maintenance);
//! 2. COMMAND, without a shell, stdio inherited, the apps in its environment;
//! 3. with `--restage`, each app restaged as `cf restage` does ([`super::restage`]);
//! 4. `off` for every app whose work succeeded.
//!
//! When COMMAND fails or switchctl is interrupted (Ctrl-C, SIGTERM), the apps stay in
//! maintenance (a failed migration must not meet users) and switchctl prints the commands that
//! finish the window; `--on-failure off` takes them out instead. An app whose restage failed
//! always stays: its new droplet does not run. The exit code is COMMAND's when it failed.

use std::{
    collections::HashMap,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering},
    },
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::{signal::unix::SignalKind, sync::mpsc};

use super::{
    Env, Interrupt,
    fleet::{self, Member, Resolved, commands},
    output::{self, Report, plural},
    progress::{Progress, Style},
    restage::{self, RestageReport, Timeouts},
};
use crate::{
    cli::{OffArgs, OnFailure, RunArgs},
    error::{EXIT_FAILURE, Error},
    session::Session,
};

/// Exit code when COMMAND cannot be found (as a shell says it).
const EXIT_NOT_FOUND: u8 = 127;
/// Exit code when COMMAND cannot be started for another reason.
const EXIT_CANNOT_RUN: u8 = 126;

/// `switchctl run`.
pub(super) async fn run(session: &Session, args: &RunArgs, json: bool, skip_tls: bool) -> Result<ExitCode, Error> {
    let sw = &args.switch;
    if args.command.is_empty() && !args.restage {
        return Err(Error::Usage(
            "nothing to do in the window: give the command after `--` (e.g. `switchctl run shop -- ./migrate.sh`), \
             or --restage"
                .to_owned(),
        ));
    }
    let client = session.client();
    let resolved = fleet::resolve(session, &sw.fleet, &sw.maintenance_app).await?;
    fleet::check_maintenance_apps(client, &resolved, &sw.maintenance_app).await?;
    let packages = if args.restage {
        restage::packages(client, &resolved.members, sw.fleet.parallel).await?
    } else {
        HashMap::new()
    };

    let progress = Progress::new(Style::detect(json), resolved.fleet);
    let signals = Signals::install(Interrupt::default());
    let env = Env::new(client, sw, skip_tls, progress.clone(), signals.phase())?;
    progress.event(
        "start",
        serde_json::json!({
            "action": "run",
            "apps": resolved.members.iter().map(|m| &m.label).collect::<Vec<_>>(),
            "command": args.command,
            "restage": args.restage,
            "dry_run": sw.dry_run,
        }),
    );
    let mut window = Window { args, resolved: &resolved, progress: &progress, env, signals };

    // 1. Open.
    window.say(&format!("Opening the window: the routes of {} in {}...", names(&resolved), resolved.scope));
    let opened = fleet::switch_on(&window.env, &resolved.members, sw).await;
    if sw.dry_run {
        if !args.command.is_empty() {
            progress.line(&format!("Would run: {}", shell_words(&args.command)));
        }
        if args.restage {
            progress.line(&format!("Would restage: {}", names(&resolved)));
        }
        progress.line(&format!("Would then switch off: {}", names(&resolved)));
        return fleet::finish(&progress, "on", true, &opened);
    }
    if let Some(failed) = window.not_done(&opened) {
        let (why, ended) = match window.signals.received() {
            Some(signal) => ("switchctl was interrupted while opening the window", Ended::Interrupted(signal)),
            None => ("the window could not be opened", Ended::Failed(EXIT_FAILURE)),
        };
        let all = resolved.members.as_slice();
        return window.abandon(why, &failed, ended, &opened, all).await;
    }

    // 2. The command.
    if !args.command.is_empty() {
        match window.command().await {
            Ended::Succeeded => {}
            ended => {
                let why = match &ended {
                    Ended::Interrupted(_) => "switchctl was interrupted while the command ran".to_owned(),
                    _ => format!("the command {} failed", shell_words(&args.command)),
                };
                return window.abandon(&why, &[], ended, &opened, &resolved.members).await;
            }
        }
    }

    // 3. Restage.
    let mut keep: Vec<RestageReport> = Vec::new();
    let mut ready: Vec<Member> = resolved.members.clone();
    if args.restage {
        let timeouts = Timeouts::from_args(args);
        let reports = restage::each_app(&window.env, &resolved.members, &packages, timeouts, sw.fleet.parallel).await;
        let (ok, failed): (Vec<RestageReport>, Vec<RestageReport>) = reports.into_iter().partition(|r| r.ok);
        ready.retain(|m| ok.iter().any(|r| r.app_guid == m.app.guid));
        keep = failed;
        for r in &keep {
            eprintln!("switchctl: error: {}: restage failed: {}", r.app, r.error.as_deref().unwrap_or("unknown"));
        }
    }
    if let Some(signal) = window.signals.received() {
        // Only apps whose restage succeeded may go back: the others do not run their new droplet.
        let ended = Ended::Interrupted(signal);
        return window.abandon("switchctl was interrupted", &[], ended, &opened, &ready).await;
    }

    // 4. Close.
    window.say(&format!("Closing the window: {} back from maintenance...", plural(ready.len(), "app")));
    window.env.interrupt = window.signals.phase();
    let off_args = OffArgs { switch: sw.clone(), force: false };
    let closed = fleet::switch_off(&window.env, &ready, &off_args).await;
    window.summary(&opened, Some(&closed), &keep);
    let mut stay: Vec<&Report> = closed.iter().filter(|r| !r.ok).collect();
    stay.extend(opened.iter().filter(|r| keep.iter().any(|k| k.app_guid == r.app_guid)));
    if stay.is_empty() {
        progress.line("");
        progress.line(&format!("OK: the window is closed; {} served again.", plural(closed.len(), "app")));
        progress.finish()?;
        return Ok(ExitCode::SUCCESS);
    }
    progress.finish()?;
    eprintln!(
        "switchctl: error: {} still in maintenance: {}. Fix the cause shown above, then take {} out with {}.",
        plural(stay.len(), "app"),
        stay.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
        if stay.len() == 1 { "it" } else { "them" },
        commands("off", &stay).join(" and ")
    );
    Ok(ExitCode::from(EXIT_FAILURE))
}

/// How the window's work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Succeeded,
    /// Failed with this exit code.
    Failed(u8),
    /// Interrupted by this signal.
    Interrupted(i32),
}

impl Ended {
    fn code(self) -> u8 {
        match self {
            Ended::Succeeded => 0,
            Ended::Failed(code) => code,
            Ended::Interrupted(signal) => u8::try_from(128 + signal).unwrap_or(EXIT_FAILURE),
        }
    }
}

struct Window<'a> {
    args: &'a RunArgs,
    resolved: &'a Resolved,
    progress: &'a Progress,
    env: Env,
    signals: Signals,
}

impl Window<'_> {
    fn say(&self, text: &str) {
        self.progress.line(text);
    }

    /// The reports that are not done, if any (or all when interrupted).
    fn not_done<'r>(&self, reports: &'r [Report]) -> Option<Vec<&'r Report>> {
        let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok).collect();
        (!failed.is_empty() || self.signals.received().is_some()).then_some(failed)
    }

    /// Runs COMMAND to its end; signals reach it as a terminal would deliver them.
    async fn command(&mut self) -> Ended {
        let command = &self.args.command;
        let Some((program, rest)) = command.split_first() else { return Ended::Succeeded };
        let members = &self.resolved.members;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .env("SWITCHCTL_APPS", members.iter().map(|m| m.app.name.as_str()).collect::<Vec<_>>().join("\n"));
        if let [only] = members.as_slice() {
            cmd.env("SWITCHCTL_APP", &only.app.name);
        }
        if let Some(first) = members.first() {
            cmd.env("SWITCHCTL_ORG", &first.target.org.name);
            if members.iter().all(|m| m.target.space.guid == first.target.space.guid) {
                cmd.env("SWITCHCTL_SPACE", &first.target.space.name);
            }
        }
        self.say(&format!("Running {} (the apps are in maintenance)...", shell_words(command)));
        self.progress.event("command", serde_json::json!({"state": "started", "argv": command}));
        // The command owns the terminal while it runs.
        let _ = self.progress.finish();
        self.signals.shared.in_command.store(true, Ordering::SeqCst);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.signals.shared.in_command.store(false, Ordering::SeqCst);
                let code = if e.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN };
                eprintln!("switchctl: error: cannot run {program:?}: {e}");
                self.progress.event("command", serde_json::json!({"state": "not started", "error": e.to_string()}));
                return Ended::Failed(code);
            }
        };
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        let mut interrupted = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(signal) = self.signals.rx.recv() => {
                    // Ctrl-C reaches the whole foreground process group, the command included; a
                    // SIGTERM is meant for switchctl alone and is passed on. A second signal of any
                    // kind asks the command to stop.
                    let forward = signal == Signal::SIGTERM || interrupted.is_some();
                    interrupted.get_or_insert(signal as i32);
                    if forward && let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                    }
                    eprintln!(
                        "switchctl: {} received: waiting for the command to end; the apps stay in maintenance{}",
                        signal.as_str(),
                        if self.args.on_failure == OnFailure::Off { " until then" } else { "" }
                    );
                }
            }
        };
        self.signals.shared.in_command.store(false, Ordering::SeqCst);
        let code = match &status {
            Ok(status) => exit_code_of(status),
            Err(e) => {
                eprintln!("switchctl: error: lost track of the command: {e}");
                EXIT_FAILURE
            }
        };
        self.progress.event("command", serde_json::json!({"state": "exited", "code": code}));
        match (interrupted, code) {
            (Some(signal), 0) => Ended::Interrupted(signal),
            (_, 0) => Ended::Succeeded,
            (_, code) => Ended::Failed(code),
        }
    }

    /// The window did not end well: `--on-failure off` takes the apps out, else they stay and the
    /// way to finish is printed. Exits with `ended`'s code.
    async fn abandon(
        mut self,
        why: &str,
        failed: &[&Report],
        ended: Ended,
        opened: &[Report],
        may_go_back: &[Member],
    ) -> Result<ExitCode, Error> {
        let progress = self.progress;
        let in_maintenance: Vec<&Report> = opened.iter().filter(|r| r.in_maintenance()).collect();
        if self.args.on_failure == OnFailure::Off {
            progress.line(&format!("{why}; --on-failure off: taking the apps out of maintenance..."));
            self.env.interrupt = self.signals.phase();
            let off_args = OffArgs { switch: self.args.switch.clone(), force: false };
            let closed = fleet::switch_off(&self.env, may_go_back, &off_args).await;
            self.summary(opened, Some(&closed), &[]);
            let stuck: Vec<&Report> = closed.iter().filter(|r| !r.ok).collect();
            progress.finish()?;
            if !stuck.is_empty() {
                eprintln!(
                    "switchctl: error: {why}; {} could not be taken out of maintenance: {}; finish with {}.",
                    plural(stuck.len(), "app"),
                    stuck.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                    commands("off", &stuck).join(" and ")
                );
            } else {
                eprintln!("switchctl: error: {why}; the apps are out of maintenance again (--on-failure off).");
            }
            return Ok(ExitCode::from(ended.code()));
        }
        self.summary(opened, None, &[]);
        progress.finish()?;
        let mut text = format!("switchctl: error: {why}.");
        if !failed.is_empty() {
            text.push_str(&format!(
                " Not in maintenance: {}; the command was not run. Finish opening with {} and run it yourself,",
                failed.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                commands("on", failed).join(" and ")
            ));
        }
        if in_maintenance.is_empty() {
            text.push_str(" No app is in maintenance.");
        } else {
            text.push_str(&format!(
                " {} in maintenance: {}. When the cause is fixed, take them out with {}.",
                "Staying",
                in_maintenance.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                commands("off", &in_maintenance).join(" and ")
            ));
        }
        eprintln!("{text}");
        Ok(ExitCode::from(ended.code()))
    }

    /// The table of every app: opened, restaged, closed.
    fn summary(&self, opened: &[Report], closed: Option<&[Report]>, restage_failed: &[RestageReport]) {
        let progress = self.progress;
        let closed_of = |r: &Report| closed.and_then(|c| c.iter().find(|x| x.app_guid == r.app_guid));
        let failed_restage = |r: &Report| restage_failed.iter().find(|f| f.app_guid == r.app_guid);
        let mut rows = vec![["app", "space", "on", "restage", "off", "now"].map(str::to_owned)];
        for r in opened {
            let restage = if !self.args.restage {
                "-".to_owned()
            } else if let Some(f) = failed_restage(r) {
                format!("FAILED: {}", f.error.as_deref().unwrap_or(""))
            } else if closed_of(r).is_some() {
                "ok".to_owned()
            } else {
                "-".to_owned()
            };
            let off = match closed_of(r) {
                Some(c) if c.ok => "ok".to_owned(),
                Some(c) => format!("FAILED{}", c.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()),
                None => "-".to_owned(),
            };
            let now = match closed_of(r) {
                Some(c) if c.ok => "serving",
                _ if r.in_maintenance() => "in maintenance",
                _ => "serving",
            };
            let on = if r.ok {
                "ok".to_owned()
            } else {
                format!("FAILED{}", r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())
            };
            rows.push([r.app.clone(), r.space.clone(), on, restage, off, now.to_owned()]);
        }
        progress.line("");
        for line in output::table(&rows) {
            progress.line(&line);
        }
        progress.event(
            "summary",
            serde_json::json!({
                "action": "run",
                "apps": opened.iter().map(|r| {
                    let c = closed_of(r);
                    serde_json::json!({
                        "app": r.app,
                        "space": r.space,
                        "org": r.org,
                        "on": r,
                        "restage": failed_restage(r),
                        "off": c,
                        "in_maintenance": !c.is_some_and(|c| c.ok) && r.in_maintenance(),
                    })
                }).collect::<Vec<_>>(),
            }),
        );
    }
}

/// An exit status as a shell reports it: the code, or 128 + the signal that ended the process.
fn exit_code_of(status: &std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(EXIT_FAILURE),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(EXIT_FAILURE),
        (None, None) => EXIT_FAILURE,
    }
}

/// The words of a command as a shell would take them back.
fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| fleet::quote(w)).collect::<Vec<_>>().join(" ")
}

fn names(resolved: &Resolved) -> String {
    let names: Vec<&str> = resolved.members.iter().map(|m| m.label.as_str()).collect();
    if names.len() <= 5 { names.join(", ") } else { format!("{}, … ({} apps)", names[..5].join(", "), names.len()) }
}

/// SIGINT and SIGTERM while switchctl works.
///
/// The first signal sets the current phase's [`Interrupt`]: no new app or route is started, and
/// those under way finish their step. While COMMAND runs, signals are handed to [`Window::command`]
/// instead. A second signal outside COMMAND stops switchctl at once (every route is still in a
/// state the next run continues from).
#[derive(Debug)]
pub(super) struct Signals {
    shared: Arc<SignalState>,
    rx: mpsc::UnboundedReceiver<Signal>,
}

#[derive(Debug, Default)]
struct SignalState {
    interrupt: Mutex<Interrupt>,
    in_command: AtomicBool,
    count: AtomicU32,
    last: AtomicI32,
}

impl Signals {
    /// Starts listening; `interrupt` is the first phase's.
    pub(super) fn install(interrupt: Interrupt) -> Signals {
        let shared = Arc::new(SignalState { interrupt: Mutex::new(interrupt), ..SignalState::default() });
        let (tx, rx) = mpsc::unbounded_channel();
        let listening = Arc::clone(&shared);
        let streams = (
            tokio::signal::unix::signal(SignalKind::interrupt()),
            tokio::signal::unix::signal(SignalKind::terminate()),
        );
        match streams {
            (Ok(mut int), Ok(mut term)) => {
                tokio::spawn(async move {
                    loop {
                        let signal = tokio::select! {
                            Some(()) = int.recv() => Signal::SIGINT,
                            Some(()) = term.recv() => Signal::SIGTERM,
                            else => break,
                        };
                        listening.on_signal(signal, &tx);
                    }
                });
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!("cannot listen for Ctrl-C and SIGTERM: {e}"),
        }
        Signals { shared, rx }
    }

    /// A fresh interrupt for the next phase (the previous one may have been set).
    pub(super) fn phase(&self) -> Interrupt {
        let fresh = Interrupt::default();
        *self.shared.lock() = fresh.clone();
        fresh
    }

    /// The signal received, if any.
    pub(super) fn received(&self) -> Option<i32> {
        (self.shared.count.load(Ordering::SeqCst) > 0).then(|| self.shared.last.load(Ordering::SeqCst))
    }

    /// 128 + the signal received, if any (how a shell reports a command a signal stopped).
    pub(super) fn exit_code(&self) -> Option<ExitCode> {
        self.received().map(|s| ExitCode::from(Ended::Interrupted(s).code()))
    }
}

impl SignalState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Interrupt> {
        self.interrupt.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn on_signal(&self, signal: Signal, tx: &mpsc::UnboundedSender<Signal>) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        self.last.store(signal as i32, Ordering::SeqCst);
        if self.in_command.load(Ordering::SeqCst) {
            let _ = tx.send(signal);
            return;
        }
        if n == 1 {
            self.lock().set();
            eprintln!(
                "switchctl: {} received: finishing the steps under way, starting no new ones (again to stop at once)",
                signal.as_str()
            );
        } else {
            eprintln!(
                "switchctl: {} received again: stopping now. Routes may be mid-switch; each is in a state the same \
                 command continues from (`switchctl status` shows them).",
                signal.as_str()
            );
            std::process::exit(128 + signal as i32);
        }
    }
}
