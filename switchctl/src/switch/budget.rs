//! Whether a run fits in what is left of the Cloud Controller's rate limit, judged once every app
//! is surveyed and before the first change: a run that certainly cannot finish before the
//! window's end, and would have to wait longer than `--max-wait` for the next one, is refused with
//! nothing changed, instead of stopping half way.
//!
//! What CC tells (capi-release `middleware/base_rate_limiter.rb`, see [`crate::capi`]'s
//! `ratelimit`): `X-RateLimit-Remaining` is floored to tenths of the limit, so the requests truly
//! left are at least Remaining and less than Remaining + a tenth of the limit. Only a run that
//! needs more than that upper bound is sure to meet a 429; one that needs more than Remaining may,
//! and is told so.

use std::time::Duration;

use crate::capi::RateHeaders;

/// Requests one route still costs once surveyed: `on` and `off` both send 4 ([`super`]).
pub const PER_ROUTE: u64 = 4;

/// What the rate limit means for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    /// No limiter, or the run needs no more than what is certainly left.
    Fits,
    /// The run may meet the limit: it waits for the window's end, within `--max-wait`.
    MayWait {
        /// Requests the run needs.
        needed: u64,
        /// `X-RateLimit-Remaining`.
        remaining: u64,
        /// The window's end, `HH:MM:SS UTC`.
        until: String,
    },
    /// The run certainly meets the limit, and the window ends later than `--max-wait` allows.
    Refused {
        /// Requests the run needs.
        needed: u64,
        /// At most this many are left.
        at_most: u64,
        /// `X-RateLimit-Limit`.
        limit: u64,
        /// The window's end, `HH:MM:SS UTC`.
        until: String,
        /// Seconds until then.
        wait_s: u64,
    },
}

/// Judges a run that needs `needed` requests, with the latest headers `seen`, at `now` (epoch
/// seconds), allowed to wait `max_wait` for the limit.
pub fn judge(needed: u64, seen: Option<RateHeaders>, now: i64, max_wait: Duration) -> Budget {
    let Some(h) = seen.filter(|h| h.limit > 0) else { return Budget::Fits };
    if needed <= h.remaining {
        return Budget::Fits;
    }
    let until = clock(h.reset);
    let at_most = h.remaining + h.limit / 10;
    let wait_s = u64::try_from(h.reset - now).unwrap_or(0);
    if needed > at_most && Duration::from_secs(wait_s) > max_wait {
        return Budget::Refused { needed, at_most, limit: h.limit, until, wait_s };
    }
    Budget::MayWait { needed, remaining: h.remaining, until }
}

/// `HH:MM:SS UTC` of an epoch second.
fn clock(epoch: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(epoch) {
        Ok(t) => format!("{:02}:{:02}:{:02} UTC", t.hour(), t.minute(), t.second()),
        Err(_) => epoch.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_950_400; // 2025-12-05 16:00:00 UTC

    fn seen(remaining: u64, reset_in: i64) -> Option<RateHeaders> {
        Some(RateHeaders { limit: 2000, remaining, reset: NOW + reset_in })
    }

    #[test]
    fn no_limiter_or_enough_left_fits() {
        let max = Duration::from_secs(900);
        assert_eq!(judge(5000, None, NOW, max), Budget::Fits);
        assert_eq!(judge(400, seen(400, 3600), NOW, max), Budget::Fits);
    }

    #[test]
    fn more_than_remaining_may_wait_within_the_floor_or_max_wait() {
        let max = Duration::from_secs(900);
        // Remaining 0 may still mean 199 left: 150 requests may well get through.
        let may = judge(150, seen(0, 3600), NOW, max);
        assert_eq!(may, Budget::MayWait { needed: 150, remaining: 0, until: "17:00:00 UTC".into() });
        // Certainly short, but the window ends within --max-wait: wait for it.
        assert!(matches!(judge(900, seen(200, 600), NOW, max), Budget::MayWait { .. }));
    }

    #[test]
    fn certainly_short_with_the_window_ending_past_max_wait_is_refused() {
        let refused = judge(1000, seen(200, 3000), NOW, Duration::from_secs(900));
        assert_eq!(
            refused,
            Budget::Refused { needed: 1000, at_most: 400, limit: 2000, until: "16:50:00 UTC".into(), wait_s: 3000 }
        );
    }
}
