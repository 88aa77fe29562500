//! Shared harness of the `switchctl on / off / status` acceptance tests: a Cloud Foundry double
//! with an app `shop` (its routes, two built-in instances) and the real `maintenance-app` binary
//! serving the double's `maintenance-app` app, a cf CLI login, and the real `switchctl` binary run
//! as a child process.
//!
//! The binaries come from the target directory of the test executable; build them first with
//! `cargo build --release -p switchctl -p maintenance-app` (same `CARGO_TARGET_DIR`).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use http::Method;
use tests::{
    Balance, CfDouble, Options,
    client::Http,
    faults::LoggedRequest,
    serve::Server,
    world::{SeededApp, Standard},
};

/// The label (and annotation) key switchctl writes on each route it switches for `app_guid`.
pub(crate) fn state_key(app_guid: &str) -> String {
    format!("switchctl.cf-maintenance/m-{app_guid}")
}

/// Prefix of every key switchctl writes.
pub(crate) const KEY_PREFIX: &str = "switchctl.cf-maintenance/";

/// Where the test's binaries are: `…/target/<profile>/deps/it-…` → `…/target/<profile>/NAME`.
pub(crate) fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("the test runs from <target>/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first: cargo build --release -p switchctl -p maintenance-app",
        path.display()
    );
    path
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("switch-it-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real `maintenance-app` as a child process; killed on drop.
#[derive(Debug)]
pub(crate) struct MaintenanceProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl MaintenanceProcess {
    /// Starts it on a free port and waits (at most 10 s) for its `listening … addr=[::]:PORT` line.
    pub(crate) fn start() -> MaintenanceProcess {
        let mut child = Command::new(binary("maintenance-app"))
            .env_clear()
            .env("PORT", "0")
            .env("MAINTENANCE_STATS_INTERVAL", "0")
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start maintenance-app");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        // Reads (and keeps draining) its stdout until it exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = strip_ansi(&line);
                    if let Some(port) = listening_port(&line) {
                        break port;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("maintenance-app did not print its address within 10 s; output: {seen:?}");
                }
            }
        };
        MaintenanceProcess { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Drop for MaintenanceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The port of `addr=[::]:PORT` (or `addr=0.0.0.0:PORT`) in a log line.
fn listening_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("addr=")? + 5..];
    let token = rest.split_whitespace().next()?.trim_matches('"');
    token.rsplit_once(':')?.1.parse().ok()
}

/// What answered a request sent through the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Answer {
    /// The app (`x-backend: shop/N`).
    App,
    /// The maintenance app (`x-maintenance-app: cf-maintenance`).
    Maintenance,
    /// gorouter's 404 unknown_route, or its 503 no_endpoints for an emptied pool: nobody serves.
    NotFound,
    /// gorouter's 502.
    BadGateway,
    /// Anything else (or no answer).
    Other,
}

/// One HTTP route of `shop` and the request path used for traffic to it.
#[derive(Debug, Clone)]
pub(crate) struct HttpRoute {
    pub(crate) guid: String,
    pub(crate) host: String,
    pub(crate) request_path: String,
}

/// A destination as compared before and after: (app guid, process type, stored port — `None` is
/// CC's -1 —, protocol).
pub(crate) type Dest = (String, String, Option<u16>, String);

/// Which maintenance app the space has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Maint {
    /// `maintenance-app` in the space, started, served by the real binary.
    Running,
    /// `maintenance-app` in the space but stopped.
    Stopped,
    /// No `maintenance-app` in the space; one in the other space of the org.
    OtherSpace,
    /// No maintenance app at all.
    Missing,
}

/// How to build a [`World`].
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) router_delay: (Duration, Duration),
    /// Number of HTTP routes of `shop` (at least 1): `shop`, `shop…/api`, `www`, then `r3`, `r4`….
    pub(crate) routes: usize,
    /// Also give `shop` an internal route and a TCP route (to be skipped).
    pub(crate) extra_routes: bool,
    /// Also map `shop`'s `admin` process on port 9000 to the first route.
    pub(crate) second_process: bool,
    pub(crate) maint: Maint,
    /// The user in config.json.
    pub(crate) user: &'static str,
    /// Lifetime of the access tokens UAA issues (the one in config.json included).
    pub(crate) access_token_lifetime: Option<Duration>,
    /// Diego's limit on one process's routes, in bytes (`None`: no limit).
    pub(crate) diego_routes_limit: Option<usize>,
    /// Start from [`Options::production`] (every harsh behaviour at once) instead of the fields
    /// above for the router (`diego_routes_limit`, when set, still applies).
    pub(crate) production: bool,
    /// Routers behind the router address, and how connections are spread over them.
    pub(crate) routers: (usize, Balance),
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            router_delay: (Duration::ZERO, Duration::from_millis(100)),
            routes: 3,
            extra_routes: false,
            second_process: false,
            maint: Maint::Running,
            user: "developer",
            access_token_lifetime: None,
            diego_routes_limit: None,
            production: false,
            routers: (1, Balance::RoundRobin),
        }
    }
}

