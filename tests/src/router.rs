//! Gorouter double: a reverse proxy that routes by `Host` and longest path prefix to the running
//! instances of each route's destinations, round robin. Tests register each process's instances as
//! loopback addresses; the CC double tells the router about route and instance changes. Real
//! instances ([`crate::instances`]) are registered one by one instead, each by its process guid
//! and index, with the same per-router delay as every other change.
//!
//! On Cloud Foundry a route change reaches the gorouter through Diego's route emitter and NATS,
//! one registration or unregistration per endpoint, so the two halves of a swap can arrive in
//! either order. The double reproduces that: each change waits its own random delay drawn from a
//! configurable range before it is applied, and later changes win by sequence number, not by
//! arrival order.
//!
//! A foundation runs several gorouters behind a load balancer that spreads *connections* (an L4
//! balancer: a whole keep-alive connection goes to one router). Every router subscribes to NATS on
//! its own and applies each registration when it arrives, so for a while two routers can disagree
//! about a route. [`several`] makes such routers: each has its own table and round-robin state and
//! draws its own delay per change, while the world they route to (the instances' addresses, the
//! delay range, the count of changes in flight) is one. [`Front`] is the balancer.
//!
//! Lookups follow gorouter's registry: the longest path prefix whose pool has endpoints, else the
//! deepest pool on the request's path even if empty, then the wildcard hosts `*.b.c`, `*.c`
//! (registry/registry.go#lookup over registry/container/trie.go#MatchUri and
//! route/uris.go#NextWildcard). `X-CF-APP-INSTANCE: APP_GUID:INDEX` picks one instance of the
//! pool (handlers/lookup.go, registry.go#LookupWithAppInstance).
//!
//! Registrations age, as on a foundation, when [`Freshness`] turns it on (off by default,
//! on in [`crate::Options::production`] on a scaled clock):
//!
//! - NATS core delivers at most once: a gorouter reconnecting to NATS misses what was published
//!   meanwhile, so a router can miss a registration or an unregistration that the others got
//!   ([`RouterDouble::lose_next`], [`RouterDouble::lose_randomly`]).
//! - That is why the route emitter re-sends every registration periodically, 20 s on a foundation
//!   ([`EMITTER_REFRESH`]; route-emitter scheduler/routebroadcastscheduler.go#Run,
//!   routehandlers/handler.go#EmitExternal): a missed registration is healed by the next refresh.
//!   A refresh renews the endpoint's `updated` time (route/pool.go#Put).
//! - And why gorouter prunes: every `prune_stale_droplets_interval` (30 s) it drops plain (non-TLS)
//!   endpoints not renewed within `droplet_stale_threshold` (120 s) (config/config.go
//!   `defaultConfig`, registry/registry.go#pruneStaleDroplets, route/pool.go#PruneEndpoints), so a
//!   missed unregistration of a plain endpoint heals within about 2 min. A pool that pruning
//!   empties is kept as an unmapping keeps it (see `Table::emptied`).
//! - TLS endpoints (a registration with `tls_port`, [`Freshness::tls`]) are never pruned that
//!   way: PruneEndpoints skips `useTls`. One goes only when a dial to it fails with a prunable
//!   error (route/pool.go#EndpointFailed, `fails.PrunableClassifiers`, which include `Dial`,
//!   proxy/fails/classifier_group.go). So a missed unregistration of a TLS endpoint lasts while
//!   the instance keeps running: that router sends a share of the route's requests to an app the
//!   API no longer maps there, until the instance stops.
//!
//! The emitter also re-sends each unregistration a few times (`unregistration_interval`,
//! `unregistration_send_count`; route-emitter unregistration/sender.go); the double does not
//! (UNCONFIRMED: diego-release's defaults for them were not read), so one lost unregistration is
//! lost for good, as when a router misses all the resends. In the double, staleness is kept per
//! registration as the CC double reports it (a destination, a real instance), not per
//! (route, address) pair: a destination's endpoints age together. Test-registered backends'
//! instance reports are never lost. A TLS endpoint pruned after a failed dial is back with the next
//! registration that names its route or its address (a refresh, while Diego reports it running).
//! A dead endpoint answers 502 `endpoint_failure` where gorouter would retry the request on another
//! endpoint (see [`RouterDouble::proxy`]).

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rand::Rng;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinSet,
};

use crate::{
    cc::state::{RouteEvent, RouteSink},
    route_service::{RouteServices, Verdict},
};

/// The header that asks gorouter for one instance of an app (handlers/lookup.go `CfAppInstance`).
pub const APP_INSTANCE_HEADER: &str = "x-cf-app-instance";

#[derive(Debug, Clone)]
struct Mapping {
    fqdn: String,
    path: String,
    app_guid: String,
    process_type: String,
    /// When a registration of it last arrived (route/pool.go#Put sets `updated` on every
    /// registration, a repeated one included): what staleness pruning looks at.
    seen: Instant,
}

/// A registered real instance.
#[derive(Debug, Clone)]
struct Live {
    app_guid: String,
    process_type: String,
    addr: SocketAddr,
    /// As [`Mapping::seen`].
    seen: Instant,
}

#[derive(Debug, Default)]
struct Table {
    // Destination guid → (last seq applied, mapping if registered). A tombstone (None) keeps the
    // seq so that a late "map" cannot resurrect a destination already unmapped.
    destinations: HashMap<String, (u64, Option<Mapping>)>,
    instances: HashMap<(String, String), (u64, Vec<bool>)>,
    // Real instances by (process guid, index) → (last seq applied, (app guid, process type,
    // address) while registered). A tombstone keeps the seq, as for destinations.
    live: HashMap<(String, u32), (u64, Option<Live>)>,
    round_robin: HashMap<String, usize>,
    // TLS endpoints gorouter pruned after a dial to them failed, by (route key, app guid,
    // address), until a registration of them arrives again (route/pool.go#EndpointFailed, #Put).
    failed: HashSet<(String, String, SocketAddr)>,
    // Route key → when its last destination was unmapped or its last endpoint pruned. Gorouter
    // keeps an emptied pool for `empty_pool_timeout` when `empty_pool_response_code_503` is on,
    // answering 503 no_endpoints instead of 404 unknown_route (gorouter registry/registry.go#Unregister
    // and #pruneStaleDroplets; handlers/lookup.go#ServeHTTP `pool.IsEmpty()`). routing-release's
    // jobs/gorouter/spec defaults are `empty_pool_response_code_503: true` but
    // `empty_pool_timeout: "0s"`, under which registry.go deletes an emptied pool at once (404);
    // the double keeps it 10 s, as an operator who sets the timeout has it.
    emptied: HashMap<String, Instant>,
    /// Bumped by every change, so a router can keep the pools it computed until the next one.
    generation: u64,
}

/// How long an emptied pool keeps answering 503 before gorouter prunes it (see `Table::emptied`).
const EMPTY_POOL_TIMEOUT: Duration = Duration::from_secs(10);

/// One endpoint of a pool: an instance of an app's process, as the route emitter registers it
/// (`ApplicationId`, `PrivateInstanceIndex`, address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    app_guid: String,
    index: u32,
    addr: SocketAddr,
}

/// What the router does with one request.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    /// No pool for the host and path: 404 unknown_route.
    Unknown,
    /// A pool, but no live endpoint in it: 503 no_endpoints.
    Empty,
    /// A pool (by its route key) with live endpoints.
    Pool(String, Vec<Endpoint>),
}

/// Gorouter's key of a route: `host.domain/path`, lower case, one trailing `/` trimmed
/// (route/uris.go `RouteKey` and `String`).
pub(crate) fn route_key(fqdn: &str, path: &str) -> String {
    let key = format!("{fqdn}{path}").to_lowercase();
    key.strip_suffix('/').map(str::to_owned).unwrap_or(key)
}

/// route/uris.go#NextWildcard, verbatim: drop a leading `*.`, then replace everything up to the
/// first dot with `*`. It looks at the whole key, path included, as gorouter does.
fn next_wildcard(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("*.").unwrap_or(uri);
    let dot = rest.find('.')?;
    Some(format!("*.{}", &rest[dot + 1..]))
}

