//! A typed Cloud Controller v3 client with the HTTP discipline a tool that changes routes needs.
//!
//! * **Timeouts** on every request ([`HttpOptions`]: connect and total).
//! * **Tokens** from a [`TokenSource`]: renewed before a request when they expire within a minute,
//!   and once more when the Cloud Controller answers 401 `CF-InvalidAuthToken` (then the request is
//!   sent again, once).
//! * **Retries** with exponential backoff and jitter on connection errors and on 502/503/504, for
//!   requests that are safe to repeat ([`Repeat::Safe`]). A request that could not connect was never
//!   sent, so it is retried whatever its method. Which requests are safe:
//!   - `GET`: reads.
//!   - `PATCH` of metadata, of `/v3/routes/:guid/destinations` (replace) and of the current droplet:
//!     the body states the end result, so sending it twice ends the same.
//!   - `POST /v3/routes/:guid/destinations` (insert): CAPI skips a destination equal to one the route
//!     already has, so a repeat adds nothing (CC `UpdateRouteDestinations#add`).
//!   - `POST /v3/apps/:guid/actions/start|stop`: they set the desired state.
//!   - Not safe: `POST /v3/builds` (a second build would be started, or refused as "staging in
//!     progress"). Such requests are sent once; if the answer is lost, the error says so.
//! * **Rate limit across all requests**: a 429, or an answer saying no request is left
//!   (`X-RateLimit-Remaining: 0`), closes a gate that every request of this client (a whole fleet's)
//!   waits at until `Retry-After` or `X-RateLimit-Reset`, instead of each finding out with a 429 of
//!   its own.
//! * **429**: waits as `Retry-After` says (bounded by [`RetryPolicy::max_retry_after`] and a total
//!   [`RetryPolicy::max_total_wait`]), then sends again; a request refused for the rate limit was
//!   not carried out, so this holds for every method.
//! * **Errors** become [`ApiError`] (`title (code): detail` + what to do).
//! * **Tracing** (`-v`): method, URL, status, duration, attempt at debug; request headers with the
//!   `Authorization` value redacted at trace. Bodies and tokens are never logged.

pub mod types;

use std::{
    collections::HashSet,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{
    Method, StatusCode, Url,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER},
};
use serde::{Serialize, de::DeserializeOwned};

pub use types::*;

use crate::{
    error::{ApiError, ConfigError, Error},
    uaa::TokenSource,
};

/// Page size for lists (CAPI allows up to 5000).
const PER_PAGE: &str = "500";
/// A list with more pages than this is taken as a loop.
const MAX_PAGES: usize = 10_000;

/// Timeouts and TLS of the HTTP client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time for one request, from sending to the end of the answer.
    pub request_timeout: Duration,
    /// Time to connect (TCP and TLS).
    pub connect_timeout: Duration,
    /// Accept any server certificate (`SSLDisabled` or `--skip-ssl-validation`).
    pub skip_ssl_validation: bool,
    /// Retries.
    pub retry: RetryPolicy,
}

impl Default for HttpOptions {
    fn default() -> HttpOptions {
        HttpOptions {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            skip_ssl_validation: false,
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpOptions {
    /// The HTTP client: rustls, no redirects (an API that redirects is misconfigured, and following
    /// could send the token elsewhere), these timeouts.
    pub fn client(&self) -> Result<reqwest::Client, ConfigError> {
        reqwest::Client::builder()
            .user_agent(concat!("switchctl/", env!("CARGO_PKG_VERSION")))
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(self.skip_ssl_validation)
            .build()
            .map_err(ConfigError::HttpClient)
    }
}

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all for a safe request failing with a connection error or 502/503/504.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub base_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
    /// Longest `Retry-After` switchctl waits for; a longer one fails the request at once.
    pub max_retry_after: Duration,
    /// Longest total wait (backoffs plus `Retry-After`s) for one request.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`: `base · 2^(attempt-1)`, capped, then a random
    /// value between half of it and all of it (so that parallel requests spread out).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Whether a request may be sent again when its outcome is unknown (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Sending it twice ends the same as once.
    Safe,
    /// It must not be sent twice unless it certainly was not carried out.
    Unsafe,
}

/// A Cloud Controller client. Cheap to clone; clones share the HTTP connections and the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api: Url,
    tokens: Option<TokenSource>,
    retry: RetryPolicy,
    /// No request is sent before this instant (the Cloud Controller's rate limit).
    gate: std::sync::Mutex<Option<Instant>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.inner.api.as_str())
            .field("tokens", &self.inner.tokens)
            .finish_non_exhaustive()
    }
}

