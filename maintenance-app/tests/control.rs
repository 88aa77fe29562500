//! The control endpoint and per-app content against the real binary on loopback: signed changes
//! are served at once on the app's hosts only, every refusal the protocol promises happens, and
//! the secret never shows in the output.

mod common;

use std::{
    io::Write,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::{Raw, Server, command, read_response};
use maintenance_app::control::sign;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const SHOP: &str = "5a1e0000-aaaa-bbbb-cccc-000000000001";
const HELLO: &str = "5a1e0000-aaaa-bbbb-cccc-000000000002";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

fn control_path(app: &str) -> String {
    format!("/__maintenance/control/apps/{app}")
}

fn doc(app: &str, version: u64, host: &str, message: &str) -> String {
    serde_json::json!({"version": version, "app": app, "hosts": [host], "message": message}).to_string()
}

/// A control request as switchctl sends it, signed with `secret` at `timestamp`.
fn signed(method: &str, path: &str, body: &str, secret: &str, timestamp: u64) -> String {
    let signature = sign(secret.as_bytes(), method, path, &timestamp.to_string(), body.as_bytes());
    unsigned(
        method,
        path,
        body,
        &[("X-Maintenance-Timestamp", &timestamp.to_string()), ("X-Maintenance-Signature", &signature)],
    )
}

fn unsigned(method: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: maintenance.apps.example.com\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    raw
}

fn put(server: &Server, app: &str, body: &str) -> Raw {
    server.request(&signed("PUT", &control_path(app), body, SECRET, now()))
}

fn get(server: &Server, host: &str) -> Raw {
    server.request(&format!("GET /some/page HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

fn error_of(answer: &Raw) -> String {
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON error body");
    body["error"].as_str().expect("error field").to_owned()
}

fn assert_control_answer(answer: &Raw, status: u16, what: &str) {
    assert_eq!(answer.status, status, "{what}: {}", answer.text());
    assert_eq!(answer.header("x-maintenance-app"), Some("cf-maintenance"), "{what}");
    assert_eq!(answer.header("content-type"), Some("application/json"), "{what}");
    assert!(answer.header("x-maintenance-version").is_some(), "{what}");
    assert!(!answer.text().contains("scheduled maintenance"), "{what} fell through to a maintenance answer");
}

#[test]
fn without_a_secret_the_endpoint_is_disabled_for_every_method_and_path() {
    let server = Server::start(&[]);
    let body = doc(SHOP, 1, "shop.example.com", "nope");
    // Even a request signed with some key: there is no key to check it against.
    for raw in [
        signed("PUT", &control_path(SHOP), &body, SECRET, now()),
        unsigned("GET", "/__maintenance/control/apps/x", "", &[]),
        unsigned("POST", "/__maintenance/control/", "", &[]),
        unsigned("DELETE", "/__maintenance/control", "", &[]),
    ] {
        let answer = server.request(&raw);
        assert_control_answer(&answer, 403, &raw);
        assert_eq!(error_of(&answer), "control disabled: MAINTENANCE_CONTROL_SECRET is not set");
        assert_eq!(answer.header("x-maintenance-version"), Some("0"));
    }
    assert_eq!(get(&server, "shop.example.com").header("x-maintenance-version"), Some("0"));
}

#[test]
fn a_put_is_served_on_that_apps_hosts_only_and_a_delete_reverts_to_the_base() {
    let server = Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET), ("MAINTENANCE_MESSAGE", "Base text")]);
    let answer = put(&server, SHOP, &doc(SHOP, 1, "shop.example.com", "Shop back at 18:00"));
    assert_control_answer(&answer, 200, "put");
    let ok: serde_json::Value = serde_json::from_slice(&answer.body).expect("json");
    assert_eq!(ok, serde_json::json!({"app": SHOP, "version": 1}));
    assert_eq!(answer.header("x-maintenance-version"), Some("1"));
    assert_control_answer(&put(&server, HELLO, &doc(HELLO, 7, "hello.example.com", "Hello back soon")), 200, "hello");

    let shop = get(&server, "shop.example.com");
    assert_eq!(shop.status, 503);
    assert!(shop.text().contains("Shop back at 18:00"), "{}", shop.text());
    assert_eq!(shop.header("x-maintenance-version"), Some("1"));
    let hello = get(&server, "Hello.Example.com:443");
    assert!(hello.text().contains("Hello back soon"), "{}", hello.text());
    assert_eq!(hello.header("x-maintenance-version"), Some("7"));
    let other = get(&server, "other.example.com");
    assert!(other.text().contains("Base text"), "{}", other.text());
    assert_eq!(other.header("x-maintenance-version"), Some("0"));

    // A newer version replaces the text; a delete leaves the base, and the other app untouched.
    assert_control_answer(&put(&server, SHOP, &doc(SHOP, 2, "shop.example.com", "Back at 19:00")), 200, "put 2");
    assert!(get(&server, "shop.example.com").text().contains("Back at 19:00"));
    let delete = server.request(&signed("DELETE", &control_path(SHOP), r#"{"version":3}"#, SECRET, now()));
    assert_control_answer(&delete, 200, "delete");
    let shop = get(&server, "shop.example.com");
    assert!(shop.text().contains("Base text"), "{}", shop.text());
    assert_eq!(shop.header("x-maintenance-version"), Some("0"));
    assert_eq!(get(&server, "hello.example.com").header("x-maintenance-version"), Some("7"));
}

#[test]
fn a_replayed_request_is_refused_even_after_a_delete() {
    let server = Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET)]);
    let request = signed("PUT", &control_path(SHOP), &doc(SHOP, 1, "shop.example.com", "one"), SECRET, now());
    assert_control_answer(&server.request(&request), 200, "first");
    let replay = server.request(&request);
    assert_control_answer(&replay, 409, "replay");
    assert_eq!(replay.header("x-maintenance-version"), Some("1"));
    let delete = signed("DELETE", &control_path(SHOP), r#"{"version":2}"#, SECRET, now());
    assert_control_answer(&server.request(&delete), 200, "delete");
    assert_control_answer(&server.request(&delete), 409, "replayed delete");
    // The tombstone keeps the old put from bringing the content back.
    assert_control_answer(&server.request(&request), 409, "put replayed after the delete");
    assert_eq!(get(&server, "shop.example.com").header("x-maintenance-version"), Some("0"));
}

#[test]
fn wrong_missing_or_stale_signatures_are_refused() {
    let server = Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET)]);
    let path = control_path(SHOP);
    let body = doc(SHOP, 1, "shop.example.com", "forged");
    let ts = now().to_string();
    let good = sign(SECRET.as_bytes(), "PUT", &path, &ts, body.as_bytes());
    let other_key = sign(b"another-secret-of-at-least-32-chars!!", "PUT", &path, &ts, body.as_bytes());
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no headers", vec![]),
        ("no signature", vec![("X-Maintenance-Timestamp", &ts)]),
        ("no timestamp", vec![("X-Maintenance-Signature", &good)]),
        ("other key", vec![("X-Maintenance-Timestamp", &ts), ("X-Maintenance-Signature", &other_key)]),
        ("no v1=", vec![("X-Maintenance-Timestamp", &ts), ("X-Maintenance-Signature", &good[3..])]),
    ];
    for (what, headers) in &cases {
        assert_control_answer(&server.request(&unsigned("PUT", &path, &body, headers)), 401, what);
    }
    // Signed for another body, path or method: the signature covers each.
    let tampered = unsigned(
        "PUT",
        &path,
        &doc(SHOP, 1, "shop.example.com", "tampered"),
        &[("X-Maintenance-Timestamp", &ts), ("X-Maintenance-Signature", &good)],
    );
    assert_control_answer(&server.request(&tampered), 401, "tampered body");
    let elsewhere =
        unsigned("DELETE", &path, &body, &[("X-Maintenance-Timestamp", &ts), ("X-Maintenance-Signature", &good)]);
    assert_control_answer(&server.request(&elsewhere), 401, "other method");
    // 310, not 301: the server's clock may have ticked on since `now()` here.
    for skewed in [now() - 310, now() + 310] {
        let stale = server.request(&signed("PUT", &path, &body, SECRET, skewed));
        assert_control_answer(&stale, 401, "skewed timestamp");
        assert!(error_of(&stale).contains("clock skew"), "{}", error_of(&stale));
    }
    assert_eq!(get(&server, "shop.example.com").header("x-maintenance-version"), Some("0"), "nothing was applied");
}

