//! `--except PATH` and `--only PATH`: path prefixes of the host routes treated apart.
//!
//! gorouter routes a request to the pool of the longest path prefix that matches it, whole
//! segments only (gorouter `registry/container/trie.go#MatchUri`; the double: `tests/src/router.rs`),
//! and passes the path on unchanged (no prefix is stripped). So:
//! * `--except /webhooks`: before a host route `host.domain` switches, a route
//!   `host.domain/webhooks` is created (or an existing one of the app reused) and mapped to the
//!   app's destinations on the host route (same process, port, protocol): `/webhooks/…` keeps
//!   reaching the app while `/` goes to maintenance. `off` deletes it after the host route is
//!   restored.
//! * `--only /checkout`: the host routes stay as they are; a route `host.domain/checkout` to the
//!   maintenance app takes that prefix alone down. `off` deletes it first.
//!
//! What switchctl created is recorded on the APP (annotation and label [`PATHS_KEY`]) BEFORE any
//! route is created: after a crash, `off` finds every route it may have created, and deletes only
//! those marked `created` (a route that existed before keeps its life; only the destinations
//! switchctl added to it are removed). The record is on the app, not the host route, because an
//! `--only` window changes no host route at all.
//!
//! Path rules (`--except`/`--only` values, checked by clap in `cli.rs`) follow
//! cloud_controller_ng `app/models/runtime/route.rb#validate_path` and the messages of
//! `app/actions/route_create.rb`.
//!
//! Requests per app with `--except`/`--only` (none without): `on` reads the app's routes (1) and
//! its domains (cached), writes the record (1); per path route, a lookup when the app does not
//! already have it (1), the create (1, none when reused), the mapping (1, none when nothing is
//! missing). `off`, per path route: a read (1) and a delete or a destination delete (1 each); then
//! the record is cleared (1). Asserted in `tests/tests/it/switch_paths.rs`.

use serde::{Deserialize, Serialize};

use super::{
    context::{Env, domain_of},
    fleet::Member,
    outcome::{Outcome, PathChange, PathReport, PathRole, Report, RouteReport, RouteState, Verb},
    plan,
    probe::{CONSECUTIVE, Target, Want},
    state::SavedDestination,
};
use crate::{
    capi::{App, MetadataPatch, NewDestination, Route},
    error::{Error, describe},
    settings::{Paths, Verification},
};

/// The label and annotation key of the path record on the app.
pub const PATHS_KEY: &str = "switchctl.cf-maintenance/paths";
/// The label's value.
const LABEL_VALUE: &str = "on";
/// Format version.
const VERSION: u32 = 1;
/// Where the probe goes under a prefix: any path below it is routed like the prefix.
const PROBE_TAIL: &str = "/switchctl-probe";

/// The record on the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathsRecord {
    /// Format version.
    pub v: u32,
    /// `--except` or `--only`.
    pub role: PathRole,
    /// The path routes.
    pub routes: Vec<PathEntry>,
}

/// One path route of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathEntry {
    /// The host route's GUID.
    pub host_route: String,
    /// `host.domain/path`.
    pub url: String,
    /// Space and domain GUIDs, host and path: what identifies the route (CC's unique key).
    pub space: String,
    /// Domain GUID.
    pub domain: String,
    /// Host.
    pub host: String,
    /// Path.
    pub path: String,
    /// switchctl creates it (`off` deletes it); `false`: it existed before.
    pub created: bool,
    /// The app whose destinations switchctl adds (APP for `--except`, the maintenance app for `--only`).
    pub app: String,
    /// The destinations switchctl adds.
    pub added: Vec<SavedDestination>,
}

impl PathsRecord {
    /// The record on `app`, if any.
    pub fn of(app: &App) -> Result<Option<PathsRecord>, String> {
        match app.metadata.annotations.get(PATHS_KEY) {
            None => Ok(None),
            Some(text) => serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("app {}'s annotation {PATHS_KEY} is not a path record: {e}", app.name)),
        }
    }
}

/// What `on` does next.
#[derive(Debug)]
pub enum Opened {
    /// Switch the host routes of every app but those in `failed` (no paths, or `--except` done):
    /// an app whose path route could not be made keeps its host routes, since switching them
    /// would take its excepted paths down too; the others' windows open as asked.
    SwitchHosts {
        /// The reports of the apps whose path routes failed.
        failed: Vec<Report>,
    },
    /// Nothing more: `--only` done.
    Done(Vec<Report>),
}

