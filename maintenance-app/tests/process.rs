//! The real binary on a loopback port: startup errors, the wire format, limits and shutdown.

mod common;

use std::{
    io::{Read, Write},
    time::{Duration, Instant},
};

use common::{Server, command, read_head_response, read_response};

#[test]
fn bad_configuration_exits_2_with_one_clear_line() {
    let cases = [
        (
            "MAINTENANCE_MODE",
            "xml",
            "MAINTENANCE_MODE: \"xml\" is not a mode; use one of html, 503, json, auto, compat",
        ),
        ("MAINTENANCE_UNTIL", "friday", "MAINTENANCE_UNTIL: \"friday\" is not an RFC 3339 time"),
        ("MAINTENANCE_CONFIG", "{\"rules\": [", "MAINTENANCE_CONFIG: inline JSON is not valid"),
        ("MAINTENANCE_CONFIG", "/nonexistent/rules.toml", "MAINTENANCE_CONFIG: cannot read"),
        ("PORT", "http", "PORT: \"http\" is not a TCP port"),
    ];
    for (name, value, expected) in cases {
        let out = command(&[(name, value)]).output().expect("run maintenance-app");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}={value}: one line expected: {stderr}");
        assert!(stderr.contains(expected), "{name}={value}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn starts_and_logs_its_effective_configuration() {
    let server = Server::start(&[("MAINTENANCE_MODE", "json"), ("MAINTENANCE_RETRY_AFTER", "300")]);
    let answer = server.request("GET / HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(answer.status, 200);
    // The listening line was consumed by `start`; the effective configuration is on it.
    let line = server.startup_line();
    assert!(line.contains("mode=json status=200 health_path=/__maintenance/health rules=0 retry_after=300s"), "{line}");
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let server = Server::start(&[]);
    let get = server.request("GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let mut stream = server.connect();
    stream
        .write_all(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .expect("write");
    let head = read_head_response(&mut stream);
    // A body after the HEAD answer would show up as garbage in front of the pipelined GET's answer.
    let after = read_response(&mut stream);
    assert_eq!(head.status, 503);
    assert_eq!(after.status, 503);
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(after.body, get.body);
}

#[test]
fn json_answer_carries_status_header_on_the_wire() {
    let server = Server::start(&[("MAINTENANCE_MODE", "json")]);
    let answer = server.request("POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("StatusHeader"), Some("Status: maintenance window"));
    assert_eq!(answer.header("x-maintenance-app"), Some("cf-maintenance"));
    assert_eq!(
        answer.text(),
        "{\"response\":\"We are carrying out scheduled maintenance and will be back shortly. Thank you for your patience.\",\"status\":503,\"type\":\"Exception\"}\n"
    );
}

#[test]
fn health_path_answers_200() {
    let server = Server::start(&[("MAINTENANCE_MODE", "html")]);
    let answer = server.request("GET /__maintenance/health HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n\r\n");
    assert_eq!(answer.status, 200);
}

#[test]
fn a_huge_upload_is_answered_at_once_without_reading_it() {
    let server = Server::start(&[]);
    let before = server.rss_kib();
    let mut stream = server.connect();
    stream.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\n\r\n").expect("write head");
    // Some of the body, then wait for the answer without sending the rest.
    let chunk = vec![b'x'; 64 * 1024];
    let started = Instant::now();
    for _ in 0..16 {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let answer = read_response(&mut stream);
    assert_eq!(answer.status, 503);
    assert!(started.elapsed() < Duration::from_secs(2), "answer took {:?}", started.elapsed());
    let after = server.rss_kib();
    assert!(after < before + 4 * 1024, "RSS grew from {before} KiB to {after} KiB");
}

#[test]
fn expect_100_continue_gets_the_answer_without_the_body() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\n\r\n")
        .expect("write");
    let answer = read_response(&mut stream);
    assert_eq!(answer.status, 503, "the final answer, not 100 Continue");
}

#[test]
fn oversized_headers_are_refused_and_the_server_stays_up() {
    let server = Server::start(&[]);
    let big = "a".repeat(64 * 1024);
    let mut stream = server.connect();
    let _ = stream.write_all(format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes());
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.is_empty() || reply.starts_with("HTTP/1.1 431"), "{reply}");
    assert_eq!(server.request("GET / HTTP/1.1\r\nHost: a\r\n\r\n").status, 503);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off_while_others_are_served() {
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "1")]);
    let mut slow = server.connect();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n").expect("write");
    let started = Instant::now();
    assert_eq!(server.request("GET / HTTP/1.1\r\nHost: b\r\n\r\n").status, 503);
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(5), "closed after {waited:?}");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.is_empty() || rest.starts_with("HTTP/1.1 408"), "{rest}");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    let mut server = Server::start(&[]);
    let mut stream = server.connect();
    // Half a request: the client is still sending when the platform stops the instance.
    stream.write_all(b"GET /checkout HTTP/1.1\r\nHost: shop.example.com\r\n").expect("write");
    std::thread::sleep(Duration::from_millis(100));
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.wait_exit(Duration::from_millis(10)).is_none(), "exited with a request in flight");
    stream.write_all(b"Accept: text/html\r\n\r\n").expect("finish the request");
    let answer = read_response(&mut stream);
    assert_eq!(answer.status, 503);
    assert!(answer.text().contains("<!DOCTYPE html>"));
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits after the drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_with_idle_keep_alive_connections_exits_promptly() {
    let mut server = Server::start(&[]);
    let mut idle = server.connect();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("write");
    assert_eq!(read_response(&mut idle).status, 503);
    let started = Instant::now();
    server.terminate();
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn an_idle_keep_alive_connection_is_closed_a_header_timeout_after_its_last_answer() {
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "1")]);
    let mut idle = server.connect();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("write");
    assert_eq!(read_response(&mut idle).status, 503);
    let answered = Instant::now();
    idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    let waited = answered.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "closed after {waited:?}");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

