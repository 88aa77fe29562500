//! Fleets: which apps a command works on (names, a label selector; the target space or every
//! space of the org), the check before any change that every route can be verified from here,
//! and what is printed at the end of `on` and `off`.
//!
//! Every name and selector is resolved, every space's maintenance app checked, and every route
//! about to change probed once, before the first change: a typo, a missing maintenance app or a
//! route this machine cannot reach stops the run with nothing changed (exit 2).

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    process::ExitCode,
    sync::Arc,
};

use super::{
    budget, capacity,
    context::{self, Env, Lost, Work, each},
    outcome::{self, Advice, Report, RouteReport, Verb},
    probe::Target,
    signals::{self, Signals},
};
use crate::{
    capi::{App, Client, Space},
    cfconfig::Targeted,
    error::{EXIT_FAILURE, Error},
    output::{Output, plural},
    session::{Session, Target as SpaceTarget},
    settings::{FleetSelection, Pool, Settings, Switch, Verification},
};

/// Names per `GET /v3/apps?names=…` (keeps the URL short).
const NAMES_PER_REQUEST: usize = 50;
/// Routes probed at once before a switch.
const PREFLIGHT_CONCURRENCY: u16 = 16;
/// The settle time suggested to an operator who cannot reach the routes.
const SUGGESTED_SETTLE_SECS: u64 = 10;