/// Every pool by route key, and the trie nodes they make: a router's view of its table at one
/// generation, computed once per change (see [`RouterDouble::pools`]). Building it walks every
/// destination, which a 500-app fleet's 2,000 destinations made the most expensive part of each
/// probe when it was done per request.
#[derive(Debug, Default)]
struct Pools {
    by_key: HashMap<String, Vec<Endpoint>>,
    /// Every `/`-bounded prefix of a key: registry/container/trie.go has a node for each.
    nodes: std::collections::HashSet<String>,
}

impl Pools {
    fn new(by_key: HashMap<String, Vec<Endpoint>>) -> Pools {
        let mut nodes = std::collections::HashSet::new();
        for key in by_key.keys() {
            nodes.extend(key.match_indices('/').map(|(i, _)| key[..i].to_owned()));
            nodes.insert(key.clone());
        }
        Pools { by_key, nodes }
    }

    /// registry/container/trie.go#MatchUri: walking the key's `/` segments while the trie has a
    /// node for them, the deepest pool with endpoints wins; with none, the deepest node's own pool,
    /// even empty; else nothing.
    fn match_uri(&self, uri: &str) -> Option<(&String, &Vec<Endpoint>)> {
        let mut with_endpoints = None;
        let mut deepest = None;
        let mut end = 0;
        loop {
            let next = uri[end..].find('/').map(|i| end + i);
            let prefix = &uri[..next.unwrap_or(uri.len())];
            if !self.nodes.contains(prefix) {
                break;
            }
            deepest = self.by_key.get_key_value(prefix);
            if let Some(found) = deepest
                && !found.1.is_empty()
            {
                with_endpoints = Some(found);
            }
            match next {
                Some(slash) => end = slash + 1,
                None => break,
            }
        }
        with_endpoints.or(deepest.filter(|(_, p)| p.is_empty()))
    }

    /// The pool serving `host` + `path` (registry.go#lookup): the exact host first, then each
    /// wildcard in turn, each by [`match_uri`](Self::match_uri).
    fn lookup(&self, host: &str, path: &str) -> Lookup {
        let mut uri = route_key(host, path);
        loop {
            if let Some((key, pool)) = self.match_uri(&uri) {
                return if pool.is_empty() { Lookup::Empty } else { Lookup::Pool(key.clone(), pool.clone()) };
            }
            match next_wildcard(&uri) {
                Some(next) => uri = next,
                None => return Lookup::Unknown,
            }
        }
    }
}

/// `X-CF-APP-INSTANCE`'s value as gorouter accepts it: a lower-case GUID, a colon, digits
/// (handlers/lookup.go `aReg`, `^[\da-f]{8}-([\da-f]{4}-){3}[\da-f]{12}:\d+$`). The index stays
/// text: the registry compares it as a string with the endpoint's `PrivateInstanceIndex`, so
/// `007` names no instance.
fn parse_app_instance(value: &str) -> Option<(&str, &str)> {
    let (guid, index) = value.split_once(':')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let groups: Vec<&str> = guid.split('-').collect();
    let guid_ok = groups.len() == 5 && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| hex(g, n));
    let index_ok = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
    (guid_ok && index_ok).then_some((guid, index))
}

impl Table {
    fn apply(&mut self, event: RouteEvent) {
        self.apply_at(event, Instant::now());
    }

    /// Applies one message that arrived at `now`. A registration with the sequence number already
    /// held is the route emitter's refresh of it: it only renews `seen`, as gorouter's pool renews
    /// an endpoint's `updated` on every registration (route/pool.go#Put). Any registration brings
    /// back the TLS endpoints it names that a failed dial had pruned (#Put re-adds them).
    fn apply_at(&mut self, event: RouteEvent, now: Instant) {
        self.generation += 1;
        match event {
            RouteEvent::Map { seq, destination_guid, fqdn, path, app_guid, process_type } => {
                let key = route_key(&fqdn, &path);
                self.failed.retain(|(k, app, _)| *k != key || *app != app_guid);
                let entry = self.destinations.entry(destination_guid).or_insert((0, None));
                if seq > entry.0 {
                    *entry = (seq, Some(Mapping { fqdn, path, app_guid, process_type, seen: now }));
                } else if let (true, Some(m)) = (seq == entry.0, entry.1.as_mut()) {
                    m.seen = now;
                }
            }
            RouteEvent::Unmap { seq, destination_guid } => {
                let entry = self.destinations.entry(destination_guid).or_insert((0, None));
                if seq > entry.0 {
                    if let Some(m) = entry.1.take() {
                        self.emptied.insert(route_key(&m.fqdn, &m.path), now);
                    }
                    entry.0 = seq;
                }
            }
            RouteEvent::Instances { seq, app_guid, process_type, running } => {
                let entry = self.instances.entry((app_guid, process_type)).or_insert((0, Vec::new()));
                if seq > entry.0 {
                    *entry = (seq, running);
                }
            }
            RouteEvent::Register { seq, instance, app_guid, process_type, addr } => {
                self.failed.retain(|(_, _, a)| *a != addr);
                let entry = self.live.entry(instance).or_insert((0, None));
                if seq > entry.0 {
                    *entry = (seq, Some(Live { app_guid, process_type, addr, seen: now }));
                } else if let (true, Some(l)) = (seq == entry.0, entry.1.as_mut()) {
                    l.seen = now;
                }
            }
            RouteEvent::Unregister { seq, instance } => {
                let entry = self.live.entry(instance).or_insert((0, None));
                if seq > entry.0 {
                    *entry = (seq, None);
                }
            }
        }
    }

    /// The registrations this table holds, as the messages that would register them again with the
    /// same sequence numbers: what the route emitter re-sends on every refresh
    /// (routingtable/routingtable.go#GetExternalRoutingEvents: a registration for every entry).
    fn registrations(&self) -> Vec<RouteEvent> {
        let maps = self.destinations.iter().filter_map(|(guid, (seq, m))| {
            let m = m.as_ref()?;
            Some(RouteEvent::Map {
                seq: *seq,
                destination_guid: guid.clone(),
                fqdn: m.fqdn.clone(),
                path: m.path.clone(),
                app_guid: m.app_guid.clone(),
                process_type: m.process_type.clone(),
            })
        });
        let live = self.live.iter().filter_map(|(instance, (seq, l))| {
            let l = l.as_ref()?;
            Some(RouteEvent::Register {
                seq: *seq,
                instance: instance.clone(),
                app_guid: l.app_guid.clone(),
                process_type: l.process_type.clone(),
                addr: l.addr,
            })
        });
        maps.chain(live).collect()
    }

    /// Whether `event` registers or unregisters, and for which app (as this table knows it before
    /// applying it): what a lost-message fault matches. Instance reports of test-registered
    /// backends are neither (they stand for Diego's actual LRPs, not for NATS messages).
    fn message_of(&self, event: &RouteEvent) -> Option<Subject> {
        match event {
            RouteEvent::Map { app_guid, .. } | RouteEvent::Register { app_guid, .. } => {
                Some((Message::Register, Some(app_guid.clone())))
            }
            RouteEvent::Unmap { destination_guid, .. } => {
                let app = self.destinations.get(destination_guid).and_then(|(_, m)| m.as_ref());
                Some((Message::Unregister, app.map(|m| m.app_guid.clone())))
            }
            RouteEvent::Unregister { instance, .. } => {
                let app = self.live.get(instance).and_then(|(_, l)| l.as_ref());
                Some((Message::Unregister, app.map(|l| l.app_guid.clone())))
            }
            RouteEvent::Instances { .. } => None,
        }
    }

    /// Marks every registration seen `now`: gorouter's registry.go#freshenRoutes, run when pruning
    /// resumes (after a NATS outage) so that nothing is pruned for the time it was off.
    fn freshen(&mut self, now: Instant) {
        for m in self.destinations.values_mut().filter_map(|(_, m)| m.as_mut()) {
            m.seen = now;
        }
        for l in self.live.values_mut().filter_map(|(_, l)| l.as_mut()) {
            l.seen = now;
        }
    }