/// One member's plan, decided before any change.
struct Planned {
    member: Member,
    record: PathsRecord,
    /// The path route as it is now, per entry.
    existing: Vec<Option<Route>>,
}

/// `on`, before the host routes: checks, records, creates, maps and verifies the path routes of
/// `--except`/`--only`. Usage errors (an app route with a path these flags do not cover) come
/// before any change, for every member.
pub async fn open(env: &Env, members: &[Member], dry_run: bool) -> Result<Opened, Error> {
    let Some((flag, prefixes)) = env.settings.window.paths.prefixes() else {
        return Ok(Opened::SwitchHosts { failed: Vec::new() });
    };
    let role = if matches!(env.settings.window.paths, Paths::Only(_)) { PathRole::Only } else { PathRole::Except };
    let mut planned = Vec::new();
    for member in members {
        planned.push(plan_member(env, member, role, flag, prefixes).await?);
    }
    let mut reports = Vec::new();
    for p in planned {
        reports.push(open_member(env, p, dry_run).await);
    }
    Ok(if role == PathRole::Only {
        Opened::Done(reports)
    } else {
        Opened::SwitchHosts { failed: reports.into_iter().filter(|r| !r.ok).collect() }
    })
}

/// Reads `member`'s routes and plans its path routes; only reads.
async fn plan_member(
    env: &Env,
    member: &Member,
    role: PathRole,
    flag: &str,
    prefixes: &[String],
) -> Result<Planned, Error> {
    let client = &env.client;
    let before = PathsRecord::of(&member.app).map_err(Error::Usage)?;
    if let Some(b) = &before
        && b.role != role
    {
        return Err(Error::Usage(format!(
            "app {} has a window open with {}; run `off` first",
            member.app.name,
            if b.role == PathRole::Only { "--only" } else { "--except" }
        )));
    }
    let recorded = |r: &Route| before.iter().flat_map(|b| &b.routes).any(|e| e.host == r.host && e.path == r.path);
    let routes = client.app_routes(&member.app.guid).await?;
    let domains = env.domains.of(client, &routes).await?;
    let hosts: Vec<&Route> =
        routes.iter().filter(|r| r.path.is_empty() && plan::skip_reason(r, domain_of(r, &domains)).is_none()).collect();
    // A path route of the app these flags do not cover would be switched as a whole, or (with
    // --only) already splits the host: the operator decides, before anything changes.
    let covered = |r: &Route| {
        role == PathRole::Except
            && prefixes.contains(&r.path)
            && hosts.iter().any(|h| h.host == r.host && h.relationships.domain == r.relationships.domain)
    };
    let stray: Vec<String> =
        routes.iter().filter(|r| !r.path.is_empty() && !covered(r) && !recorded(r)).map(|r| r.url.clone()).collect();
    if !stray.is_empty() {
        return Err(Error::Usage(format!(
            "app {} has routes with a path ({}); {flag} works on host routes only: unmap those first or switch without {flag}",
            member.app.name,
            stray.join(", ")
        )));
    }
    let maint = member.pool.first().map(|m| m.guid.clone()).unwrap_or_default();
    // As `on` records host routes (state.rs): a Docker app's port-less destination is copied
    // without its presented port, which CC would refuse below 1024 if sent back explicitly.
    let default_port = super::context::default_port(client, &member.app).await?;
    let mut record = PathsRecord { v: VERSION, role, routes: Vec::new() };
    let mut existing = Vec::new();
    for host in &hosts {
        let (Some(domain), Some(space)) = (host.relationships.domain.guid(), host.relationships.space.guid()) else {
            continue;
        };
        for prefix in prefixes {
            let mine = routes.iter().find(|r| {
                r.host == host.host && r.path == *prefix && r.relationships.domain == host.relationships.domain
            });
            let now = match mine {
                Some(r) => Some(r.clone()),
                None => client.find_route(Some(space), domain, &host.host, prefix).await?,
            };
            let was = before.iter().flat_map(|b| &b.routes).find(|e| e.host_route == host.guid && e.path == *prefix);
            let (app, want): (String, Vec<SavedDestination>) = match role {
                PathRole::Except => (
                    member.app.guid.clone(),
                    host.destinations
                        .iter()
                        .filter(|d| d.app.guid == member.app.guid)
                        .map(|d| SavedDestination::of(d, default_port))
                        .collect(),
                ),
                PathRole::Only => (
                    maint.clone(),
                    vec![SavedDestination { process: "web".into(), port: None, protocol: None, weight: None }],
                ),
            };
            // On a rerun the first record stands: what switchctl added then is its to remove.
            let added = match (was, &now) {
                (Some(e), _) => e.added.clone(),
                (None, Some(r)) => want.into_iter().filter(|s| !r.destinations.iter().any(|d| s.is(&app, d))).collect(),
                (None, None) => want,
            };
            record.routes.push(PathEntry {
                host_route: host.guid.clone(),
                url: format!("{}{prefix}", host.url),
                space: space.to_owned(),
                domain: domain.to_owned(),
                host: host.host.clone(),
                path: prefix.clone(),
                created: was.map_or(now.is_none(), |e| e.created),
                app,
                added,
            });
            existing.push(now);
        }
    }
    Ok(Planned { member: member.clone(), record, existing })
}

