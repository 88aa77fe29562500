//! Tokens from UAA, requested the way the cf CLI does (see the project's CAPI facts, §3.3 and §3.4).
//!
//! * refresh: `POST {login}/oauth/token`, `Authorization: Basic base64("cf:")` (the configured
//!   `UAAOAuthClient`/`UAAOAuthClientSecret`), body `grant_type=refresh_token&refresh_token=…`;
//! * password (pipelines): same Basic header, body `grant_type=password&password=…&username=…`;
//! * client credentials: **no** Basic header, body `client_id=…&client_secret=…&grant_type=client_credentials`.
//!
//! A [`TokenSource`] holds the current token, renews it when it expires within a minute (or when the
//! Cloud Controller rejects it) and, when the login came from `config.json`, writes the new tokens back.
//! A login can also be lent by the program that started switchctl ([`TokenLender`]: the cf CLI,
//! to its plugins): then a new token is asked of it, and it does the refreshing.
//! JWTs are decoded without checking the signature: only `exp` is read, to decide when to renew.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{
    cfconfig::CfConfig,
    error::{Server, TokenError, Unreachable, describe, transport_cause},
};

/// Renew a token that expires within this margin (the cf CLI's `accessTokenExpirationMargin`).
pub const EXPIRY_MARGIN_SECS: i64 = 60;

/// A program that lends switchctl its login and renews the token itself (the cf CLI, whose plugin
/// RPC `AccessToken` refreshes the token when needed: `plugin/rpc/cli_rpc_server.go` calls
/// `RefreshAuthToken`). The call blocks; it is made off the async runtime.
pub trait TokenLender: Send + Sync {
    /// The current `Authorization` value (`bearer …`), or why there is none.
    fn access_token(&self) -> Result<String, String>;
}

/// How to get a new token.
#[derive(Clone)]
pub enum Login {
    /// `cf login`'s refresh token, sent with this OAuth client (normally `cf` with an empty secret).
    RefreshToken {
        /// `UAAOAuthClient`.
        client_id: String,
        /// `UAAOAuthClientSecret`.
        client_secret: String,
    },
    /// The client-credentials grant (`cf auth --client-credentials`, or `CF_CLIENT_ID`/`CF_CLIENT_SECRET`).
    ClientCredentials {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// The password grant with the `cf` client (`CF_USERNAME`/`CF_PASSWORD`); later renewals use the
    /// refresh token UAA hands out, falling back to the password.
    Password {
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// Ask the program that lent its login.
    Lent(std::sync::Arc<dyn TokenLender>),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Login::RefreshToken { client_id, .. } => write!(f, "RefreshToken {{ client_id: {client_id:?}, .. }}"),
            Login::ClientCredentials { client_id, .. } => {
                write!(f, "ClientCredentials {{ client_id: {client_id:?}, .. }}")
            }
            Login::Password { username, .. } => write!(f, "Password {{ username: {username:?}, .. }}"),
            Login::Lent(_) => f.write_str("Lent"),
        }
    }
}

/// One token request.
#[derive(Clone, Copy)]
enum Grant<'a> {
    RefreshToken { client_id: &'a str, client_secret: &'a str, refresh_token: &'a str },
    Password { username: &'a str, password: &'a str },
    ClientCredentials { client_id: &'a str, client_secret: &'a str },
}

/// Tokens as the cf CLI stores them.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `<token_type> <access_token>`, e.g. `bearer eyJ…`: the `Authorization` header value.
    pub access_token: String,
    /// The refresh token, if UAA sent one (client credentials get none).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { .. }")
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct UaaErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// `<base>/oauth/token`, keeping any path of `base`.
pub fn token_url(base: &str) -> Option<Url> {
    let url = Url::parse(&format!("{}/oauth/token", base.trim().trim_end_matches('/'))).ok()?;
    // Credentials never travel in the URL (they would show in traces and errors).
    (matches!(url.scheme(), "http" | "https") && url.username().is_empty() && url.password().is_none()).then_some(url)
}

