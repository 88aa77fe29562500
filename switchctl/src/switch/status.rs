//! `switchctl status [APP]`: per route, where the API sends traffic, who actually answers, since
//! when it is in maintenance, and what does not add up.

use std::{collections::HashMap, process::ExitCode, sync::Arc};

use serde::Serialize;

use super::{
    Domains, Interrupt, Work, app_and_labelled_routes, domain_of, each,
    output::{self, Out},
    plan::{self, DestinationView},
    probe::{Answer, Prober},
    require_app,
    state::{self, Record},
};
use crate::{
    capi::{App, Client, Route},
    cli::StatusArgs,
    error::Error,
    session::Target as SpaceTarget,
};

/// An app in maintenance on a route.
#[derive(Debug, Clone, Serialize)]
struct InMaintenance {
    app: String,
    app_name: Option<String>,
    since: Option<String>,
}

/// One route's status.
#[derive(Debug, Clone, Serialize)]
struct RouteStatus {
    url: String,
    route_guid: String,
    destinations: Vec<DestinationView>,
    /// `maintenance`, `app`, `router`, `error`, or `not probed`.
    answered_by: &'static str,
    answer: String,
    maintenance: Vec<InMaintenance>,
    problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    skipped: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    app: Option<String>,
    action: &'static str,
    routes: Vec<RouteStatus>,
    ok: bool,
}

pub(super) async fn run(
    client: &Client,
    target: &SpaceTarget,
    args: &StatusArgs,
    json: bool,
    skip_tls: bool,
) -> Result<ExitCode, Error> {
    let space = &target.space.guid;
    let maint = client.find_app(space, &args.maintenance_app).await?;
    let (app, routes) = match &args.app {
        Some(name) => {
            let app = require_app(client, target, name).await?;
            let routes = app_and_labelled_routes(client, space, &app.guid).await?;
            (Some(app), routes)
        }
        None => {
            // One list of the space's routes finds every labelled one and every one the
            // maintenance app is on (labelled or not), whichever app they belong to.
            let all: Vec<Route> = client.get_all("/v3/routes", &[("space_guids", space.as_str())]).await?;
            let m = maint.as_ref().map(|m| m.guid.as_str());
            let routes = all
                .into_iter()
                .filter(|r| {
                    !state::labelled_apps(r).is_empty() || r.destinations.iter().any(|d| Some(d.app.guid.as_str()) == m)
                })
                .collect();
            (None, routes)
        }
    };
    let apps: Vec<App> = client.get_all("/v3/apps", &[("space_guids", space.as_str())]).await?;
    let names: HashMap<String, String> = apps.into_iter().map(|a| (a.guid, a.name)).collect();
    let domains = Domains::default().of(client, &routes).await?;

    // One probe per route, in parallel: what users get right now.
    let answers: HashMap<String, Answer> = if args.no_probe {
        HashMap::new()
    } else {
        let prober = Arc::new(Prober::new(args.probe_via.clone(), skip_tls)?);
        let work: Vec<Work<_>> = routes
            .iter()
            .filter(|r| plan::skip_reason(r, domain_of(r, &domains)).is_none())
            .map(|r| Work {
                label: String::new(),
                guid: r.guid.clone(),
                input: (r.guid.clone(), plan::target(r, domain_of(r, &domains))),
            })
            .collect();
        let answers = each(
            work,
            8,
            &Interrupt::default(),
            |(guid, t)| {
                let prober = Arc::clone(&prober);
                async move { (guid, prober.probe(&t).await) }
            },
            |_, guid, why| (guid, Answer::Error(why)),
            |_| {},
        )
        .await;
        answers.into_iter().collect()
    };

    let m_guid = maint.as_ref().map(|m| m.guid.clone());
    let mut statuses: Vec<RouteStatus> = routes
        .iter()
        .map(|r| route_status(r, domain_of(r, &domains), m_guid.as_deref(), &names, answers.get(&r.guid)))
        .collect();
    statuses.sort_by(|a, b| a.url.cmp(&b.url));

    let mut out = Out::new(json);
    let scope = match &app {
        Some(a) => format!("app {}'s routes", a.name),
        None => "routes in maintenance".to_owned(),
    };
    out.line(&format!("Status of {scope} in org {} / space {}:", target.org.name, target.space.name));
    if statuses.is_empty() {
        out.line("No routes.");
    }
    for s in &statuses {
        out.line("");
        out.line(&s.url);
        if let Some(skipped) = s.skipped {
            out.line(&format!("  not switchable: {skipped}"));
        }
        out.line(&format!("  destinations:  {}", output::list(&s.destinations)));
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
    let ok = statuses.iter().all(|s| s.problems.is_empty());
    let report = StatusReport { app: app.map(|a| a.name), action: "status", routes: statuses, ok };
    out.document(&report);
    out.finish()?;
    Ok(ExitCode::SUCCESS)
}

fn route_status(
    route: &Route,
    domain: Option<&crate::capi::Domain>,
    maint: Option<&str>,
    names: &HashMap<String, String>,
    answer: Option<&Answer>,
) -> RouteStatus {
    let name = |g: &str| names.get(g).cloned().unwrap_or_else(|| g.to_owned());
    let mut problems = Vec::new();
    let mut maintenance = Vec::new();
    let labelled: Vec<&str> = state::labelled_apps(route);
    for app in &labelled {
        let record = Record::read(route, app);
        let since = match &record {
            Ok(Some(r)) => Some(r.since.clone()),
            Ok(None) => None,
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        maintenance.push(InMaintenance { app: (*app).to_owned(), app_name: names.get(*app).cloned(), since });
        let n = name(app);
        if route.destinations.iter().any(|d| d.app.guid == *app) {
            problems.push(format!(
                "labelled for {n} but {n} is still mapped (an unfinished switch: `switchctl on {n}` finishes it, \
                 `switchctl off {n}` undoes it)"
            ));
        }
        let m = record.ok().flatten().map(|r| r.maintenance_app).or_else(|| maint.map(str::to_owned));
        if m.is_none_or(|m| !route.destinations.iter().any(|d| d.app.guid == m)) {
            problems.push(format!(
                "labelled for {n} but the maintenance app's destination is missing (`switchctl on {n}` finishes the \
                 switch, `switchctl off {n}` undoes it)"
            ));
        }
    }
    if labelled.is_empty() && maint.is_some_and(|m| route.destinations.iter().any(|d| d.app.guid == m)) {
        problems.push(
            "the maintenance app is mapped but no switchctl label says for which app (mapped by hand? `cf \
             unmap-route` removes it)"
                .to_owned(),
        );
    }
    let (answered_by, answer_text) = match answer {
        None => ("not probed", "not probed".to_owned()),
        Some(a) => {
            let by = match a {
                Answer::Maintenance(_) => "maintenance",
                Answer::App(_) => "app",
                Answer::Router(_) => "router",
                Answer::Error(_) => "error",
            };
            (by, a.to_string())
        }
    };
    RouteStatus {
        url: plan::url(route, domain),
        route_guid: route.guid.clone(),
        destinations: route.destinations.iter().map(|d| DestinationView::of(d, names)).collect(),
        answered_by,
        answer: answer_text,
        maintenance,
        problems,
        skipped: plan::skip_reason(route, domain),
    }
}
