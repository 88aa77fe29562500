//! `switchctl off APP…`: the apps' switched routes back to them, from the record on each route.
//!
//! Per route: (1) APP's recorded destinations back next to the maintenance app, (2) a wait until
//! APP answers on the route on every router (one of its web instances asked for by name), (3) the
//! maintenance app's destination deleted (unless another app on the route is still in
//! maintenance, or it was mapped before `on`), (4) a check that only APP answers, (5) the record
//! removed last. If (2) times out, the destinations just added are taken
//! off again: the route stays in maintenance, consistent, and the record says how to go on.
//!
//! A route is APP's when it carries APP's label or, should someone have removed the label by
//! hand, APP's annotation (found among the maintenance app's routes). Should both be gone, the
//! audit trail still shows the routes APP was unmapped from ([`trail`]): one that only the
//! maintenance app serves is reported with its exact repair, and `off` exits 1.
//!
//! A route bound to a route service, or on a domain enforcing route policies, is checked as
//! [`plan::Probing`] says; for a bound route, one probe before the change tells whether the
//! service passes requests on (the maintenance app's marker comes through it).

use std::{
    collections::{HashMap, HashSet},
    process::ExitCode,
    sync::Arc,
};

use super::{
    context::{self, Env, Lost, NotVerified, Work, domain_of, each},
    fleet::{self, Member},
    outcome::{Advice, Cause, DestinationView, Outcome, Recovered, Report, RouteReport, RouteState, Step, Verb, Who},
    paths,
    plan::{self, OffPlan, Probing},
    preview,
    probe::{Instance, Target, Want},
    state::{self, Record},
    trail::{self, LostRoute},
    window,
};
use crate::{
    capi::{App, Client, Destination, Domain, NewDestination, Route},
    error::{Error, describe},
    output::Output,
    session::Session,
    settings::{Off, Settings},
};

/// `switchctl off`.
pub async fn run(session: &Session, settings: &Arc<Settings>, out: &Output, off: &Off) -> Result<ExitCode, Error> {
    let unsettled = std::cell::Cell::new(false);
    let code = fleet::command(
        session,
        settings,
        out,
        &off.switch,
        Verb::Off,
        async |env: &Env, resolved: &fleet::Resolved| {
            // The routes first, then the processes stopped by `on` and the window's record (window.rs).
            let records = window::for_off(env, &resolved.members)?;
            let reports = switch_off(env, &resolved.members, off).await?;
            // The preview goes once the public routes are back (preview.rs says why).
            let records = preview::close(env, records, &reports).await;
            let restored = window::closed(env, &records, &reports).await;
            if let Some(advice) = window::advice(env, &restored, &reports) {
                env.out.error(&advice);
                unsettled.set(true);
            }
            Ok(reports)
        },
    )
    .await?;
    Ok(if unsettled.get() { ExitCode::from(crate::error::EXIT_FAILURE) } else { code })
}

/// `off` for every member, `--parallel` at a time: every app's routes are read and planned, every
/// route about to change is probed once, and only then does anything change.
pub async fn switch_off(env: &Env, members: &[Member], off: &Off) -> Result<Vec<Report>, Error> {
    let off = Arc::new(off.clone());
    let settings = (Verb::Off, off.switch.dry_run, off.switch.fleet.parallel);
    // `--only` prefixes go first, `--except` ones once their host routes are back (paths.rs).
    let closing = paths::closing(env, members, off.switch.dry_run).await;
    if members.len() > 1 {
        prefetch(env, members).await;
    }
    let mut reports = fleet::drive(
        env,
        members,
        settings,
        |m| survey(env.clone(), m, off.switch.dry_run, off.force),
        fleet::RouteWork {
            switch: |job, members: Vec<Member>| restore_route(Arc::new(Ctx::of(env, &members, off.force)), job),
            lost: lost_route,
            concurrency: off.switch.concurrency,
        },
        |s| restore_app(env.clone(), s, Arc::clone(&off)),
    )
    .await?;
    paths::closed(env, closing, &mut reports).await;
    Ok(reports)
}

