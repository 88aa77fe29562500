//! `switchctl on APP…`: every HTTP route of the apps to the maintenance app.
//!
//! Per route: (1) the record first, (2) the maintenance app added next to APP, (3) a wait until
//! the maintenance app answers on the route on every router (its instance asked for by name, see
//! [`probe`](super::probe)), (4) APP's destinations deleted one by one (every
//! other app's untouched, as CC stored them), (5) a check that only the maintenance app answers. If (3) times out,
//! the maintenance destination and the record are taken back: the route is as it was, and never
//! stays mixed because a probe failed. After any failed request the route is read again, and the
//! report says what the Cloud Controller holds.
//!
//! A route bound to a route service, or on a domain enforcing route policies, cannot always be
//! probed from here; how `on` checks those is [`plan::Probing`]'s to say, and the route's report
//! carries it (`reach`).

use std::{collections::HashMap, process::ExitCode, sync::Arc};

use super::{
    content,
    context::{self, Env, Lost, NotVerified, Work, domain_of, each},
    fleet::{self, Member},
    outcome::{Advice, Cause, DestinationView, Outcome, Recovered, Report, RouteReport, RouteState, Step, Verb, Who},
    paths,
    plan::{self, OnPlan, Probing},
    preview,
    probe::{CONSECUTIVE, Instance, Target, Want},
    state::{self, DefaultPort, Record},
    window,
};
use crate::{
    capi::{Client, Destination, Domain, NewDestination, Route},
    error::{Error, describe},
    output::Output,
    session::Session,
    settings::{Settings, Switch},
};

/// `switchctl on`.
pub async fn run(
    session: &Session,
    settings: &Arc<Settings>,
    out: &Output,
    switch: &Switch,
) -> Result<ExitCode, Error> {
    let unsettled = std::cell::Cell::new(false);
    let code =
        fleet::command(session, settings, out, switch, Verb::On, async |env: &Env, resolved: &fleet::Resolved| {
            // The maintenance apps' control secrets before anything else changes (content.rs):
            // a refusal there must leave nothing behind.
            let content = &settings.window.content;
            content::supported(&settings.window)?;
            if !content.is_empty() && !switch.dry_run {
                content::prepare(env, &pool_of(&resolved.members)).await?;
            }
            // The window's record first, then the routes, then the processes (window.rs).
            let plans = window::prepare(env, &resolved.members, &settings.window, switch.dry_run).await?;
            let reports = switch_on(env, &resolved.members, switch).await?;
            let told = content.is_empty()
                || switch.dry_run
                || content::print(env, &open_content(env, resolved, &reports, content).await);
            let stopped = window::opened(env, &plans, &reports).await;
            let preview = preview::open(env, &resolved.members, &plans, &reports).await?;
            unsettled.set(stopped.iter().any(|p| !p.settled()) || !preview.ok || !told);
            Ok(reports)
        })
        .await?;
    Ok(if unsettled.get() { ExitCode::from(crate::error::EXIT_FAILURE) } else { code })
}

/// Every maintenance app of the members' pools, once.
pub fn pool_of(members: &[Member]) -> Vec<crate::capi::App> {
    let mut pool: Vec<crate::capi::App> = Vec::new();
    for m in members.iter().flat_map(|m| &m.pool) {
        if !pool.iter().any(|p| p.guid == m.guid) {
            pool.push(m.clone());
        }
    }
    pool
}

/// Sets the content of every member whose routes all switched (right after the switch: see the
/// README's "Live content" for how long the default text can show before).
pub async fn open_content(
    env: &Env,
    resolved: &fleet::Resolved,
    reports: &[Report],
    content: &crate::settings::Content,
) -> Vec<crate::switch::outcome::ContentReport> {
    let switched: Vec<(String, String, String)> = resolved
        .members
        .iter()
        .filter(|m| reports.iter().any(|r| r.app_guid == m.app.guid && r.ok))
        .map(|m| (m.app.name.clone(), m.app.guid.clone(), m.target.space.guid.clone()))
        .collect();
    content::open(env, &switched, content).await
}