/// A double with `shop`, its routes and the maintenance app, plus a cf login in a temp `CF_HOME`.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) cf: CfDouble,
    pub(crate) std: Standard,
    pub(crate) app: SeededApp,
    pub(crate) maint: Option<SeededApp>,
    pub(crate) routes: Vec<HttpRoute>,
    /// Internal and TCP routes of `shop`, when asked for.
    pub(crate) skipped_routes: Vec<String>,
    pub(crate) home: TempDir,
    pub(crate) http: Http,
    _app_servers: Vec<Server>,
    _maint_process: Option<MaintenanceProcess>,
}

impl World {
    pub(crate) async fn new(setup: Setup) -> World {
        let options = if setup.production {
            // A test may shrink Diego's limit to reach it with a few routes.
            let production = Options::production();
            Options { diego_routes_limit: setup.diego_routes_limit.or(production.diego_routes_limit), ..production }
        } else {
            Options {
                router_delay: setup.router_delay,
                diego_routes_limit: setup.diego_routes_limit,
                routers: setup.routers.0,
                balance: setup.routers.1,
                ..Options::default()
            }
        };
        let cf = CfDouble::start(options).await.expect("double starts on loopback");
        let std = cf.seed_standard();
        let app = cf.add_app_with(&std.space, "shop", 2, true);
        let app_servers = cf.serve_instances(&app.guid, "shop", "web", 2).await.expect("shop instances");

        let mut routes = Vec::new();
        for i in 0..setup.routes.max(1) {
            let (host, path) = match i {
                0 => ("shop".to_owned(), ""),
                1 => ("shop".to_owned(), "/api"),
                2 => ("www".to_owned(), ""),
                n => (format!("r{n}"), ""),
            };
            let guid = cf.add_route(&std.space, &std.domain, &host, path);
            cf.map_route(&guid, &app.guid, "web", 8080);
            let request_path = if path.is_empty() { "/".to_owned() } else { format!("{path}/items") };
            routes.push(HttpRoute { guid, host: format!("{host}.apps.example.com"), request_path });
        }
        if setup.second_process {
            cf.add_process(&app.guid, "admin", 1);
            cf.map_route(&routes[0].guid, &app.guid, "admin", 9000);
        }
        let mut skipped_routes = Vec::new();
        if setup.extra_routes {
            let internal = cf.add_route(&std.space, &std.internal_domain, "shop", "");
            cf.map_route(&internal, &app.guid, "web", 8080);
            let tcp = cf.add_tcp_route(&std.space, &std.tcp_domain, 61001);
            cf.map_route(&tcp, &app.guid, "web", 8080);
            skipped_routes.extend([internal, tcp]);
        }

        let (maint, maint_process) = match setup.maint {
            Maint::Running => {
                let seeded = cf.add_app(&std.space, "maintenance-app");
                let process = MaintenanceProcess::start();
                cf.router.register(&seeded.guid, "web", vec![process.addr]);
                (Some(seeded), Some(process))
            }
            Maint::Stopped => (Some(cf.add_app_with(&std.space, "maintenance-app", 1, false)), None),
            Maint::OtherSpace => {
                let seeded = cf.add_app(&std.other_space, "maintenance-app");
                let process = MaintenanceProcess::start();
                cf.router.register(&seeded.guid, "web", vec![process.addr]);
                (Some(seeded), Some(process))
            }
            Maint::Missing => (None, None),
        };

        let home = TempDir::new("home");
        if let Some(lifetime) = setup.access_token_lifetime {
            cf.uaa.set_access_token_lifetime(lifetime);
        }
        tests::seed_cli_config(&cf, home.path(), setup.user, ("org", &std.org), ("dev", &std.space))
            .expect("config.json written");
        assert!(cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
        cf.faults.clear_log();
        World {
            cf,
            std,
            app,
            maint,
            routes,
            skipped_routes,
            home,
            http: Http::new(),
            _app_servers: app_servers,
            _maint_process: maint_process,
        }
    }

    /// The address of the maintenance app's one instance, when it runs.
    pub(crate) fn maint_addr(&self) -> Option<SocketAddr> {
        self._maint_process.as_ref().map(|p| p.addr)
    }

    /// The addresses of `shop`'s instances.
    pub(crate) fn app_addrs(&self) -> Vec<SocketAddr> {
        self._app_servers.iter().map(Server::addr).collect()
    }

    pub(crate) fn maint_guid(&self) -> String {
        self.maint.as_ref().map(|m| m.guid.clone()).expect("a maintenance app")
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.home.path().join(".cf").join("config.json")
    }

    /// `--probe-via` value.
    pub(crate) fn probe_via(&self) -> String {
        self.cf.router_addr().to_string()
    }

    /// Starts `switchctl ARGS`; for `on`/`off` without `--probe-via`/`--settle`/`--timeout`,
    /// adds `--probe-via <router> --settle 0 --timeout 30`.
    pub(crate) fn spawn(&self, args: &[&str]) -> Switchctl {
        Switchctl::spawn(self.home.path(), &self.with_defaults(args))
    }

    /// Runs `switchctl ARGS` to its end (at most 90 s).
    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        self.spawn(args).wait(Duration::from_secs(90)).await
    }

