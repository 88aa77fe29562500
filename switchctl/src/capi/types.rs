//! The CAPI v3 resources switchctl reads and writes.
//!
//! Only the fields switchctl uses are typed; unknown fields are ignored (the API adds fields over
//! time) and optional or newer fields default, so answers of older and newer Cloud Controllers
//! both parse. Timestamps stay ISO-8601 strings: switchctl only shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `null` → the type's default (the API sends `null` for some empty collections).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `{"guid": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuidRef {
    /// The GUID.
    pub guid: String,
}

/// A to-one relationship: `{"data": {"guid": "…"}}`, or `{"data": null}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToOne {
    /// The related resource, if any.
    #[serde(default)]
    pub data: Option<GuidRef>,
}

impl ToOne {
    /// The related GUID, if any.
    pub fn guid(&self) -> Option<&str> {
        self.data.as_ref().map(|d| d.guid.as_str())
    }
}

/// `{"href": "…", "method": "POST"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Absolute URL.
    pub href: String,
    /// HTTP method, for action links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// Labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Labels (selectable with `label_selector`).
    #[serde(default, deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Annotations (values up to 5000 characters).
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: BTreeMap<String, String>,
}

/// A metadata change: a key with `Some(value)` is set, with `None` removed (sent as `null`),
/// absent keys are left alone (CAPI merges).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MetadataPatch {
    /// Label changes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotation changes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, Option<String>>,
}

/// A paginated list.
#[derive(Debug, Clone, Deserialize)]
pub struct Paginated<T> {
    /// Where the next page is.
    #[serde(default)]
    pub pagination: Pagination,
    /// This page's resources.
    #[serde(default = "Vec::new")]
    pub resources: Vec<T>,
}

/// The `pagination` object of a list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pagination {
    /// Total resources in all pages.
    #[serde(default)]
    pub total_results: u64,
    /// Total pages (at least 1).
    #[serde(default)]
    pub total_pages: u64,
    /// The next page; `null` on the last.
    #[serde(default)]
    pub next: Option<Link>,
}

/// The desired state of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppState {
    /// Should run.
    Started,
    /// Should not run.
    Stopped,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

/// `lifecycle`: buildpack, cnb or docker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// `buildpack`, `cnb` or `docker`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Type-specific data.
    #[serde(default)]
    pub data: Value,
}

/// An app's relationships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRelationships {
    /// Its space.
    #[serde(default)]
    pub space: ToOne,
    /// Its current droplet (data `null` when it has none).
    #[serde(default)]
    pub current_droplet: ToOne,
}

/// An app (`/v3/apps/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// GUID.
    pub guid: String,
    /// Name, unique in its space.
    pub name: String,
    /// Desired state.
    pub state: AppState,
    /// Lifecycle.
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
    /// Relationships.
    #[serde(default)]
    pub relationships: AppRelationships,
    /// Labels and annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
    /// Created at (ISO-8601).
    #[serde(default)]
    pub created_at: String,
    /// Updated at (ISO-8601).
    #[serde(default)]
    pub updated_at: String,
}

/// A process's relationships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRelationships {
    /// Its app.
    #[serde(default)]
    pub app: ToOne,
}

/// A health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `port`, `process` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// E.g. `{"endpoint": "/health", "timeout": null}`.
    #[serde(default)]
    pub data: Value,
}

/// A process (`/v3/processes/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// GUID.
    pub guid: String,
    /// Process type, e.g. `web`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Start command, if known.
    #[serde(default)]
    pub command: Option<String>,
    /// Desired instances.
    #[serde(default)]
    pub instances: u32,
    /// Memory per instance.
    #[serde(default)]
    pub memory_in_mb: Option<u64>,
    /// Disk per instance.
    #[serde(default)]
    pub disk_in_mb: Option<u64>,
    /// Health check.
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    /// Relationships.
    #[serde(default)]
    pub relationships: ProcessRelationships,
    /// Labels and annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// The state of one process instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Running (and, if `routable`, receiving traffic).
    Running,
    /// Crashed.
    Crashed,
    /// Starting.
    Starting,
    /// Stopping.
    Stopping,
    /// Not reported / not running.
    Down,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

