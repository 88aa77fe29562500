//! `switchctl on|off|status`: moving an app's routes to the maintenance app and back, verified.
//!
//! Per route, `on` writes its record first ([`state`]), adds the maintenance app, waits until it
//! answers on the route ([`probe`]), then removes APP's destinations in one replace, and checks
//! again. `off` does the reverse from the record. At every step the route has at least one
//! destination that answers, and the record on the route says how to go on: after a crash or a
//! failed request, running the same command again finishes the job. What each step does is
//! decided in [`plan`]; [`output`] prints it.
//!
//! Requests per switched route: `on` 4 (metadata, insert, read, replace), `off` 4 (insert, read,
//! replace, metadata); the app, the maintenance app, their processes and the domains are read once
//! per run.

pub mod output;
pub mod plan;
pub mod probe;
pub mod state;

mod off;
mod on;
mod status;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet};

use self::{
    output::{Outcome, RouteReport},
    probe::{Prober, Target, Want},
};
use crate::{
    capi::{App, AppState, Client, Domain, InstanceState, Route},
    cli::{Cli, Command},
    error::Error,
    session::{Session, Target as SpaceTarget},
};

/// Runs `on`, `off` or `status` for a connected session in its target space.
pub async fn run(session: &Session, target: &SpaceTarget, cli: &Cli) -> Result<ExitCode, Error> {
    let skip_tls = cli.skip_ssl_validation;
    match &cli.command {
        Command::On(args) => on::run(session.client(), target, args, cli.json, skip_tls).await,
        Command::Off(args) => off::run(session.client(), target, args, cli.json, skip_tls).await,
        Command::Status(args) => status::run(session.client(), target, args, cli.json, skip_tls).await,
        // Handled before a session is opened.
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// How changes are verified.
#[derive(Debug, Clone)]
struct Verify {
    prober: Prober,
    /// `false` with `--no-verify`: wait `settle` instead of probing.
    enabled: bool,
    settle: Duration,
    timeout: Duration,
}

impl Verify {
    /// Waits until `consecutive` answers on `target` are `want` (or, unverified, the settle time).
    async fn after_change(&self, target: &Target, want: Want, consecutive: u32) -> Result<(), String> {
        if !self.enabled {
            tokio::time::sleep(self.settle).await;
            return Ok(());
        }
        self.prober.wait(target, want, consecutive, self.timeout).await
    }
}

/// The app named `name` in the target space, or the error for a missing one.
async fn require_app(client: &Client, target: &SpaceTarget, name: &str) -> Result<App, Error> {
    client.find_app(&target.space.guid, name).await?.ok_or_else(|| Error::AppNotFound {
        name: name.to_owned(),
        org: target.org.name.clone(),
        space: target.space.name.clone(),
    })
}

/// Whether `app` can serve traffic: STARTED, with a `web` process that has a RUNNING instance.
/// `Err` says what is wrong.
async fn running_web(client: &Client, app: &App) -> Result<Result<(), String>, Error> {
    if app.state != AppState::Started {
        let state = if app.state == AppState::Stopped { "STOPPED" } else { "not STARTED" };
        return Ok(Err(format!("it is {state}")));
    }
    let processes = client.app_processes(&app.guid).await?;
    let Some(web) = processes.iter().find(|p| p.kind == "web") else {
        return Ok(Err("it has no web process".to_owned()));
    };
    if web.instances == 0 {
        return Ok(Err("its web process is scaled to 0 instances".to_owned()));
    }
    let stats = client.process_stats(&web.guid).await?;
    if stats.iter().any(|s| s.state == InstanceState::Running) {
        return Ok(Ok(()));
    }
    let states: Vec<String> = stats.iter().map(|s| format!("{:?}", s.state).to_uppercase()).collect();
    Ok(Err(format!(
        "none of its {} web instances is RUNNING ({})",
        web.instances,
        if states.is_empty() { "no instance reported".to_owned() } else { states.join(", ") }
    )))
}

/// APP's routes: those it has a destination on, plus those carrying its label (a route switched
/// before a crash has lost APP's destinations but kept the label).
async fn app_and_labelled_routes(client: &Client, space_guid: &str, app_guid: &str) -> Result<Vec<Route>, Error> {
    let key = state::key(app_guid);
    let (mapped, labelled) = tokio::join!(client.app_routes(app_guid), client.routes_by_label(space_guid, &key));
    let mut routes = mapped?;
    let mut seen: HashSet<String> = routes.iter().map(|r| r.guid.clone()).collect();
    routes.extend(labelled?.into_iter().filter(|r| seen.insert(r.guid.clone())));
    Ok(routes)
}

/// The domains of `routes`, each read once (TCP routes need none: they are skipped anyway).
async fn domains(client: &Client, routes: &[Route]) -> Result<HashMap<String, Domain>, Error> {
    let mut domains = HashMap::new();
    for route in routes.iter().filter(|r| !r.is_tcp()) {
        if let Some(guid) = route.relationships.domain.guid()
            && !domains.contains_key(guid)
        {
            domains.insert(guid.to_owned(), client.get_domain(guid).await?);
        }
    }
    Ok(domains)
}

/// The domain of `route`, if read.
fn domain_of<'d>(route: &Route, domains: &'d HashMap<String, Domain>) -> Option<&'d Domain> {
    route.relationships.domain.guid().and_then(|g| domains.get(g))
}

/// A unit of per-route work: the route's URL and GUID (for the report if the work itself fails)
/// and its input.
struct Work<T> {
    url: String,
    route_guid: String,
    input: T,
}

/// Runs `work` for every item, at most `concurrency` at a time, calling `done` with each result
/// as it completes; `lost(url, route_guid, why)` stands in for a task that died.
async fn each_route<T, R, F, Fut>(
    items: Vec<Work<T>>,
    concurrency: u16,
    work: F,
    lost: impl Fn(String, String, String) -> R,
    mut done: impl FnMut(&R),
) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(usize::from(concurrency.max(1))));
    let mut tasks = JoinSet::new();
    let mut names = HashMap::new();
    for item in items {
        let permits = Arc::clone(&permits);
        let future = work(item.input);
        let handle = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            future.await
        });
        names.insert(handle.id(), (item.url, item.route_guid));
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        let result = match joined {
            Ok((_, result)) => result,
            Err(e) => {
                let (url, guid) = names.remove(&e.id()).unwrap_or_default();
                lost(url, guid, format!("internal error ({e}); run `switchctl status` to see the route's state"))
            }
        };
        done(&result);
        results.push(result);
    }
    results
}

/// The report of a route whose task died.
fn lost_route(url: String, route_guid: String, why: String) -> RouteReport {
    RouteReport::bare(url, route_guid, Outcome::Failed, Some(why))
}
