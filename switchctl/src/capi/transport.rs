//! The HTTP side of the Cloud Controller client: timeouts, tokens, retries, the shared rate-limit
//! gate, error answers and `-v` tracing (see the module docs of [`crate::capi`]). It knows nothing
//! of the resources; [`super::resources`] builds on its generic requests.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::{
    Method, Url,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue},
};
use serde::{Serialize, de::DeserializeOwned};

use super::{
    ratelimit::{Gate, RateHeaders, pacing, rate_headers, retry_after},
    retry::{Decision, Failure, Outcome, Repeat, Retries, RetryPolicy},
    types::Paginated,
};
use crate::{
    error::{ApiError, ConfigError, Error, Server, TokenError, Unreachable, describe, transport_cause},
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

/// A Cloud Controller client. Cheap to clone; clones share the HTTP connections and the token.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Waits for the rate limit as long as the Cloud Controller asks ([`Client::patient`]).
    patient: bool,
}

/// The longest a [`Client::patient`] request waits for the rate limit in all: twice
/// capi-release's hour-long window, whose end is the longest `Retry-After` CC sends.
const PATIENT_WAIT: Duration = Duration::from_secs(2 * 3600);

struct Inner {
    http: reqwest::Client,
    api: Url,
    tokens: Option<TokenSource>,
    retry: RetryPolicy,
    /// `retry` for [`Client::patient`] requests.
    patient_retry: RetryPolicy,
    /// The Cloud Controller's rate limit.
    gate: Gate,
    /// The rate limit headers of the latest answer that had them.
    seen: std::sync::Mutex<Option<RateHeaders>>,
    /// Set once a patient request waited for the rate limit longer than `--max-wait` allows.
    overlong: std::sync::Mutex<Option<Duration>>,
    /// Whether any request has got through to the API (whatever became of it). Until then nothing
    /// can have been changed, so an API that cannot be reached is a configuration problem.
    connected: AtomicBool,
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
        let patient_retry = RetryPolicy { max_retry_after: PATIENT_WAIT, ..retry.clone() };
        let inner = Inner {
            http,
            api,
            tokens,
            retry,
            patient_retry,
            gate: Gate::default(),
            seen: std::sync::Mutex::new(None),
            overlong: std::sync::Mutex::new(None),
            connected: AtomicBool::new(false),
        };
        Client { inner: Arc::new(inner), patient: false }
    }

    /// This client, waiting for the rate limit as long as the Cloud Controller asks (up to two
    /// hours), whatever `--max-wait` says: for the requests that finish a route whose switch has
    /// begun, since a route left half way (both apps mapped) is worse than a wait, and a refused
    /// request cannot undo it either. Meanwhile requests of the plain client that would wait
    /// beyond `--max-wait` fail at once, so no new route starts.
    pub fn patient(&self) -> Client {
        Client { inner: Arc::clone(&self.inner), patient: true }
    }

    /// Whether the rate limit has asked for a wait longer than `--max-wait` (a patient request
    /// then waited), and how long: the run stops between routes. Also when it holds requests
    /// back that long now.
    pub fn waited_beyond_max_wait(&self) -> Option<Duration> {
        let max = self.inner.retry.max_retry_after;
        let now = self.inner.gate.closed_for().map(|(left, _)| left).filter(|left| *left > max);
        let before = *self.inner.overlong.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        now.max(before)
    }

    /// The rate limit as the latest answer that told it (`None`: CC's limiter is off, or no
    /// answer yet).
    pub fn rate_limit(&self) -> Option<RateHeaders> {
        *self.inner.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Sends one request with tokens, retries and tracing; the body of a 2xx answer. The decisions
    /// are [`Retries`]'; this carries them out.
    pub(super) async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
        repeat: Repeat,
    ) -> Result<Vec<u8>, Error> {
        let policy = if self.patient { &self.inner.patient_retry } else { &self.inner.retry };
        let mut retries = Retries::new(policy, repeat);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // Asked before every attempt: after a long wait the token may be about to expire.
            let authorization = match &self.inner.tokens {
                Some(tokens) => Some(tokens.authorization().await.map_err(|e| self.token_error(e))?),
                None => None,
            };
            // A gate closed (by a patient request) for longer than this request may wait: fail now,
            // as its own 429 would, rather than wait at the gate.
            if let Some((left, Some(why))) = self.inner.gate.closed_for()
                && retries.rate_waited() + left > policy.max_retry_after
            {
                return Err(Error::RateLimited {
                    source: Box::new(why),
                    retry_after: left,
                    until: utc_in(left),
                    waited: retries.rate_waited(),
                    max_wait: policy.max_retry_after,
                });
            }
            self.inner.gate.wait().await;
            let request = self.build(&method, &url, authorization.as_deref(), body.as_deref())?;
            if tracing::enabled!(tracing::Level::TRACE) {
                tracing::trace!(method = %method, url = %url, headers = %redacted(request.headers()), "sending");
            }
            let started = Instant::now();
            let (outcome, answer) = match self.send(request).await {
                Ok((status, headers, bytes)) => {
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    tracing::debug!(method = %method, url = %url, status, attempt, elapsed_ms, "request");
                    let rate = rate_headers(&headers);
                    if let Some(h) = rate {
                        *self.inner.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(h);
                    }
                    // Remaining 0 is CC's floored estimate: pace rather than stop (ratelimit::pacing).
                    if let Some(pace) = rate
                        .filter(|_| status != 429)
                        .and_then(|h| pacing(h, time::OffsetDateTime::now_utc().unix_timestamp()))
                    {
                        tracing::debug!(gap_ms = pace.gap.as_millis() as u64, "rate limit: pacing requests");
                        self.inner.gate.pace(pace);
                    }
                    let error = (!(200..300).contains(&status))
                        .then(|| ApiError::from_response(status, &bytes, method.as_str(), url.path()));
                    let token_rejected =
                        authorization.is_some() && error.as_ref().is_some_and(ApiError::is_invalid_auth_token);
                    let outcome = Outcome::Answer { status, retry_after: retry_after(&headers), token_rejected };
                    (outcome, Ok((bytes, error)))
                }
                Err(e) => {
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    let error = describe(&e);
                    tracing::debug!(method = %method, url = %url, attempt, elapsed_ms, error, "request failed");
                    (if e.is_connect() { Outcome::NotConnected } else { Outcome::Lost }, Err(e))
                }
            };
            // Retries ends a request with an answer only after one and vice versa; the arms are
            // ordered so that the pairs that cannot happen still end sensibly rather than panic.
            match (retries.decide(outcome), answer) {
                (Decision::Retry { after, rate_limited }, answer) => {
                    if rate_limited {
                        let why = match &answer {
                            Ok((_, Some(error))) => Some(error),
                            _ => None,
                        };
                        if self.patient && after > self.inner.retry.max_retry_after {
                            let mut overlong =
                                self.inner.overlong.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            *overlong = (*overlong).max(Some(after));
                        }
                        // Only the request that closes the gate (or moves its end) says so: a
                        // fleet's parallel requests would repeat it.
                        if self.inner.gate.close(after, why) {
                            let bound = if self.patient {
                                "to finish the routes under way".to_owned()
                            } else {
                                format!("--max-wait {}s", policy.max_retry_after.as_secs())
                            };
                            policy.notify.say(&format!(
                                "rate limited by the Cloud Controller (429): waiting {}s, until {}, as its \
                                 Retry-After asks ({bound})",
                                after.as_secs_f32().ceil(),
                                utc_in(after),
                            ));
                        }
                    }
                    tokio::time::sleep(after).await;
                }
                (Decision::RenewTokenAndRetry, _) => {
                    tracing::debug!("the Cloud Controller rejected the token; renewing it once");
                    if let (Some(tokens), Some(used)) = (&self.inner.tokens, &authorization) {
                        tokens.rejected(used).await.map_err(|e| self.token_error(e))?;
                    }
                }
                (Decision::Fail(Failure::RateLimited { retry_after, waited }), Ok((_, Some(error)))) => {
                    return Err(Error::RateLimited {
                        source: Box::new(error),
                        retry_after,
                        until: utc_in(retry_after),
                        waited,
                        max_wait: policy.max_retry_after,
                    });
                }
                (Decision::Fail(Failure::GaveUp { waited }), Ok((_, Some(error)))) => {
                    return Err(Error::GaveUp { source: Box::new(error), waited });
                }
                (_, Ok((_, Some(error)))) => return Err(error.into()),
                (_, Ok((bytes, None))) => return Ok(bytes),
                (decision, Err(e)) => {
                    let attempts = match decision {
                        Decision::Fail(Failure::NoAnswer { attempts }) => attempts,
                        _ => attempt,
                    };
                    return Err(self.no_answer(&method, &url, &e, repeat, attempts));
                }
            }
        }
    }

    /// One exchange: the status, headers and body, or why there is none.
    async fn send(&self, request: reqwest::Request) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
        let response = self.inner.http.execute(request).await;
        if !matches!(&response, Err(e) if e.is_connect()) {
            self.inner.connected.store(true, Ordering::Relaxed);
        }
        let response = response?;
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        Ok((status, headers, response.bytes().await?.to_vec()))
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
        builder.build().map_err(|e| self.no_answer(method, url, &e, Repeat::Safe, 0))
    }

    /// The error for a request given up without an answer.
    fn no_answer(&self, method: &Method, url: &Url, e: &reqwest::Error, repeat: Repeat, attempts: u32) -> Error {
        let cause = transport_cause(e);
        if e.is_connect() {
            return self.unreachable(Unreachable {
                server: Server::CloudController,
                url: self.inner.api.to_string().trim_end_matches('/').to_owned(),
                cause,
                attempts,
            });
        }
        let tries = if attempts > 1 { format!(", tried {attempts} times") } else { String::new() };
        let what = match (repeat, e.is_timeout()) {
            (Repeat::Safe, true) => {
                let tried = if attempts > 1 { format!(" (tried {attempts} times)") } else { String::new() };
                format!("no answer in time{tried}; the API may be overloaded, run the command again")
            }
            (Repeat::Safe, false) => format!("the connection failed ({cause}{tries}); run the command again"),
            (Repeat::Unsafe, _) => format!(
                "no answer ({cause}); the request may or may not have been carried out, check with `switchctl \
                 status` before running the command again"
            ),
        };
        Error::Transport { method: method.to_string(), url: url.to_string(), what }
    }

    /// A token error, with an unreachable UAA judged like an unreachable API.
    fn token_error(&self, e: TokenError) -> Error {
        match e {
            TokenError::Unreachable(u) => self.unreachable(u),
            e => e.into(),
        }
    }

    fn unreachable(&self, error: Unreachable) -> Error {
        Error::Unreachable { error, nothing_changed: !self.inner.connected.load(Ordering::Relaxed) }
    }
}

/// `HH:MM:SS UTC`, `after` from now.
fn utc_in(after: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + after;
    format!("{:02}:{:02}:{:02} UTC", at.hour(), at.minute(), at.second())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_api_path() {
        let api = parse_api_url("api.example.com/cf/", "API", "fix").expect("url");
        assert_eq!(api.as_str(), "https://api.example.com/cf");
        let client = Client::new(reqwest::Client::new(), api, None, RetryPolicy::default());
        let url = client.url("/v3/apps", &[("names", "x,y"), ("label_selector", "k=v")]);
        assert_eq!(url.as_str(), "https://api.example.com/cf/v3/apps?names=x%2Cy&label_selector=k%3Dv");
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
