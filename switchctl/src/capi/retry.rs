//! When a request is sent again: a pure state machine, so that every rule is a unit test and the
//! async loop in [`super::transport`] only carries out what it is told.
//!
//! The rules (the module docs of [`crate::capi`] say why each request is or is not safe):
//! * a request that could not connect was never sent: it is retried whatever its method;
//! * a request whose answer was lost (timeout after sending, connection reset) is retried only if it
//!   is [`Repeat::Safe`];
//! * 502/503/504 are retried only for safe requests;
//! * 429 waits as `Retry-After` says, however long, as long as the waits of the request stay
//!   within [`RetryPolicy::max_retry_after`] (`--max-wait`; a request refused for the rate limit
//!   was not carried out, so this holds for every method); it does not use up an attempt. CC's
//!   `Retry-After` is the rest of the user's window, up to an hour (capi-release's default
//!   interval), so a fixed bound of a minute failed requests that only had to wait;
//! * a 401 `CF-InvalidAuthToken` renews the token and sends again, once; it does not use up an
//!   attempt either;
//! * backoffs stay within [`RetryPolicy::max_total_wait`], attempts within
//!   [`RetryPolicy::max_attempts`].

use std::time::Duration;

/// When and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all for a safe request failing with a connection error or 502/503/504.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub base_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
    /// Longest total wait for the rate limit (`Retry-After`s) of one request (`--max-wait`); a
    /// 429 whose wait would go beyond it fails the request at once with
    /// [`Failure::RateLimited`], so that the caller can stop before it starts anything new.
    pub max_retry_after: Duration,
    /// Longest total wait for backoffs of one request.
    pub max_total_wait: Duration,
    /// Told of every wait for the rate limit, so that the operator sees why nothing moves.
    pub notify: Notify,
}

/// A callback for a wait for the rate limit: how long, and why. The capi layer knows nothing of
/// the output; whoever builds the client passes what prints.
#[derive(Clone, Default)]
pub struct Notify(Option<std::sync::Arc<NotifyFn>>);

/// What [`Notify`] calls.
type NotifyFn = dyn Fn(&str) + Send + Sync;

impl Notify {
    /// Calls `f` with a one-line notice.
    pub fn new(f: impl Fn(&str) + Send + Sync + 'static) -> Notify {
        Notify(Some(std::sync::Arc::new(f)))
    }

    pub(crate) fn say(&self, text: &str) {
        match &self.0 {
            Some(f) => f(text),
            None => tracing::warn!("{text}"),
        }
    }
}

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Notify(callback)" } else { "Notify(log)" })
    }
}

/// `--max-wait` when not given: a quarter of capi-release's hour-long window. Long enough to ride
/// out the end of a window, short enough that an operator in a maintenance window is not left
/// waiting an hour without deciding so.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_retry_after: DEFAULT_MAX_WAIT,
            max_total_wait: Duration::from_secs(120),
            notify: Notify::default(),
        }
    }
}

impl RetryPolicy {
    /// The backoff before attempt `attempt + 1`: `base · 2^(attempt-1)`, capped, then a random
    /// value between half of it and all of it (so that parallel requests spread out).
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, fastrand::f64())
    }

    /// [`RetryPolicy::backoff`] with the random part given (`0.0..=1.0`).
    fn backoff_with(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Whether a request may be sent again when its outcome is unknown (see the module docs of
/// [`crate::capi`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Sending it twice ends the same as once.
    Safe,
    /// It must not be sent twice unless it certainly was not carried out.
    Unsafe,
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No connection (refused, DNS, connect timeout): the request was never sent.
    NotConnected,
    /// Sent, or perhaps sent, but no complete answer (timeout, reset): it may have been carried out.
    Lost,
    /// An HTTP answer.
    Answer {
        /// The status code.
        status: u16,
        /// `Retry-After`, if the answer had one that parses.
        retry_after: Option<Duration>,
        /// A 401 `CF-InvalidAuthToken` to a request that carried a token.
        token_rejected: bool,
    },
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The answer is a success: hand it over.
    Done,
    /// Send again after `after`. `rate_limited`: the Cloud Controller asked for the wait, so every
    /// other request of the client holds back too.
    Retry { after: Duration, rate_limited: bool },
    /// Renew the token and send again at once.
    RenewTokenAndRetry,
    /// Give up and report.
    Fail(Failure),
}

/// How a request that is given up is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The answer's own error.
    Answer,
    /// The answer's error, after waiting this long for the rate limit in vain.
    GaveUp { waited: Duration },
    /// No answer, after this many attempts.
    NoAnswer { attempts: u32 },
    /// The rate limit asks for `retry_after` more, beyond what `--max-wait` leaves.
    RateLimited { retry_after: Duration, waited: Duration },
}

