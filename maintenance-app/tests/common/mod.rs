//! Starts the real `maintenance-app` binary on a free loopback port and talks raw HTTP to it.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// How long the server may take to say it listens.
const STARTUP: Duration = Duration::from_secs(10);

/// A running server; killed on drop if still running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: mpsc::Receiver<String>,
    startup: String,
    before: Vec<String>,
}

impl Server {
    /// Starts the binary with `vars` on top of a clean environment and `PORT=0`.
    pub fn start(vars: &[(&str, &str)]) -> Server {
        let mut child =
            command(vars).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn maintenance-app");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + STARTUP;
        let mut before = Vec::new();
        let (port, startup) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = log.recv_timeout(left).expect("maintenance-app did not log that it listens");
            if let Some(port) = listening_port(&line) {
                break (port, line);
            }
            before.push(line);
        };
        Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log, startup, before }
    }

    /// The log line that announced the listening address.
    pub fn startup_line(&self) -> &str {
        &self.startup
    }

    /// The log lines before [`Server::startup_line`] (start-up warnings).
    pub fn before_startup(&self) -> &[String] {
        &self.before
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as Cloud Foundry does before stopping an instance.
    pub fn terminate(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status().expect("kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Every log line still to come, until the process closes its output (at most `limit`).
    pub fn rest_of_log(&self, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        while let Ok(line) = self.log.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            lines.push(line);
        }
        lines
    }

    /// Log lines printed so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        stream
    }

    /// One request on a fresh connection; returns the raw response.
    pub fn request(&self, raw: &str) -> Raw {
        let mut stream = self.connect();
        stream.write_all(raw.as_bytes()).expect("write");
        read_response(&mut stream)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// The binary with a clean environment plus `vars`.
pub fn command(vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_maintenance-app"));
    cmd.env_clear().env("PORT", "0").env("LOG_FORMAT", "text").env("RUST_LOG", "info").env("NO_COLOR", "1");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn listening_port(line: &str) -> Option<u16> {
    // `addr=[::]:1234` in the text format, `"addr":"[::]:1234"` in JSON.
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .or_else(|| line.split("\"addr\":\"").nth(1)?.split('"').next())?;
    addr.rsplit_once(':')?.1.parse().ok()
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    /// Header lines as sent, names in their original case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    /// A header by name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response: head, then `Content-Length` bytes of body (none for HEAD or 1xx/204/304).
pub fn read_response(stream: &mut TcpStream) -> Raw {
    read_response_to(stream, false)
}

/// As [`read_response`], for a HEAD request (a length but no body).
pub fn read_head_response(stream: &mut TcpStream) -> Raw {
    read_response_to(stream, true)
}

fn read_response_to(stream: &mut TcpStream, head: bool) -> Raw {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            Ok(_) => panic!("connection closed before the response head: {:?}", String::from_utf8_lossy(&buf)),
            Err(e) => panic!("reading response head: {e}; got {:?}", String::from_utf8_lossy(&buf)),
        }
    }
    let text = String::from_utf8(buf).expect("ascii head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_owned(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("content-length"));
    let mut body = vec![0u8; if head || status == 204 || status == 304 || status < 200 { 0 } else { length }];
    stream.read_exact(&mut body).expect("body");
    Raw { status, headers, body }
}
