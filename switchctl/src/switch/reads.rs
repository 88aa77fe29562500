//! Reads the apps of a fleet share, asked for many apps at once before their surveys start: the
//! routes the apps have a destination on (one `GET /v3/routes?app_guids=a,b,…` per
//! [`APPS_PER_REQUEST`] apps, instead of a `GET /v3/apps/:guid/routes` each) and the routes'
//! route-service bindings (one request per 50 routes of the whole fleet, instead of at least one
//! per app). In a 500-app fleet with 2 routes each that is 10 + 20 requests instead of 1,000.
//!
//! A batch that fails leaves nothing behind: each app then asks on its own, as it did without the
//! batch, and a failure there is that app's alone (reported, nothing of it changed).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use crate::{
    capi::{BoundService, Client, Route},
    error::Error,
};

/// Apps per `GET /v3/routes?app_guids=…`: 50 GUIDs keep the URL under 2 KB, well within what
/// gorouter and CC's nginx accept.
pub const APPS_PER_REQUEST: usize = 50;

/// What the batches found (cheap to clone; one per run).
#[derive(Debug, Clone, Default)]
pub struct Reads(Arc<Mutex<Known>>);

#[derive(Debug, Default)]
struct Known {
    /// App GUID → the routes it has a destination on, for the apps a batch listed.
    mapped: HashMap<String, Vec<Route>>,
    /// Route GUID → the route service it is bound to, or `None`, for the routes a batch asked about.
    bindings: HashMap<String, Option<BoundService>>,
}

impl Reads {
    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists the routes of `apps` in batches and keeps them, with their bindings; the routes
    /// listed, to learn the bindings of.
    pub async fn prefetch_mapped(&self, client: &Client, apps: &[&str]) {
        let mut listed = Vec::new();
        for chunk in apps.chunks(APPS_PER_REQUEST) {
            let guids = chunk.join(",");
            let Ok(routes) = client.get_all::<Route>("/v3/routes", &[("app_guids", guids.as_str())]).await else {
                tracing::debug!("listing the routes of {} apps at once failed; each asks on its own", chunk.len());
                continue;
            };
            let mut known = self.known();
            for app in chunk {
                let mine = routes.iter().filter(|r| r.destinations.iter().any(|d| d.app.guid == *app)).cloned();
                known.mapped.insert((*app).to_owned(), mine.collect());
            }
            drop(known);
            listed.extend(routes);
        }
        self.prefetch_bindings(client, &listed).await;
    }

    /// Asks for the bindings of `routes` (HTTP ones; those already known are not asked again).
    pub async fn prefetch_bindings(&self, client: &Client, routes: &[Route]) {
        let guids: Vec<&str> = {
            let known = self.known();
            let mut guids: Vec<&str> = routes
                .iter()
                .filter(|r| !r.is_tcp() && !known.bindings.contains_key(&r.guid))
                .map(|r| r.guid.as_str())
                .collect();
            guids.sort_unstable();
            guids.dedup();
            guids
        };
        if !guids.is_empty()
            && let Ok(bound) = client.route_services(&guids).await
        {
            let mut known = self.known();
            for g in guids {
                known.bindings.insert(g.to_owned(), bound.get(g).cloned());
            }
        }
    }

    /// The routes `app_guid` has a destination on: from the batch, else its own list.
    pub async fn mapped(&self, client: &Client, app_guid: &str) -> Result<Vec<Route>, Error> {
        // Taken, not copied: each app's survey asks once.
        let batched = self.known().mapped.remove(app_guid);
        match batched {
            Some(routes) => Ok(routes),
            None => client.app_routes(app_guid).await,
        }
    }

    /// The route services `route_guids` are bound to, by route GUID: the batch's answers, and one
    /// request per 50 routes it did not ask about.
    pub async fn route_services(
        &self,
        client: &Client,
        route_guids: &[&str],
    ) -> Result<HashMap<String, BoundService>, Error> {
        let mut found = HashMap::new();
        let mut unknown = Vec::new();
        {
            let known = self.known();
            for g in route_guids {
                match known.bindings.get(*g) {
                    Some(Some(service)) => {
                        found.insert((*g).to_owned(), service.clone());
                    }
                    Some(None) => {}
                    None => unknown.push(*g),
                }
            }
        }
        if !unknown.is_empty() {
            found.extend(client.route_services(&unknown).await?);
        }
        Ok(found)
    }
}
