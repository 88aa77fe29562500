//! Per-app content documents: what one app's visitors see, set by `switchctl` either in the
//! maintenance app's environment (`MAINTENANCE_APP_<KEY>`, read at startup, so it survives a
//! restart) or live through the control endpoint ([`control`](crate::control)). Both carry the
//! same JSON document and both go through [`AppContent::parse`], so an instance restarted from
//! its environment serves exactly what a live change gave the others.
//!
//! Sits beside [`config`](crate::config): it imports [`policy`](crate::policy) and
//! [`rules`](crate::rules) only, and `config` uses it for the environment documents.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::{
    policy::{Mode, Policy},
    rules::{HostPattern, Rule, normalize_prefix},
};

/// Prefix of the environment variables that hold per-app documents.
pub const ENV_PREFIX: &str = "MAINTENANCE_APP_";

/// Hosts one document may name. A CF app has at most a few dozen routes; the bound keeps a
/// document within the 16 KiB the control endpoint accepts anyway, and the match list short.
const MAX_HOSTS: usize = 100;

/// The document as sent: `version`, `app` and `hosts` required, the rest optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    version: u64,
    app: String,
    hosts: Vec<String>,
    message: Option<String>,
    title: Option<String>,
    until: Option<String>,
    retry_after: Option<u64>,
    mode: Option<String>,
    status: Option<u16>,
}

/// A validated per-app document.
#[derive(Debug, Clone)]
pub struct AppContent {
    /// The app's guid as given (case kept: CF guids are lower case, and the path must match it).
    pub app: String,
    /// Strictly increasing per app; what `X-Maintenance-Version` reports.
    pub version: u64,
    /// One rule per host (and path prefix), all with [`AppContent::policy`].
    pub routes: Vec<Rule>,
    /// The answer settings: the document's fields over the environment's defaults.
    pub policy: Policy,
}

impl AppContent {
    /// Parses and validates a document; unset fields come from `base` (the `MAINTENANCE_*`
    /// defaults). The error says which field is wrong and what it accepts.
    pub fn parse(json: &str, base: &Policy) -> Result<AppContent, String> {
        let raw: RawDoc = serde_json::from_str(json).map_err(|e| format!("not a valid content document: {e}"))?;
        validate_guid(&raw.app)?;
        if raw.version == 0 {
            return Err("version: must be at least 1 (0 is the version of the base content)".to_owned());
        }
        if raw.hosts.is_empty() || raw.hosts.len() > MAX_HOSTS {
            return Err(format!("hosts: give from 1 to {MAX_HOSTS} routes, e.g. [\"shop.apps.example.com\"]"));
        }
        let mut policy = base.clone();
        if let Some(mode) = raw.mode.as_deref() {
            // compat imitates one reference app path by path; it is an app-wide choice, not a
            // per-app message, so documents offer the four modes switchctl does.
            policy.mode = match mode.parse() {
                Ok(Mode::Compat) | Err(()) => {
                    return Err(format!("mode: {mode:?} is not a mode; use one of html, 503, json, auto"));
                }
                Ok(m) => m,
            };
        }
        if let Some(code) = raw.status {
            policy.status = Some(
                http::StatusCode::from_u16(code)
                    .ok()
                    .filter(|s| (200..=599).contains(&s.as_u16()))
                    .ok_or_else(|| format!("status: {code} is not an HTTP status code from 200 to 599"))?,
            );
        }
        if let Some(until) = raw.until.as_deref() {
            policy.until =
                Some(OffsetDateTime::parse(until.trim(), &time::format_description::well_known::Rfc3339).map_err(
                    |_| format!("until: {until:?} is not an RFC 3339 time; write e.g. 2026-11-24T18:00:00Z"),
                )?);
        }
        if raw.retry_after.is_some() {
            policy.retry_after = raw.retry_after;
        }
        if let Some(message) = raw.message {
            policy.message = message;
        }
        if let Some(title) = raw.title {
            policy.title = title;
        }
        let routes = raw.hosts.iter().map(|route| parse_route(route, &policy)).collect::<Result<Vec<_>, String>>()?;
        Ok(AppContent { app: raw.app, version: raw.version, routes, policy })
    }
}

