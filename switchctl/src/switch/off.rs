//! `switchctl off APP…`: the apps' switched routes back to them, from the record on each route.
//!
//! Per route: (1) APP's recorded destinations back next to the maintenance app, (2) a wait until
//! APP answers on the route, (3) the maintenance app's destination deleted (unless another app
//! on the route is still in maintenance, or it was mapped before `on`), (4) a check that only APP
//! answers, (5) the record removed last. If (2) times out, the destinations just added are taken
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
    outcome::{Advice, Cause, DestinationView, Outcome, Report, RouteReport, RouteState, Step, Verb, Who},
    plan::{self, OffPlan, Probing},
    probe::{CONSECUTIVE, Target, Want},
    state::{self, Record},
    trail::{self, LostRoute},
};
use crate::{
    capi::{Client, Domain, Route},
    error::{Error, describe},
    output::Output,
    session::Session,
    settings::{Off, Settings},
};

/// `switchctl off`.
pub async fn run(session: &Session, settings: &Arc<Settings>, out: &Output, off: &Off) -> Result<ExitCode, Error> {
    fleet::command(session, settings, out, &off.switch, Verb::Off, async |env: &Env, resolved: &fleet::Resolved| {
        switch_off(env, &resolved.members, off).await
    })
    .await
}

/// `off` for every member, `--parallel` at a time: every app's routes are read and planned, every
/// route about to change is probed once, and only then does anything change.
pub async fn switch_off(env: &Env, members: &[Member], off: &Off) -> Result<Vec<Report>, Error> {
    let off = Arc::new(off.clone());
    let settings = (Verb::Off, off.switch.dry_run, off.switch.fleet.parallel);
    fleet::drive(
        env,
        members,
        settings,
        |m| survey(env.clone(), m, off.switch.dry_run, off.force),
        |s| restore_app(env.clone(), s, Arc::clone(&off)),
    )
    .await
}

/// One app, read and planned.
struct Survey {
    member: Member,
    advice: Advice,
    maint_guid: String,
    names: HashMap<String, String>,
    decided: Vec<RouteReport>,
    jobs: Vec<Job>,
}

impl fleet::Surveyed for Survey {
    fn member(&self) -> &Member {
        &self.member
    }

    fn targets(&self) -> Vec<(String, Target)> {
        self.jobs.iter().filter(|j| j.probing.preflight()).map(|j| (j.url.clone(), j.target.clone())).collect()
    }
}

/// What to do with a route: nothing more (its report is ready), or a job.
enum Decision {
    Done(Box<RouteReport>),
    Do(Box<Job>),
}

/// One route to restore.
struct Job {
    route: Route,
    url: String,
    target: Target,
    plan: OffPlan,
    probing: Probing,
}