/// Records, creates, maps and verifies one member's path routes; its report (failed, with the
/// error, when a path route could not be made: then no host route of it is switched).
async fn open_member(env: &Env, p: Planned, dry_run: bool) -> Report {
    let Planned { member, mut record, existing } = p;
    let client = &env.client;
    let report = super::fleet::report_for(&member, Verb::On, dry_run);
    let print = |r: &PathReport| emit(env, &member.label, Verb::On, r);
    if dry_run {
        for (e, now) in record.routes.iter().zip(&existing) {
            print(&PathReport {
                url: e.url.clone(),
                role: record.role,
                change: PathChange::Planned { exists: now.is_some() },
            });
        }
        return report;
    }
    if record.routes.is_empty() {
        return report;
    }
    // 1. The record first: from here on, `off` finds whatever is created.
    if let Err(e) = write(env, &member.app.guid, Some(&record)).await {
        return report.failed(format!("could not record the path routes on the app: {}", describe(&e)));
    }
    let mut routes = Vec::new();
    for (i, now) in existing.into_iter().enumerate() {
        let e = record.routes[i].clone();
        let fail =
            |error: String| PathReport { url: e.url.clone(), role: record.role, change: PathChange::Failed { error } };
        // 2. The route, unless it exists.
        let route = match now {
            Some(r) => r,
            None => match client.create_route(&e.space, &e.domain, (&e.host, &e.path), &Default::default()).await {
                Ok(r) => r,
                Err(err) => match client.find_route(Some(&e.space), &e.domain, &e.host, &e.path).await {
                    // Created by a lost answer's request, or by someone else meanwhile: the
                    // record cannot tell, so it is kept as not switchctl's (never deleted).
                    Ok(Some(r)) => {
                        record.routes[i].created = false;
                        let _ = write(env, &member.app.guid, Some(&record)).await;
                        r
                    }
                    _ => {
                        let r = fail(describe(&err));
                        print(&r);
                        return report.failed(r.line());
                    }
                },
            },
        };
        // 3. The destinations.
        if !e.added.is_empty() {
            let new: Vec<NewDestination> = e.added.iter().map(|s| s.to_new(&e.app)).collect();
            if let Err(err) = client.insert_destinations(&route.guid, &new).await {
                let r = fail(describe(&err));
                print(&r);
                return report.failed(r.line());
            }
        }
        // 4. Verified: the prefix answers from the app (--except) or the maintenance app (--only).
        let want = if record.role == PathRole::Only { Want::Maintenance } else { Want::App };
        let fqdn = e.url.strip_suffix(e.path.as_str()).unwrap_or(&e.url).to_owned();
        let target = Target { fqdn, path: format!("{}{PROBE_TAIL}", e.path) };
        if let Err(not) = env.verify.after_change(&target, want, CONSECUTIVE).await {
            let r = fail(format!(
                "not answering as wanted after {} s (last: {}); run off to undo",
                not.timeout_s, not.last
            ));
            print(&r);
            return report.failed(r.line());
        }
        let change = if e.created { PathChange::Created } else { PathChange::Reused { added: e.added.len() } };
        let r = PathReport { url: e.url.clone(), role: record.role, change };
        print(&r);
        if record.role == PathRole::Only {
            routes.push(
                RouteReport::new(e.url.clone(), route.guid.clone(), Outcome::Switched, RouteState::MaintenanceOnly)
                    .with_note("--only: this prefix alone; the host route stays on the app"),
            );
        }
    }
    // A route mapped a moment ago may not be on every router yet; an `--except` prefix must be
    // there before its host route goes to maintenance. The probe above cannot tell (the host
    // route answers the prefix from the app as well), so the routers get `--settle`.
    // UNCONFIRMED: gorouter's registration lag is not bounded by anything switchctl can read.
    if record.role == PathRole::Except {
        tokio::time::sleep(settle(env)).await;
    }
    report.with_routes(routes)
}