#[test]
fn a_keep_alive_connection_that_keeps_asking_outlives_the_header_timeout() {
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "1")]);
    let mut busy = server.connect();
    let started = Instant::now();
    let mut answers = 0;
    // Every gap is well inside the timeout, the whole exchange well beyond it.
    while started.elapsed() < Duration::from_millis(2500) {
        busy.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").expect("the connection is still open");
        assert_eq!(read_response(&mut busy).status, 503);
        answers += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(answers >= 7, "{answers} answers");
}

#[test]
fn a_client_that_stops_reading_its_answers_is_cut_off_after_the_header_timeout() {
    const REQUESTS: usize = 10_000;
    let server = Server::start(&[("MAINTENANCE_HEADER_TIMEOUT", "1")]);
    let stream = server.connect();
    // 10,000 pipelined requests ask for about 20 MB of answers: far more than the socket buffers
    // hold, so the server's writes stall while this client does not read.
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for _ in 0..REQUESTS {
            if writer.write_all(request).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(2500));
    // Cut off, the connection yields what was already buffered and ends; still open, it would
    // deliver every answer.
    let mut reader = stream;
    reader.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut received = Vec::new();
    let _ = reader.read_to_end(&mut received);
    let answers = received.windows(12).filter(|w| w == b"HTTP/1.1 503").count();
    assert!(answers < REQUESTS, "all {answers} answers arrived: the stalled connection was never closed");
    sender.join().expect("sender");
    assert_eq!(server.request("GET / HTTP/1.1\r\nHost: b\r\n\r\n").status, 503);
}

#[test]
fn the_text_log_has_no_colour_codes_when_it_goes_to_a_pipe() {
    use std::{
        io::{BufRead, BufReader},
        process::Stdio,
    };
    // As an operator runs it locally with its log redirected to a file: no NO_COLOR set.
    let mut child = command(&[])
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn maintenance-app");
    let mut line = String::new();
    let read = BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    read.expect("read the log");
    assert!(!line.is_empty(), "maintenance-app logged nothing");
    assert!(!line.contains('\u{1b}'), "ANSI escape in a log written to a pipe: {line:?}");
}
