//! Service-level tests: every mode × method × Accept × path, through `oneshot`, no sockets.

use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use maintenance_app::{Config, MaintenanceService, app};
use tower::ServiceExt;

const MESSAGE: &str = "Back at 18:00 <b>UTC</b>";
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
const BROWSER: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
const ACCEPTS: [Option<&str>; 4] = [None, Some(BROWSER), Some("application/json"), Some("*/*")];
const PATHS: [&str; 7] = [
    "/",
    "/503",
    "/json",
    "/json/",
    "/a/deep/path/index.html",
    "/%3Cscript%3Ealert(1)%3C/script%3E",
    "/x?q=%3Cscript%3E",
];

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

fn router(vars: &[(&str, &str)]) -> MaintenanceService {
    app(&Config::from_vars(vars.iter().copied()).expect("valid configuration"))
}

async fn send(router: &MaintenanceService, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response =
        router.clone().oneshot(request.body(Body::from("ignored body")).expect("request")).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Answer { status, headers, body: String::from_utf8(bytes.to_vec()).expect("utf-8 body") }
}

/// Header lookup by a name in any case, as CF's router may deliver it (`Statusheader`).
fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).and_then(|(_, v)| v.to_str().ok())
}

fn content_type(answer: &Answer) -> &str {
    header(answer, "Content-Type").unwrap_or("")
}

/// What every maintenance answer carries, whatever the mode.
fn assert_common(answer: &Answer, what: &str) {
    assert_eq!(header(answer, "cache-control"), Some("no-store"), "{what}");
    assert_eq!(header(answer, "X-Maintenance-App"), Some("cf-maintenance"), "{what}");
    assert_eq!(header(answer, "access-control-allow-origin"), Some("*"), "{what}");
    assert_ne!(answer.status, StatusCode::NOT_FOUND, "{what}");
    assert_ne!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{what}");
    assert!(!answer.body.contains("<script>"), "{what}: unescaped markup echoed: {}", answer.body);
    if content_type(answer).starts_with("text/html") {
        assert!(!answer.body.contains("<b>UTC"), "{what}: message not escaped in HTML: {}", answer.body);
    }
    assert!(!content_type(answer).is_empty(), "{what}: no content type");
}