    /// Starts `switchctl ARGS` (with the defaults of [`World::spawn`]) as the leader of a new
    /// process group, as a shell starts a foreground job: [`Switchctl::interrupt`] then reaches it
    /// and the command it runs, like Ctrl-C on a terminal.
    pub(crate) fn spawn_job(&self, args: &[&str]) -> Switchctl {
        Switchctl::spawn_with(self.home.path(), &self.with_defaults(args), true)
    }

    fn with_defaults(&self, args: &[&str]) -> Vec<String> {
        // switchctl's own arguments end at `--` (`run`'s command follows it).
        let end = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let (own, command) = args.split_at(end);
        let mut out: Vec<String> = own.iter().map(|s| (*s).to_owned()).collect();
        // Probes never leave the loopback: `status` too goes through the router double.
        if own.contains(&"status") && !own.contains(&"--probe-via") && !own.contains(&"--no-probe") {
            out.extend(["--probe-via".to_owned(), self.probe_via()]);
        }
        if own.iter().any(|a| *a == "on" || *a == "off" || *a == "run") {
            if !own.contains(&"--probe-via") {
                out.extend(["--probe-via".to_owned(), self.probe_via()]);
            }
            if !own.contains(&"--settle") {
                out.extend(["--settle".to_owned(), "0".to_owned()]);
            }
            if !own.contains(&"--timeout") {
                out.extend(["--timeout".to_owned(), "30".to_owned()]);
            }
        }
        out.extend(command.iter().map(|s| (*s).to_owned()));
        out
    }

    /// The destinations of `route`, sorted.
    pub(crate) fn dests(&self, route: &str) -> Vec<Dest> {
        let st = self.cc_state();
        let mut d: Vec<Dest> = st
            .route(route)
            .map(|r| {
                r.destinations
                    .iter()
                    .map(|d| (d.app_guid.clone(), d.process_type.clone(), d.port, d.protocol.clone()))
                    .collect()
            })
            .unwrap_or_default();
        d.sort();
        d
    }

    /// Destinations of every route of `shop` (HTTP and skipped), by route guid.
    pub(crate) fn all_dests(&self) -> BTreeMap<String, Vec<Dest>> {
        self.routes
            .iter()
            .map(|r| r.guid.clone())
            .chain(self.skipped_routes.iter().cloned())
            .map(|g| {
                let d = self.dests(&g);
                (g, d)
            })
            .collect()
    }

