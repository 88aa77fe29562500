//! Acceptance (issue 4): the per-route order of API calls of `on` and `off`, as the contract
//! states it, read from the double's request log: `on` = PATCH route metadata, POST destinations
//! (the maintenance app), GET destinations, PATCH destinations (without shop); `off` = POST
//! destinations (exactly the recorded ones), GET destinations, PATCH destinations (without the
//! maintenance app), PATCH route metadata (label and annotation removed).

use http::Method;
use serde_json::Value;

use crate::switch_support::{Setup, World, state_key};

/// `METHOD kind` of every request about `route`, in log order.
fn calls_for(w: &World, route: &str) -> Vec<(String, Value)> {
    let base = format!("/v3/routes/{route}");
    w.cc_log()
        .into_iter()
        .filter(|r| r.path == base || r.path == format!("{base}/destinations"))
        .map(|r| {
            let kind = if r.path == base { "route" } else { "destinations" };
            (format!("{} {kind}", r.method), serde_json::from_str(&r.body).unwrap_or(Value::Null))
        })
        .collect()
}

fn app_guids(body: &Value) -> Vec<String> {
    let mut g: Vec<String> = body["destinations"]
        .as_array()
        .map(|l| l.iter().filter_map(|d| d["app"]["guid"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    g.sort();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_and_off_call_the_api_in_the_contract_order() {
    let w = World::new(Setup { routes: 3, extra_routes: true, second_process: true, ..Setup::default() }).await;
    let before = w.all_dests();
    let maint = w.maint_guid();
    let key = state_key(&w.app.guid);

    w.run(&["on", "shop"]).await.expect_code(0);
    for r in &w.routes {
        let calls = calls_for(&w, &r.guid);
        let kinds: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["PATCH route", "POST destinations", "GET destinations", "PATCH destinations"],
            "on: calls for {}",
            r.host
        );
        assert_eq!(calls[0].1["metadata"]["labels"][&key], "on", "on writes the label first: {}", calls[0].1);
        assert!(calls[0].1["metadata"]["annotations"][&key].is_string(), "and the annotation: {}", calls[0].1);
        assert_eq!(app_guids(&calls[1].1), std::slice::from_ref(&maint), "on: POST adds only the maintenance app");
        assert!(!app_guids(&calls[3].1).contains(&w.app.guid), "on: the replace drops shop: {}", calls[3].1);
    }
    for g in &w.skipped_routes {
        assert!(calls_for(&w, g).iter().all(|(k, _)| k.starts_with("GET")), "internal/TCP routes are not written");
    }

    w.cf.faults.clear_log();
    w.run(&["off", "shop"]).await.expect_code(0);
    for r in &w.routes {
        let calls = calls_for(&w, &r.guid);
        let kinds: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
        // `off` reads the whole route before the replace (not only its destinations): whether the
        // maintenance app stays depends on the other apps' records on it as they are now.
        assert_eq!(
            kinds,
            ["POST destinations", "GET route", "PATCH destinations", "PATCH route"],
            "off: calls for {}",
            r.host
        );
        let mut re_added: Vec<(String, String, u64, String)> = calls[0].1["destinations"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|d| {
                        (
                            d["app"]["guid"].as_str().unwrap_or_default().to_owned(),
                            d["app"]["process"]["type"].as_str().unwrap_or("web").to_owned(),
                            d["port"].as_u64().unwrap_or(8080),
                            d["protocol"].as_str().unwrap_or("http1").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        re_added.sort();
        let expected: Vec<(String, String, u64, String)> = before[&r.guid]
            .iter()
            .map(|(a, p, port, proto)| (a.clone(), p.clone(), u64::from(*port), proto.clone()))
            .collect();
        assert_eq!(re_added, expected, "off: POST re-adds exactly the recorded destinations of {}", r.host);
        assert!(!app_guids(&calls[2].1).contains(&maint), "off: the replace drops the maintenance app: {}", calls[2].1);
        let meta = &calls[3].1["metadata"];
        assert!(meta["labels"][&key].is_null(), "off removes the label (null): {meta}");
        assert!(meta["annotations"][&key].is_null(), "off removes the annotation (null): {meta}");
    }
    let writes = w.cc_writes();
    assert!(writes.iter().all(|w| !w.starts_with(Method::DELETE.as_str())), "no DELETE: {writes:?}");
    w.assert_restored(&before, "after off").await;
}
