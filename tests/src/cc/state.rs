//! The Cloud Controller double's in-memory model: orgs, spaces, domains, apps, processes, routes
//! with their destinations, packages, builds, droplets, deployments, jobs and space roles. Every
//! change of what the gorouter should serve is also sent as a [`RouteEvent`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use crate::{clock::now_iso, metadata::Metadata};

/// A new v4 GUID.
pub fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// An organization.
#[derive(Debug, Clone)]
pub struct Org {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Suspended orgs refuse writes with 403 CF-OrgSuspended.
    pub suspended: bool,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

/// A space.
#[derive(Debug, Clone)]
pub struct Space {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Owning org.
    pub org_guid: String,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

/// A domain: shared (no org), private (an org) , internal, or TCP (has a router group).
#[derive(Debug, Clone)]
pub struct Domain {
    /// GUID.
    pub guid: String,
    /// DNS name.
    pub name: String,
    /// `apps.internal`-style domain (container networking, not the gorouter).
    pub internal: bool,
    /// Router group GUID for TCP domains.
    pub router_group: Option<String>,
    /// Owning org of a private domain; `None` for shared domains.
    pub org_guid: Option<String>,
    /// `route_policies_scope` (`any`, `org`, `space`) of a domain created with
    /// `enforce_route_policies: true` (CC 3.228, `db/migrations/20260421074454_…` and
    /// `app/messages/domain_create_message.rb`: the scope is required when enforcing); `None` for
    /// a domain that does not enforce route policies. Immutable once created.
    pub route_policies_scope: Option<String>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

impl Domain {
    /// `tcp` for domains with a router group, else `http`.
    pub fn protocol(&self) -> &'static str {
        if self.router_group.is_some() { "tcp" } else { "http" }
    }
}

/// Desired state of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppState {
    /// `STARTED`.
    Started,
    /// `STOPPED`.
    Stopped,
}

impl AppState {
    /// As CC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::Started => "STARTED",
            AppState::Stopped => "STOPPED",
        }
    }
}

/// An app.
#[derive(Debug, Clone)]
pub struct App {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Space it lives in.
    pub space_guid: String,
    /// Desired state.
    pub state: AppState,
    /// Current droplet, if staged.
    pub droplet_guid: Option<String>,
    /// Buildpack, Docker or CNB.
    pub lifecycle: Lifecycle,
    /// When it was last started (instances report STARTING until the startup time has passed).
    pub started_at: Option<Instant>,
    /// When it was last stopped (its instances report STOPPING until the stopping time has passed).
    pub stopped_at: Option<Instant>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
    /// The user-provided environment variables (`app.environment_variables`, set by
    /// `PATCH /v3/apps/:guid/environment_variables`). Only instances started after a change see
    /// it: Diego runs each actual LRP with the environment of the desired LRP it was started from
    /// (cloud_controller_ng `lib/cloud_controller/diego/app_recipe_builder.rb` builds the desired
    /// LRP's `environment_variables` when the process is desired or restarted). Sorted by key; CC
    /// keeps a JSON hash in insertion order.
    pub environment_variables: std::collections::BTreeMap<String, String>,
}

/// State of one process instance, as `GET /v3/processes/:guid/stats` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Serving.
    Running,
    /// Starting up (not routable yet).
    Starting,
    /// Crashed.
    Crashed,
    /// Stopping.
    Stopping,
    /// Not running (stopped app, or not reported).
    Down,
}

impl InstanceState {
    /// As CC spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Running => "RUNNING",
            InstanceState::Starting => "STARTING",
            InstanceState::Crashed => "CRASHED",
            InstanceState::Stopping => "STOPPING",
            InstanceState::Down => "DOWN",
        }
    }
}

/// A process of an app (`web`, `worker`, …).
#[derive(Debug, Clone)]
pub struct Process {
    /// GUID.
    pub guid: String,
    /// App it belongs to.
    pub app_guid: String,
    /// Process type.
    pub process_type: String,
    /// Desired instance count.
    pub instances: u32,
    /// Start command.
    pub command: Option<String>,
    /// States forced by a test; `None` derives them from the app's state.
    pub forced_states: Option<Vec<InstanceState>>,
    /// How many RUNNING instances (the lowest indices) fail their readiness health check: Diego
    /// keeps them RUNNING but sets the actual LRP's `routable` to false, the route emitter does not
    /// register them, and CC reports `routable: false` (cloud_controller_ng
    /// `lib/cloud_controller/diego/reporters/instances_stats_reporter.rb` `build_info`:
    /// `info[:routable] = (actual_lrp.routable if actual_lrp.optional_routable)`).
    pub unready: u32,
    /// The ports Diego opens (`process.ports`, not in the v3 presenter): the explicit ports of the
    /// process's destinations, `[8080]` for a buildpack app with none, `None` for a Docker app
    /// with none (then the image's ports apply). Kept as `UpdateRouteDestinations#update_processes`
    /// keeps it.
    pub ports: Option<Vec<u16>>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

/// How an app is built and run (`lifecycle.type`). Only buildpack apps get port 8080 stored for a
/// destination created without a port; Docker and CNB apps get -1, "no port specified"
/// (cloud_controller_ng `app/actions/update_route_destinations.rb`, `default_port`, which asks
/// `app.buildpack?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// Staged by buildpacks.
    #[default]
    Buildpack,
    /// A Docker image.
    Docker,
    /// Cloud Native Buildpacks.
    Cnb,
}