/// One app of a fleet, with its space and that space's maintenance app.
#[derive(Debug, Clone)]
pub struct Member {
    /// The app.
    pub app: App,
    /// Its org and space.
    pub target: SpaceTarget,
    /// The maintenance apps of its space (the pool's apps found there), by name; empty when
    /// there is none.
    pub pool: Vec<App>,
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

/// Finds the apps `fleet` names or selects, and each space's maintenance apps (`pool`). One
/// piece: the scope (a space or the org) decides every query that follows.
pub async fn resolve(session: &Session, fleet: &FleetSelection, pool: &Pool) -> Result<Resolved, Error> {
    if let Some(name) = fleet.apps.iter().find(|a| pool.has_name(a)) {
        return Err(Error::Usage(format!(
            "{name:?} is a maintenance app itself; name the apps to switch, or the maintenance app with \
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
    let maints = pool_apps(client, within, pool).await?;
    if let Some(selector) = &fleet.selector {
        let selected = select(client, within, selector).await?;
        let (maint, others): (Vec<App>, Vec<App>) =
            selected.into_iter().partition(|a| maints.iter().any(|m| m.guid == a.guid));
        if !maint.is_empty() {
            tracing::warn!("the selector also matches the maintenance app {:?}; it is left out", maint[0].name);
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
    if let Some(a) = apps.iter().find(|a| maints.iter().any(|m| m.guid == a.guid)) {
        return Err(Error::Usage(format!(
            "{:?} is a maintenance app itself (--maintenance-selector picks it); leave it out of the apps to switch",
            a.name
        )));
    }
    let pool_of = |space: &str| -> Vec<App> { maints.iter().filter(|m| space_of(m) == Some(space)).cloned().collect() };
    let mut members: Vec<Member> = apps
        .into_iter()
        .filter_map(|app| {
            let space = space_of(&app)?;
            let target = (*by_space.get(space)?).clone();
            let label = if fleet.all_spaces { format!("{}/{}", target.space.name, app.name) } else { app.name.clone() };
            Some(Member { pool: pool_of(space), app, target, label })
        })
        .collect();
    members.sort_by(|a, b| (&a.target.space.name, &a.app.name).cmp(&(&b.target.space.name, &b.app.name)));
    let fleet = fleet.apps.len() > 1 || fleet.selector.is_some() || fleet.all_spaces;
    Ok(Resolved { members, scope, fleet })
}

/// The pool's apps in the scope, by name (a name may be in several spaces, one each).
async fn pool_apps(client: &Client, within: (&str, &str), pool: &Pool) -> Result<Vec<App>, Error> {
    let mut maints: Vec<App> = Vec::new();
    for chunk in pool.names.chunks(NAMES_PER_REQUEST) {
        let names = chunk.join(",");
        let found: Vec<App> = client.get_all("/v3/apps", &[("names", names.as_str()), within]).await?;
        maints.extend(found.into_iter().filter(|a| chunk.contains(&a.name)));
    }
    if let Some(selector) = &pool.selector {
        for app in select(client, within, selector).await? {
            if !maints.iter().any(|m| m.guid == app.guid) {
                maints.push(app);
            }
        }
    }
    maints.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(maints)
}

/// The apps a label selector picks. The Cloud Controller answers a selector it cannot parse with
/// 400 `CF-BadQueryParameter` (its detail says what is wrong): a mistake on the command line.
async fn select(client: &Client, within: (&str, &str), selector: &str) -> Result<Vec<App>, Error> {
    match client.get_all("/v3/apps", &[within, ("label_selector", selector)]).await {
        Err(Error::Api(e)) if e.status == 400 || e.status == 422 => Err(Error::Usage(format!(
            "the Cloud Controller refuses the label selector {selector:?}: {}; write it as CAPI expects, e.g. \
             `backend=orders`, `tier in (a,b)` or `!canary`; nothing was changed",
            e.detail
        ))),
        other => other,
    }
}

fn space_of(app: &App) -> Option<&str> {
    app.relationships.space.guid()
}

/// Checks, before any change, that every space of the fleet has every maintenance app of the pool
/// running; the instances found running (probes name one of them).
pub async fn check_maintenance_apps(
    client: &Client,
    resolved: &Resolved,
    pool: &Pool,
) -> Result<context::Running, Error> {
    let running = context::Running::default();
    let mut checked: HashSet<&str> = HashSet::new();
    for m in &resolved.members {
        if !checked.insert(m.target.space.guid.as_str()) {
            continue;
        }
        let not_found = |name: String| Error::MaintenanceAppNotFound {
            name,
            org: m.target.org.name.clone(),
            space: m.target.space.name.clone(),
        };
        if let Some(name) = pool.names.iter().find(|n| !m.pool.iter().any(|a| &a.name == *n)) {
            return Err(not_found(name.clone()));
        }
        if m.pool.is_empty() {
            return Err(not_found(pool.describe()));
        }
        for maint in &m.pool {
            match context::running_web(client, maint).await? {
                Ok(indexes) => running.record(&maint.guid, indexes),
                Err(not) => {
                    return Err(Error::NotRunning {
                        role: "maintenance app",
                        name: format!("{} (space {})", maint.name, m.target.space.name),
                        why: not.why,
                        fix: format!(
                            "run `cf target -s {} && {}` and wait until an instance is running and ready; nothing was \
                             changed",
                            crate::settings::quote(&m.target.space.name),
                            not.fix
                        ),
                    });
                }
            }
        }
    }
    Ok(running)
}

/// For `off`, the pool's running instances, so that each route's final check can ask for one by
/// name ([`context::Verify::gone`]). `off` needs no maintenance app running: one that is not, or
/// whose stats cannot be read, leaves its routes to the plain final check.
async fn maintenance_instances(client: &Client, resolved: &Resolved) -> context::Running {
    let running = context::Running::default();
    let mut read: HashSet<&str> = HashSet::new();
    for maint in resolved.members.iter().flat_map(|m| &m.pool) {
        if read.insert(maint.guid.as_str())
            && let Ok(Ok(indexes)) = context::running_web(client, maint).await
        {
            running.record(&maint.guid, indexes);
        }
    }
    running
}

/// A route about to change, for the check before the first change.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Its URL.
    pub url: String,
    /// Where probes go.
    pub target: Target,
    /// The app (label) it belongs to.
    pub app: String,
    /// The app's org and space (for the command printed).
    pub space: (String, String),
}

/// Probes every route about to change once, before the first change. A route the probe cannot
/// reach (no connection, DNS or TLS failure: no answer at all, not even the router's) cannot be
/// verified, and switching it unverified could leave users on a mix of app and page for as long
/// as verification waits: nothing is changed, and the error says how to reach the routes or how
/// to accept the risk.
pub async fn preflight(env: &Env, planned: Vec<Planned>) -> Result<(), Error> {
    if !env.verify.probes() || planned.is_empty() {
        return Ok(());
    }
    let mut seen = HashSet::new();
    let work: Vec<Work<Planned>> = planned
        .into_iter()
        .filter(|p| seen.insert((p.target.fqdn.clone(), p.target.path.clone())))
        .map(|p| Work { label: p.url.clone(), guid: String::new(), input: p })
        .collect();
    let verify = env.verify.clone();
    let answers = each(
        work,
        PREFLIGHT_CONCURRENCY,
        &signals::Interrupt::default(),
        |p| {
            let verify = verify.clone();
            async move {
                let answer = verify.prober.probe(&p.target).await;
                Some((p, answer))
            }
        },
        |_, _, _| None,
        |_| {},
    )
    .await;
    let mut unreachable: Vec<(Planned, String)> =
        answers.into_iter().flatten().filter(|(_, a)| a.unreachable()).map(|(p, a)| (p, a.to_string())).collect();
    if unreachable.is_empty() {
        return Ok(());
    }
    unreachable.sort_by(|a, b| a.0.url.cmp(&b.0.url));
    let shown: Vec<String> = unreachable.iter().take(5).map(|(p, why)| format!("{} ({why})", p.url)).collect();
    let more = unreachable.len().saturating_sub(shown.len());
    let first = &unreachable[0].0;
    let mut unverified = (*env.settings).clone();
    if let Some(switch) = switch_mut(&mut unverified) {
        switch.verify = Verification::Settle(std::time::Duration::from_secs(SUGGESTED_SETTLE_SECS));
    }
    let verb = match env.settings.action {
        crate::settings::Action::Off(_) => "off",
        _ => "on",
    };
    let apps: Vec<&str> = {
        let mut apps: Vec<&str> = unreachable.iter().map(|(p, _)| p.app.as_str()).collect();
        apps.dedup();
        apps
    };
    Err(Error::Usage(format!(
        "cannot reach {} from here, so no change could be verified: {}{}; nothing was changed. Send the probes \
         through a router you can reach by adding `--probe-via HOST:PORT` (a gorouter's or its load balancer's \
         address) to the command, or accept switching unverified with `{}`",
        plural(unreachable.len(), "route"),
        shown.join(", "),
        if more > 0 { format!(" and {more} more") } else { String::new() },
        unverified.command(verb, &first.space.0, &first.space.1, &apps),
    )))
}

fn switch_mut(settings: &mut Settings) -> Option<&mut Switch> {
    match &mut settings.action {
        crate::settings::Action::On(s) => Some(s),
        crate::settings::Action::Off(o) => Some(&mut o.switch),
        crate::settings::Action::Run(r) => Some(&mut r.switch),
        _ => None,
    }
}

/// Runs `on` or `off` (`work`) for a resolved fleet with signal handling, then prints the summary;
/// the exit code (128 + signal when one arrived).
pub async fn command(
    session: &Session,
    settings: &Arc<Settings>,
    out: &Output,
    switch: &Switch,
    verb: Verb,
    work: impl AsyncFnOnce(&Env, &Resolved) -> Result<Vec<Report>, Error>,
) -> Result<ExitCode, Error> {
    let resolved = resolve(session, &switch.fleet, &switch.maintenance).await?;
    let running = if verb == Verb::On {
        check_maintenance_apps(session.client(), &resolved, &switch.maintenance).await?
    } else {
        maintenance_instances(session.client(), &resolved).await
    };
    out.set_fleet(resolved.fleet);
    let signals = Signals::install(out);
    let env = Env { running, ..Env::new(session.client(), settings, switch, out, signals.phase())? };
    announce(out, verb, &resolved, switch);
    let reports = work(&env, &resolved).await?;
    let code = finish(&env, verb, switch, &resolved, &reports);
    Ok(signals.received().map_or(code, |s| ExitCode::from(signals::exit_code(s))))
}

/// The first line of a fleet's run (one app's first line is printed by the app's own run).
fn announce(out: &Output, verb: Verb, resolved: &Resolved, switch: &Switch) {
    out.event(
        "start",
        serde_json::json!({
            "action": verb,
            "dry_run": switch.dry_run,
            "apps": resolved.members.iter().map(|m| &m.label).collect::<Vec<_>>(),
        }),
    );
    if !resolved.fleet {
        return;
    }
    let doing = match (verb, switch.dry_run) {
        (Verb::On, false) => "Switching",
        (Verb::On, true) => "Planning the switch of",
        (Verb::Off, false) => "Restoring",
        (Verb::Off, true) => "Planning the restore of",
    };
    let to = if verb == Verb::On {
        format!(" to {}", switch.maintenance.describe())
    } else {
        " from maintenance".to_owned()
    };
    out.line(&format!(
        "{doing} the routes of {} in {}{to}, {} at a time...",
        plural(resolved.members.len(), "app"),
        resolved.scope,
        switch.fleet.parallel.min(u16::try_from(resolved.members.len()).unwrap_or(u16::MAX)).max(1)
    ));
}

/// The commands to print about `report`'s app.
pub fn advice_for(env: &Env, report: &Report, maintenance_app: &str) -> Advice {
    context::advice(&env.settings, (&report.app, &report.app_guid), (&report.org, &report.space), maintenance_app)
}

/// Prints the summary (a table for a fleet), the JSON summary event and what to do; the exit code.
pub fn finish(env: &Env, verb: Verb, switch: &Switch, resolved: &Resolved, reports: &[Report]) -> ExitCode {
    let out = &env.out;
    let ok = reports.iter().all(|r| r.ok && !r.nothing_to_switch());
    out.event("summary", serde_json::json!({"action": verb, "dry_run": switch.dry_run, "ok": ok, "apps": reports}));
    let pool = switch.maintenance.describe();
    let advice = |r: &Report| advice_for(env, r, &pool);
    out.clear();
    if let [report] = reports
        && !resolved.fleet
    {
        let (line, errors) = outcome::summary(report, &advice(report));
        out.line("");
        out.line(&line);
        for e in &errors {
            out.error(e);
        }
    } else {
        out.line("");
        for line in outcome::app_table(reports, advice) {
            out.line(&line);
        }
        out.line("");
        out.line(&outcome::fleet_line(verb, switch.dry_run, reports));
        let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok).collect();
        if !failed.is_empty() {
            out.error(&format!(
                "{} could not be {}: {}. Each route is in the state shown above. Fix the cause, then finish with {} \
                 (or go back with {}).",
                plural(failed.len(), "app"),
                if verb == Verb::On { "switched" } else { "restored" },
                failed.iter().map(|r| r.app.as_str()).collect::<Vec<_>>().join(", "),
                commands(&env.settings, verb, &failed).join(" and "),
                commands(&env.settings, verb.undo(), &failed).join(" and "),
            ));
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) }
}

/// The commands that run `verb` on `reports`' apps, one per space, in backticks.
pub fn commands(settings: &Settings, verb: Verb, reports: &[&Report]) -> Vec<String> {
    let mut by_space: Vec<((&str, &str), Vec<&str>)> = Vec::new();
    for r in reports {
        let key = (r.org.as_str(), r.space.as_str());
        match by_space.iter_mut().find(|(k, _)| *k == key) {
            Some((_, apps)) => apps.push(r.app.as_str()),
            None => by_space.push((key, vec![r.app.as_str()])),
        }
    }
    by_space.sort();
    by_space
        .into_iter()
        .map(|((org, space), apps)| format!("`{}`", settings.command(verb.as_str(), org, space, &apps)))
        .collect()
}

/// A route's job of `on` or `off`: for one app, or merged for every app of the fleet on the route.
pub trait RouteJob: Send + 'static {
    /// The route's GUID.
    fn route_guid(&self) -> &str;
    /// The route's URL.
    fn url(&self) -> &str;
    /// Where probes go.
    fn target(&self) -> &Target;
    /// The apps (GUIDs) it switches.
    fn apps(&self) -> Vec<String>;
    /// Takes over `other`'s share of the same route.
    fn merge(&mut self, other: Self);
    /// The maintenance app (GUID) it adds to the route, if it adds one.
    fn adds_maintenance(&self) -> Option<&str> {
        None
    }
    /// Whether the check before the first change probes it (not a route that can never be
    /// probed from here, see [`super::plan::Probing`]).
    fn preflight(&self) -> bool {
        true
    }
}

/// An app read and planned by `on` or `off`, before anything changes.
pub trait Surveyed: Send + 'static {
    /// One route's job.
    type Job: RouteJob;
    /// The app.
    fn member(&self) -> &Member;
    /// The routes about to change.
    fn jobs(&mut self) -> &mut Vec<Self::Job>;
    /// The routes about to change, to look at.
    fn planned(&self) -> &[Self::Job];
    /// The reports of the routes already dealt with.
    fn decided(&mut self) -> &mut Vec<RouteReport>;
}

/// How `on` or `off` switches one route: for the job's apps, given as fleet members, a report per
/// app (GUID); and the report of a route whose task died or never started.
#[derive(Debug)]
pub struct RouteWork<RF> {
    /// Switches one route.
    pub switch: RF,
    /// Stands in for a route not switched.
    pub lost: fn(String, String, Lost) -> RouteReport,
    /// Routes switched at once.
    pub concurrency: u16,
}

/// The one driver of `on` and `off` for a fleet: every member is surveyed (`survey`, `--parallel`
/// at a time), every route about to change is probed once ([`preflight`]), and only then are the
/// routes several members share switched, each by one task that knows all of them
/// ([`switch_shared`]), and each surveyed member switched (`apply`). A member whose survey failed
/// keeps that report; nothing of it was changed.
pub async fn drive<S, SF, SFut, AF, AFut, RF, RFut>(
    env: &Env,
    members: &[Member],
    (verb, dry_run, parallel): (Verb, bool, u16),
    survey: SF,
    shared: RouteWork<RF>,
    apply: AF,
) -> Result<Vec<Report>, Error>
where
    S: Surveyed,
    SF: Fn(Member) -> SFut,
    SFut: Future<Output = Result<S, Box<Report>>> + Send + 'static,
    AF: Fn(S) -> AFut,
    AFut: Future<Output = Report> + Send + 'static,
    RF: Fn(S::Job, Vec<Member>) -> RFut,
    RFut: Future<Output = Vec<(String, RouteReport)>> + Send + 'static,
{
    let lost = |guid: String, lost| lost_app(members, &guid, verb, dry_run, lost);
    let surveys =
        each(work(members), parallel, &env.interrupt, survey, |_, g, l| Err(Box::new(lost(g, l))), |_| {}).await;
    let planned = surveys
        .iter()
        .flatten()
        .flat_map(|s| {
            let (m, t) = (s.member(), &s.member().target);
            s.planned().iter().filter(|j| j.preflight()).map(move |j| Planned {
                url: j.url().to_owned(),
                target: j.target().clone(),
                app: m.app.name.clone(),
                space: (t.org.name.clone(), t.space.name.clone()),
            })
        })
        .collect();
    check_budget(env, members, surveys.iter().flatten(), dry_run)?;
    check_capacity(env, members, surveys.iter().flatten()).await?;
    preflight(env, planned).await?;
    let (ok, failed): (Vec<_>, Vec<_>) = surveys.into_iter().partition(Result::is_ok);
    let ok = switch_shared(env, ok.into_iter().flatten().collect(), &shared).await;
    let items = ok
        .into_iter()
        .map(Ok)
        .chain(failed)
        .map(|s| {
            let (label, guid) = match &s {
                Ok(s) => (s.member().label.clone(), s.member().app.guid.clone()),
                Err(r) => (r.app.clone(), r.app_guid.clone()),
            };
            Work { label, guid, input: s }
        })
        .collect();
    let apply = Arc::new(apply);
    let out = env.out.clone();
    let label_of =
        |r: &Report| members.iter().find(|m| m.app.guid == r.app_guid).map_or(r.app.clone(), |m| m.label.clone());
    Ok(each(
        items,
        parallel,
        &env.interrupt,
        |s| {
            let ready = s.map(|s| apply(s));
            async move {
                match ready {
                    Ok(switching) => switching.await,
                    Err(report) => *report,
                }
            }
        },
        |_, g, l| lost(g, l),
        |r| out.app_done(&label_of(r)),
    )
    .await)
}

/// Refuses, before any change, a run that certainly cannot finish within the Cloud Controller's
/// rate limit without waiting past `--max-wait` ([`budget`]); says so when it may have to wait.
fn check_budget<'a, S: Surveyed>(
    env: &Env,
    members: &[Member],
    surveys: impl Iterator<Item = &'a S>,
    dry_run: bool,
) -> Result<(), Error> {
    let routes: HashSet<&str> = surveys.flat_map(|s| s.planned().iter().map(RouteJob::route_guid)).collect();
    let needed = routes.len() as u64 * budget::PER_ROUTE;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verb = match env.settings.action {
        crate::settings::Action::Off(_) => Verb::Off,
        _ => Verb::On,
    };
    match budget::judge(needed, env.client.rate_limit(), now, env.settings.max_wait) {
        budget::Budget::Fits => Ok(()),
        budget::Budget::MayWait { needed, remaining, until } => {
            env.out.notice(&format!(
                "this run needs about {needed} more requests to the Cloud Controller and its rate limit says \
                 {remaining} are left (rounded down to a tenth of the limit) until {until}: it may pause for the \
                 limit, at most --max-wait {} s per request",
                env.settings.max_wait.as_secs()
            ));
            Ok(())
        }
        budget::Budget::Refused { needed, at_most, limit, until, wait_s } => {
            let everyone: Vec<Report> = members.iter().map(|m| report_for(m, verb, false)).collect();
            let everyone: Vec<&Report> = everyone.iter().collect();
            let mut waiting = (*env.settings).clone();
            waiting.max_wait = std::time::Duration::from_secs(wait_s + 60);
            let refused = Error::RateBudget {
                needed,
                at_most,
                limit,
                until,
                wait_s,
                command: commands(&env.settings, verb, &everyone).join(" and "),
                waiting: commands(&waiting, verb, &everyone).join(" and "),
            };
            if dry_run {
                env.out.notice(&format!("without --dry-run, the run would be refused: {refused}"));
                return Ok(());
            }
            Err(refused)
        }
    }
}

/// Refuses, before any change, a run that would bring a maintenance app past the share of Diego's
/// routes limit it allows ([`capacity`]). Reads the routes of each maintenance app the run adds
/// routes to, once (`off` reads them anyway; a pool's were read to spread the routes).
async fn check_capacity<'a, S: Surveyed>(
    env: &Env,
    members: &[Member],
    surveys: impl Iterator<Item = &'a S>,
) -> Result<(), Error> {
    let Some(switch) = env.settings.switch() else { return Ok(()) };
    let limit = switch.routes_limit;
    let mut adding: HashMap<&str, (&Member, Vec<&str>)> = HashMap::new();
    for s in surveys {
        for job in s.planned() {
            if let Some(maint) = job.adds_maintenance() {
                adding.entry(maint).or_insert_with(|| (s.member(), Vec::new())).1.push(job.url());
            }
        }
    }
    let mut adding: Vec<_> = adding.into_iter().collect();
    adding.sort_by(|a, b| a.0.cmp(b.0));
    for (maint_guid, (member, urls)) in adding {
        let carried = env.maintenance_routes.of(&env.client, maint_guid).await.map_err(|e| {
            // Every app of the run, those whose survey failed too: the same run, again.
            let everyone: Vec<Report> = members.iter().map(|m| report_for(m, Verb::On, false)).collect();
            let command = commands(&env.settings, Verb::On, &everyone.iter().collect::<Vec<_>>()).join(" and ");
            Error::BeforeAnyChange { cause: crate::error::describe(&e), command }
        })?;
        let load = capacity::Load::of(&carried, &urls, limit);
        if !load.fits() {
            let name = member.pool.iter().find(|m| m.guid == maint_guid).map_or(maint_guid, |m| m.name.as_str());
            return Err(Error::Capacity {
                name: name.to_owned(),
                space: member.target.space.name.clone(),
                carried: load.carried,
                after_routes: load.carried + load.adding,
                after_bytes: load.after_bytes,
                allowed_bytes: load.allowed_bytes,
                limit,
                room: load.room(),
                pool: member.pool.len(),
            });
        }
    }
    Ok(())
}

/// Switches the routes that more than one member is about to change (blue/green pairs sharing a
/// route), each with one job merged from every member's, before any member's other routes: with
/// a task per member, each would decide from a listing the other's changes made stale (both keep
/// the maintenance app on `off`, each because the other's record is still there). Each member
/// gets its report of the route, naming the apps it was switched with.
async fn switch_shared<S, RF, RFut>(env: &Env, mut surveys: Vec<S>, work: &RouteWork<RF>) -> Vec<S>
where
    S: Surveyed,
    RF: Fn(S::Job, Vec<Member>) -> RFut,
    RFut: Future<Output = Vec<(String, RouteReport)>> + Send + 'static,
{
    let shared = shared_routes(surveys.iter().map(|s| s.planned().iter().map(RouteJob::route_guid)));
    if shared.is_empty() {
        return surveys;
    }
    let mut merged: Vec<S::Job> = Vec::new();
    for survey in &mut surveys {
        let (mine, rest): (Vec<S::Job>, Vec<S::Job>) =
            survey.jobs().drain(..).partition(|j| shared.contains(j.route_guid()));
        *survey.jobs() = rest;
        for job in mine {
            match merged.iter_mut().find(|m| m.route_guid() == job.route_guid()) {
                Some(m) => m.merge(job),
                None => merged.push(job),
            }
        }
    }
    let member = |guid: &str| surveys.iter().find(|s| s.member().app.guid == guid).map(|s| s.member().clone());
    let apps_of: HashMap<String, Vec<String>> = merged.iter().map(|j| (j.route_guid().to_owned(), j.apps())).collect();
    let items: Vec<Work<(S::Job, Vec<Member>)>> = merged
        .into_iter()
        .map(|j| {
            let members = j.apps().iter().filter_map(|a| member(a)).collect();
            Work { label: j.url().to_owned(), guid: j.route_guid().to_owned(), input: (j, members) }
        })
        .collect();
    let done = each(
        items,
        work.concurrency,
        &env.interrupt,
        |(job, members)| (work.switch)(job, members),
        |url, guid, why| {
            let report = (work.lost)(url, guid.clone(), why);
            apps_of.get(&guid).into_iter().flatten().map(|a| (a.clone(), report.clone())).collect()
        },
        |_| {},
    )
    .await;
    let done: Vec<(String, RouteReport)> = done.into_iter().flatten().collect();
    let name = |guid: &str| member(guid).map_or_else(|| guid.to_owned(), |m| m.label);
    let notes: Vec<String> = done
        .iter()
        .map(|(app, report)| {
            let with: Vec<String> = done
                .iter()
                .filter(|(a, r)| a != app && r.route_guid == report.route_guid)
                .map(|(a, _)| name(a))
                .collect();
            format!("switched together with {}, which shares it", with.join(", "))
        })
        .collect();
    for ((app, report), note) in done.into_iter().zip(notes) {
        if let Some(s) = surveys.iter_mut().find(|s| s.member().app.guid == app) {
            s.decided().push(report.and_note(note));
        }
    }
    surveys
}

/// The routes that more than one survey is about to change, by GUID (each survey lists its own).
pub fn shared_routes<'a>(surveys: impl Iterator<Item = impl Iterator<Item = &'a str>>) -> HashSet<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for routes in surveys {
        let mine: HashSet<&str> = routes.collect();
        for guid in mine {
            *seen.entry(guid).or_default() += 1;
        }
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(g, _)| g.to_owned()).collect()
}

