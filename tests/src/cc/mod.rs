//! Cloud Controller v3 double: one handler that matches `(method, path segments)` against the
//! endpoints switchctl and the cf CLI use, checks the bearer token and the caller's space roles,
//! and answers with CC's shapes and CC's errors. Unknown paths get 404 `CF-NotFound`.
//!
//! The handler is a plain `match` on path segments rather than axum routes so that every miss
//! (unknown path, or a known path with another method) gets CC's 404 body, not axum's 404/405.

mod apps;
mod bindings;
mod events;
mod lists;
pub mod present;
mod routes;
pub mod state;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    response::{IntoResponse, Response},
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};

use crate::{
    JSON_CONTENT_TYPE,
    error::ApiError,
    faults::Faults,
    jwt::{Claims, Rejection},
    pagination::{self, ListQuery, Rules},
    uaa::Uaa,
};
use state::{Role, State};

/// The CC API version the double claims to be.
pub const API_VERSION: &str = "3.228.0";

/// The Cloud Controller double: its external URL, the UAA whose tokens it accepts, and its state.
#[derive(Debug)]
pub struct Cc {
    base_url: String,
    uaa: Arc<Uaa>,
    faults: Arc<Faults>,
    state: Mutex<State>,
}

/// Who is calling, from the verified token.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user_id`, or `client_id` for client tokens.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `cloud_controller.admin`: may do everything.
    pub admin: bool,
    /// `cloud_controller.admin_read_only` or `cloud_controller.global_auditor`: may read everything.
    pub read_all: bool,
    /// Admin or `cloud_controller.admin_read_only`: may read secrets (`can_read_secrets_globally?`;
    /// a global auditor may not).
    pub read_secrets: bool,
    /// May call GET endpoints at all (`cloud_controller.read` or a read-all scope).
    pub read_scope: bool,
    /// May call other methods at all (`cloud_controller.write` or admin).
    pub write_scope: bool,
}

impl Actor {
    fn from_claims(c: &Claims) -> Actor {
        let admin = c.has_scope("cloud_controller.admin");
        let read_all =
            admin || c.has_scope("cloud_controller.admin_read_only") || c.has_scope("cloud_controller.global_auditor");
        Actor {
            id: c.actor().to_owned(),
            name: c.user_name.clone().unwrap_or_else(|| c.client_id.clone()),
            admin,
            read_all,
            read_secrets: admin || c.has_scope("cloud_controller.admin_read_only"),
            read_scope: read_all || c.has_scope("cloud_controller.read"),
            write_scope: admin || c.has_scope("cloud_controller.write"),
        }
    }
}

/// One request, as the handlers see it.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) query: Option<String>,
    pub(crate) body: Bytes,
}

impl Cc {
    /// A CC reachable at `base_url` that trusts `uaa`'s tokens.
    pub fn new(base_url: &str, uaa: Arc<Uaa>, faults: Arc<Faults>) -> Cc {
        Cc { base_url: base_url.trim_end_matches('/').to_owned(), uaa, faults, state: Mutex::new(State::default()) }
    }

