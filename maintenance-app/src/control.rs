//! The control endpoint: `PUT` and `DELETE /__maintenance/control/apps/<app guid>`, signed with
//! the secret from the app's environment, change one app's content on this instance live.
//!
//! The endpoint is reachable through every public route the maintenance app carries (that is how
//! `switchctl` reaches each instance, with gorouter's `X-CF-APP-INSTANCE`), so everything here
//! assumes a hostile caller:
//! - no secret configured, no endpoint: every request under the prefix gets 403;
//! - an HMAC-SHA256 over method, path, timestamp and body, compared in constant time
//!   (`hmac`'s `verify_slice` uses `subtle`), so nothing can be changed or forged without the
//!   secret;
//! - the timestamp bounds how long a captured request stays usable (300 s either way), and the
//!   version, which must go up for every change of an app, makes it usable at most once per
//!   instance: a replay within the window finds its version already held (409);
//! - the body is read up to 16 KiB and no further;
//! - a request under the prefix never gets a maintenance answer, so a client can always tell
//!   the endpoint from an app in maintenance.
//!
//! The secret and the signature are never logged or echoed.

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::body::Body;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{
    HeaderMap, HeaderValue, Method, Response, StatusCode,
    header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE},
};
use http_body_util::BodyExt;
use serde::Deserialize;
use sha2::Sha256;

use crate::{
    appdoc::{AppContent, validate_guid},
    config::ControlSecret,
    live::Live,
    policy::Policy,
    response::{MARKER_HEADER, MARKER_VALUE, ROBOTS_HEADER, VERSION_HEADER},
};

/// Every path under this is the control endpoint's, whatever the method.
pub const PREFIX: &str = "/__maintenance/control/";
/// The one resource: `apps/<guid>` under [`PREFIX`].
const APPS: &str = "apps/";
/// Largest body read; a per-app document is well under 1 KiB.
pub const MAX_BODY: usize = 16 * 1024;
/// How far the signed timestamp may be from this instance's clock, either way.
pub const MAX_SKEW_SECS: u64 = 300;
/// `X-Maintenance-Timestamp`: unix seconds, signed.
pub const TIMESTAMP_HEADER: &str = "x-maintenance-timestamp";
/// `X-Maintenance-Signature`: `v1=` and the lowercase hex HMAC.
pub const SIGNATURE_HEADER: &str = "x-maintenance-signature";

/// Whether a request is the control endpoint's (and must never get a maintenance answer).
pub fn is_control_path(path: &str) -> bool {
    path.starts_with(PREFIX) || path == &PREFIX[..PREFIX.len() - 1]
}

/// What the control endpoint needs: the key, the live content, and the base the documents
/// layer over.
#[derive(Debug)]
pub struct Control {
    secret: Option<ControlSecret>,
    live: Arc<Live>,
    base: Policy,
}

/// The signature of a request: what `switchctl` computes, and what tests use to sign.
pub fn sign(secret: &[u8], method: &str, path: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = mac(secret, method, path, timestamp);
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + digest.len() * 2);
    out.push_str("v1=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn mac(secret: &[u8], method: &str, path: &str, timestamp: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    for part in ["v1", method, path, timestamp] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    mac
}

/// A refusal: status and the reason given to the caller.
struct Refusal(StatusCode, String);

fn refuse(status: StatusCode, reason: impl Into<String>) -> Refusal {
    Refusal(status, reason.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delete {
    version: u64,
}

impl Control {
    /// The endpoint of a server whose content is `live`.
    pub fn new(secret: Option<ControlSecret>, live: Arc<Live>, base: Policy) -> Control {
        Control { secret, live, base }
    }

    /// Answers one control request; reads at most [`MAX_BODY`] bytes of `body`.
    pub async fn answer<B>(&self, parts: http::request::Parts, body: B) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(secret) = &self.secret else {
            return json(
                StatusCode::FORBIDDEN,
                0,
                error("control disabled: MAINTENANCE_CONTROL_SECRET is not set"),
                None,
            );
        };
        let path = parts.uri.path();
        let app = path
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.strip_prefix(APPS))
            .filter(|app| !app.is_empty() && !app.contains('/'));
        let Some(app) = app else {
            return json(
                StatusCode::NOT_FOUND,
                0,
                error("no such control resource; use /__maintenance/control/apps/<app guid>"),
                None,
            );
        };
        if parts.method != Method::PUT && parts.method != Method::DELETE {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                self.live.version(app),
                error("use PUT to set an app's content or DELETE to remove it"),
                Some(HeaderValue::from_static("PUT, DELETE")),
            );
        }
        match self.change(secret, &parts, app, body).await {
            Ok(version) => json(StatusCode::OK, version, serde_json::json!({ "app": app, "version": version }), None),
            Err(Refusal(status, reason)) => {
                tracing::debug!(app, status = status.as_u16(), reason, "control request refused");
                json(status, self.live.version(app), error(&reason), None)
            }
        }
    }

    async fn change<B>(
        &self,
        secret: &ControlSecret,
        parts: &http::request::Parts,
        app: &str,
        body: B,
    ) -> Result<u64, Refusal>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let too_large = || refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("body over {MAX_BODY} bytes"));
        let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => return Err(refuse(StatusCode::BAD_REQUEST, "the body could not be read")),
        };
        verify(secret, parts, &body, unix_now())?;

        validate_guid(app).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
        let text = std::str::from_utf8(&body).map_err(|_| refuse(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
        let stale = |held: u64, version: u64| {
            refuse(
                StatusCode::CONFLICT,
                format!("version {version} is not newer than version {held}, which this instance holds for {app}"),
            )
        };
        let (action, result) = if parts.method == Method::PUT {
            let content = AppContent::parse(text, &self.base).map_err(|e| refuse(StatusCode::BAD_REQUEST, e))?;
            if content.app != app {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("the path names app {app} but the document is for app {:?}", content.app),
                ));
            }
            let version = content.version;
            ("set", self.live.put(content).map_err(|s| stale(s.held, version))?)
        } else {
            let delete: Delete = serde_json::from_str(text)
                .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("not a valid delete document: {e}")))?;
            ("removed", self.live.delete(app, delete.version).map_err(|s| stale(s.held, delete.version))?)
        };
        tracing::info!(app, version = result, "content {action}");
        Ok(result)
    }
}