/// `on` for every member, `--parallel` at a time: every app's routes are read and planned, every
/// route about to change is probed once, and only then does anything change.
pub async fn switch_on(env: &Env, members: &[Member], switch: &Switch) -> Result<Vec<Report>, Error> {
    let switch = Arc::new(switch.clone());
    let settings = (Verb::On, switch.dry_run, switch.fleet.parallel);
    if members.len() > 1 {
        let apps: Vec<&str> = members.iter().map(|m| m.app.guid.as_str()).collect();
        env.reads.prefetch_mapped(&env.client, &apps).await;
    }
    // `--except` path routes exist before any host route switches; `--only` switches none.
    let failed = match paths::open(env, members, switch.dry_run).await? {
        paths::Opened::Done(reports) => return Ok(reports),
        paths::Opened::SwitchHosts { failed } => failed,
    };
    let members: Vec<Member> =
        members.iter().filter(|m| !failed.iter().any(|r| r.app_guid == m.app.guid)).cloned().collect();
    if members.is_empty() {
        return Ok(failed);
    }
    let mut reports = fleet::drive(
        env,
        &members,
        settings,
        |m| survey(env.clone(), m, switch.dry_run),
        fleet::RouteWork {
            switch: |job, members: Vec<Member>| switch_route(Arc::new(Ctx::of(env, &members)), job),
            lost: lost_route,
            concurrency: switch.concurrency,
        },
        |s| switch_app(env.clone(), s, Arc::clone(&switch)),
    )
    .await?;
    reports.extend(failed);
    Ok(reports)
}

/// One app, read and planned: what is already decided, and the routes still to switch.
struct Survey {
    member: Member,
    advice: Advice,
    decided: Vec<RouteReport>,
    jobs: Vec<Job>,
}

impl fleet::Surveyed for Survey {
    type Job = Job;

    fn member(&self) -> &Member {
        &self.member
    }

    fn jobs(&mut self) -> &mut Vec<Job> {
        &mut self.jobs
    }

    fn planned(&self) -> &[Job] {
        &self.jobs
    }

    fn decided(&mut self) -> &mut Vec<RouteReport> {
        &mut self.decided
    }
}

/// What to do with a route: nothing more (its report is ready), or a job.
enum Decision {
    Done(RouteReport),
    Do(Job),
}

/// One route to switch, for every app of the fleet on it: one, unless fleet members share the
/// route (blue/green pairs). A shared route is switched by one task that knows all of them, so
/// that no member decides from a listing another member's task has made stale.
struct Job {
    route: Route,
    url: String,
    target: Target,
    /// The maintenance app (GUID) the route goes to.
    maint: String,
    insert_maintenance: bool,
    probing: Probing,
    parts: Vec<Part>,
}

impl fleet::RouteJob for Job {
    fn route_guid(&self) -> &str {
        &self.route.guid
    }

    fn url(&self) -> &str {
        &self.url
    }

    fn target(&self) -> &Target {
        &self.target
    }

    fn apps(&self) -> Vec<String> {
        self.parts.iter().map(|p| p.app.clone()).collect()
    }

    fn merge(&mut self, other: Job) {
        self.insert_maintenance |= other.insert_maintenance;
        self.parts.extend(other.parts);
    }

    fn adds_maintenance(&self) -> Option<&str> {
        self.insert_maintenance.then_some(self.maint.as_str())
    }

    fn preflight(&self) -> bool {
        self.probing.preflight()
    }
}

/// One app's share of a route's job.
#[derive(Debug, Clone)]
struct Part {
    /// The app's GUID.
    app: String,
    /// Its record to write first (`None`: the route already carries it).
    record: Option<String>,
}

