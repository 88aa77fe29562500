//! The UAA double's token endpoint, as the cf CLI calls it.

use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::common::{Env, shared};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

async fn token(env: &Env, basic: bool, form: &str) -> tests::client::Reply {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")];
    if basic {
        headers.push(("authorization", "Basic Y2Y6"));
    }
    let url = format!("{}/oauth/token", env.cf.uaa_url());
    env.http.send(Method::POST, &url, &headers, Some(form.as_bytes().to_vec())).await.expect("UAA answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_and_refresh_grants_answer_like_uaa() {
    let env = Env::new().await;
    let login = token(&env, true, "grant_type=password&password=developer-pass&username=developer").await;
    assert_eq!(login.status, 200, "{}", login.text());
    let expected: Value =
        serde_json::from_str(&shared("uaa/token-refresh-response.password-grant.example.json")).expect("json");
    assert_eq!(keys(&login.json()), keys(&expected));
    assert_eq!(login.json()["token_type"], "bearer");
    let access = login.json()["access_token"].as_str().expect("token").to_owned();
    let claims = tests::jwt::decode_unverified(&access).expect("a JWT");
    assert_eq!(claims.user_name.as_deref(), Some("developer"));
    assert!(claims.has_scope("cloud_controller.write") && claims.exp > claims.iat);
    assert_eq!(env.get_as("/v3/apps", &format!("bearer {access}")).await.status, 200);

    let refresh = login.json()["refresh_token"].as_str().expect("refresh").to_owned();
    let refreshed = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(refreshed.status, 200);
    // With rotation on, the old refresh token is spent.
    env.cf.uaa.set_refresh_token_rotation(true);
    let rotated = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(rotated.status, 200);
    assert_ne!(rotated.json()["refresh_token"], Value::from(refresh.as_str()), "a rotated grant gives a new token");
    let reused = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!((reused.status.as_u16(), reused.json()["error"].clone()), (401, Value::from("invalid_token")));
    let error: Value = serde_json::from_str(&shared("uaa/error-invalid-token.example.json")).expect("json");
    assert_eq!(keys(&reused.json()), keys(&error));

    let wrong = token(&env, true, "grant_type=password&password=nope&username=developer").await;
    assert_eq!((wrong.status.as_u16(), wrong.json()["error"].clone()), (401, Value::from("unauthorized")));
    let unsupported = token(&env, true, "grant_type=magic").await;
    assert_eq!(unsupported.status, 400);
}

/// UAA's default token policy does not rotate refresh tokens (TokenPolicy.java
/// `refreshTokenRotate = false`): the grant answers with the same refresh token, and it keeps
/// working; each refresh still gives a new access token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_are_not_rotated_by_default() {
    let env = Env::new().await;
    let login = token(&env, true, "grant_type=password&password=developer-pass&username=developer").await;
    let refresh = login.json()["refresh_token"].as_str().expect("refresh").to_owned();
    let first = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["refresh_token"], Value::from(refresh.as_str()), "the same refresh token comes back");
    let second = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(second.status, 200, "the refresh token is still valid: {}", second.text());
    assert_ne!(first.json()["access_token"], second.json()["access_token"]);
    env.cf.uaa.revoke_refresh_tokens();
    let revoked = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(revoked.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_has_no_refresh_token_and_lifetimes_are_configurable() {
    let env = Env::new().await;
    env.cf.uaa.add_client("ci", "s3cret", &["cloud_controller.read", "cloud_controller.write"]);
    let cc = token(&env, false, "client_id=ci&client_secret=s3cret&grant_type=client_credentials").await;
    assert_eq!(cc.status, 200, "{}", cc.text());
    let expected: Value =
        serde_json::from_str(&shared("uaa/token-response.client-credentials.example.json")).expect("json");
    assert_eq!(keys(&cc.json()), keys(&expected));
    let claims = tests::jwt::decode_unverified(cc.json()["access_token"].as_str().unwrap_or("")).expect("JWT");
    assert_eq!((claims.user_id, claims.client_id.as_str()), (None, "ci"));
    let bad = token(&env, false, "client_id=ci&client_secret=wrong&grant_type=client_credentials").await;
    assert_eq!(bad.status, 401);

    env.cf.uaa.set_access_token_lifetime(Duration::from_secs(1));
    let short = token(&env, true, "grant_type=password&password=developer-pass&username=developer").await.json();
    assert_eq!(short["expires_in"], 1);
    env.cf.uaa.set_refresh_token_lifetime(Duration::ZERO);
    let r = token(&env, true, "grant_type=password&password=developer-pass&username=developer").await.json();
    let refresh = r["refresh_token"].as_str().unwrap_or("").to_owned();
    let expired = token(&env, true, &format!("grant_type=refresh_token&refresh_token={refresh}")).await;
    assert_eq!(expired.status, 401);
}
