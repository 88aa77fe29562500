//! Starts the CC, UAA and gorouter doubles on `127.0.0.1:0` listeners and wires them together.
//! Everything stops when the [`CfDouble`] is dropped.
//!
//! With several routers ([`Options::routers`]), each router listens on its own port and a
//! [`Front`] (an L4 balancer) on the router address hands each connection to one of them. CC's
//! route changes fan out to every router, as NATS delivers every registration to every gorouter
//! subscribed, and each router applies each change after its own delay ([`router::fan_out`]).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::{
    cc::Cc,
    client::Http,
    error::Error,
    faults::{Faults, RateLimit},
    router::{self, Balance, Freshness, Front, Pruning, RouterDouble},
    serve::{FaultLayer, Handler, Server, axum_handler, spawn},
    uaa::{self, Uaa},
};

/// How the double behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Range of the delay each route change takes to reach the router (each router draws its own).
    pub router_delay: (Duration, Duration),
    /// How many routers answer on the router address (at least 1).
    pub routers: usize,
    /// How the balancer in front of several routers spreads connections.
    pub balance: Balance,
    /// How often the route emitter re-sends every registration (`None`: never; see
    /// [`router::EMITTER_REFRESH`] for a foundation's 20 s).
    pub route_refresh: Option<Duration>,
    /// Gorouter's pruning of plain endpoints not renewed in time (`None`: never).
    pub pruning: Option<Pruning>,
    /// Every endpoint registered with a TLS port ([`Freshness::tls`]).
    pub tls_backends: bool,
    /// How long a build stays `STAGING`.
    pub staging_time: Duration,
    /// How long started instances report `STARTING`.
    pub startup_time: Duration,
    /// How long a deployment stays `DEPLOYING`.
    pub deployment_time: Duration,
    /// Diego's limit on the bytes of one process's routes (the BBS's 128 KiB in production;
    /// small in tests so that a few routes reach it), `None` for no limit.
    pub diego_routes_limit: Option<usize>,
    /// CC's rate limiter, `None` when off (capi-release's default).
    pub rate_limit: Option<RateLimit>,
    /// How long a stopped app's instances report `STOPPING` (zero: gone at once).
    pub stopping_time: Duration,
    /// The token signing secret.
    pub secret: Vec<u8>,
}

impl Options {
    /// A foundation as harsh as production, every behaviour at once:
    /// - three gorouters behind a balancer that picks one at random per connection, each taking
    ///   each route change on its own 50–500 ms later (route emitter and NATS);
    /// - Diego's 128 KiB limit on one process's routes (bbs `models/desired_lrp.go`);
    /// - CC's rate limiter as capi-release enables it: 2000 requests per user per hour, split
    ///   over 4 CC instances (`jobs/cloud_controller_ng/spec`,
    ///   `templates/cloud_controller_ng.yml.erb`);
    /// - staging and start-up that take seconds, a rolling deployment that takes some more, and
    ///   instances that report `STOPPING` for a while after a stop (`instances_stats_reporter.rb`,
    ///   CC's `app_instance_stopping_state`);
    /// - registrations that age, on a 1/60 time scale: the route emitter re-sends each every
    ///   600 ms, gorouter prunes plain endpoints not renewed within 2 s, checking every 250 ms
    ///   ([`Pruning::SCALED`], [`router::SCALED_REFRESH`]); and every endpoint is TLS, as
    ///   cf-deployment runs Diego's per-container proxy, so only a failed dial prunes one
    ///   ([`Freshness::tls`]).
    ///
    /// The kinder [`Options::default`] stays for the double's own unit tests.
    pub fn production() -> Options {
        Options {
            router_delay: (Duration::from_millis(50), Duration::from_millis(500)),
            routers: 3,
            balance: Balance::Random,
            staging_time: Duration::from_secs(2),
            startup_time: Duration::from_secs(1),
            deployment_time: Duration::from_secs(3),
            diego_routes_limit: Some(128 * 1024),
            rate_limit: Some(RateLimit::capi_default().instances(4)),
            stopping_time: Duration::from_secs(1),
            route_refresh: Some(router::SCALED_REFRESH),
            pruning: Some(Pruning::SCALED),
            tls_backends: true,
            ..Options::default()
        }
    }
}

impl Default for Options {
    /// Small but non-zero route propagation delays (0–50 ms), so that a client that assumes
    /// instant propagation is caught; instant staging, startup and deployments.
    fn default() -> Self {
        Options {
            router_delay: (Duration::ZERO, Duration::from_millis(50)),
            routers: 1,
            balance: Balance::RoundRobin,
            route_refresh: None,
            pruning: None,
            tls_backends: false,
            staging_time: Duration::ZERO,
            startup_time: Duration::ZERO,
            deployment_time: Duration::ZERO,
            diego_routes_limit: None,
            rate_limit: None,
            stopping_time: Duration::ZERO,
            secret: b"cf-double-test-secret".to_vec(),
        }
    }
}

/// A running Cloud Foundry double: CC + UAA + gorouter on loopback.
#[derive(Debug)]
pub struct CfDouble {
    /// Cloud Controller state and handlers.
    pub cc: Arc<Cc>,
    /// UAA users, clients and token settings.
    pub uaa: Arc<Uaa>,
    /// Faults and request log (CC and UAA).
    pub faults: Arc<Faults>,
    /// The gorouter double (the first router when there are several; its `register`,
    /// `set_delay` and `wait_settled` act on all of them).
    pub router: Arc<RouterDouble>,
    routers: Vec<Arc<RouterDouble>>,
    cc_server: Server,
    uaa_server: Server,
    router_servers: Vec<Server>,
    front: Option<Front>,
    /// Children of real instances ([`crate::instances`]), by PID.
    pub(crate) children: Arc<crate::instances::Children>,
    /// One per app with real instances; each kills its children when dropped.
    pub(crate) supervisors: std::sync::Mutex<Vec<crate::instances::Supervisor>>,
}

