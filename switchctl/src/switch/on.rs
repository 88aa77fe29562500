//! `switchctl on APP`: every HTTP route of APP to the maintenance app.

use std::{collections::HashMap, sync::Arc};

use super::{
    Env, Verify, Work, app_and_labelled_routes, domain_of, each,
    fleet::Member,
    lost_route,
    output::{self, Outcome, Report, RouteReport},
    plan::{self, DestinationView, OnPlan},
    probe::{CONSECUTIVE, Target, Want},
    state,
};
use crate::{
    capi::{Client, Destination, NewDestination, Route},
    cli::SwitchArgs,
};

/// What every route's task needs.
struct Ctx {
    client: Client,
    verify: Verify,
    app_guid: String,
    app_name: String,
    maint_guid: String,
    names: HashMap<String, String>,
}

/// One route to switch.
struct Job {
    route: Route,
    url: String,
    target: Target,
    record: Option<String>,
    insert_maintenance: bool,
}

/// Switches one app of a fleet (its space's maintenance app was checked before); never fails as a
/// whole: what went wrong is in the report.
pub(super) async fn switch_app(env: Env, member: Member, args: Arc<SwitchArgs>) -> Report {
    let Member { app, target, maint, label } = member;
    let (org, space) = (target.org.name.clone(), target.space.name.clone());
    let report = Report::new(&app, &target, "on", args.dry_run);
    let Some(maint) = maint else {
        return report.failed(format!("no maintenance app {:?} in space {space}", args.maintenance_app));
    };
    let client = &env.client;
    let progress = &env.progress;
    progress.phase(&label, "switching", None, false);
    let routes = app_and_labelled_routes(client, &target.space.guid, &app.guid).await;
    let (mut routes, domains) = match routes {
        Ok(routes) => match env.domains.of(client, &routes).await {
            Ok(domains) => (routes, domains),
            Err(e) => return report.failed(crate::error::describe(&e)),
        },
        Err(e) => return report.failed(crate::error::describe(&e)),
    };
    routes.sort_by_cached_key(|r| plan::url(r, domain_of(r, &domains)));
    progress.routes_total(&label, routes.len());

    let names: HashMap<String, String> =
        [(app.guid.clone(), app.name.clone()), (maint.guid.clone(), maint.name.clone())].into_iter().collect();
    if !progress.fleet() {
        let verb = if args.dry_run { "Planning the switch of" } else { "Switching" };
        progress.line(&format!("{verb} app {}'s routes to {} in org {org} / space {space}...", app.name, maint.name));
    }

    let since = state::now_rfc3339();
    let mut reports = Vec::new();
    let mut jobs = Vec::new();
    let print = |r: &RouteReport| {
        progress.route(&label, "on", r, &output::route_line("on", r, &app.name, &maint.name, args.dry_run));
    };
    for route in routes {
        let domain = domain_of(&route, &domains);
        let url = plan::url(&route, domain);
        let report =
            |result, reason: Option<String>| RouteReport::bare(url.clone(), route.guid.clone(), result, reason);
        if let Some(reason) = plan::skip_reason(&route, domain) {
            let r = report(Outcome::Skipped, Some(reason.to_owned()));
            print(&r);
            reports.push(r);
            continue;
        }
        let r = match plan::plan_on(&route, (&app.guid, &app.name), &maint.guid, &since) {
            Err(reason) => report(Outcome::Failed, Some(reason)),
            Ok(OnPlan::Already) => report(Outcome::Already, None),
            Ok(OnPlan::NotMapped) => {
                report(Outcome::Skipped, Some(format!("{} has no destination on it (any more)", app.name)))
            }
            Ok(OnPlan::Switch { record, insert_maintenance, remove }) if args.dry_run => {
                let mut r = report(Outcome::Switched, None);
                r.destinations_removed = remove.iter().map(|d| DestinationView::of(d, &names)).collect();
                if insert_maintenance {
                    r.destinations_added = vec![DestinationView::new(&NewDestination::to_app(&maint.guid), &names)];
                }
                let key = state::key(&app.guid);
                r.metadata = record
                    .map(|text| serde_json::json!({"labels": {&key: state::LABEL_VALUE}, "annotations": {&key: text}}));
                r
            }
            Ok(OnPlan::Switch { record, insert_maintenance, .. }) => {
                let target = plan::target(&route, domain);
                let job = Job { url: url.clone(), target, record, insert_maintenance, route: route.clone() };
                jobs.push(Work { label: url, guid: route.guid.clone(), input: job });
                continue;
            }
        };
        print(&r);
        reports.push(r);
    }

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        verify: env.verify.clone(),
        app_guid: app.guid.clone(),
        app_name: app.name.clone(),
        maint_guid: maint.guid.clone(),
        names,
    });
    let done =
        each(jobs, args.concurrency, &env.interrupt, |job| switch_route(Arc::clone(&ctx), job), lost_route, print)
            .await;
    reports.extend(done);
    reports.sort_by(|a, b| a.url.cmp(&b.url));
    report.with_routes(reports)
}

