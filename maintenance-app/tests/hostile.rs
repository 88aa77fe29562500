//! Hostile input against the real binary on loopback: the process stays up, every well-formed
//! request still gets a maintenance answer, nothing is echoed unescaped, memory stays bounded.
//! Every loop here is bounded in count and in time.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::{Server, read_response};

/// RSS bound for the suite's servers, half the 32 MiB the manifest gives the app. Measured: about
/// 3.5 MiB idle and 10.5 MiB with 5000 idle connections (glibc build).
const RSS_LIMIT_KIB: u64 = 16 * 1024;

/// Sends raw bytes, then reads whatever comes back until the server closes or 3 s pass.
fn exchange(server: &Server, bytes: &[u8]) -> String {
    let mut stream = server.connect();
    stream.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// The server still answers a normal request with a maintenance answer.
fn assert_alive(server: &Server) {
    let answer = server.request("GET / HTTP/1.1\r\nHost: alive.example\r\n\r\n");
    assert_eq!(answer.header("x-maintenance-app"), Some("cf-maintenance"));
}

fn status_of(reply: &str) -> Option<u16> {
    reply.strip_prefix("HTTP/1.1 ").and_then(|r| r.get(..3)).and_then(|s| s.parse().ok())
}

#[test]
fn malformed_requests_get_a_4xx_or_a_close_and_the_server_stays_up() {
    let server = Server::start(&[]);
    let cases: Vec<Vec<u8>> = vec![
        (0..=255u8).cycle().take(4096).collect(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello on the plain port
        b"GE T / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
        b"GET\r\n\r\n".to_vec(),
        b"GET /\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost a\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(),
        b"\r\n\r\n\r\n\r\n".to_vec(),
    ];
    for bytes in &cases {
        let reply = exchange(&server, bytes);
        if let Some(status) = status_of(&reply) {
            assert!((400..500).contains(&status) || reply.contains("x-maintenance-app"), "{bytes:?} → {reply}");
        }
        assert_alive(&server);
    }
}

#[test]
fn odd_but_valid_requests_get_maintenance_answers() {
    let server = Server::start(&[]);
    let cases = [
        "FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
        "PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /%zz%ff%00/../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /../../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET http://absolute.example/x HTTP/1.1\r\nHost: other\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nAccept: \u{ff}\u{fe}\r\n\r\n",
    ];
    for raw in cases {
        let mut stream = server.connect();
        stream.write_all(raw.as_bytes()).expect("write");
        let answer = read_response(&mut stream);
        assert_eq!(answer.status, 503, "{raw:?}");
        assert_eq!(answer.header("x-maintenance-app"), Some("cf-maintenance"), "{raw:?}");
    }
    let long_host = "h".repeat(5000);
    let answer = server.request(&format!("GET / HTTP/1.1\r\nHost: {long_host}\r\n\r\n"));
    assert_eq!(answer.status, 503);
}

#[test]
fn markup_in_path_query_host_and_accept_is_never_echoed_in_any_mode() {
    let evil = "<script>alert('x')</script>\"'";
    let encoded = "%3Cscript%3Ealert('x')%3C/script%3E%22'";
    for mode in ["html", "503", "json", "auto", "compat"] {
        let server = Server::start(&[("MAINTENANCE_MODE", mode)]);
        let requests = [
            format!("GET /{encoded} HTTP/1.1\r\nHost: a\r\n\r\n"),
            format!("GET /x?q={encoded} HTTP/1.1\r\nHost: a\r\n\r\n"),
            format!("GET /x HTTP/1.1\r\nHost: {evil}\r\n\r\n"),
            format!("GET /x HTTP/1.1\r\nHost: a\r\nAccept: text/html, {evil}\r\n\r\n"),
            format!("GET /x HTTP/1.1\r\nHost: a\r\nAccept: {evil}\r\n\r\n"),
        ];
        for raw in &requests {
            let reply = exchange(&server, raw.as_bytes());
            assert!(!reply.contains("<script>"), "{mode}: {raw:?} echoed markup: {reply}");
            assert!(reply.contains("x-maintenance-app") || status_of(&reply) == Some(400), "{mode}: {raw:?} → {reply}");
        }
    }
}

#[test]
fn huge_and_numerous_headers_are_refused_without_harm() {
    let server = Server::start(&[]);
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "b".repeat(100 * 1024));
    let reply = exchange(&server, big.as_bytes());
    assert!(reply.is_empty() || status_of(&reply) == Some(431), "{reply}");
    let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..10_000 {
        many.push_str(&format!("X-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let reply = exchange(&server, many.as_bytes());
    assert!(reply.is_empty() || status_of(&reply) == Some(431), "{reply}");
    assert_alive(&server);
    assert!(server.rss_kib() < RSS_LIMIT_KIB);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[("MAINTENANCE_MODE", "compat")]);
    let mut stream = server.connect();
    let batch =
        "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /503 HTTP/1.1\r\nHost: a\r\n\r\nGET /json HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(batch.repeat(10).as_bytes()).expect("write");
    for _ in 0..10 {
        assert_eq!(read_response(&mut stream).status, 200);
        assert_eq!(read_response(&mut stream).status, 503);
        let json = read_response(&mut stream);
        assert_eq!(json.header("statusheader"), Some("Status: maintenance window"));
    }
}

#[test]
fn slowloris_connections_are_closed_while_normal_clients_are_served() {
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "2")]);
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-A: ").expect("write");
            s
        })
        .collect();
    let started = Instant::now();
    // Keep dribbling a byte now and then, as slowloris does, while normal clients are served.
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for s in slow.iter_mut().take(20) {
            let _ = s.write_all(b"a");
        }
        assert_eq!(server.request("GET / HTTP/1.1\r\nHost: normal\r\n\r\n").status, 503);
        served += 1;
    }
    assert!(served > 10, "only {served} normal requests served");
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        let rest = String::from_utf8_lossy(&rest);
        assert!(rest.is_empty() || rest.starts_with("HTTP/1.1 408"), "{rest}");
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "slow connections lingered for {waited:?}");
    assert_alive(&server);
}

#[test]
fn five_thousand_idle_connections_do_not_stop_service_and_memory_stays_bounded() {
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "30")]);
    let idle_before = server.rss_kib();
    let mut idle = Vec::with_capacity(5000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while idle.len() < 5000 && Instant::now() < deadline {
        match TcpStream::connect(server.addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} refused: {e}", idle.len()),
        }
    }
    assert_eq!(idle.len(), 5000);
    for i in 0..50 {
        let answer = server.request(&format!("GET /{i} HTTP/1.1\r\nHost: busy\r\n\r\n"));
        assert_eq!(answer.status, 503);
    }
    let rss = server.rss_kib();
    assert!(rss < RSS_LIMIT_KIB, "RSS {rss} KiB with 5000 idle connections (was {idle_before} KiB idle)");
    eprintln!("RSS idle {idle_before} KiB, with 5000 idle connections {rss} KiB");
}

#[test]
fn http_1_0_without_host_is_answered_and_closed() {
    let server = Server::start(&[]);
    let reply = exchange(&server, b"GET / HTTP/1.0\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.0 503") || reply.starts_with("HTTP/1.1 503"), "{reply}");
}
