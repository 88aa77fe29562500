//! The window's record on the app: why it is open, until when, and which processes `on` stopped
//! with how many instances, so that `off` (from any machine, after any crash) puts them back.
//!
//! The record is one annotation on the APP (not on a route: an app with processes to stop may
//! have many routes, and the counts belong to the app), key [`WINDOW_KEY`], JSON, with a label of
//! the same key so `status` finds open windows in the space's app list it reads anyway. It is
//! written before the first route changes and before any process is scaled: a crash at any later
//! point leaves the counts to restore in Cloud Foundry. A rerun of `on` keeps the counts already
//! recorded (by then the processes may be at 0: recording them again would lose the real counts).
//!
//! Requests: with `--stop-processes`, `on` reads each app's processes (1), writes the record (1,
//! none on a rerun that changes nothing) and scales each process that runs instances (1 each);
//! `off` reads the processes (1), scales each one at 0 back (1 each) and clears the record (1).
//! `--reason` or `--deadline` alone cost the record's write and clearing, no read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    context::Env,
    fleet::{self, Member},
    notify::{self, HookEnv},
    outcome::{ProcessChange, ProcessReport, Report, Verb},
};
use crate::{
    capi::{App, MetadataPatch, Process},
    error::{Error, describe},
    settings::{StopProcesses, Window, quote, rfc3339},
};

/// The label and annotation key of the window's record on the app.
pub const WINDOW_KEY: &str = "switchctl.cf-maintenance/window";
/// The label's value.
pub const WINDOW_LABEL: &str = "open";
/// The record's format version.
const VERSION: u32 = 1;
/// CAPI's limit on an annotation value, in characters (`MAX_ANNOTATION_VALUE_SIZE`).
const MAX_CHARS: usize = super::state::MAX_ANNOTATION_CHARS;

/// The window's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// Format version.
    #[serde(default)]
    pub v: u32,
    /// `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `--deadline`, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// Stopped process types and the instance counts to restore.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processes: BTreeMap<String, u32>,
    /// When the window was first opened, RFC 3339.
    #[serde(default)]
    pub since: String,
    /// `--preview`'s route (preview.rs), written before the route is created or mapped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewRecord>,
}

/// The preview route of a window: enough for `off` to find it again after any crash, even one
/// between the record's write and the route's creation (then there is nothing to remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRecord {
    /// `host.domain`, as printed.
    pub url: String,
    /// The route's host.
    pub host: String,
    /// The route's domain GUID.
    pub domain: String,
    /// Whether switchctl creates the route (so `off` deletes it); else it existed and `off`
    /// unmaps only [`destinations`](Self::destinations).
    pub created: bool,
    /// The app's destinations switchctl maps to it (those it did not find there).
    #[serde(default)]
    pub destinations: Vec<super::state::SavedDestination>,
}

impl WindowRecord {
    /// The record on `app`, if any; one that does not parse is reported, not guessed at.
    pub fn of(app: &App) -> Result<Option<WindowRecord>, String> {
        match app.metadata.annotations.get(WINDOW_KEY) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("app {}'s annotation {WINDOW_KEY} is not a window record: {e}", app.name)),
        }
    }

    /// The annotation's value.
    pub fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One app's share of the window, decided before any change.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The app.
    pub member: Member,
    /// Its record as it must be (what `off` reads back).
    pub record: WindowRecord,
    /// Whether the record must be written (new or changed).
    write: bool,
    /// The app's processes, read before the switch (empty without `--stop-processes`).
    processes: Vec<Process>,
}

