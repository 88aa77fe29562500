//! Conformance: every resource and list the double serves has the same keys at every level and
//! the same JSON types as the matching example of the v3 docs (`tests/fixtures/capi/cc-docs-examples/`),
//! except for the differences listed with each case, which are known and explained. Error bodies
//! are compared with `tests/fixtures/capi/cc-error-bodies/` in the other test files (`assert_error`).

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};

use crate::common::{Env, assert_error, destinations, shared};

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in keys and types between `expected` (a docs example) and `actual`. Arrays are
/// compared element by element against the example's first element.
fn shape_diff(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => shape_diff(ev, av, &format!("{path}.{k}"), out),
                    None => out.push(format!("missing {path}.{k}")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("extra {path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                for item in a {
                    shape_diff(first, item, &format!("{path}[]"), out);
                }
            }
        }
        _ if kind(expected) != kind(actual) => {
            out.push(format!("type {path}: {} in docs, {} here", kind(expected), kind(actual)))
        }
        _ => {}
    }
}

fn example(name: &str) -> Value {
    serde_json::from_str(&shared(&format!("cc-docs-examples/{name}.json"))).expect("docs example is JSON")
}

/// Compares and returns a report line on mismatch.
pub(crate) fn check(name: &str, actual: &Value, documented: &[&str]) -> Option<String> {
    let mut diffs = Vec::new();
    shape_diff(&example(name), actual, "$", &mut diffs);
    diffs.sort();
    diffs.dedup();
    let mut documented: Vec<String> = documented.iter().map(|s| (*s).to_owned()).collect();
    documented.sort();
    (diffs != documented).then(|| format!("{name}:\n  found      {diffs:#?}\n  documented {documented:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_and_list_has_the_docs_shape() {
    let env = Env::with(tests::Options {
        staging_time: Duration::from_millis(100),
        deployment_time: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let s = &env.std;
    let app = env.cf.add_app_with(&s.space, "my_app", 2, true);
    let other = env.cf.add_app(&s.space, "api");
    env.cf.add_process(&other.guid, "api", 1);
    let private = env.cf.add_domain("private.example.com", false, None, Some(&s.org));
    let http_route = env.cf.add_route(&s.space, &s.domain, "a-hostname", "/some_path");
    let tcp_route = env.cf.add_tcp_route(&s.space, &s.tcp_domain, 6666);
    for (r, protocol) in [(&http_route, "http2"), (&tcp_route, "tcp")] {
        let body = json!({ "destinations": [
            { "app": { "guid": app.guid }, "protocol": protocol },
            { "app": { "guid": other.guid, "process": { "type": "api" } }, "port": 9000, "protocol": protocol },
        ]});
        assert_eq!(env.send(Method::POST, &format!("/v3/routes/{r}/destinations"), &body).await.status, 200);
        let options = json!({ "options": { "loadbalancing": "round-robin" } });
        assert_eq!(env.send(Method::PATCH, &format!("/v3/routes/{r}"), &options).await.status, 200);
    }
    let dest = env.get(&format!("/v3/routes/{http_route}/destinations")).await.json()["destinations"][0]["guid"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let build = env.send(Method::POST, "/v3/builds", &json!({ "package": { "guid": app.package } })).await.json();
    let build_guid = build["guid"].as_str().unwrap_or("").to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let staged = env.get(&format!("/v3/builds/{build_guid}")).await.json();
    let deployment = env
        .send(Method::POST, "/v3/deployments", &json!({ "relationships": { "app": { "data": { "guid": app.guid } } } }))
        .await
        .json();
    let throwaway = env.cf.add_route(&s.space, &s.domain, "gone", "");
    let del = env
        .http
        .send(Method::DELETE, &env.url(&format!("/v3/routes/{throwaway}")), &[("authorization", &env.dev)], None)
        .await
        .expect("answer");
    let job = env.http.get(del.header("location").unwrap_or(""), Some(&env.dev)).await.expect("answer").json();
    let two_per_page = "per_page=1";

    let failures: Vec<String> = [
        check(
            "root__global_root",
            &env.get("/").await.json(),
            &[
                // Only foundations with `temporary_enable_v2` still advertise v2 (CC root_controller.rb).
                "missing $.links.cloud_controller_v2",
                // Not configured in the double: CC renders them as null.
                "type $.links.log_cache: object in docs, null here",
                "type $.links.log_stream: object in docs, null here",
                "type $.links.logging: object in docs, null here",
                "type $.links.routing: object in docs, null here",
            ],
        ),
        check("root__v3_root", &env.get("/v3").await.json(), &[]),
        check(
            "info__populated_info",
            &env.get("/v3/info").await.json(),
            &[
                // `custom` is the foundation's free-form map; the double's is empty.
                "missing $.custom.arbitrary",
                // Rate limiting is off unless a test turns it on: CC sends nulls then.
                "type $.rate_limits.general_limit: number in docs, null here",
                "type $.rate_limits.reset_interval_in_minutes: number in docs, null here",
            ],
        ),
        check("organizations__organization", &env.get(&format!("/v3/organizations/{}", s.org)).await.json(), &[]),
        check("organizations__paginated_list_of_organizations", &env.get("/v3/organizations").await.json(), &[]),
        check("spaces__space", &env.get(&format!("/v3/spaces/{}", s.space)).await.json(), &[]),
        check("spaces__paginated_list_of_spaces", &env.get("/v3/spaces").await.json(), &[]),
        check("domains__single_domain", &env.get(&format!("/v3/domains/{private}")).await.json(), &[]),
        check(
            "domains__single_domain",
            &env.get(&format!("/v3/domains/{}", s.domain)).await.json(),
            &[
                // A shared domain has no owning org: null data and no org links (domain_presenter.rb).
                "missing $.links.organization",
                "missing $.links.shared_organizations",
                "type $.relationships.organization.data: object in docs, null here",
            ],
        ),
        check(
            "domains__paginated_list_of_domains",
            &env.get(&format!("/v3/domains?guids={},{}&per_page=1&order_by=-created_at", s.tcp_domain, s.domain))
                .await
                .json(),
            &[],
        ),
        check(
            "apps__single_app",
            &env.get(&format!("/v3/apps/{}", app.guid)).await.json(),
            &[
                // CC 3.228's app presenter has it; the docs example predates it.
                "extra $.links.clear_buildpack_cache",
            ],
        ),
        check(
            "apps__paginated_list_of_apps",
            &env.get(&format!("/v3/apps?{two_per_page}")).await.json(),
            &["extra $.resources[].links.clear_buildpack_cache"],
        ),
        check(
            "apps__app_current_droplet_relationship",
            &env.get(&format!("/v3/apps/{}/relationships/current_droplet", app.guid)).await.json(),
            &[],
        ),
        check(
            "processes__single_process",
            &env.get(&format!("/v3/processes/{}", app.web_process)).await.json(),
            &[
                // Newer health-check fields (the list example has them).
                "extra $.health_check.data.interval",
                "extra $.health_check.data.invocation_timeout",
                "extra $.readiness_health_check.data.interval",
            ],
        ),
        check("processes__paginated_list_of_processes", &env.get("/v3/processes?per_page=1").await.json(), &[]),
        check(
            "processes__list_of_process_stats",
            &env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json(),
            &[
                // No isolation segment: null, as in the docs' second item.
                "type $.resources[].isolation_segment: string in docs, null here",
            ],
        ),
        check("routes__single_route", &env.get(&format!("/v3/routes/{tcp_route}")).await.json(), &[]),
        check(
            "routes__paginated_list_of_routes",
            &env.get("/v3/routes?per_page=1").await.json(),
            &[
                // The docs omit `port` on HTTP routes; the real server sends `"port": null`.
                "extra $.resources[].port",
            ],
        ),
        check(
            "routes__list_of_route_destinations",
            &env.get(&format!("/v3/routes/{http_route}/destinations")).await.json(),
            &[],
        ),
        check(
            "routes__single_destination",
            &env.send(
                Method::PATCH,
                &format!("/v3/routes/{http_route}/destinations/{dest}"),
                &json!({ "protocol": "http2" }),
            )
            .await
            .json(),
            &[
                // PATCH of one destination adds links to the destination object (FACTS §1.5).
                "extra $.links",
            ],
        ),
        check("packages__single_bits_package", &env.get(&format!("/v3/packages/{}", app.package)).await.json(), &[]),
        check(
            "packages__paginated_list_of_packages",
            &env.get(&format!("/v3/packages?app_guids={}", app.guid)).await.json(),
            &[],
        ),
        check("builds__single_staging_build", &build, &[]),
        check("builds__single_staged_build", &staged, &[]),
        check(
            "droplets__single_staged_buildpack_droplet",
            &env.get(&format!("/v3/droplets/{}", app.droplet)).await.json(),
            &[
                // `process_types` is the app's own map (Procfile); the double's app has only `web`.
                "missing $.process_types.rake",
            ],
        ),
        check(
            "deployments__single_deployment",
            &deployment,
            &[
                // Only canary deployments carry canary progress and steps.
                "missing $.options.canary",
                "missing $.status.canary",
                // CC 3.228 reports a failure reason here (FACTS §2.2); the example predates it.
                "extra $.status.details.error",
            ],
        ),
        check("jobs__single_complete_job", &job, &[]),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "shape differences not documented:\n{}", failures.join("\n"));
    let _ = destinations(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_cases_match_their_bodies() {
    // Each file of cc-error-bodies is produced by a case here or in semantics/faults tests;
    // this test covers the ones that need no particular setup.
    let env = Env::new().await;
    assert_error(&env.http.get(&env.url("/v3/apps"), None).await.expect("answer"), "401-CF-NotAuthenticated");
    assert_error(&env.get_as("/v3/apps", "bearer x.y.z").await, "401-CF-InvalidAuthToken");
    assert_error(&env.get("/v3/nothing/here").await, "404-CF-NotFound-unknown-path");
    assert_error(&env.get("/v3/apps/00000000-0000-0000-0000-000000000000").await, "404-CF-ResourceNotFound-app");
    assert_error(&env.get("/v3/routes?per_page=9999").await, "400-CF-BadQueryParameter-per-page");
    assert_error(&env.get("/v3/routes?foo=1").await, "400-CF-BadQueryParameter-unknown-param");
}

async fn via_router(env: &Env, host: &str, path: &str) -> tests::client::Reply {
    let url = format!("{}{path}", env.cf.router_url());
    env.http.send(Method::GET, &url, &[("host", host)], None).await.expect("router answers")
}

/// Gorouter's own answers: 404 unknown_route with `Cache-Control: no-cache, no-store`
/// (handlers/lookup.go#handleMissingRoute), 503 no_endpoints for a route whose pool was emptied
/// (#handleUnavailableRoute), 502 `endpoint_failure (<error>)` for a dead endpoint
/// (proxy/round_tripper/error_handler.go); an app's own 502 passes through without the header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_errors_are_gorouters() {
    let env = Env::with(tests::Options { router_delay: (Duration::ZERO, Duration::ZERO), ..Default::default() }).await;
    let unknown = via_router(&env, "nope.apps.example.com", "/").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(unknown.header("x-cf-routererror"), Some("unknown_route"));

    let web = env.cf.add_app_with(&env.std.space, "web", 1, true);
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&route, &web.guid, "web", 8080);
    let servers = env.cf.serve_instances(&web.guid, "web", "web", 1).await.expect("backends");
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    assert_eq!(via_router(&env, "shop.apps.example.com", "/").await.status, 200);

    drop(servers);
    // The backend stops asynchronously: ask until the router no longer reaches it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let dead = loop {
        let r = via_router(&env, "shop.apps.example.com", "/").await;
        if r.status != 200 || tokio::time::Instant::now() > deadline {
            break r;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(dead.status, 502);
    let header = dead.header("x-cf-routererror").unwrap_or("");
    assert!(header.starts_with("endpoint_failure (") && header.ends_with(')'), "{header}");

    // Emptied pool: every destination unmapped.
    let list = env.get(&format!("/v3/routes/{route}/destinations")).await.json();
    let dest = list["destinations"][0]["guid"].as_str().expect("destination").to_owned();
    let url = env.url(&format!("/v3/routes/{route}/destinations/{dest}"));
    let del = env.http.send(Method::DELETE, &url, &[("authorization", &env.dev)], None).await.expect("answer");
    assert_eq!(del.status, 204);
    assert!(env.cf.router.wait_settled(Duration::from_secs(2)).await);
    let empty = via_router(&env, "shop.apps.example.com", "/").await;
    assert_eq!(empty.status, 503, "{}", empty.text());
    assert_eq!(empty.header("x-cf-routererror"), Some("no_endpoints"));
    assert_eq!(
        empty.text(),
        "503 Service Unavailable: Requested route ('shop.apps.example.com') has no available endpoints.\n"
    );
}

/// The list endpoints around staging and the app's environment, against the docs' examples:
/// `GET /v3/builds`, `/v3/deployments`, `/v3/droplets`, `/v3/buildpacks`,
/// `/v3/apps/:guid/droplets`, `/v3/apps/:guid/packages` and `/v3/apps/:guid/env`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_lists_and_env_have_the_docs_shape() {
    let env = Env::with(tests::Options {
        staging_time: Duration::from_millis(50),
        deployment_time: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let s = &env.std;
    let app = env.cf.add_app_with(&s.space, "my_app", 1, true);
    let route = env.cf.add_route(&s.space, &s.domain, "my-app", "");
    env.cf.map_route(&route, &app.guid, "web", 8080);
    let build = env.send(Method::POST, "/v3/builds", &json!({ "package": { "guid": app.package } })).await;
    assert_eq!(build.status, 201, "{}", build.text());
    let deployment = env
        .send(Method::POST, "/v3/deployments", &json!({ "relationships": { "app": { "data": { "guid": app.guid } } } }))
        .await;
    assert_eq!(deployment.status, 201, "{}", deployment.text());
    let g = &app.guid;

    let failures: Vec<String> = [
        check("builds__paginated_list_of_builds", &env.get(&format!("/v3/builds?app_guids={g}")).await.json(), &[]),
        check(
            "deployments__paginated_list_of_deployments",
            &env.get(&format!("/v3/deployments?app_guids={g}")).await.json(),
            &[
                // The list example predates the fields the single example has (links.cancel,
                // links.continue, options.*), and CC 3.228's failure reason.
                "extra $.resources[].links.cancel",
                "extra $.resources[].links.continue",
                "extra $.resources[].options.disk_in_mb",
                "extra $.resources[].options.log_rate_limit_in_bytes_per_second",
                "extra $.resources[].options.memory_in_mb",
                "extra $.resources[].options.web_instances",
                "extra $.resources[].status.details.error",
            ],
        ),
        check(
            "droplets__paginated_list_of_droplets",
            &env.get(&format!("/v3/droplets?app_guids={g}")).await.json(),
            &[],
        ),
        check("droplets__paginated_list_of_droplets", &env.get(&format!("/v3/apps/{g}/droplets")).await.json(), &[]),
        check("packages__paginated_list_of_packages", &env.get(&format!("/v3/apps/{g}/packages")).await.json(), &[]),
        check(
            "buildpacks__paginated_list_of_buildpacks",
            &env.get("/v3/buildpacks").await.json(),
            &[
                // The example has three buildpacks on pages of two; the double has one.
                "type $.pagination.next: object in docs, null here",
                // The example's buildpack awaits its upload; the double's is uploaded.
                "type $.resources[].filename: null in docs, string here",
            ],
        ),
        check(
            "apps__app_env",
            &env.get(&format!("/v3/apps/{g}/env")).await.json(),
            &[
                // The example's app has a service binding and set variables; the double's none.
                "missing $.environment_variables.RAILS_ENV",
                "missing $.running_env_json.HTTP_PROXY",
                "missing $.staging_env_json.GEM_CACHE",
                "missing $.system_env_json.VCAP_SERVICES.mysql",
                // vars_builder.rb#to_hash has these; the docs example predates them.
                "extra $.application_env_json.VCAP_APPLICATION.application_id",
                "extra $.application_env_json.VCAP_APPLICATION.cf_api",
                "extra $.application_env_json.VCAP_APPLICATION.organization_id",
                "extra $.application_env_json.VCAP_APPLICATION.organization_name",
            ],
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "shape differences not documented:\n{}", failures.join("\n"));

    // Who reads the environment (apps_controller.rb#show_env, permissions.rb): a Supporter gets
    // system_env_json redacted; an Auditor may read the app but not its environment.
    let supporter = env.get_as(&format!("/v3/apps/{g}/env"), &env.bearer("supporter")).await.json();
    assert_eq!(supporter["system_env_json"], json!({ "redacted_message": "[PRIVATE DATA HIDDEN]" }));
    assert_eq!(
        env.get(&format!("/v3/apps/{g}/env")).await.json()["application_env_json"]["VCAP_APPLICATION"]["uris"],
        json!(["my-app.apps.example.com"])
    );
    assert_error(&env.get_as(&format!("/v3/apps/{g}/env"), &env.bearer("auditor")).await, "403-CF-NotAuthorized");
    // droplets_controller.rb#show redacts for all but developers; the current-droplet endpoint
    // (which switchctl reads) presents unredacted.
    let droplet = env.get_as(&format!("/v3/droplets/{}", app.droplet), &env.bearer("auditor")).await.json();
    assert_eq!(
        (droplet["execution_metadata"].clone(), droplet["process_types"].clone()),
        (json!("[PRIVATE DATA HIDDEN]"), json!({ "redacted_message": "[PRIVATE DATA HIDDEN]" }))
    );
    let current = env.get_as(&format!("/v3/apps/{g}/droplets/current"), &env.bearer("auditor")).await.json();
    assert_eq!(current["process_types"], json!({ "web": "./app" }));

    // The nesting rules of droplets_list_message.rb / packages_list_message.rb.
    let text = |r: tests::client::Reply| (r.status.as_u16(), r.json()["errors"][0]["detail"].clone());
    assert_eq!(
        text(env.get(&format!("/v3/apps/{g}/droplets?space_guids=x&app_guids=y")).await),
        (400, json!("The query parameter is invalid: Unknown query parameter(s): 'app_guids', 'space_guids'"))
    );
    assert_eq!(
        text(env.get("/v3/droplets?current=true").await),
        (400, json!("The query parameter is invalid: Unknown query parameter(s): 'current'"))
    );
    let current = env.get(&format!("/v3/apps/{g}/droplets?current=true")).await.json();
    assert_eq!(current["resources"][0]["execution_metadata"], "[PRIVATE DATA HIDDEN IN LISTS]");
    assert_eq!(current["resources"][0]["guid"], json!(app.droplet));
    assert_eq!(
        current["pagination"]["first"]["href"],
        format!("{}/v3/apps/{g}/droplets?current=true&page=1&per_page=50", env.cf.api_url())
    );
}
