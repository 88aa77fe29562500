//! Route services and route-policy domains, as the gorouter double meets them, and a test route
//! service to bind.
//!
//! **Route services** (gorouter `handlers/routeservice.go`, `routeservice/routeservice_config.go`,
//! `proxy/round_tripper/proxy_round_tripper.go`): a request for a route whose pool carries a route
//! service URL is not sent to the pool. The router adds `X-CF-Forwarded-Url` (the recommended
//! scheme, `https` by default, + the `Host` without port + the request URI),
//! `X-CF-Proxy-Signature` and `X-CF-Proxy-Metadata` (an encrypted `{forwarded_url,
//! requested_time}`), and sends the request to the service URL (`request.Host` and `request.URL`
//! become the service's). The service calls the route again through the router with those
//! headers; the router recognises a valid, unexpired signature whose forwarded URL names the same
//! pool (`ArrivedViaRouteService`, `validateRouteServicePool`), deletes the three headers and
//! sends the request to the pool. A bad signature is 502 (expired: 504) `Failed to validate Route
//! Service Signature: …`. Every destination of a bound route carries the service URL (CC
//! `lib/cloud_controller/diego/protocol/routing_info.rb` puts `route_service_url` into each
//! mapping's route info), so the maintenance app, once mapped, is behind the service too.
//!
//! The double keeps issued signatures in a table instead of encrypting them; what a client can
//! observe is the same. Binding takes effect at once (on CF it follows `RouteBinding#notify_diego`
//! and the route emitter, like any route change). CC requires an `https` service URL; the test
//! services here listen on plain HTTP on loopback.
//!
//! **Route-policy domains** (CC 3.228 `enforce_route_policies`; routing-release PR #535, "RFC0055
//! Identity-Aware Routing"): the gorouter requires a client certificate for such a domain
//! (per-domain `GetConfigForClient`, so over HTTPS a client without one fails the TLS handshake)
//! and authorizes the caller's instance identity against the route's policies, default deny;
//! denied requests are 401/403 in its access log. The double answers plain HTTP, so it refuses
//! every request for a host on such a domain with 401 before the route lookup. UNCONFIRMED: the
//! status, body and headers of gorouter's refusal (its source for this feature was not
//! available; the PR's description names 401/403).

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use tokio::net::TcpListener;

use crate::serve::{Handler, Server, spawn};

/// `X-CF-Forwarded-Url` (gorouter `routeservice/routeservice_config.go`).
pub const FORWARDED_URL: &str = "x-cf-forwarded-url";
/// `X-CF-Proxy-Signature`.
pub const SIGNATURE: &str = "x-cf-proxy-signature";
/// `X-CF-Proxy-Metadata`.
pub const METADATA: &str = "x-cf-proxy-metadata";

/// How long a signature is valid: gorouter's `route_services_timeout` default, 60 s
/// (`config/config.go`; UNCONFIRMED against the routing-release job spec).
const SIGNATURE_TIMEOUT: Duration = Duration::from_secs(60);

/// The route-service part of the router's state.
#[derive(Debug, Default)]
pub struct RouteServices(Mutex<Inner>);

#[derive(Debug, Default)]
struct Inner {
    /// Route (fqdn, path) → its route service URL.
    /// Route key (gorouter's `host.domain/path`, [`crate::router::route_key`]) → its service URL.
    bound: HashMap<String, String>,
    /// Domains whose routes only mTLS callers with a route policy reach.
    policy_domains: HashSet<String>,
    /// Signature → (forwarded URL, when issued).
    issued: HashMap<String, (String, Instant)>,
}

/// What the router does with a request before choosing an endpoint of its pool.
pub(crate) enum Verdict {
    /// Send it to the pool (a request back from the route service has lost its three headers).
    Pool(Request<Body>),
    /// Answered already: by the route service, or refused by the router.
    Answered(Response<Body>),
}

impl RouteServices {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts the route `fqdn` + `path` behind the route service at `url` (`None` unbinds).
    pub fn bind(&self, fqdn: &str, path: &str, url: Option<&str>) {
        let key = crate::router::route_key(fqdn, path);
        match url {
            Some(url) => self.lock().bound.insert(key, url.to_owned()),
            None => self.lock().bound.remove(&key),
        };
    }

    /// Makes the router refuse every request for a host on `domain` (see the module docs).
    pub fn enforce_route_policies(&self, domain: &str) {
        self.lock().policy_domains.insert(domain.to_lowercase());
    }