/// The payload of a JWT (an `Authorization` value with a `bearer ` prefix is accepted), unverified.
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let token = token.trim();
    let token = match token.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => token[7..].trim_start(),
        _ => token,
    };
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `exp` claim (seconds since the epoch), if the token is a JWT that has one.
pub fn expires_at(token: &str) -> Option<i64> {
    let exp = jwt_claims(token)?.get("exp")?.clone();
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

/// Whether a token should be renewed before use at `now` (seconds since the epoch): it expires
/// within [`EXPIRY_MARGIN_SECS`], or it is not a JWT with an `exp` (what the cf CLI does too).
pub fn needs_refresh(token: &str, now: i64) -> bool {
    expires_at(token).is_none_or(|exp| exp - now < EXPIRY_MARGIN_SECS)
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Asks UAA for a token. Connection failures (nothing was sent) are tried up to three times.
async fn request_token(http: &reqwest::Client, url: &Url, grant: Grant<'_>) -> Result<Tokens, TokenError> {
    let mut attempt = 0u32;
    let response = loop {
        attempt += 1;
        let mut request = http.post(url.clone()).header(reqwest::header::ACCEPT, "application/json");
        // Form keys in the order Go's url.Values.Encode writes them (sorted), as the cf CLI sends them.
        request = match grant {
            Grant::RefreshToken { client_id, client_secret, refresh_token } => request
                .basic_auth(client_id, Some(client_secret))
                .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]),
            Grant::Password { username, password } => request.basic_auth("cf", Some("")).form(&[
                ("grant_type", "password"),
                ("password", password),
                ("username", username),
            ]),
            Grant::ClientCredentials { client_id, client_secret } => request.form(&[
                ("client_id", client_id),
                ("client_secret", client_secret),
                ("grant_type", "client_credentials"),
            ]),
        };
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                tracing::debug!(
                    method = %Method::POST,
                    url = %url,
                    status = response.status().as_u16(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "UAA token request"
                );
                break response;
            }
            Err(e) if e.is_connect() && attempt < 3 => {
                tracing::debug!(url = %url, attempt, error = describe(&e), "UAA not reachable, trying again");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Err(transport_error(url, &e, attempt)),
        }
    };
    let status = response.status();
    let body = response.bytes().await.map_err(|e| transport_error(url, &e, attempt))?;
    if status.is_success() {
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|source| TokenError::BadResponse { url: url.to_string(), source })?;
        let token_type = token.token_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "bearer".to_owned());
        return Ok(Tokens {
            access_token: format!("{token_type} {}", token.access_token),
            refresh_token: token.refresh_token.filter(|t| !t.is_empty()),
        });
    }
    let err: UaaErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    let is_refresh = matches!(grant, Grant::RefreshToken { .. });
    Err(match (status, err.error.as_str()) {
        (StatusCode::UNAUTHORIZED, "invalid_token") => TokenError::InvalidRefreshToken,
        // Some UAA versions answer an expired or revoked refresh token with 400/401 invalid_grant.
        (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, "invalid_grant") if is_refresh => {
            TokenError::InvalidRefreshToken
        }
        (StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED, "unauthorized" | "invalid_client" | "invalid_grant") => {
            TokenError::BadCredentials { error: err.error, description: err.error_description }
        }
        _ => TokenError::Uaa {
            url: url.to_string(),
            status: status.as_u16(),
            error: if err.error.is_empty() {
                status.canonical_reason().unwrap_or("error").to_owned()
            } else {
                err.error
            },
            description: err.error_description,
        },
    })
}

/// A token request that got no answer, in one line.
fn transport_error(url: &Url, e: &reqwest::Error, attempts: u32) -> TokenError {
    tracing::debug!(url = %url, attempts, error = describe(e), "UAA token request failed");
    let (url, cause) = (url.to_string(), transport_cause(e));
    if e.is_connect() {
        TokenError::Unreachable(Unreachable { server: Server::Uaa, url, cause, attempts })
    } else {
        TokenError::Transport { url, cause }
    }
}

struct State {
    access: Option<String>,
    refresh: Option<String>,
    /// Where renewed tokens are written back; `None` for logins from the environment.
    store: Option<CfConfig>,
}