    /// Labels and annotations of `route` that switchctl owns.
    pub(crate) fn switch_metadata(&self, route: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let st = self.cc_state();
        let Some(r) = st.route(route) else { return Default::default() };
        let pick = |m: &BTreeMap<String, String>| {
            m.iter().filter(|(k, _)| k.starts_with(KEY_PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        (pick(&r.metadata.labels), pick(&r.metadata.annotations))
    }

    fn cc_state(&self) -> std::sync::MutexGuard<'_, tests::cc::state::State> {
        self.cf.cc.state()
    }

    /// One request to `route` through the router.
    pub(crate) async fn probe(&self, route: &HttpRoute) -> Answer {
        let url = format!("{}{}", self.cf.router_url(), route.request_path);
        classify(self.http.send(Method::GET, &url, &[("host", &route.host)], None).await.ok())
    }

    /// `n` requests to every HTTP route through the router, after the router settled.
    pub(crate) async fn answers(&self, n: usize) -> Vec<(String, Answer)> {
        assert!(self.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
        let mut out = Vec::new();
        for r in &self.routes {
            for _ in 0..n {
                out.push((r.host.clone() + &r.request_path, self.probe(r).await));
            }
        }
        out
    }

    /// Every route answers, each request from `shop` or from the maintenance app (never 404/502).
    pub(crate) async fn assert_consistent(&self, context: &str) {
        let answers = self.answers(6).await;
        let bad: Vec<_> =
            answers.iter().filter(|(_, a)| !matches!(a, Answer::App | Answer::Maintenance)).cloned().collect();
        assert!(bad.is_empty(), "{context}: routes must answer from shop or the maintenance app: {bad:?}");
    }

    /// The `on` end state: each HTTP route has exactly one maintenance destination and none of
    /// `shop`'s, carries the label, and answers only from the maintenance app; skipped routes are
    /// unchanged.
    pub(crate) async fn assert_all_on(&self, before: &BTreeMap<String, Vec<Dest>>, context: &str) {
        let maint = self.maint_guid();
        for r in &self.routes {
            let d = self.dests(&r.guid);
            let m = d.iter().filter(|x| x.0 == maint).count();
            let a = d.iter().filter(|x| x.0 == self.app.guid).count();
            assert_eq!((m, a), (1, 0), "{context}: {} destinations {d:?}", r.host);
            let (labels, annotations) = self.switch_metadata(&r.guid);
            assert_eq!(
                labels.get(&state_key(&self.app.guid)).map(String::as_str),
                Some("on"),
                "{context}: label on {}",
                r.host
            );
            let note = annotations.get(&state_key(&self.app.guid)).expect("annotation");
            let note: serde_json::Value = serde_json::from_str(note).expect("annotation is JSON");
            assert_eq!(note["v"], 1, "{context}: annotation {note}");
            assert_eq!(note["app"].as_str(), Some(self.app.guid.as_str()), "{context}: annotation {note}");
            assert_eq!(note["app_name"].as_str(), Some("shop"), "{context}: annotation {note}");
            assert!(note["maintenance_app"].is_string() && note["since"].is_string(), "{context}: annotation {note}");
            let mut recorded: Vec<Dest> = note["destinations"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|d| {
                            (
                                self.app.guid.clone(),
                                d["process"].as_str().unwrap_or_default().to_owned(),
                                d["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
                                d["protocol"].as_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            recorded.sort();
            let original: Vec<Dest> = before
                .get(&r.guid)
                .map(|d| d.iter().filter(|x| x.0 == self.app.guid).cloned().collect())
                .unwrap_or_default();
            assert_eq!(recorded, original, "{context}: the annotation records shop's destinations on {}", r.host);
        }
        for g in &self.skipped_routes {
            assert_eq!(Some(&self.dests(g)), before.get(g), "{context}: internal/TCP routes are not touched");
        }
        let answers = self.answers(6).await;
        let bad: Vec<_> = answers.iter().filter(|(_, a)| *a != Answer::Maintenance).cloned().collect();
        assert!(bad.is_empty(), "{context}: only the maintenance app answers: {bad:?}");
    }

    /// The `off` end state: the destinations are exactly `before`, no switchctl metadata is left
    /// and only `shop` answers.
    pub(crate) async fn assert_restored(&self, before: &BTreeMap<String, Vec<Dest>>, context: &str) {
        assert_eq!(&self.all_dests(), before, "{context}: destinations restored exactly");
        for r in &self.routes {
            let (labels, annotations) = self.switch_metadata(&r.guid);
            assert!(labels.is_empty() && annotations.is_empty(), "{context}: metadata left on {}: {labels:?}", r.host);
        }
        let answers = self.answers(6).await;
        let bad: Vec<_> = answers.iter().filter(|(_, a)| *a != Answer::App).cloned().collect();
        assert!(bad.is_empty(), "{context}: only shop answers: {bad:?}");
    }

    /// CC requests in the log (UAA's left out).
    pub(crate) fn cc_log(&self) -> Vec<LoggedRequest> {
        self.cf.faults.log().into_iter().filter(|r| r.service == "cc").collect()
    }

    /// CC requests that are not reads.
    pub(crate) fn cc_writes(&self) -> Vec<String> {
        self.cc_log()
            .into_iter()
            .filter(|r| r.method != Method::GET && r.method != Method::HEAD)
            .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
            .collect()
    }
}

fn classify(reply: Option<tests::client::Reply>) -> Answer {
    let Some(r) = reply else { return Answer::Other };
    if r.header("x-maintenance-app") == Some("cf-maintenance") {
        Answer::Maintenance
    } else if r.status == 200 && r.header("x-backend").is_some_and(|b| b.starts_with("shop/")) {
        Answer::App
    } else if r.status == 404 || (r.status == 503 && r.header("x-cf-routererror") == Some("no_endpoints")) {
        Answer::NotFound
    } else if r.status == 502 {
        Answer::BadGateway
    } else {
        Answer::Other
    }
}

/// A finished `switchctl` run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) args: Vec<String>,
    /// Exit code; `None` when killed by a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) took: Duration,
}

impl Run {
    /// Asserts exit code `code`, showing the output otherwise.
    pub(crate) fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "switchctl {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    /// `status --json`, whose stdout is one event per line like every command's: the routes of its
    /// `route` events and the `ok` of its `summary`, as one document.
    pub(crate) fn json(&self) -> serde_json::Value {
        let events = self.events();
        let routes: Vec<serde_json::Value> =
            events.iter().filter(|e| e["event"] == "route").map(|e| e["route"].clone()).collect();
        let summary = events.iter().find(|e| e["event"] == "summary").unwrap_or_else(|| panic!("no summary: {self}"));
        serde_json::json!({"ok": summary["ok"], "app": summary["app"], "routes": routes})
    }

    /// `on`/`off`/`run --json`: every event, one JSON object per line.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("--json line is not one JSON object ({e}): {line}"))
            })
            .collect()
    }

    /// The report of the one app of an `on`/`off --json` run (from its `summary` event).
    pub(crate) fn report(&self) -> serde_json::Value {
        let events = self.events();
        let summary =
            events.iter().rev().find(|e| e["event"] == "summary").unwrap_or_else(|| panic!("no summary: {self}"));
        let apps = summary["apps"].as_array().cloned().unwrap_or_default();
        assert_eq!(apps.len(), 1, "one app in {summary}");
        apps[0].clone()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "switchctl {:?} → {:?} in {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// A running `switchctl` child; killed on drop if still running.
#[derive(Debug)]
pub(crate) struct Switchctl {
    child: Child,
    args: Vec<String>,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

impl Switchctl {
    /// Starts `switchctl ARGS` with `CF_HOME=home` and no other cf-related environment.
    pub(crate) fn spawn(home: &Path, args: &[String]) -> Switchctl {
        Switchctl::spawn_with(home, args, false)
    }

    /// As [`Switchctl::spawn`]; with `own_group`, as the leader of a new process group.
    pub(crate) fn spawn_with(home: &Path, args: &[String], own_group: bool) -> Switchctl {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = Command::new(binary("switchctl"));
        if own_group {
            cmd.process_group(0);
        }
        cmd.args(args)
            .env_clear()
            .env("CF_HOME", home)
            .env("HOME", home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        let mut child = cmd.spawn().expect("start switchctl");
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        Switchctl { child, args: args.to_vec(), started: Instant::now(), out, err }
    }

    /// SIGINT to switchctl's process group (see [`World::spawn_job`]): what Ctrl-C does.
    pub(crate) fn interrupt(&self) {
        let pgid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGINT).expect("SIGINT to the job");
    }

    /// Sends `signal` to switchctl alone.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal to switchctl");
    }

    /// Whether switchctl catches SIGINT yet (`SigCgt` in `/proc/PID/status`): from then on, a
    /// Ctrl-C is its to handle, not the default death.
    pub(crate) fn catches_sigint(&self) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (nix::sys::signal::Signal::SIGINT as i32 - 1)) != 0)
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the end (polling every 10 ms, at most `timeout`; killed after that).
    pub(crate) async fn wait(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
                _ => {
                    self.kill();
                    let _ = self.child.wait();
                    let stderr = self.err.take().and_then(|h| h.join().ok()).unwrap_or_default();
                    panic!("switchctl {:?} did not finish within {timeout:?}; stderr:\n{stderr}", self.args);
                }
            }
        };
        let took = self.started.elapsed();
        let stdout = self.out.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = self.err.take().and_then(|h| h.join().ok()).unwrap_or_default();
        Run { args: self.args.clone(), code: status.code(), stdout, stderr, took }
    }
}

impl Drop for Switchctl {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `switchctl on` is implemented yet (the foundation answers "not implemented yet").
pub(crate) fn not_implemented(run: &Run) -> bool {
    run.stderr.contains("not implemented")
}

/// Steady traffic through the router to every route of a world, recording what answered when.
#[derive(Debug)]
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<Sample>>,
}

/// One request of the load.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) sent: Instant,
    pub(crate) answer: Answer,
}

