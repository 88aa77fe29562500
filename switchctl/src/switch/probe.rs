//! Verification over HTTP: who answers on a route, as its users see it.
//!
//! The maintenance app marks every answer with `X-Maintenance-App: cf-maintenance`; switchctl asks
//! the route until the answers say what the API change promised.
//!
//! # What a check proves: the model
//!
//! A foundation runs k gorouters (at most about 4 in the deployments this is meant for) behind a
//! load balancer that spreads *connections*, round robin or at random. Every router learns each
//! registration and unregistration on its own, after its own delay, and keeps it once it has it.
//! A route is safe to change further only when *every* router has the change: a router still
//! without the maintenance app's registration when APP's unregistration reaches it answers 404.
//!
//! So every probe opens a new connection (no keep-alive: one connection would only ever ask one
//! router), and a check wants [`CONSECUTIVE`] (N) wanted answers in a row, one connection each:
//!
//! - round-robin balancer: N ≥ k connections in a row reach every router;
//! - random balancer, or a round robin shared with other clients' connections: a router that has
//!   not caught up is missed by N connections in a row with probability ((k−1)/k)^N — for N = 25,
//!   0.08 % at k = 4, 0.004 % at k = 3, 3·10⁻⁸ at k = 2. Any miss resets the streak, so the check
//!   ends only after N answers in a row that all saw the change.
//!
//! "Present on every router" (before the app's destinations go, or, for `off`, the maintenance
//! app's) cannot be asked with plain requests: while both apps are mapped each router alternates
//! between them, so one answer of either says nothing about the other. Gorouter routes a request
//! carrying `X-CF-APP-INSTANCE: APP_GUID:INDEX` to that instance of the route's pool and answers
//! 400 `unknown_route` when its pool does not hold that instance (handlers/lookup.go,
//! registry.go#LookupWithAppInstance), so N pinned answers in a row from the wanted app, one
//! connection each, show that the routers hold its registration. The index is the lowest RUNNING
//! web instance read from the process stats before the switch. One instance suffices: a router
//! with any instance of the app registered serves the route with it.
//!
//! The final check (only the maintenance app, or only the app, answers) wants N plain answers in a
//! row, one connection each. It is weaker than the pinned check: a router that still holds the
//! removed destination serves it only in its share s of that router's requests (s = ½ with as
//! many instances on each side), so N in a row miss it with probability (1 − s/k)^N, 3.6 % at
//! k = 4 and s = ½. Time narrows that: the unregistration a lagging router lacks is already on
//! its way, so the final check spaces its probes [`STREAK_PAUSE`] apart and watches the route
//! for at least N of them (375 ms) after the change; a router still mixed after that is missed
//! as above. A pinned check needs no spacing (a router without the instance answers 400 every
//! time it is asked), and skipping it halves a route's probing time.
//!
//! `off` knows the removed side's instances (the maintenance apps' stats, one request per
//! maintenance app), so its final check is pinned too: N answers in a row of the router's 400 for
//! the maintenance app's instance (gone from that router's pool), one connection each, then one
//! plain answer of the app. That is as exact as the presence check, and needs no spacing. `on`
//! reads no stats of APP (a request per app, more than a fleet's request budget allows), so it
//! asks for APP's instance 0 the same way, exact while that instance runs, and then runs the
//! spaced plain check as well, for an APP whose instance 0 does not run.
//!
//! A wildcard route (`*.domain`) is asked under an invented host of the domain
//! (`switchctl-probe-<random>.domain`): gorouter serves any host without a route of its own from
//! the wildcard's pool (registry.go#lookup, route/uris.go#NextWildcard).

use std::time::Duration;

use reqwest::{
    StatusCode, Url,
    header::{HOST, HeaderMap},
};
use tokio::time::Instant;

use crate::error::ConfigError;

/// The header the maintenance app sets on every answer (names compare case-insensitively).
pub const MARKER_HEADER: &str = "x-maintenance-app";
/// Its value.
pub const MARKER_VALUE: &str = "cf-maintenance";
/// The header gorouter sets on answers it makes itself (unknown route, failed endpoint).
const ROUTER_ERROR_HEADER: &str = "x-cf-routererror";
/// The header that asks gorouter for one instance of an app (handlers/lookup.go `CfAppInstance`).
const APP_INSTANCE_HEADER: &str = "x-cf-app-instance";
/// Pause between a plain check's wanted answers (see the module docs on the final check).
const STREAK_PAUSE: Duration = Duration::from_millis(15);

