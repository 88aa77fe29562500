//! The Cloud Controller's rate limit, shared by every request of a client (a whole fleet's): a 429
//! closes a [`Gate`] that all requests wait at, instead of each finding out with a 429 of its own;
//! an answer whose `X-RateLimit-Remaining` reads 0 makes the gate pace requests instead. Also the
//! headers that say how long to wait.
//!
//! What CC sends (cloud_controller_ng `middleware/base_rate_limiter.rb`, capi-release
//! `jobs/cloud_controller_ng/templates/cloud_controller_ng.yml.erb`): each CC instance counts a
//! user's requests on its own against `general_limit / instances` (2000 per hour by default,
//! 500 each with 4 instances); `X-RateLimit-Limit` is the global 2000; `X-RateLimit-Remaining` is
//! `floor_to_tenths((share - count) / share) * 2000`, so it falls in steps of 200 and reads 0
//! once an instance has used 90% of its share (451 of 500) while up to 49 requests on it, about
//! 200 in all, are still allowed; `X-RateLimit-Reset` is the window's end in epoch seconds and a
//! 429's `Retry-After` the seconds left until then (up to the whole hour).

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// No request is sent before the instant it holds; while pacing, requests start `gap` apart.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    /// Closed until then (a 429).
    until: Option<Instant>,
    /// The 429 that closed it last.
    why: Option<crate::error::ApiError>,
    /// Pacing: requests start at least `gap` apart until `pace_until`.
    pace: Option<(Duration, Instant)>,
    /// The earliest start of the next paced request.
    next: Option<Instant>,
}

impl Gate {
    /// Waits while the gate is closed, then for this request's slot while pacing.
    pub(crate) async fn wait(&self) {
        loop {
            match self.next_wait(Instant::now()) {
                Wait::Closed(wait) => {
                    // Held-back requests spread out rather than all coming back in the same instant.
                    let jitter = Duration::from_millis(fastrand::u64(0..100));
                    tokio::time::sleep(wait + jitter).await;
                }
                // The slot is this request's: sleep until it without asking again.
                Wait::Slot(wait) => return tokio::time::sleep(wait).await,
                Wait::Go => return,
            }
        }
    }

    fn next_wait(&self, now: Instant) -> Wait {
        let mut g = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match (g.until, g.pace) {
            (Some(until), _) if until > now => Wait::Closed(until - now),
            (_, Some((gap, pace_until))) if pace_until > now => {
                let slot = g.next.filter(|n| *n > now).unwrap_or(now);
                g.next = Some(slot + gap);
                if slot > now { Wait::Slot(slot - now) } else { Wait::Go }
            }
            _ => Wait::Go,
        }
    }

    /// Closes the gate for `wait` from now (never shortening an earlier closing), for the 429 `why`;
    /// whether this moved the gate's end by more than a second (a new wait worth telling).
    pub(crate) fn close(&self, wait: Duration, why: Option<&crate::error::ApiError>) -> bool {
        let until = Instant::now() + wait;
        let mut gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let news = gate.until.is_none_or(|g| g + Duration::from_secs(1) < until);
        if gate.until.is_none_or(|g| g < until) {
            tracing::debug!(wait_ms = wait.as_millis() as u64, "rate limit: holding requests");
            gate.until = Some(until);
            if let Some(why) = why {
                gate.why = Some(why.clone());
            }
        }
        news
    }

    /// How much longer the gate stays closed, and the 429 that closed it.
    pub(crate) fn closed_for(&self) -> Option<(Duration, Option<crate::error::ApiError>)> {
        let gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let left = gate.until?.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        Some((left, gate.why.clone()))
    }

    /// Paces requests `pace.gap` apart for `pace.length` from now (a later answer replaces it).
    pub(crate) fn pace(&self, pace: Pace) {
        let mut gate = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        gate.pace = Some((pace.gap, Instant::now() + pace.length));
    }
}

enum Wait {
    Closed(Duration),
    Slot(Duration),
    Go,
}

/// The `X-RateLimit-*` headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// `X-RateLimit-Limit`: the global limit per window.
    pub limit: u64,
    /// `X-RateLimit-Remaining`: CC's estimate, floored to tenths of the limit.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: the window's end, epoch seconds.
    pub reset: i64,
}

/// The `X-RateLimit-*` headers, when all three are there and parse (CC sends all or none).
pub(crate) fn rate_headers(headers: &HeaderMap) -> Option<RateHeaders> {
    let header = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok();
    Some(RateHeaders {
        limit: u64::try_from(header("x-ratelimit-limit")?).ok()?,
        remaining: u64::try_from(header("x-ratelimit-remaining")?).ok()?,
        reset: header("x-ratelimit-reset")?,
    })
}

