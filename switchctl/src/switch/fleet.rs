//! Fleets: which apps a command works on (names, a label selector; the target space or every
//! space of the org), working on several at once, and the summary at the end.
//!
//! Every name and selector is resolved, and every space's maintenance app checked, before the
//! first change: a typo or a missing maintenance app stops the run with nothing changed (exit 2).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    process::ExitCode,
    sync::Arc,
};

use super::{
    Env, Interrupt, Work, each, off, on,
    output::{self, Outcome, Report, plural},
    progress::{Progress, Style},
    running_web,
    window::Signals,
};
use crate::{
    capi::{App, Client, Space},
    cfconfig::Targeted,
    cli::{Fleet, OffArgs, SwitchArgs},
    error::{EXIT_FAILURE, Error},
    session::{Session, Target as SpaceTarget},
};

/// Names per `GET /v3/apps?names=…` (keeps the URL short).
const NAMES_PER_REQUEST: usize = 50;

/// One app of a fleet, with its space and that space's maintenance app.
#[derive(Debug, Clone)]
pub struct Member {
    /// The app.
    pub app: App,
    /// Its org and space.
    pub target: SpaceTarget,
    /// The maintenance app of its space, if there is one.
    pub maint: Option<App>,
    /// How the app is called in lines and events: its name, or `space/name` across spaces.
    pub label: String,
}

/// The apps of a fleet and where they were looked for.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The apps, by space and name.
    pub members: Vec<Member>,
    /// `org O / space S`, or `org O (all spaces)`.
    pub scope: String,
    /// More than one app could be meant (several names, a selector, all spaces).
    pub fleet: bool,
}

/// Finds the apps `fleet` names or selects, and each space's maintenance app.
pub async fn resolve(session: &Session, fleet: &Fleet, maintenance_app: &str) -> Result<Resolved, Error> {
    if fleet.apps.iter().any(|a| a == maintenance_app) {
        return Err(Error::Usage(format!(
            "{maintenance_app:?} is the maintenance app itself; name the apps to switch, or the maintenance app with \
             --maintenance-app"
        )));
    }
    let client = session.client();
    let (spaces, scope_key, scope_value, scope) = if fleet.all_spaces {
        let org = session.target_org().await?;
        let spaces: Vec<Space> = client.get_all("/v3/spaces", &[("organization_guids", org.guid.as_str())]).await?;
        let targets: Vec<SpaceTarget> = spaces
            .into_iter()
            .map(|s| SpaceTarget { org: org.clone(), space: Targeted { guid: s.guid, name: s.name } })
            .collect();
        let scope = format!("org {} (all spaces)", org.name);
        (targets, "organization_guids", org.guid, scope)
    } else {
        let target = session.target().await?;
        let scope = format!("org {} / space {}", target.org.name, target.space.name);
        let guid = target.space.guid.clone();
        (vec![target], "space_guids", guid, scope)
    };
    let by_space: HashMap<&str, &SpaceTarget> = spaces.iter().map(|t| (t.space.guid.as_str(), t)).collect();
    let within = (scope_key, scope_value.as_str());

    let mut apps: Vec<App> = Vec::new();
    for chunk in fleet.apps.chunks(NAMES_PER_REQUEST) {
        let names = chunk.join(",");
        let found: Vec<App> = client.get_all("/v3/apps", &[("names", names.as_str()), within]).await?;
        apps.extend(found.into_iter().filter(|a| chunk.contains(&a.name)));
    }
    let missing: Vec<&str> =
        fleet.apps.iter().filter(|n| !apps.iter().any(|a| &a.name == *n)).map(String::as_str).collect();
    match missing.as_slice() {
        [] => {}
        [name] => {
            let (org, space) = match spaces.first() {
                Some(t) if !fleet.all_spaces => (t.org.name.clone(), t.space.name.clone()),
                Some(t) => (t.org.name.clone(), "(any)".to_owned()),
                None => (String::new(), String::new()),
            };
            return Err(Error::AppNotFound { name: (*name).to_owned(), org, space });
        }
        names => {
            return Err(Error::Usage(format!(
                "apps not found in {scope}: {}; check the names with `cf apps`; nothing was changed",
                names.join(", ")
            )));
        }
    }
    if let Some(selector) = &fleet.selector {
        let selected: Vec<App> = client.get_all("/v3/apps", &[within, ("label_selector", selector.as_str())]).await?;
        let (maint, others): (Vec<App>, Vec<App>) = selected.into_iter().partition(|a| a.name == maintenance_app);
        if !maint.is_empty() {
            tracing::warn!("the selector also matches the maintenance app {maintenance_app:?}; it is left out");
        }
        for app in others {
            if !apps.iter().any(|a| a.guid == app.guid) {
                apps.push(app);
            }
        }
        if apps.is_empty() {
            return Err(Error::Usage(format!(
                "no app in {scope} matches the label selector {selector:?}; nothing was changed (list the apps' \
                 labels with `cf curl \"/v3/apps?label_selector={selector}\"`)"
            )));
        }
    }

    let maints: Vec<App> = client.get_all("/v3/apps", &[("names", maintenance_app), within]).await?;
    let maint_of = |space: &str| maints.iter().find(|m| m.name == maintenance_app && space_of(m) == Some(space));
    let mut members: Vec<Member> = apps
        .into_iter()
        .filter_map(|app| {
            let space = space_of(&app)?;
            let target = (*by_space.get(space)?).clone();
            let label = if fleet.all_spaces { format!("{}/{}", target.space.name, app.name) } else { app.name.clone() };
            Some(Member { maint: maint_of(space).cloned(), app, target, label })
        })
        .collect();
    members.sort_by(|a, b| (&a.target.space.name, &a.app.name).cmp(&(&b.target.space.name, &b.app.name)));
    let fleet = fleet.apps.len() > 1 || fleet.selector.is_some() || fleet.all_spaces;
    Ok(Resolved { members, scope, fleet })
}