/// Ports of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePort {
    /// Port on the cell.
    #[serde(default)]
    pub external: Option<u32>,
    /// Port in the container.
    #[serde(default)]
    pub internal: Option<u32>,
}

/// One instance's stats (`/v3/processes/:guid/stats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Process type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Instance index.
    pub index: u32,
    /// State.
    pub state: InstanceState,
    /// Whether the router sends it traffic (readiness); absent on older Cloud Controllers.
    #[serde(default)]
    pub routable: Option<bool>,
    /// Cell address.
    #[serde(default)]
    pub host: Option<String>,
    /// Seconds since start.
    #[serde(default)]
    pub uptime: Option<u64>,
    /// Ports.
    #[serde(default, deserialize_with = "null_default")]
    pub instance_ports: Vec<InstancePort>,
    /// Why it is down or crashed, if known.
    #[serde(default)]
    pub details: Option<String>,
}

/// `{"resources": [...]}` of `/v3/processes/:guid/stats` (not paginated).
#[derive(Debug, Clone, Deserialize)]
pub struct StatsList {
    /// One entry per instance.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Vec<ProcessStats>,
}

/// `{"type": "web"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessType {
    /// Process type.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The app (and process) a destination sends to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestinationApp {
    /// App GUID.
    pub guid: String,
    /// Process; CAPI assumes `web` when it is not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessType>,
}

/// A route destination as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// GUID (stable while the destination is kept).
    pub guid: String,
    /// Where it sends.
    pub app: DestinationApp,
    /// Deprecated weight, normally `null`.
    #[serde(default)]
    pub weight: Option<u32>,
    /// App port (8080 unless chosen).
    #[serde(default)]
    pub port: Option<u32>,
    /// `http1`, `http2` or `tcp`.
    #[serde(default)]
    pub protocol: Option<String>,
}

impl Destination {
    /// The process type, `web` when the API leaves it out.
    pub fn process_type(&self) -> &str {
        self.app.process.as_ref().map_or("web", |p| p.kind.as_str())
    }
}

/// A destination to insert or to keep in a replace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NewDestination {
    /// Where it sends.
    pub app: DestinationApp,
    /// App port; CAPI's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Protocol; the route's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl NewDestination {
    /// A destination to `app_guid`'s `web` process with CAPI's default port and protocol (as `cf map-route`).
    pub fn to_app(app_guid: &str) -> NewDestination {
        NewDestination { app: DestinationApp { guid: app_guid.to_owned(), process: None }, port: None, protocol: None }
    }
}

impl From<&Destination> for NewDestination {
    /// The same destination again: re-sent in a replace, CAPI keeps it (same GUID).
    fn from(d: &Destination) -> NewDestination {
        NewDestination {
            app: DestinationApp {
                guid: d.app.guid.clone(),
                process: Some(ProcessType { kind: d.process_type().to_owned() }),
            },
            port: d.port,
            protocol: d.protocol.clone(),
        }
    }
}

/// `{"destinations": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationList {
    /// The destinations (CAPI sorts them by GUID).
    #[serde(default, deserialize_with = "null_default")]
    pub destinations: Vec<Destination>,
}

/// A route's relationships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRelationships {
    /// The owning space.
    #[serde(default)]
    pub space: ToOne,
    /// The domain.
    #[serde(default)]
    pub domain: ToOne,
}

/// A route (`/v3/routes/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// GUID.
    pub guid: String,
    /// `http` or `tcp` (the domain's protocol).
    #[serde(default)]
    pub protocol: String,
    /// Host name, `""` when none.
    #[serde(default, deserialize_with = "null_default")]
    pub host: String,
    /// Path, `""` when none.
    #[serde(default, deserialize_with = "null_default")]
    pub path: String,
    /// Port of a TCP route; `null` for HTTP routes.
    #[serde(default)]
    pub port: Option<u32>,
    /// `host.domain/path` or `domain:port`, no scheme.
    #[serde(default)]
    pub url: String,
    /// Current destinations.
    #[serde(default, deserialize_with = "null_default")]
    pub destinations: Vec<Destination>,
    /// Route options, e.g. `{"loadbalancing": "round-robin"}`; absent when never set.
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
    /// Labels and annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
    /// Relationships.
    #[serde(default)]
    pub relationships: RouteRelationships,
}