/// The bindings of every route the fleet's maintenance apps carry, asked at once: the routes in
/// maintenance are among them (each app's survey still lists its labelled routes, and asks for
/// the bindings of any the maintenance apps do not carry). The listings are read anyway, for
/// the routes whose label was removed by hand.
async fn prefetch(env: &Env, members: &[Member]) {
    let mut pool: Vec<&App> = members.iter().flat_map(|m| &m.pool).collect();
    pool.sort_by(|a, b| a.guid.cmp(&b.guid));
    pool.dedup_by(|a, b| a.guid == b.guid);
    for maint in pool {
        if let Ok(routes) = env.maintenance_routes.of(&env.client, &maint.guid).await {
            env.reads.prefetch_bindings(&env.client, &routes).await;
        }
    }
}

/// One app, read and planned.
struct Survey {
    member: Member,
    advice: Advice,
    names: HashMap<String, String>,
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
    Done(Box<RouteReport>),
    Do(Box<Job>),
}

/// One route to restore, for every app of the fleet on it: one, unless fleet members share the
/// route; then one task restores it for all of them ([`fleet::RouteJob`]).
struct Job {
    route: Route,
    url: String,
    target: Target,
    probing: Probing,
    parts: Vec<Part>,
}

/// One app's share of a route's job.
struct Part {
    /// The app's GUID.
    app: String,
    /// What `off` does for it.
    plan: OffPlan,
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
        self.parts.extend(other.parts);
    }

    fn preflight(&self) -> bool {
        self.probing.preflight()
    }
}

/// APP's routes in maintenance: labelled for it, or (label removed by hand) annotated for it.
async fn app_routes(env: &Env, member: &Member) -> Result<Vec<Route>, Error> {
    let key = state::key(&member.app.guid);
    let mut routes = env.client.routes_by_label(&member.target.space.guid, &key).await?;
    for maint in &member.pool {
        let listed = env.maintenance_routes.of(&env.client, &maint.guid).await?;
        for route in listed.iter() {
            let unlabelled =
                route.metadata.annotations.contains_key(&key) && !routes.iter().any(|r| r.guid == route.guid);
            if unlabelled {
                // The listing is from the start of the run: read this one as it is now.
                routes.push(env.client.get_route(&route.guid).await?);
            }
        }
    }
    Ok(routes)
}

/// The routes `member` was unmapped from that only the maintenance app serves, with no record
/// left ([`trail`]). The audit trail is read only when the maintenance app has such a route at
/// all (its own route, or one someone stripped), which spares the request in most fleets; one
/// that cannot be read finds nothing, and says so.
async fn lost_routes(env: &Env, member: &Member, found: &[Route]) -> Vec<LostRoute> {
    let mut lost = Vec::new();
    for maint in &member.pool {
        let mut known: HashSet<&str> = found.iter().map(|r| r.guid.as_str()).collect();
        known.extend(lost.iter().map(|l: &LostRoute| l.route.guid.as_str()));
        let more = lost_routes_of(env, member, maint, &known).await;
        lost.extend(more);
    }
    lost
}

/// [`lost_routes`] that `maint` serves.
async fn lost_routes_of(env: &Env, member: &Member, maint: &App, known: &HashSet<&str>) -> Vec<LostRoute> {
    let unexplained = match env.maintenance_routes.of(&env.client, &maint.guid).await {
        Ok(routes) => routes.iter().any(|r| !known.contains(r.guid.as_str()) && state::labelled_apps(r).is_empty()),
        Err(_) => true,
    };
    if !unexplained {
        return Vec::new();
    }
    trail::lost_routes(&env.client, &member.app.guid, &maint.guid, known).await.unwrap_or_else(|e| {
        env.out.notice(&format!(
            "could not read app {}'s audit events ({}), so a route whose switchctl record was removed by hand \
             would not be found; `cf curl '/v3/audit_events?types=audit.app.unmap-route&target_guids={}'` lists them",
            member.app.name,
            describe(&e),
            member.app.guid
        ));
        Vec::new()
    })
}