/// Steps 2–6 for one route; never returns before the route is in a state `on` or `off` can
/// continue from, and says which.
async fn switch_route(ctx: Arc<Ctx>, job: Job) -> RouteReport {
    let Job { route, url, target, record, insert_maintenance } = job;
    let (app, maint, client) = (ctx.app_guid.as_str(), ctx.maint_guid.as_str(), &ctx.client);
    let again = format!("run `switchctl on {}` again", ctx.app_name);
    let failed = |why: String| RouteReport::bare(url.clone(), route.guid.clone(), Outcome::Failed, Some(why));

    // 2. The record first: from here on, whatever happens, the route can be found and restored.
    let wrote_record = record.is_some();
    if let Some(record) = record
        && let Err(e) = client.patch_route_metadata(&route.guid, &state::set_patch(app, record)).await
    {
        return failed(format!("{e}; the route was not changed"));
    }

    // 3. Add the maintenance app next to APP.
    let mut added = Vec::new();
    if insert_maintenance {
        let new = NewDestination::to_app(maint);
        if let Err(e) = client.insert_destinations(&route.guid, std::slice::from_ref(&new)).await {
            // Nothing but the record changed: take it back so the route is as before.
            let state = if wrote_record
                && client.patch_route_metadata(&route.guid, &state::clear_patch(app)).await.is_ok()
            {
                "the route was not changed".to_owned()
            } else {
                format!(
                    "{} still serves the route; it carries switchctl's label (harmless: {again} or `switchctl off {}` \
                     to remove it)",
                    ctx.app_name, ctx.app_name
                )
            };
            return failed(format!("{e}; {state}"));
        }
        added.push(DestinationView::new(&new, &ctx.names));
    }

    // 4. Only remove APP once the maintenance app answers on the route.
    if let Err(why) = ctx.verify.after_change(&target, Want::Maintenance, 1).await {
        return failed(format!(
            "{why}; the maintenance app is mapped to the route but does not answer there yet, and {} still serves \
             it (nothing removed): {again} once it answers, or `switchctl off {}` to undo",
            ctx.app_name, ctx.app_name
        ));
    }

    // 5. One replace: everything but APP's destinations, re-sent unchanged so CAPI keeps them.
    let both = format!("both {} and the maintenance app serve the route: {again}", ctx.app_name);
    let current = match client.route_destinations(&route.guid).await {
        Ok(current) => current,
        Err(e) => return failed(format!("{e}; {both}")),
    };
    if !current.iter().any(|d| d.app.guid == maint) {
        return failed(format!(
            "the maintenance app's destination vanished from the route meanwhile (changed by someone else?); {} \
             still serves it: {again}",
            ctx.app_name
        ));
    }
    let removed: Vec<&Destination> = current.iter().filter(|d| d.app.guid == app).collect();
    if !removed.is_empty() {
        let keep = plan::keep_all_but(&current, |d| d.app.guid == app);
        if let Err(e) = client.replace_destinations(&route.guid, &keep).await {
            return failed(format!("{e}; {both}"));
        }
    }

    // 6. The router must agree. Other apps on a shared route keep answering without the marker,
    // so there only the maintenance app's presence (step 4) can be checked.
    let others: Vec<&Destination> = current.iter().filter(|d| d.app.guid != app && d.app.guid != maint).collect();
    let mut note = None;
    if others.is_empty() {
        if let Err(why) = ctx.verify.after_change(&target, Want::Maintenance, CONSECUTIVE).await {
            return failed(format!(
                "{why}; the API shows the route switched but the router still sends some requests elsewhere: \
                 `switchctl status {}` shows who answers, {again} to check again",
                ctx.app_name
            ));
        }
    } else {
        note = Some("other apps on this route keep serving it".to_owned());
        if !ctx.verify.enabled {
            tokio::time::sleep(ctx.verify.settle).await;
        }
    }
    let mut report = RouteReport::bare(url.clone(), route.guid.clone(), Outcome::Switched, note);
    report.destinations_removed = removed.into_iter().map(|d| DestinationView::of(d, &ctx.names)).collect();
    report.destinations_added = added;
    report
}
