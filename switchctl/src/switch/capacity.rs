//! How many routes a maintenance app can carry. Diego's BBS refuses a desired LRP whose routes
//! pass `maximumRouteLength` (128 KiB, bbs `models/desired_lrp.go`), and CC tells Diego of a new
//! route only after committing it (`app/models/runtime/process_route_handler.rb`, `after_commit`):
//! past the limit every further insert onto the maintenance app answers 500 `CF-RunnerError`
//! with the mapping kept, and the new routes never reach the routers. One maintenance app
//! carrying a whole fleet meets that somewhere around 700 to 900 routes.
//!
//! So `on` counts, before any change, the routes each maintenance app already carries plus the
//! ones the run would add, estimates their size as CC renders them, and refuses when that passes
//! [`SAFE_SHARE`] of the limit: the margin covers the entries the estimate leaves out (the SSH
//! route, `options`, route service URLs) and routes others map meanwhile.
//!
//! A fleet larger than one maintenance app can carry is spread over a pool ([`Spread`]): each new
//! route goes to the pool's app with the fewest bytes of routes so far, so the pool fills evenly
//! and the check above holds for each of its apps.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex, PoisonError},
};

use crate::capi::Route;

/// The share of Diego's limit `on` lets a maintenance app reach: three quarters.
pub const SAFE_SHARE: (u64, u64) = (3, 4);

/// The bytes one route adds to a process's routes, as CC renders it for Diego: one compact JSON
/// entry `{"hostnames":[uri],"port":8080,"route_service_url":null,"isolation_segment":null,
/// "protocol":"http1"}` plus its comma (cloud_controller_ng
/// `lib/cloud_controller/diego/app_recipe_builder.rb#generate_routes`, `uri` being the route's
/// host.domain/path, `protocol/routing_info.rb#http_info`).
pub fn route_bytes(uri: &str) -> u64 {
    const ENTRY: &str =
        r#"{"hostnames":[""],"port":8080,"route_service_url":null,"isolation_segment":null,"protocol":"http1"},"#;
    u64::try_from(ENTRY.len() + uri.len()).unwrap_or(u64::MAX)
}

/// What a maintenance app would carry after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// Routes it carries now.
    pub carried: usize,
    /// Routes the run would add.
    pub adding: usize,
    /// Estimated bytes of its routes now.
    pub carried_bytes: u64,
    /// Estimated bytes after the run.
    pub after_bytes: u64,
    /// The most `--routes-limit` lets it reach ([`SAFE_SHARE`] of it).
    pub allowed_bytes: u64,
}

impl Load {
    /// The maintenance app carrying `carried` (its routes now), after the run adds the routes at
    /// `adding` (their URLs, host.domain/path) it does not carry yet, under Diego's `limit`.
    pub fn of(carried: &[Route], adding: &[&str], limit: u64) -> Load {
        let known: HashSet<&str> = carried.iter().map(|r| r.url.as_str()).collect();
        let mut new: Vec<&str> = adding.iter().copied().filter(|u| !known.contains(u)).collect();
        new.sort_unstable();
        new.dedup();
        let carried_bytes: u64 = carried.iter().filter(|r| !r.is_tcp()).map(|r| route_bytes(&r.url)).sum();
        let added: u64 = new.iter().map(|u| route_bytes(u)).sum();
        Load {
            carried: carried.len(),
            adding: new.len(),
            carried_bytes,
            after_bytes: carried_bytes + added,
            allowed_bytes: limit / SAFE_SHARE.1 * SAFE_SHARE.0,
        }
    }

    /// Whether the run keeps the maintenance app within the allowed share.
    pub fn fits(&self) -> bool {
        self.after_bytes <= self.allowed_bytes
    }

    /// How many of the new routes would fit, at the new routes' average size.
    pub fn room(&self) -> usize {
        let added = self.after_bytes.saturating_sub(self.carried_bytes);
        if self.adding == 0 || added == 0 {
            return 0;
        }
        let average = added / self.adding as u64;
        usize::try_from(self.allowed_bytes.saturating_sub(self.carried_bytes) / average.max(1)).unwrap_or(usize::MAX)
    }
}