    /// One pass of gorouter's pruning cycle (registry.go#pruneStaleDroplets →
    /// route/pool.go#PruneEndpoints): drops every registration not seen within `threshold`; a pool
    /// it empties is kept as an emptied pool. Only for plain endpoints: PruneEndpoints skips
    /// `useTls` ones. Returns how many registrations went.
    fn prune_stale(&mut self, backends: &Backends, now: Instant, threshold: Duration) -> usize {
        let stale = |seen: Instant| now.saturating_duration_since(seen) > threshold;
        let before = self.pools(backends).0.by_key;
        // A pruned registration leaves no tombstone: it was registered, so no unregistration of
        // it is pending here, and the emitter's next refresh (same seq) registers it again.
        let held = self.destinations.len() + self.live.len();
        self.destinations.retain(|_, (_, m)| !m.as_ref().is_some_and(|m| stale(m.seen)));
        self.live.retain(|_, (_, l)| !l.as_ref().is_some_and(|l| stale(l.seen)));
        let pruned = held - self.destinations.len() - self.live.len();
        if pruned > 0 {
            self.generation += 1;
            self.mark_emptied(backends, &before, now);
        }
        pruned
    }

    /// A dial to the TLS endpoint `addr` of pool `key` failed: gorouter prunes it from that pool
    /// (route/pool.go#EndpointFailed, `useTls && fails.PrunableClassifiers.Classify(err)`; a refused
    /// connection is `fails.Dial`, proxy/fails/classifier_group.go).
    fn fail(&mut self, backends: &Backends, key: &str, addr: SocketAddr, now: Instant) {
        let before = self.pools(backends).0.by_key;
        let apps = before.get(key).into_iter().flatten().filter(|e| e.addr == addr).map(|e| e.app_guid.clone());
        let failed: Vec<_> = apps.map(|app| (key.to_owned(), app, addr)).collect();
        self.failed.extend(failed);
        self.generation += 1;
        self.mark_emptied(backends, &before, now);
    }

    /// Pools that had endpoints in `before` and have none now stay as emptied pools
    /// (registry.go#pruneStaleDroplets snips a pool only `empty_pool_timeout` after its last update).
    fn mark_emptied(&mut self, backends: &Backends, before: &HashMap<String, Vec<Endpoint>>, now: Instant) {
        let after = self.pools(backends).0.by_key;
        for (key, pool) in before {
            if !pool.is_empty() && after.get(key).is_none_or(Vec::is_empty) {
                self.emptied.insert(key.clone(), now);
            }
        }
    }

    /// Live endpoints of `process` (registered and running): the instances a test registered
    /// by address, and the real instances registered one by one ([`RouteEvent::Register`]), of
    /// every process of that type (during a rolling deployment, the old and the new `web`).
    fn endpoints(&self, backends: &Backends, app_guid: &str, process_type: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .live
            .iter()
            .filter_map(|((_, index), (_, reg))| {
                let l = reg.as_ref()?;
                (l.app_guid == app_guid && l.process_type == process_type).then(|| Endpoint {
                    app_guid: l.app_guid.clone(),
                    index: *index,
                    addr: l.addr,
                })
            })
            .collect();
        out.extend(self.registered(backends, app_guid, process_type));
        out
    }

    /// The instances a test registered by address ([`RouterDouble::register`]) that CC reports
    /// running.
    fn registered(&self, backends: &Backends, app_guid: &str, process_type: &str) -> Vec<Endpoint> {
        let key = (app_guid.to_owned(), process_type.to_owned());
        let Some(addrs) = backends.get(&key) else { return Vec::new() };
        let running = self.instances.get(&key).map(|(_, r)| r.as_slice());
        addrs
            .iter()
            .enumerate()
            // No instance report yet (a process the CC double does not know): take it as running.
            .filter(|(i, _)| running.is_none_or(|r| r.get(*i).copied().unwrap_or(false)))
            .map(|(i, a)| Endpoint {
                app_guid: app_guid.to_owned(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                addr: *a,
            })
            .collect()
    }

    /// Every pool by route key: the live endpoints of its registered destinations, and the
    /// emptied pools gorouter still keeps; with the moment the first of those expires (after
    /// which the same table has other pools).
    fn pools(&self, backends: &Backends) -> (Pools, Option<Instant>) {
        let mut pools: HashMap<String, Vec<(String, Endpoint)>> = HashMap::new();
        for (guid, (_, m)) in &self.destinations {
            let Some(m) = m else { continue };
            let pool = pools.entry(route_key(&m.fqdn, &m.path)).or_default();
            pool.extend(self.endpoints(backends, &m.app_guid, &m.process_type).into_iter().map(|e| (guid.clone(), e)));
        }
        let mut expires: Option<Instant> = None;
        for (key, at) in &self.emptied {
            if at.elapsed() < EMPTY_POOL_TIMEOUT {
                pools.entry(key.clone()).or_default();
                let end = *at + EMPTY_POOL_TIMEOUT;
                expires = Some(expires.map_or(end, |e| e.min(end)));
            }
        }
        let by_key = pools
            .into_iter()
            .map(|(key, mut pool)| {
                pool.sort();
                // A pool holds one endpoint per address (route/pool.go#Put indexes by CanonicalAddr).
                let mut seen = HashSet::new();
                let pool = pool
                    .into_iter()
                    .map(|(_, e)| e)
                    .filter(|e| {
                        seen.insert(e.addr) && !self.failed.contains(&(key.clone(), e.app_guid.clone(), e.addr))
                    })
                    .collect();
                (key, pool)
            })
            .collect();
        (Pools::new(by_key), expires)
    }

    /// The pool serving `host` + `path` now (see [`Pools::lookup`]).
    #[cfg(test)]
    fn lookup(&self, backends: &Backends, host: &str, path: &str) -> Lookup {
        self.pools(backends).0.lookup(host, path)
    }
}

/// Instances' addresses by (app guid, process type): instance `i` listens on `addrs[i]`.
type Backends = HashMap<(String, String), Vec<SocketAddr>>;

/// What every router of one foundation shares: the instances (they run on cells, not in a router),
/// the range of propagation delays, and the number of changes still on their way to any router.
#[derive(Debug)]
struct Shared {
    backends: Mutex<Backends>,
    /// Bumped by every change of `backends` (see [`RouterDouble::pools`]).
    backends_generation: AtomicU64,
    delay: Mutex<(Duration, Duration)>,
    pending: watch::Sender<usize>,
    /// Route services and route-policy domains ([`crate::route_service`]): the bindings are the
    /// foundation's, so every router sees the same.
    services: Arc<RouteServices>,
    /// The route emitter's table: every change at once, nothing lost. Its refresh re-sends what
    /// this holds.
    emitter: Mutex<Table>,
    /// Refresh, pruning and TLS, the same for every router (a deployment configures them all).
    freshness: watch::Sender<Freshness>,
}

impl Shared {
    fn new(min: Duration, max: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            backends: Mutex::new(HashMap::new()),
            backends_generation: AtomicU64::new(0),
            delay: Mutex::new((min, max.max(min))),
            pending: watch::Sender::new(0),
            services: Arc::new(RouteServices::default()),
            emitter: Mutex::new(Table::default()),
            freshness: watch::Sender::new(Freshness::default()),
        })
    }
}

/// Gorouter's pruning of plain (non-TLS) endpoints whose registration was not renewed in time
/// (registry.go#pruneStaleDroplets, route/pool.go#PruneEndpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruning {
    /// `droplet_stale_threshold`: a registration older than this goes.
    pub stale_threshold: Duration,
    /// `prune_stale_droplets_interval`: how often each router looks.
    pub interval: Duration,
}

impl Pruning {
    /// Gorouter's defaults, which routing-release's jobs/gorouter/templates/gorouter.yml.erb sets
    /// as they are: 120 s and 30 s (config/config.go `defaultConfig`).
    pub const GOROUTER: Pruning =
        Pruning { stale_threshold: Duration::from_secs(120), interval: Duration::from_secs(30) };
    /// The same shape on a test's time scale: 2 s and 250 ms.
    pub const SCALED: Pruning =
        Pruning { stale_threshold: Duration::from_secs(2), interval: Duration::from_millis(250) };
}

