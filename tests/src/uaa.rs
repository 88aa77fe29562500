//! UAA double: `POST /oauth/token` with the `password`, `refresh_token` and `client_credentials`
//! grants, answering like UAA (`tests/fixtures/capi/uaa/`). The `cf` client has an empty secret and is
//! sent as HTTP Basic (`Basic Y2Y6`), exactly as the cf CLI does. Token lifetimes can be changed at
//! run time so tests can let tokens expire.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::Serialize;

use crate::{
    clock,
    jwt::{CC_AUDIENCE, Claims, Signer},
};

/// Scopes UAA grants a normal cf user.
pub const USER_SCOPES: &[&str] =
    &["openid", "uaa.user", "cloud_controller.read", "cloud_controller.write", "password.write"];

/// A user known to the double.
#[derive(Debug, Clone)]
pub struct User {
    /// Guid (the `user_id` claim; CC roles are keyed by it).
    pub guid: String,
    /// Login name.
    pub name: String,
    /// Password for the `password` grant.
    pub password: String,
    /// Scopes granted in its tokens.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct Client {
    secret: String,
    scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    user_guid: String,
    expires_at: i64,
}

#[derive(Debug)]
struct Inner {
    users: Vec<User>,
    clients: HashMap<String, Client>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    // UAA's token policy `refreshTokenRotate` defaults to false (uaa model/src/main/java/org/
    // cloudfoundry/identity/uaa/zone/TokenPolicy.java; `jwt.token.refresh.rotate` in uaa.yml): a
    // refresh grant answers with the same refresh token, which stays valid. With rotation, the
    // old token is deleted (server/.../oauth/UaaTokenServices.java `tokenIdToBeDeleted`,
    // RefreshTokenCreator.java#shouldRotateRefreshTokens).
    rotate_refresh: bool,
    issued: u64,
}

/// The UAA double's state: users, clients, refresh tokens and the signer CC checks tokens with.
#[derive(Debug)]
pub struct Uaa {
    url: String,
    signer: Signer,
    inner: Mutex<Inner>,
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    expires_in: u64,
    scope: String,
    jti: &'a str,
}

#[derive(Serialize)]
struct OauthError<'a> {
    error: &'a str,
    error_description: &'a str,
}

/// The tokens of one grant, as a client stores them.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The JWT (without `bearer `).
    pub access_token: String,
    /// The refresh token, if the grant gives one.
    pub refresh_token: Option<String>,
}