    /// The refusal for a host on a route-policy domain, before any route lookup.
    pub(crate) fn refuse(&self, host: &str) -> Option<Response<Body>> {
        let inner = self.lock();
        let on_policy_domain = inner
            .policy_domains
            .iter()
            .any(|d| host == d || host.strip_suffix(d.as_str()).is_some_and(|h| h.ends_with('.')));
        on_policy_domain
            .then(|| plain(StatusCode::UNAUTHORIZED, "401 Unauthorized: authorization denied: no client certificate\n"))
    }

    /// Gorouter's route-service handler for a request whose route is the pool `key`; `host` is the
    /// request's `Host` (port included).
    pub(crate) async fn intercept(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        req: Request<Body>,
        host: &str,
        key: &str,
    ) -> Verdict {
        let Some(service) = self.lock().bound.get(key).cloned() else {
            return Verdict::Pool(req);
        };
        if let Some(signature) = req.headers().get(SIGNATURE).and_then(|v| v.to_str().ok()) {
            return match self.refusal(signature, key) {
                None => {
                    let mut req = req;
                    for h in [SIGNATURE, METADATA, FORWARDED_URL] {
                        req.headers_mut().remove(h);
                    }
                    Verdict::Pool(req)
                }
                Some(answer) => Verdict::Answered(answer),
            };
        }
        let host_only = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let request_uri = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let forwarded = format!("https://{host_only}{request_uri}");
        let signature = uuid::Uuid::new_v4().to_string();
        self.lock().issued.insert(signature.clone(), (forwarded.clone(), Instant::now()));
        let (parts, body) = req.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return Verdict::Answered(plain(StatusCode::BAD_REQUEST, "400 Bad Request\n"));
        };
        let Ok(uri) = service.parse::<Uri>() else {
            return Verdict::Answered(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error: Route service request failed.\n",
            ));
        };
        let mut out = Request::new(Full::new(body));
        *out.method_mut() = parts.method;
        *out.headers_mut() = parts.headers;
        if let Some(authority) = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            out.headers_mut().insert(header::HOST, authority);
        }
        *out.uri_mut() = uri;
        for (name, value) in
            [(SIGNATURE, signature.as_str()), (METADATA, "double"), (FORWARDED_URL, forwarded.as_str())]
        {
            if let Ok(v) = HeaderValue::from_str(value) {
                out.headers_mut().insert(name, v);
            }
        }
        match client.request(out).await {
            Ok(resp) => {
                let (parts, body) = resp.into_parts();
                Verdict::Answered(Response::from_parts(parts, Body::new(body)))
            }
            // proxy/round_tripper/error_handler.go: a failed round trip to the service is the same
            // `endpoint_failure` 502 as to an app.
            Err(e) => {
                let mut r = plain(
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: Registered endpoint failed to handle the request.\n",
                );
                if let Ok(v) = HeaderValue::from_str(&format!("endpoint_failure ({e})")) {
                    r.headers_mut().insert("x-cf-routererror", v);
                }
                Verdict::Answered(r)
            }
        }
    }

    /// `ArrivedViaRouteService`: `None` for a signature this router issued, not expired, for a URL
    /// of the same pool; else the router's answer.
    fn refusal(&self, signature: &str, key: &str) -> Option<Response<Body>> {
        let failed = |why: &str| {
            plain(
                StatusCode::BAD_GATEWAY,
                &format!("502 Bad Gateway: Failed to validate Route Service Signature: {why}\n"),
            )
        };
        let Some((forwarded, at)) = self.lock().issued.get(signature).cloned() else {
            return Some(failed("invalid signature"));
        };
        if at.elapsed() > SIGNATURE_TIMEOUT {
            return Some(plain(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout: Failed to validate Route Service Signature: route service request expired\n",
            ));
        }
        let Ok(url) = forwarded.parse::<Uri>() else { return Some(failed("bad forwarded URL")) };
        // The forwarded URL must still fall in the route's pool: its key is the route's, or the
        // route's followed by more path segments.
        let forwarded_key = crate::router::route_key(url.host().unwrap_or(""), url.path());
        let same_pool =
            forwarded_key == key || forwarded_key.strip_prefix(key).is_some_and(|rest| rest.starts_with('/'));
        (!same_pool).then(|| failed(&format!("route service forwarded URL {forwarded} does not match")))
    }
}

/// Gorouter's plain-text error (errorwriter/error_writer.go).
fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(text.to_owned()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

/// What a test route service does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A single sign-on service: without a `session` cookie, 302 to its login page (never the
    /// route); with one, passes the request on like [`Behaviour::Proxy`].
    Sso,
    /// Passes every request on: back through the router to `X-CF-Forwarded-Url`, with the
    /// signature and metadata, and answers with what comes back.
    Proxy,
}

