//! The accept loop: HTTP/1.1 connections served by hyper with bounded headers, a deadline
//! against slowloris, and a graceful drain on shutdown.
//!
//! axum's own `serve` does not expose hyper's size limits, so connections are driven here with
//! `hyper::server::conn::http1` and [`MaintenanceService`] as service.
//!
//! Two things hyper and hyper-util offer are done here instead, because on a server whose answer
//! is ready at once they were a measurable share of each request: replacing them took the CPU
//! time per keep-alive request down by 3–4 % at 50 and at 1000 connections, and the instructions
//! per request (callgrind) by 14 %:
//! - hyper's header read timeout boxes a new timer for every request and registers it with
//!   tokio's timer wheel; [`Conn`] keeps one timer per connection instead (see [`Deadline`]);
//! - hyper-util's `GracefulShutdown` polls a watch channel every time a connection wakes; here a
//!   connection registers for the shutdown signal once and then checks a flag.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use hyper::server::conn::http1;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    net::{TcpListener, TcpStream},
    time::{Instant, Sleep},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    config::Config,
    service::{AppState, MaintenanceService},
};

/// Largest request head (request line plus headers) accepted; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serves `listener` until `shutdown` completes, then lets in-flight requests finish for at most
/// the configured shutdown timeout.
pub async fn serve(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> io::Result<()> {
    let state = Arc::new(AppState::new(&config));
    if !config.stats_interval.is_zero() {
        let stats = state.stats();
        let interval = config.stats_interval;
        tokio::spawn(async move { stats.report_every(interval).await });
    }
    let app = MaintenanceService::new(state);

    let mut http = http1::Builder::new();
    http.max_buf_size(MAX_HEADER_BYTES)
        // `Conn` enforces the header timeout (see the module docs); hyper's own would need a timer.
        .header_read_timeout(None)
        // The header count keeps hyper's default limit (100): setting it, even to the same value,
        // makes hyper initialise a header array of that size for every request (callgrind).
        // Clients that shut down their sending side after the request (`nc -q`, some proxies)
        // still get their answer.
        .half_close(true)
        .keep_alive(true);

    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                // TCP_NODELAY comes from the listener (see `bind`): one syscall less per connection.
                Ok((stream, _peer)) => {
                    connections.spawn(connection(stream, http.clone(), app.clone(), stop.clone(), config.header_timeout));
                }
                Err(e) => {
                    // Out of file descriptors or memory: pause instead of spinning, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    stop.cancel();
    connections.close();
    tokio::select! {
        () = connections.wait() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(config.shutdown_timeout) => {
            tracing::warn!("connections still open after {:?}; exiting", config.shutdown_timeout);
        }
    }
    Ok(())
}

/// One connection, from its first bytes to its close.
async fn connection(
    stream: TcpStream,
    http: http1::Builder,
    app: MaintenanceService,
    stop: CancellationToken,
    header_timeout: Duration,
) {
    let mut deadline = Deadline::new(header_timeout);
    // hyper allocates its 8 KiB buffers as soon as it polls a connection. Waiting for the first
    // bytes here first keeps a connection that never sends anything (scanners, pre-opened pools,
    // floods) down to a socket and a small task, and closes it after the header timeout all the
    // same, or at once on shutdown: it has no request in flight. What this read gets (usually
    // the whole request) is handed to hyper, so it costs no syscall of its own.
    let first = tokio::select! {
        biased;
        first = first_bytes(&stream) => match first {
            Some(first) => first,
            None => return,
        },
        () = deadline.timer.as_mut() => return,
        () = stop.cancelled() => return,
    };
    let io = Conn { first, at: 0, io: TokioIo::new(stream), deadline };
    // Boxed so that the task of a connection still waiting above stays small: hyper's connection
    // state is kilobytes and would otherwise be reserved inside every task from the start.
    let mut connection = Box::pin(http.serve_connection(io, TowerToHyperService::new(app)));
    let cancelled = stop.cancelled();
    tokio::pin!(cancelled);
    let mut registered = false;
    let mut closing = false;
    // Errors here are the client's (reset, timeout, malformed request): nothing to do.
    let _ = std::future::poll_fn(|cx| {
        if !closing {
            // Polled once, the signal keeps this task's waker and wakes it on shutdown; after
            // that a look at the flag is enough.
            if !registered {
                registered = true;
                let _ = cancelled.as_mut().poll(cx);
            }
            if stop.is_cancelled() {
                // Finishes the request in flight, if any, then closes; an idle connection closes now.
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
        connection.as_mut().poll(cx)
    })
    .await;
}

/// Binds a listening socket for [`serve`]: dual-stack `[::]:port` where the host has IPv6, else
/// `0.0.0.0:port`, with TCP_NODELAY set on the listener so that every accepted connection
/// inherits it (Linux copies it at accept). Nagle would otherwise hold back the tail of a page
/// larger than one segment until the client's delayed ACK, up to 40 ms.
pub fn bind(port: u16) -> io::Result<TcpListener> {
    let v6 = tokio::net::TcpSocket::new_v6()
        .and_then(|socket| listen(socket, SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port))));
    v6.or_else(|_| listen(tokio::net::TcpSocket::new_v4()?, SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port))))
}