impl Route {
    /// Whether the TCP router serves it (a TCP domain, or a port set).
    pub fn is_tcp(&self) -> bool {
        self.protocol == "tcp" || self.port.is_some()
    }
}

/// A domain (`/v3/domains/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    /// GUID.
    pub guid: String,
    /// E.g. `apps.example.com`.
    pub name: String,
    /// Internal (container-to-container) domain.
    #[serde(default)]
    pub internal: bool,
    /// Set for TCP domains.
    #[serde(default)]
    pub router_group: Option<GuidRef>,
    /// `["http"]` or `["tcp"]`.
    #[serde(default, deserialize_with = "null_default")]
    pub supported_protocols: Vec<String>,
    /// Routes on the domain are reached only by callers with an instance identity that a route
    /// policy allows (CC 3.228). CC presents the key only when true
    /// (`app/presenters/v3/domain_presenter.rb`), so absent means false, as on older CCs.
    #[serde(default, deserialize_with = "null_default")]
    pub enforce_route_policies: bool,
    /// `any`, `org` or `space`, with `enforce_route_policies`.
    #[serde(default)]
    pub route_policies_scope: Option<String>,
    /// Labels and annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: Metadata,
}

/// The relationships of a service route binding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBindingRelationships {
    /// The bound route.
    #[serde(default)]
    pub route: ToOne,
    /// The service instance.
    #[serde(default)]
    pub service_instance: ToOne,
}

/// A service route binding (`/v3/service_route_bindings`, cloud_controller_ng
/// `app/presenters/v3/service_route_binding_presenter.rb`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBinding {
    /// GUID.
    pub guid: String,
    /// Where the router sends the route's requests (null while a broker has not answered yet).
    #[serde(default)]
    pub route_service_url: Option<String>,
    /// The route and the service instance.
    #[serde(default)]
    pub relationships: RouteBindingRelationships,
}

/// A resource of an `included` block named by GUID (only the name is read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
}

/// `included` of `GET /v3/service_route_bindings?include=service_instance`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBindingIncluded {
    /// The bindings' service instances.
    #[serde(default, deserialize_with = "null_default")]
    pub service_instances: Vec<Named>,
}

/// One page of service route bindings with their service instances.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteBindingPage {
    /// Pagination.
    pub pagination: Pagination,
    /// The bindings.
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Vec<RouteBinding>,
    /// Their service instances.
    #[serde(default)]
    pub included: RouteBindingIncluded,
}

/// The route service a route is bound to, as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundService {
    /// The service instance's name (its GUID if the name was not included).
    pub name: String,
    /// The service instance's GUID.
    pub instance_guid: String,
    /// The route service URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A space's relationships.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceRelationships {
    /// Its org.
    #[serde(default)]
    pub organization: ToOne,
}

/// A space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// GUID.
    pub guid: String,
    /// Name, unique in its org.
    pub name: String,
    /// Relationships.
    #[serde(default)]
    pub relationships: SpaceRelationships,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Suspended orgs refuse changes.
    #[serde(default)]
    pub suspended: Option<bool>,
}

/// The state of a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildState {
    /// Staging.
    Staging,
    /// Staged: `droplet` is set.
    Staged,
    /// Failed: `error` says why.
    Failed,
    /// A state this version does not know.
    #[serde(other)]
    Unknown,
}

/// A build (`/v3/builds/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Build {
    /// GUID.
    pub guid: String,
    /// State.
    pub state: BuildState,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The package staged.
    #[serde(default)]
    pub package: Option<GuidRef>,
    /// The droplet made, once staged.
    #[serde(default)]
    pub droplet: Option<GuidRef>,
    /// Created at.
    #[serde(default)]
    pub created_at: String,
}

/// A deployment (`/v3/deployments/:guid`): a rolling or canary restart CC drives itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// GUID.
    pub guid: String,
    /// `value` and `reason`.
    pub status: DeploymentStatus,
    /// `rolling` or `canary`.
    #[serde(default)]
    pub strategy: Option<String>,
    /// Created at.
    #[serde(default)]
    pub created_at: String,
}