/// How requests are spread out: at most one start per `gap`, for `length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pace {
    /// Time between request starts.
    pub(crate) gap: Duration,
    /// How long (until the window's end).
    pub(crate) length: Duration,
}

/// Whether to pace after an answer with these headers, `now` in epoch seconds.
///
/// Remaining above 0 means at least a tenth of the limit is left: no pacing. Remaining 0 does not
/// mean nothing is left: CC floors its estimate, so up to a tenth of the limit (200 of 2000) may
/// still be allowed, and the requests keep succeeding. Closing the gate until the reset would
/// then stop a run for up to the whole hour for nothing. Instead the rest of the window is shared
/// out: at most `limit / 10` more requests until the reset, one every `(reset - now) / (limit /
/// 10)`: with 2000 per hour and the whole hour left, one every 18 s; with a minute left, one
/// every 0.3 s. So the client never burns what may be left faster than the window runs out, and a
/// 429 (the budget really is used up) still closes the gate until `Retry-After`.
pub(crate) fn pacing(h: RateHeaders, now: i64) -> Option<Pace> {
    if h.remaining > 0 || h.limit == 0 {
        return None;
    }
    let left = Duration::from_secs(u64::try_from((h.reset - now).max(1)).unwrap_or(1));
    let at_most = (h.limit / 10).max(1);
    Some(Pace { gap: left / u32::try_from(at_most).unwrap_or(u32::MAX), length: left })
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

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(limit: &str, remaining: &str, reset: i64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-limit", HeaderValue::from_str(limit).expect("header"));
        h.insert("x-ratelimit-remaining", HeaderValue::from_str(remaining).expect("header"));
        h.insert("x-ratelimit-reset", HeaderValue::from_str(&reset.to_string()).expect("header"));
        h
    }

    #[test]
    fn rate_headers_are_read_when_all_three_parse() {
        let h = headers("2000", "1800", 1_700_003_600);
        assert_eq!(rate_headers(&h), Some(RateHeaders { limit: 2000, remaining: 1800, reset: 1_700_003_600 }));
        let mut partial = h.clone();
        partial.remove("x-ratelimit-reset");
        assert_eq!(rate_headers(&partial), None);
        assert_eq!(rate_headers(&headers("2000", "-1", 0)), None);
        assert_eq!(rate_headers(&HeaderMap::new()), None);
    }

    #[test]
    fn remaining_above_zero_does_not_pace() {
        let now = 1_700_000_000;
        let h = rate_headers(&headers("2000", "200", now + 3600)).expect("headers");
        assert_eq!(pacing(h, now), None);
    }

    #[test]
    fn remaining_zero_paces_the_last_tenth_over_the_rest_of_the_window() {
        let now = 1_700_000_000;
        // 2000 per hour, the whole hour left: at most 200 more, one every 18 s, not a stop.
        let h = rate_headers(&headers("2000", "0", now + 3600)).expect("headers");
        assert_eq!(pacing(h, now), Some(Pace { gap: Duration::from_secs(18), length: Duration::from_secs(3600) }));
        // A minute left: one every 300 ms.
        let h = RateHeaders { reset: now + 60, ..h };
        assert_eq!(pacing(h, now), Some(Pace { gap: Duration::from_millis(300), length: Duration::from_secs(60) }));
        // A reset already past (clock skew) paces for a second at most.
        let h = RateHeaders { reset: now - 5, ..h };
        assert_eq!(pacing(h, now), Some(Pace { gap: Duration::from_millis(5), length: Duration::from_secs(1) }));
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
    async fn a_pacing_gate_spaces_request_starts() {
        let gate = Gate::default();
        gate.pace(Pace { gap: Duration::from_millis(100), length: Duration::from_secs(10) });
        let started = Instant::now();
        for _ in 0..4 {
            gate.wait().await;
        }
        let took = started.elapsed();
        assert!((Duration::from_millis(300)..Duration::from_secs(2)).contains(&took), "{took:?}");
    }

    #[tokio::test]
    async fn a_closed_gate_holds_requests_and_is_never_shortened() {
        let gate = Gate::default();
        gate.close(Duration::from_millis(300), None);
        gate.close(Duration::from_millis(10), None);
        assert!(gate.closed_for().is_some_and(|(d, _)| d > Duration::from_millis(200)));
        let started = Instant::now();
        gate.wait().await;
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    }
}