impl Lifecycle {
    /// `buildpack`, `docker` or `cnb`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Buildpack => "buildpack",
            Lifecycle::Docker => "docker",
            Lifecycle::Cnb => "cnb",
        }
    }
}

/// CC's `ProcessModel::DEFAULT_HTTP_PORT` (`app/models/runtime/process_model.rb`).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// A route destination (a route mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// GUID.
    pub guid: String,
    /// App GUID.
    pub app_guid: String,
    /// Process type (default `web`).
    pub process_type: String,
    /// The stored `app_port`: `None` is CC's -1 (`NO_APP_PORT_SPECIFIED`), what a Docker or CNB
    /// app's destination created without a port holds; it is *presented* as the droplet's first
    /// exposed port ([`State::presented_port`]).
    pub port: Option<u16>,
    /// `http1`, `http2` or `tcp`.
    pub protocol: String,
    /// Deprecated weight; normally `None`.
    pub weight: Option<u32>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
}

impl Destination {
    /// Whether two destinations are the same mapping for `replace` (CC compares every field but the guid).
    pub fn same_mapping(&self, other: &Destination) -> bool {
        self.app_guid == other.app_guid
            && self.process_type == other.process_type
            && self.port == other.port
            && self.protocol == other.protocol
            && self.weight == other.weight
    }
}

/// A route.
#[derive(Debug, Clone)]
pub struct Route {
    /// GUID.
    pub guid: String,
    /// Host (`""` when none).
    pub host: String,
    /// Path (`""` when none).
    pub path: String,
    /// Port, TCP routes only.
    pub port: Option<u16>,
    /// Domain.
    pub domain_guid: String,
    /// Owning space.
    pub space_guid: String,
    /// Spaces the route is shared into.
    pub shared_spaces: Vec<String>,
    /// `options`; `None` is omitted from the JSON.
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
    /// Destinations (kept sorted by guid).
    pub destinations: Vec<Destination>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

/// A service route binding (cloud_controller_ng `app/models/services/route_binding.rb`): at most
/// one per route (`A route may only be bound to a single service instance`,
/// `app/actions/service_route_binding_create.rb`), and the service instance lives in the route's
/// space (`The service instance and the route are in different spaces`).
#[derive(Debug, Clone)]
pub struct RouteBinding {
    /// GUID.
    pub guid: String,
    /// The bound route.
    pub route_guid: String,
    /// The service instance's GUID.
    pub service_instance_guid: String,
    /// The service instance's name (`service_instance_names` filter).
    pub service_instance_name: String,
    /// The instance's space (what CC's visibility of a binding follows:
    /// `RouteBindingListFetcher.fetch_some` joins the spaces on the service instance).
    pub space_guid: String,
    /// A managed (brokered) instance's binding has a `parameters` link; a user-provided one not.
    pub managed: bool,
    /// Where gorouter sends the route's requests.
    pub route_service_url: Option<String>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
    /// Labels and annotations.
    pub metadata: Metadata,
}

/// A package (app bits).
#[derive(Debug, Clone)]
pub struct Package {
    /// GUID.
    pub guid: String,
    /// App GUID.
    pub app_guid: String,
    /// `READY`, `PROCESSING_UPLOAD`, …
    pub state: String,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
}

/// A build (staging run).
#[derive(Debug, Clone)]
pub struct Build {
    /// GUID.
    pub guid: String,
    /// App GUID.
    pub app_guid: String,
    /// Package staged.
    pub package_guid: String,
    /// `STAGING`, `STAGED`, `FAILED`.
    pub state: String,
    /// Resulting droplet once staged.
    pub droplet_guid: Option<String>,
    /// Why it failed (`FAILED` only), as CC words it: `StagingError - …`.
    pub error: Option<String>,
    /// When staging finishes.
    pub ready_at: Instant,
    /// Who created it: (guid, name).
    pub created_by: (String, String),
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
}

/// A droplet (staged app).
#[derive(Debug, Clone)]
pub struct Droplet {
    /// GUID.
    pub guid: String,
    /// App GUID.
    pub app_guid: String,
    /// Package it was staged from.
    pub package_guid: Option<String>,
    /// A Docker image's exposed TCP ports, in the image's order (from the droplet's
    /// `execution_metadata`, `app/models/runtime/droplet_model.rb` `docker_ports`).
    pub docker_ports: Vec<u16>,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
}

/// A deployment (rolling restart onto a droplet).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// GUID.
    pub guid: String,
    /// App GUID.
    pub app_guid: String,
    /// Target droplet.
    pub droplet_guid: Option<String>,
    /// Droplet before the deployment.
    pub previous_droplet_guid: Option<String>,
    /// `rolling` or `canary`.
    pub strategy: String,
    /// `status.reason`: `DEPLOYING` (or `PAUSED`, canary) until `ready_at`, then `DEPLOYED`; or
    /// `CANCELED`, `SUPERSEDED`.
    pub reason: String,
    /// When the deployment finishes (deployments of apps with real instances finish when the
    /// deployment updater of [`crate::instances`] has replaced every instance instead).
    pub ready_at: Instant,
    /// The deployment's own `web` process (`DeploymentCreate#create_deployment_process`), for an
    /// app whose instances run as real processes; `None`: the double only keeps time.
    pub process_guid: Option<String>,
    /// How many web instances it rolls out (`original_web_process_instance_count`).
    pub target_instances: u32,
    /// Creation time (ISO).
    pub created_at: String,
    /// Last update (ISO).
    pub updated_at: String,
}

