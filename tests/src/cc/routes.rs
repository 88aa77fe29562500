//! Routes and route destinations (FACTS §1.4, §1.5): insert is idempotent and answers 200 with
//! every destination; replace diffs and keeps the guids of unchanged destinations, in one step;
//! delete answers 204, and 422 for an unknown destination.

use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{
    Cx, Included, json_response, ok, ordered, present,
    state::{self, DEFAULT_HTTP_PORT, Destination, Lifecycle, Role, Route, State, guid},
    str_at,
};
use crate::{clock::now_iso, error::ApiError, metadata::Metadata, pagination::Rules};

/// At most this many destinations per route.
pub(crate) const MAX_DESTINATIONS: usize = 100;

/// At most this many destinations per `app` object in one destinations request
/// (route_update_destinations_message.rb: "must have at most 10 exposed ports.").
pub(crate) const MAX_PORTS_PER_APP: usize = 10;

const ROUTE_WRITERS: &[Role] = &[Role::Developer, Role::Supporter];

/// `RoutesListMessage`'s keys after `guids`, in `allowed_keys` order (cloud_controller_ng
/// `app/messages/routes_list_message.rb`).
const ROUTE_LIST_KEYS: &[&str] = &[
    "guids",
    "hosts",
    "space_guids",
    "organization_guids",
    "domain_guids",
    "paths",
    "app_guids",
    "include",
    "label_selector",
    "ports",
    "service_instance_guids",
];

/// `IncludeParamValidator` values of `RoutesListMessage` and `RouteShowMessage`.
const ROUTE_INCLUDES: &[&str] = &["domain", "space", "space.organization", "route_policies"];

/// `RoutesListMessage` is a plain `ListMessage`: it accepts `label_selector` but has no
/// `LabelSelectorRequirementValidator`, so a selector CC cannot parse reaches the fetcher.
const ROUTE_LIST: Rules<'static> = Rules {
    keys: ROUTE_LIST_KEYS,
    order_by: &["created_at", "updated_at"],
    include: ROUTE_INCLUDES,
    selector_validated: false,
    paginated: true,
};

/// A destination as requested, before defaults.
#[derive(Debug, Clone)]
struct Spec {
    app_guid: String,
    process_type: String,
    port: Option<u16>,
    protocol: Option<String>,
    weight: Option<u32>,
}