/// Refuses, before any change, a `--preview-host` for more than one app: one host names one route.
pub fn check_preview(preview: &crate::settings::Preview, members: &[Member]) -> Result<(), Error> {
    if preview.host.is_some() && members.len() > 1 {
        return Err(Error::Usage(
            "--preview-host names one route, for one app; leave it out for a fleet (each app gets a random one); \
             nothing was changed"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Reads and checks what the window needs of every member, then writes every record; before the
/// first route changes. A process type the app does not have, or `web`, is a usage error (exit 2)
/// with nothing changed. No request when the window asks for nothing.
pub async fn prepare(env: &Env, members: &[Member], window: &Window, dry_run: bool) -> Result<Vec<Plan>, Error> {
    if let Some(preview) = &window.preview {
        check_preview(preview, members)?;
    }
    if window.stop.is_none() && window.reason.is_none() && window.deadline.is_none() {
        return Ok(Vec::new());
    }
    let mut plans = Vec::new();
    for member in members {
        let app = &member.app;
        let existing = WindowRecord::of(app).map_err(Error::Usage)?;
        let mut record = existing.clone().unwrap_or_else(|| WindowRecord {
            v: VERSION,
            since: super::state::now_rfc3339(),
            ..WindowRecord::default()
        });
        let mut processes = Vec::new();
        if let Some(stop) = &window.stop {
            processes = env.client.app_processes(&app.guid).await?;
            for (kind, instances) in chosen(stop, &processes, &app.name)? {
                // A rerun keeps what the first run recorded: the process may be at 0 by now.
                record.processes.entry(kind).or_insert(instances);
            }
        }
        if let Some(reason) = &window.reason {
            record.reason = Some(reason.clone());
        }
        if let Some(deadline) = window.deadline {
            record.deadline = Some(rfc3339(deadline));
        }
        let chars = record.text().chars().count();
        if chars > MAX_CHARS {
            return Err(Error::Usage(format!(
                "the window's record for {} would have {chars} characters, more than the {MAX_CHARS} an \
                 annotation holds: stop fewer processes or shorten --reason; nothing was changed",
                app.name
            )));
        }
        let write = existing.as_ref() != Some(&record);
        plans.push(Plan { member: member.clone(), record, write, processes });
    }
    if dry_run {
        return Ok(plans);
    }
    for plan in plans.iter().filter(|p| p.write) {
        let mut patch = MetadataPatch::default();
        patch.labels.insert(WINDOW_KEY.to_owned(), Some(WINDOW_LABEL.to_owned()));
        patch.annotations.insert(WINDOW_KEY.to_owned(), Some(plan.record.text()));
        env.client.patch_app_metadata(&plan.member.app.guid, &patch).await?;
    }
    Ok(plans)
}

/// The (type, instances) `stop` names among `processes`; a usage error for `web` or a type the
/// app does not have.
fn chosen(stop: &StopProcesses, processes: &[Process], app: &str) -> Result<Vec<(String, u32)>, Error> {
    let types = || processes.iter().map(|p| p.kind.as_str()).collect::<Vec<_>>().join(", ");
    match stop {
        StopProcesses::AllButWeb => {
            Ok(processes.iter().filter(|p| p.kind != "web").map(|p| (p.kind.clone(), p.instances)).collect())
        }
        StopProcesses::Named(names) => names
            .iter()
            .map(|name| {
                if name == "web" {
                    return Err(Error::Usage(
                        "--stop-processes cannot stop web: it is what serves the routes, and `off` asks one of \
                         its instances before giving them back (the maintenance app already keeps users \
                         away); nothing was changed"
                            .to_owned(),
                    ));
                }
                processes.iter().find(|p| &p.kind == name).map(|p| (p.kind.clone(), p.instances)).ok_or_else(|| {
                    Error::Usage(format!(
                        "app {app} has no process type {}; its process types: {}; nothing was changed",
                        quote(name),
                        types()
                    ))
                })
            })
            .collect(),
    }
}

/// Scales every recorded process of each app now in maintenance to 0 (after its routes are
/// switched, before `run`'s command). An app whose switch failed keeps its processes.
pub async fn stop(env: &Env, plans: &[Plan], reports: &[Report]) -> Vec<ProcessReport> {
    let mut all = Vec::new();
    for plan in plans.iter().filter(|p| !p.record.processes.is_empty()) {
        let app = &plan.member.app;
        let Some(switched) = reports.iter().find(|r| r.app_guid == app.guid && r.ok) else { continue };
        let mut done = Vec::new();
        for (kind, recorded) in &plan.record.processes {
            let report = |change| ProcessReport { app: app.name.clone(), process: kind.clone(), change };
            let Some(process) = plan.processes.iter().find(|p| &p.kind == kind) else {
                done.push(report(ProcessChange::Gone { recorded: *recorded }));
                continue;
            };
            done.push(report(if process.instances == 0 {
                ProcessChange::AlreadyStopped { recorded: *recorded }
            } else if switched.dry_run {
                ProcessChange::WouldStop { from: process.instances }
            } else {
                match env.client.scale_process(&process.guid, 0).await {
                    Ok(_) => ProcessChange::Stopped { from: process.instances },
                    Err(e) => ProcessChange::Failed { recorded: *recorded, error: describe(&e) },
                }
            }));
        }
        print(env, &plan.member.label, Verb::On, &done);
        all.extend(done);
    }
    all
}

/// The records `off` works from: each member's as the app carries it now.
pub fn records_of(members: &[Member]) -> Vec<(Member, WindowRecord)> {
    members
        .iter()
        .filter_map(|m| match WindowRecord::of(&m.app) {
            Ok(Some(record)) => Some((m.clone(), record)),
            _ => None,
        })
        .collect()
}

/// After `off` gave an app its routes back: scales each recorded process at 0 back to its count
/// (one someone else scaled is left alone unless `force`), then clears the record, keeping only
/// what is not settled. An app still in maintenance keeps its record and its processes stopped.
pub async fn restore(
    env: &Env,
    records: &[(Member, WindowRecord)],
    reports: &[Report],
    force: bool,
) -> Vec<ProcessReport> {
    let mut all = Vec::new();
    for (member, record) in records {
        let app = &member.app;
        if !reports.iter().any(|r| r.app_guid == app.guid && r.ok && !r.dry_run) {
            continue;
        }
        let mut done = Vec::new();
        if !record.processes.is_empty() {
            let processes = match env.client.app_processes(&app.guid).await {
                Ok(p) => p,
                Err(e) => {
                    let error = describe(&e);
                    let failed = |(kind, recorded): (&String, &u32)| ProcessReport {
                        app: app.name.clone(),
                        process: kind.clone(),
                        change: ProcessChange::Failed { recorded: *recorded, error: error.clone() },
                    };
                    done.extend(record.processes.iter().map(failed));
                    Vec::new()
                }
            };
            if done.is_empty() {
                for (kind, recorded) in &record.processes {
                    let change = restore_one(env, processes.iter().find(|p| &p.kind == kind), *recorded, force).await;
                    done.push(ProcessReport { app: app.name.clone(), process: kind.clone(), change });
                }
            }
            print(env, &member.label, Verb::Off, &done);
        }
        let kept: BTreeMap<String, u32> = record
            .processes
            .iter()
            .filter(|(kind, _)| done.iter().any(|d| &d.process == *kind && !d.settled()))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut patch = MetadataPatch::default();
        // A preview `off` could not remove stays recorded (preview.rs clears it once removed).
        if kept.is_empty() && record.preview.is_none() {
            patch.labels.insert(WINDOW_KEY.to_owned(), None);
            patch.annotations.insert(WINDOW_KEY.to_owned(), None);
        } else {
            let rest = WindowRecord { processes: kept, ..record.clone() };
            patch.annotations.insert(WINDOW_KEY.to_owned(), Some(rest.text()));
        }
        if let Err(e) = env.client.patch_app_metadata(&app.guid, &patch).await {
            env.out.error(&format!("{}: could not update the window's record: {}", app.name, describe(&e)));
        }
        all.extend(done);
    }
    all
}

async fn restore_one(env: &Env, process: Option<&Process>, recorded: u32, force: bool) -> ProcessChange {
    let Some(process) = process else { return ProcessChange::Gone { recorded } };
    let now = process.instances;
    let target = match (now, force) {
        (n, _) if n == recorded => return ProcessChange::AlreadyRestored { instances: n },
        (0, _) | (_, true) => recorded,
        (n, false) => return ProcessChange::ScaledByOthers { recorded, now: n },
    };
    match env.client.scale_process(&process.guid, target).await {
        Ok(_) if now == 0 => ProcessChange::Restored { to: target },
        Ok(_) => ProcessChange::Forced { from: now, to: target },
        Err(e) => ProcessChange::Failed { recorded, error: describe(&e) },
    }
}

/// The lines and the `processes` event of one app.
fn print(env: &Env, label: &str, verb: Verb, done: &[ProcessReport]) {
    let out = &env.out;
    for d in done {
        out.line(&format!("{}{}", out.prefix(label), d.line()));
    }
    out.event("processes", serde_json::json!({"app": label, "action": verb, "processes": done}));
}

/// What to tell about processes that are not settled, with the command that settles them; `None`
/// when all are.
pub fn advice(env: &Env, done: &[ProcessReport], reports: &[Report]) -> Option<String> {
    let unsettled: Vec<&ProcessReport> = done.iter().filter(|d| !d.settled()).collect();
    if unsettled.is_empty() {
        return None;
    }
    let apps: Vec<&Report> = reports.iter().filter(|r| unsettled.iter().any(|u| u.app == r.app)).collect();
    let forced = unsettled.iter().any(|u| matches!(u.change, ProcessChange::ScaledByOthers { .. }));
    let commands: Vec<String> = fleet::commands(&env.settings, Verb::Off, &apps)
        .into_iter()
        .map(|c| {
            let bare = c.trim_matches('`');
            if forced && !bare.ends_with(" --force") { format!("`{bare} --force`") } else { c.clone() }
        })
        .collect();
    Some(format!(
        "{} not back at the recorded count: {}; {} with {}",
        if unsettled.len() == 1 { "1 process".to_owned() } else { format!("{} processes", unsettled.len()) },
        unsettled.iter().map(|u| format!("{}/{}", u.app, u.process)).collect::<Vec<_>>().join(", "),
        if forced { "to restore the recorded counts anyway, run" } else { "retry" },
        commands.join(" and ")
    ))
}

/// `on`/`run`, once the routes are switched: the processes stopped, an `opened` event, the
/// `--on-open` hook; for the apps `on` could not switch, a `failed` event with the commands that
/// finish (`on` again) or undo (`off`) what it left, so a notification receiver learns of them as
/// an operator's terminal does.
pub async fn opened(env: &Env, plans: &[Plan], reports: &[Report]) -> Vec<ProcessReport> {
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok && !r.dry_run).collect();
    if !failed.is_empty() {
        env.out.event(
            "window",
            serde_json::json!({
                "state": "failed",
                "apps": failed.iter().map(|r| r.app.as_str()).collect::<Vec<_>>(),
                "finish": fleet::commands(&env.settings, Verb::On, &failed),
                "undo": fleet::commands(&env.settings, Verb::Off, &failed),
            }),
        );
    }
    let stopped = stop(env, plans, reports).await;
    let open: Vec<&str> = reports.iter().filter(|r| r.ok && !r.dry_run).map(|r| r.app.as_str()).collect();
    if !open.is_empty() {
        let w = &env.settings.window;
        env.out
            .event("window", serde_json::json!({"state": "opened", "apps": open, "deadline": w.deadline.map(rfc3339)}));
        let hook_env = HookEnv { event: "opened", apps: &open, reason: w.reason.as_deref() };
        notify::hook(&env.out, "--on-open", &w.on_open, hook_env).await;
    }
    stopped
}

/// `off`/`run`, once the routes are back: the processes restored, a `closed` event and the
/// `--on-close` hook for the apps back, a `stuck` event with the finish command for the others.
pub async fn closed(env: &Env, records: &[(Member, WindowRecord)], reports: &[Report]) -> Vec<ProcessReport> {
    let w = &env.settings.window;
    let restored = restore(env, records, reports, w.force).await;
    let back: Vec<&str> = reports.iter().filter(|r| r.ok && !r.dry_run).map(|r| r.app.as_str()).collect();
    if !back.is_empty() {
        env.out.event("window", serde_json::json!({"state": "closed", "apps": back}));
        let reason = w.reason.clone().or_else(|| records.iter().find_map(|(_, r)| r.reason.clone()));
        let hook_env = HookEnv { event: "closed", apps: &back, reason: reason.as_deref() };
        notify::hook(&env.out, "--on-close", &w.on_close, hook_env).await;
    }
    stuck(env, &reports.iter().filter(|r| !r.ok && !r.dry_run).collect::<Vec<_>>());
    restored
}

/// A `stuck` event: these apps stay in maintenance; the command that finishes the window.
pub fn stuck(env: &Env, reports: &[&Report]) {
    if reports.is_empty() {
        return;
    }
    env.out.event(
        "window",
        serde_json::json!({
            "state": "stuck",
            "apps": reports.iter().map(|r| r.app.as_str()).collect::<Vec<_>>(),
            "finish": fleet::commands(&env.settings, Verb::Off, reports),
        }),
    );
}

/// `off`'s records, read from the apps as resolved; their reason is carried in `off`'s events.
pub fn for_off(env: &Env, members: &[Member]) -> Result<Vec<(Member, WindowRecord)>, Error> {
    let w = &env.settings.window;
    if w.stop.is_some() || w.reason.is_some() || w.deadline.is_some() || !w.on_open.is_empty() || w.preview.is_some() {
        return Err(Error::Usage(
            "--stop-processes, --reason, --deadline, --on-open and --preview are for `on` and `run`; `off` \
             restores what `on` recorded"
                .to_owned(),
        ));
    }
    for m in members {
        WindowRecord::of(&m.app).map_err(Error::Usage)?;
    }
    let records = records_of(members);
    if let Some(reason) = records.iter().find_map(|(_, r)| r.reason.clone()) {
        env.out.set_reason(Some(reason));
    }
    Ok(records)
}

/// `status`: the window's record on `app`, if any: since when, why, until when, and each stopped
/// process's recorded count against its count now (one read of the processes when some are
/// recorded).
pub async fn show(client: &crate::capi::Client, out: &crate::output::Output, app: &App) -> Result<(), Error> {
    let record = match WindowRecord::of(app) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(()),
        Err(e) => {
            out.line(&format!("  window: {e}"));
            return Ok(());
        }
    };
    let processes = if record.processes.is_empty() { Vec::new() } else { client.app_processes(&app.guid).await? };
    let now = time::OffsetDateTime::now_utc();
    let overdue = record
        .deadline
        .as_deref()
        .and_then(|d| time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok())
        .is_some_and(|d| d < now);
    out.line("");
    out.line(&format!("Window of app {} (open since {}):", app.name, record.since));
    if let Some(reason) = &record.reason {
        out.line(&format!("  reason: {reason}"));
    }
    if let Some(deadline) = &record.deadline {
        out.line(&format!("  deadline: {deadline}{}", if overdue { " (PASSED)" } else { "" }));
    }
    if let Some(preview) = &record.preview {
        out.line(&format!("  preview: {}{}", preview.url, if preview.created { "" } else { " (an existing route)" }));
    }
    let rows: Vec<serde_json::Value> = record
        .processes
        .iter()
        .map(|(kind, recorded)| {
            let current = processes.iter().find(|p| &p.kind == kind).map(|p| p.instances);
            let shown = current.map_or("no such process now".to_owned(), |n| format!("{n} now"));
            out.line(&format!("  stopped process {kind}: {recorded} recorded, {shown}"));
            serde_json::json!({"process": kind, "recorded": recorded, "now": current})
        })
        .collect();
    out.event(
        "window",
        serde_json::json!({
            "state": "recorded",
            "app": app.name,
            "since": record.since,
            "reason": record.reason,
            "deadline": record.deadline,
            "deadline_passed": overdue,
            "processes": rows,
            "preview": record.preview.as_ref().map(|p| &p.url),
        }),
    );
    Ok(())
}
