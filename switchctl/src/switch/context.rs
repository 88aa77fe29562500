//! What every app's and route's task of a run shares ([`Env`]), how changes are verified
//! ([`Verify`]), and the small tools the commands have in common: running work items a few at a
//! time ([`each`]), finding an app's routes, reading domains once, checking an app serves.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet};

use super::{
    capacity::Spread,
    outcome::{Advice, Reach, RouteState, Through, Verb},
    plan::{self, Probing},
    probe::{Answer, CONSECUTIVE, Instance, Prober, Target, Want},
    reads::Reads,
    signals::Interrupt,
    state::{self, DefaultPort},
};
use crate::{
    capi::{App, AppState, BoundService, Client, Domain, InstanceState, ProcessStats, Route},
    error::Error,
    output::Output,
    session::Target as SpaceTarget,
    settings::{Settings, Switch, Verification},
};

/// What every app's and route's task of a run shares (cheap to clone).
#[derive(Debug, Clone)]
pub struct Env {
    /// The Cloud Controller.
    pub client: Client,
    /// How changes are verified.
    pub verify: Verify,
    /// Where everything is printed.
    pub out: Output,
    /// Domains read so far.
    pub domains: Domains,
    /// The maintenance apps' routes, read once.
    pub maintenance_routes: MaintenanceRoutes,
    /// Which maintenance app of a pool each new route goes to.
    pub spread: Spread,
    /// Reads asked for many apps at once.
    pub reads: Reads,
    /// Set when a signal arrived in the current phase.
    pub interrupt: Interrupt,
    /// The invocation's settings (for the commands printed).
    pub settings: Arc<Settings>,
    /// The running web instances of the apps read so far (for probes that name an instance).
    pub running: Running,
}

impl Env {
    /// The environment of a switch with `switch`'s settings.
    pub fn new(
        client: &Client,
        settings: &Arc<Settings>,
        switch: &Switch,
        out: &Output,
        interrupt: Interrupt,
    ) -> Result<Env, Error> {
        let via = match &switch.verify {
            Verification::Probe { via, .. } => via.clone(),
            Verification::Settle(_) => None,
        };
        Ok(Env {
            client: client.clone(),
            verify: Verify { prober: Prober::new(via, settings.skip_ssl_validation)?, mode: switch.verify.clone() },
            out: out.clone(),
            domains: Domains::default(),
            maintenance_routes: MaintenanceRoutes::default(),
            spread: Spread::default(),
            reads: Reads::default(),
            interrupt,
            settings: Arc::clone(settings),
            running: Running::default(),
        })
    }

    /// The commands to print about `app` in `target`.
    pub fn advice(&self, app: &App, target: &SpaceTarget, maintenance_app: &str) -> Advice {
        advice(&self.settings, (&app.name, &app.guid), (&target.org.name, &target.space.name), maintenance_app)
    }
}

/// The commands to print about an app (name, GUID) in (org, space).
pub fn advice(settings: &Settings, app: (&str, &str), space: (&str, &str), maintenance_app: &str) -> Advice {
    let command = |verb: &str| settings.command(verb, space.0, space.1, &[app.0]);
    Advice {
        app: app.0.to_owned(),
        app_guid: app.1.to_owned(),
        maintenance_app: maintenance_app.to_owned(),
        on: command(Verb::On.as_str()),
        off: command(Verb::Off.as_str()),
        status: command("status"),
    }
}

/// What CC stores for a destination of `app` created without a port: a buildpack app's 8080 is
/// stored as such; a Docker or CNB app's -1 shows as its image's first exposed TCP port, else 8080
/// (`RouteMappingModel#presented_port`). One request for a Docker or CNB app, none otherwise.
pub async fn default_port(client: &Client, app: &App) -> Result<DefaultPort, Error> {
    /// `ProcessModel::DEFAULT_HTTP_PORT`.
    const DEFAULT_HTTP_PORT: u32 = 8080;
    if app.lifecycle.as_ref().is_none_or(|l| l.kind == "buildpack") {
        return Ok(DefaultPort::Stored);
    }
    let droplet = client.current_droplet(&app.guid).await?;
    let first = droplet.and_then(|d| d.docker_ports().first().copied());
    Ok(DefaultPort::Presented(first.unwrap_or(DEFAULT_HTTP_PORT)))
}