/// Which maintenance app of a pool each new route of a run goes to (cheap to clone; one per run).
#[derive(Debug, Clone, Default)]
pub struct Spread(Arc<Mutex<SpreadState>>);

#[derive(Debug, Default)]
struct SpreadState {
    /// Estimated bytes of each maintenance app's routes: carried, plus chosen in this run.
    bytes: HashMap<String, u64>,
    /// Route GUID → the maintenance app chosen for it in this run.
    chosen: HashMap<String, String>,
}

impl Spread {
    /// Tells the spread what `maint` carries before the run (once; later calls change nothing).
    pub fn seed(&self, maint: &str, carried: &[Route]) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .bytes
            .entry(maint.to_owned())
            .or_insert_with(|| carried.iter().filter(|r| !r.is_tcp()).map(|r| route_bytes(&r.url)).sum());
    }

    /// The maintenance app of `pool` (GUIDs, not empty) for the route `route_guid` at `url`: the
    /// one chosen for it earlier in this run (fleet members sharing the route must agree), else
    /// the one with the fewest bytes, the first of those on a tie.
    pub fn choose(&self, route_guid: &str, url: &str, pool: &[&str]) -> String {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(maint) = state.chosen.get(route_guid) {
            return maint.clone();
        }
        let least = pool.iter().min_by_key(|m| state.bytes.get(**m).copied().unwrap_or(0)).copied().unwrap_or_default();
        *state.bytes.entry(least.to_owned()).or_default() += route_bytes(url);
        state.chosen.insert(route_guid.to_owned(), least.to_owned());
        least.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route(url: &str) -> Route {
        serde_json::from_value(json!({
            "guid": url, "protocol": "http", "host": "", "path": "", "port": null, "url": url,
            "destinations": [], "metadata": {"labels": {}, "annotations": {}}
        }))
        .expect("route")
    }

    #[test]
    fn a_route_costs_what_cc_renders_for_it() {
        // `{"hostnames":["shop.apps.example.com"],"port":8080,"route_service_url":null,
        // "isolation_segment":null,"protocol":"http1"}` is 120 bytes, and a comma.
        assert_eq!(route_bytes("shop.apps.example.com"), 121);
        // So 128 KiB carry about 1080 such routes, and the safe share about 810.
        let load = Load::of(&[], &[], 128 * 1024);
        assert_eq!(load.allowed_bytes / route_bytes("shop.apps.example.com"), 812);
    }

    #[test]
    fn routes_already_carried_are_not_counted_twice_and_the_room_is_told() {
        let carried = [route("a.example.com"), route("b.example.com")];
        let adding = ["b.example.com", "c.example.com", "c.example.com", "d.example.com"];
        let one = route_bytes("a.example.com");
        let load = Load::of(&carried, &adding, one * 6);
        assert_eq!((load.carried, load.adding), (2, 2));
        assert_eq!(load.after_bytes, one * 4);
        assert!(load.fits(), "{load:?}");
        let tight = Load::of(&carried, &adding, one * 4);
        assert!(!tight.fits(), "{tight:?}");
        assert_eq!(tight.room(), 1, "three routes fit in three quarters of four: one more");
    }

    #[test]
    fn a_pool_fills_evenly_and_a_shared_route_keeps_its_choice() {
        let spread = Spread::default();
        spread.seed("m1", &[route("a.example.com"), route("b.example.com")]);
        spread.seed("m2", &[]);
        // m2 is empty: it takes routes until it carries as much as m1.
        let picks: Vec<String> =
            ["r1", "r2", "r3", "r4"].iter().map(|g| spread.choose(g, "x.example.com", &["m1", "m2"])).collect();
        assert_eq!(picks, ["m2", "m2", "m1", "m2"]);
        // Seeding again (another member of the space) changes nothing.
        spread.seed("m2", &[]);
        assert_eq!(spread.choose("r5", "x.example.com", &["m1", "m2"]), "m1");
        // The route chosen for one member is the route chosen for the other.
        assert_eq!(spread.choose("r2", "x.example.com", &["m1", "m2"]), "m2");
    }
}
