//! `switchctl run APP… [--restage] -- COMMAND…`: a whole maintenance window with a known end.
//!
//! 0. COMMAND is looked up (found, executable) before anything changes: a typo must not open a
//!    window that then stays open;
//! 1. `on` for every app (nothing else happens unless every app is in maintenance);
//! 2. COMMAND, without a shell, stdio inherited (stdout to stderr with `--json`, whose stdout is
//!    events only), the apps in its environment;
//! 3. with `--restage`, each app restaged as `cf restage` does ([`super::restage`]);
//! 4. `off` for every app whose work succeeded.
//!
//! When COMMAND fails or switchctl is interrupted (Ctrl-C, SIGTERM, SIGHUP), the apps stay in
//! maintenance (a failed migration must not meet users) and switchctl prints the commands that
//! finish the window, with every flag of the run; `--on-failure off` takes them out instead. An
//! app whose restage failed always stays: its new droplet does not run. The exit code is
//! COMMAND's when it failed.

use std::{
    collections::HashMap,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
};

use nix::{sys::signal::Signal, unistd::Pid};

use super::{
    context::Env,
    fleet::{self, Member, Resolved},
    off, on,
    outcome::{ProcessReport, Report, Verb},
    preview,
    restage::{self, RestageReport},
    schedule,
    signals::{self, Signals},
    window::{self, WindowRecord},
};
use crate::{
    cli::OnFailure,
    error::{EXIT_FAILURE, Error},
    output::{Output, plural, table},
    session::Session,
    settings::{Off, Run, Settings, quote},
};

/// Exit code when COMMAND cannot be found (as a shell says it).
const EXIT_NOT_FOUND: u8 = 127;
/// Exit code when COMMAND cannot be started for another reason.
const EXIT_CANNOT_RUN: u8 = 126;

/// Why COMMAND cannot be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannotRun {
    /// 127 (not found) or 126 (not executable), as a shell reports it.
    pub code: u8,
    /// What is wrong, in words.
    pub why: String,
}

/// Finds `program` as `execvp` would: a path when it contains a slash, else the first executable
/// file of that name on `path` (`PATH`).
pub fn locate(program: &str, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, CannotRun> {
    let executable =
        |p: &Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
    if program.contains('/') {
        let p = Path::new(program);
        return if executable(p) {
            Ok(p.to_owned())
        } else if p.exists() {
            Err(CannotRun { code: EXIT_CANNOT_RUN, why: format!("{program} is not an executable file (`chmod +x`?)") })
        } else {
            Err(CannotRun { code: EXIT_NOT_FOUND, why: format!("{program} does not exist") })
        };
    }
    let mut found_unexecutable = None;
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let candidate = if dir.as_os_str().is_empty() { PathBuf::from(program) } else { dir.join(program) };
        if executable(&candidate) {
            return Ok(candidate);
        }
        if candidate.is_file() {
            found_unexecutable.get_or_insert(candidate);
        }
    }
    Err(match found_unexecutable {
        Some(p) => CannotRun { code: EXIT_CANNOT_RUN, why: format!("{} is not executable", p.display()) },
        None => CannotRun { code: EXIT_NOT_FOUND, why: format!("{program:?} is not found on PATH (a typo?)") },
    })
}

