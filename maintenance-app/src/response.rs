//! Maintenance answers, rendered once per policy at startup so that a request only picks one.

use askama::Template;
use axum::body::Body;
use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode,
    header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
        ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
        ACCESS_CONTROL_REQUEST_METHOD, ALLOW, CACHE_CONTROL, CONTENT_TYPE, ORIGIN, RETRY_AFTER, VARY,
    },
};
use time::{OffsetDateTime, macros::format_description};

// Re-exported so that the public path `response::rfc3339` keeps working after the move.
pub use crate::policy::rfc3339;
use crate::{
    negotiate::prefers_html,
    policy::{Mode, Policy},
};

/// Marks every answer of this server, so `switchctl` can tell that a route reaches it.
pub static MARKER_HEADER: HeaderName = HeaderName::from_static("x-maintenance-app");
/// Value of [`MARKER_HEADER`].
pub const MARKER_VALUE: &str = "cf-maintenance";
/// The reference app's JSON status header (CF's router may rewrite it to `Statusheader`).
pub static STATUS_HEADER: HeaderName = HeaderName::from_static("statusheader");
/// The version of the per-app content an answer comes from, `0` for the base content, so that
/// `switchctl` can tell whether an instance serves what it last sent.
pub static VERSION_HEADER: HeaderName = HeaderName::from_static("x-maintenance-version");
/// Keeps search engines from indexing maintenance answers in place of the app's pages; the HTML
/// page's `<meta name="robots">` reaches only crawlers that parse HTML.
pub static ROBOTS_HEADER: HeaderName = HeaderName::from_static("x-robots-tag");
/// What the page and the 503 text say once `until` has passed.
pub const LATE: &str = "This is taking longer than planned.";

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ALL_METHODS: HeaderValue = HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
const EXPOSED: HeaderValue =
    HeaderValue::from_static("StatusHeader, Retry-After, X-Maintenance-App, X-Maintenance-Version");