impl Deployment {
    /// Whether it blocks a droplet change: `AppModel#deploying?` is a deployment in one of
    /// `DeploymentModel::PROGRESSING_STATES` (`DEPLOYING`, `PREPAUSED`, `PAUSED`; cloud_controller_ng
    /// `app/models/runtime/app_model.rb`, `deployment_model.rb`). `CANCELING` is active but does not
    /// block.
    pub fn deploying(&self) -> bool {
        matches!(self.reason.as_str(), "DEPLOYING" | "PAUSED")
    }

    /// `status.value`: `ACTIVE` while deploying, paused or canceling, else `FINALIZED`
    /// (`DeploymentModel::ACTIVE_STATES`).
    pub fn status_value(&self) -> &'static str {
        if self.deploying() || self.reason == "CANCELING" { "ACTIVE" } else { "FINALIZED" }
    }

    /// The legacy `state` column the `states` filter reads (`DeploymentModel::DEPLOYMENT_STATES`).
    /// A superseded deployment that was deploying becomes `DEPLOYED` (`DeploymentCreate#supersede_deployment`).
    pub fn state(&self) -> &'static str {
        match self.reason.as_str() {
            "DEPLOYING" => "DEPLOYING",
            "PAUSED" => "PAUSED",
            "CANCELING" => "CANCELING",
            "CANCELED" => "CANCELED",
            _ => "DEPLOYED",
        }
    }
}

/// An asynchronous job (already complete: the double does the work synchronously).
#[derive(Debug, Clone)]
pub struct Job {
    /// GUID.
    pub guid: String,
    /// e.g. `route.delete`.
    pub operation: String,
    /// Creation time (ISO).
    pub created_at: String,
}

/// Space roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Space Developer: everything.
    Developer,
    /// Space Supporter: manage apps and routes, not app metadata.
    Supporter,
    /// Space Auditor: read only.
    Auditor,
    /// Space Manager: read only for apps and routes.
    Manager,
}

/// What the gorouter learns, through the route emitter and NATS, when a route or instance changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// A destination was added: route `fqdn` + `path` now also serves `app_guid`/`process_type`.
    Map {
        /// Monotonic change number (later wins).
        seq: u64,
        /// Destination GUID.
        destination_guid: String,
        /// `host.domain` (or `domain`), lower case.
        fqdn: String,
        /// Route path (`""` for none).
        path: String,
        /// App served.
        app_guid: String,
        /// Process served.
        process_type: String,
    },
    /// A destination was removed.
    Unmap {
        /// Monotonic change number (later wins).
        seq: u64,
        /// Destination GUID.
        destination_guid: String,
    },
    /// Which instances of a process are running now (by index).
    Instances {
        /// Monotonic change number (later wins).
        seq: u64,
        /// App GUID.
        app_guid: String,
        /// Process type.
        process_type: String,
        /// `running[i]` for instance index `i`.
        running: Vec<bool>,
    },
    /// A real instance is up and routable: the route emitter registers its address for every
    /// route of its app's process type, with the app guid and instance index gorouter keeps
    /// (`ApplicationId`, `PrivateInstanceIndex`; route-emitter `routingtable` → NATS
    /// `router.register`).
    Register {
        /// Monotonic change number (later wins).
        seq: u64,
        /// The instance: (process guid, index). Two processes of one app (a rolling deployment's
        /// old and new) both have an index 0.
        instance: (String, u32),
        /// App GUID.
        app_guid: String,
        /// Process type.
        process_type: String,
        /// Where it listens.
        addr: std::net::SocketAddr,
    },
    /// A real instance crashed or is being stopped: `router.unregister`.
    Unregister {
        /// Monotonic change number (later wins).
        seq: u64,
        /// The instance: (process guid, index).
        instance: (String, u32),
    },
}