/// Reads `member`'s routes and decides what to do with each; a failure here changed nothing.
async fn survey(env: Env, member: Member, dry_run: bool) -> Result<Survey, Box<Report>> {
    let client = &env.client;
    let report = || fleet::report_for(&member, Verb::On, dry_run);
    let pool = env.settings.switch().map_or_else(String::new, |s| s.maintenance.describe());
    if member.pool.is_empty() {
        return Err(Box::new(
            report().failed(format!("no maintenance app {pool} in space {}", member.target.space.name)),
        ));
    }
    env.out.phase(&member.label, "reading", None, false);
    let routes =
        context::app_and_labelled_routes(client, &env.reads, &member.target.space.guid, &member.app.guid).await;
    let (mut routes, domains) = match routes.map(|mut r| {
        paths::host_routes_only(&env, &mut r);
        r
    }) {
        Ok(routes) => match env.domains.of(client, &routes).await {
            Ok(domains) => (routes, domains),
            Err(e) => return Err(Box::new(report().failed(describe(&e)))),
        },
        Err(e) => return Err(Box::new(report().failed(describe(&e)))),
    };
    let bound = match context::route_services(client, &env.reads, &routes, &domains).await {
        Ok(bound) => bound,
        Err(e) => return Err(Box::new(report().failed(describe(&e)))),
    };
    // A rerun after `--preview` finds the preview route mapped to the app: it is not the public's.
    routes.retain(|r| !preview::is_preview(&member.app, r));
    routes.sort_by_cached_key(|r| plan::url(r, domain_of(r, &domains)));
    let default_port = match context::default_port(client, &member.app).await {
        Ok(port) => port,
        Err(e) => return Err(Box::new(report().failed(describe(&e)))),
    };
    if let Err(e) = seed_spread(&env, &member).await {
        return Err(Box::new(report().failed(describe(&e))));
    }
    let advice = env.advice(&member.app, &member.target, &pool);
    let names = names(&member);
    let since = state::now_rfc3339();
    let (mut decided, mut jobs) = (Vec::new(), Vec::new());
    for route in routes {
        let domain = domain_of(&route, &domains);
        let probing = plan::probing(domain, bound.get(&route.guid));
        let maint = maint_for(&env, &route, &plan::url(&route, domain), &member);
        match decide(&route, domain, (&member, default_port), &maint, &since, dry_run, &names) {
            Decision::Done(report) if dry_run && report.result == Outcome::Switched => {
                decided.push(report.with_reach(env.verify.reach(&probing)));
            }
            Decision::Done(report) => decided.push(report),
            Decision::Do(job) => jobs.push(Job { probing, ..job }),
        }
    }
    Ok(Survey { member, advice, decided, jobs })
}

/// GUID → name of the app and its maintenance apps, for reports.
fn names(member: &Member) -> HashMap<String, String> {
    std::iter::once(&member.app).chain(&member.pool).map(|a| (a.guid.clone(), a.name.clone())).collect()
}

/// Tells the run's spread what each maintenance app of `member`'s pool carries, when there is a
/// pool to spread over (one maintenance app needs no listing here).
async fn seed_spread(env: &Env, member: &Member) -> Result<(), Error> {
    if member.pool.len() < 2 {
        return Ok(());
    }
    for maint in &member.pool {
        let carried = env.maintenance_routes.of(&env.client, &maint.guid).await?;
        env.spread.seed(&maint.guid, &carried);
    }
    Ok(())
}

/// The maintenance app (GUID) `route` goes to: the pool's app already on it (another app's
/// switch, or an unfinished one of this app), else the one this app's record names (a resumed
/// switch), else the spread's choice.
fn maint_for(env: &Env, route: &Route, url: &str, member: &Member) -> String {
    let pool: Vec<&str> = member.pool.iter().map(|m| m.guid.as_str()).collect();
    if let Some(d) = route.destinations.iter().find(|d| pool.contains(&d.app.guid.as_str())) {
        return d.app.guid.clone();
    }
    if let Ok(Some(record)) = Record::read(route, &member.app.guid)
        && pool.contains(&record.maintenance_app.as_str())
    {
        return record.maintenance_app;
    }
    match pool.as_slice() {
        [one] => (*one).to_owned(),
        _ => env.spread.choose(&route.guid, url, &pool),
    }
}

/// What `on` does with `route`: a report when nothing is to be done (or a dry run), else the job.
fn decide(
    route: &Route,
    domain: Option<&Domain>,
    (member, default_port): (&Member, DefaultPort),
    maint: &str,
    since: &str,
    dry_run: bool,
    names: &HashMap<String, String>,
) -> Decision {
    let url = plan::url(route, domain);
    let app = &member.app;
    let report = |result, state| RouteReport::new(url.clone(), route.guid.clone(), result, state);
    if let Some(reason) = plan::skip_reason(route, domain) {
        return Decision::Done(report(Outcome::Skipped, RouteState::Serving).with_note(reason));
    }
    let state = plan::state_of(route, &app.guid, maint);
    Decision::Done(match plan::plan_on(route, (&app.guid, &app.name, default_port), maint, since) {
        Err(cause) => RouteReport::failed(url, route.guid.clone(), cause, state),
        Ok(OnPlan::Already) => report(Outcome::Already, state),
        Ok(OnPlan::NotMapped) => {
            report(Outcome::Skipped, state).with_note(format!("{} has no destination on it (any more)", app.name))
        }
        Ok(OnPlan::Switch { record, insert_maintenance, remove }) if dry_run => {
            let mut r = report(Outcome::Switched, state);
            r.destinations_removed = remove.iter().map(|d| DestinationView::of(d, names)).collect();
            if insert_maintenance {
                r.destinations_added = vec![DestinationView::new(&NewDestination::to_app(maint), names)];
            }
            let key = state::key(&app.guid);
            r.metadata = record
                .map(|text| serde_json::json!({"labels": {&key: state::LABEL_VALUE}, "annotations": {&key: text}}));
            r
        }
        Ok(OnPlan::Switch { record, insert_maintenance, .. }) => {
            return Decision::Do(Job {
                url,
                target: plan::target(route, domain),
                maint: maint.to_owned(),
                insert_maintenance,
                route: route.clone(),
                parts: vec![Part { app: app.guid.clone(), record }],
                probing: Probing::Direct,
            });
        }
    })
}

