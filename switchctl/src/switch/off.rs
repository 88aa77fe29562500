//! `switchctl off APP`: APP's switched routes back to APP, from the record on each route.

use std::{collections::HashMap, sync::Arc};

use super::{
    Env, Verify, Work, domain_of, each,
    fleet::Member,
    lost_route,
    output::{self, Outcome, Report, RouteReport},
    plan::{self, DestinationView, OffPlan},
    probe::{CONSECUTIVE, Target, Want},
    running_web, state,
};
use crate::{
    capi::{Client, Route},
    cli::OffArgs,
    error::Error,
};

/// What every route's task needs.
struct Ctx {
    client: Client,
    verify: Verify,
    force: bool,
    app_guid: String,
    app_name: String,
    names: HashMap<String, String>,
}

/// One route to restore.
struct Job {
    route: Route,
    url: String,
    target: Target,
    plan: OffPlan,
}

/// Restores one app of a fleet; never fails as a whole: what went wrong is in the report.
pub(super) async fn restore_app(env: Env, member: Member, args: Arc<OffArgs>) -> Report {
    let Member { app, target, maint, label } = member;
    let (org, space) = (target.org.name.clone(), target.space.name.clone());
    let sw = &args.switch;
    let client = &env.client;
    let progress = &env.progress;
    let new_report = || Report::new(&app, &target, "off", sw.dry_run);
    let failed = |e: String| new_report().failed(e);
    progress.phase(&label, "restoring", None, false);
    // The maintenance app is only read for its name in the report; `off` works without it.
    let mut names: HashMap<String, String> = [(app.guid.clone(), app.name.clone())].into_iter().collect();
    if let Some(m) = &maint {
        names.insert(m.guid.clone(), m.name.clone());
    }
    let mut routes = match client.routes_by_label(&target.space.guid, &state::key(&app.guid)).await {
        Ok(routes) => routes,
        Err(e) => return failed(crate::error::describe(&e)),
    };
    let report = |routes: Vec<RouteReport>| new_report().with_routes(routes);
    if routes.is_empty() {
        if !progress.fleet() {
            progress.line(&format!("No route of app {} is in maintenance; nothing to do.", app.name));
        }
        return report(Vec::new());
    }
    if !args.force {
        match running_web(client, &app).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                return failed(
                    Error::NotRunning {
                        role: "app",
                        name: app.name.clone(),
                        why,
                        fix: format!(
                            "start it (`cf start {}`) and wait until an instance is running, or pass --force to                              give it its routes anyway; nothing was changed",
                            app.name
                        ),
                    }
                    .to_string(),
                );
            }
            Err(e) => return failed(crate::error::describe(&e)),
        }
    }
    let domains = match env.domains.of(client, &routes).await {
        Ok(domains) => domains,
        Err(e) => return failed(crate::error::describe(&e)),
    };
    routes.sort_by_cached_key(|r| plan::url(r, domain_of(r, &domains)));
    progress.routes_total(&label, routes.len());
    if !progress.fleet() {
        let verb = if sw.dry_run { "Planning the restore of" } else { "Restoring" };
        progress.line(&format!("{verb} app {}'s routes from maintenance in org {org} / space {space}...", app.name));
    }
    let maint_name = maint.as_ref().map_or("the maintenance app", |m| m.name.as_str()).to_owned();
    let print = |r: &RouteReport| {
        progress.route(&label, "off", r, &output::route_line("off", r, &app.name, &maint_name, sw.dry_run));
    };

    let mut reports = Vec::new();
    let mut jobs = Vec::new();
    for route in routes {
        let domain = domain_of(&route, &domains);
        let url = plan::url(&route, domain);
        let r = match plan::plan_off(&route, &app.guid) {
            Err(reason) => RouteReport::bare(url, route.guid.clone(), Outcome::Failed, Some(reason)),
            // The label went away between the list and now: someone restored it.
            Ok(None) => RouteReport::bare(url, route.guid.clone(), Outcome::Already, None),
            Ok(Some(plan)) if sw.dry_run => {
                let mut r = RouteReport::bare(url, route.guid.clone(), Outcome::Restored, None);
                r.destinations_added = plan.insert.iter().map(|d| DestinationView::new(d, &names)).collect();
                r.destinations_removed = plan.remove.iter().map(|d| DestinationView::of(d, &names)).collect();
                let key = state::key(&app.guid);
                r.metadata = Some(serde_json::json!({"labels": {&key: null}, "annotations": {&key: null}}));
                if plan.keep_maintenance {
                    r.reason = Some("another app on this route is still in maintenance".to_owned());
                }
                r
            }
            Ok(Some(plan)) => {
                let target = plan::target(&route, domain);
                let guid = route.guid.clone();
                jobs.push(Work { label: url.clone(), guid, input: Job { route, url, target, plan } });
                continue;
            }
        };
        print(&r);
        reports.push(r);
    }

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        verify: env.verify.clone(),
        force: args.force,
        app_guid: app.guid.clone(),
        app_name: app.name.clone(),
        names,
    });
    let done =
        each(jobs, sw.concurrency, &env.interrupt, |job| restore_route(Arc::clone(&ctx), job), lost_route, print).await;
    reports.extend(done);
    reports.sort_by(|a, b| a.url.cmp(&b.url));
    report(reports)
}