    /// The external URL (`Target` in the cf config).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Locks the state (for seeding and assertions). Do not hold it across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, State> {
        // Handlers never panic while holding the lock; if a test did, the data is still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, 64 * 1024 * 1024).await else {
            return ApiError::parse_error().into_response();
        };
        let call = Call { method: parts.method.clone(), query: parts.uri.query().map(str::to_owned), body };
        let path = parts.uri.path().to_owned();
        match self.dispatch(&call, &parts.headers, &path) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        }
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<Actor, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::not_authenticated());
        };
        let value = value.to_str().map_err(|_| ApiError::invalid_auth_token())?;
        // CC accepts any case of "bearer" (`auth_token.upcase.start_with?('BEARER')`).
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(ApiError::invalid_auth_token()),
        };
        let claims = self
            .uaa
            .signer()
            .verify(token, &self.uaa.issuer(), crate::clock::unix_now())
            .map_err(|_: Rejection| ApiError::invalid_auth_token())?;
        Ok(Actor::from_claims(&claims))
    }

    fn dispatch(self: &Arc<Self>, call: &Call, headers: &HeaderMap, path: &str) -> Result<Response, ApiError> {
        let segs: Vec<&str> = path.trim_end_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let m = &call.method;
        let get = m == Method::GET || m == Method::HEAD;
        // Unauthenticated roots first.
        match (get, segs.as_slice()) {
            (true, []) => return Ok(ok(self.root())),
            (true, ["v3"]) => return Ok(ok(self.v3_root())),
            (true, ["v3", "info"]) => return Ok(ok(self.info())),
            _ => {}
        }
        if !self.known(m, &segs) {
            return Err(ApiError::unknown_request());
        }
        let actor = self.authenticate(headers)?;
        // Scopes: reads need cloud_controller.read, writes cloud_controller.write (or admin).
        if !(if get { actor.read_scope } else { actor.write_scope }) {
            return Err(ApiError::not_authorized());
        }
        let cx = Cx { cc: self, actor: &actor, call };
        match (m.as_str(), segs.as_slice()) {
            ("GET" | "HEAD", ["v3", "organizations"]) => cx.list_orgs(),
            ("GET" | "HEAD", ["v3", "organizations", g]) => cx.get_org(g),
            ("GET" | "HEAD", ["v3", "spaces"]) => cx.list_spaces(),
            ("GET" | "HEAD", ["v3", "spaces", g]) => cx.get_space(g),
            ("GET" | "HEAD", ["v3", "domains"]) => cx.list_domains(),
            ("GET" | "HEAD", ["v3", "domains", g]) => cx.get_domain(g),
            ("GET" | "HEAD", ["v3", "jobs", g]) => cx.get_job(g),
            ("GET" | "HEAD", ["v3", "apps"]) => cx.list_apps(),
            ("GET" | "HEAD", ["v3", "apps", g]) => cx.get_app(g),
            ("PATCH", ["v3", "apps", g]) => cx.patch_app(g),
            ("GET" | "HEAD", ["v3", "apps", g, "routes"]) => cx.list_app_routes(g),
            ("GET" | "HEAD", ["v3", "apps", g, "droplets"]) => cx.list_app_droplets(g),
            ("GET" | "HEAD", ["v3", "apps", g, "packages"]) => cx.list_app_packages(g),
            ("GET" | "HEAD", ["v3", "apps", g, "env"]) => cx.app_env(g),
            ("GET" | "HEAD", ["v3", "apps", g, "environment_variables"]) => cx.app_environment_variables(g),
            ("PATCH", ["v3", "apps", g, "environment_variables"]) => cx.patch_environment_variables(g),
            ("GET" | "HEAD", ["v3", "builds"]) => cx.list_builds(),
            ("GET" | "HEAD", ["v3", "deployments"]) => cx.list_deployments(),
            ("GET" | "HEAD", ["v3", "droplets"]) => cx.list_droplets(),
            ("GET" | "HEAD", ["v3", "buildpacks"]) => cx.list_buildpacks(),
            ("GET" | "HEAD", ["v3", "apps", g, "processes"]) => cx.list_app_processes(g),
            ("GET" | "HEAD", ["v3", "apps", g, "processes", t]) => cx.get_app_process(g, t),
            ("GET" | "HEAD", ["v3", "apps", g, "processes", t, "stats"]) => cx.app_process_stats(g, t),
            ("GET" | "HEAD", ["v3", "apps", g, "droplets", "current"]) => cx.current_droplet(g),
            ("GET" | "HEAD", ["v3", "apps", g, "relationships", "current_droplet"]) => cx.current_droplet_rel(g),
            ("PATCH", ["v3", "apps", g, "relationships", "current_droplet"]) => cx.set_current_droplet(g),
            ("POST", ["v3", "apps", g, "actions", action]) => cx.app_action(g, action),
            ("GET" | "HEAD", ["v3", "processes"]) => cx.list_processes(),
            ("GET" | "HEAD", ["v3", "processes", g]) => cx.get_process(g),
            ("GET" | "HEAD", ["v3", "processes", g, "stats"]) => cx.process_stats(g),
            ("POST", ["v3", "processes", g, "actions", "scale"]) => cx.scale_process(g),
            ("GET" | "HEAD", ["v3", "packages"]) => cx.list_packages(),
            ("GET" | "HEAD", ["v3", "packages", g]) => cx.get_package(g),
            ("GET" | "HEAD", ["v3", "builds", g]) => cx.get_build(g),
            ("POST", ["v3", "builds"]) => cx.create_build(),
            ("GET" | "HEAD", ["v3", "droplets", g]) => cx.get_droplet(g),
            ("POST", ["v3", "deployments"]) => cx.create_deployment(),
            ("GET" | "HEAD", ["v3", "deployments", g]) => cx.get_deployment(g),
            ("POST", ["v3", "deployments", g, "actions", "cancel"]) => cx.cancel_deployment(g),
            ("GET" | "HEAD", ["v3", "audit_events"]) => cx.list_audit_events(),
            ("GET" | "HEAD", ["v3", "routes"]) => cx.list_routes(),
            ("POST", ["v3", "routes"]) => cx.create_route(),
            ("GET" | "HEAD", ["v3", "routes", g]) => cx.get_route(g),
            ("PATCH", ["v3", "routes", g]) => cx.patch_route(g),
            ("DELETE", ["v3", "routes", g]) => cx.delete_route(g),
            ("GET" | "HEAD", ["v3", "routes", g, "destinations"]) => cx.list_destinations(g),
            ("POST", ["v3", "routes", g, "destinations"]) => cx.insert_destinations(g),
            ("PATCH", ["v3", "routes", g, "destinations"]) => cx.replace_destinations(g),
            ("DELETE", ["v3", "routes", g, "destinations", d]) => cx.delete_destination(g, d),
            ("PATCH", ["v3", "routes", g, "destinations", d]) => cx.update_destination(g, d),
            ("GET" | "HEAD", ["v3", "routes", g, "relationships", "shared_spaces"]) => cx.shared_spaces(g),
            ("POST", ["v3", "routes", g, "relationships", "shared_spaces"]) => cx.share_route(g),
            ("DELETE", ["v3", "routes", g, "relationships", "shared_spaces", s]) => cx.unshare_route(g, s),
            ("GET" | "HEAD", ["v3", "service_route_bindings"]) => cx.list_route_bindings(),
            ("GET" | "HEAD", ["v3", "service_route_bindings", g]) => cx.get_route_binding(g),
            _ => Err(ApiError::unknown_request()),
        }
    }

    // The same table as `dispatch`, without side effects: a path CC does not serve is 404 before
    // authentication.
    fn known(&self, m: &Method, segs: &[&str]) -> bool {
        let get = m == Method::GET || m == Method::HEAD;
        let (post, patch, delete) = (m == Method::POST, m == Method::PATCH, m == Method::DELETE);
        match segs {
            ["v3", "organizations" | "spaces" | "domains" | "processes" | "packages" | "droplets" | "buildpacks"] => {
                get
            }
            ["v3", "organizations" | "spaces" | "domains" | "jobs" | "packages" | "droplets", _] => get,
            ["v3", "apps" | "audit_events" | "service_route_bindings"] => get,
            ["v3", "service_route_bindings", _] => get,
            ["v3", "apps", _] => get || patch,
            ["v3", "apps", _, "routes" | "processes" | "droplets" | "packages" | "env"] => get,
            ["v3", "apps", _, "processes", _] | ["v3", "apps", _, "processes", _, "stats"] => get,
            ["v3", "apps", _, "droplets", "current"] => get,
            ["v3", "apps", _, "environment_variables"] => get || patch,
            ["v3", "apps", _, "relationships", "current_droplet"] => get || patch,
            ["v3", "apps", _, "actions", "start" | "stop" | "restart"] => post,
            ["v3", "processes", _] | ["v3", "processes", _, "stats"] => get,
            ["v3", "processes", _, "actions", "scale"] => post,
            ["v3", "builds"] | ["v3", "deployments"] => get || post,
            ["v3", "builds" | "deployments", _] => get,
            ["v3", "deployments", _, "actions", "cancel"] => post,
            ["v3", "routes"] => get || post,
            ["v3", "routes", _] => get || patch || delete,
            ["v3", "routes", _, "destinations"] => get || post || patch,
            ["v3", "routes", _, "destinations", _] => delete || patch,
            ["v3", "routes", _, "relationships", "shared_spaces"] => get || post,
            ["v3", "routes", _, "relationships", "shared_spaces", _] => delete,
            _ => false,
        }
    }

    fn root(&self) -> Value {
        let b = &self.base_url;
        let uaa = self.uaa.url();
        json!({ "links": {
            "self": { "href": b },
            "cloud_controller_v3": { "href": format!("{b}/v3"), "meta": { "version": API_VERSION } },
            "network_policy_v0": { "href": format!("{b}/networking/v0/external") },
            "network_policy_v1": { "href": format!("{b}/networking/v1/external") },
            "login": { "href": uaa },
            "uaa": { "href": uaa },
            "credhub": null,
            "routing": null,
            "logging": null,
            "log_cache": null,
            "log_stream": null,
            "app_ssh": { "href": "ssh.example.org:2222",
                         "meta": { "host_key_fingerprint": "Y411oivJwZCUQnXHq83mdM5SKCK4ftyoSXI31RRe4Zs",
                                   "oauth_client": "ssh-proxy" } },
        }})
    }

    fn v3_root(&self) -> Value {
        let b = &self.base_url;
        let names = [
            "app_usage_events",
            "apps",
            "audit_events",
            "buildpacks",
            "builds",
            "deployments",
            "domains",
            "droplets",
            "environment_variable_groups",
            "feature_flags",
            "info",
            "isolation_segments",
            "organizations",
            "organization_quotas",
            "packages",
            "processes",
            "resource_matches",
            "roles",
            "routes",
            "security_groups",
            "service_brokers",
            "service_instances",
            "service_offerings",
            "service_plans",
            "service_usage_events",
            "spaces",
            "space_quotas",
            "stacks",
            "tasks",
            "users",
        ];
        let mut links = Map::new();
        links.insert("self".to_owned(), json!({ "href": format!("{b}/v3") }));
        for n in names {
            let mut link = json!({ "href": format!("{b}/v3/{n}") });
            if n == "service_instances" {
                link["experimental"] = json!(true);
            }
            links.insert(n.to_owned(), link);
        }
        json!({ "links": links })
    }

    fn info(&self) -> Value {
        let rate = self.faults.rate_limit_config();
        json!({
            "build": "cf-double",
            "cli_version": { "minimum": "6.22.0", "recommended": "latest" },
            "custom": {},
            "description": "Cloud Foundry double for tests",
            "name": "cf-double",
            "version": 3,
            "osbapi_version": "2.15",
            "rate_limits": {
                "enabled": rate.is_some(),
                // CC publishes the instance's share, not the global limit (CC
                // `app/controllers/v3/info_controller.rb`: `per_process_general_limit`).
                "general_limit": rate.as_ref().map(|r| r.per_instance(r.limit)),
                "reset_interval_in_minutes": rate.as_ref().map(|r| r.reset_interval.as_secs().div_ceil(60)),
            },
            "links": {
                "self": { "href": format!("{}/v3/info", self.base_url) },
                "support": { "href": "https://github.com/cloudfoundry" },
            },
        })
    }
}