fn space_of(app: &App) -> Option<&str> {
    app.relationships.space.guid()
}

/// Checks, before any change, that every space of the fleet has its maintenance app running.
pub async fn check_maintenance_apps(client: &Client, resolved: &Resolved, name: &str) -> Result<(), Error> {
    let mut checked: HashSet<&str> = HashSet::new();
    for m in &resolved.members {
        if !checked.insert(m.target.space.guid.as_str()) {
            continue;
        }
        let maint = m.maint.as_ref().ok_or_else(|| Error::MaintenanceAppNotFound {
            name: name.to_owned(),
            org: m.target.org.name.clone(),
            space: m.target.space.name.clone(),
        })?;
        if let Err(why) = running_web(client, maint).await? {
            return Err(Error::NotRunning {
                role: "maintenance app",
                name: format!("{} (space {})", maint.name, m.target.space.name),
                why,
                fix: format!(
                    "start it (`cf start {}` in space {}) and wait until an instance is running; nothing was changed",
                    maint.name, m.target.space.name
                ),
            });
        }
    }
    Ok(())
}

/// `switchctl on`.
pub(super) async fn on(session: &Session, args: &SwitchArgs, json: bool, skip_tls: bool) -> Result<ExitCode, Error> {
    let resolved = resolve(session, &args.fleet, &args.maintenance_app).await?;
    check_maintenance_apps(session.client(), &resolved, &args.maintenance_app).await?;
    command(session, &resolved, args, "on", json, skip_tls, async |env: &Env| {
        switch_on(env, &resolved.members, args).await
    })
    .await
}

/// `switchctl off`.
pub(super) async fn off(session: &Session, args: &OffArgs, json: bool, skip_tls: bool) -> Result<ExitCode, Error> {
    let sw = &args.switch;
    let resolved = resolve(session, &sw.fleet, &sw.maintenance_app).await?;
    command(session, &resolved, sw, "off", json, skip_tls, async |env: &Env| {
        switch_off(env, &resolved.members, args).await
    })
    .await
}