/// How often the route emitter re-sends every registration on a foundation: gorouter announces
/// `minimumRegisterIntervalInSeconds` = `start_response_delay_interval` in `router.start` and
/// `router.greet` replies (mbus/subscriber.go#startMessage), routing-release sets that from
/// `router.requested_route_registration_interval_in_seconds`, default 20 (jobs/gorouter/spec,
/// templates/gorouter.yml.erb), and the emitter's scheduler emits at that interval
/// (route-emitter scheduler/routebroadcastscheduler.go#Run, watcher.go → routehandlers/handler.go
/// #EmitExternal).
pub const EMITTER_REFRESH: Duration = Duration::from_secs(20);
/// [`EMITTER_REFRESH`] on the time scale of [`Pruning::SCALED`]. A strict 1/60 would be 333 ms;
/// 600 ms refreshes less often, which is harsher, and still renews a registration at most 1.1 s
/// apart after 0–500 ms of propagation, well within the 2 s threshold, as 20 s is within 120 s.
pub const SCALED_REFRESH: Duration = Duration::from_millis(600);

/// How registrations age on every router of a foundation. All off by default: registrations never
/// go stale and a dead endpoint answers 502 every time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Freshness {
    /// The route emitter re-sends every live registration to every router this often (each arrival
    /// with that router's own delay), renewing it; `None`: never.
    pub refresh: Option<Duration>,
    /// Gorouter prunes plain endpoints not renewed within the threshold; `None`: never.
    pub pruning: Option<Pruning>,
    /// Every endpoint is registered with a TLS port: never pruned for staleness, pruned when a dial
    /// to it fails. On a foundation that is every app endpoint when Diego runs the per-container
    /// envoy proxy without unproxied ports (cf-deployment.yml: `containers.proxy.enabled: true`,
    /// `enable_unproxied_port_mappings: false`): the cell reports `HostTlsProxyPort`, the emitter
    /// sends it as `tls_port` (route-emitter routingtable/endpoint.go, registry_message.go
    /// #RegistryMessageFor) and gorouter then uses TLS (mbus/subscriber.go#port, `UseTLS`).
    /// Gorouter's old router-wide `backends.enable_tls` is gone (gorouter 8b216890, 2018). The
    /// double still speaks plain HTTP to the instance; only gorouter's bookkeeping changes.
    pub tls: bool,
}

/// A NATS message a router can miss (see [`RouterDouble::lose_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// `router.register`: a destination mapped, a real instance up, or a refresh of either.
    Register,
    /// `router.unregister`: a destination unmapped or a real instance gone.
    Unregister,
}

/// What a lost-message fault matches: the kind of message and the app it is about, if known.
type Subject = (Message, Option<String>);

/// A lost-message fault of one router.
#[derive(Debug)]
struct Loss {
    message: Message,
    app_guid: Option<String>,
    /// How many more to lose (`None`: no limit).
    remaining: Option<usize>,
    probability: f64,
}

/// Messages on their way to a router, applied together after one delay: one change, or one
/// refresh's registrations (one burst of the emitter, so a few thousand routes cost one task per
/// router, not one each). `counted` ones are changes [`RouterDouble::wait_settled`] waits for
/// (refreshes are not: they never stop).
#[derive(Debug)]
struct Delivery {
    events: Vec<RouteEvent>,
    counted: bool,
}

/// One gorouter double: its own table, fed through [`fan_out`].
#[derive(Debug)]
pub struct RouterDouble {
    table: Mutex<Table>,
    shared: Arc<Shared>,
    /// Every `Host` asked for, as sent (a test can see what a client probed).
    hosts: Mutex<std::collections::BTreeSet<String>>,
    /// Requests that carried `X-CF-APP-INSTANCE`.
    pinned: AtomicUsize,
    /// Messages this router will miss, as one reconnecting to NATS does (NATS core delivers at
    /// most once: a subscriber that is not connected never gets what was published meanwhile).
    losses: Mutex<Vec<Loss>>,
    /// How many messages it missed.
    lost: AtomicUsize,
    client: Client<HttpConnector, Full<Bytes>>,
    /// The pools of the table's latest generation (see [`RouterDouble::pools`]).
    pools: Mutex<Option<CachedPools>>,
}

/// [`Pools`] and what they were computed from: the table's and the backends' generations, and
/// when an emptied pool among them expires.
#[derive(Debug)]
struct CachedPools {
    table: u64,
    backends: u64,
    expires: Option<Instant>,
    pools: Arc<Pools>,
}

/// `n` routers of one foundation (see the module docs), each change taking between `min` and `max`
/// to reach each of them, independently.
pub fn several(n: usize, min: Duration, max: Duration) -> Vec<Arc<RouterDouble>> {
    let shared = Shared::new(min, max);
    (0..n.max(1)).map(|_| Arc::new(RouterDouble::with(Arc::clone(&shared)))).collect()
}

/// The intake for CC's route changes to `routers` (one foundation's, from [`several`]): what the
/// route emitter and NATS do between Diego and the gorouters. Each change goes into the emitter's
/// table at once and to every router that does not miss it (see [`RouterDouble::lose_next`]),
/// counted as pending at once (so [`RouterDouble::wait_settled`] cannot miss it) and applied after
/// that router's own delay. Also starts the emitter's refresh and each router's pruning cycle,
/// which idle while [`Freshness`] has them off and end with the routers.
pub fn fan_out(routers: &[Arc<RouterDouble>]) -> RouteSink {
    let Some(first) = routers.first() else { return RouteSink(Box::new(|_| {})) };
    let shared = Arc::clone(&first.shared);
    let intakes: Vec<(Weak<RouterDouble>, mpsc::UnboundedSender<Delivery>)> =
        routers.iter().map(|r| (Arc::downgrade(r), r.intake())).collect();
    tokio::spawn(refresh_cycle(Arc::downgrade(&shared), shared.freshness.subscribe(), intakes.clone()));
    for r in routers {
        tokio::spawn(pruning_cycle(Arc::downgrade(r), shared.freshness.subscribe()));
    }
    RouteSink(Box::new(move |event| {
        let message = {
            let mut emitter = lock(&shared.emitter);
            let message = emitter.message_of(&event);
            emitter.apply(event.clone());
            message
        };
        for (router, intake) in &intakes {
            // A stopped router just stops listening; the CC double keeps working without it.
            let Some(r) = router.upgrade() else { continue };
            if r.loses(message.as_ref()) {
                continue;
            }
            shared.pending.send_modify(|n| *n += 1);
            if intake.send(Delivery { events: vec![event.clone()], counted: true }).is_err() {
                shared.pending.send_modify(|n| *n -= 1);
            }
        }
    }))
}

/// Waits `every`, or returns early (false) when the settings change; `None` when they are gone.
async fn tick(config: &mut watch::Receiver<Freshness>, every: Duration) -> Option<bool> {
    tokio::select! {
        () = tokio::time::sleep(every) => Some(true),
        changed = config.changed() => changed.ok().map(|()| false),
    }
}