/// An audit event (cloud_controller_ng `app/models/runtime/event.rb`, presented by
/// `app/presenters/v3/event_presenter.rb`). Only route mapping events are recorded.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// GUID.
    pub guid: String,
    /// E.g. `audit.app.unmap-route`.
    pub kind: &'static str,
    /// When (ISO).
    pub created_at: String,
    /// (guid, type, name) of who did it.
    pub actor: (String, &'static str, String),
    /// (guid, type, name) of what it was done to.
    pub target: (String, &'static str, String),
    /// The space and its org.
    pub space_guid: String,
    /// The org.
    pub org_guid: String,
    /// `data`.
    pub data: serde_json::Value,
}

/// One route's entry in the routes CC sends Diego (see [`State::routes_size`]): compact JSON, as
/// `Oj.dump` writes it.
pub fn routes_entry(uri: &str, port: u16, protocol: &str) -> String {
    serde_json::json!({
        "hostnames": [uri],
        "port": port,
        "route_service_url": null,
        "isolation_segment": null,
        "protocol": protocol,
    })
    .to_string()
}

/// Everything the Cloud Controller double holds.
#[derive(Debug, Default)]
pub struct State {
    /// Orgs in creation order.
    pub orgs: Vec<Org>,
    /// Spaces in creation order.
    pub spaces: Vec<Space>,
    /// Domains in creation order.
    pub domains: Vec<Domain>,
    /// Apps in creation order.
    pub apps: Vec<App>,
    /// Processes in creation order.
    pub processes: Vec<Process>,
    /// Routes in creation order.
    pub routes: Vec<Route>,
    /// Packages in creation order.
    pub packages: Vec<Package>,
    /// Builds in creation order.
    pub builds: Vec<Build>,
    /// Droplets in creation order.
    pub droplets: Vec<Droplet>,
    /// Deployments in creation order.
    pub deployments: Vec<Deployment>,
    /// Jobs.
    pub jobs: Vec<Job>,
    /// (user guid, space guid, role).
    pub roles: Vec<(String, String, Role)>,
    /// Audit events, oldest first.
    pub audit_events: Vec<AuditEvent>,
    /// Service route bindings in creation order.
    pub route_bindings: Vec<RouteBinding>,
    /// How long a build stays `STAGING`.
    pub staging_time: Duration,
    /// Apps whose builds fail, with the build error.
    pub staging_failures: HashMap<String, String>,
    /// How long started instances report `STARTING` before `RUNNING`.
    pub startup_time: Duration,
    /// How long a deployment stays `DEPLOYING`.
    pub deployment_time: Duration,
    /// Diego's limit on one process's routes (bytes of the JSON CC renders), `None` for none:
    /// see [`State::routes_size`].
    pub diego_routes_limit: Option<usize>,
    /// Processes (app GUID, type) whose desired LRP Diego refused to update: the routers keep
    /// their last accepted routes, and the destinations unmapped since then wait here.
    pub diego_frozen: HashMap<(String, String), Vec<String>>,
    /// The processes whose update the last destination change had refused (the API answers
    /// 500 `CF-RunnerError` after committing it).
    pub diego_refused: Vec<(String, String)>,
    /// How long a stopped app's instances take to go (Diego stops the actual LRPs after CC
    /// deletes the desired LRP); zero: gone at once.
    pub stopping_time: Duration,
    /// CC's `app_instance_stopping_state: false`: instances still stopping are reported DOWN, not
    /// STOPPING (`instances_stats_reporter.rb` `app_instance_stopping_state`). CC's own config
    /// defaults it to true (`config/cloud_controller.yml`); capi-release's default is UNCONFIRMED.
    pub stopping_reported_down: bool,
    /// What Diego reports for the instances of processes that run as real processes
    /// ([`crate::instances`]), by process guid and index; [`State::instance_states`] reads them
    /// instead of deriving states from the app's, and indexes missing here are DOWN.
    pub actual: HashMap<String, Vec<InstanceState>>,
    /// Apps whose instances run as real processes: their deployments are driven by the
    /// deployment updater of [`crate::instances`], not by a timer.
    pub real_apps: std::collections::HashSet<String>,
    seq: u64,
    events: Option<RouteSink>,
}

/// Where route changes go (the router double's intake).
pub struct RouteSink(pub Box<dyn Fn(RouteEvent) + Send>);

impl std::fmt::Debug for RouteSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteSink")
    }
}

impl State {
    /// Sends route changes to `sink` from now on.
    pub fn subscribe(&mut self, sink: RouteSink) {
        self.events = Some(sink);
    }

    fn emit(&mut self, make: impl FnOnce(u64) -> RouteEvent) {
        self.seq += 1;
        let event = make(self.seq);
        if let Some(sink) = &self.events {
            (sink.0)(event);
        }
    }

    /// Every event needed to rebuild the router's table from scratch (for a router attached late).
    pub fn snapshot_events(&mut self) -> Vec<RouteEvent> {
        let mut out = Vec::new();
        let maps: Vec<(String, String, String, String, String)> = self
            .routes
            .iter()
            .flat_map(|r| {
                let fqdn = self.route_fqdn(r);
                r.destinations.iter().map(move |d| {
                    (d.guid.clone(), fqdn.clone(), r.path.clone(), d.app_guid.clone(), d.process_type.clone())
                })
            })
            .collect();
        for (destination_guid, fqdn, path, app_guid, process_type) in maps {
            self.seq += 1;
            out.push(RouteEvent::Map { seq: self.seq, destination_guid, fqdn, path, app_guid, process_type });
        }
        let procs: Vec<(String, String, Vec<bool>)> =
            self.processes.iter().map(|p| (p.app_guid.clone(), p.process_type.clone(), self.running(p))).collect();
        for (app_guid, process_type, running) in procs {
            self.seq += 1;
            out.push(RouteEvent::Instances { seq: self.seq, app_guid, process_type, running });
        }
        out
    }

