//! `switchctl status [APP]`: per route, where the API sends traffic, who actually answers, since
//! when it is in maintenance, and what does not add up, each problem with the command that
//! repairs it. Exit code 1 when a route has a problem or answers from the router (404, 502),
//! 0 when all is consistent.

use std::{collections::HashMap, process::ExitCode, sync::Arc};

use serde::Serialize;

use super::{
    content,
    context::{self, Domains, Work, domain_of, each},
    outcome::{Advice, DestinationView, RouteState, Verb, list},
    paths, plan,
    probe::{Answer, Instance, Prober, Target},
    reads::Reads,
    signals::Interrupt,
    state::{self, Record},
    trail::{self, LostRoute},
    window,
};
use crate::{
    capi::{App, Domain, InstanceState, Route},
    error::{EXIT_FAILURE, Error},
    output::Output,
    session::Session,
    settings::{Settings, Status},
};

/// Routes probed at once.
const PROBES_AT_ONCE: u16 = 8;

/// An app in maintenance on a route.
#[derive(Debug, Clone, Serialize)]
struct InMaintenance {
    app: String,
    app_name: Option<String>,
    since: Option<String>,
    /// What the route is in for this app.
    state: RouteState,
}

/// One route's status.
#[derive(Debug, Clone, Serialize)]
struct RouteStatus {
    url: String,
    route_guid: String,
    destinations: Vec<DestinationView>,
    /// `maintenance`, `app`, `router`, `unreachable`, or `not probed`.
    answered_by: &'static str,
    answer: String,
    maintenance: Vec<InMaintenance>,
    problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'static str>,
}

/// What `status` needs to judge a route.
struct Known<'a> {
    settings: &'a Settings,
    org: &'a str,
    space: &'a str,
    /// The maintenance apps of the pool found in the space.
    maints: &'a [App],
    names: &'a HashMap<String, String>,
    /// The app's routes that lost their record ([`trail`]), by route GUID.
    lost: &'a HashMap<String, LostRoute>,
    /// The commands about the app, when the status is of one app.
    advice: Option<&'a Advice>,
}