/// Parses an API URL; a missing scheme means `https://` (as `cf api` assumes). URLs with a user
/// name or password are refused.
pub fn parse_api_url(value: &str, what: &'static str, fix: &'static str) -> Result<Url, ConfigError> {
    let value = value.trim().trim_end_matches('/');
    let with_scheme = if value.contains("://") { value.to_owned() } else { format!("https://{value}") };
    match Url::parse(&with_scheme) {
        // No credentials in URLs: they would show in traces and error messages.
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.username().is_empty()
                && url.password().is_none() =>
        {
            Ok(url)
        }
        _ => Err(ConfigError::InvalidUrl { what, value: value.to_owned(), fix }),
    }
}

impl Client {
    /// A client for the API at `api` authenticating with `tokens` (`None`: no `Authorization`).
    pub fn new(http: reqwest::Client, api: Url, tokens: Option<TokenSource>, retry: RetryPolicy) -> Client {
        Client { inner: Arc::new(Inner { http, api, tokens, retry, gate: std::sync::Mutex::new(None) }) }
    }

    /// `api` + `path`, keeping a path prefix of the API URL, with query pairs added.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.inner.api.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{path}"));
        url.set_query(None);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        url
    }

    // ---- generic requests ----------------------------------------------------------------

    /// `GET path?query` → `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, Error> {
        let url = self.url(path, query);
        let body = self.execute(Method::GET, url.clone(), None, Repeat::Safe).await?;
        decode(&Method::GET, &url, &body)
    }

    /// Every resource of a paginated list, following `pagination.next.href`.
    ///
    /// The next page's path and query are taken from the href, the scheme, host and port from the
    /// API URL: the token never goes to a host other than the one it was meant for.
    pub async fn get_all<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<T>, Error> {
        let mut query = query.to_vec();
        if !query.iter().any(|(k, _)| *k == "per_page") {
            query.push(("per_page", PER_PAGE));
        }
        let first = self.url(path, &query);
        let mut url = first.clone();
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        loop {
            if !seen.insert(url.to_string()) || seen.len() > MAX_PAGES {
                return Err(Error::Pagination { url: first.to_string(), pages: seen.len() });
            }
            let body = self.execute(Method::GET, url.clone(), None, Repeat::Safe).await?;
            let page: Paginated<T> = decode(&Method::GET, &url, &body)?;
            all.extend(page.resources);
            let Some(next) = page.pagination.next else { break };
            let next =
                Url::parse(&next.href).or_else(|_| self.inner.api.join(&next.href)).map_err(|_| Error::Decode {
                    method: "GET".into(),
                    url: url.to_string(),
                    source: serde::de::Error::custom(format!("pagination.next.href {:?} is not a URL", next.href)),
                })?;
            let mut following = self.inner.api.clone();
            following.set_path(next.path());
            following.set_query(next.query());
            url = following;
        }
        Ok(all)
    }

    /// `method path` with a JSON body → `T`.
    pub async fn send_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        repeat: Repeat,
    ) -> Result<T, Error> {
        let url = self.url(path, &[]);
        let bytes = serde_json::to_vec(body).map_err(|source| Error::Decode {
            method: method.to_string(),
            url: url.to_string(),
            source,
        })?;
        let answer = self.execute(method.clone(), url.clone(), Some(bytes), repeat).await?;
        decode(&method, &url, &answer)
    }

    /// Sends one request with tokens, retries and tracing; the body of a 2xx answer.
    async fn execute(&self, method: Method, url: Url, body: Option<Vec<u8>>, repeat: Repeat) -> Result<Vec<u8>, Error> {
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut rate_limited = 0u32;
        let mut waited = Duration::ZERO;
        let mut renewed = false;
        loop {
            attempt += 1;
            // Asked before every attempt: after a long wait the token may be about to expire.
            let authorization = match &self.inner.tokens {
                Some(tokens) => Some(tokens.authorization().await?),
                None => None,
            };
            self.wait_at_gate().await;
            let request = self.build(&method, &url, authorization.as_deref(), body.as_deref())?;
            if tracing::enabled!(tracing::Level::TRACE) {
                tracing::trace!(method = %method, url = %url, headers = %redacted(request.headers()), "sending");
            }
            let started = Instant::now();
            let outcome = match self.inner.http.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(response.headers());
                    if let Some(reset) = exhausted_until(response.headers(), policy.max_retry_after) {
                        self.close_gate(reset);
                    }
                    match response.bytes().await {
                        Ok(bytes) => Ok((status, retry_after, bytes)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            let elapsed_ms = started.elapsed().as_millis() as u64;
            let (status, retry_after, bytes) = match outcome {
                Ok(answer) => answer,
                Err(e) => {
                    tracing::debug!(method = %method, url = %url, attempt, elapsed_ms, error = %e, "request failed");
                    // Not connected: never sent. Otherwise only a safe request may go again.
                    let again =
                        e.is_connect() || (repeat == Repeat::Safe && (e.is_timeout() || e.is_request() || e.is_body()));
                    if again && attempt < policy.max_attempts {
                        let delay = policy.backoff(attempt);
                        if waited + delay <= policy.max_total_wait {
                            waited += delay;
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    return Err(transport_error(&method, &url, e, repeat, attempt));
                }
            };
            tracing::debug!(method = %method, url = %url, status = status.as_u16(), attempt, elapsed_ms, "request");
            if status.is_success() {
                return Ok(bytes.to_vec());
            }
            let error = ApiError::from_response(status.as_u16(), &bytes, method.as_str(), url.path());
            if error.is_invalid_auth_token()
                && !renewed
                && let (Some(tokens), Some(used)) = (&self.inner.tokens, &authorization)
            {
                renewed = true;
                attempt -= 1;
                tracing::debug!("the Cloud Controller rejected the token; renewing it once");
                tokens.rejected(used).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                rate_limited += 1;
                attempt -= 1;
                let wait = retry_after.unwrap_or_else(|| policy.backoff(rate_limited));
                if wait > policy.max_retry_after || waited + wait > policy.max_total_wait || rate_limited > 10 {
                    return Err(if waited.is_zero() {
                        error.into()
                    } else {
                        Error::GaveUp { source: Box::new(error), waited }
                    });
                }
                tracing::warn!(
                    "rate limited by the Cloud Controller; waiting {}s as it asks",
                    wait.as_secs_f32().ceil()
                );
                // Every other request waits too; a little jitter so they do not all come back in
                // the same instant.
                self.close_gate(wait);
                let wait = wait + Duration::from_millis(fastrand::u64(0..250));
                waited += wait;
                tokio::time::sleep(wait).await;
                continue;
            }
            let transient = matches!(status.as_u16(), 502..=504);
            if transient && repeat == Repeat::Safe && attempt < policy.max_attempts {
                let delay = policy.backoff(attempt);
                if waited + delay <= policy.max_total_wait {
                    waited += delay;
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            return Err(error.into());
        }
    }

    /// Waits while the rate-limit gate is closed.
    async fn wait_at_gate(&self) {
        loop {
            let until = *self.inner.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match until {
                Some(until) if until > Instant::now() => {
                    let jitter = Duration::from_millis(fastrand::u64(0..100));
                    tokio::time::sleep(until.saturating_duration_since(Instant::now()) + jitter).await;
                }
                _ => return,
            }
        }
    }

    /// Closes the gate for `wait` from now (never shortening an earlier closing).
    fn close_gate(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.inner.gate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if gate.is_none_or(|g| g < until) {
            tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limit: holding requests");
            *gate = Some(until);
        }
    }

    fn build(
        &self,
        method: &Method,
        url: &Url,
        authorization: Option<&str>,
        body: Option<&[u8]>,
    ) -> Result<reqwest::Request, Error> {
        let mut builder = self.inner.http.request(method.clone(), url.clone()).header(ACCEPT, "application/json");
        if let Some(auth) = authorization {
            let mut value =
                HeaderValue::from_str(auth).map_err(|_| Error::Token(crate::error::TokenError::Malformed))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            builder = builder.header(CONTENT_TYPE, "application/json").body(body.to_vec());
        }
        builder.build().map_err(|e| transport_error(method, url, e, Repeat::Safe, 0))
    }

    // ---- the resources switchctl needs ---------------------------------------------------

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

    /// All processes of an app.
    pub async fn app_processes(&self, app_guid: &str) -> Result<Vec<Process>, Error> {
        self.get_all(&format!("/v3/apps/{}/processes", seg(app_guid)), &[]).await
    }

    /// Per-instance stats of a process (not paginated).
    pub async fn process_stats(&self, process_guid: &str) -> Result<Vec<ProcessStats>, Error> {
        let list: StatsList = self.get(&format!("/v3/processes/{}/stats", seg(process_guid)), &[]).await?;
        Ok(list.resources)
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

    /// Sets or removes a route's labels and annotations (SpaceDeveloper or SpaceSupporter).
    pub async fn patch_route_metadata(&self, guid: &str, patch: &MetadataPatch) -> Result<Route, Error> {
        let body = serde_json::json!({ "metadata": patch });
        self.send_json(Method::PATCH, &format!("/v3/routes/{}", seg(guid)), &body, Repeat::Safe).await
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
        self.send_destinations(Method::POST, route_guid, destinations).await
    }

    /// Replaces all destinations in one transaction (`PATCH`); re-sent ones keep their GUIDs, the
    /// rest are removed. All of the route's destinations afterwards.
    pub async fn replace_destinations(
        &self,
        route_guid: &str,
        destinations: &[NewDestination],
    ) -> Result<Vec<Destination>, Error> {
        self.send_destinations(Method::PATCH, route_guid, destinations).await
    }

    /// Insert (`POST`) and replace (`PATCH`) take the same body and answer with the same list;
    /// both are safe to repeat (an insert skips equal destinations, a replace is absolute).
    async fn send_destinations(
        &self,
        method: Method,
        route_guid: &str,
        destinations: &[NewDestination],
    ) -> Result<Vec<Destination>, Error> {
        let body = serde_json::json!({ "destinations": destinations });
        let path = format!("/v3/routes/{}/destinations", seg(route_guid));
        let list: DestinationList = self.send_json(method, &path, &body, Repeat::Safe).await?;
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

    /// Makes `droplet_guid` the app's current droplet (used at the next start).
    pub async fn set_current_droplet(&self, app_guid: &str, droplet_guid: &str) -> Result<(), Error> {
        let body = serde_json::json!({ "data": { "guid": droplet_guid } });
        let path = format!("/v3/apps/{}/relationships/current_droplet", seg(app_guid));
        let _: serde_json::Value = self.send_json(Method::PATCH, &path, &body, Repeat::Safe).await?;
        Ok(())
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

fn decode<T: DeserializeOwned>(method: &Method, url: &Url, body: &[u8]) -> Result<T, Error> {
    // An empty 2xx answer reads as `null`, so that `()`/`Value` callers accept a 204.
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"null" } else { body };
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        method: method.to_string(),
        url: url.to_string(),
        source,
    })
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format).ok()?.assume_utc();
    let secs = (at - time::OffsetDateTime::now_utc()).whole_seconds();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// With `X-RateLimit-Remaining: 0`: the time until `X-RateLimit-Reset` (at most `max`).
fn exhausted_until(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    if header("x-ratelimit-remaining")? != 0 {
        return None;
    }
    let secs = header("x-ratelimit-reset")? - time::OffsetDateTime::now_utc().unix_timestamp();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(max))
}

/// The headers for a trace line, with credentials replaced.
fn redacted(headers: &HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if value.is_sensitive() || name == AUTHORIZATION || name.as_str().contains("cookie") {
                "[redacted]".to_owned()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            format!("{name}: {shown}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn transport_error(method: &Method, url: &Url, e: reqwest::Error, repeat: Repeat, attempts: u32) -> Error {
    let host = url.host_str().unwrap_or("the API").to_owned();
    let tries = if attempts > 1 { format!(" (tried {attempts} times)") } else { String::new() };
    let what = if e.is_connect() {
        format!("cannot connect to {host}{tries}; check the network and the API URL (`cf api`)")
    } else if e.is_timeout() {
        match repeat {
            Repeat::Safe => format!("no answer in time{tries}; the API may be overloaded, run the command again"),
            Repeat::Unsafe => "no answer in time; the request may or may not have been carried out, check with \
                               `switchctl status` before running the command again"
                .to_owned(),
        }
    } else {
        match repeat {
            Repeat::Safe => format!("the connection failed{tries}; run the command again"),
            Repeat::Unsafe => "the connection failed before the answer came; the request may or may not have been \
                               carried out, check with `switchctl status` before running the command again"
                .to_owned(),
        }
    };
    Error::Transport { method: method.to_string(), url: url.to_string(), what, source: e }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        for attempt in 1..20 {
            let full = (Duration::from_millis(100) * 2u32.pow((attempt - 1).min(10))).min(Duration::from_secs(1));
            let d = p.backoff(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} vs {full:?}");
        }
    }

    #[test]
    fn an_exhausted_rate_limit_waits_until_the_reset() {
        let mut h = HeaderMap::new();
        let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 30;
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset.to_string()).expect("header"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("10"));
        assert_eq!(exhausted_until(&h, Duration::from_secs(60)), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        let wait = exhausted_until(&h, Duration::from_secs(60)).expect("closed");
        assert!((Duration::from_secs(28)..=Duration::from_secs(30)).contains(&wait), "{wait:?}");
        assert_eq!(exhausted_until(&h, Duration::from_secs(5)), Some(Duration::from_secs(5)));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn urls_keep_the_api_path_and_escape_segments() {
        let http = reqwest::Client::new();
        let api = parse_api_url("api.example.com/cf/", "API", "fix").expect("url");
        assert_eq!(api.as_str(), "https://api.example.com/cf");
        let client = Client::new(http, api, None, RetryPolicy::default());
        let url = client.url(&format!("/v3/apps/{}", seg("a/b?c")), &[("names", "x,y"), ("label_selector", "k=v")]);
        assert_eq!(url.as_str(), "https://api.example.com/cf/v3/apps/a%2Fb%3Fc?names=x%2Cy&label_selector=k%3Dv");
        assert!(parse_api_url("ftp://x", "API", "fix").is_err());
        assert!(parse_api_url("https://user:pw@api.example.com", "API", "fix").is_err());
    }

    #[test]
    fn trace_headers_never_show_the_token() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer secret-token"));
        h.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let shown = redacted(&h);
        assert!(!shown.contains("secret-token"));
        assert!(shown.contains("authorization: [redacted]") && shown.contains("accept: application/json"));
    }
}
