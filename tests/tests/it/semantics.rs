//! The double's own semantics: destinations, pagination, label selectors, auth, metadata, restage.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tests::Role;

use crate::common::{Env, assert_error, destinations};

fn guids(v: &Value) -> Vec<String> {
    v["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .map(|d| d["guid"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_is_idempotent_and_answers_200_with_every_destination() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let b = env.cf.add_app(&env.std.space, "b");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let path = format!("/v3/routes/{route}/destinations");

    let first = env.send(Method::POST, &path, &destinations(&[&a.guid])).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let again = env.send(Method::POST, &path, &destinations(&[&a.guid])).await;
    assert_eq!(again.status, 200);
    assert_eq!(guids(&first.json()), guids(&again.json()), "same destination, same guid");

    let both = env.send(Method::POST, &path, &destinations(&[&b.guid])).await.json();
    let mut sorted = guids(&both);
    sorted.sort();
    assert_eq!(guids(&both), sorted, "sorted by guid");
    assert_eq!(both["destinations"].as_array().map(Vec::len), Some(2));
    let d = &both["destinations"][0];
    assert_eq!(
        (d["port"].clone(), d["protocol"].clone(), d["weight"].clone()),
        (json!(8080), json!("http1"), Value::Null)
    );
    assert_eq!(d["app"]["process"]["type"], "web");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_keeps_the_guids_of_unchanged_destinations_in_one_step() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let b = env.cf.add_app(&env.std.space, "b");
    let c = env.cf.add_app(&env.std.space, "c");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let keep = env.cf.map_route(&route, &a.guid, "web", 8080);
    let gone = env.cf.map_route(&route, &b.guid, "web", 8080);
    let path = format!("/v3/routes/{route}/destinations");

    let body = json!({ "destinations": [
        { "app": { "guid": a.guid, "process": { "type": "web" } }, "port": 8080, "protocol": "http1" },
        { "app": { "guid": c.guid } },
    ]});
    let reply = env.send(Method::PATCH, &path, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after = guids(&reply.json());
    assert!(after.contains(&keep), "unchanged destination keeps its guid");
    assert!(!after.contains(&gone), "unlisted destination is removed");
    assert_eq!(after.len(), 2);
    let apps: Vec<Value> =
        reply.json()["destinations"].as_array().expect("list").iter().map(|d| d["app"]["guid"].clone()).collect();
    assert!(apps.contains(&json!(c.guid)));

    let empty = env.send(Method::PATCH, &path, &json!({ "destinations": [] })).await;
    assert_eq!((empty.status.as_u16(), empty.json()["destinations"].clone()), (200, json!([])));
    let dup = env.send(Method::PATCH, &path, &destinations(&[&a.guid, &a.guid])).await;
    assert_error(&dup, "422-CF-UnprocessableEntity-duplicate-destinations");
    let insert_empty = env.send(Method::POST, &path, &json!({ "destinations": [] })).await;
    assert_error(&insert_empty, "422-CF-UnprocessableEntity-empty-insert");
}

#[tokio::test]
async fn destination_changes_through_the_api_leave_map_and_unmap_audit_events() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let b = env.cf.add_app(&env.std.space, "b");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&route, &a.guid, "worker", 9000);
    let path = format!("/v3/routes/{route}/destinations");
    let reply = env.send(Method::PATCH, &path, &destinations(&[&b.guid])).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let q = format!("/v3/audit_events?types=audit.app.unmap-route&target_guids={}&order_by=-created_at", a.guid);
    let events = env.get(&q).await.json();
    let unmap = &events["resources"][0];
    assert_eq!(events["resources"].as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(unmap["type"], "audit.app.unmap-route");
    assert_eq!((unmap["target"]["guid"].clone(), unmap["target"]["type"].clone()), (json!(a.guid), json!("app")));
    let data = &unmap["data"];
    assert_eq!((data["route_guid"].clone(), data["process_type"].clone()), (json!(route), json!("worker")));
    assert_eq!((data["app_port"].clone(), data["protocol"].clone()), (json!(9000), json!("http1")));
    let mapped = env.get(&format!("/v3/audit_events?types=audit.app.map-route&target_guids={}", b.guid)).await;
    assert_eq!(mapped.json()["pagination"]["total_results"], 1, "{}", mapped.text());
    // Seeding is not an API call and leaves no event.
    let seeded = env.get(&format!("/v3/audit_events?types=audit.app.map-route&target_guids={}", a.guid)).await;
    assert_eq!(seeded.json()["pagination"]["total_results"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_204_and_422_for_an_unknown_destination() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let d = env.cf.map_route(&route, &a.guid, "web", 8080);
    let url = env.url(&format!("/v3/routes/{route}/destinations/{d}"));
    let gone = env.http.send(Method::DELETE, &url, &[("authorization", &env.dev)], None).await.expect("answer");
    assert_eq!(gone.status, 204);
    assert!(gone.body.is_empty());
    let again = env.http.send(Method::DELETE, &url, &[("authorization", &env.dev)], None).await.expect("answer");
    assert_error(&again, "422-CF-UnprocessableEntity-unmap-unknown-destination");
    let missing = env.get(&format!("/v3/routes/{}", uuid::Uuid::new_v4())).await;
    assert_error(&missing, "404-CF-ResourceNotFound-route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_app_outside_the_routes_spaces_is_422_until_the_route_is_shared() {
    let env = Env::new().await;
    let elsewhere = env.cf.add_app(&env.std.other_space, "elsewhere");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let path = format!("/v3/routes/{route}/destinations");
    let reply = env.send(Method::POST, &path, &destinations(&[&elsewhere.guid])).await;
    assert_error(&reply, "422-CF-UnprocessableEntity-destination-space");

    env.cf.share_route(&route, &env.std.other_space);
    let shared = env.send(Method::POST, &path, &destinations(&[&elsewhere.guid])).await;
    assert_eq!(shared.status, 200, "{}", shared.text());

    let unknown = env.send(Method::POST, &path, &destinations(&["00000000-0000-0000-0000-000000000000"])).await;
    assert_error(&unknown, "422-CF-UnprocessableEntity-app-guid-missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_101st_destination_is_422() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    // Destinations are unique per (app, process, port): 100 ports of one app fill the route, in
    // requests of at most 10 ports each (CC: "Process must have at most 10 exposed ports.").
    let path = format!("/v3/routes/{route}/destinations");
    let mut full = None;
    for chunk in 0..10 {
        let list: Vec<Value> =
            (0..10).map(|i| json!({ "app": { "guid": a.guid }, "port": 2000 + chunk * 10 + i })).collect();
        let r = env.send(Method::POST, &path, &json!({ "destinations": list })).await;
        assert_eq!(r.status, 200, "{}", r.text());
        full = Some(r);
    }
    let full = full.expect("ten requests");
    assert_eq!(full.json()["destinations"].as_array().map(Vec::len), Some(100));
    let one_more =
        env.send(Method::POST, &path, &json!({ "destinations": [{ "app": { "guid": a.guid }, "port": 3000 }] })).await;
    assert_eq!(one_more.status, 422);
    assert_eq!(one_more.json()["errors"][0]["detail"], "Routes can be mapped to at most 100 destinations.");
    let too_many: Vec<Value> = (0..101).map(|i| json!({ "app": { "guid": a.guid }, "port": 4000 + i })).collect();
    let replace = env.send(Method::PATCH, &path, &json!({ "destinations": too_many })).await;
    assert_eq!(
        replace.json()["errors"][0]["detail"],
        "Destinations must be an array containing between 0 and 100 destination objects."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_120_routes_in_pages_of_50() {
    let env = Env::new().await;
    for i in 0..120 {
        env.cf.add_route(&env.std.space, &env.std.domain, &format!("r{i:03}"), "");
    }
    let mut url = env.url(&format!("/v3/routes?per_page=50&space_guids={}", env.std.space));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    for _ in 0..5 {
        let page = env.http.get(&url, Some(&env.dev)).await.expect("answer").json();
        assert_eq!(
            (page["pagination"]["total_results"].clone(), page["pagination"]["total_pages"].clone()),
            (json!(120), json!(3))
        );
        pages.push(page["resources"].as_array().map_or(0, Vec::len));
        seen.extend(
            page["resources"].as_array().into_iter().flatten().map(|r| r["guid"].as_str().unwrap_or("").to_owned()),
        );
        if pages.len() == 1 {
            assert!(page["pagination"]["previous"].is_null());
        }
        match page["pagination"]["next"]["href"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, [50, 50, 20]);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 120);
    let last = env.get("/v3/routes?per_page=50&page=3").await.json();
    assert!(last["pagination"]["next"].is_null());
    assert!(last["pagination"]["previous"]["href"].as_str().is_some_and(|h| h.contains("page=2")));

    let empty = env.get("/v3/apps?names=nothing").await.json();
    assert_eq!((empty["pagination"]["total_pages"].clone(), empty["resources"].clone()), (json!(1), json!([])));
    assert_error(&env.get("/v3/routes?per_page=5001").await, "400-CF-BadQueryParameter-per-page");
    // CC: per_page.to_i > 0 or "must be a positive integer" (app/messages/list_message.rb).
    let zero = env.get("/v3/routes?per_page=0").await;
    assert_eq!(zero.status, 400);
    assert_eq!(
        zero.json()["errors"][0]["detail"],
        "The query parameter is invalid: Per page must be a positive integer"
    );
    assert_eq!(zero.json()["errors"][0]["title"], "CF-BadQueryParameter");
    let loose = env.get("/v3/routes?per_page=2x").await;
    assert_eq!((loose.status.as_u16(), loose.json()["pagination"]["total_pages"].is_number()), (200, true));
    assert_error(&env.get("/v3/routes?foo=bar").await, "400-CF-BadQueryParameter-unknown-param");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_routes_by_host_path_domain_space_and_app() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let bare = env.cf.add_route(&env.std.space, &env.std.domain, "", "");
    let api = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "/api");
    let shop = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    env.cf.map_route(&shop, &a.guid, "web", 8080);
    let found = |v: Value| -> Vec<String> {
        v["resources"].as_array().into_iter().flatten().map(|r| r["guid"].as_str().unwrap_or("").to_owned()).collect()
    };
    assert_eq!(found(env.get("/v3/routes?hosts=&paths=").await.json()), [bare.as_str()]);
    assert_eq!(found(env.get("/v3/routes?hosts=shop&paths=/api").await.json()), [api.as_str()]);
    assert_eq!(found(env.get(&format!("/v3/routes?app_guids={}", a.guid)).await.json()), [shop.as_str()]);
    assert_eq!(found(env.get(&format!("/v3/apps/{}/routes", a.guid)).await.json()), [shop.as_str()]);
    assert_eq!(
        found(env.get(&format!("/v3/routes?domain_guids={}&guids={api},{shop}", env.std.domain)).await.json()).len(),
        2
    );
    let bare_json = env.get(&format!("/v3/routes/{bare}?include=domain")).await.json();
    assert_eq!(
        (bare_json["host"].clone(), bare_json["path"].clone(), bare_json["port"].clone()),
        (json!(""), json!(""), Value::Null)
    );
    assert_eq!(bare_json["url"], "apps.example.com");
    assert_eq!(bare_json["included"]["domains"][0]["name"], "apps.example.com");
    let names = env.get(&format!("/v3/apps?names=a&space_guids={}", env.std.space)).await.json();
    assert_eq!(names["resources"][0]["guid"], json!(a.guid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_label_selector_operator_filters_lists() {
    let env = Env::new().await;
    let prod = env.cf.add_app(&env.std.space, "prod");
    let dev = env.cf.add_app(&env.std.space, "dev");
    let bare = env.cf.add_app(&env.std.space, "bare");
    for (app, labels) in [(&prod, json!({ "env": "prod", "tier": "web" })), (&dev, json!({ "env": "dev" }))] {
        let r = env
            .send(Method::PATCH, &format!("/v3/apps/{}", app.guid), &json!({ "metadata": { "labels": labels } }))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let env = &env;
    let names = |sel: &str| {
        let url =
            format!("/v3/apps?label_selector={}", form_urlencoded::byte_serialize(sel.as_bytes()).collect::<String>());
        async move {
            let v = env.get(&url).await.json();
            let mut n: Vec<String> = v["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["name"].as_str().unwrap_or("").to_owned())
                .collect();
            n.sort();
            n
        }
    };
    assert_eq!(names("env=prod").await, ["prod"]);
    assert_eq!(names("env==dev").await, ["dev"]);
    assert_eq!(names("env!=prod").await, ["bare", "dev"]);
    assert_eq!(names("env in (prod,dev)").await, ["dev", "prod"]);
    assert_eq!(names("env notin (prod)").await, ["bare", "dev"]);
    assert_eq!(names("tier").await, ["prod"]);
    assert_eq!(names("!env").await, ["bare"]);
    assert_eq!(names("env,!tier").await, ["dev"]);
    let _ = bare;
    let bad = env.get("/v3/apps?label_selector=env%20in%20(a").await;
    assert_eq!((bad.status.as_u16(), bad.json()["errors"][0]["title"].clone()), (400, json!("CF-BadQueryParameter")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_patch_merges_deletes_with_null_and_enforces_limits() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let path = format!("/v3/apps/{}", a.guid);
    let set = json!({ "metadata": { "labels": { "switchctl.example.com/state": "on" },
                                    "annotations": { "switchctl.example.com/saved": "x".repeat(5000), "old": "1" } } });
    assert_eq!(env.send(Method::PATCH, &path, &set).await.status, 200);
    let del = env.send(Method::PATCH, &path, &json!({ "metadata": { "annotations": { "old": null } } })).await.json();
    assert_eq!(del["metadata"]["labels"]["switchctl.example.com/state"], "on");
    assert!(del["metadata"]["annotations"].get("old").is_none());
    assert_eq!(del["metadata"]["annotations"]["switchctl.example.com/saved"].as_str().map(str::len), Some(5000));
    let long =
        env.send(Method::PATCH, &path, &json!({ "metadata": { "annotations": { "k": "y".repeat(5001) } } })).await;
    assert_eq!(long.status, 422);
    assert_eq!(
        long.json()["errors"][0]["detail"],
        "Metadata annotation value error: 'yyyyyyyy...' is greater than 5000 characters"
    );
    let key = env.send(Method::PATCH, &path, &json!({ "metadata": { "labels": { "a/b/c": "x" } } })).await;
    assert_eq!(key.json()["errors"][0]["detail"], "Metadata label key error: key has more than one '/'");
    let bad_json = env
        .http
        .send(Method::PATCH, &env.url(&path), &[("authorization", &env.dev)], Some(b"{nope".to_vec()))
        .await
        .expect("answer");
    assert_error(&bad_json, "400-CF-MessageParseError");
    let unknown = env.send(Method::PATCH, &path, &json!({ "x": 1 })).await;
    assert_eq!(unknown.json()["errors"][0]["detail"], "Unknown field(s): 'x'");
    // Route metadata: a Space Supporter may write it, but not app metadata.
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let sup = env.bearer("supporter");
    let on_route = env
        .send_as(
            &sup,
            Method::PATCH,
            &format!("/v3/routes/{route}"),
            &json!({ "metadata": { "labels": { "k": "v" } } }),
        )
        .await;
    assert_eq!(on_route.status, 200, "{}", on_route.text());
    let on_app = env.send_as(&sup, Method::PATCH, &path, &json!({ "metadata": { "labels": { "k": "v" } } })).await;
    assert_error(&on_app, "403-CF-NotAuthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_missing_expired_or_forged_are_401_and_auditors_get_403_on_writes() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let anon = env.http.get(&env.url("/v3/apps"), None).await.expect("answer");
    assert_error(&anon, "401-CF-NotAuthenticated");
    let expired = env.cf.uaa.expired_token_for("developer", Duration::from_secs(5)).expect("token");
    assert_error(&env.get_as("/v3/apps", &format!("bearer {expired}")).await, "401-CF-InvalidAuthToken");
    let forged = format!("{}x", env.dev);
    assert_error(&env.get_as("/v3/apps", &forged).await, "401-CF-InvalidAuthToken");
    assert_error(&env.get_as("/v3/apps", "basic abc").await, "401-CF-InvalidAuthToken");
    // A token that expires as it is issued (lifetime zero).
    env.cf.uaa.set_access_token_lifetime(Duration::ZERO);
    let instant = env.bearer("developer");
    assert_error(&env.get_as("/v3/apps", &instant).await, "401-CF-InvalidAuthToken");
    // Any case of "bearer" is accepted.
    let upper = env.dev.replacen("bearer", "BEARER", 1);
    assert_eq!(env.get_as("/v3/apps", &upper).await.status, 200);

    env.cf.uaa.set_access_token_lifetime(Duration::from_secs(600));
    let auditor = env.bearer("auditor");
    assert_eq!(env.get_as(&format!("/v3/routes/{route}/destinations"), &auditor).await.status, 200);
    let write = env
        .send_as(&auditor, Method::POST, &format!("/v3/routes/{route}/destinations"), &destinations(&[&a.guid]))
        .await;
    assert_error(&write, "403-CF-NotAuthorized");
    // A user without any role in the space does not see the app at all.
    let stranger = env.cf.add_user("stranger", "pw", &[]);
    let stranger = env.bearer(&stranger.name);
    assert_error(&env.get_as(&format!("/v3/apps/{}", a.guid), &stranger).await, "404-CF-ResourceNotFound-app");
    // Suspended org: writes are refused.
    env.cf.set_org_suspended(&env.std.org, true);
    let suspended =
        env.send(Method::POST, &format!("/v3/routes/{route}/destinations"), &destinations(&[&a.guid])).await;
    assert_error(&suspended, "403-CF-OrgSuspended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_cf_not_found_and_roots_need_no_token() {
    let env = Env::new().await;
    let nope = env.http.get(&env.url("/v3/nope"), None).await.expect("answer");
    assert_error(&nope, "404-CF-NotFound-unknown-path");
    let wrong_method = env.send(Method::PUT, "/v3/apps", &json!({})).await;
    assert_error(&wrong_method, "404-CF-NotFound-unknown-path");
    for path in ["/", "/v3", "/v3/info"] {
        let r = env.http.get(&env.url(path), None).await.expect("answer");
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    }
    let root = env.http.get(&env.url("/"), None).await.expect("answer").json();
    assert_eq!(root["links"]["login"]["href"], json!(env.cf.uaa_url()));
    assert_eq!(env.get("/v3/domains/00000000-0000-0000-0000-000000000000").await.status, 404);
    assert_error(&env.get("/v3/domains/00000000-0000-0000-0000-000000000000").await, "404-CF-ResourceNotFound-domain");
    assert_error(&env.get("/v3/builds/00000000-0000-0000-0000-000000000000").await, "404-CF-ResourceNotFound-build");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restage_stages_a_build_swaps_the_droplet_and_restarts() {
    let env = Env::with(tests::Options {
        staging_time: Duration::from_millis(200),
        startup_time: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let app = env.cf.add_app_with(&env.std.space, "a", 2, true);
    let pkgs = env
        .get(&format!("/v3/packages?app_guids={}&states=READY&order_by=-created_at&per_page=1&page=1", app.guid))
        .await
        .json();
    let pkg = pkgs["resources"][0]["guid"].as_str().expect("package").to_owned();
    let build = env.send(Method::POST, "/v3/builds", &json!({ "package": { "guid": pkg } })).await;
    assert_eq!((build.status.as_u16(), build.json()["state"].clone()), (201, json!("STAGING")));
    let again = env.send(Method::POST, "/v3/builds", &json!({ "package": { "guid": pkg } })).await;
    assert_eq!(again.json()["errors"][0]["title"], "CF-StagingInProgress");
    let build_guid = build.json()["guid"].as_str().expect("guid").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let droplet = loop {
        let b = env.get(&format!("/v3/builds/{build_guid}")).await.json();
        if b["state"] == "STAGED" {
            break b["droplet"]["guid"].as_str().expect("droplet").to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "build never staged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stop = env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", app.guid), &json!({})).await;
    assert_eq!(stop.json()["state"], "STOPPED");
    let down = env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json();
    assert_eq!(down["resources"][0]["state"], "DOWN");
    let set = env
        .send(
            Method::PATCH,
            &format!("/v3/apps/{}/relationships/current_droplet", app.guid),
            &json!({ "data": { "guid": droplet } }),
        )
        .await;
    assert_eq!(set.json()["data"]["guid"], json!(droplet));
    let start = env.send(Method::POST, &format!("/v3/apps/{}/actions/start", app.guid), &json!({})).await;
    assert_eq!(start.json()["state"], "STARTED");
    let starting = env.get(&format!("/v3/apps/{}/processes/web/stats", app.guid)).await.json();
    assert_eq!(starting["resources"][0]["state"], "STARTING");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let running = env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json();
    assert_eq!(running["resources"].as_array().map(Vec::len), Some(2));
    assert!(running["resources"].as_array().into_iter().flatten().all(|i| i["state"] == "RUNNING"));
    let current = env.get(&format!("/v3/apps/{}/droplets/current", app.guid)).await.json();
    assert_eq!(current["guid"], json!(droplet));

    env.cf.set_instance_states(
        &app.web_process,
        Some(vec![tests::InstanceState::Crashed, tests::InstanceState::Running]),
    );
    let mixed = env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json();
    assert_eq!(
        (mixed["resources"][0]["state"].clone(), mixed["resources"][1]["state"].clone()),
        (json!("CRASHED"), json!("RUNNING"))
    );
    let restart = env.send(Method::POST, &format!("/v3/apps/{}/actions/restart", app.guid), &json!({})).await;
    assert_eq!(restart.status, 200);
    let deploy = env
        .send(Method::POST, "/v3/deployments", &json!({ "relationships": { "app": { "data": { "guid": app.guid } } } }))
        .await;
    assert_eq!(deploy.status, 201, "{}", deploy.text());
    let dep = env.get(&format!("/v3/deployments/{}", deploy.json()["guid"].as_str().unwrap_or(""))).await.json();
    assert_eq!(
        (dep["status"]["value"].clone(), dep["status"]["reason"].clone()),
        (json!("FINALIZED"), json!("DEPLOYED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_create_and_delete_go_through_a_job() {
    let env = Env::new().await;
    let body = json!({ "host": "new", "relationships": { "space": { "data": { "guid": env.std.space } }, "domain": { "data": { "guid": env.std.domain } } } });
    let created = env.send(Method::POST, "/v3/routes", &body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_eq!(created.json()["url"], "new.apps.example.com");
    let dup = env.send(Method::POST, "/v3/routes", &body).await;
    assert_eq!(dup.status, 422);
    let guid = created.json()["guid"].as_str().expect("guid").to_owned();
    let del = env
        .http
        .send(Method::DELETE, &env.url(&format!("/v3/routes/{guid}")), &[("authorization", &env.dev)], None)
        .await
        .expect("answer");
    assert_eq!(del.status, 202);
    let job = del.header("location").expect("Location").to_owned();
    let job = env.http.get(&job, Some(&env.dev)).await.expect("answer").json();
    assert_eq!(job["state"], "COMPLETE");
    assert_eq!(env.get(&format!("/v3/routes/{guid}")).await.status, 404);
    let _ = Role::Developer;
}

/// Every CC answer carries `X-VCAP-Request-ID`: a fresh UUID, or the caller's id (cleaned) plus
/// `::` and a UUID (cloud_controller_ng middleware/vcap_request_context_setter.rb).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_vcap_request_id() {
    let env = Env::new().await;
    let is_uuid = |s: &str| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;
    let plain = env.get("/v3/apps").await;
    assert!(plain.header("x-vcap-request-id").is_some_and(is_uuid), "{:?}", plain.header("x-vcap-request-id"));
    let missing = env.get("/v3/apps/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("x-vcap-request-id").is_some_and(is_uuid));
    let url = env.url("/v3/apps");
    let given = env
        .http
        .send(Method::GET, &url, &[("authorization", &env.dev), ("x-vcap-request-id", "abc-123/x y")], None)
        .await
        .expect("CC answers");
    let id = given.header("x-vcap-request-id").unwrap_or("").to_owned();
    let (prefix, uuid) = id.split_once("::").expect("caller id :: uuid");
    assert_eq!(prefix, "abc-123xy");
    assert!(is_uuid(uuid), "{id}");
}

/// Insert (POST …/destinations): the 100 cap counts existing plus requested entries before
/// de-duplication (update_route_destinations.rb#validate_max_destinations!), and duplicates within
/// one request are a DuplicateDestinationError the insert action does not rescue: 500
/// (routes_controller.rb#insert_destinations rescues only UpdateRouteDestinations::Error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_counts_before_dedup_and_duplicates_are_a_500() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "cap", "");
    let path = format!("/v3/routes/{route}/destinations");

    let dup = env.send(Method::POST, &path, &destinations(&[&a.guid, &a.guid])).await;
    assert_error(&dup, "500-UnknownError");
    assert_eq!(env.get(&path).await.json()["destinations"], json!([]), "nothing was mapped");

    // At most 10 ports of one app per request (route_update_destinations_message.rb).
    for chunk in (1..=99).collect::<Vec<u16>>().chunks(10) {
        let many: Vec<Value> = chunk.iter().map(|p| json!({ "app": { "guid": a.guid }, "port": 5000 + p })).collect();
        let filled = env.send(Method::POST, &path, &json!({ "destinations": many })).await;
        assert_eq!(filled.status, 200, "{}", filled.text());
    }
    // 99 mapped + 2 requested (one already mapped) = 101 > 100, although only one would be new.
    let again = json!({ "destinations": [
        { "app": { "guid": a.guid }, "port": 5001 },
        { "app": { "guid": a.guid }, "port": 6000 },
    ]});
    let over = env.send(Method::POST, &path, &again).await;
    assert_eq!(over.status, 422, "{}", over.text());
    assert_eq!(over.json()["errors"][0]["detail"], "Routes can be mapped to at most 100 destinations.");
}

/// Weighted destinations that do not sum to 100: CC's text is "must have weights that sum to 100."
/// (app/messages/route_update_destinations_message.rb).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_must_sum_to_100_in_ccs_words() {
    let env = Env::new().await;
    let a = env.cf.add_app(&env.std.space, "a");
    let b = env.cf.add_app(&env.std.space, "b");
    let route = env.cf.add_route(&env.std.space, &env.std.domain, "w", "");
    let body = json!({ "destinations": [
        { "app": { "guid": a.guid }, "weight": 50 },
        { "app": { "guid": b.guid }, "weight": 40 },
    ]});
    let r = env.send(Method::PATCH, &format!("/v3/routes/{route}/destinations"), &body).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["detail"], "Destinations must have weights that sum to 100.");
}

/// Diego refuses a desired LRP whose routes pass its limit, after CC committed the mapping: the
/// insert answers 500 `CF-RunnerError`, the destination is stored, and the routers never hear of
/// it; once the process is back under the limit, they get everything at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_diegos_routes_limit_the_mapping_is_kept_answered_500_and_never_routed() {
    let entry = tests::cc::state::routes_entry("r0.apps.example.com", 8080, "http1").len();
    // Two routes fit, the third passes the limit.
    let limit = 2 * (entry + 1) + 4 + 2;
    let env = Env::with(tests::Options {
        router_delay: (Duration::ZERO, Duration::ZERO),
        diego_routes_limit: Some(limit),
        ..Default::default()
    })
    .await;
    let app = env.cf.add_app(&env.std.space, "m");
    let _servers = env.cf.serve_instances(&app.guid, "m", "web", 1).await.expect("instances");
    let mut routes = Vec::new();
    for i in 0..3 {
        let route = env.cf.add_route(&env.std.space, &env.std.domain, &format!("r{i}"), "");
        let reply =
            env.send(Method::POST, &format!("/v3/routes/{route}/destinations"), &destinations(&[&app.guid])).await;
        routes.push((route, reply));
    }
    assert!(env.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    assert_eq!(routes[1].1.status, 200, "{}", routes[1].1.text());
    assert_error(&routes[2].1, "500-CF-RunnerError-routes");
    let stored = env.get(&format!("/v3/routes/{}/destinations", routes[2].0)).await.json();
    assert_eq!(stored["destinations"][0]["app"]["guid"], json!(app.guid), "the mapping was committed");
    let host = |i: usize| format!("r{i}.{}", "apps.example.com");
    assert!(!env.cf.router.endpoints_for(&host(1), "/").is_empty(), "r1 routed");
    assert!(env.cf.router.endpoints_for(&host(2), "/").is_empty(), "r2 never reached the router");

    // Back under the limit (r0 unmapped): Diego takes the whole desired state, r2 included.
    let d0 = env.get(&format!("/v3/routes/{}/destinations", routes[0].0)).await.json();
    let d0 = d0["destinations"][0]["guid"].as_str().expect("destination").to_owned();
    let del = env.send(Method::DELETE, &format!("/v3/routes/{}/destinations/{d0}", routes[0].0), &Value::Null).await;
    assert_eq!(del.status, 204, "{}", del.text());
    assert!(env.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    assert!(!env.cf.router.endpoints_for(&host(2), "/").is_empty(), "r2 routed once the process fits again");
    assert!(env.cf.router.endpoints_for(&host(0), "/").is_empty(), "r0 unmapped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_failing_readiness_run_but_are_not_routable_and_down_stubs_say_nothing() {
    let env = Env::new().await;
    let app = env.cf.add_app_with(&env.std.space, "a", 3, true);
    env.cf.set_unready(&app.web_process, 2);
    let stats = env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json();
    let seen: Vec<(Value, Value)> = stats["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|i| (i["state"].clone(), i["routable"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![(json!("RUNNING"), json!(false)), (json!("RUNNING"), json!(false)), (json!("RUNNING"), json!(true))]
    );
    // A DOWN stub has no `routable` (CC's stub hash has none): null, not false.
    env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", app.guid), &json!({})).await;
    let down = env.get(&format!("/v3/processes/{}/stats", app.web_process)).await.json();
    assert_eq!(
        (down["resources"][0]["state"].clone(), down["resources"][0]["routable"].clone()),
        (json!("DOWN"), Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_app_reports_stopping_until_its_instances_are_gone_unless_the_flag_is_off() {
    let env = Env::new().await;
    let app = env.cf.add_app_with(&env.std.space, "a", 2, true);
    let stats = format!("/v3/processes/{}/stats", app.web_process);
    let states = |v: &Value| -> Vec<String> {
        v["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|i| i["state"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    env.cf.set_stopping(Duration::from_millis(400), true);
    let stop = env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", app.guid), &json!({})).await;
    assert_eq!(stop.json()["state"], "STOPPED");
    assert_eq!(states(&env.get(&stats).await.json()), ["STOPPING", "STOPPING"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while states(&env.get(&stats).await.json()) != ["DOWN", "DOWN"] {
        assert!(tokio::time::Instant::now() < deadline, "the instances never went");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Started again, nothing is stopping any more.
    env.send(Method::POST, &format!("/v3/apps/{}/actions/start", app.guid), &json!({})).await;
    assert_eq!(states(&env.get(&stats).await.json()), ["RUNNING", "RUNNING"]);
    // `app_instance_stopping_state: false`: the same stop reads DOWN at once.
    env.cf.set_stopping(Duration::from_secs(30), false);
    env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", app.guid), &json!({})).await;
    assert_eq!(states(&env.get(&stats).await.json()), ["DOWN", "DOWN"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_in_progress_blocks_the_droplet_change_even_after_a_stop() {
    let env = Env::new().await;
    let app = env.cf.add_app_with(&env.std.space, "a", 2, true);
    let other = env.cf.add_app(&env.std.space, "b");
    let dep = env.cf.start_deployment(&app.guid, Duration::from_secs(60));
    env.cf.start_deployment(&other.guid, Duration::from_secs(60));
    let list = |q: String| {
        let env = &env;
        async move {
            let v = env.get(&format!("/v3/deployments?{q}")).await.json();
            v["resources"]
                .as_array()
                .expect("resources")
                .iter()
                .map(|d| (d["guid"].as_str().unwrap_or("").to_owned(), d["status"]["reason"].clone()))
                .collect::<Vec<_>>()
        }
    };
    let mine = format!("app_guids={}", app.guid);
    assert_eq!(list(format!("{mine}&status_values=ACTIVE")).await, vec![(dep.clone(), json!("DEPLOYING"))]);
    assert_eq!(list(format!("{mine}&states=DEPLOYING&status_reasons=DEPLOYING")).await.len(), 1);
    assert!(list(format!("{mine}&status_values=FINALIZED")).await.is_empty());
    assert!(list(format!("{mine}&status_reasons=DEPLOYED,CANCELED")).await.is_empty());
    assert_eq!(list("status_values=ACTIVE".to_owned()).await.len(), 2, "every app's");
    assert_eq!(env.get("/v3/deployments?app_guid=x").await.status, 400, "unknown filters are refused");

    let stop = env.send(Method::POST, &format!("/v3/apps/{}/actions/stop", app.guid), &json!({})).await;
    assert_eq!(stop.json()["state"], "STOPPED");
    assert_eq!(list(format!("{mine}&status_values=ACTIVE")).await.len(), 1, "a stop does not end the deployment");
    let droplet = json!({ "data": { "guid": app.droplet } });
    let path = format!("/v3/apps/{}/relationships/current_droplet", app.guid);
    assert_error(&env.send(Method::PATCH, &path, &droplet).await, "422-CF-UnprocessableEntity-deployment-in-progress");
    // Checked before the droplet is: an unknown droplet gets the same answer while deploying.
    let unknown = json!({ "data": { "guid": "00000000-0000-0000-0000-000000000000" } });
    assert_error(&env.send(Method::PATCH, &path, &unknown).await, "422-CF-UnprocessableEntity-deployment-in-progress");

    let cancel = env.send(Method::POST, &format!("/v3/deployments/{dep}/actions/cancel"), &json!({})).await;
    assert_eq!(cancel.status, 200);
    assert_eq!(list(format!("{mine}&status_values=FINALIZED")).await, vec![(dep, json!("CANCELED"))]);
    let set = env.send(Method::PATCH, &path, &droplet).await;
    assert_eq!(set.status, 200, "{}", set.text());
}

/// `detail` of the first error, with the status.
fn failure(reply: &tests::client::Reply) -> (u16, String) {
    (reply.status.as_u16(), reply.json()["errors"][0]["detail"].as_str().unwrap_or("").to_owned())
}

fn guids_of(v: &Value, key: &str) -> Vec<String> {
    v[key].as_array().into_iter().flatten().map(|r| r["guid"].as_str().unwrap_or("").to_owned()).collect()
}

/// `include=` as CC's message classes validate it and its decorators fill `included`
/// (cloud_controller_ng `base_message.rb#IncludeParamValidator`, `app/decorators/include_*`):
/// per-endpoint valid values, 400 on lists and app/space show, 422 on route show, nothing
/// included on `/v3/apps/:guid/routes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_adds_ccs_included_resources_and_refuses_unknown_values() {
    let env = Env::new().await;
    let s = &env.std;
    let app = env.cf.add_app(&s.space, "a");
    let route = env.cf.add_route(&s.space, &s.domain, "shop", "");
    env.cf.map_route(&route, &app.guid, "web", 8080);

    let apps = env.get("/v3/apps?names=a&include=space.organization").await.json();
    assert_eq!(guids_of(&apps["included"], "spaces"), [s.space.as_str()]);
    assert_eq!(guids_of(&apps["included"], "organizations"), [s.org.as_str()]);
    let one = env.get(&format!("/v3/apps/{}?include=org", app.guid)).await.json();
    assert_eq!(guids_of(&one["included"], "organizations"), [s.org.as_str()]);
    assert!(one["included"].get("spaces").is_none(), "{one}");
    assert!(env.get(&format!("/v3/apps/{}", app.guid)).await.json().get("included").is_none());

    let routes = env.get(&format!("/v3/routes?guids={route}&include=domain,space")).await.json();
    assert_eq!(guids_of(&routes["included"], "domains"), [s.domain.as_str()]);
    assert_eq!(guids_of(&routes["included"], "spaces"), [s.space.as_str()]);
    let shown = env.get(&format!("/v3/routes/{route}?include=space.organization")).await.json();
    assert_eq!(guids_of(&shown["included"], "organizations"), [s.org.as_str()]);
    let spaces = env.get(&format!("/v3/spaces?guids={}&include=organization", s.space)).await.json();
    assert_eq!(guids_of(&spaces["included"], "organizations"), [s.org.as_str()]);
    let by_app = env.get(&format!("/v3/apps/{}/routes?include=domain", app.guid)).await.json();
    assert!(by_app.get("included").is_none(), "index_by_app applies no decorator: {by_app}");

    let bad = |valid: &str| format!("Invalid included resource: 'bogus'. Valid included resources are: {valid}");
    let app_valid = "'space', 'org', 'space.organization'";
    let route_valid = "'domain', 'space', 'space.organization', 'route_policies'";
    let q = |m: String| format!("The query parameter is invalid: {m}");
    assert_eq!(failure(&env.get("/v3/apps?include=bogus").await), (400, q(bad(app_valid))));
    assert_eq!(failure(&env.get(&format!("/v3/apps/{}?include=bogus", app.guid)).await), (400, q(bad(app_valid))));
    assert_eq!(failure(&env.get("/v3/routes?include=bogus").await), (400, q(bad(route_valid))));
    assert_eq!(
        failure(&env.get(&format!("/v3/apps/{}/routes?include=bogus", app.guid)).await),
        (400, q(bad(route_valid)))
    );
    // routes_controller.rb#show: unprocessable!, and no query prefix.
    assert_eq!(failure(&env.get(&format!("/v3/routes/{route}?include=bogus")).await), (422, bad(route_valid)));
    assert_eq!(
        failure(&env.get(&format!("/v3/spaces/{}?include=space", s.space)).await),
        (400, q("Invalid included resource: 'space'. Valid included resources are: 'org', 'organization'".into()))
    );
    assert_eq!(
        failure(&env.get("/v3/apps?include=space,space").await),
        (400, q("Duplicate included resource: 'space'".into()))
    );
}

/// Pagination hrefs as `PaginatedListPresenter` renders them: `order_by` with its direction
/// (`%2Bname`, cloud_controller_ng spec/unit/controllers/v3/spaces_controller_spec.rb), filters
/// re-joined and CGI-escaped (`label_selector=animal+in+%28dog%29`, spec/request/routes_spec.rb),
/// and `app_guids` merged into `/v3/apps/:guid/routes` (routes_controller.rb#index_by_app).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_hrefs_are_ccs_text() {
    let env = Env::new().await;
    let app = env.cf.add_app(&env.std.space, "a");
    env.cf.add_app(&env.std.space, "b");
    let api = env.cf.api_url();
    let first = |v: Value| v["pagination"]["first"]["href"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        first(env.get("/v3/apps?order_by=name&per_page=1").await.json()),
        format!("{api}/v3/apps?order_by=%2Bname&page=1&per_page=1")
    );
    assert_eq!(
        first(env.get("/v3/apps?order_by=-name&names=a,%20b").await.json()),
        format!("{api}/v3/apps?names=a%2Cb&order_by=-name&page=1&per_page=50")
    );
    assert_eq!(
        first(env.get("/v3/routes?label_selector=animal%20in%20(dog)").await.json()),
        format!("{api}/v3/routes?label_selector=animal+in+%28dog%29&page=1&per_page=50")
    );
    assert_eq!(
        first(env.get(&format!("/v3/apps/{}/routes", app.guid)).await.json()),
        format!("{api}/v3/apps/{0}/routes?app_guids={0}&page=1&per_page=50", app.guid)
    );
}

/// Label selectors parsed and refused in CC's words (cloud_controller_ng
/// `label_selector_requirement_validator.rb`, `metadata_helpers.rb`); routes do not validate them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selector_texts_are_ccs() {
    let env = Env::new().await;
    let prod = env.cf.add_app(&env.std.space, "prod");
    env.cf.add_app(&env.std.space, "dev");
    env.cf.label_app(&prod.guid, "env", "prod");
    env.cf.label_app(&prod.guid, "tier", "web");
    env.cf.add_route(&env.std.space, &env.std.domain, "shop", "");
    let q = |m: &str| format!("The query parameter is invalid: {m}");
    let names = |v: Value| -> Vec<String> {
        v["resources"].as_array().into_iter().flatten().map(|r| r["name"].as_str().unwrap_or("").to_owned()).collect()
    };
    // REQUIREMENT_SPLITTER drops empty requirements.
    assert_eq!(names(env.get("/v3/apps?label_selector=env%3Dprod,,tier,").await.json()), ["prod"]);
    assert_eq!(failure(&env.get("/v3/apps?label_selector=,").await), (400, q("Missing label_selector value")));
    assert_eq!(failure(&env.get("/v3/apps?label_selector=!").await), (400, q("Invalid label_selector value")));
    assert_eq!(
        failure(&env.get("/v3/apps?label_selector=env%20in%20(a,%20b)").await),
        (400, q("' b' contains invalid characters"))
    );
    let many = vec!["a"; 51].join(",");
    assert_eq!(
        failure(&env.get(&format!("/v3/apps?label_selector={many}")).await),
        (400, q("Too many label_selector requirements (maximum is 50)"))
    );
    // ListMessage's validators, then MetadataListMessage's selector, then the class's own.
    let valid = "'page', 'per_page', 'order_by', 'created_ats', 'updated_ats', 'guids', 'names', \
                 'organization_guids', 'space_guids', 'stacks', 'include', 'lifecycle_type', 'label_selector'";
    assert_eq!(
        failure(&env.get("/v3/apps?foo=1&label_selector=!&page=0").await),
        (
            400,
            q(&format!(
                "Page must be a positive integer, Invalid label_selector value, Unknown query parameter(s): 'foo'. \
                 Valid parameters are: {valid}"
            ))
        )
    );
    // RoutesListMessage has no selector validator: an empty selector filters nothing, and one
    // CC cannot parse reaches the fetcher as nil (a 500).
    let all = env.get("/v3/routes?label_selector=").await;
    assert_eq!((all.status.as_u16(), all.json()["pagination"]["total_results"].clone()), (200, json!(1)));
    let broken = env.get("/v3/routes?label_selector=!").await;
    assert_eq!((broken.status.as_u16(), broken.json()["errors"][0]["title"].clone()), (500, json!("UnknownError")));
}

/// Destinations bodies in CC's words (route_update_destinations_message.rb,
/// update_route_destinations.rb, route_destination_update.rb): at most 10 destinations per `app`
/// object, every check of a destination reported, the insert protocol text, and the single
/// destination PATCH's own texts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_bodies_are_refused_in_ccs_words() {
    let env = Env::new().await;
    let s = &env.std;
    let a = env.cf.add_app(&s.space, "a");
    let route = env.cf.add_route(&s.space, &s.domain, "shop", "");
    let path = format!("/v3/routes/{route}/destinations");
    let ports = |n: u16, app: Value| -> Vec<Value> {
        (0..n).map(|i| json!({ "app": app.clone(), "port": 5000 + i })).collect::<Vec<_>>()
    };
    let eleven = env.send(Method::POST, &path, &json!({ "destinations": ports(11, json!({ "guid": a.guid })) })).await;
    assert_eq!(failure(&eleven), (422, "Process must have at most 10 exposed ports.".to_owned()));
    let replace =
        env.send(Method::PATCH, &path, &json!({ "destinations": ports(11, json!({ "guid": a.guid })) })).await;
    assert_eq!(failure(&replace), (422, "Process must have at most 10 exposed ports.".to_owned()));
    // The `app` object as sent is the key: with and without `process` count apart.
    let mut twenty = ports(10, json!({ "guid": a.guid }));
    twenty.extend(ports(10, json!({ "guid": a.guid, "process": { "type": "web" } })).into_iter().map(|mut d| {
        d["port"] = json!(d["port"].as_u64().unwrap_or(0) + 100);
        d
    }));
    let ok = env.send(Method::POST, &path, &json!({ "destinations": twenty })).await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    let both = env
        .send(
            Method::POST,
            &path,
            &json!({ "destinations": [{ "app": { "guid": a.guid }, "port": 80, "protocol": "udp" }] }),
        )
        .await;
    assert_eq!(
        failure(&both),
        (
            422,
            "Destinations[0]: port must be a positive integer between 1024 and 65535 inclusive., \
             Destinations[0]: protocol must be 'http1', 'http2' or 'tcp'."
                .to_owned()
        )
    );
    let tcp = env.cf.add_tcp_route(&s.space, &s.tcp_domain, 6000);
    let wrong = env
        .send(
            Method::POST,
            &format!("/v3/routes/{tcp}/destinations"),
            &json!({ "destinations": [{ "app": { "guid": a.guid }, "protocol": "http2" }] }),
        )
        .await;
    assert_eq!(
        failure(&wrong),
        (422, "Cannot use 'http2' protocol for tcp routes; valid options are: [tcp].".to_owned())
    );

    let dest = ok.json()["destinations"][0]["guid"].as_str().unwrap_or("").to_owned();
    let one = |d: &str, body: Value| {
        let url = format!("/v3/routes/{route}/destinations/{d}");
        let env = &env;
        async move { env.send(Method::PATCH, &url, &body).await }
    };
    assert_eq!(
        failure(&one(&dest, json!({ "protocol": "udp" })).await),
        (422, "Destination protocol must be 'http1', 'http2' or 'tcp'.".to_owned())
    );
    assert_eq!(
        failure(&one(&dest, json!({ "protocol": "tcp" })).await),
        (422, "Destination protocol must be 'http1' or 'http2' if the parent route's protocol is 'http'".to_owned())
    );
    assert_eq!(
        failure(&one("00000000-0000-0000-0000-000000000000", json!({ "protocol": "http2" })).await),
        (422, "Unable to unmap route from destination. Ensure the route has a destination with this guid.".to_owned())
    );
    assert_eq!(one(&dest, json!({ "protocol": "http2" })).await.json()["protocol"], "http2");
    // RouteDestinationsListMessage splits like every filter (`to_array!`: `/,\s*/`).
    let listed = env.get(&format!("{path}?app_guids=x,%20{}", a.guid)).await.json();
    assert_eq!(listed["destinations"].as_array().map(Vec::len), Some(20));
}

/// Each list's "Valid parameters" text is its message class's `allowed_keys`, in order
/// (cloud_controller_ng `app/messages/*_list_message.rb`), and the filters it names work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keys_are_each_message_classes() {
    let env = Env::new().await;
    let app = env.cf.add_app(&env.std.space, "a");
    let q = |m: &str| format!("The query parameter is invalid: {m}");
    let unknown = |valid: &str| q(&format!("Unknown query parameter(s): 'foo'. Valid parameters are: {valid}"));
    let base = "'page', 'per_page', 'order_by', 'created_ats', 'updated_ats', 'guids'";
    assert_eq!(
        failure(&env.get("/v3/processes?foo=1").await),
        (
            400,
            unknown(&format!(
                "{base}, 'app_guid', 'types', 'space_guids', 'organization_guids', 'app_guids', 'embed', 'label_selector'"
            ))
        )
    );
    assert_eq!(
        failure(&env.get("/v3/domains?foo=1").await),
        (400, unknown(&format!("{base}, 'names', 'guids', 'organization_guids', 'label_selector'")))
    );
    assert_eq!(
        failure(&env.get("/v3/organizations?foo=1").await),
        (400, unknown(&format!("{base}, 'names', 'isolation_segment_guid', 'label_selector'")))
    );
    assert_eq!(
        failure(&env.get("/v3/audit_events?foo=1").await),
        (400, unknown(&format!("{base}, 'types', 'target_guids', 'space_guids', 'organization_guids'")))
    );
    let events = env.get("/v3/audit_events?guids=nothing").await;
    assert_eq!((events.status.as_u16(), events.json()["resources"].clone()), (200, json!([])));
    // processes_list_message.rb#app_nested_request.
    assert_eq!(
        failure(&env.get(&format!("/v3/apps/{}/processes?space_guids=x", app.guid)).await),
        (400, q("Unknown query parameter(s): 'space_guids'"))
    );
    let elsewhere = env.get(&format!("/v3/processes?organization_guids=x&app_guids={}", app.guid)).await.json();
    assert_eq!(elsewhere["resources"], json!([]));
}
