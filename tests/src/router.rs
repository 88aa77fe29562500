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
//! Pruning is not modelled, because no test runs long enough to see it: gorouter drops a plain
//! (non-TLS) endpoint whose registration was not refreshed within `droplet_stale_threshold` (120 s
//! by default, checked every `prune_stale_droplets_interval`, 30 s; config/config.go
//! `DefaultConfig`, route/pool.go#PruneEndpoints via registry.go#pruneStaleDroplets), and never a
//! TLS endpoint that way: a TLS endpoint goes only when dialling it fails with a prunable error
//! (route/pool.go#EndpointFailed, `useTls && fails.PrunableClassifiers.Classify(err)`). The route
//! emitter refreshes every registration well within the threshold (its sync interval, 20 s by
//! default — UNCONFIRMED, route-emitter's config was not read), so on a switch's time scale an
//! endpoint leaves a pool only when it is unregistered. The double's registrations never go stale,
//! and a dead backend answers 502 `endpoint_failure` (the non-TLS path) every time.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard,
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
}

/// A registered real instance: (app guid, process type, address).
type LiveEndpoint = (String, String, SocketAddr);

#[derive(Debug, Default)]
struct Table {
    // Destination guid → (last seq applied, mapping if registered). A tombstone (None) keeps the
    // seq so that a late "map" cannot resurrect a destination already unmapped.
    destinations: HashMap<String, (u64, Option<Mapping>)>,
    instances: HashMap<(String, String), (u64, Vec<bool>)>,
    // Real instances by (process guid, index) → (last seq applied, (app guid, process type,
    // address) while registered). A tombstone keeps the seq, as for destinations.
    live: HashMap<(String, u32), (u64, Option<LiveEndpoint>)>,
    round_robin: HashMap<String, usize>,
    // Route key → when its last destination was unmapped. Gorouter keeps an emptied pool for
    // `empty_pool_timeout` when `empty_pool_response_code_503` is on, answering 503 no_endpoints
    // instead of 404 unknown_route (gorouter registry/registry.go#Unregister and #pruneStaleDroplets;
    // handlers/lookup.go#ServeHTTP `pool.IsEmpty()`). Both are on in routing-release's job spec
    // defaults (true, 10s) — UNCONFIRMED here, the spec was not read.
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
        self.generation += 1;
        match event {
            RouteEvent::Map { seq, destination_guid, fqdn, path, app_guid, process_type } => {
                let entry = self.destinations.entry(destination_guid).or_insert((0, None));
                if seq > entry.0 {
                    *entry = (seq, Some(Mapping { fqdn, path, app_guid, process_type }));
                }
            }
            RouteEvent::Unmap { seq, destination_guid } => {
                let entry = self.destinations.entry(destination_guid).or_insert((0, None));
                if seq > entry.0 {
                    if let Some(m) = entry.1.take() {
                        self.emptied.insert(route_key(&m.fqdn, &m.path), Instant::now());
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
                let entry = self.live.entry(instance).or_insert((0, None));
                if seq > entry.0 {
                    *entry = (seq, Some((app_guid, process_type, addr)));
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

    /// Live endpoints of `process` (registered and running): the instances a test registered
    /// by address, and the real instances registered one by one ([`RouteEvent::Register`]), of
    /// every process of that type (during a rolling deployment, the old and the new `web`).
    fn endpoints(&self, backends: &Backends, app_guid: &str, process_type: &str) -> Vec<Endpoint> {
        let mut out: Vec<Endpoint> = self
            .live
            .iter()
            .filter_map(|((_, index), (_, reg))| {
                let (app, kind, addr) = reg.as_ref()?;
                (app == app_guid && kind == process_type).then(|| Endpoint {
                    app_guid: app.clone(),
                    index: *index,
                    addr: *addr,
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
                let mut seen = std::collections::HashSet::new();
                let pool = pool.into_iter().map(|(_, e)| e).filter(|e| seen.insert(e.addr)).collect();
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
}

/// One gorouter double: its own table, fed by its own [`sink`](Self::sink).
#[derive(Debug)]
pub struct RouterDouble {
    table: Mutex<Table>,
    shared: Arc<Shared>,
    /// Every `Host` asked for, as sent (a test can see what a client probed).
    hosts: Mutex<std::collections::BTreeSet<String>>,
    /// Requests that carried `X-CF-APP-INSTANCE`.
    pinned: AtomicUsize,
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
    let shared = Arc::new(Shared {
        backends: Mutex::new(HashMap::new()),
        backends_generation: AtomicU64::new(0),
        delay: Mutex::new((min, max.max(min))),
        pending: watch::Sender::new(0),
        services: Arc::new(RouteServices::default()),
    });
    (0..n.max(1)).map(|_| Arc::new(RouterDouble::with(Arc::clone(&shared)))).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RouterDouble {
    /// A single router whose route changes take between `min` and `max` to arrive.
    pub fn new(min: Duration, max: Duration) -> RouterDouble {
        let shared = Arc::new(Shared {
            backends: Mutex::new(HashMap::new()),
            backends_generation: AtomicU64::new(0),
            delay: Mutex::new((min, max.max(min))),
            pending: watch::Sender::new(0),
            services: Arc::new(RouteServices::default()),
        });
        RouterDouble::with(shared)
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

    /// Applies `events` at once (the initial table).
    pub fn apply_now(&self, events: Vec<RouteEvent>) {
        let mut t = self.table();
        for e in events {
            t.apply(e);
        }
    }

    /// The intake for CC's route changes: each event is counted as pending at once (so
    /// [`wait_settled`](Self::wait_settled) cannot miss it) and applied after its own random delay.
    pub fn sink(self: &Arc<Self>) -> RouteSink {
        let (tx, mut events) = mpsc::unbounded_channel::<RouteEvent>();
        let pending = self.shared.pending.clone();
        let router = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let Some(r) = router.upgrade() else { break };
                let (min, max) = *lock(&r.shared.delay);
                let delay = if max > min { rand::rng().random_range(min..=max) } else { min };
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    r.table().apply(event);
                    r.shared.pending.send_modify(|n| *n -= 1);
                });
            }
        });
        RouteSink(Box::new(move |event| {
            pending.send_modify(|n| *n += 1);
            // A stopped router just stops listening; the CC double keeps working without it.
            if tx.send(event).is_err() {
                pending.send_modify(|n| *n -= 1);
            }
        }))
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
            Err(e) => {
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
    if text.to_lowercase().contains("refused") { "connect: connection refused".to_owned() } else { text }
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
}