/// `MAINTENANCE_APP_` + the guid upper-cased with `-` → `_`: environment variable names are
/// conventionally upper case with underscores, and `-` is not portable in them.
pub fn env_name(app: &str) -> String {
    format!("{ENV_PREFIX}{}", app.to_ascii_uppercase().replace('-', "_"))
}

/// A guid names a path segment and an environment variable: letters, digits and `-`.
pub fn validate_guid(app: &str) -> Result<(), String> {
    if app.is_empty() || app.len() > 64 || !app.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("app: {app:?} is not an app guid; give the guid of the app (letters, digits, '-')"));
    }
    Ok(())
}

/// `host` or `host/path-prefix`, as `cf routes` prints a route: the host exact, the prefix
/// matched on whole segments, as the rules file does.
fn parse_route(route: &str, policy: &Policy) -> Result<Rule, String> {
    let (host, path) = match route.split_once('/') {
        Some((host, rest)) => (host, Some(format!("/{rest}"))),
        None => (route, None),
    };
    let Ok(pattern @ HostPattern::Exact(_)) = HostPattern::parse(host) else {
        return Err(format!(
            "hosts: {route:?} is not a route; write host or host/path, e.g. shop.example.com/checkout"
        ));
    };
    let prefix = path.as_deref().map(normalize_prefix).transpose().map_err(|e| format!("hosts: {e}"))?;
    Ok(Rule::new(pattern, prefix, policy.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn base() -> Policy {
        Config::from_vars([("MAINTENANCE_MESSAGE", "base")]).expect("valid").default
    }

    #[test]
    fn a_document_layers_over_the_base() {
        let doc = r#"{"version":3,"app":"abc-1","hosts":["Shop.example.com","shop.example.org/checkout/"],"title":"Shop","mode":"json"}"#;
        let c = AppContent::parse(doc, &base()).expect("valid");
        assert_eq!((c.app.as_str(), c.version), ("abc-1", 3));
        assert_eq!(c.policy.message, "base");
        assert_eq!(c.policy.title, "Shop");
        assert_eq!(c.policy.mode, Mode::Json);
        assert!(c.routes[0].matches("shop.example.com", "/x"));
        assert!(c.routes[1].matches("shop.example.org", "/checkout/pay"));
        assert!(!c.routes[1].matches("shop.example.org", "/checkoutx"));
    }

    #[test]
    fn bad_documents_say_which_field() {
        let bad = |doc: &str, field: &str| {
            let e = AppContent::parse(doc, &base()).expect_err(doc);
            assert!(e.contains(field), "{doc}: {e}");
        };
        bad(r#"{"version":1,"app":"a","hosts":["*.example.com"]}"#, "hosts");
        bad(r#"{"version":1,"app":"a","hosts":[]}"#, "hosts");
        bad(r#"{"version":0,"app":"a","hosts":["a.example"]}"#, "version");
        bad(r#"{"version":1,"app":"a/b","hosts":["a.example"]}"#, "app");
        bad(r#"{"version":1,"app":"a","hosts":["a.example"],"mode":"compat"}"#, "mode");
        bad(r#"{"version":1,"app":"a","hosts":["a.example"],"status":99}"#, "status");
        bad(r#"{"version":1,"app":"a","hosts":["a.example"],"until":"soon"}"#, "until");
        bad(r#"{"version":1,"app":"a","hosts":["a.example"],"colour":"red"}"#, "unknown field");
        bad(r#"{"app":"a","hosts":["a.example"]}"#, "version");
    }

    #[test]
    fn env_name_follows_the_guid() {
        assert_eq!(env_name("5a1e-77b0"), "MAINTENANCE_APP_5A1E_77B0");
    }
}
