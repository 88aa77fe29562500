//! A tiny backend standing in for an app instance: answers every request with 200 and
//! `hello from NAME/INDEX`, and says who it is in `X-Backend`, so router tests can tell which app
//! served a request.

use axum::{Router, body::Body, response::Response};
use http::{HeaderValue, header};
use tokio::net::TcpListener;

use crate::serve::{Server, axum_handler, spawn};

/// Starts one instance `name/index` on a fresh loopback port.
pub async fn start(name: &str, index: usize) -> std::io::Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let id = format!("{name}/{index}");
    let body = format!("hello from {id}\n");
    let router = Router::new().fallback(move || {
        let (id, body) = (id.clone(), body.clone());
        async move {
            let mut r = Response::new(Body::from(body));
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert("x-backend", v);
            }
            r
        }
    });
    spawn(listener, axum_handler(router), None)
}