/// How changes are verified.
#[derive(Debug, Clone)]
pub struct Verify {
    /// Sends the probes.
    pub prober: Prober,
    /// Probe, or wait a fixed time.
    pub mode: Verification,
}

/// Why a verification gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotVerified {
    /// For how long it waited.
    pub timeout_s: u64,
    /// The last answer seen.
    pub last: String,
}

impl Verify {
    /// Whether routes are probed (not `--no-verify`).
    pub fn probes(&self) -> bool {
        self.mode.probes()
    }

    /// Waits until `consecutive` answers on `target` are `want` (or, unverified, the settle time).
    pub async fn after_change(&self, target: &Target, want: Want, consecutive: u32) -> Result<(), NotVerified> {
        match &self.mode {
            Verification::Settle(settle) => {
                tokio::time::sleep(*settle).await;
                Ok(())
            }
            Verification::Probe { timeout, .. } => {
                self.prober.wait(target, want, consecutive, *timeout).await.map_err(|last| NotVerified {
                    timeout_s: timeout.as_secs(),
                    last: last.map_or_else(|| "none".to_owned(), |a| a.to_string()),
                })
            }
        }
    }

    /// Waits until `want`'s app is on the route on every router (or, unverified, the settle
    /// time): [`CONSECUTIVE`] answers in a row from `instance`, one connection each (see
    /// [`probe`](super::probe)'s model). Without a known instance, one plain answer of `want`,
    /// which proves it for one router only.
    pub async fn present(&self, target: &Target, want: Want, instance: Option<&Instance>) -> Result<(), NotVerified> {
        let (Verification::Probe { timeout, .. }, Some(instance)) = (&self.mode, instance) else {
            return self.after_change(target, want, 1).await;
        };
        self.prober.wait_pinned(target, instance, want, CONSECUTIVE, *timeout).await.map_err(|last| NotVerified {
            timeout_s: timeout.as_secs(),
            last: last.map_or_else(|| "none".to_owned(), |a| a.to_string()),
        })
    }

    /// The settle time of `--no-verify` (nothing when probing).
    pub async fn settle(&self) {
        if let Verification::Settle(settle) = &self.mode {
            tokio::time::sleep(*settle).await;
        }
    }

    /// One probe of `target`; `None` when routes are not probed.
    pub async fn probe_once(&self, target: &Target) -> Option<Answer> {
        if self.probes() { Some(self.prober.probe(target).await) } else { None }
    }

    /// `--settle`, probing or not.
    fn settle_time(&self) -> Duration {
        match &self.mode {
            Verification::Probe { settle, .. } | Verification::Settle(settle) => *settle,
        }
    }

    /// The first check after adding the new side of a route reached as `probing` (see
    /// [`Probing`]): what is now known of the route. `Err` only for a route that can be verified
    /// and was not: the caller takes the change back.
    /// A route probed directly is checked on every router through `instance` ([`Verify::present`]).
    pub async fn first(
        &self,
        target: &Target,
        want: Want,
        probing: Probing,
        instance: Option<&Instance>,
    ) -> Result<Probing, NotVerified> {
        match probing {
            Probing::Direct => self.present(target, want, instance).await.map(|()| probing),
            // A route service forwards what it passes on; whether it keeps the instance header is
            // up to it, so one marked answer is what can be asked of it.
            Probing::PassingOn(_) => self.after_change(target, want, 1).await.map(|()| probing),
            // Only the maintenance app's marker tells a service that passes requests on from one
            // that answers itself; `off` learns it before its change ([`Verify::learn`]).
            Probing::RouteService(service) if self.probes() && want == Want::Maintenance => {
                let window = self.settle_time().max(THROUGH_SERVICE_MIN);
                match self.prober.wait(target, want, 1, window).await {
                    Ok(()) => Ok(Probing::PassingOn(service)),
                    Err(last) => Ok(Probing::AnsweringItself {
                        service,
                        last: last.map_or_else(|| "no answer".to_owned(), |a| a.to_string()),
                    }),
                }
            }
            other => {
                tokio::time::sleep(self.settle_time()).await;
                Ok(other)
            }
        }
    }