/// `switchctl status`.
pub async fn run(session: &Session, settings: &Arc<Settings>, out: &Output, args: &Status) -> Result<ExitCode, Error> {
    let client = session.client();
    let target = session.target().await?;
    let space = &target.space.guid;
    let mut maints = Vec::new();
    for name in &args.maintenance.names {
        maints.extend(client.find_app(space, name).await?);
    }
    if let Some(selector) = &args.maintenance.selector {
        let picked: Vec<App> = client
            .get_all("/v3/apps", &[("space_guids", space.as_str()), ("label_selector", selector.as_str())])
            .await?;
        maints
            .extend(picked.into_iter().filter(|a| !maints.iter().any(|m: &App| m.guid == a.guid)).collect::<Vec<_>>());
    }
    let mut lost = HashMap::new();
    let (app, routes) = match &args.app {
        Some(name) => {
            let app = context::require_app(client, &target, name).await?;
            let mut routes = context::app_and_labelled_routes(client, &Reads::default(), space, &app.guid).await?;
            // A route whose label was removed by hand still carries the annotation; one that lost
            // both is in the audit trail.
            for m in &maints {
                let key = state::key(&app.guid);
                for r in client.app_routes(&m.guid).await? {
                    if r.metadata.annotations.contains_key(&key) && !routes.iter().any(|x| x.guid == r.guid) {
                        routes.push(r);
                    }
                }
                let known = routes.iter().map(|r| r.guid.as_str()).collect();
                for l in trail::lost_routes(client, &app.guid, &m.guid, &known).await? {
                    routes.push(l.route.clone());
                    lost.insert(l.route.guid.clone(), l);
                }
            }
            (Some(app), routes)
        }
        None => {
            // One list of the space's routes finds every switched one and every one the
            // maintenance app is on (recorded or not), whichever app they belong to.
            let all: Vec<Route> = client.get_all("/v3/routes", &[("space_guids", space.as_str())]).await?;
            let routes = all
                .into_iter()
                .filter(|r| {
                    !state::labelled_apps(r).is_empty()
                        || r.destinations.iter().any(|d| maints.iter().any(|m| m.guid == d.app.guid))
                })
                .collect();
            (None, routes)
        }
    };
    let apps: Vec<App> = client.get_all("/v3/apps", &[("space_guids", space.as_str())]).await?;
    // Open windows (window.rs): the named app's, or every one of the space.
    let windows: Vec<App> = match &app {
        Some(a) => vec![a.clone()],
        None => apps
            .iter()
            .filter(|a| {
                a.metadata.labels.contains_key(window::WINDOW_KEY) || a.metadata.labels.contains_key(paths::PATHS_KEY)
            })
            .cloned()
            .collect(),
    };
    let names: HashMap<String, String> = apps.into_iter().map(|a| (a.guid, a.name)).collect();
    let domains = Domains::default().of(client, &routes).await?;
    let prober = match &args.probe {
        None => None,
        Some(via) => Some(Prober::new(via.clone(), settings.skip_ssl_validation)?),
    };
    let answers = match &prober {
        None => HashMap::new(),
        Some(prober) => probe_all(&routes, &domains, prober.clone()).await,
    };

    let advice = app.as_ref().map(|a| {
        let pool = match maints.as_slice() {
            [] => args.maintenance.describe(),
            found => found.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        };
        context::advice(settings, (&a.name, &a.guid), (&target.org.name, &target.space.name), &pool)
    });
    let known = Known {
        settings,
        org: &target.org.name,
        space: &target.space.name,
        maints: &maints,
        names: &names,
        lost: &lost,
        advice: advice.as_ref(),
    };
    let mut statuses: Vec<RouteStatus> =
        routes.iter().map(|r| route_status(r, domain_of(r, &domains), &known, answers.get(&r.guid))).collect();
    statuses.sort_by(|a, b| a.url.cmp(&b.url));

    let scope = match &app {
        Some(a) => format!("app {}'s routes", a.name),
        None => "routes in maintenance".to_owned(),
    };
    out.line(&format!("Status of {scope} in org {} / space {}:", target.org.name, target.space.name));
    if statuses.is_empty() {
        out.line(
            match &app {
                Some(a) => format!("App {} has no route.", a.name),
                None => "No route is in maintenance.".to_owned(),
            }
            .as_str(),
        );
    }
    for s in &statuses {
        print_route(out, s);
    }
    for a in &windows {
        window::show(client, out, a).await?;
        paths::show(out, a);
    }
    let stale = match &app {
        Some(a) => {
            let carried = ContentOf { app: a, routes: &routes, domains: &domains, names: &names };
            show_content(client, out, &carried, prober.as_ref()).await?
        }
        None => 0,
    };
    let problems: usize = statuses.iter().map(|s| s.problems.len()).sum();
    let ok = problems == 0 && stale == 0;
    out.event("summary", serde_json::json!({"action": "status", "app": app.as_ref().map(|a| &a.name), "ok": ok}));
    if ok {
        return Ok(ExitCode::SUCCESS);
    }
    if problems == 0 {
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    out.error(&format!(
        "{} on {} (see PROBLEM above, each with the command that repairs it)",
        crate::output::plural(problems, "problem"),
        crate::output::plural(statuses.iter().filter(|s| !s.problems.is_empty()).count(), "route")
    ));
    Ok(ExitCode::from(EXIT_FAILURE))
}

/// APP's routes, for [`show_content`].
struct ContentOf<'a> {
    app: &'a App,
    routes: &'a [Route],
    domains: &'a HashMap<String, Domain>,
    names: &'a HashMap<String, String>,
}

/// What `--message`/`message` gave APP's users, per maintenance app carrying its routes (each
/// route's record names it): the version in that app's environment, which an instance starts
/// with, and, when probing, the version each running instance serves on one of APP's routes
/// (`X-Maintenance-Version`, the instance asked for by name), those behind marked stale with the
/// command that brings them up to date; how many are stale (status exits 1 then). One
/// environment read per maintenance app, one stats read and a request per instance when probing.
async fn show_content(
    client: &crate::capi::Client,
    out: &Output,
    of: &ContentOf<'_>,
    prober: Option<&Prober>,
) -> Result<usize, Error> {
    let mut stale_instances = 0;
    let mut carriers: Vec<(String, Target)> = Vec::new();
    for r in of.routes {
        let Ok(Some(record)) = Record::read(r, &of.app.guid) else { continue };
        let domain = domain_of(r, of.domains);
        let target = plan::target(r, domain);
        if plan::skip_reason(r, domain).is_some() || target.fqdn.starts_with('*') {
            continue;
        }
        if !carriers.iter().any(|(m, _)| *m == record.maintenance_app) {
            carriers.push((record.maintenance_app.clone(), target));
        }
    }
    for (maint, check) in carriers {
        let vars = client.app_environment_variables(&maint).await?;
        let Some(version) = content::held_version(&vars, &of.app.guid) else { continue };
        let name = of.names.get(&maint).cloned().unwrap_or_else(|| maint.clone());
        let mut served = Vec::new();
        if let Some(prober) = prober {
            let stats = client.web_stats(&maint).await?.unwrap_or_default();
            for s in stats.iter().filter(|s| s.state == InstanceState::Running) {
                let instance = Instance { app_guid: maint.clone(), index: s.index };
                served.push((s.index, content::served_version(prober, &check, &instance).await));
            }
        }
        let stale = served.iter().filter(|(_, v)| v.as_ref().is_ok_and(|v| *v < version)).count();
        stale_instances += stale;
        let each: Vec<String> = served
            .iter()
            .map(|(i, v)| match v {
                Ok(v) if *v < version => format!("instance {i} serves version {v} (stale)"),
                Ok(v) => format!("instance {i} serves version {v}"),
                Err(why) => format!("instance {i}: not known ({why})"),
            })
            .collect();
        let mut line = format!("content for {}: version {version} in {name}'s environment", of.app.name);
        if !each.is_empty() {
            line = format!("{line}; {}", each.join(", "));
        }
        if stale == 0 {
            out.line(&line);
        } else {
            // Each instance starts from the environment, which holds the current version; a rolling
            // restart replaces them one at a time (no downtime with 2 or more instances).
            out.error(&format!(
                "{line}: run `cf restart {} --strategy rolling` to bring the stale instances up to date",
                crate::settings::quote(&name)
            ));
        }
        let instances: Vec<serde_json::Value> = served
            .iter()
            .map(|(i, v)| match v {
                Ok(v) => serde_json::json!({"index": i, "version": v, "stale": *v < version}),
                Err(why) => serde_json::json!({"index": i, "unknown": why}),
            })
            .collect();
        out.event(
            "content",
            serde_json::json!({"app": of.app.name, "maintenance_app": name, "version": version, "instances": instances}),
        );
    }
    Ok(stale_instances)
}

