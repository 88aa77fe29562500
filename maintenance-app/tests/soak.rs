//! Soak: a minute of mixed load (keep-alive and new connections, every method), then SIGTERM
//! with requests in flight. Memory must not creep, and the drain must finish them and exit 0.
//! `SOAK_SECONDS` shortens or lengthens the load phase (default 60).

mod common;

use std::{
    io::Write,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

use std::net::{SocketAddr, TcpStream};

use common::{Server, read_head_response, read_response, rss_kib};

/// Most RSS may grow between the end of warm-up and the end of the load.
const RSS_GROWTH_LIMIT_KIB: u64 = 2 * 1024;
/// Upper bound on requests, whatever the machine's speed.
const MAX_REQUESTS: u64 = 5_000_000;
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fn soak_duration() -> Duration {
    let secs = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// One client loop; `keep_alive` false opens a connection per request.
fn client(addr: SocketAddr, id: usize, keep_alive: bool, stop: &AtomicBool, done: &AtomicU64, failures: &AtomicU64) {
    let mut stream = None;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) && done.load(Ordering::Relaxed) < MAX_REQUESTS {
        let method = METHODS[(id + n) % METHODS.len()];
        n += 1;
        let conn = stream.get_or_insert_with(|| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
            s
        });
        let close = if keep_alive { "" } else { "Connection: close\r\n" };
        let body = if method == "POST" || method == "PUT" { "Content-Length: 5\r\n\r\nhello" } else { "\r\n" };
        let request = format!("{method} /soak/{n} HTTP/1.1\r\nHost: soak{id}.example\r\n{close}{body}");
        if conn.write_all(request.as_bytes()).is_err() {
            failures.fetch_add(1, Ordering::Relaxed);
            stream = None;
            continue;
        }
        let answer = if method == "HEAD" { read_head_response(conn) } else { read_response(conn) };
        if answer.header("x-maintenance-app") == Some("cf-maintenance") {
            done.fetch_add(1, Ordering::Relaxed);
        } else {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        // An unread request body makes the server close the connection after answering.
        if !keep_alive || body.len() > 2 {
            stream = None;
        }
    }
}

#[test]
fn a_minute_of_mixed_load_then_sigterm_drains_and_exits_0() {
    let mut server = Server::start(&[("MAINTENANCE_STATS_INTERVAL", "5")]);
    let addr = server.addr;
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let failures = AtomicU64::new(0);
    let warmup = Duration::from_secs(5).min(soak_duration() / 4);
    let pid = server.pid();
    let (rss_warm, rss_end) = thread::scope(|scope| {
        for id in 0..6 {
            let (stop, done, failures) = (&stop, &done, &failures);
            scope.spawn(move || client(addr, id, id % 2 == 0, stop, done, failures));
        }
        let started = Instant::now();
        thread::sleep(warmup);
        let rss_warm = rss_kib(pid);
        while started.elapsed() < soak_duration() {
            thread::sleep(Duration::from_millis(200));
        }
        let rss_end = rss_kib(pid);
        stop.store(true, Ordering::Relaxed);
        (rss_warm, rss_end)
    });
    let total = done.load(Ordering::Relaxed);
    let failed = failures.load(Ordering::Relaxed);
    eprintln!(
        "soak: {total} requests answered, {failed} failures, RSS {rss_warm} KiB after warm-up, {rss_end} KiB at the end"
    );
    assert_eq!(failed, 0);
    assert!(total > 1000, "only {total} requests in {:?}", soak_duration());
    assert!(rss_end <= rss_warm + RSS_GROWTH_LIMIT_KIB, "RSS grew from {rss_warm} KiB to {rss_end} KiB");

    // Requests in flight at SIGTERM: half-sent heads, finished after the signal.
    let mut in_flight: Vec<_> = (0..20)
        .map(|i| {
            let mut s = server.connect();
            s.write_all(format!("GET /inflight/{i} HTTP/1.1\r\nHost: a\r\n").as_bytes()).expect("write");
            s
        })
        .collect();
    // Let the server see the first bytes of every one of them before the signal.
    thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    server.terminate();
    thread::sleep(Duration::from_millis(100));
    for s in &mut in_flight {
        s.write_all(b"\r\n").expect("finish request");
        assert_eq!(read_response(s).status, 503);
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("exit within 10 s of SIGTERM");
    assert_eq!(status.code(), Some(0));
    eprintln!("exit {:?} after SIGTERM", signalled.elapsed());
}
