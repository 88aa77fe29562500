//! `switchctl on|off|run|status`: moving apps' routes to the maintenance app and back, verified.
//!
//! Per route, `on` writes its record first ([`state`]), adds the maintenance app, waits until it
//! answers on the route ([`probe`]), then removes APP's destinations in one replace, and checks
//! again. `off` does the reverse from the record. At every step the route has at least one
//! destination that answers, and the record on the route says how to go on: after a crash or a
//! failed request, running the same command again finishes the job. What each step does is
//! decided in [`plan`]; [`progress`] shows it as it happens and [`output`] sums it up.
//!
//! [`fleet`] picks the apps (names, a label selector, one space or all) and works on several at
//! once; [`window`] is `run`: `on`, a command and/or a restage ([`restage`]), then `off`.
//!
//! Requests per switched route: `on` 4 (metadata, insert, read, replace), `off` 4 (insert, read,
//! replace, metadata); per app, its routes (2 lists) and, for `off`, its processes and their
//! stats; per space, the apps and the maintenance app; each domain once per run.

pub mod fleet;
pub mod output;
pub mod plan;
pub mod probe;
pub mod progress;
pub mod restage;
pub mod state;
pub mod window;

mod off;
mod on;
mod status;

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet};

use self::{
    output::{Outcome, RouteReport},
    probe::{Prober, Target, Want},
    progress::Progress,
};
use crate::{
    capi::{App, AppState, Client, Domain, InstanceState, Route},
    cli::{Cli, Command, SwitchArgs},
    error::Error,
    session::{Session, Target as SpaceTarget},
};

/// Runs `on`, `off`, `run` or `status` for a connected session.
pub async fn run(session: &Session, cli: &Cli) -> Result<ExitCode, Error> {
    let skip_tls = cli.skip_ssl_validation;
    match &cli.command {
        Command::On(args) => fleet::on(session, args, cli.json, skip_tls).await,
        Command::Off(args) => fleet::off(session, args, cli.json, skip_tls).await,
        Command::Run(args) => window::run(session, args, cli.json, skip_tls).await,
        Command::Status(args) => {
            let target = session.target().await?;
            status::run(session.client(), &target, args, cli.json, skip_tls).await
        }
        // Handled before a session is opened.
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// Set once Ctrl-C or SIGTERM arrives: no new app or route is started after that; those under
/// way finish their current step so that each is left in a state the next run continues from.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Marks the run as interrupted.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was interrupted.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What every app's and route's task of a run shares.
#[derive(Debug, Clone)]
struct Env {
    client: Client,
    verify: Verify,
    progress: Progress,
    domains: Domains,
    interrupt: Interrupt,
}

impl Env {
    fn new(
        client: &Client,
        args: &SwitchArgs,
        skip_tls: bool,
        progress: Progress,
        interrupt: Interrupt,
    ) -> Result<Env, Error> {
        Ok(Env {
            client: client.clone(),
            verify: Verify {
                prober: Prober::new(args.probe_via.clone(), skip_tls)?,
                enabled: !args.no_verify,
                settle: Duration::from_secs(args.settle),
                timeout: Duration::from_secs(args.timeout),
            },
            progress,
            domains: Domains::default(),
            interrupt,
        })
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

/// Domains read so far in this run, shared by every app: a fleet on one domain reads it once.
#[derive(Debug, Clone, Default)]
struct Domains(Arc<Mutex<HashMap<String, Domain>>>);

impl Domains {
    /// The domains of `routes` (TCP routes need none: they are skipped anyway).
    async fn of(&self, client: &Client, routes: &[Route]) -> Result<HashMap<String, Domain>, Error> {
        let mut found = HashMap::new();
        for route in routes.iter().filter(|r| !r.is_tcp()) {
            let Some(guid) = route.relationships.domain.guid() else { continue };
            if found.contains_key(guid) {
                continue;
            }
            let known = self.lock().get(guid).cloned();
            let domain = match known {
                Some(domain) => domain,
                None => {
                    let domain = client.get_domain(guid).await?;
                    self.lock().insert(guid.to_owned(), domain.clone());
                    domain
                }
            };
            found.insert(guid.to_owned(), domain);
        }
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Domain>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The domain of `route`, if read.
fn domain_of<'d>(route: &Route, domains: &'d HashMap<String, Domain>) -> Option<&'d Domain> {
    route.relationships.domain.guid().and_then(|g| domains.get(g))
}

/// A unit of work (a route or an app): its name and GUID (for the report if the work itself
/// fails) and its input.
struct Work<T> {
    label: String,
    guid: String,
    input: T,
}

/// Runs `work` for every item, at most `concurrency` at a time, calling `done` with each result
/// as it completes; `lost(label, guid, why)` stands in for a task that died or, once `interrupt`
/// is set, for one that had not started.
async fn each<T, R, F, Fut>(
    items: Vec<Work<T>>,
    concurrency: u16,
    interrupt: &Interrupt,
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
        let interrupt = interrupt.clone();
        let handle = tasks.spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            if interrupt.is_set() {
                return None;
            }
            Some(future.await)
        });
        names.insert(handle.id(), (item.label, item.guid));
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        let result = match joined {
            Ok((_, Some(result))) => result,
            Ok((id, None)) => {
                let (label, guid) = names.remove(&id).unwrap_or_default();
                lost(label, guid, "not started: switchctl was interrupted (left as it was)".to_owned())
            }
            Err(e) => {
                let (label, guid) = names.remove(&e.id()).unwrap_or_default();
                lost(label, guid, format!("internal error ({e}); run `switchctl status` to see the route's state"))
            }
        };
        done(&result);
        results.push(result);
    }
    results
}

/// The report of a route whose task died or never started.
fn lost_route(url: String, route_guid: String, why: String) -> RouteReport {
    RouteReport::bare(url, route_guid, Outcome::Failed, Some(why))
}
