//! Faults injected on demand by tests, and the request log. One [`Faults`] is shared by the CC and
//! UAA doubles; rules match a method and a path pattern (`*` = one segment, `**` = the rest).
//!
//! - latency: a fixed delay plus uniform jitter before every request;
//! - fail the Nth matching request with 500, 502 or 503 (CC's bodies), CC's 429, or a dropped
//!   connection;
//! - CC's rate limiter as capi-release deploys it: a per-user (per-IP when unauthenticated) budget
//!   per fixed per-user window (default one hour), split over `instances` CC instances that count
//!   separately, with CC's floored `X-RateLimit-Remaining` estimate on every answer and 429 +
//!   `Retry-After` (the rest of the window) past an instance's share;
//! - pauses: hold matching requests before (or after) the handler until the test releases them;
//! - the log: method, path, query, body and status of every request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
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
    /// 500 `CF-RunnerError`: Diego's BBS refused the desired-LRP update CC sends after a route
    /// change commits (cloud_controller_ng `lib/cloud_controller/diego/bbs_apps_client.rb`
    /// `handle_diego_errors`: a BBS response error becomes `RunnerError`; the update is sent from
    /// `app/models/runtime/process_route_handler.rb`'s `after_commit`, so the change is kept).
    RunnerError,
    /// 503 `CF-RunnerUnavailable`: the BBS could not be reached for that update (same file: a
    /// `Diego::Error` becomes `RunnerUnavailable`; only `getaddrinfo` failures are logged and
    /// swallowed, `lib/cloud_controller/diego/runner.rb#with_logging`).
    RunnerUnavailable,
}

/// When an injected failure strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strike {
    /// Before the handler: nothing changed.
    Before,
    /// After the handler ran and its transaction committed: the change was made, and the caller
    /// still gets the failure (a Diego error raised in an `after_commit` hook, or a connection
    /// that drops on the way back).
    AfterCommit,
}

/// CC's rate limiter settings, as capi-release renders them into each CC instance's config.
///
/// capi-release `jobs/cloud_controller_ng/spec`: `cc.rate_limiter.general_limit` (default 2000
/// "over an hour-long interval"), `cc.rate_limiter.unauthenticated_limit` (default 100),
/// `cc.rate_limiter.reset_interval_in_minutes` (default 60), `cc.rate_limiter.enabled` (default
/// false). `templates/cloud_controller_ng.yml.erb` gives every instance
/// `per_process_*_limit = (limit.to_f / instances).ceil` and `global_*_limit = limit`; no admin
/// limit is rendered, so CC's default `-1` (unlimited) applies to admins
/// (cloud_controller_ng `middleware/rate_limiter.rb`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// `cc.rate_limiter.general_limit`: requests per user per interval, over all instances.
    pub limit: u64,
    /// `cc.rate_limiter.unauthenticated_limit`: requests per IP per interval without a token.
    pub unauthenticated_limit: u64,
    /// Interval length (CC: whole minutes; tests scale it down to whole seconds).
    pub reset_interval: Duration,
    /// CC instances behind the router, each counting on its own (its local valkey).
    pub instances: u64,
    /// How the router spreads requests over the instances.
    pub spread: Spread,
}

impl RateLimit {
    /// `limit` per `reset_interval` on one instance, unauthenticated limit as capi-release's 100.
    pub fn new(limit: u64, reset_interval: Duration) -> RateLimit {
        RateLimit { limit, unauthenticated_limit: 100, reset_interval, instances: 1, spread: Spread::RoundRobin }
    }

    /// capi-release's defaults once enabled: 2000 per user per hour, 100 unauthenticated.
    pub fn capi_default() -> RateLimit {
        RateLimit::new(2000, Duration::from_secs(3600))
    }

    /// The same limits spread over `instances` CC instances.
    pub fn instances(self, instances: u64) -> RateLimit {
        RateLimit { instances: instances.max(1), ..self }
    }

    /// The interval (whole seconds, at least one: CC counts in seconds).
    pub fn interval(self, reset_interval: Duration) -> RateLimit {
        RateLimit { reset_interval, ..self }
    }

    /// `per_process_*_limit` of capi-release's template: `(limit.to_f / instances).ceil`.
    pub fn per_instance(&self, limit: u64) -> u64 {
        limit.div_ceil(self.instances.max(1))
    }