/// Answers in a row a check wants, each over a new connection (N of the module docs' model).
pub const CONSECUTIVE: u32 = 25;
/// Pause after an unwanted answer (the router has not caught up yet).
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait for one probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on probes per check, besides the deadline.
const MAX_PROBES: u32 = 100_000;

/// Where to send probes for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host.domain`, or `domain` when the route has no host.
    pub fqdn: String,
    /// The route's path (`""` for none).
    pub path: String,
}

/// One instance of an app, as `X-CF-APP-INSTANCE` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The app's GUID.
    pub app_guid: String,
    /// The instance's index.
    pub index: u32,
}

/// One answer, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The maintenance app answered (the marker is there).
    Maintenance(u16),
    /// An app answered, not the maintenance app.
    App(u16),
    /// The router answered itself (unknown route, no live endpoint, failed endpoint).
    Router(u16),
    /// No answer.
    Error(String),
}

impl Answer {
    /// Whether the probe reached nobody (no connection, DNS or TLS failure, no answer in time), as
    /// opposed to an answer of the router or of an app: from here, the route cannot be verified.
    pub fn unreachable(&self) -> bool {
        matches!(self, Answer::Error(_))
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Maintenance(s) => write!(f, "the maintenance app (HTTP {s})"),
            Answer::App(s) => write!(f, "the app (HTTP {s})"),
            Answer::Router(404) => f.write_str("the router: 404, no live destination"),
            Answer::Router(400) => f.write_str("the router: 400, the app's instance is not on the route there (yet)"),
            Answer::Router(s) => write!(f, "the router: HTTP {s}"),
            Answer::Error(e) => write!(f, "no answer: {e}"),
        }
    }
}

/// What a check waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Answers of the maintenance app.
    Maintenance,
    /// Answers of an app that is not the maintenance app (router errors do not count).
    App,
    /// The router's own 400 for a pinned request: the instance asked for is not in the route's
    /// pool (registry.go#LookupWithAppInstance finds none; handlers/lookup.go#handleMissingRoute).
    Absent,
}

impl Want {
    fn accepts(self, answer: &Answer) -> bool {
        matches!(
            (self, answer),
            (Want::Maintenance, Answer::Maintenance(_))
                | (Want::App, Answer::App(_))
                | (Want::Absent, Answer::Router(400))
        )
    }
}

/// Sends probes to routes.
#[derive(Debug, Clone)]
pub struct Prober {
    http: reqwest::Client,
    via: Option<String>,
    /// The host label that stands for `*` of a wildcard route, one per run.
    wildcard_label: String,
}

