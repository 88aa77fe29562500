//! Faults injected on demand by tests, and the request log. One [`Faults`] is shared by the CC and
//! UAA doubles; rules match a method and a path pattern (`*` = one segment, `**` = the rest).
//!
//! - latency: a fixed delay plus uniform jitter before every request;
//! - fail the Nth matching request with 500, 502 or 503 (CC's bodies), CC's 429, or a dropped
//!   connection;
//! - CC's rate limiter: a per-user (per-IP when unauthenticated) budget per interval, with
//!   `X-RateLimit-*` on every answer and 429 + `Retry-After` past the budget;
//! - pauses: hold matching requests before (or after) the handler until the test releases them;
//! - the log: method, path, query, body and status of every request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use http::Method;
use rand::Rng;
use tokio::sync::watch;

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    method: Option<Method>,
    pattern: Vec<String>,
}

impl Matcher {
    /// Requests with `method` whose path matches `pattern` (e.g. `/v3/routes/*/destinations`).
    pub fn new(method: Method, pattern: &str) -> Matcher {
        Matcher { method: Some(method), pattern: segments(pattern).map(str::to_owned).collect() }
    }

    /// Requests with any method whose path matches `pattern`.
    pub fn any_method(pattern: &str) -> Matcher {
        Matcher { method: None, pattern: segments(pattern).map(str::to_owned).collect() }
    }

    /// Whether the request matches.
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let path: Vec<&str> = segments(path).collect();
        let mut i = 0;
        for p in &self.pattern {
            if p == "**" {
                return true;
            }
            match path.get(i) {
                Some(s) if p == "*" || p == s => i += 1,
                _ => return false,
            }
        }
        i == path.len()
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// How a matching request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 500 with CC's `UnknownError` body.
    Status500,
    /// 502 with the gorouter's bad-gateway text (what a client sees when CC is gone).
    Status502,
    /// 503 with CC's `CF-ServiceUnavailable` body.
    Status503,
    /// 429 exactly as CC's rate limiter sends it, with `Retry-After` in seconds.
    RateLimited {
        /// Seconds in `Retry-After`.
        retry_after: u64,
    },
    /// Close the connection without an answer.
    Drop,
}

/// CC's rate limiter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per interval per user.
    pub limit: u64,
    /// Interval length.
    pub reset_interval: Duration,
}

/// Where a pause holds a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// Before the handler: the request has not changed anything yet.
    Before,
    /// After the handler: the change is done, the answer not yet sent.
    After,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// `cc` or `uaa`.
    pub service: &'static str,
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// Body as text (lossy UTF-8).
    pub body: String,
    /// Answer status; 0 when the connection was dropped.
    pub status: u16,
}

#[derive(Debug)]
struct FailRule {
    matcher: Matcher,
    nth: usize,
    seen: usize,
    failure: Failure,
}

/// A pause: matching requests wait until [`PauseHandle::release`].
#[derive(Debug)]
struct Pause {
    matcher: Matcher,
    point: PausePoint,
    held: watch::Sender<usize>,
    released: watch::Sender<bool>,
}

/// The test's grip on a pause.
#[derive(Debug, Clone)]
pub struct PauseHandle(Arc<Pause>);

impl PauseHandle {
    /// Waits until at least `n` requests are being held, or `timeout`; returns whether they were.
    pub async fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.0.held.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|held| *held >= n)).await.is_ok_and(|r| r.is_ok())
    }

    /// How many requests were held so far.
    pub fn held(&self) -> usize {
        *self.0.held.borrow()
    }

    /// Lets every held request go on, and stops holding new ones.
    pub fn release(&self) {
        self.0.released.send_replace(true);
    }
}

#[derive(Debug, Default)]
struct Inner {
    latency: Option<(Duration, Duration)>,
    failures: Vec<FailRule>,
    pauses: Vec<Arc<Pause>>,
    rate: Option<RateLimit>,
    windows: HashMap<String, (Instant, u64)>,
    log: Vec<LoggedRequest>,
}

/// Faults and the request log, shared by the doubles and the test.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<Inner>,
}

/// What to do with a request before its handler.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Go on (after `delay`).
    Proceed,
    /// Fail it this way.
    Fail(Failure),
    /// Rate limited: 429 as CC.
    Limited(RateHeaders, bool),
}

/// `X-RateLimit-*` values for one answer.
#[derive(Debug, Clone)]
pub(crate) struct RateHeaders {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) reset_epoch: i64,
    pub(crate) retry_after: u64,
}