    fn interval_secs(&self) -> i64 {
        i64::try_from(self.reset_interval.as_secs().max(1)).unwrap_or(i64::MAX)
    }
}

/// How requests reach the CC instances.
///
/// The gorouter balances a route's endpoints round robin by default (CF docs, routing
/// architecture: "`router.balancing_algorithm` … By default, the Gorouter uses the round-robin
/// algorithm"; CC's API route is registered to the gorouter by route_registrar), so one client's
/// requests mostly alternate over the instances: [`Spread::RoundRobin`] is the default. With several gorouters and other
/// users' traffic in between, what one client sees is closer to [`Spread::Random`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Instance after instance, over all requests of all callers (one router).
    RoundRobin,
    /// A random instance for every request.
    Random,
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
    strike: Strike,
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
    /// Per (instance, caller key): the end of the counter's window (epoch seconds) and its count,
    /// as CC's `ExpiringRequestCounter` keeps them.
    windows: HashMap<(u64, String), (i64, u64)>,
    /// The next instance for [`Spread::RoundRobin`].
    next_instance: u64,
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
    /// Carry it out, then answer with this failure.
    FailAfterCommit(Failure),
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
    /// A valid token for this user or client; `admin`: `cloud_controller.admin` or
    /// `admin_read_only` (CC `rate_limiter.rb#admin?`), unlimited with capi-release's config.
    User(String, bool),
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
        self.lock().failures.push(FailRule { matcher, nth: nth.max(1), seen: 0, failure, strike: Strike::Before });
    }

    /// Lets the `nth` request matching `matcher` (1-based) be carried out, then answers it with
    /// `failure` instead of the handler's answer: the change is made, the caller is told it failed.
    pub fn fail_nth_after_commit(&self, matcher: Matcher, nth: usize, failure: Failure) {
        self.lock().failures.push(FailRule { matcher, nth: nth.max(1), seen: 0, failure, strike: Strike::AfterCommit });
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
                failure = Some((rule.failure, rule.strike));
            }
        }
        inner.failures.retain(|r| r.seen < r.nth);
        match failure {
            Some((f, Strike::Before)) => return (Verdict::Fail(f), None),
            Some((f, Strike::AfterCommit)) => return (Verdict::FailAfterCommit(f), None),
            None => {}
        }
        // CC's limiter skips the roots (`rate_limiter.rb#root_api?`) and internal endpoints.
        let exempt = matches!(path.trim_end_matches('/'), "" | "/v3" | "/v2/info" | "/healthz")
            || path.starts_with("/internal/")
            || path == "/oauth/token";
        let Some(rate) = inner.rate.clone().filter(|_| !exempt) else { return (Verdict::Proceed, None) };
        // Admins: `per_process_admin_limit` is -1, and `apply_rate_limiting?` is false then.
        if matches!(caller, Caller::User(_, true)) {
            return (Verdict::Proceed, None);
        }
        let (key, global) = match caller {
            Caller::User(u, _) => (u.clone(), rate.limit),
            Caller::Anonymous(ip) => (ip.clone(), rate.unauthenticated_limit),
            // CC counts the request under whatever id it has (none) and answers 401 later.
            Caller::InvalidToken => ("invalid".to_owned(), rate.limit),
        };
        let per_instance = rate.per_instance(global);
        let instance = match rate.spread {
            Spread::RoundRobin => {
                let i = inner.next_instance % rate.instances;
                inner.next_instance = inner.next_instance.wrapping_add(1);
                i
            }
            Spread::Random => rand::rng().random_range(0..rate.instances),
        };
        let now = crate::clock::unix_now();
        let interval = rate.interval_secs();
        let window = inner.windows.entry((instance, key.clone())).or_insert((0, 0));
        // `ExpiringRequestCounter::InMemoryStore#increment` (and the Redis `SET NX EX` + `INCR` +
        // `TTL`): a missing or expired counter starts at 1 and expires at the user's next window
        // end; otherwise it counts on with the time left.
        if window.0 - now <= 0 {
            *window = (now + next_expires_in(&key, interval, now), 0);
        }
        window.1 += 1;
        let (count, expires_in) = (window.1, window.0 - now);
        let headers = RateHeaders {
            limit: global,
            remaining: estimate_remaining(global, per_instance, count),
            reset_epoch: now + expires_in,
            retry_after: u64::try_from(expires_in).unwrap_or(1),
        };
        if count > per_instance && *caller != Caller::InvalidToken {
            let anonymous = matches!(caller, Caller::Anonymous(_));
            return (Verdict::Limited(headers.clone(), anonymous), Some(headers));
        }
        (Verdict::Proceed, Some(headers))
    }
}