/// `switchctl run`. Longer than most functions here on purpose: it is the window's steps 0–4 of the
/// module docs, in order, and reads top to bottom like the runbook it replaces.
pub async fn run(session: &Session, settings: &Arc<Settings>, out: &Output, args: &Run) -> Result<ExitCode, Error> {
    let sw = &args.switch;
    if args.command.is_empty() && args.restage.is_none() {
        return Err(Error::Usage(
            "nothing to do in the window: give the command after `--` (e.g. `switchctl run shop -- ./migrate.sh`), \
             or --restage"
                .to_owned(),
        ));
    }
    if let Some(program) = args.command.first()
        && let Err(e) = locate(program, std::env::var_os("PATH").as_deref())
    {
        out.error(&format!("cannot run the command: {}; nothing was changed", e.why));
        return Ok(ExitCode::from(e.code));
    }
    let client = session.client();
    let resolved = fleet::resolve(session, &sw.fleet, &sw.maintenance).await?;
    let running = fleet::check_maintenance_apps(client, &resolved, &sw.maintenance).await?;
    let packages = match args.restage {
        Some(_) => {
            restage::check_deployments(client, &resolved.members, sw.fleet.parallel).await?;
            restage::packages(client, &resolved.members, sw.fleet.parallel).await?
        }
        None => HashMap::new(),
    };

    out.set_fleet(resolved.fleet);
    let signals = Signals::install(out);
    let env = Env { running, ..Env::new(client, settings, sw, out, signals.phase())? };
    out.event(
        "start",
        serde_json::json!({
            "action": "run",
            "apps": resolved.members.iter().map(|m| &m.label).collect::<Vec<_>>(),
            "command": args.command,
            "restage": args.restage.is_some(),
            "dry_run": sw.dry_run,
        }),
    );
    let mut signals = signals;
    if let Some(at) = settings.window.at.filter(|_| !sw.dry_run) {
        // Every check that can fail is made before the wait, not at its end.
        window::prepare(&env, &resolved.members, &settings.window, true).await?;
        if let Err(signal) = schedule::wait_until(out, at, &mut signals).await {
            out.error(&format!("{} received while waiting for --at: nothing was changed", signal.as_str()));
            return Ok(ExitCode::from(signals::exit_code(signal as i32)));
        }
    }
    let plans = window::prepare(&env, &resolved.members, &settings.window, sw.dry_run).await?;
    let records = if plans.is_empty() {
        window::records_of(&resolved.members)
    } else {
        plans.iter().map(|p| (p.member.clone(), p.record.clone())).collect()
    };
    let mut window = Window { args, settings, resolved: &resolved, out, env, signals, records, previews: Vec::new() };

    // 1. Open.
    out.line(&format!("Opening the window: the routes of {} in {}...", names(&resolved), resolved.scope));
    let opened = on::switch_on(&window.env, &resolved.members, sw).await?;
    if sw.dry_run {
        if !args.command.is_empty() {
            out.line(&format!("Would run: {}", shell_words(&args.command)));
        }
        if args.restage.is_some() {
            out.line(&format!("Would restage: {}", names(&resolved)));
        }
        out.line(&format!("Would then switch off: {}", names(&resolved)));
        return Ok(fleet::finish(&window.env, Verb::On, sw, &resolved, &opened));
    }
    if let Some(failed) = window.not_done(&opened) {
        let (why, ended) = match window.signals.received() {
            Some(signal) => ("switchctl was interrupted while opening the window", Ended::Interrupted(signal)),
            None => ("the window could not be opened", Ended::Failed(EXIT_FAILURE)),
        };
        let all = resolved.members.as_slice();
        return Ok(window.abandon(why, &failed, ended, &opened, all).await);
    }

    // The writers stop once the routes are switched, before the command.
    let stopped = window::opened(&window.env, &plans, &opened).await;
    if stopped.iter().any(|p| !p.settled()) {
        let why = "a process could not be stopped, so the command was not run";
        return Ok(window.abandon(why, &[], Ended::Failed(EXIT_FAILURE), &opened, &resolved.members).await);
    }
    let previews = preview::open(&window.env, &resolved.members, &plans, &opened).await;
    let previews_ok = previews.as_ref().is_ok_and(|p| p.ok);
    if let Ok(p) = &previews {
        p.merge_into(&mut window.records);
        window.previews.clone_from(&p.urls);
    }
    if let Err(e) = &previews {
        out.error(&crate::error::describe(e));
    }
    if !previews_ok {
        let why = "the preview route could not be opened, so the command was not run";
        return Ok(window.abandon(why, &[], Ended::Failed(EXIT_FAILURE), &opened, &resolved.members).await);
    }
    let _deadline = settings
        .window
        .deadline
        .map(|d| schedule::watch_deadline(out, d, resolved.members.iter().map(|m| m.label.clone()).collect()));

    // 2. The command.
    if !args.command.is_empty() {
        match window.command().await {
            Ended::Succeeded => {}
            ended => {
                let why = match &ended {
                    Ended::Interrupted(_) => "switchctl was interrupted while the command ran".to_owned(),
                    _ => format!("the command {} failed", shell_words(&args.command)),
                };
                return Ok(window.abandon(&why, &[], ended, &opened, &resolved.members).await);
            }
        }
    }

    // 3. Restage.
    let mut keep: Vec<RestageReport> = Vec::new();
    let mut ready: Vec<Member> = resolved.members.clone();
    if let Some(timeouts) = args.restage {
        let reports = restage::each_app(&window.env, &resolved.members, &packages, timeouts, sw.fleet.parallel).await;
        let (ok, failed): (Vec<RestageReport>, Vec<RestageReport>) = reports.into_iter().partition(|r| r.ok);
        ready.retain(|m| ok.iter().any(|r| r.app_guid == m.app.guid));
        keep = failed;
        for r in &keep {
            out.error(&format!("{}: restage failed: {}", r.app, r.error.as_deref().unwrap_or("unknown")));
        }
    }
    // The smoke test gates reopening as the command does: a failure keeps the apps in maintenance.
    if let Err(code) = preview::smoke(&window.env, args, &window.previews).await {
        let why = "the smoke test failed";
        return Ok(window.abandon(why, &[], Ended::Failed(code), &opened, &resolved.members).await);
    }
    if let Some(signal) = window.signals.received() {
        // Only apps whose restage succeeded may go back: the others do not run their new droplet.
        let ended = Ended::Interrupted(signal);
        return Ok(window.abandon("switchctl was interrupted", &[], ended, &opened, &ready).await);
    }

    // 4. Close.
    out.line(&format!("Closing the window: {} back from maintenance...", plural(ready.len(), "app")));
    window.env.interrupt = window.signals.phase();
    let (closed, restored) = window.close(&ready).await;
    window.summary(&opened, Some(&closed), &keep);
    let mut stay: Vec<&Report> = closed.iter().filter(|r| !r.ok).collect();
    stay.extend(opened.iter().filter(|r| keep.iter().any(|k| k.app_guid == r.app_guid)));
    window::stuck(&window.env, &stay);
    if let Some(advice) = window::advice(&window.env, &restored, &closed) {
        out.error(&advice);
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    if stay.is_empty() {
        out.line("");
        out.line(&format!("OK: the window is closed; {} served again.", plural(closed.len(), "app")));
        return Ok(ExitCode::SUCCESS);
    }
    out.error(&format!(
        "{} still in maintenance: {}. Fix the cause shown above, then take {} out with {}.",
        plural(stay.len(), "app"),
        stay.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
        if stay.len() == 1 { "it" } else { "them" },
        fleet::commands(settings, Verb::Off, &stay).join(" and ")
    ));
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
            Ended::Interrupted(signal) => signals::exit_code(signal),
        }
    }
}