/// Runs `work` for a resolved fleet with progress and signal handling; the summary and exit code
/// (128 + signal when one arrived).
async fn command(
    session: &Session,
    resolved: &Resolved,
    args: &SwitchArgs,
    action: &'static str,
    json: bool,
    skip_tls: bool,
    work: impl AsyncFnOnce(&Env) -> Vec<Report>,
) -> Result<ExitCode, Error> {
    let progress = Progress::new(Style::detect(json), resolved.fleet);
    let signals = Signals::install(Interrupt::default());
    let env = Env::new(session.client(), args, skip_tls, progress.clone(), signals.phase())?;
    announce(&progress, action, resolved, args);
    let reports = work(&env).await;
    let code = finish(&progress, action, args.dry_run, &reports)?;
    Ok(signals.exit_code().unwrap_or(code))
}

/// The first line of a fleet's run (one app's first line is printed by the app's own run).
fn announce(progress: &Progress, action: &str, resolved: &Resolved, args: &SwitchArgs) {
    progress.event(
        "start",
        serde_json::json!({
            "action": action,
            "dry_run": args.dry_run,
            "apps": resolved.members.iter().map(|m| &m.label).collect::<Vec<_>>(),
        }),
    );
    if !resolved.fleet {
        return;
    }
    let verb = match (action, args.dry_run) {
        ("on", false) => "Switching",
        ("on", true) => "Planning the switch of",
        (_, false) => "Restoring",
        (_, true) => "Planning the restore of",
    };
    let to = if action == "on" { format!(" to {}", args.maintenance_app) } else { " from maintenance".to_owned() };
    progress.line(&format!(
        "{verb} the routes of {} in {}{to}, {} at a time...",
        plural(resolved.members.len(), "app"),
        resolved.scope,
        args.fleet.parallel.min(u16::try_from(resolved.members.len()).unwrap_or(u16::MAX)).max(1)
    ));
}

/// `on` for every member, `--parallel` at a time.
pub(super) async fn switch_on(env: &Env, members: &[Member], args: &SwitchArgs) -> Vec<Report> {
    let args = Arc::new(args.clone());
    let actions = work(members);
    let progress = env.progress.clone();
    each(
        actions,
        args.fleet.parallel,
        &env.interrupt,
        |m| on::switch_app(env.clone(), m, Arc::clone(&args)),
        |_, guid, why| lost_app(members, &guid, "on", why),
        |r| progress.app_done(&label_of(members, r), r),
    )
    .await
}

/// `off` for every member, `--parallel` at a time.
pub(super) async fn switch_off(env: &Env, members: &[Member], args: &OffArgs) -> Vec<Report> {
    let args = Arc::new(args.clone());
    let actions = work(members);
    let progress = env.progress.clone();
    each(
        actions,
        args.switch.fleet.parallel,
        &env.interrupt,
        |m| off::restore_app(env.clone(), m, Arc::clone(&args)),
        |_, guid, why| lost_app(members, &guid, "off", why),
        |r| progress.app_done(&label_of(members, r), r),
    )
    .await
}

/// One unit of work per member.
pub(super) fn work(members: &[Member]) -> Vec<Work<Member>> {
    members.iter().map(|m| Work { label: m.label.clone(), guid: m.app.guid.clone(), input: m.clone() }).collect()
}

/// The report of the app `guid`, whose task died or never started.
fn lost_app(members: &[Member], guid: &str, action: &'static str, why: String) -> Report {
    match members.iter().find(|m| m.app.guid == guid) {
        Some(m) => Report::new(&m.app, &m.target, action, false).failed(why),
        // Every task is one of the members'; this only keeps the report if that ever changes.
        None => Report {
            app: guid.to_owned(),
            app_guid: guid.to_owned(),
            org: String::new(),
            space: String::new(),
            action,
            dry_run: false,
            routes: Vec::new(),
            error: Some(why),
            ok: false,
        },
    }
}