/// Reads `member`'s switched routes and decides what to do with each; a failure here changed nothing.
async fn survey(env: Env, member: Member, dry_run: bool, force: bool) -> Result<Survey, Box<Report>> {
    let client = &env.client;
    let report = || fleet::report_for(&member, Verb::Off, dry_run);
    env.out.phase(&member.label, "reading", None, false);
    let mut routes = app_routes(&env, &member).await.map_err(|e| Box::new(report().failed(describe(&e))))?;
    let pool = match member.pool.as_slice() {
        [] => env.settings.switch().map_or_else(String::new, |s| s.maintenance.describe()),
        apps => apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", "),
    };
    let advice = env.advice(&member.app, &member.target, &pool);
    let names = names(std::slice::from_ref(&member));
    let maint_guid = member.pool.first().map(|m| m.guid.clone()).unwrap_or_default();
    if !routes.is_empty() && !force {
        match context::running_web(client, &member.app).await {
            Ok(Ok(indexes)) => env.running.record(&member.app.guid, indexes),
            Ok(Err(not)) => {
                return Err(Box::new(
                    report().failed(
                        Error::NotRunning {
                            role: "app",
                            name: member.app.name.clone(),
                            why: not.why,
                            fix: format!(
                                "run `{}` and wait until an instance is running and ready, or pass --force to give it its routes \
                             anyway; nothing was changed",
                                not.fix
                            ),
                        }
                        .to_string(),
                    ),
                ));
            }
            Err(e) => return Err(Box::new(report().failed(describe(&e)))),
        }
    }
    let lost = lost_routes(&env, &member, &routes).await;
    let all: Vec<Route> = routes.iter().chain(lost.iter().map(|l| &l.route)).cloned().collect();
    let domains = env.domains.of(client, &all).await.map_err(|e| Box::new(report().failed(describe(&e))))?;
    routes.sort_by_cached_key(|r| plan::url(r, domain_of(r, &domains)));
    let bound = context::route_services(client, &env.reads, &routes, &domains)
        .await
        .map_err(|e| Box::new(report().failed(describe(&e))))?;
    let (mut decided, mut jobs) = (Vec::new(), Vec::new());
    for l in lost {
        let url = plan::url(&l.route, domain_of(&l.route, &domains));
        decided.push(l.report(url));
    }
    for route in routes {
        let domain = domain_of(&route, &domains);
        let probing = plan::probing(domain, bound.get(&route.guid));
        match decide(&route, domain, &member.app.guid, &maint_guid, dry_run, &names) {
            Decision::Done(r) if dry_run && r.result == Outcome::Restored => {
                decided.push((*r).with_reach(env.verify.reach(&probing)));
            }
            Decision::Done(r) => decided.push(*r),
            Decision::Do(job) => jobs.push(Job { probing, ..*job }),
        }
    }
    Ok(Survey { member, advice, names, decided, jobs })
}

/// What `off` does with `route`: a report when nothing is to be done (or a dry run), else the job.
fn decide(
    route: &Route,
    domain: Option<&Domain>,
    app: &str,
    maint: &str,
    dry_run: bool,
    names: &HashMap<String, String>,
) -> Decision {
    let url = plan::url(route, domain);
    // The record says which maintenance app of a pool the route went to.
    let recorded = Record::read(route, app).ok().flatten().map(|r| r.maintenance_app);
    let state = plan::state_of(route, app, recorded.as_deref().unwrap_or(maint));
    match plan::plan_off(route, app) {
        Err(cause) => Decision::Done(Box::new(RouteReport::failed(url, route.guid.clone(), cause, state))),
        // The record went away between the list and now: someone restored it.
        Ok(None) => Decision::Done(Box::new(RouteReport::new(url, route.guid.clone(), Outcome::Already, state))),
        Ok(Some(plan)) if dry_run => {
            let mut r = RouteReport::new(url, route.guid.clone(), Outcome::Restored, state);
            r.destinations_added = plan.insert.iter().map(|d| DestinationView::new(d, names)).collect();
            r.destinations_removed = plan.remove.iter().map(|d| DestinationView::of(d, names)).collect();
            let key = state::key(app);
            r.metadata = Some(serde_json::json!({"labels": {&key: null}, "annotations": {&key: null}}));
            let note = keep_note(plan.record.maintenance_kept);
            Decision::Done(Box::new(if plan.keep_maintenance { r.with_note(note) } else { r }))
        }
        Ok(Some(plan)) => Decision::Do(Box::new(Job {
            target: plan::target(route, domain),
            url,
            route: route.clone(),
            parts: vec![Part { app: app.to_owned(), plan }],
            probing: Probing::Direct,
        })),
    }
}