impl Uaa {
    /// A UAA reachable at `url` (its issuer is `url/oauth/token`) with the `cf` client.
    pub fn new(url: &str, secret: &[u8]) -> Uaa {
        let mut clients = HashMap::new();
        clients.insert("cf".to_owned(), Client { secret: String::new(), scopes: scopes(USER_SCOPES) });
        Uaa {
            url: url.trim_end_matches('/').to_owned(),
            signer: Signer::new(secret),
            inner: Mutex::new(Inner {
                users: Vec::new(),
                clients,
                refresh_tokens: HashMap::new(),
                access_lifetime: Duration::from_secs(599),
                refresh_lifetime: Duration::from_secs(2_592_000),
                rotate_refresh: false,
                issued: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Base URL (`links.uaa` and `links.login` of CC's root).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `iss` claim CC requires.
    pub fn issuer(&self) -> String {
        format!("{}/oauth/token", self.url)
    }

    /// The signer, for CC's token checks.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Adds a user who can log in with `password`; returns it.
    pub fn add_user(&self, name: &str, password: &str, admin: bool) -> User {
        let mut s = scopes(USER_SCOPES);
        if admin {
            s.push("cloud_controller.admin".to_owned());
        }
        let user = User {
            guid: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            password: password.to_owned(),
            scopes: s,
        };
        self.lock().users.push(user.clone());
        user
    }

    /// The user called `name`.
    pub fn user(&self, name: &str) -> Option<User> {
        self.lock().users.iter().find(|u| u.name == name).cloned()
    }

    /// Adds a client for the `client_credentials` grant.
    pub fn add_client(&self, id: &str, secret: &str, client_scopes: &[&str]) {
        self.lock().clients.insert(id.to_owned(), Client { secret: secret.to_owned(), scopes: scopes(client_scopes) });
    }

    /// Sets how long new access tokens live (`expires_in`); zero gives already-expired tokens.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.lock().access_lifetime = lifetime;
    }

    /// Sets how long new refresh tokens live.
    pub fn set_refresh_token_lifetime(&self, lifetime: Duration) {
        self.lock().refresh_lifetime = lifetime;
    }

    /// Turns refresh token rotation on (each refresh token is single-use, the grant answers with a
    /// new one) or off (UAA's default: the same refresh token is returned and stays valid).
    pub fn set_refresh_token_rotation(&self, rotate: bool) {
        self.lock().rotate_refresh = rotate;
    }

    /// Forgets every refresh token (a revoked session): the next refresh gets 401 `invalid_token`.
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh_tokens.clear();
    }

    /// How many access tokens were issued so far.
    pub fn issued(&self) -> u64 {
        self.lock().issued
    }

    /// Issues tokens for `user_name` as the password grant would (no HTTP round trip).
    pub fn login(&self, user_name: &str) -> Option<Tokens> {
        let user = self.user(user_name)?;
        self.issue_user_tokens(&user, "password").ok()
    }

    /// Signs a token for `user_name` that expired `ago` ago (for 401 tests).
    pub fn expired_token_for(&self, user_name: &str, ago: Duration) -> Option<String> {
        let user = self.user(user_name)?;
        let now = clock::unix_now();
        let ago = i64::try_from(ago.as_secs()).unwrap_or(i64::MAX / 2);
        let mut claims = self.user_claims(&user, "password", now - ago - 600, 600);
        claims.exp = now - ago;
        self.signer.sign(&claims).ok()
    }

    fn user_claims(&self, user: &User, grant: &str, iat: i64, lifetime: i64) -> Claims {
        Claims {
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sub: user.guid.clone(),
            scope: user.scopes.clone(),
            client_id: "cf".to_owned(),
            cid: "cf".to_owned(),
            grant_type: grant.to_owned(),
            user_id: Some(user.guid.clone()),
            user_name: Some(user.name.clone()),
            origin: Some("uaa".to_owned()),
            iat,
            exp: iat + lifetime,
            iss: self.issuer(),
            zid: "uaa".to_owned(),
            aud: vec![CC_AUDIENCE.to_owned(), "cf".to_owned(), "openid".to_owned(), "uaa".to_owned()],
        }
    }

    fn issue_user_tokens(&self, user: &User, grant: &str) -> Result<Tokens, crate::Error> {
        self.issue_user_tokens_keeping(user, grant, None)
    }

    /// Issues an access token; with `keep`, answers with that (still valid) refresh token instead
    /// of a new one.
    fn issue_user_tokens_keeping(&self, user: &User, grant: &str, keep: Option<&str>) -> Result<Tokens, crate::Error> {
        let now = clock::unix_now();
        let (access, refresh) = {
            let inner = self.lock();
            (secs(inner.access_lifetime), secs(inner.refresh_lifetime))
        };
        let claims = self.user_claims(user, grant, now, access);
        let access_token = self.signer.sign(&claims)?;
        if let Some(kept) = keep {
            self.lock().issued += 1;
            return Ok(Tokens { access_token, refresh_token: Some(kept.to_owned()) });
        }
        let refresh_token = format!("{}-r", uuid::Uuid::new_v4().simple());
        let mut inner = self.lock();
        inner.issued += 1;
        inner
            .refresh_tokens
            .insert(refresh_token.clone(), RefreshGrant { user_guid: user.guid.clone(), expires_at: now + refresh });
        Ok(Tokens { access_token, refresh_token: Some(refresh_token) })
    }

    fn token_response(&self, tokens: &Tokens, claims_scope: &[String]) -> Response {
        let expires_in = self.lock().access_lifetime.as_secs();
        let jti = crate::jwt::decode_unverified(&tokens.access_token).map(|c| c.jti).unwrap_or_default();
        let body = TokenResponse {
            access_token: &tokens.access_token,
            token_type: "bearer",
            refresh_token: tokens.refresh_token.as_deref(),
            expires_in,
            scope: claims_scope.join(" "),
            jti: &jti,
        };
        json(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
    }

    fn handle_token(&self, headers: &HeaderMap, body: &[u8]) -> Response {
        let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
        let basic = basic_credentials(headers);
        let client_id = basic.as_ref().map(|(id, _)| id.clone()).or_else(|| form.get("client_id").cloned());
        let client_secret = basic.map(|(_, s)| s).or_else(|| form.get("client_secret").cloned());
        let Some(client_id) = client_id else {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Full authentication is required to access this resource",
            );
        };
        let client_secret = client_secret.unwrap_or_default();
        let client = self.lock().clients.get(&client_id).cloned();
        let Some(client) = client.filter(|c| c.secret == client_secret) else {
            return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "Bad credentials");
        };
        match form.get("grant_type").map(String::as_str) {
            Some("password") => {
                let (Some(name), Some(password)) = (form.get("username"), form.get("password")) else {
                    return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "Bad credentials");
                };
                let user = self.user(name).filter(|u| &u.password == password);
                let Some(user) = user else {
                    return oauth_error(StatusCode::UNAUTHORIZED, "unauthorized", "Bad credentials");
                };
                match self.issue_user_tokens(&user, "password") {
                    Ok(tokens) => self.token_response(&tokens, &user.scopes),
                    Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "token signing failed"),
                }
            }
            Some("refresh_token") => {
                let Some(token) = form.get("refresh_token") else {
                    return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing refresh_token");
                };
                let grant = self.lock().refresh_tokens.get(token).cloned();
                let now = clock::unix_now();
                let user = grant
                    .filter(|g| g.expires_at > now)
                    .and_then(|g| self.lock().users.iter().find(|u| u.guid == g.user_guid).cloned());
                let Some(user) = user else {
                    // UAA's text for an unknown or expired refresh token (the CLI only reads `error`).
                    let description = format!("Invalid refresh token (expired): {token}");
                    return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", &description);
                };
                // With rotation the old token stops working; without (UAA's default) it is answered
                // again and stays valid until it expires.
                let keep = {
                    let mut inner = self.lock();
                    if inner.rotate_refresh {
                        inner.refresh_tokens.remove(token);
                        None
                    } else {
                        Some(token.as_str())
                    }
                };
                match self.issue_user_tokens_keeping(&user, "refresh_token", keep) {
                    Ok(tokens) => self.token_response(&tokens, &user.scopes),
                    Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "token signing failed"),
                }
            }
            Some("client_credentials") => {
                let now = clock::unix_now();
                let lifetime = secs(self.lock().access_lifetime);
                let claims = Claims {
                    jti: uuid::Uuid::new_v4().simple().to_string(),
                    sub: client_id.clone(),
                    scope: client.scopes.clone(),
                    client_id: client_id.clone(),
                    cid: client_id.clone(),
                    grant_type: "client_credentials".to_owned(),
                    user_id: None,
                    user_name: None,
                    origin: None,
                    iat: now,
                    exp: now + lifetime,
                    iss: self.issuer(),
                    zid: "uaa".to_owned(),
                    aud: vec![CC_AUDIENCE.to_owned(), client_id.clone()],
                };
                match self.signer.sign(&claims) {
                    Ok(access_token) => {
                        self.lock().issued += 1;
                        self.token_response(&Tokens { access_token, refresh_token: None }, &client.scopes)
                    }
                    Err(_) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "token signing failed"),
                }
            }
            Some(other) => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Unsupported grant type: {other}"),
            ),
            None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing grant type"),
        }
    }
}

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|&s| s.to_owned()).collect()
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(status, serde_json::to_vec(&OauthError { error, error_description: description }).unwrap_or_default())
}

/// The UAA double's HTTP routes.
pub fn router(uaa: Arc<Uaa>) -> Router {
    Router::new()
        .route(
            "/oauth/token",
            post(move |headers: HeaderMap, body: Bytes| {
                let uaa = Arc::clone(&uaa);
                async move { uaa.handle_token(&headers, &body) }
            }),
        )
        .fallback(|| async {
            let mut r = Response::new(Body::from(r#"{"error":"not_found","error_description":"Not Found"}"#));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        })
}