/// Adds what every answer of this server carries: the marker, and CORS headers so that a browser
/// API client on another origin can read the JSON and `StatusHeader`.
pub fn mark(headers: &mut HeaderMap) {
    headers.insert(MARKER_HEADER.clone(), HeaderValue::from_static(MARKER_VALUE));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`),
/// allowing any method and the headers asked for. A plain `OPTIONS` is not a preflight and gets
/// a maintenance answer like any other method (tower-http's `CorsLayer` would swallow it).
pub fn cors_preflight(method: &Method, request: &HeaderMap) -> Option<Response<Body>> {
    if method != Method::OPTIONS
        || !request.contains_key(ORIGIN)
        || !request.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
    {
        return None;
    }
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, ALL_METHODS);
    if let Some(asked) = request.get(ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    Some(response)
}

/// One ready answer: status, every header, body. Cloned per request, never built per request.
#[derive(Debug, Clone)]
struct Prepared {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Prepared {
    fn response(&self) -> Response<Body> {
        let mut response = Response::new(Body::from(self.body.clone()));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

/// The answers whose text depends on whether `until` has passed.
#[derive(Debug)]
struct Timed {
    page: Prepared,
    text: Prepared,
    auto_page: Prepared,
}

/// The answers of one policy, rendered with their headers at startup (or when a per-app
/// document arrives).
#[derive(Debug)]
pub struct Answers {
    mode: Mode,
    retry_after: Option<u64>,
    until: Option<OffsetDateTime>,
    /// Before `until` (or always, without one).
    on_time: Timed,
    /// After `until`: rendered up front too, so that a request only compares two times.
    late: Timed,
    json: Prepared,
    auto_json: Prepared,
    compat_index: Prepared,
    compat_503: Prepared,
    compat_json: Prepared,
    compat_options: Prepared,
    /// Headers and status of the compat fallback, whose body names the path.
    compat_fallback: Prepared,
    escaped_message: String,
}

#[derive(Template)]
#[template(path = "page.html")]
struct Page<'a> {
    title: &'a str,
    message: &'a str,
    until: Option<&'a Until>,
    late: bool,
    refresh: Option<u64>,
}

struct Until {
    machine: String,
    human: String,
}

impl Answers {
    /// Renders every answer the policy can give; `version` is the per-app content's, 0 for the
    /// base content.
    pub fn new(policy: &Policy, version: u64) -> Answers {
        let until = policy.until.map(|t| Until { machine: rfc3339(t), human: human_time(t) });
        let render_page = |late: bool| {
            let page = match &policy.page {
                Some(custom) => fill_custom_page(custom, policy, until.as_ref()),
                None => Page {
                    title: &policy.title,
                    message: &policy.message,
                    until: until.as_ref(),
                    late,
                    // A page left open in a browser reloads itself, but never more than twice a minute.
                    refresh: policy.retry_after.map(|s| s.max(30)),
                }
                .render()
                .unwrap_or_else(|e| {
                    // Rendering plain strings cannot fail; keep a readable page if it ever does.
                    tracing::error!("page template failed: {e}");
                    escape_html(&policy.message)
                }),
            };
            Bytes::from(page)
        };
        let render_text = |late: bool| {
            Bytes::from(match &until {
                None => format!("{}\n", policy.message),
                Some(_) if late => format!("{}\n{LATE}\n", policy.message),
                Some(until) => format!("{}\nExpected back by {}.\n", policy.message, until.human),
            })
        };
        let escaped_message = escape_html(&policy.message);
        let json = Bytes::from(reference_json(&policy.message));

        // Every answer carries these; a countdown `Retry-After` is added per request instead.
        let mut common = HeaderMap::with_capacity(10);
        mark(&mut common);
        common.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        common.insert(ROBOTS_HEADER.clone(), HeaderValue::from_static("noindex"));
        // A static value is cloned per answer without touching a reference count.
        let version = if version == 0 { HeaderValue::from_static("0") } else { HeaderValue::from(version) };
        common.insert(VERSION_HEADER.clone(), version);
        if let (None, Some(seconds)) = (policy.until, policy.retry_after) {
            common.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        let status = |default: StatusCode| policy.status.unwrap_or(default);
        let answer =
            |default: StatusCode, content_type: HeaderValue, extra: &[(&HeaderName, &HeaderValue)], body: &Bytes| {
                let mut headers = common.clone();
                headers.insert(CONTENT_TYPE, content_type);
                for (name, value) in extra {
                    headers.insert((*name).clone(), (*value).clone());
                }
                Prepared { status: status(default), headers, body: body.clone() }
            };
        let unavailable = StatusCode::SERVICE_UNAVAILABLE;
        let status_header = (&STATUS_HEADER, &policy.status_header);
        let vary = (&VARY, &HeaderValue::from_static("accept"));
        let timed = |late: bool| {
            let page = render_page(late);
            Timed {
                page: answer(unavailable, HTML, &[], &page),
                text: answer(unavailable, TEXT, &[], &render_text(late)),
                auto_page: answer(unavailable, HTML, &[vary], &page),
            }
        };
        Answers {
            mode: policy.mode,
            retry_after: policy.retry_after,
            until: policy.until,
            on_time: timed(false),
            late: timed(true),
            json: answer(StatusCode::OK, JSON, &[status_header], &json),
            auto_json: answer(unavailable, JSON, &[vary, status_header], &json),
            compat_index: answer(StatusCode::OK, HTML, &[], &Bytes::from(format!("INDEX: {escaped_message}"))),
            compat_503: answer(unavailable, HTML, &[], &Bytes::from(format!("<h1>503 {escaped_message}</h1>"))),
            compat_json: answer(StatusCode::OK, JSON, &[status_header], &json),
            compat_options: answer(StatusCode::OK, HTML, &[(&ALLOW, &ALL_METHODS)], &Bytes::new()),
            compat_fallback: answer(StatusCode::OK, HTML, &[], &Bytes::new()),
            escaped_message,
        }
    }

    /// The answer to a request; `path` is the raw (still percent-encoded) path.
    pub fn respond(&self, method: &Method, path: &str, accept: Option<&HeaderValue>) -> Response<Body> {
        // The clock is read only when there is an end time to compare with, as before.
        let now = self.until.map(|_| OffsetDateTime::now_utc());
        let timed = match (self.until, now) {
            (Some(until), Some(now)) if now >= until => &self.late,
            _ => &self.on_time,
        };
        let mut response = match self.mode {
            Mode::Html => timed.page.response(),
            Mode::Plain503 => timed.text.response(),
            Mode::Json => self.json.response(),
            Mode::Auto if prefers_html(accept.map(HeaderValue::as_bytes)) => timed.auto_page.response(),
            Mode::Auto => self.auto_json.response(),
            Mode::Compat => self.compat(method, path),
        };
        if let Some(now) = now
            && let Some(seconds) = self.retry_after_at(now)
        {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The reference app, path by path: `/`, `/503`, `/json`, and the fallback that names the path.
    fn compat(&self, method: &Method, path: &str) -> Response<Body> {
        if method == Method::OPTIONS {
            return self.compat_options.response();
        }
        match path {
            "/" => self.compat_index.response(),
            "/503" => self.compat_503.response(),
            "/json" => self.compat_json.response(),
            _ => {
                // The reference echoed the decoded path raw into HTML (reflected XSS); escape it.
                let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
                let body = format!("FALLBACK trying to reach {}: {}", escape_html(&decoded), self.escaped_message);
                let mut response = self.compat_fallback.response();
                *response.body_mut() = Body::from(body);
                response
            }
        }
    }

    /// Seconds until the expected end; the fixed value when none is set or it has passed.
    fn retry_after_at(&self, now: OffsetDateTime) -> Option<u64> {
        let remaining = self.until.map(|until| (until - now).whole_seconds()).filter(|s| *s > 0);
        remaining.map(|s| s as u64).or(self.retry_after)
    }
}

/// The reference's JSON: `jsonify` sorts keys, writes compactly, ends with a newline and escapes
/// non-ASCII as `\uXXXX`; clients that compared bytes keep working.
fn reference_json(message: &str) -> String {
    let json = serde_json::json!({ "response": message, "status": 503, "type": "Exception" });
    let mut out = String::with_capacity(message.len() + 48);
    for c in json.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.push('\n');
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// An operator's page with `{{message}}`, `{{title}}` and `{{until}}` filled in, escaped.
fn fill_custom_page(page: &str, policy: &Policy, until: Option<&Until>) -> String {
    let values = [
        ("message", escape_html(&policy.message)),
        ("title", escape_html(&policy.title)),
        ("until", until.map(|u| escape_html(&u.human)).unwrap_or_default()),
    ];
    let mut out = page.to_owned();
    for (name, value) in &values {
        for token in [format!("{{{{{name}}}}}"), format!("{{{{ {name} }}}}")] {
            out = out.replace(&token, value);
        }
    }
    out
}

/// `24 November 2026, 18:00 UTC` (or `UTC+01:00`), in the offset the operator wrote.
fn human_time(t: OffsetDateTime) -> String {
    let date = format_description!("[day padding:none] [month repr:long] [year], [hour]:[minute]");
    let text = t.format(&date).unwrap_or_default();
    let offset = t.offset();
    if offset.is_utc() {
        format!("{text} UTC")
    } else {
        let (h, m, _) = offset.as_hms();
        format!("{text} UTC{}{:02}:{:02}", if offset.is_negative() { '-' } else { '+' }, h.abs(), m.abs())
    }
}

#[cfg(test)]
mod tests {
    use time::format_description::well_known::Rfc3339;

    use super::*;
    use crate::config::Config;

    fn policy(vars: &[(&str, &str)]) -> Policy {
        Config::from_vars(vars.iter().copied()).expect("valid").default
    }

    #[test]
    fn json_matches_the_reference_bytes() {
        assert_eq!(reference_json("M"), "{\"response\":\"M\",\"status\":503,\"type\":\"Exception\"}\n");
        assert_eq!(
            reference_json("Wartung – bis 18 Uhr 🛠"),
            "{\"response\":\"Wartung \\u2013 bis 18 Uhr \\ud83d\\udee0\",\"status\":503,\"type\":\"Exception\"}\n"
        );
        let back: serde_json::Value = serde_json::from_str(&reference_json("a\"<b>")).expect("valid json");
        assert_eq!(back["response"], "a\"<b>");
    }

    #[test]
    fn page_escapes_message_and_title() {
        let answers =
            Answers::new(&policy(&[("MAINTENANCE_MESSAGE", "<script>x</script>"), ("MAINTENANCE_TITLE", "a&b")]), 0);
        let page = std::str::from_utf8(&answers.on_time.page.body).expect("utf-8");
        assert!(page.contains("&#60;script&#62;x&#60;/script&#62;"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(page.contains("<title>a&#38;b</title>") || page.contains("<title>a&amp;b</title>"), "{page}");
    }

    #[test]
    fn page_shows_the_expected_end_in_the_offset_given() {
        let answers = Answers::new(&policy(&[("MAINTENANCE_UNTIL", "2026-11-24T19:30:00+01:00")]), 0);
        let page = std::str::from_utf8(&answers.on_time.page.body).expect("utf-8");
        assert!(page.contains("24 November 2026, 19:30 UTC+01:00"), "{page}");
        assert!(page.contains("datetime=\"2026-11-24T19:30:00+01:00\""), "{page}");
    }

    #[test]
    fn custom_page_placeholders_are_filled_escaped() {
        let mut p = policy(&[("MAINTENANCE_MESSAGE", "<b>back at 6</b>")]);
        p.page = Some("<html><h1>{{ title }}</h1><p>{{message}}</p></html>".to_owned());
        let answers = Answers::new(&p, 0);
        assert_eq!(
            &answers.on_time.page.body[..],
            b"<html><h1>Down for maintenance</h1><p>&lt;b&gt;back at 6&lt;/b&gt;</p></html>"
        );
    }

    #[test]
    fn retry_after_counts_down_then_falls_back() {
        let answers = Answers::new(
            &policy(&[("MAINTENANCE_UNTIL", "2026-11-24T18:00:00Z"), ("MAINTENANCE_RETRY_AFTER", "60")]),
            0,
        );
        let at = |s: &str| OffsetDateTime::parse(s, &Rfc3339).expect("time");
        assert_eq!(answers.retry_after_at(at("2026-11-24T17:00:00Z")), Some(3600));
        assert_eq!(answers.retry_after_at(at("2026-11-24T18:00:00Z")), Some(60));
        let no_fixed = Answers::new(&policy(&[("MAINTENANCE_UNTIL", "2026-11-24T18:00:00Z")]), 0);
        assert_eq!(no_fixed.retry_after_at(at("2026-11-24T19:00:00Z")), None);
    }
}
