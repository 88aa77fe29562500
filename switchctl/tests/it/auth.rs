//! Logging in the way cf users are: config.json, token renewal and write-back, environment logins.

use axum::{
    Router,
    http::HeaderMap,
    routing::{get, post},
};
use serde_json::{Map, Value};
use switchctl::{
    Error, Session, TokenError,
    error::{ConfigError, EXIT_USAGE},
    session::LoginEnv,
};

use crate::support::*;

const APP_GUID: &str = "1cb006ee-fb05-47e1-b541-c34179ddc446";

/// What the mock UAA saw: the `Authorization` header and the form body of each token request.
type UaaLog = Log<(Option<String>, String)>;

/// A mock whose UAA hands out `new_access` and whose CC accepts only `accepted` tokens.
fn cc_and_uaa(
    new_access: String,
    new_refresh: Option<&'static str>,
    accepted: Vec<String>,
) -> (Router, UaaLog, Log<String>) {
    let uaa_log = log();
    let cc_log = log();
    let (uaa, cc) = (uaa_log.clone(), cc_log.clone());
    let router = Router::new()
        .route(
            "/oauth/token",
            post(move |headers: HeaderMap, body: String| {
                let uaa = uaa.clone();
                let new_access = new_access.clone();
                async move {
                    record(&uaa, (authorization(&headers), body));
                    token_answer(&new_access, new_refresh)
                }
            }),
        )
        .route(
            "/v3/apps/{guid}",
            get(move |headers: HeaderMap| {
                let cc = cc.clone();
                let accepted = accepted.clone();
                async move {
                    let auth = authorization(&headers).unwrap_or_default();
                    record(&cc, auth.clone());
                    if accepted.contains(&auth) {
                        json(200, shared("cc-docs-examples/apps__single_app.json"))
                    } else {
                        cc_error(401, "401-CF-InvalidAuthToken")
                    }
                }
            }),
        );
    (router, uaa_log, cc_log)
}

fn read_json(path: &std::path::Path) -> Map<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read config")).expect("config json")
}

#[tokio::test]
async fn an_expiring_token_is_renewed_first_and_written_back_with_every_other_field_intact() {
    let new_access = jwt(3600, "renewed");
    let (router, uaa, cc) = cc_and_uaa(new_access.clone(), Some("NEW-REFRESH"), vec![format!("bearer {new_access}")]);
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    let path = write_cf_config(home.path(), &api, &format!("bearer {}", jwt(30, "old")), |_| {});
    let before = read_json(&path);

    let session = Session::connect(options(home.path())).await.expect("session");
    let app = session.client().get_app(APP_GUID).await.expect("app");
    assert_eq!(app.name, "my_app");

    // The refresh request is the cf CLI's: Basic base64("cf:"), sorted form keys.
    let expected_body = format!("grant_type=refresh_token&refresh_token={CONFIG_REFRESH_TOKEN}");
    assert_eq!(seen(&uaa), vec![(Some("Basic Y2Y6".to_owned()), expected_body)]);
    assert_eq!(seen(&cc), vec![format!("bearer {new_access}")], "renewed before the request, not after a 401");

    let after = read_json(&path);
    assert_eq!(after["AccessToken"], format!("bearer {new_access}"));
    assert_eq!(after["RefreshToken"], "NEW-REFRESH");
    let (mut before, mut after) = (before, after);
    for key in ["AccessToken", "RefreshToken"] {
        before.remove(key);
        after.remove(key);
    }
    assert_eq!(after, before, "only the two token fields change");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let files: Vec<_> =
        std::fs::read_dir(path.parent().expect("dir")).expect("ls").map(|e| e.expect("e").file_name()).collect();
    assert_eq!(files, vec![std::ffi::OsString::from("config.json")], "no temporary file left behind");
}

#[tokio::test]
async fn a_rejected_token_is_renewed_once_and_the_request_sent_again() {
    let old = format!("bearer {}", jwt(3600, "old"));
    let new_access = jwt(3600, "new");
    let (router, uaa, cc) = cc_and_uaa(new_access.clone(), Some("NEW-REFRESH"), vec![format!("bearer {new_access}")]);
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), &api, &old, |_| {});

    let session = Session::connect(options(home.path())).await.expect("session");
    session.client().get_app(APP_GUID).await.expect("app after renewal");

    assert_eq!(seen(&uaa).len(), 1);
    assert_eq!(seen(&cc), vec![old, format!("bearer {new_access}")]);
}

