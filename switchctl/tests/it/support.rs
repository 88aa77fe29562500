//! Test helpers: a mock Cloud Controller + UAA on a loopback port, tokens, cf configs.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use switchctl::{
    capi::{HttpOptions, RetryPolicy},
    session::{LoginEnv, SessionOptions},
};

/// A fixture file under `tests/fixtures/capi/` (copied CAPI reference data, see its README).
pub(crate) fn shared(rel: &str) -> String {
    let path = format!("{}/../tests/fixtures/capi/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A JSON answer with a status.
pub(crate) fn json(status: u16, body: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).expect("status");
    (status, [(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// A CC error answer from `cc-error-bodies/<name>.json`.
pub(crate) fn cc_error(status: u16, name: &str) -> Response {
    json(status, shared(&format!("cc-error-bodies/{name}.json")))
}

/// An unsigned JWT expiring `secs` from now.
pub(crate) fn jwt(secs: i64, user: &str) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + secs;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let payload = format!(r#"{{"exp":{exp},"user_name":"{user}","client_id":"cf","jti":"{user}-{secs}"}}"#);
    format!("{}.{}.c2lnbmF0dXJl", b64(r#"{"alg":"RS256","kid":"key-1","typ":"JWT"}"#), b64(&payload))
}

/// Serves `router` on 127.0.0.1 and returns its base URL. The listener is bound before this
/// returns, so the server is ready at once.
pub(crate) async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("mock server");
    });
    format!("http://{addr}")
}

/// Retries with short delays so tests stay fast.
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
        max_total_wait: Duration::from_secs(10),
        ..RetryPolicy::default()
    }
}

/// Session options for a cf home at `cf_home`, no environment login.
pub(crate) fn options(cf_home: &Path) -> SessionOptions {
    SessionOptions {
        env: LoginEnv { cf_home: Some(cf_home.to_owned()), ..LoginEnv::default() },
        http: HttpOptions { request_timeout: Duration::from_secs(5), retry: fast_retry(), ..HttpOptions::default() },
        ..SessionOptions::default()
    }
}

/// Writes the constructed cf v8 config into `<cf_home>/.cf/config.json` with `Target` and
/// `AuthorizationEndpoint` pointing at `api` and the given access token; mode 0644 (as if
/// written by hand), so that a write-back visibly changes it to 0600.
pub(crate) fn write_cf_config(
    cf_home: &Path,
    api: &str,
    access_token: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut config: serde_json::Value =
        serde_json::from_str(&shared("cf-cli-config/constructed-v8-config.json")).expect("config json");
    config["Target"] = api.into();
    config["AuthorizationEndpoint"] = api.into();
    config["AccessToken"] = access_token.into();
    edit(&mut config);
    let dir = cf_home.join(".cf");
    std::fs::create_dir_all(&dir).expect("mkdir .cf");
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("json")).expect("write config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    path
}

/// The refresh token of the constructed config.
pub(crate) const CONFIG_REFRESH_TOKEN: &str = "0d2c4b7e2f7a4b0f9c3e1a2b3c4d5e6f-r";

/// A UAA token answer (password-grant shape) with these tokens.
pub(crate) fn token_answer(access: &str, refresh: Option<&str>) -> Response {
    let mut body: serde_json::Value =
        serde_json::from_str(&shared("uaa/token-refresh-response.password-grant.example.json")).expect("uaa json");
    body["access_token"] = access.into();
    match refresh {
        Some(r) => body["refresh_token"] = r.into(),
        None => {
            body.as_object_mut().map(|o| o.remove("refresh_token"));
        }
    }
    json(200, body.to_string())
}

/// Shared request log of a mock.
pub(crate) type Log<T> = Arc<Mutex<Vec<T>>>;

/// A new empty log.
pub(crate) fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

/// What a mock saw.
pub(crate) fn seen<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().expect("log lock").clone()
}

/// Appends to a log.
pub(crate) fn record<T>(log: &Log<T>, item: T) {
    log.lock().expect("log lock").push(item);
}

/// An `Authorization` header value, if any.
pub(crate) fn authorization(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned)
}