fn keep_note(kept_before: bool) -> &'static str {
    if kept_before {
        "kept the maintenance app: it was mapped before `on`"
    } else {
        "kept the maintenance app: another app on this route is still in maintenance"
    }
}

/// What every route's task needs.
struct Ctx {
    /// Patient: a route whose restore has begun is finished however long the rate limit asks.
    client: Client,
    /// Whether a route may start.
    hold: context::Hold,
    verify: context::Verify,
    force: bool,
    /// The apps' running web instances, as the survey read them.
    running: context::Running,
    names: HashMap<String, String>,
}

/// GUID → name of the apps and their maintenance apps, for reports.
fn names(members: &[Member]) -> HashMap<String, String> {
    members
        .iter()
        .flat_map(|m| std::iter::once(&m.app).chain(&m.pool))
        .map(|a| (a.guid.clone(), a.name.clone()))
        .collect()
}

impl Ctx {
    /// The context of a route shared by `members` (of one space, so of one maintenance app).
    fn of(env: &Env, members: &[Member], force: bool) -> Ctx {
        Ctx {
            client: env.client.patient(),
            hold: context::Hold::of(env),
            verify: env.verify.clone(),
            force,
            running: env.running.clone(),
            names: names(members),
        }
    }

    /// The instance step 2 asks for by name: the lowest running web instance of an app whose
    /// record maps its web process. Gorouter matches `X-CF-APP-INSTANCE` on app and index only, so
    /// a route with only other processes of the apps could have no instance of that index; there
    /// step 2 falls back to one plain answer.
    fn pinnable(&self, parts: &[Part]) -> Option<Instance> {
        parts
            .iter()
            .filter(|p| p.plan.record.destinations.iter().any(|d| d.process == "web"))
            .find_map(|p| self.running.instance(&p.app))
    }
}

/// Restores one surveyed app; never fails as a whole: what went wrong is in the report.
async fn restore_app(env: Env, survey: Survey, off: Arc<Off>) -> Report {
    let Survey { member, advice, names, decided, jobs } = survey;
    let out = &env.out;
    let (label, dry_run) = (member.label.clone(), off.switch.dry_run);
    out.phase(&label, "restoring", None, false);
    out.routes_total(&label, decided.len() + jobs.len());
    let nothing = decided.is_empty() && jobs.is_empty();
    if !out.fleet() && !nothing {
        let doing = if dry_run { "Planning the restore of" } else { "Restoring" };
        out.line(&format!(
            "{doing} app {}'s routes from maintenance in org {} / space {}...",
            member.app.name, member.target.org.name, member.target.space.name
        ));
    }
    let print = |r: &RouteReport| {
        out.route(
            &label,
            &r.line(Verb::Off, &advice, dry_run),
            r.result == Outcome::Failed,
            serde_json::json!({"app": label, "action": Verb::Off, "route": r}),
        );
    };
    decided.iter().for_each(print);
    let ctx = Arc::new(Ctx { names, ..Ctx::of(&env, std::slice::from_ref(&member), off.force) });
    let work = jobs.into_iter().map(|j| Work { label: j.url.clone(), guid: j.route.guid.clone(), input: j }).collect();
    let app = member.app.guid.clone();
    let done = each(
        work,
        off.switch.concurrency,
        &env.interrupt,
        |job| {
            let (ctx, app) = (Arc::clone(&ctx), app.clone());
            async move { restore_route(ctx, job).await.into_iter().find(|(a, _)| *a == app).map(|(_, r)| r) }
        },
        |url, guid, lost| Some(lost_route(url, guid, lost)),
        |r| {
            if let Some(r) = r {
                print(r);
            }
        },
    )
    .await;
    fleet::report_for(&member, Verb::Off, dry_run)
        .with_routes(decided.into_iter().chain(done.into_iter().flatten()).collect())
}

/// A route whose task died or never started: it is as the survey found it, in maintenance.
fn lost_route(url: String, guid: String, lost: Lost) -> RouteReport {
    let (cause, state) = match lost {
        Lost::Interrupted => (Cause::Interrupted, RouteState::MaintenanceOnly),
        Lost::RateLimited => (Cause::RateLimited, RouteState::MaintenanceOnly),
        Lost::Died(error) => (Cause::Internal { error }, RouteState::Unknown),
    };
    RouteReport::failed(url, guid, cause, state)
}