/// One probe per route, in parallel: what users get right now.
async fn probe_all(routes: &[Route], domains: &HashMap<String, Domain>, prober: Prober) -> HashMap<String, Answer> {
    let prober = Arc::new(prober);
    let work: Vec<Work<_>> = routes
        .iter()
        .filter(|r| plan::skip_reason(r, domain_of(r, domains)).is_none())
        // A route-policy domain refuses probes from outside: "not probed", not a false problem.
        .filter(|r| plan::probing(domain_of(r, domains), None).preflight())
        .map(|r| Work {
            label: String::new(),
            guid: r.guid.clone(),
            input: (r.guid.clone(), plan::target(r, domain_of(r, domains))),
        })
        .collect();
    let answers = each(
        work,
        PROBES_AT_ONCE,
        &Interrupt::default(),
        |(guid, t)| {
            let prober = Arc::clone(&prober);
            async move { (guid, prober.probe(&t).await) }
        },
        |_, guid, lost| (guid, Answer::Error(format!("{lost:?}"))),
        |_| {},
    )
    .await;
    answers.into_iter().collect()
}

fn print_route(out: &Output, s: &RouteStatus) {
    out.event("route", serde_json::json!({"action": "status", "route": s}));
    out.line("");
    out.line(&format!("{} ({})", s.url, s.route_guid));
    if let Some(skipped) = s.skipped {
        out.line(&format!("  not switchable: {skipped}"));
    }
    out.line(&format!("  destinations:  {}", list(&s.destinations)));
    out.line(&format!("  answered by:   {}", s.answer));
    let maintenance = if s.maintenance.is_empty() {
        "no".to_owned()
    } else {
        s.maintenance
            .iter()
            .map(|m| {
                format!(
                    "{} since {}",
                    m.app_name.as_deref().unwrap_or(&m.app),
                    m.since.as_deref().unwrap_or("(unknown)")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.line(&format!("  maintenance:   {maintenance}"));
    for p in &s.problems {
        out.line(&format!("  PROBLEM:       {p}"));
    }
}

/// The switched apps on `route`, and what does not add up about each one's record.
fn record_problems(route: &Route, k: &Known<'_>) -> (Vec<InMaintenance>, Vec<String>) {
    let name = |g: &str| k.names.get(g).cloned().unwrap_or_else(|| g.to_owned());
    let command = |verb: &str, app: &str| format!("`{}`", k.settings.command(verb, k.org, k.space, &[app]));
    let mut problems = Vec::new();
    let mut maintenance = Vec::new();
    let maint_guid = k.maints.first().map(|m| m.guid.as_str());
    for app in state::labelled_apps(route) {
        let record = Record::read(route, app);
        let since = match &record {
            Ok(Some(r)) => Some(r.since.clone()),
            Ok(None) => None,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let m = record.ok().flatten().map(|r| r.maintenance_app).or_else(|| maint_guid.map(str::to_owned));
        let state = plan::state_of(route, app, m.as_deref().unwrap_or_default());
        let n = name(app);
        match state {
            RouteState::BothServe => problems.push(format!(
                "{n} and the maintenance app both serve the route (an unfinished switch): {} finishes it, {} undoes it",
                command("on", &n),
                command("off", &n)
            )),
            RouteState::RecordOnly => problems.push(format!(
                "the route carries {n}'s switchctl record but the maintenance app is not mapped: {} finishes the \
                 switch, {} removes the record",
                command("on", &n),
                command("off", &n)
            )),
            RouteState::Unserved => problems.push(format!(
                "neither {n} nor the maintenance app is mapped (the route answers 404): {} puts back {n}'s recorded \
                 destinations",
                command("off", &n)
            )),
            _ => {}
        }
        if !route.metadata.labels.contains_key(&state::key(app))
            && route.metadata.annotations.contains_key(&state::key(app))
        {
            problems.push(format!(
                "the route carries {n}'s switchctl record but its label was removed: {} restores it from the record",
                command("off", &n)
            ));
        }
        maintenance.push(InMaintenance { app: app.to_owned(), app_name: k.names.get(app).cloned(), since, state });
    }
    (maintenance, problems)
}

/// A maintenance destination on `route` that no switchctl record explains, with its repair.
fn unrecorded_problem(route: &Route, domain: Option<&Domain>, k: &Known<'_>) -> Option<String> {
    if let (Some(l), Some(advice)) = (k.lost.get(&route.guid), k.advice) {
        return Some(l.report(String::new()).failure(Verb::Off, advice));
    }
    let (m, d) =
        route.destinations.iter().find_map(|d| k.maints.iter().find(|m| m.guid == d.app.guid).map(|m| (m, d)))?;
    let others = route.destinations.iter().any(|x| x.app.guid != m.guid);
    let delete = format!("`cf curl -X DELETE /v3/routes/{}/destinations/{}`", route.guid, d.guid);
    Some(if others {
        format!("{} is mapped with no switchctl record (mapped by hand?); {delete} removes it", m.name)
    } else {
        format!(
            "only {} serves the route and no switchctl record says for which app: map the app that should serve it \
             (`cf map-route APP {}`), then {delete}",
            m.name,
            map_route_args(route, domain)
        )
    })
}

fn route_status(route: &Route, domain: Option<&Domain>, k: &Known<'_>, answer: Option<&Answer>) -> RouteStatus {
    let (maintenance, mut problems) = record_problems(route, k);
    if maintenance.is_empty()
        && let Some(problem) = unrecorded_problem(route, domain, k)
    {
        problems.push(problem);
    }
    let (answered_by, answer_text) = match answer {
        None => ("not probed", "not probed".to_owned()),
        Some(a) => {
            let by = match a {
                Answer::Maintenance(_) => "maintenance",
                Answer::App(_) => "app",
                Answer::Router(_) => "router",
                Answer::Error(_) => "unreachable",
            };
            (by, a.to_string())
        }
    };
    match answer {
        Some(Answer::Router(status)) => problems.push(format!(
            "the router answers {status} itself: no destination of the route answers (`cf app NAME` for each \
             destination above shows whether it runs)"
        )),
        Some(Answer::Error(_)) => problems.push(
            "the probe reached nobody, so who answers is unknown: give a router address with --probe-via HOST:PORT, \
             or --no-probe for the API's view only"
                .to_owned(),
        ),
        _ => {}
    }
    RouteStatus {
        url: plan::url(route, domain),
        route_guid: route.guid.clone(),
        destinations: route.destinations.iter().map(|d| DestinationView::of(d, k.names)).collect(),
        answered_by,
        answer: answer_text,
        maintenance,
        problems,
        skipped: plan::skip_reason(route, domain),
    }
}

/// `DOMAIN --hostname HOST --path PATH` for `cf map-route`.
fn map_route_args(route: &Route, domain: Option<&Domain>) -> String {
    let mut args = domain.map_or_else(|| plan::target(route, None).fqdn, |d| d.name.clone());
    if !route.host.is_empty() {
        args.push_str(&format!(" --hostname {}", route.host));
    }
    if !route.path.is_empty() {
        args.push_str(&format!(" --path {}", route.path));
    }
    args
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn a_route_the_router_answers_itself_is_a_problem() {
        let settings = Settings::from_cli(&crate::Cli::parse_from(["switchctl", "status", "shop"]));
        let route: Route = serde_json::from_value(serde_json::json!({
            "guid": "r1", "protocol": "http", "host": "shop", "path": "", "url": "shop.example.com",
            "destinations": [], "metadata": {"labels": {}, "annotations": {}}
        }))
        .expect("route");
        let names = HashMap::new();
        let lost = HashMap::new();
        let known =
            Known { settings: &settings, org: "o", space: "s", maints: &[], names: &names, lost: &lost, advice: None };
        let status = route_status(&route, None, &known, Some(&Answer::Router(404)));
        assert_eq!(status.answered_by, "router");
        assert!(status.problems.iter().any(|p| p.contains("answers 404")), "{:?}", status.problems);
        assert!(route_status(&route, None, &known, Some(&Answer::App(200))).problems.is_empty());
    }
}