/// The route emitter's periodic emit: every `refresh`, every registration of its table to every
/// router, each arrival with that router's own delay, each one a message a router can miss.
async fn refresh_cycle(
    shared: Weak<Shared>,
    mut config: watch::Receiver<Freshness>,
    intakes: Vec<(Weak<RouterDouble>, mpsc::UnboundedSender<Delivery>)>,
) {
    loop {
        let every = config.borrow_and_update().refresh;
        let Some(every) = every else {
            if config.changed().await.is_err() {
                return;
            }
            continue;
        };
        match tick(&mut config, every).await {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        let Some(shared) = shared.upgrade() else { return };
        let refreshes: Vec<(RouteEvent, Option<Subject>)> = {
            let emitter = lock(&shared.emitter);
            emitter
                .registrations()
                .into_iter()
                .map(|e| {
                    let m = emitter.message_of(&e);
                    (e, m)
                })
                .collect()
        };
        for (router, intake) in &intakes {
            let Some(r) = router.upgrade() else { return };
            let events: Vec<RouteEvent> =
                refreshes.iter().filter(|(_, message)| !r.loses(message.as_ref())).map(|(e, _)| e.clone()).collect();
            let _ = intake.send(Delivery { events, counted: false });
        }
    }
}

/// One router's pruning cycle (registry.go#StartPruningCycle): every `interval`, prune what was not
/// renewed within the threshold, unless the endpoints are TLS. Freshens everything when pruning
/// is turned on, as registry.go#pruneStaleDroplets does when it resumes.
async fn pruning_cycle(router: Weak<RouterDouble>, mut config: watch::Receiver<Freshness>) {
    let mut was_on = false;
    loop {
        let pruning = config.borrow_and_update().pruning;
        let Some(pruning) = pruning else {
            was_on = false;
            if config.changed().await.is_err() {
                return;
            }
            continue;
        };
        if !was_on {
            let Some(r) = router.upgrade() else { return };
            r.table().freshen(Instant::now());
            was_on = true;
        }
        match tick(&mut config, pruning.interval).await {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        let Some(r) = router.upgrade() else { return };
        if r.freshness().tls {
            continue;
        }
        let backends = lock(&r.shared.backends).clone();
        r.table().prune_stale(&backends, Instant::now(), pruning.stale_threshold);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RouterDouble {
    /// A single router whose route changes take between `min` and `max` to arrive.
    pub fn new(min: Duration, max: Duration) -> RouterDouble {
        RouterDouble::with(Shared::new(min, max))
    }

    /// Route services and route-policy domains, the same for every router of the foundation.
    pub fn services(&self) -> &RouteServices {
        &self.shared.services
    }

    fn with(shared: Arc<Shared>) -> RouterDouble {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        RouterDouble {
            table: Mutex::new(Table::default()),
            shared,
            hosts: Mutex::new(std::collections::BTreeSet::new()),
            pinned: AtomicUsize::new(0),
            losses: Mutex::new(Vec::new()),
            lost: AtomicUsize::new(0),
            pools: Mutex::new(None),
            client: Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(5)).build(connector),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// The pools as the table holds them now, computed once per change of the table or of the
    /// instances (and once an emptied pool expires), not per request.
    fn pools(&self) -> Arc<Pools> {
        let table = self.table();
        let backends_generation = self.shared.backends_generation.load(Ordering::Acquire);
        let mut cached = lock(&self.pools);
        if let Some(c) = cached.as_ref()
            && c.table == table.generation
            && c.backends == backends_generation
            && c.expires.is_none_or(|at| Instant::now() < at)
        {
            return Arc::clone(&c.pools);
        }
        // Read after the generation: a change in between is computed here and again next time.
        let (pools, expires) = table.pools(&lock(&self.shared.backends));
        let pools = Arc::new(pools);
        *cached = Some(CachedPools {
            table: table.generation,
            backends: backends_generation,
            expires,
            pools: Arc::clone(&pools),
        });
        pools
    }

    /// Sets the range of the per-change propagation delay (for every router of the foundation).
    pub fn set_delay(&self, min: Duration, max: Duration) {
        *lock(&self.shared.delay) = (min, max.max(min));
    }

    /// Registers the instances of `app_guid`'s `process_type`: instance `i` listens on `addrs[i]`
    /// (seen by every router of the foundation).
    pub fn register(&self, app_guid: &str, process_type: &str, addrs: Vec<SocketAddr>) {
        lock(&self.shared.backends).insert((app_guid.to_owned(), process_type.to_owned()), addrs);
        self.shared.backends_generation.fetch_add(1, Ordering::Release);
    }

    /// Applies `events` at once (the initial table), in the route emitter's table too.
    pub fn apply_now(&self, events: Vec<RouteEvent>) {
        let mut t = self.table();
        let mut emitter = lock(&self.shared.emitter);
        for e in events {
            emitter.apply(e.clone());
            t.apply(e);
        }
    }

    /// This router's end of NATS: each delivery is applied after its own random delay.
    fn intake(self: &Arc<Self>) -> mpsc::UnboundedSender<Delivery> {
        let (tx, mut deliveries) = mpsc::unbounded_channel::<Delivery>();
        let router = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(delivery) = deliveries.recv().await {
                let Some(r) = router.upgrade() else { break };
                let (min, max) = *lock(&r.shared.delay);
                let delay = if max > min { rand::rng().random_range(min..=max) } else { min };
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let mut table = r.table();
                    let now = Instant::now();
                    for event in delivery.events {
                        table.apply_at(event, now);
                    }
                    drop(table);
                    if delivery.counted {
                        r.shared.pending.send_modify(|n| *n -= 1);
                    }
                });
            }
        });
        tx
    }

    /// Whether this router misses `message` (and counts it if so).
    fn loses(&self, message: Option<&Subject>) -> bool {
        let Some((kind, app)) = message else { return false };
        let mut losses = lock(&self.losses);
        let hit = losses.iter_mut().find(|l| {
            l.message == *kind
                && l.remaining != Some(0)
                && l.app_guid.as_ref().is_none_or(|want| app.as_ref() == Some(want))
                && (l.probability >= 1.0 || rand::rng().random_bool(l.probability.max(0.0)))
        });
        let Some(loss) = hit else { return false };
        if let Some(n) = loss.remaining.as_mut() {
            *n -= 1;
        }
        self.lost.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// This router misses the next `count` messages of kind `message` (about `app_guid`'s
    /// destinations or instances, or any app's), refreshes included: a router that was
    /// reconnecting to NATS while they were published.
    pub fn lose_next(&self, message: Message, app_guid: Option<&str>, count: usize) {
        lock(&self.losses).push(Loss {
            message,
            app_guid: app_guid.map(str::to_owned),
            remaining: Some(count),
            probability: 1.0,
        });
    }

    /// This router misses each message of kind `message` (about `app_guid`, or any app) with
    /// `probability`, until [`stop_losing`](Self::stop_losing).
    pub fn lose_randomly(&self, message: Message, app_guid: Option<&str>, probability: f64) {
        lock(&self.losses).push(Loss { message, app_guid: app_guid.map(str::to_owned), remaining: None, probability });
    }

    /// Ends every lost-message fault of this router.
    pub fn stop_losing(&self) {
        lock(&self.losses).clear();
    }

    /// How many messages this router missed so far.
    pub fn lost(&self) -> usize {
        self.lost.load(Ordering::Relaxed)
    }

    /// Sets refresh, pruning and TLS for every router of the foundation.
    pub fn set_freshness(&self, freshness: Freshness) {
        self.shared.freshness.send_replace(freshness);
    }

    /// Refresh, pruning and TLS as set now.
    pub fn freshness(&self) -> Freshness {
        *self.shared.freshness.borrow()
    }

    /// Waits until no change is in flight to any router of the foundation (or `timeout`); returns
    /// whether it settled.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.pending.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await.is_ok_and(|r| r.is_ok())
    }

    /// Every `Host` header this router was asked for so far, as sent.
    pub fn hosts_seen(&self) -> Vec<String> {
        lock(&self.hosts).iter().cloned().collect()
    }

    /// How many requests asked this router for one instance (`X-CF-APP-INSTANCE`).
    pub fn pinned_requests(&self) -> usize {
        self.pinned.load(Ordering::Relaxed)
    }

    /// The live endpoints this router would use for `host` + `path` now.
    pub fn endpoints_for(&self, host: &str, path: &str) -> Vec<SocketAddr> {
        match self.pools().lookup(&host.to_lowercase(), path) {
            Lookup::Pool(_, e) => e.into_iter().map(|e| e.addr).collect(),
            Lookup::Unknown | Lookup::Empty => Vec::new(),
        }
    }

    /// Proxies one request.
    pub async fn proxy(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or("")
            .to_owned();
        lock(&self.hosts).insert(host.clone());
        let host_only = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h).to_lowercase();
        let path = req.uri().path().to_owned();
        // Go's Header.Get: the first value; an empty one counts as absent.
        let instance = req.headers().get(APP_INSTANCE_HEADER).map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
        let instance = instance.filter(|v| !v.is_empty());
        if instance.is_some() {
            self.pinned.fetch_add(1, Ordering::Relaxed);
        }
        let wanted = match instance.as_deref().map(parse_app_instance) {
            None => None,
            Some(Some((guid, index))) => Some((guid.to_owned(), index.to_owned())),
            // handlers/lookup.go#handleInvalidAppInstanceHeader.
            Some(None) => {
                let mut r = router_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_cf_app_instance_header",
                    "Invalid X-CF-App-Instance Header",
                );
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
                return r;
            }
        };
        if let Some(refused) = self.shared.services.refuse(&host_only) {
            return refused;
        }
        let pools = self.pools();
        let target = {
            match (pools.lookup(&host_only, &path), &wanted) {
                // registry.go#LookupWithAppInstance: a pool of the one endpoint with that app and
                // index (the last one in the pool, should several match), or none at all — even
                // for a pool that exists, even for an empty one.
                (Lookup::Pool(key, pool), Some((guid, index))) => pool
                    .iter()
                    .rev()
                    .find(|e| e.app_guid == *guid && e.index.to_string() == *index)
                    .map(|e| (key.clone(), e.addr))
                    .ok_or(Lookup::Unknown),
                (Lookup::Empty, Some(_)) => Err(Lookup::Unknown),
                (Lookup::Pool(key, pool), None) => {
                    let mut t = self.table();
                    let n = t.round_robin.entry(key.clone()).or_insert(0);
                    let addr = pool[*n % pool.len()].addr;
                    *n = n.wrapping_add(1);
                    Ok((key, addr))
                }
                (other, _) => Err(other),
            }
        };
        // Gorouter names the route by the request's Host as sent, port included
        // (handlers/lookup.go#handleMissingRoute / #handleUnavailableRoute use `r.Host`).
        let (key, addr) = match target {
            Ok(target) => target,
            Err(Lookup::Empty) => {
                // handlers/lookup.go#handleUnavailableRoute: a short public cache, not no-store.
                let mut r = router_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no_endpoints",
                    &format!("Requested route ('{host}') has no available endpoints."),
                );
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public,max-age=2"));
                return r;
            }
            Err(_) => {
                // handlers/lookup.go#handleMissingRoute → helpers.go#addNoCacheControlHeader; with
                // the instance header it is a 400 that names the instance.
                let (status, message) = match &wanted {
                    Some((guid, index)) => (
                        StatusCode::BAD_REQUEST,
                        format!(
                            "Requested instance ('{index}') with guid ('{guid}') does not exist for route ('{host}')"
                        ),
                    ),
                    None => (StatusCode::NOT_FOUND, format!("Requested route ('{host}') does not exist.")),
                };
                let mut r = router_error(status, "unknown_route", &message);
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
                return r;
            }
        };
        // Route services (handlers/routeservice.go) come after the lookup. (Gorouter chooses the
        // endpoint only for requests that go to the pool; the double has advanced its round robin
        // already, which only shifts which instance answers next.)
        let req = match self.shared.services.intercept(&self.client, req, &host, &key).await {
            Verdict::Pool(req) => req,
            Verdict::Answered(answer) => return answer,
        };
        let (parts, body) = req.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return router_error(StatusCode::BAD_REQUEST, "", "");
        };
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("http://{addr}{pq}").parse::<Uri>() else {
            return router_error(StatusCode::BAD_REQUEST, "", "");
        };
        let mut out = Request::new(Full::new(body));
        *out.method_mut() = parts.method;
        *out.uri_mut() = uri;
        *out.headers_mut() = parts.headers;
        match self.client.request(out).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                Response::from_parts(parts, Body::new(body))
            }
            // proxy/round_tripper/error_handler.go#HandleError: `endpoint_failure (<error>)`, and
            // the body is proxy_round_tripper.go's BadGatewayMessage, written by http.Error.
            //
            // Gorouter would first retry on another endpoint of the pool: a dial error is
            // retriable (proxy_round_tripper.go#RoundTrip, up to `router.backends.max_attempts`, 3
            // in routing-release's jobs/gorouter/spec; fails.RetriableClassifiers), and only the
            // last attempt's error reaches the client. The double does not retry, so a client sees
            // the first failed attempt's 502 (harsher); a TLS endpoint is pruned all the same
            // (`iter.EndpointFailed(err)` → route/pool.go#EndpointFailed), a plain one stays.
            Err(e) => {
                if e.is_connect() && self.freshness().tls {
                    let backends = lock(&self.shared.backends).clone();
                    self.table().fail(&backends, &key, addr, Instant::now());
                }
                let mut r =
                    Response::new(Body::from("502 Bad Gateway: Registered endpoint failed to handle the request.\n"));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
                r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
                let detail = format!("endpoint_failure (dial tcp {addr}: {})", connect_error(&e));
                if let Ok(v) = HeaderValue::from_str(&detail) {
                    r.headers_mut().insert("x-cf-routererror", v);
                }
                r
            }
        }
    }
}