/// Seconds until the user's window ends: CC `middleware/mixins/user_reset_interval.rb`,
/// `interval - (now - offset) % interval` with `offset = XXH64(user_guid) % interval`, so windows
/// are fixed per user (not started by the first request) and users' windows are staggered. Any
/// stable hash gives that; FNV-1a stands in for XXH64.
fn next_expires_in(key: &str, interval: i64, now: i64) -> i64 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let offset = i64::try_from(hash % interval.unsigned_abs()).unwrap_or(0);
    interval - (now - offset).rem_euclid(interval)
}

/// `X-RateLimit-Remaining`: CC `middleware/base_rate_limiter.rb#estimate_remaining`,
/// `((limit - count).to_f / limit).floor(1) * global_limit`, at least 0, as an integer; `limit` is
/// the instance's own. So it moves in steps of a tenth of the global limit, and reads 0 once this
/// instance has used more than 90% of its share, while up to a tenth of it is still left.
/// `Float#floor(1)` is Ruby's `rb_float_floor`: `floor(x * 10)`, then `(mul + 1) / 10` unless that
/// is above `x`.
fn estimate_remaining(global: u64, per_instance: u64, count: u64) -> u64 {
    if per_instance == 0 {
        return 0;
    }
    let x = (per_instance as f64 - count as f64) / per_instance as f64;
    let mul = (x * 10.0).floor();
    let floored = if (mul + 1.0) / 10.0 > x { mul / 10.0 } else { (mul + 1.0) / 10.0 };
    (floored * global as f64).max(0.0) as u64
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

    #[test]
    fn remaining_is_floored_to_tenths_of_the_global_limit() {
        // 2000 over 4 instances: 500 each; CC's estimate is per instance, scaled to 2000.
        assert_eq!(estimate_remaining(2000, 500, 1), 1800);
        assert_eq!(estimate_remaining(2000, 500, 50), 1800);
        assert_eq!(estimate_remaining(2000, 500, 51), 1600);
        assert_eq!(estimate_remaining(2000, 500, 450), 200);
        assert_eq!(estimate_remaining(2000, 500, 451), 0);
        assert_eq!(estimate_remaining(2000, 500, 600), 0);
        assert_eq!(estimate_remaining(3, 3, 1), 1);
    }

    #[test]
    fn four_instances_each_count_their_share_and_admins_are_unlimited() {
        let f = Faults::default();
        f.set_rate_limit(Some(RateLimit::capi_default().instances(4).interval(Duration::from_secs(3600))));
        let user = Caller::User("u".into(), false);
        let mut last = None;
        for n in 1..=2000 {
            let (verdict, headers) = f.verdict(&Method::GET, "/v3/apps", &user);
            assert!(matches!(verdict, Verdict::Proceed), "request {n}");
            last = headers;
        }
        let last = last.expect("headers");
        assert_eq!((last.limit, last.remaining), (2000, 0));
        assert!((1..=3600).contains(&last.retry_after), "{last:?}");
        assert_eq!(last.reset_epoch - crate::clock::unix_now(), i64::try_from(last.retry_after).expect("secs"));
        let (verdict, headers) = f.verdict(&Method::GET, "/v3/apps", &user);
        assert!(matches!(verdict, Verdict::Limited(_, false)));
        assert_eq!(headers.map(|h| h.remaining), Some(0));
        let admin = Caller::User("a".into(), true);
        assert!(matches!(f.verdict(&Method::GET, "/v3/apps", &admin), (Verdict::Proceed, None)));
    }

    #[test]
    fn windows_end_at_a_fixed_per_user_time() {
        for now in [0, 1, 59, 3600, 1_700_000_000] {
            let left = next_expires_in("user", 60, now);
            assert!((1..=60).contains(&left));
            assert_eq!(next_expires_in("user", 60, now + 1), if left == 1 { 60 } else { left - 1 });
        }
    }
}
