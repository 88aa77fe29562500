//! The maintenance app: every request, on every path, with every method and any `Host`, gets a
//! maintenance answer (or 200 on the health path). Configuration is read once ([`config`]); the
//! answers are rendered once per policy ([`response`]); a request only chooses one.

pub mod config;
pub mod logging;
pub mod negotiate;
pub mod response;
pub mod rules;
pub mod server;
pub mod stats;

use std::sync::Arc;

use axum::{Router, body::Body, extract::Request};
use http::{
    HeaderValue, Response,
    header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HOST},
};
use time::OffsetDateTime;

pub use config::{Config, ConfigError};
pub use server::serve;

use response::Answers;
use rules::{Rule, request_host};
use stats::Stats;

/// Everything a request needs, built once from the configuration.
#[derive(Debug)]
pub struct AppState {
    health_path: String,
    default: Answers,
    rules: Vec<(Rule, Answers)>,
    stats: Arc<Stats>,
}

impl AppState {
    /// Renders every policy's answers.
    pub fn new(config: &Config) -> AppState {
        AppState {
            health_path: config.health_path.clone(),
            default: Answers::new(&config.default),
            rules: config.rules.iter().map(|r| (r.clone(), Answers::new(r.policy()))).collect(),
            stats: Arc::default(),
        }
    }

    /// The request counters, for the periodic report.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    fn answers_for(&self, host: &str, path: &str) -> &Answers {
        self.rules.iter().find(|(rule, _)| rule.matches(host, path)).map_or(&self.default, |(_, a)| a)
    }
}

/// The router with fresh state; see [`router`].
pub fn app(config: &Config) -> Router {
    router(Arc::new(AppState::new(config)))
}

/// Every request goes to one fallback handler: a GET-only wildcard route would answer other
/// methods with 405, and `/{*rest}` does not match `/`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(move |request: Request| {
        let state = Arc::clone(&state);
        async move {
            let mut response = handle(&state, request);
            let headers = response.headers_mut();
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response::mark(headers);
            response
        }
    })
}

fn handle(state: &AppState, request: Request) -> Response<Body> {
    // The body is dropped unread: a 1 GB upload is answered at once and nothing is buffered.
    let (parts, _body) = request.into_parts();
    if let Some(preflight) = response::cors_preflight(&parts.method, &parts.headers) {
        return preflight;
    }
    let path = parts.uri.path();
    if path == state.health_path {
        let mut response = Response::new(Body::from("ok\n"));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return response;
    }
    let raw_host = parts.headers.get(HOST).and_then(|h| h.to_str().ok()).or_else(|| parts.uri.host()).unwrap_or("");
    let host = request_host(raw_host);
    state.stats.record(&host);
    let answers = state.answers_for(&host, path);
    answers.respond(&parts.method, path, parts.headers.get(ACCEPT), OffsetDateTime::now_utc())
}