/// A 429 answered this often in a row ends the request, whatever the waits.
const MAX_RATE_LIMITED: u32 = 10;
/// The most that is added to a `Retry-After`, so that held-back requests do not all return in the
/// same instant.
const RATE_LIMIT_JITTER: Duration = Duration::from_millis(250);

/// The retry state of one request.
#[derive(Debug)]
pub(crate) struct Retries<'a> {
    policy: &'a RetryPolicy,
    repeat: Repeat,
    /// Attempts that count against [`RetryPolicy::max_attempts`].
    attempts: u32,
    rate_limited: u32,
    waited: Duration,
    /// Time waited for the rate limit, against [`RetryPolicy::max_retry_after`].
    rate_waited: Duration,
    renewed: bool,
    /// The random part of waits, `0.0..=1.0`; fixed in tests.
    jitter: fn() -> f64,
}

impl<'a> Retries<'a> {
    /// The state before the first attempt.
    pub(crate) fn new(policy: &'a RetryPolicy, repeat: Repeat) -> Retries<'a> {
        Retries {
            policy,
            repeat,
            attempts: 0,
            rate_limited: 0,
            waited: Duration::ZERO,
            rate_waited: Duration::ZERO,
            renewed: false,
            jitter: fastrand::f64,
        }
    }

    /// The decision after an attempt ended in `outcome`.
    pub(crate) fn decide(&mut self, outcome: Outcome) -> Decision {
        self.attempts += 1;
        match outcome {
            Outcome::Answer { status: 200..=299, .. } => Decision::Done,
            Outcome::Answer { token_rejected: true, .. } if !self.renewed => {
                self.renewed = true;
                self.attempts -= 1;
                Decision::RenewTokenAndRetry
            }
            Outcome::Answer { status: 429, retry_after, .. } => {
                self.attempts -= 1;
                self.rate_limited += 1;
                self.rate_limit(retry_after)
            }
            Outcome::Answer { status: 502..=504, .. } if self.repeat == Repeat::Safe => {
                self.backoff().unwrap_or(Decision::Fail(Failure::Answer))
            }
            Outcome::Answer { .. } => Decision::Fail(Failure::Answer),
            Outcome::NotConnected => self.backoff().unwrap_or(self.no_answer()),
            Outcome::Lost if self.repeat == Repeat::Safe => self.backoff().unwrap_or(self.no_answer()),
            Outcome::Lost => self.no_answer(),
        }
    }

    /// A backoff, if another attempt is allowed and the wait fits.
    fn backoff(&mut self) -> Option<Decision> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let after = self.policy.backoff_with(self.attempts, (self.jitter)());
        self.wait(after).then_some(Decision::Retry { after, rate_limited: false })
    }

    fn rate_limit(&mut self, retry_after: Option<Duration>) -> Decision {
        let asked = retry_after.unwrap_or_else(|| self.policy.backoff_with(self.rate_limited, (self.jitter)()));
        let after = asked + RATE_LIMIT_JITTER.mul_f64((self.jitter)());
        if self.rate_waited + asked > self.policy.max_retry_after {
            return Decision::Fail(Failure::RateLimited { retry_after: asked, waited: self.rate_waited });
        }
        if self.rate_limited > MAX_RATE_LIMITED {
            return Decision::Fail(Failure::GaveUp { waited: self.rate_waited });
        }
        self.rate_waited += after;
        Decision::Retry { after, rate_limited: true }
    }

    /// Time waited for the rate limit so far.
    pub(crate) fn rate_waited(&self) -> Duration {
        self.rate_waited
    }

