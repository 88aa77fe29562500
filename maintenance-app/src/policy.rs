//! The validated answer settings a rule or the environment selects: what [`response`] renders
//! and [`rules`] hands out.
//!
//! Kept apart from [`config`] so that the modules which only use a policy do not depend on how
//! one is read: `rules` and `response` import this, [`config`] builds it, and nothing here imports
//! them back.
//!
//! [`config`]: crate::config
//! [`response`]: crate::response
//! [`rules`]: crate::rules

use std::{fmt, str::FromStr};

use http::{HeaderValue, StatusCode};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// What a maintenance answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The HTML page, status 503.
    Html,
    /// The bare message as text, status 503.
    Plain503,
    /// `{"response", "status", "type"}` with `StatusHeader`, status 200 (the reference contract).
    Json,
    /// JSON for API clients and HTML for browsers, chosen by `Accept`, status 503.
    Auto,
    /// The reference Flask app path by path, minus its bugs.
    Compat,
}

impl Mode {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "html, 503, json, auto, compat";

    /// The status of this mode's answers when no override is configured.
    pub fn default_status(self) -> StatusCode {
        match self {
            Mode::Json => StatusCode::OK,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl FromStr for Mode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "html" => Ok(Mode::Html),
            "503" => Ok(Mode::Plain503),
            "json" => Ok(Mode::Json),
            "auto" => Ok(Mode::Auto),
            "compat" => Ok(Mode::Compat),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Html => "html",
            Mode::Plain503 => "503",
            Mode::Json => "json",
            Mode::Auto => "auto",
            Mode::Compat => "compat",
        })
    }
}

/// Validated answer settings for a host/path (or the defaults).
#[derive(Debug, Clone)]
pub struct Policy {
    /// Answer mode.
    pub mode: Mode,
    /// Message shown to clients.
    pub message: String,
    /// Page title.
    pub title: String,
    /// Status of every answer, when overridden.
    pub status: Option<StatusCode>,
    /// Fixed `Retry-After`, also the fallback once `until` has passed.
    pub retry_after: Option<u64>,
    /// Expected end of the window; `Retry-After` counts down to it.
    pub until: Option<OffsetDateTime>,
    /// Value of the `StatusHeader` header on JSON answers.
    pub status_header: HeaderValue,
    /// An operator's own HTML page, read at startup, with `{{message}}` etc. not yet filled in.
    pub page: Option<String>,
}

/// `2026-11-24T18:00:00Z`, for logs and `<time datetime>`.
///
/// Here rather than in [`response`](crate::response) because the page and `config`'s startup
/// summary both print `until` this way, and neither of those modules should import the other.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