    /// For `off`, before its change: one probe of a route bound to a route service that only the
    /// maintenance app serves. A marked answer came through the service, so it passes requests on.
    pub async fn learn(&self, target: &Target, probing: Probing) -> Probing {
        let Probing::RouteService(service) = probing else { return probing };
        match self.probe_once(target).await {
            Some(Answer::Maintenance(_)) => Probing::PassingOn(service),
            Some(answer) => Probing::AnsweringItself { service, last: answer.to_string() },
            None => Probing::RouteService(service),
        }
    }

    /// The final check that only `want` answers: `consecutive` answers for a route that can be
    /// verified, `--settle` for one that cannot.
    pub async fn last(
        &self,
        target: &Target,
        want: Want,
        consecutive: u32,
        probing: &Probing,
    ) -> Result<(), NotVerified> {
        match probing {
            Probing::Direct | Probing::PassingOn(_) => self.after_change(target, want, consecutive).await,
            _ => {
                tokio::time::sleep(self.settle_time()).await;
                Ok(())
            }
        }
    }

    /// The final check that only `want` answers, for a route whose removed side is known by one
    /// running instance: [`CONSECUTIVE`] pinned answers in a row that no router holds `removed`
    /// any more, one connection each, then one plain answer of `want` (see
    /// [`probe`](super::probe)'s model: exact per router, where [`last`](Self::last) catches a
    /// lagging router only in its share of requests). Without an instance, or for a route not
    /// probed directly, as [`last`](Self::last).
    pub async fn gone(
        &self,
        target: &Target,
        want: Want,
        probing: &Probing,
        removed: Option<&Instance>,
    ) -> Result<(), NotVerified> {
        let (Verification::Probe { timeout, .. }, Probing::Direct, Some(removed)) = (&self.mode, probing, removed)
        else {
            return self.last(target, want, CONSECUTIVE, probing).await;
        };
        let not_verified = |last: Option<Answer>| NotVerified {
            timeout_s: timeout.as_secs(),
            last: last.map_or_else(|| "none".to_owned(), |a| a.to_string()),
        };
        let started = tokio::time::Instant::now();
        self.prober.wait_pinned(target, removed, Want::Absent, CONSECUTIVE, *timeout).await.map_err(not_verified)?;
        let left = timeout.saturating_sub(started.elapsed());
        self.prober.wait(target, want, 1, left).await.map_err(not_verified)
    }

    /// What the report says about a route reached as `probing` (`None`: probed as usual).
    pub fn reach(&self, probing: &Probing) -> Option<Reach> {
        let settle_s = self.settle_time().as_secs();
        match probing {
            Probing::Direct => None,
            Probing::RouteService(service) => Some(Reach::RouteService {
                service: service.clone(),
                through: if self.probes() { Through::Planned } else { Through::NotProbed },
            }),
            Probing::PassingOn(service) => {
                Some(Reach::RouteService { service: service.clone(), through: Through::PassedOn })
            }
            Probing::AnsweringItself { service, last } => Some(Reach::RouteService {
                service: service.clone(),
                through: Through::AnsweredItself { last: last.clone(), settle_s },
            }),
            Probing::Never { domain, scope } => {
                Some(Reach::RoutePolicies { domain: domain.clone(), scope: scope.clone(), settle_s })
            }
        }
    }
}

/// The shortest time a route bound to a route service is probed for the maintenance app's marker
/// (`--settle` when longer): enough for a router that takes changes within a second.
const THROUGH_SERVICE_MIN: Duration = Duration::from_secs(1);

/// The route services `routes` are bound to, by route GUID; TCP and internal routes are left out
/// (CC refuses route services on internal routes, and neither passes the HTTP router).
pub async fn route_services(
    client: &Client,
    reads: &Reads,
    routes: &[Route],
    domains: &HashMap<String, Domain>,
) -> Result<HashMap<String, BoundService>, Error> {
    let guids: Vec<&str> = routes
        .iter()
        .filter(|r| plan::skip_reason(r, domain_of(r, domains)).is_none())
        .map(|r| r.guid.as_str())
        .collect();
    if guids.is_empty() {
        return Ok(HashMap::new());
    }
    reads.route_services(client, &guids).await
}