    /// Adds `delay` to the total wait if it stays within the policy.
    fn wait(&mut self, delay: Duration) -> bool {
        let total = self.waited + delay;
        if total > self.policy.max_total_wait {
            return false;
        }
        self.waited = total;
        true
    }

    fn no_answer(&self) -> Decision {
        Decision::Fail(Failure::NoAnswer { attempts: self.attempts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(60),
            notify: Notify::default(),
        }
    }

    /// A state machine whose random part is always the full value, so waits are exact.
    fn retries(policy: &RetryPolicy, repeat: Repeat) -> Retries<'_> {
        Retries { jitter: || 1.0, ..Retries::new(policy, repeat) }
    }

    fn status(status: u16) -> Outcome {
        Outcome::Answer { status, retry_after: None, token_rejected: false }
    }

    fn retry(ms: u64) -> Decision {
        Decision::Retry { after: Duration::from_millis(ms), rate_limited: false }
    }

    #[test]
    fn a_success_is_done() {
        let p = policy();
        assert_eq!(retries(&p, Repeat::Unsafe).decide(status(200)), Decision::Done);
        assert_eq!(retries(&p, Repeat::Safe).decide(status(204)), Decision::Done);
    }

    #[test]
    fn a_connect_error_is_retried_whatever_the_method_until_the_attempts_run_out() {
        let p = policy();
        for repeat in [Repeat::Safe, Repeat::Unsafe] {
            let mut r = retries(&p, repeat);
            assert_eq!(r.decide(Outcome::NotConnected), retry(100), "{repeat:?}");
            assert_eq!(r.decide(Outcome::NotConnected), retry(200), "{repeat:?}");
            assert_eq!(r.decide(Outcome::NotConnected), Decision::Fail(Failure::NoAnswer { attempts: 3 }));
        }
    }

    #[test]
    fn a_lost_answer_is_retried_only_for_a_safe_request() {
        let p = policy();
        assert_eq!(retries(&p, Repeat::Safe).decide(Outcome::Lost), retry(100));
        assert_eq!(
            retries(&p, Repeat::Unsafe).decide(Outcome::Lost),
            Decision::Fail(Failure::NoAnswer { attempts: 1 })
        );
    }

    #[test]
    fn gateway_errors_are_retried_only_for_a_safe_request() {
        let p = policy();
        for code in [502, 503, 504] {
            assert_eq!(retries(&p, Repeat::Safe).decide(status(code)), retry(100), "{code}");
            assert_eq!(retries(&p, Repeat::Unsafe).decide(status(code)), Decision::Fail(Failure::Answer), "{code}");
        }
    }

    #[test]
    fn other_errors_are_not_retried() {
        let p = policy();
        for code in [400, 401, 403, 404, 422, 500] {
            assert_eq!(retries(&p, Repeat::Safe).decide(status(code)), Decision::Fail(Failure::Answer), "{code}");
        }
    }

    #[test]
    fn backoffs_are_capped_and_stop_at_the_attempt_limit() {
        let p = RetryPolicy { max_attempts: 6, max_delay: Duration::from_millis(300), ..policy() };
        let mut r = retries(&p, Repeat::Safe);
        let waits: Vec<Decision> = (0..6).map(|_| r.decide(status(503))).collect();
        assert_eq!(
            waits,
            vec![retry(100), retry(200), retry(300), retry(300), retry(300), Decision::Fail(Failure::Answer)]
        );
    }

    #[test]
    fn backoffs_stop_when_the_total_wait_would_be_exceeded() {
        let p = RetryPolicy { max_attempts: 10, max_total_wait: Duration::from_millis(350), ..policy() };
        let mut r = retries(&p, Repeat::Safe);
        assert_eq!(r.decide(Outcome::NotConnected), retry(100));
        assert_eq!(r.decide(Outcome::NotConnected), retry(200));
        assert_eq!(r.decide(Outcome::NotConnected), Decision::Fail(Failure::NoAnswer { attempts: 3 }));
    }