/// A deployment's `status`: `value` `ACTIVE` (`reason` `DEPLOYING`, `PAUSED`, `CANCELING`) or
/// `FINALIZED` (`DEPLOYED`, `CANCELED`, `SUPERSEDED`) (CC `DeploymentModel::STATUS_VALUES`,
/// `STATUS_REASONS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// `ACTIVE` or `FINALIZED`.
    pub value: String,
    /// Why, e.g. `DEPLOYING`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A droplet (`/v3/droplets/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Droplet {
    /// GUID.
    pub guid: String,
    /// `AWAITING_UPLOAD`, `PROCESSING_UPLOAD`, `STAGED`, `COPYING`, `FAILED` or `EXPIRED`.
    pub state: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Created at.
    #[serde(default)]
    pub created_at: String,
    /// For a Docker droplet, the image's metadata as a JSON string (with `ports`); redacted
    /// (`{"redacted_message": …}`) for users who may not read it.
    #[serde(default)]
    pub execution_metadata: Option<Value>,
}

impl Droplet {
    /// The image's exposed TCP ports, in order, as CC reads them from `execution_metadata`
    /// (cloud_controller_ng `app/models/runtime/droplet_model.rb`, `docker_ports`).
    pub fn docker_ports(&self) -> Vec<u32> {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default)]
            ports: Vec<Port>,
        }
        #[derive(Deserialize)]
        struct Port {
            #[serde(rename = "Port")]
            port: u32,
            #[serde(rename = "Protocol", default)]
            protocol: String,
        }
        let Some(Value::String(text)) = &self.execution_metadata else { return Vec::new() };
        let meta: Meta = serde_json::from_str(text).unwrap_or(Meta { ports: Vec::new() });
        meta.ports.into_iter().filter(|p| p.protocol == "tcp").map(|p| p.port).collect()
    }
}

/// A package (`/v3/packages/:guid`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// GUID.
    pub guid: String,
    /// `bits` or `docker`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `AWAITING_UPLOAD`, `PROCESSING_UPLOAD`, `READY`, `FAILED`, `COPYING` or `EXPIRED`.
    pub state: String,
    /// Created at.
    #[serde(default)]
    pub created_at: String,
}

/// The global root (`GET /`), for finding the login server.
#[derive(Debug, Clone, Deserialize)]
pub struct Root {
    /// Its links.
    #[serde(default)]
    pub links: RootLinks,
}

/// The links of [`Root`] switchctl uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootLinks {
    /// The token endpoint's host (`AuthorizationEndpoint`).
    #[serde(default)]
    pub login: Option<Link>,
    /// UAA (`UaaEndpoint`).
    #[serde(default)]
    pub uaa: Option<Link>,
    /// The v3 API.
    #[serde(default)]
    pub cloud_controller_v3: Option<Link>,
}