/// How the balancer in front of the routers picks a router for each new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// One router after the other.
    #[default]
    RoundRobin,
    /// A router drawn at random, each connection on its own.
    Random,
}

/// An L4 load balancer in front of several routers: each accepted connection is handed whole to
/// one router (bytes copied both ways until either side closes), as a TCP balancer in front of
/// gorouters does. Keep-alive requests on one connection all reach the same router. Stops on drop.
#[derive(Debug)]
pub struct Front {
    addr: SocketAddr,
    counts: Arc<Vec<AtomicUsize>>,
    stop: watch::Sender<bool>,
}

impl Front {
    /// Serves `listener`, handing each connection to one of `routers` (their addresses).
    pub fn start(listener: TcpListener, routers: Vec<SocketAddr>, balance: Balance) -> std::io::Result<Front> {
        let addr = listener.local_addr()?;
        let counts: Arc<Vec<AtomicUsize>> = Arc::new(routers.iter().map(|_| AtomicUsize::new(0)).collect());
        let (stop, mut stopped) = watch::channel(false);
        let tally = Arc::clone(&counts);
        tokio::spawn(async move {
            // Connection tasks live in the set: when the loop ends they are aborted with it.
            let mut connections = JoinSet::new();
            let mut next = 0usize;
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|s| *s) => break,
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        let i = match balance {
                            Balance::RoundRobin => { next = next.wrapping_add(1); (next - 1) % routers.len() }
                            Balance::Random => rand::rng().random_range(0..routers.len()),
                        };
                        tally[i].fetch_add(1, Ordering::Relaxed);
                        let to = routers[i];
                        connections.spawn(async move {
                            let _ = client.set_nodelay(true);
                            let Ok(mut router) = TcpStream::connect(to).await else { return };
                            let _ = router.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut router).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Front { addr, counts, stop })
    }

    /// The balancer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections each router was handed so far.
    pub fn connections(&self) -> Vec<usize> {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// The error text Go's dialer would give, as far as the proxy client lets us see it.
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    let text = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
    // The refusal sits a few sources down (hyper-util's ConnectError wraps the io::Error).
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.to_string().to_lowercase().contains("refused") {
            return "connect: connection refused".to_owned();
        }
        source = s.source();
    }
    text
}

/// Gorouter's plain-text error: `<code> <status text>: <message>` plus a newline
/// (errorwriter/error_writer.go#plaintextErrorWriter.WriteError, `fmt.Fprintln`).
fn router_error(status: StatusCode, kind: &'static str, message: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("");
    let text = if message.is_empty() {
        format!("{} {reason}\n", status.as_u16())
    } else {
        format!("{} {reason}: {message}\n", status.as_u16())
    };
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if !kind.is_empty() {
        r.headers_mut().insert("x-cf-routererror", HeaderValue::from_static(kind));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "0a1b2c3d-0000-4000-8000-00000000000a";
    const OTHER: &str = "0a1b2c3d-0000-4000-8000-00000000000b";

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn map(t: &mut Table, seq: u64, dest: &str, fqdn: &str, path: &str, app: &str) {
        t.apply(RouteEvent::Map {
            seq,
            destination_guid: dest.into(),
            fqdn: fqdn.into(),
            path: path.into(),
            app_guid: app.into(),
            process_type: "web".into(),
        });
    }

    fn backends() -> Backends {
        [
            ((APP.to_owned(), "web".to_owned()), vec![addr(1), addr(2)]),
            ((OTHER.to_owned(), "web".to_owned()), vec![addr(3)]),
        ]
        .into_iter()
        .collect()
    }

    fn served(t: &Table, host: &str, path: &str) -> Vec<u16> {
        match t.lookup(&backends(), host, path) {
            Lookup::Pool(_, pool) => pool.into_iter().map(|e| e.addr.port()).collect(),
            Lookup::Empty => vec![503],
            Lookup::Unknown => vec![404],
        }
    }

    #[test]
    fn paths_match_whole_segments_case_insensitively_longest_first() {
        let mut t = Table::default();
        map(&mut t, 1, "root", "shop.example.com", "", APP);
        map(&mut t, 2, "api", "shop.example.com", "/api", OTHER);
        assert_eq!(served(&t, "shop.example.com", "/"), [1, 2]);
        assert_eq!(served(&t, "shop.example.com", "/api"), [3]);
        assert_eq!(served(&t, "shop.example.com", "/API/v1/"), [3]);
        assert_eq!(served(&t, "shop.example.com", "/apiary"), [1, 2]);
        assert_eq!(served(&t, "nope.example.com", "/"), [404]);
    }

    #[test]
    fn an_emptied_path_pool_falls_back_to_a_shorter_prefix_with_endpoints() {
        // registry/container/trie.go#MatchUri ("Don't return empty pool if fallback exists").
        let mut t = Table::default();
        map(&mut t, 1, "root", "shop.example.com", "", APP);
        map(&mut t, 2, "api", "shop.example.com", "/api", OTHER);
        t.apply(RouteEvent::Unmap { seq: 3, destination_guid: "api".into() });
        assert_eq!(served(&t, "shop.example.com", "/api/v1"), [1, 2]);
        // Without a shorter pool, the emptied one answers 503.
        map(&mut t, 4, "solo", "solo.example.com", "/x", OTHER);
        t.apply(RouteEvent::Unmap { seq: 5, destination_guid: "solo".into() });
        assert_eq!(served(&t, "solo.example.com", "/x/y"), [503]);
        // A path that only passes through a node with no pool of its own finds nothing there.
        assert_eq!(served(&t, "solo.example.com", "/"), [404]);
    }

    #[test]
    fn wildcard_hosts_serve_any_subdomain_after_the_exact_host() {
        let mut t = Table::default();
        map(&mut t, 1, "wild", "*.apps.example.com", "", APP);
        map(&mut t, 2, "exact", "shop.apps.example.com", "", OTHER);
        assert_eq!(served(&t, "anything.apps.example.com", "/x"), [1, 2]);
        // a.b.apps… tries *.b.apps… first, then *.apps….
        assert_eq!(served(&t, "a.b.apps.example.com", "/"), [1, 2]);
        assert_eq!(served(&t, "shop.apps.example.com", "/"), [3]);
        assert_eq!(served(&t, "apps.example.com", "/"), [404]);
        assert_eq!(served(&t, "x.other.com", "/"), [404]);
        // An exact host's emptied pool is found, so the wildcard is not asked (registry.go#lookup
        // falls back only while no pool at all is found).
        t.apply(RouteEvent::Unmap { seq: 3, destination_guid: "exact".into() });
        assert_eq!(served(&t, "shop.apps.example.com", "/"), [503]);
        assert_eq!(next_wildcard("a.b.c"), Some("*.b.c".to_owned()));
        assert_eq!(next_wildcard("*.b.c"), Some("*.c".to_owned()));
        assert_eq!(next_wildcard("*.c"), None);
    }

    #[test]
    fn the_app_instance_header_is_read_as_gorouter_reads_it() {
        assert_eq!(parse_app_instance(&format!("{APP}:0")), Some((APP, "0")));
        assert_eq!(parse_app_instance(&format!("{APP}:12")), Some((APP, "12")));
        assert_eq!(parse_app_instance(&format!("{}:0", APP.to_uppercase())), None);
        assert_eq!(parse_app_instance(APP), None);
        assert_eq!(parse_app_instance(&format!("{APP}:")), None);
        assert_eq!(parse_app_instance(&format!("{APP}:-1")), None);
        assert_eq!(parse_app_instance("shop:0"), None);
        assert_eq!(parse_app_instance(&format!("{APP}:0:1")), None);
    }

    #[test]
    fn a_late_map_does_not_resurrect_an_unmapped_destination() {
        let mut t = Table::default();
        t.apply(RouteEvent::Unmap { seq: 2, destination_guid: "d".into() });
        map(&mut t, 1, "d", "a.example.com", "", "app");
        assert!(t.destinations["d"].1.is_none());
    }

    async fn ask(
        router: &Arc<RouterDouble>,
        host: &str,
        instance: Option<&str>,
    ) -> (u16, String, Vec<(String, String)>) {
        let mut req = Request::get("/").header(header::HOST, host);
        if let Some(v) = instance {
            req = req.header("X-CF-APP-INSTANCE", v);
        }
        let r = Arc::clone(router).proxy(req.body(Body::empty()).expect("request")).await;
        let status = r.status().as_u16();
        let headers = ["x-cf-routererror", "cache-control", "x-backend"]
            .iter()
            .filter_map(|h| r.headers().get(*h).map(|v| ((*h).to_owned(), v.to_str().unwrap_or("").to_owned())))
            .collect();
        let body = r.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned());
        (status, body.unwrap_or_default(), headers)
    }

    #[tokio::test]
    async fn the_app_instance_header_picks_that_instance_or_gets_gorouters_400() {
        let router = Arc::new(RouterDouble::new(Duration::ZERO, Duration::ZERO));
        let (b0, b1) =
            (crate::backend::start("a", 0).await.expect("a/0"), crate::backend::start("a", 1).await.expect("a/1"));
        router.register(APP, "web", vec![b0.addr(), b1.addr()]);
        router.apply_now(vec![RouteEvent::Map {
            seq: 1,
            destination_guid: "d".into(),
            fqdn: "*.apps.example.com".into(),
            path: String::new(),
            app_guid: APP.into(),
            process_type: "web".into(),
        }]);
        for _ in 0..3 {
            let (status, _, headers) = ask(&router, "x.apps.example.com", Some(&format!("{APP}:1"))).await;
            assert_eq!(status, 200);
            assert!(headers.contains(&("x-backend".into(), "a/1".into())), "{headers:?}");
        }
        let no_cache = ("cache-control".to_owned(), "no-cache, no-store".to_owned());
        // An index the pool does not have; another app's guid; then a route with no pool at all.
        let (status, body, headers) = ask(&router, "x.apps.example.com:443", Some(&format!("{APP}:2"))).await;
        assert_eq!(status, 400);
        assert_eq!(
            body,
            format!(
                "400 Bad Request: Requested instance ('2') with guid ('{APP}') does not exist for route ('x.apps.example.com:443')\n"
            )
        );
        assert!(headers.contains(&("x-cf-routererror".into(), "unknown_route".into())) && headers.contains(&no_cache));
        assert_eq!(ask(&router, "x.apps.example.com", Some(&format!("{OTHER}:0"))).await.0, 400);
        let (status, body, _) = ask(&router, "x.other.com", Some(&format!("{APP}:0"))).await;
        assert_eq!((status, body.contains("Requested instance ('0')")), (400, true));
        // Malformed: its own 400, whatever the route.
        for bad in ["shop:0", APP, "0A1B2C3D-0000-4000-8000-00000000000A:0"] {
            let (status, body, headers) = ask(&router, "x.apps.example.com", Some(bad)).await;
            assert_eq!((status, body.as_str()), (400, "400 Bad Request: Invalid X-CF-App-Instance Header\n"), "{bad}");
            assert!(headers.contains(&("x-cf-routererror".into(), "invalid_cf_app_instance_header".into())));
            assert!(headers.contains(&no_cache));
        }
        // Without the header, round robin over both instances as before.
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (_, _, h) = ask(&router, "x.apps.example.com", None).await;
            seen.extend(h.into_iter().filter(|(k, _)| k == "x-backend").map(|(_, v)| v));
        }
        seen.sort();
        assert_eq!(seen, ["a/0", "a/1"]);
    }

