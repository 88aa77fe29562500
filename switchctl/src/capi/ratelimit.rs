//! The Cloud Controller's rate limit, shared by every request of a client (a whole fleet's): a 429
//! or an answer saying no request is left closes a [`Gate`] that all requests wait at, instead of
//! each finding out with a 429 of its own. Also the headers that say how long to wait.

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// No request is sent before the instant it holds.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
    /// Waits while the gate is closed.
    pub(crate) async fn wait(&self) {
        loop {
            let until = *self.until.lock().unwrap_or_else(PoisonError::into_inner);
            match until {
                Some(until) if until > Instant::now() => {
                    // Held-back requests spread out rather than all coming back in the same instant.
                    let jitter = Duration::from_millis(fastrand::u64(0..100));
                    tokio::time::sleep(until.saturating_duration_since(Instant::now()) + jitter).await;
                }
                _ => return,
            }
        }
    }

    /// Closes the gate for `wait` from now (never shortening an earlier closing).
    pub(crate) fn close(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if gate.is_none_or(|g| g < until) {
            tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limit: holding requests");
            *gate = Some(until);
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
pub(crate) fn exhausted_until(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    if header("x-ratelimit-remaining")? != 0 {
        return None;
    }
    let secs = header("x-ratelimit-reset")? - time::OffsetDateTime::now_utc().unix_timestamp();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)).min(max))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

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

    #[tokio::test]
    async fn a_closed_gate_holds_requests_and_is_never_shortened() {
        let gate = Gate::default();
        gate.close(Duration::from_millis(300));
        gate.close(Duration::from_millis(10));
        let started = Instant::now();
        gate.wait().await;
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    }
}