impl Cx<'_> {
    fn route_visible(&self, st: &State, r: &Route) -> bool {
        self.can_read_space(st, &r.space_guid) || r.shared_spaces.iter().any(|s| self.can_read_space(st, s))
    }

    fn find_route<'s>(&self, st: &'s State, g: &str) -> Result<&'s Route, ApiError> {
        st.route(g).filter(|r| self.route_visible(st, r)).ok_or_else(|| ApiError::not_found("Route"))
    }

    fn routes_matching(&self, st: &State, q: &crate::pagination::ListQuery, app: Option<&str>) -> Vec<Route> {
        st.routes
            .iter()
            .filter(|r| self.route_visible(st, r))
            .filter(|r| {
                let org = st.space(&r.space_guid).map(|s| s.org_guid.as_str()).unwrap_or("");
                q.allows("guids", &r.guid)
                    && q.allows("hosts", &r.host)
                    && q.allows("paths", &r.path)
                    && q.allows("domain_guids", &r.domain_guid)
                    && q.allows("organization_guids", org)
                    && q.list("space_guids").is_none_or(|spaces| {
                        spaces.contains(&r.space_guid) || r.shared_spaces.iter().any(|s| spaces.contains(s))
                    })
                    && q.list("ports").is_none_or(|ports| r.port.is_some_and(|p| ports.contains(&p.to_string())))
                    && q.list("app_guids").is_none_or(|apps| r.destinations.iter().any(|d| apps.contains(&d.app_guid)))
                    && app.is_none_or(|a| r.destinations.iter().any(|d| d.app_guid == a))
                    && q.list("service_instance_guids").is_none_or(|instances| {
                        // `RouteFetcher`: routes bound to one of the instances.
                        st.route_bindings
                            .iter()
                            .any(|b| b.route_guid == r.guid && instances.contains(&b.service_instance_guid))
                    })
                    && q.selects(&r.metadata.labels)
            })
            .cloned()
            .collect()
    }

    pub(crate) fn list_routes(&self) -> Result<Response, ApiError> {
        let q = self.query(&ROUTE_LIST)?;
        if q.selector_unparsable {
            return Err(ApiError::unknown());
        }
        let st = self.st();
        let items: Vec<Value> =
            self.routes_matching(&st, &q, None).iter().map(|r| present::route(self.base(), &st, r)).collect();
        drop(st);
        Ok(self.page_including(&ordered(items, &q), &q, "/v3/routes", Some(Included::Routes)))
    }

    pub(crate) fn list_app_routes(&self, app_guid: &str) -> Result<Response, ApiError> {
        // routes_controller.rb#index_by_app merges `app_guids: <guid>` into the query (so it
        // replaces one sent, and shows in the pagination hrefs), validates `include` but applies
        // no decorator.
        let mut q = self.query(&ROUTE_LIST)?;
        q.filters.insert("app_guids".to_owned(), app_guid.to_owned());
        let st = self.st();
        st.app(app_guid)
            .filter(|a| self.can_read_space(&st, &a.space_guid))
            .ok_or_else(|| ApiError::not_found("App"))?;
        if q.selector_unparsable {
            return Err(ApiError::unknown());
        }
        let items: Vec<Value> =
            self.routes_matching(&st, &q, Some(app_guid)).iter().map(|r| present::route(self.base(), &st, r)).collect();
        Ok(self.page(&ordered(items, &q), &q, &format!("/v3/apps/{app_guid}/routes")))
    }

    pub(crate) fn get_route(&self, g: &str) -> Result<Response, ApiError> {
        // routes_controller.rb#show: `RouteShowMessage` (keys `guid`, `include`) fails with
        // `unprocessable!` (422), not 400, and before the route is looked up.
        let q =
            crate::pagination::check(self.call.query.as_deref(), &Rules::show(&["guid", "include"], ROUTE_INCLUDES))
                .map_err(|e| ApiError::unprocessable(e.join(", ")))?;
        let st = self.st();
        let r = self.find_route(&st, g)?;
        let mut v = present::route(self.base(), &st, r);
        if let Some(included) = self.included(&st, &q, std::slice::from_ref(&v), Included::Routes) {
            v["included"] = included;
        }
        Ok(ok(v))
    }

    pub(crate) fn create_route(&self) -> Result<Response, ApiError> {
        let body = self.body(&["host", "path", "port", "relationships", "options", "metadata"])?;
        let body = Value::Object(body);
        let space_guid = str_at(&body, "/relationships/space/data/guid").unwrap_or("").to_owned();
        let domain_guid = str_at(&body, "/relationships/domain/data/guid").unwrap_or("").to_owned();
        let mut st = self.st();
        if st.space(&space_guid).is_none_or(|s| !self.can_read_space(&st, &s.guid)) {
            return Err(ApiError::unprocessable(
                "Invalid space. Ensure that the space exists and you have access to it.",
            ));
        }
        let Some(domain) = st.domain(&domain_guid).filter(|d| self.domain_visible(&st, d)).cloned() else {
            return Err(ApiError::unprocessable(
                "Invalid domain. Ensure that the domain exists and you have access to it.",
            ));
        };
        self.require_write(&st, &space_guid, ROUTE_WRITERS)?;
        let host = body.get("host").and_then(Value::as_str).unwrap_or("").to_owned();
        let path = body.get("path").and_then(Value::as_str).unwrap_or("").to_owned();
        let port = body.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok());
        if domain.router_group.is_some() && port.is_none() {
            return Err(ApiError::unprocessable("Routes with protocol 'tcp' must specify a port."));
        }
        if domain.internal && !path.is_empty() {
            return Err(ApiError::unprocessable("Paths are not supported for internal domains."));
        }
        if let Some(why) = path_error(&path) {
            return Err(ApiError::unprocessable(why));
        }
        if st.routes.iter().any(|r| r.domain_guid == domain_guid && r.host == host && r.path == path && r.port == port)
        {
            // cloud_controller_ng app/actions/route_create.rb#validation_error_host! (no path)
            // and #validation_error_path! (with one).
            let message = match (host.is_empty(), path.is_empty()) {
                (true, true) => format!("Route already exists for domain '{}'.", domain.name),
                (false, true) => format!("Route already exists with host '{host}' for domain '{}'.", domain.name),
                (true, false) => format!("Route already exists with path '{path}' for domain '{}'.", domain.name),
                (false, false) => {
                    format!("Route already exists with host '{host}' and path '{path}' for domain '{}'.", domain.name)
                }
            };
            return Err(ApiError::unprocessable(message));
        }
        let mut metadata = Metadata::default();
        if let Some(m) = body.get("metadata") {
            metadata.patch(m)?;
        }
        let now = now_iso();
        let route = Route {
            guid: guid(),
            host,
            path,
            port,
            domain_guid,
            space_guid,
            shared_spaces: Vec::new(),
            options: Some(body.get("options").and_then(Value::as_object).cloned().unwrap_or_default()),
            destinations: Vec::new(),
            created_at: now.clone(),
            updated_at: now,
            metadata,
        };
        let v = present::route(self.base(), &st, &route);
        st.routes.push(route);
        Ok(json_response(StatusCode::CREATED, &v))
    }

    pub(crate) fn patch_route(&self, g: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&["options", "metadata"])?);
        let mut st = self.st();
        let r = self.find_route(&st, g)?;
        self.require_write(&st, &r.space_guid.clone(), ROUTE_WRITERS)?;
        let mut metadata = r.metadata.clone();
        if let Some(m) = body.get("metadata") {
            metadata.patch(m)?;
        }
        let Some(route) = st.route_mut(g) else { return Err(ApiError::not_found("Route")) };
        route.metadata = metadata;
        if let Some(options) = body.get("options").and_then(Value::as_object) {
            let target = route.options.get_or_insert_with(Default::default);
            for (k, v) in options {
                if v.is_null() {
                    target.remove(k);
                } else {
                    target.insert(k.clone(), v.clone());
                }
            }
        }
        route.updated_at = now_iso();
        let route = route.clone();
        Ok(ok(present::route(self.base(), &st, &route)))
    }

    pub(crate) fn delete_route(&self, g: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        let space = self.find_route(&st, g)?.space_guid.clone();
        self.require_write(&st, &space, ROUTE_WRITERS)?;
        st.delete_route(g);
        let job = st.complete_job("route.delete");
        let mut r = json_response(StatusCode::ACCEPTED, &Value::Null);
        *r.body_mut() = axum::body::Body::empty();
        r.headers_mut().remove(header::CONTENT_TYPE);
        if let Ok(v) = HeaderValue::from_str(&format!("{}/v3/jobs/{job}", self.base())) {
            r.headers_mut().insert(header::LOCATION, v);
        }
        Ok(r)
    }

    pub(crate) fn list_destinations(&self, g: &str) -> Result<Response, ApiError> {
        // Not paginated: only `guids` and `app_guids`; anything else is 422 (CC `unprocessable!`).
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(self.call.query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
        let unknown: Vec<String> =
            pairs.iter().filter(|(k, _)| k != "guids" && k != "app_guids").map(|(k, _)| format!("'{k}'")).collect();
        if !unknown.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "Unknown query parameter(s): {}. Valid parameters are: 'guids', 'app_guids'",
                unknown.join(", ")
            )));
        }
        let filter = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| crate::pagination::to_array(v));
        let (guids, apps) = (filter("guids"), filter("app_guids"));
        let st = self.st();
        let mut r = self.find_route(&st, g)?.clone();
        r.destinations.retain(|d| {
            guids.as_ref().is_none_or(|g| g.contains(&d.guid)) && apps.as_ref().is_none_or(|a| a.contains(&d.app_guid))
        });
        Ok(ok(present::destinations(self.base(), &st, &r)))
    }

    /// Validates a destinations body (CC `RouteUpdateDestinationsMessage`).
    fn destination_specs(&self, replace: bool) -> Result<Vec<Spec>, ApiError> {
        let body = self.body(&["destinations"])?;
        let min = usize::from(!replace);
        let range_error = || {
            ApiError::unprocessable(format!(
                "Destinations must be an array containing between {min} and {MAX_DESTINATIONS} destination objects."
            ))
        };
        let Some(list) = body.get("destinations").and_then(Value::as_array) else { return Err(range_error()) };
        if list.len() < min || list.len() > MAX_DESTINATIONS {
            return Err(range_error());
        }
        // app/messages/route_update_destinations_message.rb#validate_destination_contents: only
        // "not an object", "no app" and "other keys" skip a destination; otherwise the app, weight,
        // port and protocol checks each add their own error. Every destination that gets that far
        // counts towards its `app` object's ports (the `app` hash as sent is the key, so
        // `{"guid": g}` and `{"guid": g, "process": …}` count apart), and more than 10 adds one
        // "Process must have at most 10 exposed ports." after the per-destination errors.
        let mut errors = Vec::new();
        let mut specs = Vec::new();
        let mut ports_per_app: Vec<(&Value, usize)> = Vec::new();
        for (i, d) in list.iter().enumerate() {
            let e = |m: &str| format!("Destinations[{i}]: {m}");
            let Some(obj) = d.as_object() else {
                errors.push(e("must be an object."));
                continue;
            };
            let Some(app) = obj.get("app") else {
                errors.push(e("must have an \"app\"."));
                continue;
            };
            if obj.keys().any(|k| !["app", "weight", "port", "protocol"].contains(&k.as_str())) {
                errors.push(e("must have only \"app\" and optionally \"weight\", \"port\" or \"protocol\"."));
                continue;
            }
            match ports_per_app.iter_mut().find(|(a, _)| *a == app) {
                Some((_, n)) => *n += 1,
                None => ports_per_app.push((app, 1)),
            }
            let mut valid = true;
            let mut fail = |m: &str| {
                errors.push(e(m));
                valid = false;
            };
            // #validate_app: a guid of 1 to 199 characters; other keys in `app` are not checked.
            let app_guid = app.get("guid").and_then(Value::as_str).filter(|g| (1..200).contains(&g.chars().count()));
            let process_type = match (app_guid, app.get("process")) {
                (None, _) => {
                    fail("app must have the structure {\"guid\": \"app_guid\"}");
                    None
                }
                (Some(_), None | Some(Value::Null)) => Some("web".to_owned()),
                (Some(_), Some(p)) => match p.as_object().filter(|o| o.len() == 1).and_then(|o| o.get("type")) {
                    Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                    _ => {
                        fail("process must have the structure {\"type\": \"process_type\"}");
                        None
                    }
                },
            };
            // `return unless weight` / `port` / `protocol`: null and false are "not given".
            let given = |k: &str| obj.get(k).filter(|v| !matches!(v, Value::Null | Value::Bool(false)));
            let weight = match given("weight") {
                None => None,
                Some(_) if !replace => {
                    fail("weighted destinations can only be used when replacing all destinations.");
                    None
                }
                Some(w) => {
                    let w = w.as_u64().filter(|w| (1..=100).contains(w)).and_then(|w| u32::try_from(w).ok());
                    if w.is_none() {
                        fail("weight must be a positive integer between 1 and 100.");
                    }
                    w
                }
            };
            let port = match given("port") {
                None => None,
                Some(p) => {
                    let p = p.as_u64().filter(|p| (1024..=65535).contains(p)).and_then(|p| u16::try_from(p).ok());
                    if p.is_none() {
                        fail("port must be a positive integer between 1024 and 65535 inclusive.");
                    }
                    p
                }
            };
            let protocol = match given("protocol") {
                None => None,
                Some(Value::String(p)) if ["http1", "http2", "tcp"].contains(&p.as_str()) => Some(p.clone()),
                Some(_) => {
                    fail("protocol must be 'http1', 'http2' or 'tcp'.");
                    None
                }
            };
            if let (true, Some(app_guid), Some(process_type)) = (valid, app_guid, process_type) {
                specs.push(Spec { app_guid: app_guid.to_owned(), process_type, port, protocol, weight });
            }
        }
        if ports_per_app.iter().any(|(_, n)| *n > MAX_PORTS_PER_APP) {
            errors.push(format!("Process must have at most {MAX_PORTS_PER_APP} exposed ports."));
        }
        if errors.is_empty() && replace {
            let weighted = specs.iter().filter(|s| s.weight.is_some()).count();
            if weighted != 0 && weighted != specs.len() {
                errors.push("Destinations cannot contain both weighted and unweighted destinations.".to_owned());
            } else if weighted != 0 && specs.iter().filter_map(|s| s.weight).sum::<u32>() != 100 {
                // app/messages/route_update_destinations_message.rb: errors.add(:destinations,
                // 'must have weights that sum to 100.').
                errors.push("Destinations must have weights that sum to 100.".to_owned());
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::unprocessable(errors.join(", ")));
        }
        Ok(specs)
    }

    /// The checks after body validation, in CC's order: route (404), permission (403), apps exist
    /// (422), apps in the route's space or a space it is shared into (422).
    fn route_for_destinations(&self, st: &State, g: &str, specs: &[Spec]) -> Result<Route, ApiError> {
        let route = self.find_route(st, g)?.clone();
        self.require_write(st, &route.space_guid, ROUTE_WRITERS)?;
        let mut missing: Vec<String> = Vec::new();
        let mut hidden: Vec<String> = Vec::new();
        for s in specs {
            match st.app(&s.app_guid) {
                None => missing.push(s.app_guid.clone()),
                Some(a) if !self.can_read_space(st, &a.space_guid) => hidden.push(s.app_guid.clone()),
                Some(_) => {}
            }
        }
        missing.dedup();
        hidden.dedup();
        let quoted = |v: &[String]| v.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ");
        if !missing.is_empty() {
            return Err(ApiError::unprocessable(format!("App(s) with guid(s) {} do not exist.", quoted(&missing))));
        }
        if !hidden.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "App(s) with guid(s) {} you do not have access.",
                quoted(&hidden)
            )));
        }
        for s in specs {
            let space = st.app(&s.app_guid).map(|a| a.space_guid.as_str()).unwrap_or("");
            if space != route.space_guid && !route.shared_spaces.iter().any(|x| x == space) {
                return Err(ApiError::unprocessable(
                    "Routes destinations must be in either the route's space or the route's shared spaces",
                ));
            }
        }
        Ok(route)
    }

    fn materialise(st: &State, route: &Route, s: &Spec) -> Result<Destination, ApiError> {
        let tcp = st.domain(&route.domain_guid).is_some_and(|d| d.router_group.is_some());
        // update_route_destinations.rb#update_protocol: the route's default when none is given.
        let protocol = s.protocol.clone().unwrap_or_else(|| if tcp { "tcp" } else { "http1" }.to_owned());
        let now = now_iso();
        Ok(Destination {
            guid: guid(),
            app_guid: s.app_guid.clone(),
            process_type: s.process_type.clone(),
            // No port: 8080 for a buildpack app, -1 for the others (`default_port`).
            port: s.port.or_else(|| {
                let buildpack = st.app(&s.app_guid).is_none_or(|a| a.lifecycle == Lifecycle::Buildpack);
                buildpack.then_some(DEFAULT_HTTP_PORT)
            }),
            protocol,
            weight: s.weight,
            created_at: now.clone(),
            updated_at: now,
        })
    }

    /// update_route_destinations.rb#validate_protocol_matches!, which `#update` runs for each
    /// destination it is about to add (so only after the cap, duplicate and existing checks).
    fn protocol_mismatch(st: &State, route: &Route, d: &Destination) -> Option<String> {
        let route_protocol = st.domain(&route.domain_guid).map_or("http", state::Domain::protocol);
        let wanted = if d.protocol == "tcp" { "tcp" } else { "http" };
        (route_protocol != wanted).then(|| {
            let options = if route_protocol == "tcp" { "tcp" } else { "http1, http2" };
            format!("Cannot use '{}' protocol for {route_protocol} routes; valid options are: [{options}].", d.protocol)
        })
    }

    pub(crate) fn insert_destinations(&self, g: &str) -> Result<Response, ApiError> {
        let specs = self.destination_specs(false)?;
        let mut st = self.st();
        let route = self.route_for_destinations(&st, g, &specs)?;
        // CC's order (app/actions/update_route_destinations.rb#add): the cap counts existing plus
        // requested entries before any de-duplication (#validate_max_destinations!), then
        // duplicates within the request raise DuplicateDestinationError, which
        // routes_controller.rb#insert_destinations does not rescue (only replace does): a 500.
        if route.destinations.len() + specs.len() > MAX_DESTINATIONS {
            return Err(ApiError::unprocessable("Routes can be mapped to at most 100 destinations."));
        }
        let mut requested: Vec<Destination> = Vec::new();
        for s in &specs {
            let d = Self::materialise(&st, &route, s)?;
            if requested.iter().any(|r| r.same_mapping(&d)) {
                return Err(ApiError::unknown());
            }
            requested.push(d);
        }
        if route.destinations.iter().any(|d| d.weight.is_some()) {
            return Err(ApiError::unprocessable(
                "Destinations cannot be inserted when there are weighted destinations already configured.",
            ));
        }
        let mut all = route.destinations.clone();
        for d in requested {
            if let Some(existing) =
                all.iter().find(|e| e.app_guid == d.app_guid && e.process_type == d.process_type && e.port == d.port)
            {
                if existing.protocol != d.protocol {
                    return Err(ApiError::unprocessable(format!(
                        "Cannot add destination with protocol: {}. Destination already exists for route: {}, app: {}, process: {}, and protocol: {}.",
                        d.protocol,
                        st.route_url(&route),
                        d.app_guid,
                        d.process_type,
                        existing.protocol
                    )));
                }
                // Same (app, process, port): CC silently skips it, which makes insert idempotent.
                continue;
            }
            if let Some(e) = Self::protocol_mismatch(&st, &route, &d) {
                return Err(ApiError::unprocessable(e));
            }
            all.push(d);
        }
        st.map_destinations(g, all, (&self.actor.id, &self.actor.name));
        runner_verdict(&st)?;
        let route = st.route(g).cloned().ok_or_else(|| ApiError::not_found("Route"))?;
        Ok(ok(present::destinations(self.base(), &st, &route)))
    }

    pub(crate) fn replace_destinations(&self, g: &str) -> Result<Response, ApiError> {
        let specs = self.destination_specs(true)?;
        let mut st = self.st();
        let route = self.route_for_destinations(&st, g, &specs)?;
        let mut wanted = Vec::new();
        for s in &specs {
            let d = Self::materialise(&st, &route, s)?;
            if wanted.iter().any(|w: &Destination| w.same_mapping(&d)) {
                return Err(ApiError::unprocessable("Destinations cannot contain duplicate entries"));
            }
            wanted.push(d);
        }
        // The protocol check raises UpdateRouteDestinations::Error inside #update, which
        // routes_controller.rb#replace_destinations does not rescue (only duplicates): a 500.
        if wanted.iter().any(|w| Self::protocol_mismatch(&st, &route, w).is_some()) {
            return Err(ApiError::unknown());
        }
        // Unchanged destinations keep their guid; only the difference is added and removed.
        let new: Vec<Destination> = wanted
            .into_iter()
            .map(|w| route.destinations.iter().find(|e| e.same_mapping(&w)).cloned().unwrap_or(w))
            .collect();
        st.map_destinations(g, new, (&self.actor.id, &self.actor.name));
        runner_verdict(&st)?;
        let route = st.route(g).cloned().ok_or_else(|| ApiError::not_found("Route"))?;
        Ok(ok(present::destinations(self.base(), &st, &route)))
    }

    pub(crate) fn delete_destination(&self, g: &str, d: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        let route = self.find_route(&st, g)?.clone();
        self.require_write(&st, &route.space_guid, ROUTE_WRITERS)?;
        let Some(dest) = route.destinations.iter().find(|x| x.guid == d) else {
            return Err(ApiError::unprocessable(
                "Unable to unmap route from destination. Ensure the route has a destination with this guid.",
            ));
        };
        if dest.weight.is_some() {
            return Err(ApiError::unprocessable("Weighted destinations cannot be deleted individually."));
        }
        let rest: Vec<Destination> = route.destinations.iter().filter(|x| x.guid != d).cloned().collect();
        st.map_destinations(g, rest, (&self.actor.id, &self.actor.name));
        runner_verdict(&st)?;
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    }

    /// routes_controller.rb#update_destination: `RouteDestinationUpdateMessage` (422 "Destination
    /// protocol must be …"), route (404), permission (403), a destination of this route (422, the
    /// unmap text), then route_destination_update.rb#validate_protocol_matches_route!, which also
    /// refuses a body without `protocol` on a TCP route.
    pub(crate) fn update_destination(&self, g: &str, d: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&["protocol"])?);
        let protocol = match body.get("protocol") {
            None => None,
            Some(Value::String(p)) if ["http1", "http2", "tcp"].contains(&p.as_str()) => Some(p.clone()),
            Some(_) => return Err(ApiError::unprocessable("Destination protocol must be 'http1', 'http2' or 'tcp'.")),
        };
        let mut st = self.st();
        let route = self.find_route(&st, g)?.clone();
        self.require_write(&st, &route.space_guid, ROUTE_WRITERS)?;
        if !route.destinations.iter().any(|x| x.guid == d) {
            return Err(ApiError::unprocessable(
                "Unable to unmap route from destination. Ensure the route has a destination with this guid.",
            ));
        }
        let tcp = st.domain(&route.domain_guid).is_some_and(|x| x.router_group.is_some());
        if tcp && protocol.as_deref() != Some("tcp") {
            return Err(ApiError::unprocessable(
                "Destination protocol must be 'tcp' if the parent route's protocol is 'tcp'",
            ));
        }
        if !tcp && protocol.as_deref() == Some("tcp") {
            return Err(ApiError::unprocessable(
                "Destination protocol must be 'http1' or 'http2' if the parent route's protocol is 'http'",
            ));
        }
        let Some(r) = st.route_mut(g) else { return Err(ApiError::not_found("Route")) };
        let Some(dest) = r.destinations.iter_mut().find(|x| x.guid == d) else {
            return Err(ApiError::not_found("Route"));
        };
        if let Some(p) = protocol {
            dest.protocol = p;
        }
        dest.updated_at = now_iso();
        let dest = dest.clone();
        let mut v = present::destination(&st, &dest);
        v["links"] = json!({
            "destinations": { "href": format!("{}/v3/routes/{g}/destinations", self.base()) },
            "route": { "href": format!("{}/v3/routes/{g}", self.base()) },
        });
        Ok(ok(v))
    }

    fn shared_spaces_json(&self, r: &Route) -> Value {
        json!({
            "data": r.shared_spaces.iter().map(|s| json!({ "guid": s })).collect::<Vec<_>>(),
            "links": { "self": { "href": format!("{}/v3/routes/{}/relationships/shared_spaces", self.base(), r.guid) } },
        })
    }

    pub(crate) fn shared_spaces(&self, g: &str) -> Result<Response, ApiError> {
        let st = self.st();
        let r = self.find_route(&st, g)?;
        Ok(ok(self.shared_spaces_json(r)))
    }

    pub(crate) fn share_route(&self, g: &str) -> Result<Response, ApiError> {
        let body = Value::Object(self.body(&["data"])?);
        let targets: Vec<String> = body
            .get("data")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.get("guid").and_then(Value::as_str).map(str::to_owned)).collect())
            .unwrap_or_default();
        let mut st = self.st();
        let route = self.find_route(&st, g)?.clone();
        self.require_write(&st, &route.space_guid, &[Role::Developer])?;
        for t in &targets {
            if st.space(t).is_none_or(|s| !self.can_read_space(&st, &s.guid)) {
                return Err(ApiError::unprocessable(format!(
                    "Unable to share route {} with spaces ['{t}']. Ensure the spaces exist and that you have access to them.",
                    st.route_url(&route)
                )));
            }
        }
        let Some(r) = st.route_mut(g) else { return Err(ApiError::not_found("Route")) };
        for t in targets {
            if t != r.space_guid && !r.shared_spaces.contains(&t) {
                r.shared_spaces.push(t);
            }
        }
        let r = r.clone();
        Ok(ok(self.shared_spaces_json(&r)))
    }

    pub(crate) fn unshare_route(&self, g: &str, space: &str) -> Result<Response, ApiError> {
        let mut st = self.st();
        let route = self.find_route(&st, g)?.clone();
        self.require_write(&st, &route.space_guid, &[Role::Developer])?;
        if let Some(r) = st.route_mut(g) {
            r.shared_spaces.retain(|s| s != space);
        }
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        Ok(r)
    }
}

