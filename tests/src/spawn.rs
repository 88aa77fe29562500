//! Starts the CC, UAA and gorouter doubles on `127.0.0.1:0` listeners and wires them together.
//! Everything stops when the [`CfDouble`] is dropped.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;

use crate::{
    cc::Cc,
    client::Http,
    error::Error,
    faults::Faults,
    router::RouterDouble,
    serve::{FaultLayer, Handler, Server, axum_handler, spawn},
    uaa::{self, Uaa},
};

/// How the double behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Range of the delay each route change takes to reach the router.
    pub router_delay: (Duration, Duration),
    /// How long a build stays `STAGING`.
    pub staging_time: Duration,
    /// How long started instances report `STARTING`.
    pub startup_time: Duration,
    /// How long a deployment stays `DEPLOYING`.
    pub deployment_time: Duration,
    /// Diego's limit on the bytes of one process's routes (the BBS's 128 KiB in production;
    /// small in tests so that a few routes reach it), `None` for no limit.
    pub diego_routes_limit: Option<usize>,
    /// The token signing secret.
    pub secret: Vec<u8>,
}

impl Default for Options {
    /// Small but non-zero route propagation delays (0–50 ms), so that a client that assumes
    /// instant propagation is caught; instant staging, startup and deployments.
    fn default() -> Self {
        Options {
            router_delay: (Duration::ZERO, Duration::from_millis(50)),
            staging_time: Duration::ZERO,
            startup_time: Duration::ZERO,
            deployment_time: Duration::ZERO,
            diego_routes_limit: None,
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
    /// The gorouter double.
    pub router: Arc<RouterDouble>,
    cc_server: Server,
    uaa_server: Server,
    router_server: Server,
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
        }
        let router = Arc::new(RouterDouble::new(options.router_delay.0, options.router_delay.1));
        {
            // Subscribe and snapshot under one lock so that no change falls between the two.
            let mut st = cc.state();
            st.subscribe(router.sink());
            router.apply_now(st.snapshot_events());
        }

        let cc_handler: Handler = {
            let cc = Arc::clone(&cc);
            Arc::new(move |req| Box::pin(Arc::clone(&cc).handle(req)))
        };
        let router_handler: Handler = {
            let router = Arc::clone(&router);
            Arc::new(move |req| Box::pin(Arc::clone(&router).proxy(req)))
        };
        let layer = |service| FaultLayer { faults: Arc::clone(&faults), service, uaa: Arc::clone(&uaa) };
        let cc_server = spawn(cc_listener, cc_handler, Some(layer("cc")))?;
        let uaa_server = spawn(uaa_listener, axum_handler(uaa::router(Arc::clone(&uaa))), Some(layer("uaa")))?;
        let router_server = spawn(router_listener, router_handler, None)?;
        let double = CfDouble { cc, uaa, faults, router, cc_server, uaa_server, router_server };
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

    /// The router's URL; send requests with a `Host` header naming the route.
    pub fn router_url(&self) -> String {
        self.router_server.url()
    }

    /// The router's address.
    pub fn router_addr(&self) -> SocketAddr {
        self.router_server.addr()
    }

    /// `bearer <token>` for `user_name`, as `cf login` stores it.
    pub fn bearer(&self, user_name: &str) -> Option<String> {
        self.uaa.login(user_name).map(|t| format!("bearer {}", t.access_token))
    }
}