impl Prober {
    /// A prober sending to `https://<route>` or, with `via` (`HOST:PORT`), plain HTTP to that address
    /// with the route's `Host` header.
    pub fn new(via: Option<String>, skip_ssl_validation: bool) -> Result<Prober, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("switchctl/", env!("CARGO_PKG_VERSION"), " (verification)"))
            .timeout(PROBE_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            // A redirect is an answer of whoever serves the route; following it would ask someone else.
            .redirect(reqwest::redirect::Policy::none())
            // A new connection per probe: the balancer in front of the routers spreads connections,
            // not requests (see the module docs).
            .pool_max_idle_per_host(0)
            .tls_danger_accept_invalid_certs(skip_ssl_validation);
        if via.is_some() {
            // The address is given explicitly: a proxy from the environment must not intercept it.
            builder = builder.no_proxy();
        }
        let wildcard_label = format!("switchctl-probe-{:08x}", fastrand::u32(..));
        Ok(Prober { http: builder.build().map_err(ConfigError::HttpClient)?, via, wildcard_label })
    }

    /// The host a probe asks for: the route's, or for a wildcard route one invented under its domain.
    fn host(&self, target: &Target) -> String {
        match target.fqdn.strip_prefix("*.") {
            Some(domain) => format!("{}.{domain}", self.wildcard_label),
            None => target.fqdn.clone(),
        }
    }

    fn url(&self, target: &Target) -> Option<Url> {
        let path = if target.path.is_empty() { "/" } else { target.path.as_str() };
        match &self.via {
            Some(via) => Url::parse(&format!("http://{via}{path}")).ok(),
            None => Url::parse(&format!("https://{}{path}", self.host(target))).ok(),
        }
    }

    /// A request to `path` on the route's host (not the route's own path), on a new connection,
    /// through `--probe-via` when given, for `instance` when given: how the per-app content
    /// reaches each instance of the maintenance app ([`content`](super::content)).
    pub fn request(
        &self,
        method: reqwest::Method,
        target: &Target,
        path: &str,
        instance: Option<&Instance>,
    ) -> Option<reqwest::RequestBuilder> {
        let at = Target { fqdn: target.fqdn.clone(), path: path.to_owned() };
        let mut request = self.http.request(method, self.url(&at)?).header("connection", "close");
        if self.via.is_some() {
            request = request.header(HOST, self.host(target));
        }
        if let Some(i) = instance {
            request = request.header(APP_INSTANCE_HEADER, format!("{}:{}", i.app_guid, i.index));
        }
        Some(request)
    }

    /// Asks the route once.
    pub async fn probe(&self, target: &Target) -> Answer {
        self.ask(target, None).await
    }

    /// Asks the route once, for `instance` when given.
    async fn ask(&self, target: &Target, instance: Option<&Instance>) -> Answer {
        let Some(url) = self.url(target) else {
            return Answer::Error(format!("{}{} is not a valid URL", target.fqdn, target.path));
        };
        // `Connection: close` as well as no idle pool: neither end keeps the connection.
        let mut request = self.http.get(url).header("cache-control", "no-cache").header("connection", "close");
        if self.via.is_some() {
            request = request.header(HOST, self.host(target));
        }
        if let Some(i) = instance {
            request = request.header(APP_INSTANCE_HEADER, format!("{}:{}", i.app_guid, i.index));
        }
        match request.send().await {
            Ok(response) => {
                let answer = classify(response.status(), response.headers());
                let _ = response.bytes().await;
                answer
            }
            Err(e) if e.is_timeout() => Answer::Error("timed out".to_owned()),
            Err(e) => Answer::Error(transport_error(&e)),
        }
    }

    /// Probes until `consecutive` answers in a row are `want`, or `timeout` passes. On timeout, the
    /// last unwanted answer seen (else the last answer, if any) says what went wrong.
    pub async fn wait(
        &self,
        target: &Target,
        want: Want,
        consecutive: u32,
        timeout: Duration,
    ) -> Result<(), Option<Answer>> {
        self.wait_for(target, None, want, consecutive, timeout).await
    }

    /// As [`wait`](Self::wait), every probe asking for `instance` (`X-CF-APP-INSTANCE`): a router
    /// that does not hold that instance on the route answers its own 400, so `consecutive` wanted
    /// answers in a row show the instance is on every router reached.
    pub async fn wait_pinned(
        &self,
        target: &Target,
        instance: &Instance,
        want: Want,
        consecutive: u32,
        timeout: Duration,
    ) -> Result<(), Option<Answer>> {
        self.wait_for(target, Some(instance), want, consecutive, timeout).await
    }

    async fn wait_for(
        &self,
        target: &Target,
        instance: Option<&Instance>,
        want: Want,
        consecutive: u32,
        timeout: Duration,
    ) -> Result<(), Option<Answer>> {
        let deadline = Instant::now() + timeout;
        let mut streak = 0u32;
        let mut last: Option<Answer> = None;
        // What broke the last streak says more than a wanted answer that happened to come last
        // (a router that still sends a share of the requests elsewhere answers wanted in between).
        let mut last_unwanted: Option<Answer> = None;
        for _ in 0..MAX_PROBES {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let answer = match tokio::time::timeout(remaining, self.ask(target, instance)).await {
                Ok(answer) => answer,
                Err(_) => Answer::Error("timed out".to_owned()),
            };
            if want.accepts(&answer) {
                streak += 1;
                if streak >= consecutive {
                    return Ok(());
                }
                // A pinned streak proves what it proves by its count of fresh connections alone.
                if instance.is_none() {
                    tokio::time::sleep(STREAK_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
            } else {
                if streak > 0 || last.as_ref() != Some(&answer) {
                    tracing::debug!(route = %format!("{}{}", target.fqdn, target.path), %answer, "probe: not yet");
                }
                streak = 0;
                last_unwanted = Some(answer.clone());
                tokio::time::sleep(RETRY_PAUSE.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
            last = Some(answer);
        }
        Err(last_unwanted.or(last))
    }
}

/// A probe's transport failure in a few words: reqwest's own text is a chain of "error sending
/// request for url (…)" wrappers that says less than its innermost cause.
fn transport_error(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    let cause = source.to_string();
    if e.is_connect() { format!("cannot connect ({cause})") } else { cause }
}

/// Classifies an answer by its status and headers.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Answer {
    let marked = headers
        .get_all(MARKER_HEADER)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case(MARKER_VALUE)));
    if marked {
        return Answer::Maintenance(status.as_u16());
    }
    // Gorouter marks every answer it makes itself with X-Cf-Routererror: unknown_route (404),
    // no_endpoints (503) in handlers/lookup.go, `endpoint_failure (…)` (502 and others) in
    // proxy/round_tripper/error_handler.go. Without the header the answer came through from the
    // app, whatever the status: an app's own 404 or bare 502 (say, its upstream failed) is still
    // the app answering, so the route is served by it.
    if headers.contains_key(ROUTER_ERROR_HEADER) {
        return Answer::Router(status.as_u16());
    }
    Answer::App(status.as_u16())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn answers_are_told_apart_by_the_marker_and_the_router_header() {
        let mut h = HeaderMap::new();
        h.insert("X-Maintenance-App", HeaderValue::from_static("CF-Maintenance"));
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, &h), Answer::Maintenance(503));
        let mut h = HeaderMap::new();
        h.insert("x-cf-routererror", HeaderValue::from_static("unknown_route"));
        assert_eq!(classify(StatusCode::NOT_FOUND, &h), Answer::Router(404));
        let mut h = HeaderMap::new();
        h.insert("x-cf-routererror", HeaderValue::from_static("endpoint_failure (dial tcp: connection refused)"));
        assert_eq!(classify(StatusCode::BAD_GATEWAY, &h), Answer::Router(502));
        let mut h = HeaderMap::new();
        h.insert("x-cf-routererror", HeaderValue::from_static("no_endpoints"));
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, &h), Answer::Router(503));
        assert_eq!(classify(StatusCode::NOT_FOUND, &HeaderMap::new()), Answer::App(404));
        assert_eq!(classify(StatusCode::OK, &HeaderMap::new()), Answer::App(200));
    }

    #[test]
    fn an_apps_own_bare_502_is_the_app_answering() {
        assert_eq!(classify(StatusCode::BAD_GATEWAY, &HeaderMap::new()), Answer::App(502));
        assert_eq!(classify(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new()), Answer::App(503));
    }

    #[test]
    fn probe_urls_use_the_router_address_when_given() {
        let t = Target { fqdn: "shop.example.com".into(), path: "/api".into() };
        let direct = Prober::new(None, false).expect("client");
        assert_eq!(direct.url(&t).map(String::from).as_deref(), Some("https://shop.example.com/api"));
        let via = Prober::new(Some("127.0.0.1:8081".into()), false).expect("client");
        let root = Target { path: String::new(), ..t };
        assert_eq!(via.url(&root).map(String::from).as_deref(), Some("http://127.0.0.1:8081/"));
    }

    #[test]
    fn a_wildcard_route_is_probed_under_an_invented_host_of_its_domain() {
        let wild = Target { fqdn: "*.apps.example.com".into(), path: "/x".into() };
        let direct = Prober::new(None, false).expect("client");
        let url = direct.url(&wild).map(String::from).unwrap_or_default();
        let host = url.strip_prefix("https://").and_then(|u| u.strip_suffix(".apps.example.com/x")).unwrap_or_default();
        assert!(host.starts_with("switchctl-probe-") && !host.contains('.') && !host.contains('*'), "{url}");
        // The same host for every probe of a run, and as the Host header through --probe-via.
        assert_eq!(direct.host(&wild), direct.host(&wild));
        let via = Prober::new(Some("127.0.0.1:8081".into()), false).expect("client");
        assert!(via.host(&wild).ends_with(".apps.example.com") && !via.host(&wild).starts_with('*'));
        let plain = Target { fqdn: "shop.apps.example.com".into(), path: String::new() };
        assert_eq!(via.host(&plain), "shop.apps.example.com");
    }
}