/// Steps 1–5 for one route and every app of the fleet on it, a report per app. Long on purpose,
/// as `on`'s: the steps, and what each failure leaves the route in, read in order in one place.
async fn restore_route(ctx: Arc<Ctx>, job: Job) -> Vec<(String, RouteReport)> {
    let Job { route, url, target, probing, parts } = job;
    let client = &ctx.client;
    // Every app's record on the route names the same maintenance app: the one on the route.
    let maint = parts.first().map_or("", |p| p.plan.record.maintenance_app.as_str());
    if !ctx.hold.may_start(client) {
        return context::not_started(&route, &url, maint, parts.iter().map(|p| p.app.as_str()));
    }
    let probing = if ctx.force { probing } else { ctx.verify.learn(&target, probing).await };
    let apps: Vec<&str> = parts.iter().map(|p| p.app.as_str()).collect();
    let api = |step, e: &Error| Cause::Api { step, error: describe(e) };
    let mut notes = Vec::new();
    // After a failed write the route is read again: when it holds the change, `off` goes on from
    // there ([`context::landed`]) and the report says so.
    let mut recovered = Vec::new();
    let recorded = |r: &[Destination]| {
        parts.iter().all(|p| p.plan.record.destinations.iter().all(|s| r.iter().any(|d| s.is(&p.app, d))))
    };

    // 1. The apps' recorded destinations back, next to the maintenance app, in one insert.
    let mut insert: Vec<NewDestination> = Vec::new();
    for d in parts.iter().flat_map(|p| &p.plan.insert) {
        if !insert.contains(d) {
            insert.push(d.clone());
        }
    }
    let mut inserted = Vec::new();
    if !insert.is_empty() {
        let now = match client.insert_destinations(&route.guid, &insert).await {
            Ok(now) => now,
            Err(e) => match client.get_route(&route.guid).await {
                Ok(now) if recorded(&now.destinations) => {
                    recovered.push(Recovered { step: Step::AddApp, error: describe(&e) });
                    now.destinations
                }
                _ => return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::AddApp, &e)).await,
            },
        };
        inserted = now
            .into_iter()
            .filter(|d| apps.contains(&d.app.guid.as_str()) && !route.destinations.iter().any(|b| b.guid == d.guid))
            .map(|d| d.guid)
            .collect();
    }

    // 2. Only remove the maintenance app once the apps answer, on every router. With --force they
    // may not be running: there is nothing to wait for then, beyond the router taking the change.
    let probing = if ctx.force {
        ctx.verify.settle().await;
        notes.push("not verified: --force".to_owned());
        probing
    } else {
        match ctx.verify.first(&target, Want::App, probing, ctx.pinnable(&parts).as_ref()).await {
            Ok(probing) => probing,
            Err(not) => return ctx.roll_back(&url, (&route.guid, maint), &parts, &inserted, not).await,
        }
    };

    // 3. The maintenance app removed, unless it must stay. Decided on the route as it is now:
    // another app's record may have come or gone since the survey.
    let current = match client.get_route(&route.guid).await {
        Ok(current) => current,
        Err(e) => return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::ReadRoute, &e)).await,
    };
    let kept_before = parts.iter().any(|p| p.plan.record.maintenance_kept);
    let keep = kept_before || state::labelled_apps(&current).iter().any(|a| !apps.contains(a));
    let removed: Vec<_> = if keep {
        notes.push(keep_note(kept_before).to_owned());
        Vec::new()
    } else {
        current.destinations.iter().filter(|d| d.app.guid == maint).collect()
    };
    // One by one, for the reason `on` removes APP's that way: a replace would re-send other apps'
    // destinations, which CC cannot always take back as stored.
    for d in &removed {
        if let Err(e) = client.delete_destination(&route.guid, &d.guid).await {
            if !context::landed(client, &route.guid, |r| !r.destinations.iter().any(|x| x.guid == d.guid)).await {
                return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::RemoveMaintenance, &e)).await;
            }
            recovered.push(Recovered { step: Step::RemoveMaintenance, error: describe(&e) });
        }
    }

    // 4. The router must agree before the records go: without them, `off` could not resume.
    if !keep && !ctx.force {
        let removed = ctx.running.instance(maint);
        if let Err(NotVerified { timeout_s, last }) =
            ctx.verify.gone(&target, Want::App, &probing, removed.as_ref()).await
        {
            let cause = Cause::RouterLagging { who: Who::App, timeout_s, last };
            let failed = RouteReport::failed(url, route.guid.clone(), cause, RouteState::RecordOnly);
            return apps.iter().map(|a| ((*a).to_owned(), failed.clone())).collect();
        }
        if !ctx.verify.probes() {
            notes.push("not verified: --no-verify".to_owned());
        }
    } else if !ctx.force {
        ctx.verify.settle().await;
    }

    // 5. Done: the records go last, in one write.
    if let Err(e) = client.patch_route_metadata(&route.guid, &state::clear_patches(&apps)).await {
        if !context::landed(client, &route.guid, |r| apps.iter().all(|a| state::has_no_record(r, a))).await {
            return ctx.after_failure(&url, (&route.guid, maint), &apps, &api(Step::ClearRecord, &e)).await;
        }
        recovered.push(Recovered { step: Step::ClearRecord, error: describe(&e) });
    }
    let mut report = RouteReport::new(url, route.guid.clone(), Outcome::Restored, RouteState::Serving);
    if !notes.is_empty() {
        report = report.with_note(notes.join("; "));
    }
    report.destinations_removed = removed.into_iter().map(|d| DestinationView::of(d, &ctx.names)).collect();
    let reach = if ctx.force { None } else { ctx.verify.reach(&probing) };
    report.recovered = recovered;
    parts
        .iter()
        .map(|p| {
            let mut r = report.clone();
            r.destinations_added = p.plan.insert.iter().map(|d| DestinationView::new(d, &ctx.names)).collect();
            (p.app.clone(), r.with_reach(reach.clone()))
        })
        .collect()
}