/// APP's routes in maintenance: labelled for it, or (label removed by hand) annotated for it.
async fn app_routes(env: &Env, member: &Member) -> Result<Vec<Route>, Error> {
    let key = state::key(&member.app.guid);
    let mut routes = env.client.routes_by_label(&member.target.space.guid, &key).await?;
    if let Some(maint) = &member.maint {
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
    let Some(maint) = &member.maint else { return Vec::new() };
    let known: HashSet<&str> = found.iter().map(|r| r.guid.as_str()).collect();
    let unexplained = match env.maintenance_routes.of(&env.client, &maint.guid).await {
        Ok(routes) => routes.iter().any(|r| !known.contains(r.guid.as_str()) && state::labelled_apps(r).is_empty()),
        Err(_) => true,
    };
    if !unexplained {
        return Vec::new();
    }
    trail::lost_routes(&env.client, &member.app.guid, &maint.guid, &known).await.unwrap_or_else(|e| {
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
    let maint_name = env.settings.switch().map_or("maintenance-app", |s| s.maintenance_app.as_str()).to_owned();
    let (maint_guid, maint_name) =
        member.maint.as_ref().map_or((String::new(), maint_name), |m| (m.guid.clone(), m.name.clone()));
    let advice = env.advice(&member.app, &member.target, &maint_name);
    let names: HashMap<String, String> =
        [(member.app.guid.clone(), member.app.name.clone()), (maint_guid.clone(), maint_name)].into_iter().collect();
    if !routes.is_empty() && !force {
        match context::running_web(client, &member.app).await {
            Ok(Ok(())) => {}
            Ok(Err(not)) => {
                return Err(Box::new(
                    report().failed(
                        Error::NotRunning {
                            role: "app",
                            name: member.app.name.clone(),
                            why: not.why,
                            fix: format!(
                                "run `{}` and wait until an instance is running, or pass --force to give it its routes \
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
    let bound = context::route_services(client, &routes, &domains)
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
    Ok(Survey { member, advice, maint_guid, names, decided, jobs })
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
    let state = plan::state_of(route, app, maint);
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
            Decision::Done(Box::new(if plan.keep_maintenance { r.with_note(keep_note(&plan)) } else { r }))
        }
        Ok(Some(plan)) => Decision::Do(Box::new(Job {
            target: plan::target(route, domain),
            url,
            route: route.clone(),
            plan,
            probing: Probing::Direct,
        })),
    }
}

fn keep_note(plan: &OffPlan) -> &'static str {
    if plan.record.maintenance_kept {
        "kept the maintenance app: it was mapped before `on`"
    } else {
        "kept the maintenance app: another app on this route is still in maintenance"
    }
}

/// What every route's task of one app needs.
struct Ctx {
    client: Client,
    verify: context::Verify,
    force: bool,
    app_guid: String,
    maint_guid: String,
    names: HashMap<String, String>,
}

/// Restores one surveyed app; never fails as a whole: what went wrong is in the report.
async fn restore_app(env: Env, survey: Survey, off: Arc<Off>) -> Report {
    let Survey { member, advice, maint_guid, names, decided, jobs } = survey;
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
    let ctx = Arc::new(Ctx {
        client: env.client.clone(),
        verify: env.verify.clone(),
        force: off.force,
        app_guid: member.app.guid.clone(),
        maint_guid,
        names,
    });
    let work = jobs.into_iter().map(|j| Work { label: j.url.clone(), guid: j.route.guid.clone(), input: j }).collect();
    let done = each(
        work,
        off.switch.concurrency,
        &env.interrupt,
        |job| restore_route(Arc::clone(&ctx), job),
        |url, guid, lost| {
            let (cause, state) = match lost {
                Lost::Interrupted => (Cause::Interrupted, RouteState::MaintenanceOnly),
                Lost::Died(error) => (Cause::Internal { error }, RouteState::Unknown),
            };
            RouteReport::failed(url, guid, cause, state)
        },
        print,
    )
    .await;
    fleet::report_for(&member, Verb::Off, dry_run).with_routes(decided.into_iter().chain(done).collect())
}

/// Steps 1–5 for one route.
async fn restore_route(ctx: Arc<Ctx>, job: Job) -> RouteReport {
    let Job { route, url, target, plan, probing } = job;
    let (app, client) = (ctx.app_guid.as_str(), &ctx.client);
    let api = |step, e: Error| Cause::Api { step, error: describe(&e) };
    let mut notes = Vec::new();
    let probing = if ctx.force { probing } else { ctx.verify.learn(&target, probing).await };

    // 1. APP's recorded destinations back, next to the maintenance app.
    let mut inserted = Vec::new();
    if !plan.insert.is_empty() {
        match client.insert_destinations(&route.guid, &plan.insert).await {
            Ok(now) => {
                inserted = now
                    .into_iter()
                    .filter(|d| d.app.guid == app && !route.destinations.iter().any(|b| b.guid == d.guid))
                    .map(|d| d.guid)
                    .collect();
            }
            Err(e) => return ctx.after_failure(url, &route.guid, api(Step::AddApp, e)).await,
        }
    }

    // 2. Only remove the maintenance app once APP answers. With --force APP may not be running:
    // there is nothing to wait for then, beyond the router taking the change.
    let probing = if ctx.force {
        ctx.verify.settle().await;
        notes.push("not verified: --force".to_owned());
        probing
    } else {
        match ctx.verify.first(&target, Want::App, probing).await {
            Ok(probing) => probing,
            Err(not) => return ctx.roll_back(url, &route.guid, &plan.record, &inserted, not).await,
        }
    };

    // 3. The maintenance app removed, unless it must stay. Decided on the
    // route as it is now: another app's record may have come or gone since the survey.
    let current = match client.get_route(&route.guid).await {
        Ok(current) => current,
        Err(e) => return ctx.after_failure(url, &route.guid, api(Step::ReadRoute, e)).await,
    };
    let maint = plan.record.maintenance_app.as_str();
    let keep = plan.record.maintenance_kept || state::labelled_apps(&current).iter().any(|a| *a != app);
    let removed: Vec<_> = if keep {
        notes.push(keep_note(&OffPlan { keep_maintenance: true, ..plan.clone() }).to_owned());
        Vec::new()
    } else {
        current.destinations.iter().filter(|d| d.app.guid == maint).collect()
    };
    // One by one, for the reason `on` removes APP's that way: a replace would re-send other apps'
    // destinations, which CC cannot always take back as stored.
    for d in &removed {
        if let Err(e) = client.delete_destination(&route.guid, &d.guid).await {
            return ctx.after_failure(url, &route.guid, api(Step::RemoveMaintenance, e)).await;
        }
    }

    // 4. The router must agree before the record goes: without it, `off` could not resume.
    if !keep && !ctx.force {
        if let Err(NotVerified { timeout_s, last }) = ctx.verify.last(&target, Want::App, CONSECUTIVE, &probing).await {
            let cause = Cause::RouterLagging { who: Who::App, timeout_s, last };
            return RouteReport::failed(url, route.guid.clone(), cause, RouteState::RecordOnly);
        }
        if !ctx.verify.probes() {
            notes.push("not verified: --no-verify".to_owned());
        }
    } else if !ctx.force {
        ctx.verify.settle().await;
    }

    // 5. Done: the record goes last.
    if let Err(e) = client.patch_route_metadata(&route.guid, &state::clear_patch(app)).await {
        return ctx.after_failure(url, &route.guid, api(Step::ClearRecord, e)).await;
    }
    let mut report = RouteReport::new(url, route.guid.clone(), Outcome::Restored, RouteState::Serving);
    if !notes.is_empty() {
        report = report.with_note(notes.join("; "));
    }
    report.destinations_added = plan.insert.iter().map(|d| DestinationView::new(d, &ctx.names)).collect();
    report.destinations_removed = removed.into_iter().map(|d| DestinationView::of(d, &ctx.names)).collect();
    if ctx.force { report } else { report.with_reach(ctx.verify.reach(&probing)) }
}

impl Ctx {
    /// A request failed (possibly after the Cloud Controller carried it out): reads the route and
    /// reports what it holds.
    async fn after_failure(&self, url: String, route_guid: &str, cause: Cause) -> RouteReport {
        let state = context::observe(&self.client, route_guid, &self.app_guid, &self.maint_guid).await;
        RouteReport::failed(url, route_guid.to_owned(), cause, state)
    }

    /// APP never answered on the route while the maintenance app still served it: takes APP's
    /// recorded destinations (those just added, and those an interrupted run left) off again, so
    /// users keep getting the maintenance page and nothing is left mixed.
    async fn roll_back(
        &self,
        url: String,
        route_guid: &str,
        record: &Record,
        inserted: &[String],
        not: NotVerified,
    ) -> RouteReport {
        let cause = Cause::NotAnswering { who: Who::App, timeout_s: not.timeout_s, last: not.last };
        let Ok(route) = self.client.get_route(route_guid).await else {
            return RouteReport::failed(url, route_guid.to_owned(), cause, RouteState::Unknown);
        };
        let app = self.app_guid.as_str();
        let take_off: Vec<&str> = route
            .destinations
            .iter()
            .filter(|d| inserted.contains(&d.guid) || record.destinations.iter().any(|s| s.is(app, d)))
            .map(|d| d.guid.as_str())
            .collect();
        // Without the maintenance app on the route, APP is all that serves it: it stays.
        if route.destinations.iter().any(|d| d.app.guid == self.maint_guid) {
            for guid in take_off {
                if let Err(e) = self.client.delete_destination(route_guid, guid).await {
                    let cause = Cause::Api { step: Step::RemoveApp, error: describe(&e) };
                    return self.after_failure(url, route_guid, cause).await;
                }
            }
        }
        self.after_failure(url, route_guid, cause).await
    }
}