/// The current access token, renewed when needed.
pub struct TokenSource {
    http: reqwest::Client,
    token_url: Url,
    login: Login,
    state: Mutex<State>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.token_url.as_str())
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for the login `cf login` left in `config`: its tokens, its OAuth client, and renewed
    /// tokens written back to the file.
    pub fn from_cf_config(http: reqwest::Client, token_url: Url, config: CfConfig) -> TokenSource {
        let login = if config.uaa_grant_type() == "client_credentials" {
            Login::ClientCredentials {
                client_id: config.uaa_client().to_owned(),
                client_secret: config.uaa_client_secret().to_owned(),
            }
        } else {
            Login::RefreshToken {
                client_id: config.uaa_client().to_owned(),
                client_secret: config.uaa_client_secret().to_owned(),
            }
        };
        let state = State {
            access: config.access_token().map(str::to_owned),
            refresh: config.refresh_token().map(str::to_owned),
            store: Some(config),
        };
        TokenSource { http, token_url, login, state: Mutex::new(state) }
    }

    /// A source that starts with `first` (if given) and asks `lender` for each new token; it never
    /// writes a file. `api` only names the source in debug output: no token request goes there.
    pub fn lent(
        http: reqwest::Client,
        api: Url,
        lender: std::sync::Arc<dyn TokenLender>,
        first: Option<String>,
    ) -> TokenSource {
        let state = State { access: first, refresh: None, store: None };
        TokenSource { http, token_url: api, login: Login::Lent(lender), state: Mutex::new(state) }
    }

    /// A source that logs in with `login` on first use and never writes a file.
    pub fn new(http: reqwest::Client, token_url: Url, login: Login) -> TokenSource {
        let state = State { access: None, refresh: None, store: None };
        TokenSource { http, token_url, login, state: Mutex::new(state) }
    }

    /// The `Authorization` header value to use now, renewed first if it expires within a minute.
    pub async fn authorization(&self) -> Result<String, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(access) = &state.access {
            // A lent token that is not a JWT is used until the Cloud Controller rejects it: the
            // lender is the judge of its life, and asking before every request would be a call each.
            let lent_opaque = matches!(self.login, Login::Lent(_)) && expires_at(access).is_none();
            if lent_opaque || !needs_refresh(access, now_unix()) {
                return Ok(access.clone());
            }
        }
        self.renew(&mut state).await
    }

    /// Called when the Cloud Controller rejected `rejected` (401 `CF-InvalidAuthToken`): renews the
    /// token, unless another request already did.
    pub async fn rejected(&self, rejected: &str) -> Result<String, TokenError> {
        let mut state = self.state.lock().await;
        if let Some(access) = &state.access
            && access != rejected
        {
            return Ok(access.clone());
        }
        self.renew(&mut state).await
    }

    async fn renew(&self, state: &mut State) -> Result<String, TokenError> {
        let url = &self.token_url;
        let tokens = match &self.login {
            Login::RefreshToken { client_id, client_secret } => {
                let refresh_token = state.refresh.as_deref().ok_or(TokenError::NoRefreshToken)?;
                let grant = Grant::RefreshToken { client_id, client_secret, refresh_token };
                request_token(&self.http, url, grant).await?
            }
            Login::ClientCredentials { client_id, client_secret } => {
                request_token(&self.http, url, Grant::ClientCredentials { client_id, client_secret }).await?
            }
            Login::Password { username, password } => {
                let by_password = Grant::Password { username, password };
                match state.refresh.as_deref() {
                    Some(refresh_token) => {
                        let grant = Grant::RefreshToken { client_id: "cf", client_secret: "", refresh_token };
                        match request_token(&self.http, url, grant).await {
                            Err(TokenError::InvalidRefreshToken) => request_token(&self.http, url, by_password).await?,
                            other => other?,
                        }
                    }
                    None => request_token(&self.http, url, by_password).await?,
                }
            }
            Login::Lent(lender) => {
                let lender = lender.clone();
                let token = tokio::task::spawn_blocking(move || lender.access_token())
                    .await
                    .map_err(|e| TokenError::Lender { cause: e.to_string() })?
                    .map_err(|cause| TokenError::Lender { cause })?;
                Tokens { access_token: token, refresh_token: None }
            }
        };
        tracing::debug!(token_url = %url, "got a new access token");
        state.access = Some(tokens.access_token.clone());
        if let Some(refresh) = tokens.refresh_token {
            state.refresh = Some(refresh);
        }
        if let Some(store) = &mut state.store {
            let refresh = state.refresh.as_deref().unwrap_or("");
            match store.save_tokens(&tokens.access_token, refresh) {
                Ok(true) => tracing::debug!(path = %store.path().display(), "saved the renewed tokens"),
                Ok(false) => tracing::warn!(
                    "{} now targets another API; the renewed tokens were not saved to it",
                    store.path().display()
                ),
                Err(e) => {
                    // The command can go on with the new token; cf will ask for a login if the old refresh
                    // token was single-use.
                    tracing::warn!("could not save the renewed tokens: {e}: {}", error_chain(&e));
                }
            }
        }
        Ok(tokens.access_token)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.c2ln", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(payload))
    }

    #[test]
    fn exp_is_read_from_a_bearer_jwt() {
        let token = format!("bearer {}", jwt(r#"{"exp":1700000000,"user_name":"u"}"#));
        assert_eq!(expires_at(&token), Some(1_700_000_000));
        assert_eq!(expires_at(&jwt(r#"{"exp":1700000000}"#)), Some(1_700_000_000));
        assert_eq!(expires_at(&format!("Bearer {}", jwt(r#"{"exp":5}"#))), Some(5));
    }

    #[test]
    fn tokens_expiring_within_a_minute_or_unreadable_are_renewed() {
        let token = jwt(r#"{"exp":1000}"#);
        assert!(!needs_refresh(&token, 1000 - 61));
        assert!(needs_refresh(&token, 1000 - 59));
        assert!(needs_refresh(&token, 2000));
        assert!(needs_refresh("bearer the-access-token", 0));
        assert!(needs_refresh(&jwt(r#"{"user_name":"no exp"}"#), 0));
        assert!(needs_refresh("a.!!!.c", 0));
    }

    #[test]
    fn the_token_url_keeps_the_base_path() {
        assert_eq!(
            token_url("https://login.example.com/").map(String::from).as_deref(),
            Some("https://login.example.com/oauth/token")
        );
        assert_eq!(
            token_url("https://x.example.com/uaa").map(String::from).as_deref(),
            Some("https://x.example.com/uaa/oauth/token")
        );
        assert!(token_url("not a url").is_none());
        assert!(token_url("https://u:p@login.example.com").is_none());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let login = Login::Password { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{login:?}").contains("hunter2"));
        let tokens = Tokens { access_token: "bearer secret".into(), refresh_token: Some("r-secret".into()) };
        assert!(!format!("{tokens:?}").contains("secret"));
    }
}