impl Load {
    /// Sends `rate` requests per second in all, round robin over `routes` (at most 60 s and
    /// 30 000 requests).
    pub(crate) fn start(router: String, routes: Vec<HttpRoute>, rate: u32) -> Load {
        Load::start_with(Http::new(), router, routes, rate)
    }

    /// As [`Load::start`], each request on a new connection, so that a balancer in front of
    /// several routers spreads the load over them.
    pub(crate) fn spread(router: String, routes: Vec<HttpRoute>, rate: u32) -> Load {
        Load::start_with(Http::fresh(), router, routes, rate)
    }

    fn start_with(http: Http, router: String, routes: Vec<HttpRoute>, rate: u32) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let done = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&done);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            let period = Duration::from_secs(1) / rate.max(1);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let deadline = Instant::now() + Duration::from_secs(60);
            for i in 0..30_000usize {
                if flag.load(Ordering::Relaxed) || Instant::now() > deadline {
                    break;
                }
                tick.tick().await;
                let r = &routes[i % routes.len()];
                let sent = Instant::now();
                let url = format!("{router}{}", r.request_path);
                let reply = http.send(Method::GET, &url, &[("host", &r.host)], None).await.ok();
                samples.push(Sample { sent, answer: classify(reply) });
                counter.fetch_add(1, Ordering::Relaxed);
            }
            samples
        });
        Load { stop, done, task }
    }

    /// Waits until `more` further requests were answered (polling, at most `timeout`).
    pub(crate) async fn wait_more(&self, more: usize, timeout: Duration) {
        let target = self.done.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + timeout;
        while self.done.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "load stalled: fewer than {more} requests in {timeout:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task")
    }
}