/// The RUNNING web instances of apps, by app GUID, as read from their process stats by the
/// checks before a switch; shared by every task of a run, so that naming an instance in probes
/// costs no request of its own.
#[derive(Debug, Clone, Default)]
pub struct Running(Arc<Mutex<HashMap<String, Vec<u32>>>>);

impl Running {
    /// Notes `app_guid`'s running web instance indexes.
    pub fn record(&self, app_guid: &str, indexes: Vec<u32>) {
        self.lock().insert(app_guid.to_owned(), indexes);
    }

    /// The instance of `app_guid` probes name: its lowest running web instance, if known.
    pub fn instance(&self, app_guid: &str) -> Option<Instance> {
        let index = self.lock().get(app_guid).and_then(|i| i.iter().min().copied())?;
        Some(Instance { app_guid: app_guid.to_owned(), index })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u32>>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What `route_guid` is in for `app` with `maint` as the maintenance app, read from the Cloud
/// Controller (after a failed request, which it may have carried out all the same).
pub async fn observe(client: &Client, route_guid: &str, app: &str, maint: &str) -> RouteState {
    match client.get_route(route_guid).await {
        Ok(route) => plan::state_of(&route, app, maint),
        Err(_) => RouteState::Unknown,
    }
}

/// A write failed: reads the route again and tells whether the Cloud Controller holds the change
/// all the same (`made`). A Diego error raised after the commit (503 `CF-RunnerUnavailable`, 500
/// `CF-RunnerError`, see [`super::outcome::Recovered`]) or an answer lost on the way back leaves
/// the change made; the record is the plan, the Cloud Controller is the truth. A route that
/// cannot be read counts as not changed: the caller then reports what it can observe.
pub async fn landed(client: &Client, route_guid: &str, made: impl Fn(&Route) -> bool) -> bool {
    client.get_route(route_guid).await.is_ok_and(|route| made(&route))
}

/// Stops a run between routes when the Cloud Controller's rate limit holds requests back longer
/// than `--max-wait`: a route whose switch has begun finishes (its requests are
/// [`Client::patient`]), no new one starts, and the report says how to finish.
#[derive(Debug, Clone)]
pub struct Hold {
    interrupt: Interrupt,
    max_wait: Duration,
    out: Output,
}

impl Hold {
    /// The hold of `env`'s run.
    pub fn of(env: &Env) -> Hold {
        Hold { interrupt: env.interrupt.clone(), max_wait: env.settings.max_wait, out: env.out.clone() }
    }

    /// Whether a route may start now: not once the run was interrupted, nor while the rate limit
    /// holds requests back beyond `--max-wait` (which stops the run, said once).
    pub fn may_start(&self, client: &Client) -> bool {
        if self.interrupt.is_set() {
            return false;
        }
        match client.waited_beyond_max_wait() {
            Some(wait) => {
                self.interrupt.set_rate_limited();
                self.out.notice(&format!(
                    "the Cloud Controller's rate limit asked for a wait of {}s, beyond --max-wait {}s: no new route \
                     is started; the routes under way finish",
                    wait.as_secs_f32().ceil(),
                    self.max_wait.as_secs()
                ));
                false
            }
            None => true,
        }
    }
}

/// The reports of a route not started because the rate limit stopped the run ([`Hold`]): as it was
/// found, for each of `apps`.
pub fn not_started<'a>(
    route: &Route,
    url: &str,
    maint: &str,
    apps: impl Iterator<Item = &'a str>,
) -> Vec<(String, super::outcome::RouteReport)> {
    apps.map(|a| {
        let state = plan::state_of(route, a, maint);
        let report = super::outcome::RouteReport::failed(
            url.to_owned(),
            route.guid.clone(),
            super::outcome::Cause::RateLimited,
            state,
        );
        (a.to_owned(), report)
    })
    .collect()
}

/// The routes of the maintenance apps, listed once per run: `off` finds among them the routes
/// whose switchctl label was removed by hand (their annotation still says whose they are).
#[derive(Debug, Clone, Default)]
pub struct MaintenanceRoutes(Arc<tokio::sync::Mutex<HashMap<String, Arc<Vec<Route>>>>>);

impl MaintenanceRoutes {
    /// The routes `maint_guid` has a destination on (as listed the first time it was asked).
    pub async fn of(&self, client: &Client, maint_guid: &str) -> Result<Arc<Vec<Route>>, Error> {
        // One listing per maintenance app, even when a fleet's apps ask at once.
        let mut known = self.0.lock().await;
        if let Some(routes) = known.get(maint_guid) {
            return Ok(Arc::clone(routes));
        }
        let routes = Arc::new(client.app_routes(maint_guid).await?);
        known.insert(maint_guid.to_owned(), Arc::clone(&routes));
        Ok(routes)
    }
}

/// The app named `name` in the target space, or the error for a missing one.
pub async fn require_app(client: &Client, target: &SpaceTarget, name: &str) -> Result<App, Error> {
    client.find_app(&target.space.guid, name).await?.ok_or_else(|| Error::AppNotFound {
        name: name.to_owned(),
        org: target.org.name.clone(),
        space: target.space.name.clone(),
    })
}

/// Why an app cannot serve traffic, with the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotServing {
    /// What is wrong.
    pub why: String,
    /// The cf command that fixes it.
    pub fix: String,
}