/// Whose decorators an `include` selects (see [`Cx::included`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Included {
    Apps,
    Routes,
    Spaces,
}

/// `SpacesListMessage` (cloud_controller_ng `app/messages/spaces_list_message.rb`): `guids` from
/// `ListMessage`, its own keys, `label_selector` from `MetadataListMessage`.
const SPACE_KEYS: &[&str] = &["guids", "names", "organization_guids", "include", "label_selector"];
/// `IncludeParamValidator` values of `SpacesListMessage` and `SpaceShowMessage`.
const SPACE_INCLUDES: &[&str] = &["org", "organization"];

/// A handler's context.
pub(crate) struct Cx<'a> {
    pub(crate) cc: &'a Arc<Cc>,
    pub(crate) actor: &'a Actor,
    pub(crate) call: &'a Call,
}

impl Cx<'_> {
    pub(crate) fn base(&self) -> &str {
        &self.cc.base_url
    }

    pub(crate) fn st(&self) -> MutexGuard<'_, State> {
        self.cc.state()
    }

    /// Parses the list query against `allowed` keys.
    pub(crate) fn list_query(&self, allowed: &[&str], order_by: &[&str]) -> Result<ListQuery, ApiError> {
        pagination::parse(self.call.query.as_deref(), allowed, order_by)
    }

    /// Parses a JSON object body with only `allowed` top-level keys.
    pub(crate) fn body(&self, allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
        let text = if self.call.body.is_empty() { &b"{}"[..] } else { &self.call.body[..] };
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(text) else {
            return Err(ApiError::parse_error());
        };
        let unknown: Vec<String> =
            map.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("'{k}'")).collect();
        if !unknown.is_empty() {
            return Err(ApiError::unprocessable(format!("Unknown field(s): {}", unknown.join(", "))));
        }
        Ok(map)
    }

    pub(crate) fn can_read_space(&self, st: &State, space_guid: &str) -> bool {
        self.actor.read_all || !st.roles_in(&self.actor.id, space_guid).is_empty()
    }

    pub(crate) fn can_read_org(&self, st: &State, org_guid: &str) -> bool {
        self.actor.read_all || st.spaces.iter().any(|s| s.org_guid == org_guid && self.can_read_space(st, &s.guid))
    }

    /// 403 unless the actor is admin or holds one of `roles` in the space; then 403 if the org is
    /// suspended (admins are exempt, as in CC).
    pub(crate) fn require_write(&self, st: &State, space_guid: &str, roles: &[Role]) -> Result<(), ApiError> {
        if self.actor.admin {
            return Ok(());
        }
        if !st.roles_in(&self.actor.id, space_guid).iter().any(|r| roles.contains(r)) {
            return Err(ApiError::not_authorized());
        }
        let org = st.space(space_guid).and_then(|s| st.org(&s.org_guid));
        if org.is_some_and(|o| o.suspended) {
            return Err(ApiError::org_suspended());
        }
        Ok(())
    }

    /// Parses the query as `rules`' message class would; errors are 400 CF-BadQueryParameter
    /// (`invalid_param!`, as every list and most show actions call it).
    pub(crate) fn query(&self, rules: &Rules<'_>) -> Result<ListQuery, ApiError> {
        pagination::check(self.call.query.as_deref(), rules).map_err(|e| ApiError::bad_query(&e.join(", ")))
    }

    /// A paginated list response.
    pub(crate) fn page(&self, items: &[Value], q: &ListQuery, path: &str) -> Response {
        self.page_including(items, q, path, None)
    }

    /// A paginated list response with the `included` object of `kind`'s decorators.
    pub(crate) fn page_including(
        &self,
        items: &[Value],
        q: &ListQuery,
        path: &str,
        kind: Option<Included>,
    ) -> Response {
        let (resources, pagination) = pagination::paginate(items, q, self.base(), path);
        let included = kind.and_then(|k| self.included(&self.st(), q, &resources, k));
        let mut v = json!({ "pagination": pagination, "resources": resources });
        if let Some(included) = included {
            v["included"] = included;
        }
        ok(v)
    }

    /// The `included` object CC's decorators add for `resources`, or `None` when `include` names
    /// none of them. Each decorator reads what it needs from the presented resources'
    /// relationships, as CC's read the models:
    /// - `IncludeRouteDomainDecorator` (`domain`): the routes' domains, ordered by name;
    /// - `IncludeSpaceDecorator` (`space`, `space.organization`): the resources' spaces the caller
    ///   may read (an org auditor sees routes, not their spaces), by creation;
    /// - `IncludeOrganizationDecorator` (`org`, `space.organization`): the orgs of those spaces,
    ///   readable or not, by creation;
    /// - `IncludeSpaceOrganizationDecorator` (spaces: `org`, `organization`): the spaces' orgs;
    /// - `IncludeRoutePoliciesDecorator` (`route_policies`): the double has no route policies.
    ///
    /// (cloud_controller_ng `app/decorators/include_*_decorator.rb`; which decorators an action
    /// applies: `apps_controller.rb#index/#show`, `routes_controller.rb#index/#show`,
    /// `spaces_controller.rb#index/#show`; `routes_controller.rb#index_by_app` applies none.)
    pub(crate) fn included(&self, st: &State, q: &ListQuery, resources: &[Value], kind: Included) -> Option<Value> {
        let guids = |pointer: &str| {
            let mut out: Vec<&str> = Vec::new();
            for r in resources {
                if let Some(g) = str_at(r, pointer)
                    && !out.contains(&g)
                {
                    out.push(g);
                }
            }
            out
        };
        let mut included = Map::new();
        if kind == Included::Routes && q.includes(&["domain"]) {
            let wanted = guids("/relationships/domain/data/guid");
            let mut domains: Vec<&state::Domain> =
                st.domains.iter().filter(|d| wanted.contains(&d.guid.as_str())).collect();
            domains.sort_by(|a, b| a.name.cmp(&b.name));
            included.insert(
                "domains".to_owned(),
                Value::Array(domains.into_iter().map(|d| present::domain(self.base(), d)).collect()),
            );
        }
        if kind != Included::Spaces {
            let space_guids = guids("/relationships/space/data/guid");
            if q.includes(&["space", "space.organization"]) {
                let spaces: Vec<Value> = st
                    .spaces
                    .iter()
                    .filter(|s| space_guids.contains(&s.guid.as_str()) && self.can_read_space(st, &s.guid))
                    .map(|s| present::space(self.base(), s))
                    .collect();
                included.insert("spaces".to_owned(), Value::Array(spaces));
            }
            if q.includes(&["org", "space.organization"]) {
                let orgs: Vec<&str> = st
                    .spaces
                    .iter()
                    .filter(|s| space_guids.contains(&s.guid.as_str()))
                    .map(|s| s.org_guid.as_str())
                    .collect();
                let orgs: Vec<Value> = st
                    .orgs
                    .iter()
                    .filter(|o| orgs.contains(&o.guid.as_str()))
                    .map(|o| present::org(self.base(), o))
                    .collect();
                included.insert("organizations".to_owned(), Value::Array(orgs));
            }
        }
        if kind == Included::Spaces && q.includes(&["org", "organization"]) {
            let wanted = guids("/relationships/organization/data/guid");
            let orgs: Vec<Value> = st
                .orgs
                .iter()
                .filter(|o| wanted.contains(&o.guid.as_str()))
                .map(|o| present::org(self.base(), o))
                .collect();
            included.insert("organizations".to_owned(), Value::Array(orgs));
        }
        if kind == Included::Routes && q.includes(&["route_policies"]) {
            included.insert("route_policies".to_owned(), Value::Array(Vec::new()));
        }
        (!included.is_empty()).then_some(Value::Object(included))
    }

    pub(crate) fn list_orgs(&self) -> Result<Response, ApiError> {
        // OrgsListMessage (app/messages/orgs_list_message.rb); `isolation_segment_guid` is the
        // nesting key of /v3/isolation_segments/:guid/organizations, and the double has no
        // isolation segments, so it selects no org.
        let q = self.list_query(
            &["guids", "names", "isolation_segment_guid", "label_selector"],
            &["created_at", "updated_at", "name"],
        )?;
        let st = self.st();
        let items: Vec<Value> = st
            .orgs
            .iter()
            .filter(|o| self.can_read_org(&st, &o.guid))
            .filter(|o| {
                q.allows("guids", &o.guid)
                    && q.allows("names", &o.name)
                    && !q.filters.contains_key("isolation_segment_guid")
                    && q.selects(&o.metadata.labels)
            })
            .map(|o| present::org(self.base(), o))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/organizations"))
    }

    pub(crate) fn get_org(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let o =
            st.org(g).filter(|o| self.can_read_org(&st, &o.guid)).ok_or_else(|| ApiError::not_found("Organization"))?;
        Ok(ok(present::org(self.base(), o)))
    }

    pub(crate) fn list_spaces(&self) -> Result<Response, ApiError> {
        let q =
            self.query(&Rules::list(SPACE_KEYS, &["created_at", "updated_at", "name"]).with_include(SPACE_INCLUDES))?;
        let st = self.st();
        let items: Vec<Value> = st
            .spaces
            .iter()
            .filter(|s| self.can_read_space(&st, &s.guid))
            .filter(|s| {
                q.allows("guids", &s.guid)
                    && q.allows("names", &s.name)
                    && q.allows("organization_guids", &s.org_guid)
                    && q.selects(&s.metadata.labels)
            })
            .map(|s| present::space(self.base(), s))
            .collect();
        drop(st);
        Ok(self.page_including(&ordered(items, &q), &q, "/v3/spaces", Some(Included::Spaces)))
    }

    pub(crate) fn get_space(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let s =
            st.space(g).filter(|s| self.can_read_space(&st, &s.guid)).ok_or_else(|| ApiError::not_found("Space"))?;
        // spaces_controller.rb#show looks the space up before it validates the query.
        let q = self.query(&Rules::show(&["include"], SPACE_INCLUDES))?;
        let mut v = present::space(self.base(), s);
        if let Some(included) = self.included(&st, &q, std::slice::from_ref(&v), Included::Spaces) {
            v["included"] = included;
        }
        Ok(ok(v))
    }

    pub(crate) fn domain_visible(&self, st: &State, d: &state::Domain) -> bool {
        d.org_guid.as_deref().is_none_or(|org| self.can_read_org(st, org))
    }

    pub(crate) fn list_domains(&self) -> Result<Response, ApiError> {
        let q = self
            // DomainsListMessage registers `guids` again after ListMessage's, so CC's "Valid
            // parameters" text names it twice (app/messages/domains_list_message.rb).
            .list_query(
                &["guids", "names", "guids", "organization_guids", "label_selector"],
                &["created_at", "updated_at"],
            )?;
        let st = self.st();
        let items: Vec<Value> = st
            .domains
            .iter()
            .filter(|d| self.domain_visible(&st, d))
            .filter(|d| {
                q.allows("guids", &d.guid)
                    && q.allows("names", &d.name)
                    && q.list("organization_guids")
                        .is_none_or(|orgs| d.org_guid.as_ref().is_some_and(|o| orgs.contains(o)))
                    && q.selects(&d.metadata.labels)
            })
            .map(|d| present::domain(self.base(), d))
            .collect();
        Ok(self.page(&ordered(items, &q), &q, "/v3/domains"))
    }

    pub(crate) fn get_domain(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let d = st.domain(g).filter(|d| self.domain_visible(&st, d)).ok_or_else(|| ApiError::not_found("Domain"))?;
        Ok(ok(present::domain(self.base(), d)))
    }

    pub(crate) fn get_job(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let j = st.jobs.iter().find(|j| j.guid == g).ok_or_else(|| ApiError::not_found("Job"))?;
        Ok(ok(present::job(self.base(), j)))
    }
}