/// Counts of answers.
pub(crate) fn tally<'a>(samples: impl IntoIterator<Item = &'a Sample>) -> BTreeMap<Answer, usize> {
    let mut m = BTreeMap::new();
    for s in samples {
        *m.entry(s.answer).or_insert(0) += 1;
    }
    m
}

/// A command for `run` that marks its start (a file `started` in `dir`) and waits until the test
/// writes `release` there (30 s at most), so that a test can look at the window while it is open.
pub(crate) fn waiting_command(dir: &Path) -> Vec<String> {
    let script = format!(
        "cd '{}' && touch started && i=0; while [ ! -f release ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
        dir.display()
    );
    vec!["sh".to_owned(), "-c".to_owned(), script]
}

/// Waits (at most 30 s) until `path` exists.
pub(crate) async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} did not appear", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The first `` `switchctl …` `` command in `text` that runs `verb`, as arguments.
pub(crate) fn printed(text: &str, verb: &str) -> Vec<String> {
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 && part.starts_with("switchctl ") && part.split_whitespace().any(|w| w == verb) {
            return part.split_whitespace().skip(1).map(str::to_owned).collect();
        }
    }
    panic!("no `switchctl … {verb} …` command in:\n{text}")
}

/// `switchctl` arguments `fixed`, then `--` and the window's `command`.
pub(crate) fn with_command<'a>(fixed: &[&'a str], command: &'a [String]) -> Vec<&'a str> {
    let mut all = fixed.to_vec();
    all.push("--");
    all.extend(command.iter().map(String::as_str));
    all
}