/// `--settle`.
fn settle(env: &Env) -> std::time::Duration {
    match env.settings.switch().map(|s| &s.verify) {
        Some(Verification::Probe { settle, .. } | Verification::Settle(settle)) => *settle,
        None => std::time::Duration::ZERO,
    }
}

/// Writes (or with `None` clears) the record on the app.
async fn write(env: &Env, app_guid: &str, record: Option<&PathsRecord>) -> Result<(), Error> {
    let text = record.map(|r| serde_json::to_string(r).unwrap_or_default());
    let mut patch = MetadataPatch::default();
    patch.labels.insert(PATHS_KEY.to_owned(), text.as_ref().map(|_| LABEL_VALUE.to_owned()));
    patch.annotations.insert(PATHS_KEY.to_owned(), text);
    env.client.patch_app_metadata(app_guid, &patch).await.map(|_| ())
}

/// One path route's line and JSON event.
fn emit(env: &Env, label: &str, verb: Verb, r: &PathReport) {
    env.out.line(&format!("{}{}", env.out.prefix(label), r.line()));
    env.out.event("path_route", serde_json::json!({"app": label, "action": verb, "path_route": r}));
}

/// The path records `off` works from, read from the apps as resolved (no request).
#[derive(Debug)]
pub struct Closing {
    records: Vec<(Member, PathsRecord)>,
    dry_run: bool,
    /// `--only` routes already taken back, per app GUID.
    only: Vec<(String, Vec<RouteReport>)>,
}

/// `off`, before the host routes: reads the records and takes `--only` prefixes back first
/// (their host routes never changed, and the maintenance app must not keep a route no record
/// on a route explains).
pub async fn closing(env: &Env, members: &[Member], dry_run: bool) -> Closing {
    let mut records = Vec::new();
    for m in members {
        match PathsRecord::of(&m.app) {
            Ok(Some(r)) => records.push((m.clone(), r)),
            Ok(None) => {}
            Err(e) => env.out.error(&e),
        }
    }
    let mut only = Vec::new();
    for (m, r) in records.iter().filter(|(_, r)| r.role == PathRole::Only) {
        only.push((m.app.guid.clone(), close_member(env, m, r, dry_run).await));
    }
    Closing { records, dry_run, only }
}

/// `off`, after the host routes: the `--except` path routes of every app whose host routes are
/// all restored (an app with a route left in maintenance keeps them: its prefixes must keep
/// reaching it, and a rerun of `off` finishes); `--only` results go into the apps' reports.
pub async fn closed(env: &Env, closing: Closing, reports: &mut [Report]) {
    let Closing { records, dry_run, only } = closing;
    for (m, r) in records.iter().filter(|(_, r)| r.role == PathRole::Except) {
        let restored = reports.iter().find(|x| x.app_guid == m.app.guid).is_none_or(|x| x.ok);
        if !restored {
            for e in &r.routes {
                emit(
                    env,
                    &m.label,
                    Verb::Off,
                    &PathReport { url: e.url.clone(), role: r.role, change: PathChange::Waiting },
                );
            }
            continue;
        }
        let failed: Vec<RouteReport> =
            close_member(env, m, r, dry_run).await.into_iter().filter(|x| x.result == Outcome::Failed).collect();
        if let Some(report) = reports.iter_mut().find(|x| x.app_guid == m.app.guid)
            && !failed.is_empty()
        {
            let mut routes = std::mem::take(&mut report.routes);
            routes.extend(failed);
            *report = report.clone().with_routes(routes);
        }
    }
    for (guid, routes) in only {
        if let Some(report) = reports.iter_mut().find(|x| x.app_guid == guid) {
            let mut all = std::mem::take(&mut report.routes);
            all.extend(routes);
            *report = report.clone().with_routes(all);
        }
    }
}