/// The label of a report's app.
fn label_of(members: &[Member], report: &Report) -> String {
    members.iter().find(|m| m.app.guid == report.app_guid).map_or_else(|| report.app.clone(), |m| m.label.clone())
}

/// Prints the summary (a table for a fleet) and the JSON summary event; the exit code.
pub(super) fn finish(progress: &Progress, action: &str, dry_run: bool, reports: &[Report]) -> Result<ExitCode, Error> {
    let ok = reports.iter().all(|r| r.ok);
    progress.event("summary", serde_json::json!({"action": action, "dry_run": dry_run, "ok": ok, "apps": reports}));
    let mut errors = Vec::new();
    if let [report] = reports
        && !progress.fleet()
    {
        if let Some(error) = &report.error {
            errors.push(error.clone());
        } else {
            let (line, advice) = output::summary(report);
            progress.line("");
            progress.line(&line);
            if let Some(advice) = advice {
                for r in report.routes.iter().filter(|r| r.result == Outcome::Failed) {
                    errors.push(format!("route {}: {}", r.url, r.reason.as_deref().unwrap_or("failed")));
                }
                errors.push(advice);
            }
        }
    } else {
        progress.line("");
        for line in output::app_table(reports) {
            progress.line(&line);
        }
        let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok).collect();
        let head = if dry_run {
            "Dry run, nothing changed"
        } else if ok {
            "OK"
        } else {
            "FAILED"
        };
        let done = if action == "on" { "switched" } else { "restored" };
        progress.line("");
        progress.line(&format!("{head}: {} of {} {done}.", reports.len() - failed.len(), plural(reports.len(), "app")));
        if !failed.is_empty() {
            let undo = if action == "on" { "off" } else { "on" };
            errors.push(format!(
                "{} could not be {done}: {}. Each app's routes are left in a consistent state. Fix the cause shown \
                 above, then finish with {} (or undo with {}); `switchctl status APP` shows where each route sends \
                 traffic.",
                plural(failed.len(), "app"),
                failed.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                commands(action, &failed).join(" and "),
                commands(undo, &failed).join(" and "),
            ));
        }
    }
    progress.finish()?;
    for e in &errors {
        eprintln!("switchctl: error: {e}");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) })
}

/// The commands that run `action` on `reports`' apps, one per space: `` `switchctl --org O --space S off a b` ``.
pub(super) fn commands(action: &str, reports: &[&Report]) -> Vec<String> {
    let mut by_space: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for r in reports {
        by_space.entry((r.org.as_str(), r.space.as_str())).or_default().push(r.app.as_str());
    }
    by_space
        .into_iter()
        .map(|((org, space), apps)| {
            let apps: Vec<String> = apps.into_iter().map(quote).collect();
            format!("`switchctl --org {} --space {} {action} {}`", quote(org), quote(space), apps.join(" "))
        })
        .collect()
}

/// `value` as one word for a POSIX shell.
pub(super) fn quote(value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/=:,@+%".contains(&b));
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("shop-v2"), "shop-v2");
        assert_eq!(quote("my app"), "'my app'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn finish_commands_are_grouped_by_space() {
        let r = |app: &str, space: &str| Report {
            app: app.into(),
            app_guid: app.into(),
            org: "o".into(),
            space: space.into(),
            action: "on",
            dry_run: false,
            routes: Vec::new(),
            error: None,
            ok: false,
        };
        let (a, b, c) = (r("a", "dev"), r("b", "prod"), r("c d", "dev"));
        assert_eq!(
            commands("off", &[&a, &b, &c]),
            ["`switchctl --org o --space dev off a 'c d'`", "`switchctl --org o --space prod off b`"]
        );
    }
}