/// The caller's identity, for the rate limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// A valid token for this user or client.
    User(String),
    /// A token that CC will refuse (CC answers 401, not 429, then).
    InvalidToken,
    /// No token: counted per IP.
    Anonymous(String),
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every request waits `fixed` plus a uniform random part of `jitter` first.
    pub fn set_latency(&self, fixed: Duration, jitter: Duration) {
        self.lock().latency = Some((fixed, jitter));
    }

    /// Fails the `nth` (1-based, counted from now) request matching `matcher`.
    pub fn fail_nth(&self, matcher: Matcher, nth: usize, failure: Failure) {
        self.lock().failures.push(FailRule { matcher, nth: nth.max(1), seen: 0, failure });
    }

    /// How many injected failures have not fired yet: a test asserts 0 to know its fault was met.
    pub fn armed(&self) -> usize {
        self.lock().failures.len()
    }

    /// Fails the next request matching `matcher`.
    pub fn fail_next(&self, matcher: Matcher, failure: Failure) {
        self.fail_nth(matcher, 1, failure);
    }

    /// Turns on CC's rate limiter (`None` turns it off).
    pub fn set_rate_limit(&self, rate: Option<RateLimit>) {
        let mut inner = self.lock();
        inner.rate = rate;
        inner.windows.clear();
    }

    /// The rate limiter settings, for `/v3/info`.
    pub fn rate_limit_config(&self) -> Option<RateLimit> {
        self.lock().rate.clone()
    }

    /// Holds requests matching `matcher` at `point` until the handle is released.
    pub fn pause(&self, matcher: Matcher, point: PausePoint) -> PauseHandle {
        let pause =
            Arc::new(Pause { matcher, point, held: watch::Sender::new(0), released: watch::Sender::new(false) });
        self.lock().pauses.push(Arc::clone(&pause));
        PauseHandle(pause)
    }

    /// Removes every rule (latency, failures, pauses after releasing them, rate limit).
    pub fn clear(&self) {
        let mut inner = self.lock();
        for p in inner.pauses.drain(..) {
            p.released.send_replace(true);
        }
        inner.latency = None;
        inner.failures.clear();
        inner.rate = None;
        inner.windows.clear();
    }

    /// Everything logged so far.
    pub fn log(&self) -> Vec<LoggedRequest> {
        self.lock().log.clone()
    }

    /// Forgets the log.
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// How many logged requests match `matcher`.
    pub fn count(&self, matcher: &Matcher) -> usize {
        self.lock().log.iter().filter(|r| matcher.matches(&r.method, &r.path)).count()
    }

    pub(crate) fn record(&self, entry: LoggedRequest) {
        self.lock().log.push(entry);
    }

    pub(crate) fn latency(&self) -> Duration {
        match self.lock().latency {
            Some((fixed, jitter)) if !jitter.is_zero() => fixed + rand::rng().random_range(Duration::ZERO..=jitter),
            Some((fixed, _)) => fixed,
            None => Duration::ZERO,
        }
    }

    /// Pauses that hold `method path` at `point` and are not released.
    pub(crate) async fn hold(&self, method: &Method, path: &str, point: PausePoint) {
        let pauses: Vec<Arc<Pause>> = self
            .lock()
            .pauses
            .iter()
            .filter(|p| p.point == point && !*p.released.borrow() && p.matcher.matches(method, path))
            .cloned()
            .collect();
        for p in pauses {
            let mut rx = p.released.subscribe();
            p.held.send_modify(|n| *n += 1);
            // The sender lives in `p`; `wait_for` only fails if it is dropped.
            let _ = rx.wait_for(|released| *released).await;
        }
    }

    /// Decides on a request before its handler runs (after latency and pauses).
    pub(crate) fn verdict(&self, method: &Method, path: &str, caller: &Caller) -> (Verdict, Option<RateHeaders>) {
        let mut inner = self.lock();
        let mut failure = None;
        for rule in inner.failures.iter_mut().filter(|r| r.matcher.matches(method, path)) {
            rule.seen += 1;
            if rule.seen == rule.nth && failure.is_none() {
                failure = Some(rule.failure);
            }
        }
        inner.failures.retain(|r| r.seen < r.nth);
        if let Some(f) = failure {
            return (Verdict::Fail(f), None);
        }
        // CC's limiter skips the roots (`rate_limiter.rb#root_api?`) and internal endpoints.
        let exempt = matches!(path.trim_end_matches('/'), "" | "/v3" | "/v2/info" | "/healthz")
            || path.starts_with("/internal/")
            || path == "/oauth/token";
        let Some(rate) = inner.rate.clone().filter(|_| !exempt) else { return (Verdict::Proceed, None) };
        let key = match caller {
            Caller::User(u) => format!("user:{u}"),
            Caller::Anonymous(ip) => format!("ip:{ip}"),
            Caller::InvalidToken => "invalid".to_owned(),
        };
        let now = Instant::now();
        let window = inner.windows.entry(key).or_insert((now, 0));
        if now.duration_since(window.0) >= rate.reset_interval {
            *window = (now, 0);
        }
        window.1 += 1;
        let reset_in = rate.reset_interval.saturating_sub(now.duration_since(window.0));
        let headers = RateHeaders {
            limit: rate.limit,
            remaining: rate.limit.saturating_sub(window.1),
            reset_epoch: crate::clock::unix_now() + i64::try_from(reset_in.as_secs()).unwrap_or(0),
            retry_after: reset_in.as_secs().max(1),
        };
        if window.1 > rate.limit && *caller != Caller::InvalidToken {
            let anonymous = matches!(caller, Caller::Anonymous(_));
            return (Verdict::Limited(headers.clone(), anonymous), Some(headers));
        }
        (Verdict::Proceed, Some(headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        let m = Matcher::new(Method::PATCH, "/v3/routes/*/destinations");
        assert!(m.matches(&Method::PATCH, "/v3/routes/abc/destinations"));
        assert!(!m.matches(&Method::GET, "/v3/routes/abc/destinations"));
        assert!(!m.matches(&Method::PATCH, "/v3/routes/abc/destinations/x"));
        let all = Matcher::any_method("/v3/**");
        assert!(all.matches(&Method::GET, "/v3/apps/x/routes"));
        assert!(!all.matches(&Method::GET, "/"));
    }

    #[test]
    fn only_the_nth_match_fails() {
        let f = Faults::default();
        f.fail_nth(Matcher::any_method("/v3/apps"), 2, Failure::Status503);
        let c = Caller::Anonymous("127.0.0.1".into());
        assert!(matches!(f.verdict(&Method::GET, "/v3/apps", &c).0, Verdict::Proceed));
        assert!(matches!(f.verdict(&Method::GET, "/v3/apps", &c).0, Verdict::Fail(Failure::Status503)));
        assert!(matches!(f.verdict(&Method::GET, "/v3/apps", &c).0, Verdict::Proceed));
    }
}