impl CfDouble {
    /// Binds three loopback ports and serves CC, UAA and the router on them.
    pub async fn start(options: Options) -> Result<CfDouble, Error> {
        let cc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let uaa_listener = TcpListener::bind("127.0.0.1:0").await?;
        let router_listener = TcpListener::bind("127.0.0.1:0").await?;
        let cc_url = format!("http://{}", cc_listener.local_addr()?);
        let uaa_url = format!("http://{}", uaa_listener.local_addr()?);

        let faults = Arc::new(Faults::default());
        let uaa = Arc::new(Uaa::new(&uaa_url, &options.secret));
        let cc = Arc::new(Cc::new(&cc_url, Arc::clone(&uaa), Arc::clone(&faults)));
        {
            let mut st = cc.state();
            st.staging_time = options.staging_time;
            st.startup_time = options.startup_time;
            st.deployment_time = options.deployment_time;
            st.diego_routes_limit = options.diego_routes_limit;
            st.stopping_time = options.stopping_time;
        }
        faults.set_rate_limit(options.rate_limit.clone());
        let routers = router::several(options.routers, options.router_delay.0, options.router_delay.1);
        {
            // Subscribe and snapshot under one lock so that no change falls between the two.
            let mut st = cc.state();
            routers[0].set_freshness(Freshness {
                refresh: options.route_refresh,
                pruning: options.pruning,
                tls: options.tls_backends,
            });
            st.subscribe(router::fan_out(&routers));
            let snapshot = st.snapshot_events();
            for r in &routers {
                r.apply_now(snapshot.clone());
            }
        }

        let cc_handler: Handler = {
            let cc = Arc::clone(&cc);
            Arc::new(move |req| Box::pin(Arc::clone(&cc).handle(req)))
        };
        let layer = |service| FaultLayer { faults: Arc::clone(&faults), service, uaa: Arc::clone(&uaa) };
        let cc_server = spawn(cc_listener, cc_handler, Some(layer("cc")))?;
        let uaa_server = spawn(uaa_listener, axum_handler(uaa::router(Arc::clone(&uaa))), Some(layer("uaa")))?;
        let handler = |router: &Arc<RouterDouble>| -> Handler {
            let router = Arc::clone(router);
            Arc::new(move |req| Box::pin(Arc::clone(&router).proxy(req)))
        };
        let (router_servers, front) = if let [only] = routers.as_slice() {
            (vec![spawn(router_listener, handler(only), None)?], None)
        } else {
            let mut servers = Vec::new();
            for r in &routers {
                servers.push(spawn(TcpListener::bind("127.0.0.1:0").await?, handler(r), None)?);
            }
            let addrs = servers.iter().map(Server::addr).collect();
            (servers, Some(Front::start(router_listener, addrs, options.balance)?))
        };
        let router = Arc::clone(&routers[0]);
        let double = CfDouble {
            cc,
            uaa,
            faults,
            router,
            routers,
            cc_server,
            uaa_server,
            router_servers,
            front,
            children: Arc::default(),
            supervisors: std::sync::Mutex::default(),
        };
        double.wait_ready(Duration::from_secs(5)).await?;
        Ok(double)
    }

    /// Polls `GET /` on CC until it answers (bounded by `deadline`).
    async fn wait_ready(&self, deadline: Duration) -> Result<(), Error> {
        let http = Http::new();
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if http.get(&self.api_url(), None).await.is_ok_and(|r| r.status.is_success()) {
                self.faults.clear_log();
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                return Err(Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "CC double did not answer")));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// CC's URL (`Target`).
    pub fn api_url(&self) -> String {
        self.cc_server.url()
    }

    /// UAA's URL (`AuthorizationEndpoint`, `UaaEndpoint`).
    pub fn uaa_url(&self) -> String {
        self.uaa_server.url()
    }

    /// The router's URL (the balancer's, with several routers); send requests with a `Host`
    /// header naming the route.
    pub fn router_url(&self) -> String {
        format!("http://{}", self.router_addr())
    }

    /// The router's address (the balancer's, with several routers).
    pub fn router_addr(&self) -> SocketAddr {
        self.front.as_ref().map_or_else(|| self.router_servers[0].addr(), Front::addr)
    }

    /// Every router, each with its own table.
    pub fn routers(&self) -> &[Arc<RouterDouble>] {
        &self.routers
    }

    /// Each router's own address (past the balancer).
    pub fn router_addrs(&self) -> Vec<SocketAddr> {
        self.router_servers.iter().map(Server::addr).collect()
    }

    /// How many connections the balancer handed to each router (`None` with one router).
    pub fn router_connections(&self) -> Option<Vec<usize>> {
        self.front.as_ref().map(Front::connections)
    }

    /// Waits until every router applied every change (or `timeout`); whether they settled.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        self.router.wait_settled(timeout).await
    }

    /// `bearer <token>` for `user_name`, as `cf login` stores it.
    pub fn bearer(&self, user_name: &str) -> Option<String> {
        self.uaa.login(user_name).map(|t| format!("bearer {}", t.access_token))
    }
}