    #[test]
    fn a_429_waits_as_retry_after_says_for_any_method_without_using_an_attempt() {
        let p = policy();
        let limited = Outcome::Answer { status: 429, retry_after: Some(Duration::from_secs(2)), token_rejected: false };
        let waited = Decision::Retry { after: Duration::from_millis(2250), rate_limited: true };
        let mut r = retries(&p, Repeat::Unsafe);
        for _ in 0..5 {
            assert_eq!(r.decide(limited), waited);
        }
        // Still all attempts left for a gateway error of a safe request.
        let mut r = retries(&p, Repeat::Safe);
        assert_eq!(r.decide(limited), waited);
        assert_eq!(r.decide(status(503)), retry(100));
        assert_eq!(r.decide(status(503)), retry(200));
        assert_eq!(r.decide(status(503)), Decision::Fail(Failure::Answer));
    }

    #[test]
    fn a_429_without_retry_after_backs_off() {
        let p = policy();
        let limited = Outcome::Answer { status: 429, retry_after: None, token_rejected: false };
        let after = Duration::from_millis(100) + RATE_LIMIT_JITTER;
        assert_eq!(retries(&p, Repeat::Safe).decide(limited), Decision::Retry { after, rate_limited: true });
    }

    #[test]
    fn a_retry_after_of_most_of_an_hour_is_waited_when_max_wait_allows() {
        // CC's Retry-After is the rest of the window: up to 3600 s with capi-release's defaults.
        let p = RetryPolicy { max_retry_after: Duration::from_secs(3600), ..policy() };
        let limited =
            Outcome::Answer { status: 429, retry_after: Some(Duration::from_secs(3000)), token_rejected: false };
        let after = Duration::from_secs(3000) + RATE_LIMIT_JITTER;
        assert_eq!(retries(&p, Repeat::Unsafe).decide(limited), Decision::Retry { after, rate_limited: true });
    }

    #[test]
    fn a_retry_after_beyond_max_wait_fails_at_once_saying_so() {
        let p = policy();
        let limited =
            Outcome::Answer { status: 429, retry_after: Some(Duration::from_secs(31)), token_rejected: false };
        assert_eq!(
            retries(&p, Repeat::Safe).decide(limited),
            Decision::Fail(Failure::RateLimited { retry_after: Duration::from_secs(31), waited: Duration::ZERO })
        );
    }

    #[test]
    fn rate_limit_waits_add_up_against_max_wait() {
        let p = RetryPolicy { max_retry_after: Duration::from_secs(5), ..policy() };
        let limited = Outcome::Answer { status: 429, retry_after: Some(Duration::from_secs(2)), token_rejected: false };
        let mut r = retries(&p, Repeat::Safe);
        assert!(matches!(r.decide(limited), Decision::Retry { .. }));
        assert!(matches!(r.decide(limited), Decision::Retry { .. }));
        assert_eq!(
            r.decide(limited),
            Decision::Fail(Failure::RateLimited {
                retry_after: Duration::from_secs(2),
                waited: Duration::from_millis(4500)
            })
        );
    }

    #[test]
    fn endless_429s_end_even_with_short_waits() {
        let p = policy();
        let limited = Outcome::Answer { status: 429, retry_after: Some(Duration::ZERO), token_rejected: false };
        let mut r = retries(&p, Repeat::Safe);
        let retried =
            std::iter::from_fn(|| Some(r.decide(limited))).take_while(|d| matches!(d, Decision::Retry { .. }));
        assert_eq!(retried.count(), MAX_RATE_LIMITED as usize);
    }

    #[test]
    fn a_rejected_token_is_renewed_once_without_using_an_attempt() {
        let p = RetryPolicy { max_attempts: 1, ..policy() };
        let rejected = Outcome::Answer { status: 401, retry_after: None, token_rejected: true };
        let mut r = retries(&p, Repeat::Unsafe);
        assert_eq!(r.decide(rejected), Decision::RenewTokenAndRetry);
        assert_eq!(r.decide(rejected), Decision::Fail(Failure::Answer));
        let mut r = retries(&p, Repeat::Unsafe);
        assert_eq!(r.decide(rejected), Decision::RenewTokenAndRetry);
        assert_eq!(r.decide(status(200)), Decision::Done);
    }

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
}
