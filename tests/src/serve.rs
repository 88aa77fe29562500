//! The accept loop shared by the doubles: HTTP/1.1 with hyper, a handler per request, the fault
//! layer in front (latency, pauses, failures, rate limit, request log), and shutdown when the
//! returned [`Server`] is dropped. A dropped connection is a service error: hyper then closes the
//! socket without an answer, which is what "drop the connection" has to look like to a client.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use crate::{
    JSON_CONTENT_TYPE,
    error::ApiError,
    faults::{Caller, Failure, Faults, LoggedRequest, PausePoint, RateHeaders, Verdict},
    jwt,
    uaa::Uaa,
};

/// A boxed request handler.
pub type Handler = Arc<dyn Fn(Request<Body>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync>;

/// Wraps an axum router as a [`Handler`].
pub fn axum_handler(router: axum::Router) -> Handler {
    Arc::new(move |req| {
        let router = router.clone();
        Box::pin(async move {
            use tower::ServiceExt;
            match router.oneshot(req).await {
                Ok(r) => r,
                Err(e) => match e {},
            }
        })
    })
}

/// The fault layer of one service.
#[derive(Clone, Debug)]
pub struct FaultLayer {
    /// Shared fault rules and log.
    pub faults: Arc<Faults>,
    /// `cc` or `uaa`, for the log.
    pub service: &'static str,
    /// The UAA whose tokens identify callers for the rate limiter.
    pub uaa: Arc<Uaa>,
}

/// A running server; dropping it stops accepting and closes every connection.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Server {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Serves `listener` with `handler` (behind `faults`, if given) until the [`Server`] is dropped.
pub fn spawn(listener: TcpListener, handler: Handler, faults: Option<FaultLayer>) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        // Connection tasks live in the set: when the loop ends the set is dropped and aborts them.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => break,
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    let handler = Arc::clone(&handler);
                    let faults = faults.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let handler = Arc::clone(&handler);
                            let faults = faults.clone();
                            async move { serve_one(req, peer, handler, faults).await }
                        });
                        let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(Server { addr, stop })
}

async fn serve_one(
    req: Request<Incoming>,
    peer: SocketAddr,
    handler: Handler,
    faults: Option<FaultLayer>,
) -> Result<Response<Body>, Dropped> {
    let (parts, body) = req.into_parts();
    let Ok(collected) = body.collect().await else { return Err(Dropped) };
    let bytes: Bytes = collected.to_bytes();
    let Some(layer) = faults else {
        return Ok(handler(Request::from_parts(parts, Body::from(bytes))).await);
    };
    let f = &layer.faults;
    let request_id = (layer.service == "cc").then(|| crate::cc::vcap_request_id(&parts.headers));
    let (method, path, query) =
        (parts.method.clone(), parts.uri.path().to_owned(), parts.uri.query().map(str::to_owned));
    let mut entry = LoggedRequest {
        service: layer.service,
        method: method.clone(),
        path: path.clone(),
        query,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
    };
    let delay = f.latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    f.hold(&method, &path, PausePoint::Before).await;
    let caller = caller(&parts.headers, &layer.uaa, peer);
    let (verdict, rate) = f.verdict(&method, &path, &caller);
    let mut response = match verdict {
        Verdict::Fail(Failure::Drop) => {
            f.record(entry);
            return Err(Dropped);
        }
        // Gorouter's own 502 never reached CC: no CC request id on it.
        Verdict::Fail(Failure::Status502) => failure_response(Failure::Status502),
        Verdict::Fail(failure) => stamped(failure_response(failure), request_id.as_deref()),
        Verdict::Limited(headers, anonymous) => stamped(limited_response(&headers, anonymous), request_id.as_deref()),
        Verdict::FailAfterCommit(failure) => {
            let _committed = handler(Request::from_parts(parts, Body::from(bytes))).await;
            if failure == Failure::Drop {
                f.record(entry);
                return Err(Dropped);
            }
            stamped(failure_response(failure), request_id.as_deref())
        }
        Verdict::Proceed => {
            let r = handler(Request::from_parts(parts, Body::from(bytes))).await;
            f.hold(&method, &path, PausePoint::After).await;
            stamped(r, request_id.as_deref())
        }
    };
    if let Some(rate) = rate {
        add_rate_headers(response.headers_mut(), &rate);
    }
    entry.status = response.status().as_u16();
    f.record(entry);
    Ok(response)
}