#[tokio::test]
async fn a_token_rejected_again_after_renewal_fails_with_a_cf_login_hint() {
    let old = format!("bearer {}", jwt(3600, "old"));
    let (router, uaa, cc) = cc_and_uaa(jwt(3600, "new"), Some("NEW-REFRESH"), vec![]);
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), &api, &old, |_| {});

    let session = Session::connect(options(home.path())).await.expect("session");
    let err = session.client().get_app(APP_GUID).await.expect_err("401 twice");

    assert_eq!(seen(&uaa).len(), 1, "renewed once only");
    assert_eq!(seen(&cc).len(), 2, "sent again once only");
    let shown = err.to_string();
    assert!(shown.starts_with("CF-InvalidAuthToken (1000): Invalid Auth Token — "), "{shown}");
    assert!(shown.contains("run `cf login`"), "{shown}");
}

#[tokio::test]
async fn a_refresh_token_uaa_no_longer_accepts_asks_to_log_in_again() {
    let router = Router::new()
        .route("/oauth/token", post(|| async { json(401, shared("uaa/error-invalid-token.example.json")) }));
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    let path = write_cf_config(home.path(), &api, &format!("bearer {}", jwt(-10, "expired")), |_| {});
    let before = std::fs::read_to_string(&path).expect("read");

    let session = Session::connect(options(home.path())).await.expect("session");
    let err = session.client().get_app(APP_GUID).await.expect_err("cannot renew");

    assert!(matches!(err, Error::Token(TokenError::InvalidRefreshToken)), "{err:?}");
    assert!(err.to_string().starts_with("The token expired, was revoked, or the token ID is incorrect."));
    assert!(err.to_string().contains("run `cf login`"));
    assert_eq!(err.exit_code(), EXIT_USAGE);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), before, "config untouched");
}

#[tokio::test]
async fn a_cf_auth_client_credentials_login_is_renewed_with_that_grant() {
    let new_access = jwt(3600, "client");
    let (router, uaa, _cc) = cc_and_uaa(new_access.clone(), None, vec![format!("bearer {new_access}")]);
    let api = serve(router).await;
    let home = tempfile::tempdir().expect("tempdir");
    let path = write_cf_config(home.path(), &api, &format!("bearer {}", jwt(5, "client")), |c| {
        c["UAAGrantType"] = "client_credentials".into();
        c["UAAOAuthClient"] = "pipeline".into();
        c["RefreshToken"] = "".into();
    });

    let session = Session::connect(options(home.path())).await.expect("session");
    session.client().get_app(APP_GUID).await.expect("app");

    assert_eq!(seen(&uaa), vec![(None, "client_id=pipeline&client_secret=&grant_type=client_credentials".to_owned())]);
    assert_eq!(read_json(&path)["AccessToken"], format!("bearer {new_access}"));
}