/// Whether `app` can serve traffic: STARTED, with a `web` process that has an instance that is
/// RUNNING and routable. A RUNNING instance whose readiness health check fails is reported
/// `routable: false` and gets no traffic from the router (CC `instances_stats_reporter.rb`
/// `build_info`); one that says nothing (`routable` null: the actual LRP has no `optional_routable`)
/// counts as routable, as Diego's BBS starts an LRP whose rep sent no `routable` as routable (bbs
/// `handlers/actual_lrp_lifecycle_handler.go` `StartActualLRP`). STOPPING, STARTING, CRASHED and DOWN
/// instances never serve.
pub async fn running_web(client: &Client, app: &App) -> Result<Result<Vec<u32>, NotServing>, Error> {
    let start = || format!("cf start {}", crate::settings::quote(&app.name));
    if app.state != AppState::Started {
        let state = if app.state == AppState::Stopped { "STOPPED" } else { "not STARTED" };
        return Ok(Err(NotServing { why: format!("it is {state}"), fix: start() }));
    }
    let Some(stats) = client.web_stats(&app.guid).await? else {
        return Ok(Err(NotServing {
            why: "it has no web process".to_owned(),
            fix: format!("cf push {}", crate::settings::quote(&app.name)),
        }));
    };
    // CC reports exactly the desired instances: those Diego reports past `process.instances` are
    // left out, and a DOWN stub stands in for each one it does not report
    // (`lib/cloud_controller/diego/reporters/instances_stats_reporter.rb`, `instance_is_desired?`
    // and `reporter_mixins.rb#fill_unreported_instances_with_down_instances`): no entry at all
    // means no instance is desired.
    if stats.is_empty() {
        return Ok(Err(NotServing {
            why: "its web process is scaled to 0 instances".to_owned(),
            fix: format!("cf scale {} -i 1", crate::settings::quote(&app.name)),
        }));
    }
    let running: Vec<u32> = stats.iter().filter(|s| serves(s)).map(|s| s.index).collect();
    if !running.is_empty() {
        return Ok(Ok(running));
    }
    let unready = stats.iter().filter(|s| s.state == InstanceState::Running).count();
    if unready > 0 {
        return Ok(Err(NotServing {
            why: format!(
                "{unready} of its {} web instances {} RUNNING but not ready (routable: false: the readiness health \
                 check fails), so the router sends {} nothing",
                stats.len(),
                if unready == 1 { "is" } else { "are" },
                if unready == 1 { "it" } else { "them" }
            ),
            fix: format!("cf logs {} --recent", crate::settings::quote(&app.name)),
        }));
    }
    let states: Vec<String> = stats.iter().map(|s| format!("{:?}", s.state).to_uppercase()).collect();
    Ok(Err(NotServing {
        why: format!(
            "none of its {} web instances is RUNNING ({})",
            stats.len(),
            if states.is_empty() { "no instance reported".to_owned() } else { states.join(", ") }
        ),
        fix: format!("cf restart {}", crate::settings::quote(&app.name)),
    }))
}

/// Whether an instance gets traffic: RUNNING, and routable or silent about it.
pub fn serves(stats: &ProcessStats) -> bool {
    stats.state == InstanceState::Running && stats.routable != Some(false)
}