fn listen(socket: tokio::net::TcpSocket, addr: SocketAddr) -> io::Result<TcpListener> {
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Pending connections the kernel queues while the server is busy (as nginx's default `backlog`
/// on Linux is 511 and tokio's is 1024, keep tokio's).
const LISTEN_BACKLOG: u32 = 1024;

/// Bytes read by one `read(2)` before hyper takes over: a whole request in all but rare cases.
const FIRST_READ: usize = 2048;

/// The first bytes a client sends, once it sends any; `None` when it closes or fails first.
async fn first_bytes(stream: &TcpStream) -> Option<Vec<u8>> {
    loop {
        // tokio reports a fresh socket readable before anything has arrived; the failed read
        // clears that, and the next wait is a real one.
        stream.readable().await.ok()?;
        let mut buf = [0u8; FIRST_READ];
        match stream.try_read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => return Some(buf[..n].to_vec()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// A connection as hyper sees it: first the bytes already read, then the socket, and a deadline.
///
/// hyper shuts the write side down before dropping a connection it closes; closing the socket
/// sends the same FIN, so the separate `shutdown(2)` is skipped (one syscall less per
/// connection with `Connection: close`).
struct Conn<T> {
    first: Vec<u8>,
    at: usize,
    io: T,
    deadline: Deadline,
}

/// The header timeout, kept with one timer per connection: a connection must answer (that is,
/// finish reading a request head, as every request is answered at once) within the timeout of
/// being accepted or of its last answer written. That covers a slow head (slowloris), an idle
/// keep-alive connection, and a client that stops reading answers.
///
/// Writes only note the time; the timer is moved on only when it fires, so a busy keep-alive
/// connection touches tokio's timer wheel once per timeout rather than once per request.
struct Deadline {
    timer: Pin<Box<Sleep>>,
    timeout: Duration,
    last_answer: Instant,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        let now = Instant::now();
        Deadline { timer: Box::pin(tokio::time::sleep_until(now + timeout)), timeout, last_answer: now }
    }

    /// Whether the connection has gone a whole timeout without answering; when not, the timer is
    /// armed (with this task's waker) for the moment it would have.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let next = self.last_answer + self.timeout;
            if next <= self.timer.deadline() {
                return true;
            }
            self.timer.as_mut().reset(next);
        }
    }

    /// The error that closes an expired connection; hyper drops it without an answer.
    fn error() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "no complete request within the header timeout")
    }

    /// Passes a write's outcome on: a write that went through moves the deadline, one that
    /// waits past it becomes the error that closes the connection.
    fn wrote(&mut self, written: Poll<io::Result<usize>>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) if n > 0 => self.last_answer = Instant::now(),
            Poll::Pending if self.expired(cx) => return Poll::Ready(Err(Deadline::error())),
            _ => {}
        }
        written
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Conn<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.at);
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            if this.at == this.first.len() {
                this.first = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.deadline.expired(cx) => Poll::Ready(Err(Deadline::error())),
            read => read,
        }
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Conn<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.io).poll_write(cx, buf);
        this.deadline.wrote(written, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.deadline.wrote(written, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Completes on SIGTERM (what Cloud Foundry sends) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_inherit_nodelay_from_the_listener() {
        let listener = bind(0).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let client = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        assert!(accepted.nodelay().expect("getsockopt"), "TCP_NODELAY was not inherited");
        drop(client);
    }
}