fn root_and_target(uaa_log: UaaLog, access: String) -> Router {
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move {
                let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
                let base = format!("http://{host}");
                let root = shared("cc-docs-examples/root__global_root.json")
                    .replace("https://login.example.org", &base)
                    .replace("https://uaa.example.org", "http://127.0.0.1:9");
                json(200, root)
            }),
        )
        .route(
            "/oauth/token",
            post(move |headers: HeaderMap, body: String| {
                let uaa = uaa_log.clone();
                let access = access.clone();
                async move {
                    record(&uaa, (authorization(&headers), body));
                    token_answer(&access, None)
                }
            }),
        )
        .route(
            "/v3/organizations",
            get(|| async { json(200, r#"{"pagination":{"next":null},"resources":[{"guid":"org-guid","name":"o"}]}"#) }),
        )
        .route(
            "/v3/spaces",
            get(|q: axum::extract::RawQuery| async move {
                assert_eq!(q.0.as_deref(), Some("names=s&organization_guids=org-guid"));
                json(200, r#"{"pagination":{"next":null},"resources":[{"guid":"space-guid","name":"s"}]}"#)
            }),
        )
}

#[tokio::test]
async fn client_credentials_from_the_environment_find_uaa_in_the_root_and_write_no_file() {
    let uaa = log();
    let api = serve(root_and_target(uaa.clone(), jwt(3600, "ci"))).await;
    let home = tempfile::tempdir().expect("tempdir");
    let mut opts = options(home.path());
    opts.env = LoginEnv {
        cf_home: Some(home.path().to_owned()),
        api: Some(api.clone()),
        client_id: Some("ci".into()),
        client_secret: Some("s3cret".into()),
        ..LoginEnv::default()
    };
    opts.org = Some("o".into());
    opts.space = Some("s".into());

    let session = Session::connect(opts).await.expect("session");
    let target = session.target().await.expect("target");

    assert_eq!((target.org.guid.as_str(), target.space.guid.as_str()), ("org-guid", "space-guid"));
    assert_eq!(seen(&uaa), vec![(None, "client_id=ci&client_secret=s3cret&grant_type=client_credentials".to_owned())]);
    assert_eq!(std::fs::read_dir(home.path()).expect("ls").count(), 0, "no config written in environment mode");
}

#[tokio::test]
async fn username_and_password_from_the_environment_use_the_cf_client() {
    let uaa = log();
    let api = serve(root_and_target(uaa.clone(), jwt(3600, "ci-user"))).await;
    let home = tempfile::tempdir().expect("tempdir");
    let mut opts = options(home.path());
    opts.env = LoginEnv {
        api: Some(api),
        username: Some("ci-user".into()),
        password: Some("p@ss word".into()),
        ..LoginEnv::default()
    };
    opts.org = Some("o".into());
    opts.space = Some("s".into());

    let session = Session::connect(opts).await.expect("session");
    session.target().await.expect("target");

    assert_eq!(
        seen(&uaa),
        vec![(Some("Basic Y2Y6".to_owned()), "grant_type=password&password=p%40ss+word&username=ci-user".to_owned())]
    );
}

#[tokio::test]
async fn the_environment_login_needs_credentials_and_a_space() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut opts = options(home.path());
    opts.env.api = Some("http://127.0.0.1:9".into());
    let err = Session::connect(opts).await.expect_err("no credentials");
    assert!(matches!(err, Error::Config(ConfigError::EnvCredentialsMissing)), "{err}");
    assert_eq!(err.exit_code(), EXIT_USAGE);

    let uaa = log();
    let api = serve(root_and_target(uaa, jwt(3600, "ci"))).await;
    let mut opts = options(home.path());
    opts.env = LoginEnv {
        api: Some(api),
        client_id: Some("ci".into()),
        client_secret: Some("x".into()),
        ..LoginEnv::default()
    };
    opts.org = Some("o".into());
    let session = Session::connect(opts).await.expect("session");
    let err = session.target().await.expect_err("no space");
    assert_eq!(err.to_string(), "no space targeted; run `cf target -s SPACE` or pass `--space` (env CF_SPACE)");
    assert_eq!(err.exit_code(), EXIT_USAGE);
}

#[tokio::test]
async fn the_cf_target_is_used_without_any_request_and_flags_override_it() {
    let home = tempfile::tempdir().expect("tempdir");
    // Nothing listens at this address: a request would fail.
    write_cf_config(home.path(), "http://127.0.0.1:9", &format!("bearer {}", jwt(3600, "u")), |_| {});
    let session = Session::connect(options(home.path())).await.expect("session");
    let target = session.target().await.expect("target");
    assert_eq!(target.org.name, "my-org");
    assert_eq!(target.space.guid, "885a8cb3-c07b-4856-b448-eeb10bf36236");

    let mut opts = options(home.path());
    opts.space = Some("dev".into());
    let target = Session::connect(opts).await.expect("session").target().await.expect("same space by name");
    assert_eq!(target.space.name, "dev");
}

#[tokio::test]
async fn without_login_or_space_the_errors_say_what_to_run() {
    let home = tempfile::tempdir().expect("tempdir");
    let err = Session::connect(options(home.path())).await.expect_err("no config");
    assert!(err.to_string().starts_with("not logged in: "), "{err}");
    assert!(err.to_string().contains("run `cf login`"), "{err}");

    write_cf_config(home.path(), "http://127.0.0.1:9", "", |c| c["RefreshToken"] = "".into());
    let err = Session::connect(options(home.path())).await.expect_err("logged out");
    assert!(err.to_string().contains("holds no token; run `cf login`"), "{err}");

    write_cf_config(home.path(), "http://127.0.0.1:9", &format!("bearer {}", jwt(3600, "u")), |c| {
        c["SpaceFields"] = serde_json::json!({"GUID": "", "Name": "", "AllowSSH": false});
    });
    let session = Session::connect(options(home.path())).await.expect("session");
    let err = session.target().await.expect_err("no space");
    assert!(err.to_string().contains("run `cf target -s SPACE` or pass `--space`"), "{err}");
    assert_eq!(err.exit_code(), EXIT_USAGE);
}