/// What every route's task needs.
struct Ctx {
    /// Patient: a route whose switch has begun is finished however long the rate limit asks.
    client: Client,
    /// Whether a route may start.
    hold: context::Hold,
    verify: context::Verify,
    /// The running instances of the maintenance apps (step 3 asks for one by name).
    running: context::Running,
    names: HashMap<String, String>,
}

/// Switches one surveyed app; never fails as a whole: what went wrong is in the report.
async fn switch_app(env: Env, survey: Survey, switch: Arc<Switch>) -> Report {
    let Survey { member, advice, decided, jobs } = survey;
    let out = &env.out;
    let label = member.label.clone();
    out.phase(&label, "switching", None, false);
    out.routes_total(&label, decided.len() + jobs.len());
    if !out.fleet() {
        let doing = if switch.dry_run { "Planning the switch of" } else { "Switching" };
        out.line(&format!(
            "{doing} app {}'s routes to {} in org {} / space {}...",
            member.app.name, advice.maintenance_app, member.target.org.name, member.target.space.name
        ));
    }
    let print = |r: &RouteReport| print_route(out, &label, &advice, switch.dry_run, r);
    decided.iter().for_each(print);
    let ctx = Arc::new(Ctx::of(&env, std::slice::from_ref(&member)));
    let work = jobs.into_iter().map(|j| Work { label: j.url.clone(), guid: j.route.guid.clone(), input: j }).collect();
    let app = member.app.guid.clone();
    let done = each(
        work,
        switch.concurrency,
        &env.interrupt,
        |job| {
            let (ctx, app) = (Arc::clone(&ctx), app.clone());
            async move { switch_route(ctx, job).await.into_iter().find(|(a, _)| *a == app).map(|(_, r)| r) }
        },
        |url, guid, lost| Some(lost_route(url, guid, lost)),
        |r| {
            if let Some(r) = r {
                print(r);
            }
        },
    )
    .await;
    fleet::report_for(&member, Verb::On, switch.dry_run)
        .with_routes(decided.into_iter().chain(done.into_iter().flatten()).collect())
}

/// One route's line and JSON event, for the app `label`.
fn print_route(out: &Output, label: &str, advice: &Advice, dry_run: bool, r: &RouteReport) {
    out.route(
        label,
        &r.line(Verb::On, advice, dry_run),
        r.result == Outcome::Failed,
        serde_json::json!({"app": label, "action": Verb::On, "route": r}),
    );
}

/// A route whose task died or never started: it is as the survey found it.
fn lost_route(url: String, guid: String, lost: Lost) -> RouteReport {
    let (cause, state) = match lost {
        Lost::Interrupted => (Cause::Interrupted, RouteState::Serving),
        Lost::RateLimited => (Cause::RateLimited, RouteState::Serving),
        Lost::Died(error) => (Cause::Internal { error }, RouteState::Unknown),
    };
    RouteReport::failed(url, guid, cause, state)
}

