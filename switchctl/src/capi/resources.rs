//! The Cloud Controller resources switchctl reads and changes, on top of the generic requests of
//! [`super::transport`]. Each method states whether it is safe to repeat ([`Repeat`]); the module
//! docs of [`crate::capi`] say why.

use reqwest::Method;

use super::{Client, retry::Repeat, types::*};
use crate::error::Error;

impl Client {
    /// `GET /` of the API at `api`, without a token: where the login server is.
    pub async fn root(&self) -> Result<Root, Error> {
        self.get("/", &[]).await
    }

    /// The org named `name`, if visible.
    pub async fn find_org(&self, name: &str) -> Result<Option<Organization>, Error> {
        let page: Paginated<Organization> = self.get("/v3/organizations", &[("names", name)]).await?;
        Ok(page.resources.into_iter().next())
    }

    /// The space named `name` in the org `org_guid`, if visible.
    pub async fn find_space(&self, org_guid: &str, name: &str) -> Result<Option<Space>, Error> {
        let query = [("names", name), ("organization_guids", org_guid)];
        let page: Paginated<Space> = self.get("/v3/spaces", &query).await?;
        Ok(page.resources.into_iter().next())
    }

    /// The app named `name` in the space `space_guid` (`GET /v3/apps?names=…&space_guids=…`, as cf does).
    pub async fn find_app(&self, space_guid: &str, name: &str) -> Result<Option<App>, Error> {
        let page: Paginated<App> = self.get("/v3/apps", &[("names", name), ("space_guids", space_guid)]).await?;
        Ok(page.resources.into_iter().find(|a| a.name == name))
    }

    /// An app by GUID.
    pub async fn get_app(&self, guid: &str) -> Result<App, Error> {
        self.get(&format!("/v3/apps/{}", seg(guid)), &[]).await
    }