#[test]
fn bad_requests_get_the_reason_and_change_nothing() {
    let server = Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET)]);
    let mismatch = put(&server, HELLO, &doc(SHOP, 1, "shop.example.com", "x"));
    assert_control_answer(&mismatch, 400, "path names another app");
    assert!(error_of(&mismatch).contains("the path names app"), "{}", error_of(&mismatch));
    for (body, reason) in [
        ("{not json", "not a valid content document"),
        (r#"{"version":1,"app":"5a1e0000-aaaa-bbbb-cccc-000000000001","hosts":["*.example.com"]}"#, "hosts"),
        (r#"{"version":1,"app":"5a1e0000-aaaa-bbbb-cccc-000000000001","hosts":["a.example"],"status":700}"#, "status"),
    ] {
        let answer = put(&server, SHOP, body);
        assert_control_answer(&answer, 400, body);
        assert!(error_of(&answer).contains(reason), "{body}: {}", error_of(&answer));
    }
    let bad_delete = server.request(&signed("DELETE", &control_path(SHOP), r#"{"v":1}"#, SECRET, now()));
    assert_control_answer(&bad_delete, 400, "delete without version");

    // Other methods and paths under the prefix: 405 and 404, never a maintenance answer.
    assert_control_answer(&server.request(&signed("GET", &control_path(SHOP), "", SECRET, now())), 405, "GET");
    let post = server.request(&unsigned("POST", &control_path(SHOP), "{}", &[]));
    assert_control_answer(&post, 405, "POST");
    assert_eq!(post.header("allow"), Some("PUT, DELETE"));
    for path in [
        "/__maintenance/control/",
        "/__maintenance/control/apps/",
        "/__maintenance/control/apps/a/b",
        "/__maintenance/control/x",
    ] {
        assert_control_answer(&server.request(&unsigned("PUT", path, "{}", &[])), 404, path);
    }
    assert_eq!(get(&server, "shop.example.com").header("x-maintenance-version"), Some("0"));
}

#[test]
fn a_body_over_16_kib_is_refused_without_being_read() {
    let server = Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET)]);
    let path = control_path(SHOP);
    // Declared too large: refused from the head alone, before any of it is sent.
    let mut stream = server.connect();
    write!(stream, "PUT {path} HTTP/1.1\r\nHost: m\r\nContent-Length: 1000000000\r\n\r\n").expect("write head");
    assert_control_answer(&read_response(&mut stream), 413, "declared length");
    // Chunked, so no length up front: refused once 16 KiB have been read.
    let big = "x".repeat(16 * 1024 + 1);
    let mut stream = server.connect();
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
        big.len()
    )
    .expect("write chunked");
    assert_control_answer(&read_response(&mut stream), 413, "chunked");
    // Exactly 16 KiB is read (and refused for what it says, not for its size).
    let padded = format!("{{\"version\":1,\"pad\":\"{}\"}}", "x".repeat(16 * 1024 - 22));
    assert_eq!(padded.len(), 16 * 1024);
    let answer = server.request(&signed("DELETE", &path, &padded, SECRET, now()));
    assert_control_answer(&answer, 400, "16 KiB");
}

