//! Timestamps as CC renders them: ISO-8601 UTC to the second, `2019-05-10T17:17:48Z`.

use time::{OffsetDateTime, format_description::FormatItem, macros::format_description};

const ISO: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Now, formatted like CC's `created_at`.
pub fn now_iso() -> String {
    iso(OffsetDateTime::now_utc())
}

/// `t` in UTC, formatted like CC's `created_at`.
pub fn iso(t: OffsetDateTime) -> String {
    // The format has only numeric components, which cannot fail to format.
    t.to_offset(time::UtcOffset::UTC).format(ISO).unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