    /// The app's current droplet, `None` when it has none.
    pub async fn current_droplet(&self, app_guid: &str) -> Result<Option<Droplet>, Error> {
        match self.get(&format!("/v3/apps/{}/droplets/current", seg(app_guid)), &[]).await {
            Ok(droplet) => Ok(Some(droplet)),
            Err(e) if e.api().is_some_and(|a| a.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All processes of an app.
    pub async fn app_processes(&self, app_guid: &str) -> Result<Vec<Process>, Error> {
        self.get_all(&format!("/v3/apps/{}/processes", seg(app_guid)), &[]).await
    }

    /// Per-instance stats of a process (not paginated).
    pub async fn process_stats(&self, process_guid: &str) -> Result<Vec<ProcessStats>, Error> {
        let list: StatsList = self.get(&format!("/v3/processes/{}/stats", seg(process_guid)), &[]).await?;
        Ok(list.resources)
    }

    /// Per-instance stats of the app's web process in one request (`GET
    /// /v3/apps/:guid/processes/web/stats`, not the process list and then its stats); `None` when
    /// the app has no web process (CC answers 404 `CF-ResourceNotFound` "Process not found").
    pub async fn web_stats(&self, app_guid: &str) -> Result<Option<Vec<ProcessStats>>, Error> {
        match self.get::<StatsList>(&format!("/v3/apps/{}/processes/web/stats", seg(app_guid)), &[]).await {
            Ok(list) => Ok(Some(list.resources)),
            Err(e) if e.api().is_some_and(|a| a.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every route with at least one destination to the app (all pages of `GET /v3/apps/:guid/routes`).
    pub async fn app_routes(&self, app_guid: &str) -> Result<Vec<Route>, Error> {
        self.get_all(&format!("/v3/apps/{}/routes", seg(app_guid)), &[]).await
    }

    /// Every route of (or shared into) `space_guid` matching a label selector such as
    /// `switchctl.example.com/app=guid` (all pages).
    pub async fn routes_by_label(&self, space_guid: &str, label_selector: &str) -> Result<Vec<Route>, Error> {
        self.get_all("/v3/routes", &[("space_guids", space_guid), ("label_selector", label_selector)]).await
    }

    /// A route by GUID, with its destinations and metadata: what `on` and `off` read back after a
    /// failed request, to report what the Cloud Controller holds.
    pub async fn get_route(&self, guid: &str) -> Result<Route, Error> {
        self.get(&format!("/v3/routes/{}", seg(guid)), &[]).await
    }

    /// The newest `audit.app.map-route` and `audit.app.unmap-route` events of an app (one page of
    /// 100, newest first): who mapped and unmapped its routes when, with each destination's
    /// process, port and protocol (cloud_controller_ng `app/repositories/app_event_repository.rb`,
    /// `record_unmap_route`). CC keeps them 31 days (`audit_events.cutoff_age_in_days`).
    pub async fn route_mapping_events(&self, app_guid: &str) -> Result<Vec<AuditEvent>, Error> {
        let query = [
            ("types", "audit.app.map-route,audit.app.unmap-route"),
            ("target_guids", app_guid),
            ("order_by", "-created_at"),
            ("per_page", "100"),
        ];
        let page: Paginated<AuditEvent> = self.get("/v3/audit_events", &query).await?;
        Ok(page.resources)
    }

    /// Removes one destination (how a switch takes back the side it just added). `Ok(true)` if
    /// removed, `Ok(false)` if the route had no such destination (already removed, e.g. by a
    /// retried request whose first answer was lost: CC then answers 422 "Unable to unmap…").
    pub async fn delete_destination(&self, route_guid: &str, destination_guid: &str) -> Result<bool, Error> {
        let path = format!("/v3/routes/{}/destinations/{}", seg(route_guid), seg(destination_guid));
        match self.execute(Method::DELETE, self.url(&path, &[]), None, Repeat::Safe).await {
            Ok(_) => Ok(true),
            Err(Error::Api(e)) if e.status == 422 && e.detail.starts_with("Unable to unmap route from destination") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The HTTP route `host`.`domain``path` (`path` empty: none), in `space_guid` when given, if
    /// it exists: `GET /v3/routes` filtered as `cf map-route` looks for one (cf CLI
    /// `actor/v7action/route.go#GetRouteByAttributes`; `RoutesListMessage` filters,
    /// cloud_controller_ng `app/messages/routes_list_message.rb`).
    pub async fn find_route(
        &self,
        space_guid: Option<&str>,
        domain_guid: &str,
        host: &str,
        path: &str,
    ) -> Result<Option<Route>, Error> {
        let mut query = vec![("domain_guids", domain_guid), ("hosts", host)];
        if let Some(space) = space_guid {
            query.push(("space_guids", space));
        }
        if !path.is_empty() {
            query.push(("paths", path));
        }
        let routes: Vec<Route> = self.get_all("/v3/routes", &query).await?;
        // CC matches `hosts`/`paths` exactly (`route_fetcher.rb`); checked again here all the same,
        // and a route without a path is asked for by leaving the filter out.
        Ok(routes.into_iter().find(|r| r.host == host && r.path == path && r.port.is_none()))
    }

    /// Creates the HTTP route `host`.`domain``path` in `space_guid` with `labels` (`POST
    /// /v3/routes`, cloud_controller_ng `routes_controller.rb#create`, `route_create_message.rb`;
    /// 201). Not repeated blindly: a retry after a lost answer would get 422 "Route already
    /// exists" for the route it created (`app/actions/route_create.rb`); the caller looks it up.
    pub async fn create_route(
        &self,
        space_guid: &str,
        domain_guid: &str,
        (host, path): (&str, &str),
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Result<Route, Error> {
        let mut body = serde_json::json!({
            "host": host,
            "relationships": {
                "space": {"data": {"guid": space_guid}},
                "domain": {"data": {"guid": domain_guid}},
            },
        });
        if !path.is_empty() {
            body["path"] = serde_json::json!(path);
        }
        if !labels.is_empty() {
            body["metadata"] = serde_json::json!({"labels": labels});
        }
        self.send_json(Method::POST, "/v3/routes", &body, Repeat::Unsafe).await
    }

    /// Deletes a route (`DELETE /v3/routes/:guid`: 202 and a `route.delete` job,
    /// `routes_controller.rb#destroy`, `RouteDeleteAction`). `Ok(false)` when it is already gone
    /// (404). The job is not awaited: CC unmaps and deletes in it, and gorouter drops the route once
    /// unregistered (UNCONFIRMED how long a real job takes; the double completes it at once).
    pub async fn delete_route(&self, guid: &str) -> Result<bool, Error> {
        let path = format!("/v3/routes/{}", seg(guid));
        match self.execute(Method::DELETE, self.url(&path, &[]), None, Repeat::Safe).await {
            Ok(_) => Ok(true),
            Err(Error::Api(e)) if e.status == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets or removes a route's labels and annotations (SpaceDeveloper or SpaceSupporter).
    pub async fn patch_route_metadata(&self, guid: &str, patch: &MetadataPatch) -> Result<Route, Error> {
        let body = serde_json::json!({ "metadata": patch });
        self.send_json(Method::PATCH, &format!("/v3/routes/{}", seg(guid)), &body, Repeat::Safe).await
    }

    /// The route services `route_guids` are bound to, by route GUID: one request per
    /// [`ROUTES_PER_BINDINGS_REQUEST`] routes (`GET /v3/service_route_bindings?route_guids=a,b,…
    /// &include=service_instance`), not one per route. A route has at most one binding
    /// (cloud_controller_ng `app/actions/service_route_binding_create.rb`: "A route may only be
    /// bound to a single service instance"), so each request's answer fits one page.
    pub async fn route_services(
        &self,
        route_guids: &[&str],
    ) -> Result<std::collections::HashMap<String, BoundService>, Error> {
        let mut bound = std::collections::HashMap::new();
        for chunk in route_guids.chunks(ROUTES_PER_BINDINGS_REQUEST) {
            let guids = chunk.join(",");
            let per_page = chunk.len().max(1).to_string();
            let query =
                [("route_guids", guids.as_str()), ("include", "service_instance"), ("per_page", per_page.as_str())];
            let page: RouteBindingPage = self.get("/v3/service_route_bindings", &query).await?;
            for b in page.resources {
                let (Some(route), Some(instance)) =
                    (b.relationships.route.guid(), b.relationships.service_instance.guid())
                else {
                    continue;
                };
                let name = page.included.service_instances.iter().find(|i| i.guid == instance).map(|i| i.name.clone());
                bound.insert(
                    route.to_owned(),
                    BoundService {
                        name: name.unwrap_or_else(|| instance.to_owned()),
                        instance_guid: instance.to_owned(),
                        url: b.route_service_url,
                    },
                );
            }
        }
        Ok(bound)
    }

    /// A domain by GUID.
    pub async fn get_domain(&self, guid: &str) -> Result<Domain, Error> {
        self.get(&format!("/v3/domains/{}", seg(guid)), &[]).await
    }

    /// A route's destinations (not paginated).
    pub async fn route_destinations(&self, route_guid: &str) -> Result<Vec<Destination>, Error> {
        let list: DestinationList = self.get(&format!("/v3/routes/{}/destinations", seg(route_guid)), &[]).await?;
        Ok(list.destinations)
    }

    /// Adds destinations (`POST`, as `cf map-route`); existing equal ones are kept. All of the
    /// route's destinations afterwards.
    pub async fn insert_destinations(
        &self,
        route_guid: &str,
        destinations: &[NewDestination],
    ) -> Result<Vec<Destination>, Error> {
        // Safe to repeat: CC skips a destination equal to one the route has.
        let body = serde_json::json!({ "destinations": destinations });
        let path = format!("/v3/routes/{}/destinations", seg(route_guid));
        let list: DestinationList = self.send_json(Method::POST, &path, &body, Repeat::Safe).await?;
        Ok(list.destinations)
    }

    /// The newest `READY` package of an app (what `cf restage` stages).
    pub async fn latest_ready_package(&self, app_guid: &str) -> Result<Option<Package>, Error> {
        let query = [
            ("app_guids", app_guid),
            ("states", "READY"),
            ("order_by", "-created_at"),
            ("per_page", "1"),
            ("page", "1"),
        ];
        let page: Paginated<Package> = self.get("/v3/packages", &query).await?;
        Ok(page.resources.into_iter().next())
    }

    /// Starts staging a package (`POST /v3/builds`). Not repeated: a lost answer is reported.
    pub async fn create_build(&self, package_guid: &str) -> Result<Build, Error> {
        let body = serde_json::json!({ "package": { "guid": package_guid } });
        self.send_json(Method::POST, "/v3/builds", &body, Repeat::Unsafe).await
    }

    /// A build by GUID.
    pub async fn get_build(&self, guid: &str) -> Result<Build, Error> {
        self.get(&format!("/v3/builds/{}", seg(guid)), &[]).await
    }

    /// The app's deployments still in progress (`status_values=ACTIVE`): while one deploys, CC
    /// refuses to change the app's current droplet.
    pub async fn active_deployments(&self, app_guid: &str) -> Result<Vec<Deployment>, Error> {
        self.get_all("/v3/deployments", &[("app_guids", app_guid), ("status_values", "ACTIVE")]).await
    }

    /// The app's user-provided environment variables (`GET /v3/apps/:guid/environment_variables`,
    /// cloud_controller_ng `apps_controller.rb#show_environment_variables`: `{"var": {…}}`; a
    /// Space Developer may read them). They may hold secrets: the transport never logs bodies.
    pub async fn app_environment_variables(
        &self,
        app_guid: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        let body: serde_json::Value =
            self.get(&format!("/v3/apps/{}/environment_variables", seg(app_guid)), &[]).await?;
        Ok(body.get("var").and_then(serde_json::Value::as_object).cloned().unwrap_or_default())
    }

    /// Merges `vars` into the app's environment variables (`PATCH
    /// /v3/apps/:guid/environment_variables`, `apps_controller.rb#update_environment_variables`:
    /// keys merged, a `null` value deletes its key). Repeating sets the same values: harmless. The
    /// change reaches an instance only when it starts again.
    pub async fn patch_environment_variables(
        &self,
        app_guid: &str,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), Error> {
        let body = serde_json::json!({ "var": vars });
        let path = format!("/v3/apps/{}/environment_variables", seg(app_guid));
        let _: serde_json::Value = self.send_json(Method::PATCH, &path, &body, Repeat::Safe).await?;
        Ok(())
    }

    /// Starts a rolling deployment of the app's current droplet (`POST /v3/deployments`,
    /// `deployments_controller.rb#create`): its instances are replaced one by one, each new one
    /// started from the app's current environment. Not repeated: a second deployment would
    /// supersede the first.
    pub async fn create_rolling_deployment(&self, app_guid: &str) -> Result<Deployment, Error> {
        let body = serde_json::json!({
            "strategy": "rolling",
            "relationships": { "app": { "data": { "guid": app_guid } } },
        });
        self.send_json(Method::POST, "/v3/deployments", &body, Repeat::Unsafe).await
    }

    /// A deployment by GUID.
    pub async fn get_deployment(&self, guid: &str) -> Result<Deployment, Error> {
        self.get(&format!("/v3/deployments/{}", seg(guid)), &[]).await
    }

    /// Makes `droplet_guid` the app's current droplet (used at the next start).
    pub async fn set_current_droplet(&self, app_guid: &str, droplet_guid: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "data": { "guid": droplet_guid } });
        let path = format!("/v3/apps/{}/relationships/current_droplet", seg(app_guid));
        let _: serde_json::Value = self.send_json(Method::PATCH, &path, &body, Repeat::Safe).await?;
        Ok(())
    }

    /// Sets or removes an app's labels and annotations (Space Developer: cloud_controller_ng
    /// `apps_controller.rb#update`). Repeating is harmless: CAPI merges metadata.
    pub async fn patch_app_metadata(&self, guid: &str, patch: &MetadataPatch) -> Result<App, Error> {
        let body = serde_json::json!({ "metadata": patch });
        self.send_json(Method::PATCH, &format!("/v3/apps/{}", seg(guid)), &body, Repeat::Safe).await
    }

    /// Sets a process's desired instances (`POST /v3/processes/:guid/actions/scale`, 202 with the
    /// process: cloud_controller_ng `processes_controller.rb#scale`, `process_scale_message.rb`:
    /// an integer ≥ 0). Repeating sets the same count again: harmless.
    pub async fn scale_process(&self, guid: &str, instances: u32) -> Result<Process, Error> {
        let body = serde_json::json!({ "instances": instances });
        let path = format!("/v3/processes/{}/actions/scale", seg(guid));
        self.send_json(Method::POST, &path, &body, Repeat::Safe).await
    }

    /// Starts an app (sets its desired state; repeating is harmless).
    pub async fn start_app(&self, guid: &str) -> Result<App, Error> {
        let path = format!("/v3/apps/{}/actions/start", seg(guid));
        self.send_json(Method::POST, &path, &serde_json::json!({}), Repeat::Safe).await
    }

    /// Stops an app (sets its desired state; repeating is harmless).
    pub async fn stop_app(&self, guid: &str) -> Result<App, Error> {
        let path = format!("/v3/apps/{}/actions/stop", seg(guid));
        self.send_json(Method::POST, &path, &serde_json::json!({}), Repeat::Safe).await
    }
}
/// Route GUIDs per `GET /v3/service_route_bindings` (keeps the URL well under common limits:
/// 50 GUIDs are about 1.9 kB).
const ROUTES_PER_BINDINGS_REQUEST: usize = 50;

/// A GUID as one path segment (GUIDs need no escaping; anything else is escaped rather than
/// allowed to change the path).
fn seg(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped_rather_than_allowed_to_change_the_path() {
        assert_eq!(seg("1cb006ee-fb05-47e1-b541-c34179ddc446"), "1cb006ee-fb05-47e1-b541-c34179ddc446");
        assert_eq!(seg("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(seg(".."), "..");
    }
}
