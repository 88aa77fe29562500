//! The double's route services and route-policy domains: CC's service route bindings (shape,
//! filters, visibility) and the router sending a bound route's requests through its service
//! (SSO and pass-through), and refusing routes of a domain that enforces route policies.

use std::time::Duration;

use http::Method;
use serde_json::Value;
use tests::route_service::{Behaviour, LOGIN_URL};

use crate::{common::Env, conformance::check};

/// A started `shop` (one built-in instance) on `shop.apps.example.com`, and its route's GUID.
async fn shop(env: &Env) -> (String, Vec<tests::serve::Server>) {
    let app = env.cf.add_app(&env.std.space, "shop");
    let servers = env.cf.serve_instances(&app.guid, "shop", "web", 1).await.expect("shop instance");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&route, &app.guid, "web", 8080);
    assert!(env.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    (route, servers)
}

async fn through_router(env: &Env, host: &str, extra: &[(&str, &str)]) -> tests::client::Reply {
    let mut headers = vec![("host", host)];
    headers.extend_from_slice(extra);
    env.http
        .send(Method::GET, &format!("{}/items?x=1", env.cf.router_url()), &headers, None)
        .await
        .expect("router answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_bindings_have_the_docs_shape_and_filter_by_route_and_instance() {
    let env = Env::new().await;
    let (route, _servers) = shop(&env).await;
    let other = env.cf.add_route(&env.std.space, &env.std.domain, "other", "");
    let b1 = env.cf.bind_route_service(&route, "sso", "https://sso.example.com/rs");
    let b2 = env.cf.bind_route_service(&other, "limiter", "https://limiter.example.com");

    for b in &mut env.cf.cc.state().route_bindings {
        b.metadata.labels.insert("baz".into(), "qux".into());
        b.metadata.annotations.insert("foo".into(), "bar".into());
    }
    let all = env.get("/v3/service_route_bindings?per_page=1").await;
    assert_eq!(all.status, 200, "{}", all.text());
    let documented = [
        // A user-provided instance's binding has no `parameters` link (the docs' first example is a
        // managed one), and a binding created through v3 has a last operation (the docs show null).
        "missing $.resources[].links.parameters",
        "type $.resources[].last_operation: null in docs, object here",
    ];
    let mismatch = check("service_route_bindings__paginated_list_of_service_route_bindings", &all.json(), &documented);
    assert!(mismatch.is_none(), "{}", mismatch.unwrap_or_default());
    let one = env.get(&format!("/v3/service_route_bindings/{b1}")).await;
    let mismatch =
        check("service_route_bindings__single_service_route_binding", &one.json(), &["missing $.links.parameters"]);
    assert!(mismatch.is_none(), "{}", mismatch.unwrap_or_default());
    assert_eq!(one.json()["route_service_url"], "https://sso.example.com/rs");
    assert_eq!(one.json()["relationships"]["route"]["data"]["guid"], route.as_str());

    let guids = |v: &Value| -> Vec<String> {
        v["resources"]
            .as_array()
            .map(|a| a.iter().map(|b| b["guid"].as_str().unwrap_or("").to_owned()).collect())
            .unwrap_or_default()
    };
    let both = env.get(&format!("/v3/service_route_bindings?route_guids={route},{other}")).await.json();
    assert_eq!(guids(&both), [b1.clone(), b2.clone()]);
    let first = env.get(&format!("/v3/service_route_bindings?route_guids={route}")).await.json();
    assert_eq!(guids(&first), [b1.as_str()]);
    let named = env.get("/v3/service_route_bindings?service_instance_names=limiter").await.json();
    assert_eq!(guids(&named), [b2.as_str()]);
    assert_eq!(guids(&env.get("/v3/service_route_bindings?route_guids=nope").await.json()), Vec::<String>::new());
    // `GET /v3/routes?service_instance_guids=` finds the bound route.
    let instance =
        first["resources"][0]["relationships"]["service_instance"]["data"]["guid"].as_str().unwrap_or("").to_owned();
    let routes = env.get(&format!("/v3/routes?service_instance_guids={instance}")).await.json();
    assert_eq!(guids(&routes), [route.as_str()]);

    let included =
        env.get(&format!("/v3/service_route_bindings?route_guids={route}&include=service_instance,route")).await.json();
    assert_eq!(included["included"]["service_instances"][0]["name"], "sso", "{included}");
    assert_eq!(included["included"]["routes"][0]["guid"], route.as_str(), "{included}");

    let bad = env.get("/v3/service_route_bindings?include=app").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(
        bad.json()["errors"][0]["detail"],
        "The query parameter is invalid: Invalid included resource: 'app'. Valid included resources are: 'route', 'service_instance'"
    );
    let unknown = env.get("/v3/service_route_bindings?names=x").await;
    assert_eq!(
        (unknown.status.as_u16(), unknown.json()["errors"][0]["detail"].clone()),
        (
            400,
            "The query parameter is invalid: Unknown query parameter(s): 'names'. Valid parameters are: 'page', \
             'per_page', 'order_by', 'created_ats', 'updated_ats', 'guids', 'service_instance_guids', \
             'service_instance_names', 'route_guids', 'include', 'label_selector'"
                .into()
        )
    );
    let missing = env.get("/v3/service_route_bindings/nope").await;
    assert_eq!(
        (missing.status.as_u16(), missing.json()["errors"][0]["detail"].clone()),
        (404, "Service route binding not found".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_bindings_are_visible_to_readers_of_the_instances_space_only() {
    let env = Env::new().await;
    let (route, _servers) = shop(&env).await;
    env.cf.bind_route_service(&route, "sso", "https://sso.example.com");
    let auditor = env.get_as("/v3/service_route_bindings", &env.bearer("auditor")).await.json();
    assert_eq!(auditor["pagination"]["total_results"], 1, "{auditor}");
    let stranger = env.cf.add_user("stranger", "stranger-pass", &[(&env.std.other_space, tests::Role::Developer)]);
    let none = env.get_as("/v3/service_route_bindings", &env.bearer(&stranger.name)).await.json();
    assert_eq!(none["pagination"]["total_results"], 0, "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_route_answers_through_its_route_service() {
    let env = Env::new().await;
    let (route, _servers) = shop(&env).await;
    let host = "shop.apps.example.com";
    let plain = through_router(&env, host, &[]).await;
    assert_eq!((plain.status.as_u16(), plain.header("x-backend")), (200, Some("shop/0")), "unbound: the app answers");

    let sso = env.cf.start_route_service(Behaviour::Sso).await.expect("sso starts");
    env.cf.bind_route_service(&route, "sso", &sso.url());
    let login = through_router(&env, host, &[]).await;
    assert_eq!((login.status.as_u16(), login.header("location")), (302, Some(LOGIN_URL)), "the service answers itself");
    assert_eq!(login.header("x-backend"), None);
    let session = through_router(&env, host, &[("cookie", "theme=dark; session=abc")]).await;
    assert_eq!(
        (session.status.as_u16(), session.header("x-backend")),
        (200, Some("shop/0")),
        "with a session it passes on"
    );

    // A forged signature is not a way past the service (gorouter `ArrivedViaRouteService`).
    let forged = through_router(
        &env,
        host,
        &[("x-cf-proxy-signature", "forged"), ("x-cf-forwarded-url", "https://shop.apps.example.com/items?x=1")],
    )
    .await;
    assert_eq!(forged.status.as_u16(), 502, "{}", forged.text());
    assert!(forged.text().contains("Failed to validate Route Service Signature"), "{}", forged.text());

    let proxy = env.cf.start_route_service(Behaviour::Proxy).await.expect("proxy starts");
    let other = env.cf.add_route(&env.std.space, &env.std.domain, "www", "");
    let app = env.cf.cc.state().route(&route).map(|r| r.destinations[0].app_guid.clone()).expect("mapped");
    env.cf.map_route(&other, &app, "web", 8080);
    env.cf.bind_route_service(&other, "proxy", &proxy.url());
    assert!(env.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    let passed = through_router(&env, "www.apps.example.com", &[]).await;
    assert_eq!((passed.status.as_u16(), passed.header("x-backend")), (200, Some("shop/0")), "{}", passed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_enforcing_route_policies_is_presented_so_and_its_routes_refuse_outside_callers() {
    let env = Env::new().await;
    let app = env.cf.add_app(&env.std.space, "shop");
    let _servers = env.cf.serve_instances(&app.guid, "shop", "web", 1).await.expect("shop instance");
    let domain = env.cf.add_policy_domain("apps.identity", "space");
    let route = env.cf.add_route(&env.std.space, &domain, "shop", "");
    env.cf.map_route(&route, &app.guid, "web", 8080);
    assert!(env.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");

    let d = env.get(&format!("/v3/domains/{domain}")).await.json();
    assert_eq!((d["enforce_route_policies"].clone(), d["route_policies_scope"].clone()), (true.into(), "space".into()));
    let plain = env.get(&format!("/v3/domains/{}", env.std.domain)).await.json();
    assert!(plain.get("enforce_route_policies").is_none() && plain.get("route_policies_scope").is_none(), "{plain}");

    let refused = through_router(&env, "shop.apps.identity", &[]).await;
    assert_eq!(refused.status.as_u16(), 401, "{}", refused.text());
    assert_eq!(refused.header("x-backend"), None);
}