/// One unit of work per member.
pub fn work(members: &[Member]) -> Vec<Work<Member>> {
    members.iter().map(|m| Work { label: m.label.clone(), guid: m.app.guid.clone(), input: m.clone() }).collect()
}

/// The report of the app `guid`, whose task died or never started.
pub fn lost_app(members: &[Member], guid: &str, verb: Verb, dry_run: bool, lost: Lost) -> Report {
    let why = match lost {
        Lost::Interrupted => "not started: switchctl was interrupted; nothing was changed".to_owned(),
        Lost::RateLimited => {
            "not started: the Cloud Controller's rate limit held requests back beyond --max-wait; nothing was changed"
                .to_owned()
        }
        Lost::Died(e) => format!("internal error ({e}); `switchctl status` shows the routes' state"),
    };
    match members.iter().find(|m| m.app.guid == guid) {
        Some(m) => report_for(m, verb, dry_run).failed(why),
        // Every task is one of the members'; this only keeps the report if that ever changes.
        None => Report::new((guid, guid), ("", ""), verb, dry_run).failed(why),
    }
}

/// An empty report on `member`.
pub fn report_for(member: &Member, verb: Verb, dry_run: bool) -> Report {
    Report::new(
        (&member.app.name, &member.app.guid),
        (&member.target.org.name, &member.target.space.name),
        verb,
        dry_run,
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn finish_commands_are_grouped_by_space_and_carry_the_flags() {
        let settings = Settings::from_cli(&crate::Cli::parse_from(["switchctl", "on", "a", "--timeout", "9"]));
        let r = |app: &str, space: &str| Report::new((app, app), ("o", space), Verb::On, false);
        let (a, b, c) = (r("a", "dev"), r("b", "prod"), r("c d", "dev"));
        assert_eq!(
            commands(&settings, Verb::Off, &[&a, &b, &c]),
            [
                "`switchctl --org o --space dev off a 'c d' --timeout 9`",
                "`switchctl --org o --space prod off b --timeout 9`"
            ]
        );
    }
}