/// Steps 1–5 for one route and every app of the fleet on it; never returns before the route is
/// in a state `on` or `off` can continue from, and says which, per app. Long on purpose: the
/// steps, and what each failure leaves the route in, read in order in one place.
async fn switch_route(ctx: Arc<Ctx>, job: Job) -> Vec<(String, RouteReport)> {
    let Job { route, url, target, maint, insert_maintenance, probing, parts } = job;
    let (maint, client) = (maint.as_str(), &ctx.client);
    if !ctx.hold.may_start(client) {
        return context::not_started(&route, &url, maint, parts.iter().map(|p| p.app.as_str()));
    }
    let maint_instance = ctx.running.instance(maint);
    let apps: Vec<&str> = parts.iter().map(|p| p.app.as_str()).collect();
    let api = |step, e: &Error| Cause::Api { step, error: describe(e) };
    // After a failed write the route is read again: when it holds the change, the switch goes on
    // from there ([`context::landed`]) and the report says so.
    let mut recovered = Vec::new();

    // 1. The records first, in one write: from here on, whatever happens, the route can be found
    // and restored.
    let records: Vec<(&str, &String)> =
        parts.iter().filter_map(|p| p.record.as_ref().map(|r| (p.app.as_str(), r))).collect();
    if !records.is_empty()
        && let Err(e) = client.patch_route_metadata(&route.guid, &state::set_patches(&records)).await
    {
        if !context::landed(client, &route.guid, |r| records.iter().all(|(a, _)| state::has_record(r, a))).await {
            return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::WriteRecord, &e)).await;
        }
        recovered.push(Recovered { step: Step::WriteRecord, error: describe(&e) });
    }

    // 2. Add the maintenance app next to the apps.
    let mut added = Vec::new();
    if insert_maintenance {
        let new = NewDestination::to_app(maint);
        if let Err(e) = client.insert_destinations(&route.guid, std::slice::from_ref(&new)).await {
            if !context::landed(client, &route.guid, |r| r.destinations.iter().any(|d| d.app.guid == maint)).await {
                return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::AddMaintenance, &e)).await;
            }
            recovered.push(Recovered { step: Step::AddMaintenance, error: describe(&e) });
        }
        added.push(DestinationView::new(&new, &ctx.names));
    }

    // 3. Only remove the apps once the maintenance app answers on the route, on every router (a
    // route that cannot be verified from here gets --settle instead: see `Probing`).
    let probing = match ctx.verify.first(&target, Want::Maintenance, probing, maint_instance.as_ref()).await {
        Ok(probing) => probing,
        Err(not) => return ctx.roll_back(&url, (&route.guid, maint), &apps, not).await,
    };
    let reach = ctx.verify.reach(&probing);

    // 4. The apps' destinations removed one by one. Not one replace: that re-sends every other
    // destination, and CC cannot be told "as stored" for a Docker app's destination created
    // without a port (stored -1, shown as the image's port; sent back explicitly it is 422 below
    // 1024, and otherwise a new destination and new `process.ports`).
    let current = match client.route_destinations(&route.guid).await {
        Ok(current) => current,
        Err(e) => return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::ReadRoute, &e)).await,
    };
    if !current.iter().any(|d| d.app.guid == maint) {
        return ctx.after_failure(&url, (&route.guid, maint), &apps, &Cause::MaintenanceVanished).await;
    }
    let removed: Vec<&Destination> = current.iter().filter(|d| apps.contains(&d.app.guid.as_str())).collect();
    for d in &removed {
        if let Err(e) = client.delete_destination(&route.guid, &d.guid).await {
            if !context::landed(client, &route.guid, |r| !r.destinations.iter().any(|x| x.guid == d.guid)).await {
                return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::RemoveApp, &e)).await;
            }
            recovered.push(Recovered { step: Step::RemoveApp, error: describe(&e) });
        }
    }

    // 5. The router must agree. Other apps on a shared route keep answering without the marker,
    // so there only the maintenance app's presence (step 3) can be checked.
    let others = current.iter().any(|d| !apps.contains(&d.app.guid.as_str()) && d.app.guid != maint);
    let report = if others {
        ctx.verify.settle().await;
        RouteReport::new(url, route.guid.clone(), Outcome::Switched, RouteState::MaintenanceOnly)
            .with_note("other apps on this route keep serving it")
    } else {
        // A router still holding APP answers a request for APP's instance 0 by name every time it
        // is asked (see probe's model): exact per router while that instance runs, where the plain
        // check misses a mixed router in its share of requests. `on` reads no stats of APP (a
        // request per app), so index 0 is asked for; when it is not running no pool holds it, and
        // the plain check is what remains.
        let app_instance = removed.first().map(|d| Instance { app_guid: d.app.guid.clone(), index: 0 });
        let checked = match ctx.verify.gone(&target, Want::Maintenance, &probing, app_instance.as_ref()).await {
            Ok(()) if app_instance.is_some() => {
                ctx.verify.last(&target, Want::Maintenance, CONSECUTIVE, &probing).await
            }
            other => other,
        };
        match checked {
            Ok(()) => {
                let r = RouteReport::new(url, route.guid.clone(), Outcome::Switched, RouteState::MaintenanceOnly);
                if ctx.verify.probes() { r } else { r.with_note("not verified: --no-verify") }
            }
            Err(NotVerified { timeout_s, last }) => RouteReport::failed(
                url,
                route.guid.clone(),
                Cause::RouterLagging { who: Who::MaintenanceApp, timeout_s, last },
                RouteState::MaintenanceOnly,
            ),
        }
    };
    parts
        .iter()
        .map(|p| {
            let mut r = report.clone();
            r.destinations_removed =
                removed.iter().filter(|d| d.app.guid == p.app).map(|d| DestinationView::of(d, &ctx.names)).collect();
            r.destinations_added.clone_from(&added);
            r.recovered.clone_from(&recovered);
            (p.app.clone(), r.with_reach(reach.clone()))
        })
        .collect()
}