/// CC's VcapRequestContextSetter middleware sits outside the rate limiter
/// (lib/cloud_controller/rack_app_builder.rb), so every CC answer, 429 included, carries the id.
fn stamped(mut response: Response<Body>, request_id: Option<&str>) -> Response<Body> {
    if let Some(v) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        response.headers_mut().insert("x-vcap-request-id", v);
    }
    response
}

fn caller(headers: &HeaderMap, uaa: &Uaa, peer: SocketAddr) -> Caller {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Caller::Anonymous(peer.ip().to_string());
    };
    let token = value.split_once(' ').map_or(value, |(_, t)| t.trim());
    match uaa.signer().verify(token, &uaa.issuer(), crate::clock::unix_now()) {
        Ok(c) => Caller::User(
            c.actor().to_owned(),
            c.has_scope("cloud_controller.admin") || c.has_scope("cloud_controller.admin_read_only"),
        ),
        Err(_) => {
            // UAA's own token endpoint uses Basic auth: count it per IP, never as invalid.
            if jwt::decode_unverified(token).is_none() && value.to_ascii_lowercase().starts_with("basic") {
                Caller::Anonymous(peer.ip().to_string())
            } else {
                Caller::InvalidToken
            }
        }
    }
}

fn with_body(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn failure_response(failure: Failure) -> Response<Body> {
    match failure {
        Failure::Status500 => {
            with_body(StatusCode::INTERNAL_SERVER_ERROR, JSON_CONTENT_TYPE, ApiError::unknown().body())
        }
        Failure::Status503 => {
            with_body(StatusCode::SERVICE_UNAVAILABLE, JSON_CONTENT_TYPE, ApiError::service_unavailable().body())
        }
        Failure::Status502 => {
            let mut r = with_body(
                StatusCode::BAD_GATEWAY,
                "text/plain; charset=utf-8",
                b"502 Bad Gateway: Registered endpoint failed to handle the request.\n".to_vec(),
            );
            r.headers_mut().insert("x-cf-routererror", HeaderValue::from_static("endpoint_failure"));
            r
        }
        Failure::RateLimited { retry_after } => {
            let headers = RateHeaders {
                limit: 2000,
                remaining: 0,
                reset_epoch: crate::clock::unix_now() + i64::try_from(retry_after).unwrap_or(0),
                retry_after,
            };
            limited_response(&headers, false)
        }
        Failure::Drop => with_body(StatusCode::INTERNAL_SERVER_ERROR, JSON_CONTENT_TYPE, ApiError::unknown().body()),
        Failure::RunnerError => {
            with_body(StatusCode::INTERNAL_SERVER_ERROR, JSON_CONTENT_TYPE, ApiError::runner_error().body())
        }
        Failure::RunnerUnavailable => {
            with_body(StatusCode::SERVICE_UNAVAILABLE, JSON_CONTENT_TYPE, ApiError::runner_unavailable().body())
        }
    }
}

/// CC's 429: the JSON error body but `Content-Type: text/plain; charset=utf-8` (sic), with
/// `Retry-After` and the `X-RateLimit-*` headers (CC `base_rate_limiter.rb`).
fn limited_response(headers: &RateHeaders, anonymous: bool) -> Response<Body> {
    let error = if anonymous { ApiError::ip_rate_limited() } else { ApiError::rate_limited() };
    let body = error.body();
    let mut r = with_body(StatusCode::TOO_MANY_REQUESTS, "text/plain; charset=utf-8", body.clone());
    let h = r.headers_mut();
    h.insert(header::RETRY_AFTER, HeaderValue::from(headers.retry_after));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    add_rate_headers(h, headers);
    r
}

fn add_rate_headers(h: &mut HeaderMap, rate: &RateHeaders) {
    h.insert("x-ratelimit-limit", HeaderValue::from(rate.limit));
    h.insert("x-ratelimit-reset", HeaderValue::from(rate.reset_epoch));
    h.insert("x-ratelimit-remaining", HeaderValue::from(rate.remaining));
}
