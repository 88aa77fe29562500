//! A small HTTP/1.1 client for tests: plain HTTP to loopback only, whole bodies, no TLS.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::Value;

/// One answer, body read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad URL or header.
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// Connection refused, reset or closed without an answer.
    #[error("connection: {0}")]
    Connection(#[from] hyper_util::client::legacy::Error),
    /// Body read failed.
    #[error("body: {0}")]
    Body(#[from] hyper::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
}

/// A pooled client.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// A client with a 10 s timeout per request.
    pub fn new() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http { client: Client::builder(TokioExecutor::new()).build(connector), timeout: Duration::from_secs(10) }
    }

    /// A client that opens a new connection for every request (no idle pool), as many users do:
    /// a balancer in front of several routers then spreads its requests over them.
    pub fn fresh() -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build(connector);
        Http { client, timeout: Duration::from_secs(10) }
    }

    /// Sends `method url` with `headers` and `body`.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ClientError> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let fut = async {
            let resp = self.client.request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, ClientError>(Reply { status: parts.status, headers: parts.headers, body })
        };
        tokio::time::timeout(self.timeout, fut).await.map_err(|_| ClientError::Timeout)?
    }

    /// `GET url` with an optional `Authorization` value.
    pub async fn get(&self, url: &str, auth: Option<&str>) -> Result<Reply, ClientError> {
        let headers: Vec<(&str, &str)> = auth.map(|a| vec![(header::AUTHORIZATION.as_str(), a)]).unwrap_or_default();
        self.send(Method::GET, url, &headers, None).await
    }

    /// `method url` with a JSON body and an optional `Authorization` value.
    pub async fn json(
        &self,
        method: Method,
        url: &str,
        auth: Option<&str>,
        body: &Value,
    ) -> Result<Reply, ClientError> {
        let mut headers = vec![(header::CONTENT_TYPE.as_str(), "application/json")];
        if let Some(a) = auth {
            headers.push((header::AUTHORIZATION.as_str(), a));
        }
        self.send(method, url, &headers, Some(serde_json::to_vec(body).unwrap_or_default())).await
    }
}