impl Ctx {
    /// The context of the routes of `members` (one app, or those sharing a route).
    fn of(env: &Env, members: &[Member]) -> Ctx {
        Ctx {
            client: env.client.patient(),
            hold: context::Hold::of(env),
            verify: env.verify.clone(),
            running: env.running.clone(),
            names: members.iter().flat_map(names).collect(),
        }
    }

    /// A request failed (possibly after the Cloud Controller carried it out): reads the route
    /// and reports what it holds for each app. A route left with an app's record and nothing
    /// else changed gets that record taken back, so that it is exactly as before.
    async fn after_failure(
        &self,
        url: &str,
        (route_guid, maint): (&str, &str),
        apps: &[&str],
        cause: &Cause,
    ) -> Vec<(String, RouteReport)> {
        let route = self.client.get_route(route_guid).await.ok();
        let state = |r: Option<&Route>, app: &str| r.map_or(RouteState::Unknown, |r| plan::state_of(r, app, maint));
        let alone: Vec<&str> =
            apps.iter().copied().filter(|a| state(route.as_ref(), a) == RouteState::RecordOnly).collect();
        let route = if alone.is_empty() {
            route
        } else {
            match self.client.patch_route_metadata(route_guid, &state::clear_patches(&alone)).await {
                Ok(route) => Some(route),
                Err(_) => self.client.get_route(route_guid).await.ok(),
            }
        };
        apps.iter()
            .map(|a| {
                let r =
                    RouteReport::failed(url.to_owned(), route_guid.to_owned(), cause.clone(), state(route.as_ref(), a));
                ((*a).to_owned(), r)
            })
            .collect()
    }

    /// The maintenance app never answered on the route while the apps still served it: takes the
    /// maintenance destination off again (unless it serves another switched app or was mapped
    /// before), and the records with it, so users keep getting the apps and nothing is left mixed.
    async fn roll_back(
        &self,
        url: &str,
        (route_guid, maint): (&str, &str),
        apps: &[&str],
        not: NotVerified,
    ) -> Vec<(String, RouteReport)> {
        let cause = Cause::NotAnswering { who: Who::MaintenanceApp, timeout_s: not.timeout_s, last: not.last };
        let Ok(route) = self.client.get_route(route_guid).await else {
            let failed = |a: &&str| {
                let r = RouteReport::failed(url.to_owned(), route_guid.to_owned(), cause.clone(), RouteState::Unknown);
                ((*a).to_owned(), r)
            };
            return apps.iter().map(failed).collect();
        };
        let serves = route.destinations.iter().any(|d| apps.contains(&d.app.guid.as_str()));
        let ours = apps.iter().all(|a| match Record::read(&route, a) {
            Ok(Some(record)) => !record.maintenance_kept,
            _ => false,
        }) && state::labelled_apps(&route).iter().all(|a| apps.contains(a));
        // Without the apps on the route, the maintenance app is all that serves it: it stays.
        if serves && ours {
            for d in route.destinations.iter().filter(|d| d.app.guid == maint) {
                if let Err(e) = self.client.delete_destination(route_guid, &d.guid).await {
                    let cause = Cause::Api { step: Step::RemoveMaintenance, error: describe(&e) };
                    return self.after_failure(url, (route_guid, maint), apps, &cause).await;
                }
            }
        }
        self.after_failure(url, (route_guid, maint), apps, &cause).await
    }
}
