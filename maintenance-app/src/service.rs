//! The request path: the tower service that answers every request, and the state it answers
//! from, built once before the first connection. [`server`](crate::server) owns the connections
//! and their deadlines and hands each request to this service; tests call it without sockets.
//!
//! A request is answered from the first layer that matches its host and path: the per-app
//! content ([`live`](crate::live), changed at run time), then the rules file, then the
//! environment's defaults. Requests under the control prefix go to [`control`]
//! instead and never get a maintenance answer.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::body::Body;
use http::{
    HeaderValue, Response,
    header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HOST},
};

use crate::{
    config::Config,
    control::{self, Control},
    live::Live,
    response::{self, Answers},
    rules::{Rule, request_host},
    stats::Stats,
};

/// Everything a request needs, built once from the configuration.
#[derive(Debug)]
pub struct AppState {
    health_path: String,
    default: Answers,
    rules: Vec<(Rule, Answers)>,
    live: Arc<Live>,
    control: Control,
    stats: Arc<Stats>,
}

impl AppState {
    /// Renders every policy's answers.
    pub fn new(config: &Config) -> AppState {
        let live = Arc::new(Live::new(&config.apps));
        AppState {
            health_path: config.health_path.clone(),
            default: Answers::new(&config.default, 0),
            rules: config.rules.iter().map(|r| (r.clone(), Answers::new(r.policy(), 0))).collect(),
            control: Control::new(config.control_secret.clone(), Arc::clone(&live), config.default.clone()),
            live,
            stats: Arc::default(),
        }
    }

    /// The request counters, for the periodic report.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    fn base_answers_for(&self, host: &str, path: &str) -> &Answers {
        self.rules.iter().find(|(rule, _)| rule.matches(host, path)).map_or(&self.default, |(_, a)| a)
    }
}

/// The service with fresh state; see [`MaintenanceService`].
pub fn app(config: &Config) -> MaintenanceService {
    MaintenanceService::new(Arc::new(AppState::new(config)))
}

/// Answers every request, whatever its method and path, from one handler.
///
/// A plain tower `Service` over axum's request and body types rather than an axum `Router`: with
/// a single catch-all there is nothing to route, and the router's path matching, URL-parameter
/// and content-length passes were measured at over a quarter of the instructions spent per
/// request (callgrind, keep-alive load). A maintenance answer is ready synchronously, so its
/// future is ready and nothing is boxed; only a control request, which reads its body, boxes one.
#[derive(Debug, Clone)]
pub struct MaintenanceService {
    state: Arc<AppState>,
}

impl MaintenanceService {
    /// A service over shared state.
    pub fn new(state: Arc<AppState>) -> MaintenanceService {
        MaintenanceService { state }
    }
}

/// The future of [`MaintenanceService`]: ready at once, except for a control request.
#[allow(missing_debug_implementations)]
pub enum Answer {
    /// A maintenance answer (taken when polled).
    Ready(Option<Response<Body>>),
    /// A control request reading its body.
    Control(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Future for Answer {
    type Output = Result<Response<Body>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            // Polled again after completion only by a broken executor; an empty answer is harmless.
            Answer::Ready(response) => Poll::Ready(Ok(response.take().unwrap_or_default())),
            Answer::Control(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

impl<B> tower::Service<http::Request<B>> for MaintenanceService
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        if control::is_control_path(parts.uri.path()) {
            let state = Arc::clone(&self.state);
            return Answer::Control(Box::pin(async move { state.control.answer(parts, body).await }));
        }
        // The body is dropped unread: a 1 GB upload is answered at once and nothing is buffered.
        drop(body);
        let mut response = handle(&self.state, &parts);
        if parts.method == http::Method::HEAD {
            without_body(&mut response);
        }
        Answer::Ready(Some(response))
    }
}

/// HEAD gets every header of GET, `Content-Length` included, and no body.
fn without_body(response: &mut Response<Body>) {
    use http_body::Body as _;
    if let Some(length) = response.body().size_hint().exact() {
        response.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    *response.body_mut() = Body::empty();
}

fn handle(state: &AppState, parts: &http::request::Parts) -> Response<Body> {
    if let Some(mut preflight) = response::cors_preflight(&parts.method, &parts.headers) {
        response::mark(preflight.headers_mut());
        return preflight;
    }
    let path = parts.uri.path();
    if path == state.health_path {
        let mut response = Response::new(Body::from("ok\n"));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response::mark(headers);
        return response;
    }
    let raw_host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.host()).unwrap_or("");
    let host = request_host(raw_host);
    state.stats.record(&host);
    let accept = parts.headers.get(ACCEPT);
    state.live.with(|apps| {
        apps.answers_for(&host, path).unwrap_or_else(|| state.base_answers_for(&host, path)).respond(
            &parts.method,
            path,
            accept,
        )
    })
}