/// Where the SSO service sends a caller without a session.
pub const LOGIN_URL: &str = "https://login.sso.example.com/oauth/authorize";

/// A running test route service.
#[derive(Debug)]
pub struct RouteServiceDouble {
    server: Server,
    /// What it does.
    pub behaviour: Behaviour,
}

impl RouteServiceDouble {
    /// Its URL (`route_service_url`).
    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// Starts a route service on a loopback port that calls back through the router at `router`.
pub async fn start(behaviour: Behaviour, router: SocketAddr) -> std::io::Result<RouteServiceDouble> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(2)));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let handler: Handler = Arc::new(move |req| {
        let client = client.clone();
        Box::pin(async move { serve(behaviour, router, &client, req).await })
    });
    Ok(RouteServiceDouble { server: spawn(listener, handler, None)?, behaviour })
}

async fn serve(
    behaviour: Behaviour,
    router: SocketAddr,
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Body>,
) -> Response<Body> {
    let session = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| c.split(';').any(|kv| kv.trim().starts_with("session=")));
    if behaviour == Behaviour::Sso && !session {
        let mut r = Response::new(Body::from("<a href=\"/login\">Found</a>.\n"));
        *r.status_mut() = StatusCode::FOUND;
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_static(LOGIN_URL));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        return r;
    }
    let Some(forwarded) =
        req.headers().get(FORWARDED_URL).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<Uri>().ok())
    else {
        return plain(StatusCode::BAD_REQUEST, "missing X-CF-Forwarded-Url\n");
    };
    let (Some(host), Some(pq)) = (forwarded.host().map(str::to_owned), forwarded.path_and_query().cloned()) else {
        return plain(StatusCode::BAD_REQUEST, "bad X-CF-Forwarded-Url\n");
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return plain(StatusCode::BAD_REQUEST, "unreadable body\n");
    };
    let Ok(uri) = format!("http://{router}{pq}").parse::<Uri>() else {
        return plain(StatusCode::BAD_REQUEST, "bad X-CF-Forwarded-Url\n");
    };
    let mut out = Request::new(Full::new(body));
    *out.method_mut() = parts.method;
    *out.headers_mut() = parts.headers;
    *out.uri_mut() = uri;
    if let Ok(v) = HeaderValue::from_str(&host) {
        out.headers_mut().insert(header::HOST, v);
    }
    match client.request(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => plain(StatusCode::BAD_GATEWAY, &format!("route service could not reach the router: {e}\n")),
    }
}

impl crate::CfDouble {
    /// Starts a test route service that calls back through this double's router.
    pub async fn start_route_service(&self, behaviour: Behaviour) -> std::io::Result<RouteServiceDouble> {
        start(behaviour, self.router_addr()).await
    }

    /// Binds `route_guid` to a user-provided service instance `name` whose route service URL is
    /// `url` (`cf create-user-provided-service NAME -r URL` then `cf bind-route-service`): the
    /// binding is listed by CC and the router sends the route's requests to `url` from now on.
    /// Returns the binding's GUID.
    pub fn bind_route_service(&self, route_guid: &str, name: &str, url: &str) -> String {
        let now = crate::clock::now_iso();
        let mut st = self.cc.state();
        let Some(route) = st.route(route_guid).cloned() else { return String::new() };
        let binding = crate::cc::state::RouteBinding {
            guid: crate::cc::state::guid(),
            route_guid: route_guid.to_owned(),
            service_instance_guid: crate::cc::state::guid(),
            service_instance_name: name.to_owned(),
            space_guid: route.space_guid.clone(),
            managed: false,
            route_service_url: Some(url.to_owned()),
            created_at: now.clone(),
            updated_at: now,
            metadata: crate::metadata::Metadata::default(),
        };
        let guid = binding.guid.clone();
        st.route_bindings.push(binding);
        self.router.services().bind(&st.route_fqdn(&route), &route.path, Some(url));
        guid
    }

    /// Adds a shared HTTP domain with `enforce_route_policies` and `route_policies_scope`
    /// (`any`, `org` or `space`), whose routes the router refuses to callers without an instance
    /// identity (every probe from outside).
    pub fn add_policy_domain(&self, name: &str, scope: &str) -> String {
        let guid = self.add_shared_domain(name);
        if let Some(d) = self.cc.state().domains.iter_mut().find(|d| d.guid == guid) {
            d.route_policies_scope = Some(scope.to_owned());
        }
        self.router.services().enforce_route_policies(name);
        guid
    }
}