    fn map_event(seq: u64, dest: &str, fqdn: &str, app: &str) -> RouteEvent {
        RouteEvent::Map {
            seq,
            destination_guid: dest.into(),
            fqdn: fqdn.into(),
            path: String::new(),
            app_guid: app.into(),
            process_type: "web".into(),
        }
    }

    /// Polls `done` every 5 ms until it holds (then how long that took) or `limit` passes (`None`).
    async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }

    const SHOP: &str = "shop.example.com";
    const THRESHOLD: Duration = Duration::from_millis(400);
    const INTERVAL: Duration = Duration::from_millis(50);
    const REFRESH: Duration = Duration::from_millis(100);
    const MAX_DELAY: Duration = Duration::from_millis(20);

    /// Two routers of one foundation, each change taking 0–20 ms, with refresh and pruning on the
    /// time scale above; `tls` as given.
    fn foundation(tls: bool) -> (Vec<Arc<RouterDouble>>, RouteSink) {
        let routers = several(2, Duration::ZERO, MAX_DELAY);
        routers[0].set_freshness(Freshness {
            refresh: Some(REFRESH),
            pruning: Some(Pruning { stale_threshold: THRESHOLD, interval: INTERVAL }),
            tls,
        });
        let sink = fan_out(&routers);
        (routers, sink)
    }

    #[tokio::test]
    async fn a_lost_unregistration_keeps_a_plain_endpoint_on_that_router_until_it_is_stale() {
        let (routers, sink) = foundation(false);
        routers[0].register(APP, "web", vec![addr(1)]);
        (sink.0)(map_event(1, "d", SHOP, APP));
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        routers[1].lose_next(Message::Unregister, Some(APP), 1);
        (sink.0)(RouteEvent::Unmap { seq: 2, destination_guid: "d".into() });
        let unmapped = Instant::now();
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        assert_eq!((routers[0].lost(), routers[1].lost()), (0, 1));
        assert_eq!(routers[0].endpoints_for(SHOP, "/"), [], "the router that got the unregistration");
        assert_eq!(routers[1].endpoints_for(SHOP, "/"), [addr(1)], "the router that missed it");
        until(Duration::from_secs(3), || routers[1].endpoints_for(SHOP, "/").is_empty()).await.expect("pruned");
        let gone = unmapped.elapsed();
        // Renewed last about one refresh before the unmap (or just after it), so pruned at the first
        // pass about a threshold later; the bounds leave room for a busy machine.
        assert!(gone >= THRESHOLD / 2, "pruned after {gone:?}, long before it was stale");
        assert!(gone <= THRESHOLD + INTERVAL + Duration::from_millis(400), "pruned only after {gone:?}");
        // The emptied pool answers 503 no_endpoints, as after an unregistration.
        let backends = lock(&routers[1].shared.backends).clone();
        assert_eq!(routers[1].table().lookup(&backends, SHOP, "/"), Lookup::Empty);
    }

    #[tokio::test]
    async fn a_tls_endpoint_is_never_pruned_as_stale_only_after_a_failed_dial() {
        let (routers, sink) = foundation(true);
        let app = crate::backend::start("app", 0).await.expect("app/0");
        let other = crate::backend::start("other", 0).await.expect("other/0");
        let app_addr = app.addr();
        routers[0].register(APP, "web", vec![app_addr]);
        routers[0].register(OTHER, "web", vec![other.addr()]);
        (sink.0)(map_event(1, "a", SHOP, APP));
        (sink.0)(map_event(2, "o", SHOP, OTHER));
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        routers[1].lose_next(Message::Unregister, Some(APP), 1);
        (sink.0)(RouteEvent::Unmap { seq: 3, destination_guid: "a".into() });
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        assert_eq!(routers[1].lost(), 1);
        // Three thresholds on, the router that missed the unregistration still sends to APP.
        let pruned = until(3 * THRESHOLD, || routers[1].endpoints_for(SHOP, "/").len() < 2).await;
        assert_eq!(pruned, None, "a TLS endpoint is not pruned for staleness");
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(ask(&routers[1], SHOP, None).await);
        }
        assert!(answers.iter().any(|(s, _, h)| *s == 200 && h.contains(&("x-backend".into(), "app/0".into()))));
        // APP's instance stops: the next request that router sends it fails to dial, gets the
        // router's 502 and prunes the endpoint; from then on only OTHER answers. (A request on a
        // kept-alive connection to it fails first without a dial, as gorouter's own would:
        // routing-release keeps backend connections alive, `router.max_idle_connections` 100.)
        drop(app);
        let mut failures = Vec::new();
        for _ in 0..10 {
            if routers[1].endpoints_for(SHOP, "/") == [other.addr()] {
                break;
            }
            let (status, _, headers) = ask(&routers[1], SHOP, None).await;
            if status == 502 {
                failures.extend(headers.into_iter().filter(|(k, _)| k == "x-cf-routererror").map(|(_, v)| v));
            }
        }
        assert_eq!(routers[1].endpoints_for(SHOP, "/"), [other.addr()], "pruned after {failures:?}");
        assert!(
            failures.last().is_some_and(|f| f.contains("connection refused")),
            "a failed dial pruned it: {failures:?}"
        );
        for _ in 0..4 {
            let (status, _, headers) = ask(&routers[1], SHOP, None).await;
            assert_eq!(status, 200);
            assert!(headers.contains(&("x-backend".into(), "other/0".into())));
        }
        // Refreshes do not bring it back: the emitter no longer has it.
        tokio::time::sleep(3 * REFRESH).await;
        assert_eq!(routers[1].endpoints_for(SHOP, "/"), [other.addr()]);
    }

    #[tokio::test]
    async fn a_lost_registration_is_healed_by_the_next_refresh() {
        let (routers, sink) = foundation(false);
        routers[0].set_freshness(Freshness { refresh: None, ..routers[0].freshness() });
        routers[0].register(APP, "web", vec![addr(1)]);
        routers[1].lose_next(Message::Register, Some(APP), 1);
        (sink.0)(map_event(1, "d", SHOP, APP));
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        assert_eq!(routers[0].endpoints_for(SHOP, "/"), [addr(1)]);
        // Without refreshes, the router that missed it never learns of it.
        let healed = until(2 * REFRESH, || !routers[1].endpoints_for(SHOP, "/").is_empty()).await;
        assert_eq!((healed, routers[1].lost()), (None, 1));
        routers[0].set_freshness(Freshness { refresh: Some(REFRESH), pruning: None, tls: false });
        let healed = until(Duration::from_secs(1), || routers[1].endpoints_for(SHOP, "/") == [addr(1)]).await;
        assert!(healed.is_some_and(|t| t <= 2 * REFRESH + MAX_DELAY + Duration::from_millis(100)), "{healed:?}");
    }

    #[tokio::test]
    async fn with_refreshes_and_no_loss_nothing_is_ever_pruned() {
        let (routers, sink) = foundation(false);
        routers[0].register(APP, "web", vec![addr(1), addr(2)]);
        routers[0].register(OTHER, "web", vec![addr(3)]);
        (sink.0)(map_event(1, "d", SHOP, APP));
        (sink.0)(map_event(2, "o", "other.example.com", OTHER));
        (sink.0)(RouteEvent::Register {
            seq: 3,
            instance: ("proc".into(), 5),
            app_guid: OTHER.into(),
            process_type: "web".into(),
            addr: addr(4),
        });
        assert!(routers[0].wait_settled(Duration::from_secs(1)).await);
        let full = |r: &RouterDouble| {
            let mut other = r.endpoints_for("other.example.com", "/");
            other.sort();
            r.endpoints_for(SHOP, "/") == [addr(1), addr(2)] && other == [addr(3), addr(4)]
        };
        // Five thresholds, looked at every 5 ms.
        let lapse = until(5 * THRESHOLD, || !routers.iter().all(|r| full(r))).await;
        assert_eq!(lapse, None, "an endpoint left a router although every registration was refreshed");
        // The same table without refreshes is pruned within a threshold: the check above could fail.
        routers[0].set_freshness(Freshness { refresh: None, ..routers[0].freshness() });
        let pruned = until(THRESHOLD + REFRESH + INTERVAL + Duration::from_millis(200), || {
            routers.iter().all(|r| r.endpoints_for(SHOP, "/").is_empty())
        })
        .await;
        assert!(pruned.is_some(), "without refreshes, pruning empties the pools");
    }
}