#[tokio::test]
async fn every_mode_method_accept_and_path_gets_a_maintenance_answer() {
    let mut checked = 0;
    for mode in ["html", "503", "json", "auto", "compat"] {
        let router = router(&[("MAINTENANCE_MODE", mode), ("MAINTENANCE_MESSAGE", MESSAGE)]);
        for method in METHODS {
            for accept in ACCEPTS {
                for path in PATHS {
                    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
                    let answer = send(&router, method, path, &headers).await;
                    let what = format!("{mode} {method} {path} accept={accept:?}");
                    assert_common(&answer, &what);
                    if method == "HEAD" {
                        assert_eq!(answer.body, "", "{what}: HEAD has no body");
                    }
                    check_mode(mode, method, accept, path, &answer, &what);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 5 * 7 * 4 * 7);
}

fn check_mode(mode: &str, method: &str, accept: Option<&str>, path: &str, a: &Answer, what: &str) {
    let with_body = method != "HEAD";
    let is_json = |a: &Answer| {
        assert_eq!(content_type(a), "application/json", "{what}");
        assert_eq!(header(a, "statusheader"), Some("Status: maintenance window"), "{what}");
        if with_body {
            let v: serde_json::Value = serde_json::from_str(&a.body).expect("json body");
            assert_eq!(v, serde_json::json!({"response": MESSAGE, "status": 503, "type": "Exception"}), "{what}");
        }
    };
    let is_page = |a: &Answer| {
        assert_eq!(content_type(a), "text/html; charset=utf-8", "{what}");
        assert_eq!(header(a, "statusheader"), None, "{what}");
        if with_body {
            assert!(a.body.starts_with("<!DOCTYPE html>"), "{what}");
            assert!(a.body.contains("Back at 18:00 &#60;b&#62;UTC&#60;/b&#62;"), "{what}");
        }
    };
    match mode {
        "html" => {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
            is_page(a);
        }
        "503" => {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert_eq!(content_type(a), "text/plain; charset=utf-8", "{what}");
            if with_body {
                assert_eq!(a.body, format!("{MESSAGE}\n"), "{what}");
            }
        }
        "json" => {
            assert_eq!(a.status, StatusCode::OK, "{what}");
            is_json(a);
        }
        "auto" => {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
            assert_eq!(header(a, "vary").map(|v| v.contains("accept")), Some(true), "{what}");
            if accept == Some(BROWSER) { is_page(a) } else { is_json(a) }
        }
        "compat" => check_compat(method, path, a, what, is_json),
        other => panic!("unknown mode {other}"),
    }
}

fn check_compat(method: &str, path: &str, a: &Answer, what: &str, is_json: impl Fn(&Answer)) {
    let escaped = "Back at 18:00 &lt;b&gt;UTC&lt;/b&gt;";
    if method == "OPTIONS" {
        assert_eq!(a.status, StatusCode::OK, "{what}");
        assert!(header(a, "allow").is_some_and(|v| v.contains("POST")), "{what}");
        return;
    }
    let body = |expected: &str| {
        if method != "HEAD" {
            assert_eq!(a.body, expected, "{what}");
        }
    };
    match path {
        "/" => {
            assert_eq!(a.status, StatusCode::OK, "{what}");
            body(&format!("INDEX: {escaped}"));
        }
        "/503" => {
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{what}");
            body(&format!("<h1>503 {escaped}</h1>"));
        }
        "/json" => {
            assert_eq!(a.status, StatusCode::OK, "{what}");
            is_json(a);
        }
        _ => {
            assert_eq!(a.status, StatusCode::OK, "{what}");
            let shown = match path {
                "/%3Cscript%3Ealert(1)%3C/script%3E" => "/&lt;script&gt;alert(1)&lt;/script&gt;",
                // The query string is not echoed, as in the reference.
                "/x?q=%3Cscript%3E" => "/x",
                p => p,
            };
            body(&format!("FALLBACK trying to reach {shown}: {escaped}"));
        }
    }
}

#[tokio::test]
async fn status_override_applies_to_every_answer_of_the_mode() {
    let json = router(&[("MAINTENANCE_MODE", "json"), ("MAINTENANCE_STATUS", "503")]);
    assert_eq!(send(&json, "POST", "/api/orders", &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let html = router(&[("MAINTENANCE_MODE", "html"), ("MAINTENANCE_STATUS", "200")]);
    assert_eq!(send(&html, "GET", "/", &[]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn custom_status_header_value_is_sent() {
    let router = router(&[("MAINTENANCE_MODE", "json"), ("MAINTENANCE_STATUS_HEADER", "Status: db migration")]);
    let answer = send(&router, "GET", "/", &[]).await;
    assert_eq!(header(&answer, "StatusHeader"), Some("Status: db migration"));
}

#[tokio::test]
async fn retry_after_is_sent_when_configured_and_not_otherwise() {
    let router_with = router(&[("MAINTENANCE_RETRY_AFTER", "600")]);
    assert_eq!(header(&send(&router_with, "GET", "/", &[]).await, "retry-after"), Some("600"));
    let router_without = router(&[]);
    assert_eq!(header(&send(&router_without, "GET", "/", &[]).await, "retry-after"), None);

    let far = "2999-01-01T00:00:00Z";
    let router_until = router(&[("MAINTENANCE_UNTIL", far)]);
    let answer = send(&router_until, "GET", "/", &[]).await;
    let seconds: u64 = header(&answer, "retry-after").expect("retry-after").parse().expect("seconds");
    assert!(seconds > 365 * 24 * 3600, "{seconds}");
    assert!(answer.body.contains("1 January 2999, 00:00 UTC"));
}

#[tokio::test]
async fn health_path_answers_200_for_any_method() {
    let default = router(&[("MAINTENANCE_MODE", "json")]);
    for method in METHODS {
        let answer = send(&default, method, "/__maintenance/health", &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{method}");
        assert_eq!(header(&answer, "cache-control"), Some("no-store"));
    }
    let own = router(&[("MAINTENANCE_HEALTH_PATH", "/healthz")]);
    assert_eq!(send(&own, "GET", "/healthz", &[]).await.status, StatusCode::OK);
    assert_eq!(send(&own, "GET", "/__maintenance/health", &[]).await.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn cors_preflight_is_answered_for_any_path() {
    let router = router(&[("MAINTENANCE_MODE", "json")]);
    let answer = send(
        &router,
        "OPTIONS",
        "/api/orders",
        &[
            ("origin", "https://shop.example.com"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-token"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(header(&answer, "access-control-allow-headers"), Some("content-type, x-token"));
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));
    assert!(header(&answer, "access-control-allow-methods").is_some());
    assert!(header(&answer, "access-control-allow-headers").is_some());
    assert_eq!(header(&answer, "x-maintenance-app"), Some("cf-maintenance"));

    let answer = send(&router, "GET", "/api/orders", &[("origin", "https://shop.example.com")]).await;
    let exposed = header(&answer, "access-control-expose-headers").unwrap_or("").to_ascii_lowercase();
    assert!(exposed.contains("statusheader") && exposed.contains("retry-after"), "{exposed}");
}

#[tokio::test]
async fn rules_choose_the_answer_by_host_and_path() {
    let rules = r#"{"rules": [
        {"host": "shop.example.com", "mode": "html", "title": "Shop closed"},
        {"host": "shop.example.com", "path": "/api", "mode": "json", "message": "Shop API down", "retry_after": 120},
        {"host": "*.internal.example.com", "mode": "503", "message": "Internal down"}
    ]}"#;
    let router = router(&[("MAINTENANCE_MODE", "auto"), ("MAINTENANCE_CONFIG", rules)]);

    let page = send(&router, "GET", "/cart", &[("host", "Shop.Example.com:443")]).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.body.contains("<title>Shop closed</title>"));

    let api = send(&router, "POST", "/api/v1/orders", &[("host", "shop.example.com")]).await;
    assert_eq!(api.status, StatusCode::OK);
    assert_eq!(header(&api, "retry-after"), Some("120"));
    assert!(api.body.contains("Shop API down"));

    let not_api = send(&router, "GET", "/apiary", &[("host", "shop.example.com")]).await;
    assert!(not_api.body.contains("Shop closed"));

    let internal = send(&router, "GET", "/", &[("host", "a.b.internal.example.com")]).await;
    assert_eq!(internal.body, "Internal down\n");

    let other = send(&router, "GET", "/", &[("host", "other.example.org")]).await;
    assert_eq!(content_type(&other), "application/json", "unmatched hosts get the env default (auto, no Accept)");
}

#[tokio::test]
async fn unset_message_gets_the_default_not_an_error() {
    let router = router(&[("MAINTENANCE_MODE", "compat")]);
    let answer = send(&router, "GET", "/", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.starts_with("INDEX: We are carrying out scheduled maintenance"));
}

#[tokio::test]
async fn hostile_host_and_accept_are_never_echoed() {
    let router = router(&[("MAINTENANCE_MODE", "compat")]);
    for (name, value) in [("host", "<script>x</script>"), ("accept", "\"><script>x</script>")] {
        let answer = send(&router, "GET", "/y", &[(name, value)]).await;
        assert!(!answer.body.contains("<script>"));
        assert_eq!(answer.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn every_maintenance_answer_says_noindex_and_the_health_path_does_not() {
    let browser = [("accept", BROWSER)];
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case<'_>; 7] = [
        ("html", "/", &[]),
        ("503", "/", &[]),
        ("json", "/", &[]),
        ("auto", "/", &browser),
        ("auto", "/", &[]),
        ("compat", "/", &[]),
        ("compat", "/anything", &[]),
    ];
    for (mode, path, headers) in cases {
        let answer = send(&router(&[("MAINTENANCE_MODE", mode)]), "GET", path, headers).await;
        assert_eq!(header(&answer, "x-robots-tag"), Some("noindex"), "{mode} {path} {headers:?}");
        assert_eq!(header(&answer, "x-maintenance-version"), Some("0"), "{mode} {path}");
    }
    let health = send(&router(&[]), "GET", "/__maintenance/health", &[]).await;
    assert_eq!(header(&health, "x-robots-tag"), None);
}

#[tokio::test]
async fn an_until_in_the_past_is_not_promised_any_more() {
    let past = [("MAINTENANCE_UNTIL", "2020-01-01T18:00:00Z"), ("MAINTENANCE_RETRY_AFTER", "120")];
    let page = send(&router(&past), "GET", "/", &[]).await;
    assert!(!page.body.contains("Expected back"), "{}", page.body);
    assert!(page.body.contains("This is taking longer than planned."), "{}", page.body);
    assert_eq!(header(&page, "retry-after"), Some("120"), "Retry-After as before");
    let text = send(&router(&[past[0], past[1], ("MAINTENANCE_MODE", "503")]), "GET", "/", &[]).await;
    assert!(!text.body.contains("Expected back"), "{}", text.body);
    assert!(text.body.ends_with("This is taking longer than planned.\n"), "{}", text.body);
    let json = send(&router(&[past[0], ("MAINTENANCE_MODE", "json")]), "GET", "/", &[]).await;
    assert!(!json.body.contains("Expected back"), "{}", json.body);
}

#[tokio::test]
async fn the_page_switches_to_late_when_until_passes_without_a_restart() {
    // Two seconds ahead, rounded up to a whole second (RFC 3339 with seconds).
    let until = time::OffsetDateTime::now_utc().replace_nanosecond(0).expect("time") + time::Duration::seconds(2);
    let until = until.format(&time::format_description::well_known::Rfc3339).expect("format");
    let service = router(&[("MAINTENANCE_UNTIL", &until), ("MAINTENANCE_MODE", "503")]);
    let before = send(&service, "GET", "/", &[]).await;
    assert!(before.body.contains("Expected back by"), "{}", before.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let answer = send(&service, "GET", "/", &[]).await;
        if answer.body.contains("taking longer than planned") {
            assert!(!answer.body.contains("Expected back"), "{}", answer.body);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still promising {until}: {}", answer.body);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_page_shows_the_end_in_the_visitors_time_zone_by_script_and_in_utc_without() {
    let answer = send(&router(&[("MAINTENANCE_UNTIL", "2999-01-01T18:00:00Z")]), "GET", "/", &[]).await;
    assert!(
        answer.body.contains("<time datetime=\"2999-01-01T18:00:00Z\">1 January 2999, 18:00 UTC</time>"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("<script>") && answer.body.contains("toLocaleString"), "{}", answer.body);
    // An inline script runs only where no Content-Security-Policy forbids it.
    assert_eq!(header(&answer, "content-security-policy"), None);
}