/// The answer after a destination change was committed: 500 `CF-RunnerError` when Diego refused
/// a process's desired-LRP update (its routes past the limit), raised from CC's `after_commit`
/// hook, so the change stays (`app/models/runtime/process_route_handler.rb`,
/// `lib/cloud_controller/diego/bbs_apps_client.rb#handle_diego_errors`).
/// CC's answer to a route path it refuses: cloud_controller_ng `app/models/runtime/route.rb
/// #validate_path` (the checks, in this order) and `app/actions/route_create.rb
/// #validation_error_path!` (the messages; the first matching one is raised). `invalid_path` is
/// `UriUtils.is_uri?("pathcheck://HOST#{path}")`: here whitespace, control characters, `#` and
/// `//` are taken as failing it (UNCONFIRMED: Ruby's URI parser may accept more or less).
fn path_error(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return None;
    }
    let invalid = path.contains("//") || path.chars().any(|c| !c.is_ascii_graphic() || c == '#');
    let checks = [
        (invalid, "Path is invalid."),
        (path.chars().count() > 128, "Path exceeds 128 characters."),
        (path == "/", "Path cannot be a single '/'."),
        (!path.starts_with('/'), "Path is missing the beginning '/'."),
        (path.contains('?'), "Path cannot contain '?'."),
    ];
    checks.into_iter().find(|(bad, _)| *bad).map(|(_, why)| why)
}

fn runner_verdict(st: &crate::cc::state::State) -> Result<(), ApiError> {
    if st.diego_refused.is_empty() { Ok(()) } else { Err(ApiError::runner_error()) }
}

#[cfg(test)]
mod tests {
    use super::path_error;

    #[test]
    fn route_paths_are_refused_with_cc_messages() {
        assert_eq!(path_error(""), None);
        assert_eq!(path_error("/webhooks"), None);
        assert_eq!(path_error("/"), Some("Path cannot be a single '/'."));
        assert_eq!(path_error("webhooks"), Some("Path is missing the beginning '/'."));
        assert_eq!(path_error("/a?b"), Some("Path cannot contain '?'."));
        assert_eq!(path_error(&format!("/{}", "a".repeat(128))), Some("Path exceeds 128 characters."));
        assert_eq!(path_error("/a b"), Some("Path is invalid."));
    }
}