/// Takes one app's path routes back: deletes those switchctl created (unless someone mapped
/// another destination to one since: then only switchctl's are removed), removes switchctl's
/// destinations from the others, and clears the record once all are done. The reports, as route
/// reports (`--only` routes count as the app's routes; `--except` ones only when they fail).
async fn close_member(env: &Env, m: &Member, r: &PathsRecord, dry_run: bool) -> Vec<RouteReport> {
    let client = &env.client;
    let mut out = Vec::new();
    for e in &r.routes {
        let report = |change: PathChange| PathReport { url: e.url.clone(), role: r.role, change };
        let route = match client.find_route(Some(&e.space), &e.domain, &e.host, &e.path).await {
            Ok(route) => route,
            Err(err) => {
                let error = describe(&err);
                emit(env, &m.label, Verb::Off, &report(PathChange::Failed { error: error.clone() }));
                out.push(route_report(e, "", Err(error)));
                continue;
            }
        };
        let Some(route) = route else {
            emit(env, &m.label, Verb::Off, &report(PathChange::Gone));
            out.push(route_report(e, "", Ok(())));
            continue;
        };
        let (ours, others): (Vec<_>, Vec<_>) =
            route.destinations.iter().partition(|d| d.app.guid == e.app && e.added.iter().any(|s| s.is(&e.app, d)));
        let delete = e.created && others.is_empty();
        if dry_run {
            emit(env, &m.label, Verb::Off, &report(PathChange::WouldRemove { delete, destinations: ours.len() }));
            continue;
        }
        let done = if delete {
            client.delete_route(&route.guid).await.map(|_| PathChange::Deleted)
        } else {
            let mut result = Ok(PathChange::Unmapped { removed: ours.len() });
            for d in &ours {
                if let Err(err) = client.delete_destination(&route.guid, &d.guid).await {
                    result = Err(err);
                    break;
                }
            }
            result
        };
        match done {
            Ok(change) => {
                emit(env, &m.label, Verb::Off, &report(change));
                out.push(route_report(e, &route.guid, Ok(())));
            }
            Err(err) => {
                let error = describe(&err);
                emit(env, &m.label, Verb::Off, &report(PathChange::Failed { error: error.clone() }));
                out.push(route_report(e, &route.guid, Err(error)));
            }
        }
    }
    if !dry_run
        && out.iter().all(|x| x.result != Outcome::Failed)
        && let Err(err) = write(env, &m.app.guid, None).await
    {
        env.out.error(&format!("could not clear the path record on app {}: {}", m.app.name, describe(&err)));
    }
    out
}

/// A path route's report as a route of `off`.
fn route_report(e: &PathEntry, guid: &str, result: Result<(), String>) -> RouteReport {
    match result {
        Ok(()) => RouteReport::new(e.url.clone(), guid.to_owned(), Outcome::Restored, RouteState::Serving)
            .with_note("path route of the window taken back"),
        Err(error) => RouteReport::new(e.url.clone(), guid.to_owned(), Outcome::Failed, RouteState::Unknown)
            .with_note(format!("path route of the window: {error}; run off again")),
    }
}

/// On `on`'s survey: with `--except`/`--only`, only host routes switch (the path routes are
/// this module's).
pub fn host_routes_only(env: &Env, routes: &mut Vec<Route>) {
    if env.settings.window.paths != Paths::All {
        routes.retain(|r| r.path.is_empty());
    }
}

/// `status`: the path routes recorded on `app`.
pub fn show(out: &crate::output::Output, app: &App) {
    match PathsRecord::of(app) {
        Ok(Some(r)) => {
            let flag = if r.role == PathRole::Only { "only" } else { "except" };
            for e in &r.routes {
                let who = if e.created { "created by switchctl" } else { "existed before" };
                out.line(&format!("  {flag} {} ({who})", e.url));
            }
            out.event("paths", serde_json::json!({"app": app.name, "role": r.role, "routes": r.routes}));
        }
        Ok(None) => {}
        Err(e) => out.line(&format!("  paths: {e}")),
    }
}