    /// The org with `guid`.
    pub fn org(&self, guid: &str) -> Option<&Org> {
        self.orgs.iter().find(|o| o.guid == guid)
    }

    /// The space with `guid`.
    pub fn space(&self, guid: &str) -> Option<&Space> {
        self.spaces.iter().find(|s| s.guid == guid)
    }

    /// The domain with `guid`.
    pub fn domain(&self, guid: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.guid == guid)
    }

    /// The app with `guid`.
    pub fn app(&self, guid: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.guid == guid)
    }

    /// The app with `guid`, mutable.
    pub fn app_mut(&mut self, guid: &str) -> Option<&mut App> {
        self.apps.iter_mut().find(|a| a.guid == guid)
    }

    /// The route with `guid`.
    pub fn route(&self, guid: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.guid == guid)
    }

    /// The route with `guid`, mutable.
    pub fn route_mut(&mut self, guid: &str) -> Option<&mut Route> {
        self.routes.iter_mut().find(|r| r.guid == guid)
    }

    /// The process with `guid`.
    pub fn process(&self, guid: &str) -> Option<&Process> {
        self.processes.iter().find(|p| p.guid == guid)
    }

    /// The process of `app_guid` with type `process_type`: the newest, as
    /// `ProcessFetcher#fetch_for_app_by_type` takes it (`.last`): during a rolling deployment an
    /// app has two `web` processes, and the deployment's is the one shown.
    pub fn process_of(&self, app_guid: &str, process_type: &str) -> Option<&Process> {
        self.processes.iter().rev().find(|p| p.app_guid == app_guid && p.process_type == process_type)
    }

    /// `host.domain`, or `domain` when the host is empty (lower case, as the router matches it).
    pub fn route_fqdn(&self, route: &Route) -> String {
        let domain = self.domain(&route.domain_guid).map(|d| d.name.as_str()).unwrap_or("");
        if route.host.is_empty() { domain.to_lowercase() } else { format!("{}.{domain}", route.host).to_lowercase() }
    }

    /// The route's `url` field: `domain:port` (TCP), `domain/path` or `host.domain/path`.
    pub fn route_url(&self, route: &Route) -> String {
        let domain = self.domain(&route.domain_guid).map(|d| d.name.as_str()).unwrap_or("");
        match route.port {
            Some(port) => format!("{domain}:{port}"),
            None if route.host.is_empty() => format!("{domain}{}", route.path),
            None => format!("{}.{domain}{}", route.host, route.path),
        }
    }

    /// Instance states of `process` now.
    pub fn instance_states(&self, process: &Process) -> Vec<InstanceState> {
        if let Some(forced) = &process.forced_states {
            return forced.clone();
        }
        // Real instances: what Diego reports. A desired index of a started app that has no
        // actual LRP running yet is UNCLAIMED or CLAIMED in the BBS, which CC reports as STARTING
        // (`instances_stats_reporter.rb` `build_info`, `LrpStateTranslator`); a stopped app's are
        // DOWN stubs (`fill_unreported_instances_with_down_instances`).
        if self.real_apps.contains(&process.app_guid) {
            let started = self.app(&process.app_guid).is_some_and(|a| a.state == AppState::Started);
            let missing = if started { InstanceState::Starting } else { InstanceState::Down };
            let actual = self.actual.get(&process.guid);
            let n = process.instances as usize;
            return (0..n).map(|i| actual.and_then(|a| a.get(i)).copied().unwrap_or(missing)).collect();
        }
        let n = process.instances as usize;
        match self.app(&process.app_guid) {
            Some(app) if app.state == AppState::Started => {
                let up = app.started_at.is_none_or(|t| t.elapsed() >= self.startup_time);
                vec![if up { InstanceState::Running } else { InstanceState::Starting }; n]
            }
            // A stopped process has no desired LRP, but its actual LRPs live until Diego has
            // stopped them: CC reports those STOPPING (or DOWN when `app_instance_stopping_state`
            // is off), and the rest as DOWN stubs (`instances_stats_reporter.rb`
            // `handle_no_running_instances`, `reporter_mixins.rb`).
            Some(app) if app.stopped_at.is_some_and(|t| t.elapsed() < self.stopping_time) => {
                let s = if self.stopping_reported_down { InstanceState::Down } else { InstanceState::Stopping };
                vec![s; n]
            }
            _ => vec![InstanceState::Down; n],
        }
    }

    /// `routable` of each instance as CC reports it: a RUNNING instance is routable unless it
    /// fails its readiness check ([`Process::unready`]); a STARTING or CRASHED one is not. A
    /// STOPPING one keeps what its actual LRP last said (UNCONFIRMED: whether Diego clears
    /// `routable` when it starts to stop an instance; true here so that a reader that trusts
    /// `routable` alone counts a stopping instance as serving and is caught). DOWN stubs carry no
    /// `routable` at all: `None` (`process_stats_presenter.rb` `down_instance_stats_hash`).
    pub fn instance_routable(&self, process: &Process) -> Vec<Option<bool>> {
        self.instance_states(process)
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                InstanceState::Running => Some(i >= process.unready as usize),
                InstanceState::Stopping => Some(true),
                InstanceState::Down => None,
                InstanceState::Starting | InstanceState::Crashed => Some(false),
            })
            .collect()
    }

    // What the router learns: the route emitter registers only RUNNING instances whose actual
    // LRP is routable (readiness passed).
    fn running(&self, process: &Process) -> Vec<bool> {
        let states = self.instance_states(process);
        let routable = self.instance_routable(process);
        states.iter().zip(routable).map(|(s, r)| *s == InstanceState::Running && r == Some(true)).collect()
    }

    /// Tells the routers real instance `instance` (process guid, index) of `app_guid`'s
    /// `process_type` listens on `addr` (`Some`), or is gone (`None`).
    pub fn emit_registration(
        &mut self,
        instance: (String, u32),
        app_guid: &str,
        process_type: &str,
        addr: Option<std::net::SocketAddr>,
    ) {
        let (app_guid, process_type) = (app_guid.to_owned(), process_type.to_owned());
        match addr {
            Some(addr) => self.emit(|seq| RouteEvent::Register { seq, instance, app_guid, process_type, addr }),
            None => self.emit(|seq| RouteEvent::Unregister { seq, instance }),
        }
    }

    /// Tells the router which instances of every process of `app_guid` run now.
    pub fn emit_instances(&mut self, app_guid: &str) {
        let procs: Vec<(String, Vec<bool>)> = self
            .processes
            .iter()
            .filter(|p| p.app_guid == app_guid)
            .map(|p| (p.process_type.clone(), self.running(p)))
            .collect();
        for (process_type, running) in procs {
            let app_guid = app_guid.to_owned();
            self.emit(|seq| RouteEvent::Instances { seq, app_guid, process_type, running });
        }
    }

    /// The port CC presents for `d` (`RouteMappingModel#presented_port`): the stored one if
    /// explicit, else the app's droplet's first exposed Docker port, else 8080.
    pub fn presented_port(&self, d: &Destination) -> u16 {
        d.port.unwrap_or_else(|| {
            let droplet = self.app(&d.app_guid).and_then(|a| a.droplet_guid.as_deref());
            let droplet = droplet.and_then(|g| self.droplets.iter().find(|x| x.guid == g));
            droplet.and_then(|x| x.docker_ports.first().copied()).unwrap_or(DEFAULT_HTTP_PORT)
        })
    }

    /// `process.ports` after `removed` and `added` destinations, as
    /// `UpdateRouteDestinations#update_processes` computes it: explicit ports added, a removed
    /// port dropped unless another destination of the process still uses it, and an empty list
    /// becoming `[8080]` for a buildpack app and unset for the others.
    fn update_process_ports(&mut self, removed: &[Destination], added: &[Destination]) {
        let keyed = |d: &Destination| (d.app_guid.clone(), d.process_type.clone());
        let mut touched: Vec<(String, String)> = removed.iter().chain(added).map(keyed).collect();
        touched.sort();
        touched.dedup();
        for (app, process_type) in touched {
            let still: Vec<u16> = self
                .routes
                .iter()
                .flat_map(|r| &r.destinations)
                .filter(|d| d.app_guid == app && d.process_type == process_type)
                .filter_map(|d| d.port)
                .collect();
            let gone: Vec<u16> = removed
                .iter()
                .filter(|d| d.app_guid == app && d.process_type == process_type)
                .filter_map(|d| d.port)
                .filter(|p| !still.contains(p))
                .collect();
            let new: Vec<u16> = added
                .iter()
                .filter(|d| d.app_guid == app && d.process_type == process_type)
                .filter_map(|d| d.port)
                .collect();
            let buildpack = self.app(&app).is_some_and(|a| a.lifecycle == Lifecycle::Buildpack);
            let Some(p) = self.processes.iter_mut().find(|p| p.app_guid == app && p.process_type == process_type)
            else {
                continue;
            };
            let mut ports: Vec<u16> =
                p.ports.clone().unwrap_or_default().into_iter().filter(|x| !gone.contains(x)).collect();
            for x in new {
                if !ports.contains(&x) {
                    ports.push(x);
                }
            }
            p.ports = if ports.is_empty() { buildpack.then(|| vec![DEFAULT_HTTP_PORT]) } else { Some(ports) };
        }
    }

    /// Replaces the destinations of route `route_guid` with `new` (already ordered by the caller's
    /// rules), emitting unmap/map events for the difference. Destinations whose guid survives are
    /// untouched.
    pub fn set_destinations(&mut self, route_guid: &str, mut new: Vec<Destination>) {
        let Some(route) = self.route(route_guid) else { return };
        let fqdn = self.route_fqdn(route);
        let path = route.path.clone();
        let old = route.destinations.clone();
        new.sort_by(|a, b| a.guid.cmp(&b.guid));
        let removed: Vec<String> =
            old.iter().filter(|o| !new.iter().any(|n| n.guid == o.guid)).map(|o| o.guid.clone()).collect();
        let added: Vec<Destination> = new.iter().filter(|n| !old.iter().any(|o| o.guid == n.guid)).cloned().collect();
        let changed = !removed.is_empty() || !added.is_empty();
        let gone: Vec<Destination> = old.iter().filter(|o| removed.contains(&o.guid)).cloned().collect();
        if let Some(route) = self.route_mut(route_guid) {
            route.destinations = new;
            if changed {
                route.updated_at = now_iso();
            }
        }
        self.update_process_ports(&gone, &added);
        let mut touched: Vec<(String, String)> =
            gone.iter().chain(&added).map(|d| (d.app_guid.clone(), d.process_type.clone())).collect();
        touched.dedup();
        let refused: Vec<(String, String)> = touched.iter().filter(|p| self.diego_refuses(p)).cloned().collect();
        for d in gone {
            if let Some(missed) = self.diego_frozen.get_mut(&(d.app_guid.clone(), d.process_type.clone())) {
                missed.push(d.guid);
                continue;
            }
            self.emit(|seq| RouteEvent::Unmap { seq, destination_guid: d.guid });
        }
        for d in added {
            if !self.diego_frozen.contains_key(&(d.app_guid.clone(), d.process_type.clone())) {
                self.emit_map(d, fqdn.clone(), path.clone());
            }
        }
        for p in touched.into_iter().filter(|p| !refused.contains(p)) {
            self.diego_catch_up(&p);
        }
        self.diego_refused = refused;
    }

    /// A process back under the limit: Diego takes the whole desired state, so the routers catch
    /// up on everything they missed while it was refused.
    fn diego_catch_up(&mut self, process: &(String, String)) {
        let Some(missed) = self.diego_frozen.remove(process) else { return };
        for destination_guid in missed {
            self.emit(|seq| RouteEvent::Unmap { seq, destination_guid });
        }
        for (route_guid, d) in self.destinations_of(&process.0, &process.1) {
            let Some(route) = self.route(&route_guid) else { continue };
            let (fqdn, path) = (self.route_fqdn(route), route.path.clone());
            self.emit_map(d, fqdn, path);
        }
    }

    /// Tells the routers `d` of the route `fqdn` + `path` is mapped.
    fn emit_map(&mut self, d: Destination, fqdn: String, path: String) {
        self.emit(|seq| RouteEvent::Map {
            seq,
            destination_guid: d.guid,
            fqdn,
            path,
            app_guid: d.app_guid,
            process_type: d.process_type,
        });
    }

    /// Every destination of `app_guid`'s `process_type`, with its route's GUID.
    fn destinations_of(&self, app_guid: &str, process_type: &str) -> Vec<(String, Destination)> {
        self.routes
            .iter()
            .flat_map(|r| r.destinations.iter().map(move |d| (r.guid.clone(), d.clone())))
            .filter(|(_, d)| d.app_guid == app_guid && d.process_type == process_type)
            .collect()
    }

    /// The bytes of the routes CC sends Diego for a process: `generate_routes` in cloud_controller_ng
    /// `lib/cloud_controller/diego/app_recipe_builder.rb` dumps one compact JSON entry per
    /// destination, `{"hostnames":[uri],"port":…,"route_service_url":null,"isolation_segment":null,
    /// "protocol":"http1"}`, with `uri` the route's host.domain/path
    /// (`lib/cloud_controller/diego/protocol/routing_info.rb#http_info`), and `[]` for the TCP and
    /// internal routes. The BBS adds up the lengths of the route values (`models/desired_lrp.go`,
    /// `DesiredLRPUpdate.Validate`, `maximumRouteLength` = 128 KiB). The SSH route entry the BBS
    /// also counts is left out (UNCONFIRMED size, a few hundred bytes).
    pub fn routes_size(&self, app_guid: &str, process_type: &str) -> usize {
        let entries: Vec<String> = self
            .destinations_of(app_guid, process_type)
            .into_iter()
            .filter_map(|(route_guid, d)| {
                let route = self.route(&route_guid)?;
                (route.port.is_none()).then(|| {
                    let uri = format!("{}{}", self.route_fqdn(route), route.path);
                    routes_entry(&uri, d.port.unwrap_or(DEFAULT_HTTP_PORT), &d.protocol)
                })
            })
            .collect();
        format!("[{}]", entries.join(",")).len() + "[]".len() * 2
    }

    /// Whether Diego refuses the desired-LRP update CC sends after a route change of `process`:
    /// CC only sends one for a started, staged app (`process_route_handler.rb`
    /// `notify_backend_of_route_update`), and the BBS refuses routes past the limit. A refused
    /// process freezes: the routers keep what they had.
    fn diego_refuses(&mut self, process: &(String, String)) -> bool {
        let Some(limit) = self.diego_routes_limit else { return false };
        let running = self.app(&process.0).is_some_and(|a| a.state == AppState::Started && a.droplet_guid.is_some());
        if !running || self.routes_size(&process.0, &process.1) <= limit {
            return false;
        }
        self.diego_frozen.entry(process.clone()).or_default();
        true
    }

    /// [`State::set_destinations`] done through the API by `actor` (guid, name): every destination
    /// removed is an `audit.app.unmap-route` event of its app and every one added an
    /// `audit.app.map-route`, removals first, as `UpdateRouteDestinations#update` records them
    /// (cloud_controller_ng `app/actions/update_route_destinations.rb`,
    /// `app/repositories/app_event_repository.rb`).
    pub fn map_destinations(&mut self, route_guid: &str, new: Vec<Destination>, actor: (&str, &str)) {
        let Some(route) = self.route(route_guid) else { return };
        let old = route.destinations.clone();
        let removed = old.iter().filter(|o| !new.iter().any(|n| n.guid == o.guid)).cloned();
        let added = new.iter().filter(|n| !old.iter().any(|o| o.guid == n.guid)).cloned();
        let changes: Vec<(&'static str, Destination)> =
            removed.map(|d| ("audit.app.unmap-route", d)).chain(added.map(|d| ("audit.app.map-route", d))).collect();
        let space_guid = route.space_guid.clone();
        self.set_destinations(route_guid, new);
        for (kind, d) in changes {
            let app_name = self.app(&d.app_guid).map(|a| a.name.clone()).unwrap_or_default();
            let app_space = self.app(&d.app_guid).map_or_else(|| space_guid.clone(), |a| a.space_guid.clone());
            let org_guid = self.space(&app_space).map(|s| s.org_guid.clone()).unwrap_or_default();
            self.audit_events.push(AuditEvent {
                guid: guid(),
                kind,
                created_at: now_iso(),
                actor: (actor.0.to_owned(), "user", actor.1.to_owned()),
                target: (d.app_guid.clone(), "app", app_name),
                space_guid: app_space,
                org_guid,
                data: serde_json::json!({
                    "route_guid": route_guid,
                    "app_port": d.port.map_or(-1, i32::from),
                    "route_mapping_guid": d.guid,
                    "destination_guid": d.guid,
                    "process_type": d.process_type,
                    "weight": d.weight,
                    "protocol": d.protocol,
                }),
            });
        }
    }

    /// Deletes route `route_guid` (and tells the router its destinations are gone).
    pub fn delete_route(&mut self, route_guid: &str) {
        self.set_destinations(route_guid, Vec::new());
        self.routes.retain(|r| r.guid != route_guid);
    }

    /// Records a finished job and returns its guid.
    pub fn complete_job(&mut self, operation: &str) -> String {
        let job = Job { guid: guid(), operation: operation.to_owned(), created_at: now_iso() };
        let g = job.guid.clone();
        self.jobs.push(job);
        g
    }

    /// Moves builds and deployments whose time has come to their final state.
    pub fn advance(&mut self) {
        let now = Instant::now();
        let mut new_droplets = Vec::new();
        for b in self.builds.iter_mut().filter(|b| b.state == "STAGING" && b.ready_at <= now) {
            if let Some(error) = self.staging_failures.get(&b.app_guid) {
                b.state = "FAILED".to_owned();
                b.error = Some(error.clone());
                b.updated_at = now_iso();
                continue;
            }
            let d = Droplet {
                guid: guid(),
                app_guid: b.app_guid.clone(),
                package_guid: Some(b.package_guid.clone()),
                // A restage stages the same image again.
                docker_ports: self
                    .apps
                    .iter()
                    .find(|a| a.guid == b.app_guid)
                    .and_then(|a| a.droplet_guid.as_deref())
                    .and_then(|g| self.droplets.iter().find(|x| x.guid == g))
                    .map(|x| x.docker_ports.clone())
                    .unwrap_or_default(),
                created_at: now_iso(),
                updated_at: now_iso(),
            };
            b.state = "STAGED".to_owned();
            b.droplet_guid = Some(d.guid.clone());
            b.updated_at = now_iso();
            new_droplets.push(d);
        }
        self.droplets.extend(new_droplets);
        let mut restarted = Vec::new();
        for d in self.deployments.iter_mut().filter(|d| d.deploying() && d.ready_at <= now && d.process_guid.is_none())
        {
            d.reason = "DEPLOYED".to_owned();
            d.updated_at = now_iso();
            restarted.push((d.app_guid.clone(), d.droplet_guid.clone()));
        }
        for (app_guid, droplet) in restarted {
            if let Some(app) = self.app_mut(&app_guid) {
                app.droplet_guid = droplet.or(app.droplet_guid.take());
                app.state = AppState::Started;
                app.updated_at = now_iso();
            }
        }
    }

    /// The roles `user` has in `space_guid`.
    pub fn roles_in(&self, user: &str, space_guid: &str) -> Vec<Role> {
        self.roles.iter().filter(|(u, s, _)| u == user && s == space_guid).map(|(_, _, r)| *r).collect()
    }
}