#[test]
fn documents_in_the_environment_are_served_from_startup_and_bad_ones_are_skipped_with_a_warning() {
    let shop_var = format!("MAINTENANCE_APP_{}", SHOP.to_ascii_uppercase().replace('-', "_"));
    let hello_var = format!("MAINTENANCE_APP_{}", HELLO.to_ascii_uppercase().replace('-', "_"));
    let shop_doc = serde_json::json!({"version": 4, "app": SHOP, "hosts": ["shop.example.com/checkout"], "title": "Checkout closed", "mode": "503"}).to_string();
    let server = Server::start(&[
        ("MAINTENANCE_CONTROL_SECRET", SECRET),
        (&shop_var, &shop_doc),
        (&hello_var, r#"{"version": 1, "app": "#),
    ]);
    let checkout = server.request("GET /checkout/pay HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(checkout.header("x-maintenance-version"), Some("4"));
    assert_eq!(checkout.header("content-type"), Some("text/plain; charset=utf-8"), "the document's mode");
    let elsewhere = get(&server, "shop.example.com");
    assert_eq!(elsewhere.header("x-maintenance-version"), Some("0"), "outside the path prefix");
    // The version from the environment is held: a replay of an older change is refused.
    assert_control_answer(&put(&server, SHOP, &doc(SHOP, 4, "shop.example.com", "old")), 409, "older than env");
    assert!(server.startup_line().contains("apps=1"), "{}", server.startup_line());
    let warnings = wait_for_log(&server, &hello_var);
    assert!(warnings.contains("WARN") && warnings.contains("ignored"), "{warnings}");
}

/// The first log line that mentions `needle`, within 5 s.
fn wait_for_log(server: &Server, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = server.before_startup().to_vec();
    while Instant::now() < deadline {
        seen.extend(server.log_lines());
        if let Some(line) = seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no log line mentions {needle}: {seen:#?}");
}

#[test]
fn the_secret_never_shows_in_the_output() {
    // A short secret is a configuration error that must not quote it.
    let short = "short-secret-17ch";
    let output = command(&[("MAINTENANCE_CONTROL_SECRET", short)]).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MAINTENANCE_CONTROL_SECRET") && stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains(short) && !String::from_utf8_lossy(&output.stdout).contains(short), "{stderr}");

    // Debug logs of accepted and refused requests, text and JSON, say nothing of it either.
    for format in ["text", "json"] {
        let mut server =
            Server::start(&[("MAINTENANCE_CONTROL_SECRET", SECRET), ("RUST_LOG", "debug"), ("LOG_FORMAT", format)]);
        assert_control_answer(&put(&server, SHOP, &doc(SHOP, 1, "shop.example.com", "m")), 200, "put");
        assert_control_answer(&put(&server, SHOP, &doc(SHOP, 1, "shop.example.com", "m")), 409, "replay");
        let wrong = signed(
            "PUT",
            &control_path(SHOP),
            &doc(SHOP, 2, "shop.example.com", "m"),
            "wrong-key-wrong-key-wrong-key-wrong",
            now(),
        );
        assert_control_answer(&server.request(&wrong), 401, "wrong key");
        server.terminate();
        assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "exits on SIGTERM");
        let log = format!(
            "{}\n{}\n{}",
            server.before_startup().join("\n"),
            server.startup_line(),
            server.rest_of_log(Duration::from_secs(5)).join("\n")
        );
        assert!(log.contains("content set"), "{format}: the change is logged: {log}");
        assert!(!log.contains(SECRET) && !log.contains(&SECRET[..16]), "{format}: the secret is in the log: {log}");
    }
}