/// Steps 2–6 for one route.
async fn restore_route(ctx: Arc<Ctx>, job: Job) -> RouteReport {
    let Job { route, url, target, plan } = job;
    let (app, client, name) = (ctx.app_guid.as_str(), &ctx.client, ctx.app_name.as_str());
    let again = format!("run `switchctl off {name}` again");
    let failed = |why: String| RouteReport::bare(url.clone(), route.guid.clone(), Outcome::Failed, Some(why));
    let mut notes = Vec::new();

    // 2. APP's recorded destinations back, next to the maintenance app.
    if !plan.insert.is_empty()
        && let Err(e) = client.insert_destinations(&route.guid, &plan.insert).await
    {
        return failed(format!("{e}; the route still sends to the maintenance app (not changed)"));
    }
    let both = format!("both {name} and the maintenance app serve the route");

    // 3. Only remove the maintenance app once APP answers. With --force APP may not be running:
    // there is nothing to wait for then, beyond the router taking the change.
    if ctx.force {
        tokio::time::sleep(ctx.verify.settle).await;
        notes.push("not verified: --force".to_owned());
    } else if let Err(why) = ctx.verify.after_change(&target, Want::App, 1).await {
        return failed(format!(
            "{why}; {both}: {again} once {name} answers, or `switchctl on {name}` to go back to maintenance"
        ));
    }

    // 4. One replace: everything but the maintenance app, unless another app is still switched here.
    let current = match client.route_destinations(&route.guid).await {
        Ok(current) => current,
        Err(e) => return failed(format!("{e}; {both}: {again}")),
    };
    let maint = plan.record.maintenance_app.as_str();
    let removed: Vec<_> = if plan.keep_maintenance {
        notes.push("kept the maintenance app: another app on this route is still in maintenance".to_owned());
        Vec::new()
    } else {
        current.iter().filter(|d| d.app.guid == maint).collect()
    };
    if !removed.is_empty() {
        let keep = plan::keep_all_but(&current, |d| d.app.guid == maint);
        if let Err(e) = client.replace_destinations(&route.guid, &keep).await {
            return failed(format!("{e}; {both}: {again}"));
        }
    }

    // 5. The router must agree before the record goes: without it, `off` could not resume.
    if !plan.keep_maintenance && !ctx.force {
        if let Err(why) = ctx.verify.after_change(&target, Want::App, CONSECUTIVE).await {
            return failed(format!(
                "{why}; the API shows the route restored but the router still sends some requests to the \
                 maintenance app: {again} to check again (`switchctl status {name}` shows who answers)"
            ));
        }
    } else if !ctx.verify.enabled && !ctx.force {
        tokio::time::sleep(ctx.verify.settle).await;
    }

    // 6. Done: the record goes last.
    if let Err(e) = client.patch_route_metadata(&route.guid, &state::clear_patch(app)).await {
        return failed(format!("{e}; the route is restored but still carries switchctl's label: {again} to remove it"));
    }
    let mut report = RouteReport::bare(
        url.clone(),
        route.guid.clone(),
        Outcome::Restored,
        if notes.is_empty() { None } else { Some(notes.join("; ")) },
    );
    report.destinations_added = plan.insert.iter().map(|d| DestinationView::new(d, &ctx.names)).collect();
    report.destinations_removed = removed.into_iter().map(|d| DestinationView::of(d, &ctx.names)).collect();
    report
}