impl Ctx {
    /// A request failed (possibly after the Cloud Controller carried it out): reads the route and
    /// reports what it holds, for each app.
    async fn after_failure(
        &self,
        url: &str,
        (route_guid, maint): (&str, &str),
        apps: &[&str],
        cause: &Cause,
    ) -> Vec<(String, RouteReport)> {
        let route = self.client.get_route(route_guid).await.ok();
        apps.iter()
            .map(|a| {
                let state = route.as_ref().map_or(RouteState::Unknown, |r| plan::state_of(r, a, maint));
                ((*a).to_owned(), RouteReport::failed(url.to_owned(), route_guid.to_owned(), cause.clone(), state))
            })
            .collect()
    }

    /// The apps never answered on the route while the maintenance app still served it: takes their
    /// recorded destinations (those just added, and those an interrupted run left) off again, so
    /// users keep getting the maintenance page and nothing is left mixed.
    async fn roll_back(
        &self,
        url: &str,
        (route_guid, maint): (&str, &str),
        parts: &[Part],
        inserted: &[String],
        not: NotVerified,
    ) -> Vec<(String, RouteReport)> {
        let cause = Cause::NotAnswering { who: Who::App, timeout_s: not.timeout_s, last: not.last };
        let apps: Vec<&str> = parts.iter().map(|p| p.app.as_str()).collect();
        let Ok(route) = self.client.get_route(route_guid).await else {
            let failed = RouteReport::failed(url.to_owned(), route_guid.to_owned(), cause, RouteState::Unknown);
            return apps.iter().map(|a| ((*a).to_owned(), failed.clone())).collect();
        };
        let take_off: Vec<&str> = route
            .destinations
            .iter()
            .filter(|d| {
                inserted.contains(&d.guid)
                    || parts.iter().any(|p| p.plan.record.destinations.iter().any(|s| s.is(&p.app, d)))
            })
            .map(|d| d.guid.as_str())
            .collect();
        // Without the maintenance app on the route, the apps are all that serves it: they stay.
        if route.destinations.iter().any(|d| d.app.guid == maint) {
            for guid in take_off {
                if let Err(e) = self.client.delete_destination(route_guid, guid).await {
                    let cause = Cause::Api { step: Step::RemoveApp, error: describe(&e) };
                    return self.after_failure(url, (route_guid, maint), &apps, &cause).await;
                }
            }
        }
        self.after_failure(url, (route_guid, maint), &apps, &cause).await
    }
}