/// Applies `order_by`: creation order, reversed for `-created_at`/`-updated_at`, or by `name`.
pub(crate) fn ordered(mut items: Vec<Value>, q: &ListQuery) -> Vec<Value> {
    match q.order_by.as_deref() {
        Some("-created_at" | "-updated_at") => items.reverse(),
        Some(o @ ("name" | "-name" | "+name" | "state" | "-state")) => {
            let key = o.trim_start_matches(['-', '+']).to_owned();
            items.sort_by(|a, b| a[&key].as_str().cmp(&b[&key].as_str()));
            if o.starts_with('-') {
                items.reverse();
            }
        }
        _ => {}
    }
    items
}

/// A JSON answer with CC's content type.
/// The request id CC answers with in `X-VCAP-Request-ID`: the caller's `X-VCAP-Request-ID` (else
/// `X-Request-ID`), stripped to `[A-Za-z0-9_-]`, cut to 255 characters, plus `::` and a fresh
/// UUID; a fresh UUID alone without either (cloud_controller_ng
/// middleware/vcap_request_context_setter.rb#external_request_id / #internal_request_id).
pub fn vcap_request_id(headers: &HeaderMap) -> String {
    let given = ["x-vcap-request-id", "x-request-id"]
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        // `.presence`: an empty or blank value counts as absent.
        .find(|v| !v.trim().is_empty());
    let uuid = uuid::Uuid::new_v4();
    match given {
        Some(id) => {
            let clean: String =
                id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(255).collect();
            format!("{clean}::{uuid}")
        }
        None => uuid.to_string(),
    }
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    r
}

/// 200 with `v`.
pub(crate) fn ok(v: Value) -> Response {
    json_response(StatusCode::OK, &v)
}

/// `value` at `pointer` as a string.
pub(crate) fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}