struct Window<'a> {
    args: &'a Run,
    settings: &'a Settings,
    resolved: &'a Resolved,
    out: &'a Output,
    env: Env,
    signals: Signals,
    /// The window's records, as written when it opened (what closing restores).
    records: Vec<(Member, WindowRecord)>,
    /// The preview URLs, one per app (`--preview`).
    previews: Vec<String>,
}

impl Window<'_> {
    /// The reports that are not done, if any (or all when interrupted).
    fn not_done<'r>(&self, reports: &'r [Report]) -> Option<Vec<&'r Report>> {
        let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok || r.nothing_to_switch()).collect();
        (!failed.is_empty() || self.signals.received().is_some()).then_some(failed)
    }

    /// `off` for `members` with the run's switch settings. The routes were probed when the window
    /// opened; should they be unreachable now, the error is reported per app.
    /// Then the processes stopped when it opened are restored ([`window::closed`]).
    async fn close(&self, members: &[Member]) -> (Vec<Report>, Vec<ProcessReport>) {
        let off = Off { switch: self.args.switch.clone(), force: false };
        let reports = match off::switch_off(&self.env, members, &off).await {
            Ok(reports) => reports,
            Err(e) => {
                let why = crate::error::describe(&e);
                members.iter().map(|m| fleet::report_for(m, Verb::Off, false).failed(why.clone())).collect()
            }
        };
        let records = preview::close(&self.env, self.records.clone(), &reports).await;
        let restored = window::closed(&self.env, &records, &reports).await;
        (reports, restored)
    }

    /// Runs COMMAND to its end; signals reach it as a terminal would deliver them.
    async fn command(&mut self) -> Ended {
        let command = &self.args.command;
        let Some((program, rest)) = command.split_first() else { return Ended::Succeeded };
        let members = &self.resolved.members;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(rest)
            .stdout(self.out.child_stdout())
            .env("SWITCHCTL_APPS", members.iter().map(|m| m.app.name.as_str()).collect::<Vec<_>>().join("\n"));
        if let [only] = members.as_slice() {
            cmd.env("SWITCHCTL_APP", &only.app.name);
        }
        preview::export(&mut cmd, &self.previews);
        if let Some(first) = members.first() {
            cmd.env("SWITCHCTL_ORG", &first.target.org.name);
            if members.iter().all(|m| m.target.space.guid == first.target.space.guid) {
                cmd.env("SWITCHCTL_SPACE", &first.target.space.name);
            }
        }
        self.out.line(&format!("Running {} (the apps are in maintenance)...", shell_words(command)));
        self.out.event("command", serde_json::json!({"state": "started", "argv": command}));
        // The command owns the terminal while it runs.
        self.out.clear();
        self.signals.set_in_command(true);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.signals.set_in_command(false);
                let code = if e.kind() == std::io::ErrorKind::NotFound { EXIT_NOT_FOUND } else { EXIT_CANNOT_RUN };
                self.out.error(&format!("cannot run {program:?}: {e}"));
                self.out.event("command", serde_json::json!({"state": "not started", "error": e.to_string()}));
                return Ended::Failed(code);
            }
        };
        let pid = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        let mut interrupted = None;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                Some(signal) = self.signals.next() => {
                    // Ctrl-C reaches the whole foreground process group, the command included; a
                    // SIGTERM or SIGHUP is meant for switchctl alone (a hang-up may not reach a
                    // command in another group) and is passed on. A second signal of any kind
                    // asks the command to stop.
                    let forward = signal != Signal::SIGINT || interrupted.is_some();
                    interrupted.get_or_insert(signal as i32);
                    if forward && let Some(pid) = pid {
                        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
                    }
                    self.out.notice(&format!(
                        "{} received: waiting for the command to end; the apps stay in maintenance{}",
                        signal.as_str(),
                        if self.args.on_failure == OnFailure::Off { " until then" } else { "" }
                    ));
                }
            }
        };
        self.signals.set_in_command(false);
        let code = match &status {
            Ok(status) => exit_code_of(status),
            Err(e) => {
                self.out.error(&format!("lost track of the command: {e}"));
                EXIT_FAILURE
            }
        };
        self.out.event("command", serde_json::json!({"state": "exited", "code": code}));
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
    ) -> ExitCode {
        let out = self.out;
        if self.args.on_failure == OnFailure::Off {
            out.line(&format!("{why}; --on-failure off: taking the apps out of maintenance..."));
            self.env.interrupt = self.signals.phase();
            let (closed, restored) = self.close(may_go_back).await;
            self.summary(opened, Some(&closed), &[]);
            if let Some(advice) = window::advice(&self.env, &restored, &closed) {
                out.error(&advice);
            }
            let stuck: Vec<&Report> = closed.iter().filter(|r| !r.ok).collect();
            if stuck.is_empty() {
                out.error(&format!("{why}; the apps are out of maintenance again (--on-failure off)."));
            } else {
                out.error(&format!(
                    "{why}; {} could not be taken out of maintenance: {}; finish with {}.",
                    plural(stuck.len(), "app"),
                    stuck.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                    fleet::commands(self.settings, Verb::Off, &stuck).join(" and ")
                ));
            }
            return ExitCode::from(ended.code());
        }
        self.summary(opened, None, &[]);
        let in_maintenance: Vec<&Report> = opened.iter().filter(|r| r.in_maintenance()).collect();
        let mut text = format!("{why}.");
        if !failed.is_empty() {
            text.push_str(&format!(
                " Not in maintenance: {}; the command was not run. Finish opening with {} and run it yourself.",
                failed.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                fleet::commands(self.settings, Verb::On, failed).join(" and ")
            ));
        }
        window::stuck(&self.env, &in_maintenance);
        if in_maintenance.is_empty() {
            text.push_str(" No app is in maintenance.");
        } else {
            text.push_str(&format!(
                " Staying in maintenance: {}. When the cause is fixed, take them out with {}.",
                in_maintenance.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                fleet::commands(self.settings, Verb::Off, &in_maintenance).join(" and ")
            ));
        }
        out.error(&text);
        ExitCode::from(ended.code())
    }

    /// The table of every app: opened, restaged, closed.
    fn summary(&self, opened: &[Report], closed: Option<&[Report]>, restage_failed: &[RestageReport]) {
        let out = self.out;
        out.clear();
        let closed_of = |r: &Report| closed.and_then(|c| c.iter().find(|x| x.app_guid == r.app_guid));
        let failed_restage = |r: &Report| restage_failed.iter().find(|f| f.app_guid == r.app_guid);
        let failed = |e: Option<&str>| format!("FAILED{}", e.map(|e| format!(": {e}")).unwrap_or_default());
        let mut rows = vec![["app", "space", "on", "restage", "off", "now"].map(str::to_owned)];
        for r in opened {
            let restage = match (self.args.restage.is_some(), failed_restage(r), closed_of(r)) {
                (false, _, _) => "-".to_owned(),
                (true, Some(f), _) => failed(f.error.as_deref()),
                (true, None, Some(_)) => "ok".to_owned(),
                (true, None, None) => "-".to_owned(),
            };
            let off = match closed_of(r) {
                Some(c) if c.ok => "ok".to_owned(),
                Some(c) => failed(c.error.as_deref()),
                None => "-".to_owned(),
            };
            let now = match closed_of(r) {
                Some(c) if c.ok => "serving",
                Some(c) if c.in_maintenance() || r.in_maintenance() => "in maintenance",
                None if r.in_maintenance() => "in maintenance",
                _ => "serving",
            };
            let on = if r.ok { "ok".to_owned() } else { failed(r.error.as_deref()) };
            rows.push([r.app.clone(), r.space.clone(), on, restage, off, now.to_owned()]);
        }
        out.line("");
        for line in table(&rows) {
            out.line(&line);
        }
        out.event(
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
        (None, Some(signal)) => signals::exit_code(signal),
        (None, None) => EXIT_FAILURE,
    }
}

/// The words of a command as a shell would take them back.
fn shell_words(words: &[String]) -> String {
    words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn names(resolved: &Resolved) -> String {
    let names: Vec<&str> = resolved.members.iter().map(|m| m.label.as_str()).collect();
    if names.len() <= 5 { names.join(", ") } else { format!("{}, … ({} apps)", names[..5].join(", "), names.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_located_as_execvp_would() {
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("migrate.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        let path = std::env::join_paths([dir.path()]).expect("path");
        assert_eq!(locate("migrat.sh", Some(&path)).map_err(|e| e.code), Err(EXIT_NOT_FOUND));
        assert_eq!(locate("migrate.sh", Some(&path)).map_err(|e| e.code), Err(EXIT_CANNOT_RUN));
        assert_eq!(locate(&script.display().to_string(), None).map_err(|e| e.code), Err(EXIT_CANNOT_RUN));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(locate("migrate.sh", Some(&path)), Ok(script.clone()));
        assert_eq!(locate(&script.display().to_string(), None), Ok(script));
        assert_eq!(locate("./nope/x", None).map_err(|e| e.code), Err(EXIT_NOT_FOUND));
    }
}