impl Root {
    /// Where tokens come from: `links.login`, else `links.uaa` (as the cf CLI and the Python client).
    pub fn token_endpoint(&self) -> Option<&str> {
        [&self.links.login, &self.links.uaa].into_iter().flatten().map(|l| l.href.as_str()).find(|h| !h.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;

    fn example<T: DeserializeOwned>(name: &str) -> T {
        let path = format!("{}/../tests/fixtures/capi/cc-docs-examples/{name}.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn the_api_docs_examples_parse_into_the_typed_resources() {
        let app: App = example("apps__single_app");
        assert_eq!(app.state, AppState::Stopped);
        assert!(app.relationships.space.guid().is_some());
        let apps: Paginated<App> = example("apps__paginated_list_of_apps");
        assert_eq!(apps.resources.len(), 2);
        let _: App = example("apps__app_with_state");
        let _: Paginated<Process> = example("processes__paginated_list_of_processes");
        let process: Process = example("processes__single_process");
        assert_eq!((process.kind.as_str(), process.instances), ("web", 5));
        let stats: StatsList = example("processes__list_of_process_stats");
        assert_eq!(stats.resources[0].state, InstanceState::Running);
        assert_eq!(stats.resources[1].state, InstanceState::Starting);
        assert!(stats.resources[1].instance_ports.is_empty());
        let _: StatsList = example("processes__process_stats");
        let routes: Paginated<Route> = example("routes__paginated_list_of_routes");
        assert!(routes.pagination.next.is_some());
        assert!(!routes.resources[0].is_tcp());
        assert_eq!(routes.resources[0].port, None);
        let route: Route = example("routes__single_route");
        assert!(route.is_tcp());
        assert_eq!(route.port, Some(6666));
        let dests: DestinationList = example("routes__list_of_route_destinations");
        assert_eq!(dests.destinations[1].process_type(), "api");
        let _: Destination = example("routes__single_destination");
        let domain: Domain = example("domains__single_domain");
        assert!(!domain.internal);
        let _: Paginated<Domain> = example("domains__paginated_list_of_domains");
        let _: Space = example("spaces__space");
        let _: Paginated<Space> = example("spaces__paginated_list_of_spaces");
        let _: Organization = example("organizations__organization");
        let _: Paginated<Organization> = example("organizations__paginated_list_of_organizations");
        let build: Build = example("builds__single_staged_build");
        assert_eq!(build.state, BuildState::Staged);
        assert!(build.droplet.is_some());
        let staging: Build = example("builds__single_staging_build");
        assert_eq!(staging.state, BuildState::Staging);
        let _: Paginated<Build> = example("builds__paginated_list_of_builds");
        let _: Droplet = example("droplets__single_staged_buildpack_droplet");
        let _: Paginated<Droplet> = example("droplets__paginated_list_of_droplets");
        let _: Package = example("packages__single_bits_package");
        let _: Package = example("packages__single_docker_package");
        let _: Paginated<Package> = example("packages__paginated_list_of_packages");
        let root: Root = example("root__global_root");
        assert!(root.token_endpoint().is_some());
    }

    #[test]
    fn a_kept_destination_is_resent_with_its_process_port_and_protocol() {
        let dests: DestinationList = example("routes__list_of_route_destinations");
        let kept = NewDestination::from(&dests.destinations[0]);
        let json = serde_json::to_value(&kept).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"app": {"guid": "1cb006ee-fb05-47e1-b541-c34179ddc446", "process": {"type": "web"}},
                               "port": 8080, "protocol": "http2"})
        );
        let new = serde_json::to_value(NewDestination::to_app("g")).expect("json");
        assert_eq!(new, serde_json::json!({"app": {"guid": "g"}}));
    }

    #[test]
    fn a_metadata_patch_sends_null_to_remove() {
        let mut patch = MetadataPatch::default();
        patch.labels.insert("a/b".into(), Some("on".into()));
        patch.annotations.insert("old".into(), None);
        let json = serde_json::to_value(&patch).expect("json");
        assert_eq!(json, serde_json::json!({"labels": {"a/b": "on"}, "annotations": {"old": null}}));
    }

    #[test]
    fn unknown_fields_and_states_are_tolerated() {
        let app: App = serde_json::from_value(serde_json::json!({
            "guid": "g", "name": "n", "state": "SUSPENDED", "new_field": {"x": 1}, "metadata": null
        }))
        .expect("app");
        assert_eq!(app.state, AppState::Unknown);
    }
}

/// An audit event (`GET /v3/audit_events`), as far as switchctl reads one.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditEvent {
    /// GUID.
    pub guid: String,
    /// When (ISO 8601).
    pub created_at: String,
    /// E.g. `audit.app.unmap-route`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's details; for route mapping events a [`MappingEventData`].
    #[serde(default)]
    pub data: serde_json::Value,
}

/// What `audit.app.map-route` and `audit.app.unmap-route` events carry.
#[derive(Debug, Clone, Deserialize)]
pub struct MappingEventData {
    /// The route.
    pub route_guid: String,
    /// The destination (route mapping) GUID.
    #[serde(default)]
    pub destination_guid: Option<String>,
    /// Process type.
    #[serde(default)]
    pub process_type: Option<String>,
    /// The stored port: -1 for a Docker or CNB app's destination created without one.
    #[serde(default)]
    pub app_port: Option<i64>,
    /// Protocol.
    #[serde(default)]
    pub protocol: Option<String>,
}

impl AuditEvent {
    /// The mapping details, when this is a route mapping event that carries them.
    pub fn mapping(&self) -> Option<MappingEventData> {
        serde_json::from_value(self.data.clone()).ok()
    }
}