/// APP's routes: those it has a destination on, plus those carrying its label (a route switched
/// before a crash has lost APP's destinations but kept the label).
pub async fn app_and_labelled_routes(
    client: &Client,
    reads: &Reads,
    space_guid: &str,
    app_guid: &str,
) -> Result<Vec<Route>, Error> {
    let key = state::key(app_guid);
    let (mapped, labelled) = tokio::join!(reads.mapped(client, app_guid), client.routes_by_label(space_guid, &key));
    let mut routes = mapped?;
    let mut seen: HashSet<String> = routes.iter().map(|r| r.guid.clone()).collect();
    routes.extend(labelled?.into_iter().filter(|r| seen.insert(r.guid.clone())));
    Ok(routes)
}

/// Domains read so far in this run, shared by every app: a fleet on one domain reads it once. The
/// lock is held across the read, so apps asking for the same domain at once wait for one request
/// instead of each sending their own (a 50-app fleet read the shared domain 5 to 8 times).
#[derive(Debug, Clone, Default)]
pub struct Domains(Arc<tokio::sync::Mutex<HashMap<String, Domain>>>);

impl Domains {
    /// The domains of `routes` (TCP routes need none: they are skipped anyway).
    pub async fn of(&self, client: &Client, routes: &[Route]) -> Result<HashMap<String, Domain>, Error> {
        let mut found = HashMap::new();
        for route in routes.iter().filter(|r| !r.is_tcp()) {
            let Some(guid) = route.relationships.domain.guid() else { continue };
            if found.contains_key(guid) {
                continue;
            }
            let mut known = self.0.lock().await;
            let domain = match known.get(guid) {
                Some(domain) => domain.clone(),
                None => {
                    let domain = client.get_domain(guid).await?;
                    known.insert(guid.to_owned(), domain.clone());
                    domain
                }
            };
            found.insert(guid.to_owned(), domain);
        }
        Ok(found)
    }
}

/// The domain of `route`, if read.
pub fn domain_of<'d>(route: &Route, domains: &'d HashMap<String, Domain>) -> Option<&'d Domain> {
    route.relationships.domain.guid().and_then(|g| domains.get(g))
}

/// A unit of work (a route or an app): its name and GUID (for the report if the work itself
/// fails) and its input.
#[derive(Debug)]
pub struct Work<T> {
    /// Its name in reports.
    pub label: String,
    /// Its GUID.
    pub guid: String,
    /// What the work needs.
    pub input: T,
}

/// Why a work item has no result of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Not started: a signal arrived first.
    Interrupted,
    /// Not started: the rate limit held requests back beyond `--max-wait`.
    RateLimited,
    /// Its task died (a panic).
    Died(String),
}

/// Runs `work` for every item, at most `concurrency` at a time, calling `done` with each result
/// as it completes; `lost(label, guid, why)` stands in for a task that died or, once `interrupt`
/// is set, for one that had not started.
pub async fn each<T, R, F, Fut>(
    items: Vec<Work<T>>,
    concurrency: u16,
    interrupt: &Interrupt,
    work: F,
    lost: impl Fn(String, String, Lost) -> R,
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
                lost(label, guid, if interrupt.rate_limited() { Lost::RateLimited } else { Lost::Interrupted })
            }
            Err(e) => {
                let (label, guid) = names.remove(&e.id()).unwrap_or_default();
                lost(label, guid, Lost::Died(e.to_string()))
            }
        };
        done(&result);
        results.push(result);
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(state: &str, routable: serde_json::Value) -> ProcessStats {
        serde_json::from_value(serde_json::json!({ "type": "web", "index": 0, "state": state, "routable": routable }))
            .expect("stats parse")
    }

    #[test]
    fn only_running_instances_the_router_would_use_serve() {
        assert!(serves(&instance("RUNNING", serde_json::json!(true))));
        // No `routable` in the stats: BBS treats an LRP started without one as routable.
        assert!(serves(&instance("RUNNING", serde_json::Value::Null)));
        assert!(!serves(&instance("RUNNING", serde_json::json!(false))), "readiness failing");
        assert!(!serves(&instance("STOPPING", serde_json::json!(true))), "stopping, whatever routable says");
        assert!(!serves(&instance("STARTING", serde_json::json!(false))));
        assert!(!serves(&instance("DOWN", serde_json::Value::Null)));
    }
}