/// Checks the signature, then the timestamp; either failing is a 401. The clock skew is checked
/// second so that only a caller who holds the secret learns that its clock is off.
fn verify(secret: &ControlSecret, parts: &http::request::Parts, body: &[u8], now: u64) -> Result<(), Refusal> {
    let unauthorized = |reason: &str| refuse(StatusCode::UNAUTHORIZED, reason);
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header(TIMESTAMP_HEADER)
        .ok_or_else(|| unauthorized("missing X-Maintenance-Timestamp (unix seconds, signed)"))?;
    let signed_at: u64 =
        timestamp.parse().map_err(|_| unauthorized("X-Maintenance-Timestamp is not a number of unix seconds"))?;
    let signature = header(SIGNATURE_HEADER)
        .and_then(|s| s.strip_prefix("v1="))
        .and_then(decode_hex)
        .ok_or_else(|| unauthorized("missing or malformed X-Maintenance-Signature (v1=<hex HMAC-SHA256>)"))?;
    let mut mac = mac(secret.as_bytes(), parts.method.as_str(), parts.uri.path(), timestamp);
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| unauthorized("signature does not match"))?;
    if signed_at.abs_diff(now) > MAX_SKEW_SECS {
        return Err(unauthorized(&format!(
            "timestamp is {} s from this instance's clock, more than the {MAX_SKEW_SECS} s allowed: check the clock skew, then sign again",
            signed_at.abs_diff(now)
        )));
    }
    Ok(())
}

/// 64 hex digits to 32 bytes; anything else is `None`.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    // `from_str_radix` alone would take a sign: "+a" is 10.
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect()
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn error(reason: &str) -> serde_json::Value {
    serde_json::json!({ "error": reason })
}

/// A control answer: JSON, the marker and the version, never cached or indexed. No CORS
/// headers: browsers on other origins have no business reading these.
fn json(status: StatusCode, version: u64, body: serde_json::Value, allow: Option<HeaderValue>) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{body}\n")));
    *response.status_mut() = status;
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(MARKER_HEADER.clone(), HeaderValue::from_static(MARKER_VALUE));
    headers.insert(ROBOTS_HEADER.clone(), HeaderValue::from_static("noindex"));
    headers.insert(VERSION_HEADER.clone(), HeaderValue::from(version));
    if let Some(allow) = allow {
        headers.insert(ALLOW, allow);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_decodes_only_whole_digests() {
        assert_eq!(decode_hex(&"ab".repeat(32)), Some(vec![0xab; 32]));
        assert_eq!(decode_hex(&"ab".repeat(31)), None);
        assert_eq!(decode_hex(&"zz".repeat(32)), None);
        assert_eq!(decode_hex(&format!("+{}", "a".repeat(63))), None);
    }

    #[test]
    fn signature_covers_every_part() {
        let base = sign(b"k", "PUT", "/p", "1", b"{}");
        // printf 'v1\nPUT\n/p\n1\n{}' | openssl dgst -sha256 -hmac k
        assert_eq!(base, "v1=e6229f958d8ae8cb97a162736746993687a28e751167d6eb100bd4d97e2b889d");
        for other in [
            sign(b"K", "PUT", "/p", "1", b"{}"),
            sign(b"k", "DELETE", "/p", "1", b"{}"),
            sign(b"k", "PUT", "/q", "1", b"{}"),
            sign(b"k", "PUT", "/p", "2", b"{}"),
            sign(b"k", "PUT", "/p", "1", b"{ }"),
        ] {
            assert_ne!(base, other);
        }
    }
}
