//! Acceptance (issue 4): the per-route order of API calls of `on` and `off`, as the contract
//! states it, read from the double's request log: `on` = PATCH route metadata, POST destinations
//! (the maintenance app), GET destinations, DELETE of each of shop's destinations; `off` = POST
//! destinations (exactly the recorded ones), GET route, DELETE of the maintenance app's
//! destination, PATCH route metadata (label and annotation removed). No replace (PATCH
//! destinations): it would re-send other apps' destinations, which CC cannot always take back as
//! stored (a Docker app's port -1).

use http::Method;
use serde_json::Value;

use crate::switch_support::{Setup, World, state_key};

/// `METHOD kind` of every request about `route`, in log order.
fn calls_for(w: &World, route: &str) -> Vec<(String, Value)> {
    let base = format!("/v3/routes/{route}");
    w.cc_log()
        .into_iter()
        .filter(|r| r.path == base || r.path.starts_with(&format!("{base}/destinations")))
        .map(|r| {
            let kind = match r.path.strip_prefix(&format!("{base}/destinations/")) {
                _ if r.path == base => "route".to_owned(),
                Some(destination) => format!("destination {destination}"),
                None => "destinations".to_owned(),
            };
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

    let deletes_of = |w: &World, route: &str, app: &str| -> Vec<String> {
        let st = w.cf.cc.state();
        let r = st.route(route).expect("route");
        r.destinations.iter().filter(|d| d.app_guid == app).map(|d| format!("DELETE destination {}", d.guid)).collect()
    };
    let deletes: Vec<Vec<String>> = w.routes.iter().map(|r| deletes_of(&w, &r.guid, &w.app.guid)).collect();
    w.run(&["on", "shop"]).await.expect_code(0);
    for (r, deletes) in w.routes.iter().zip(deletes) {
        let calls = calls_for(&w, &r.guid);
        let kinds: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
        let mut expected = vec!["PATCH route", "POST destinations", "GET destinations"];
        expected.extend(deletes.iter().map(String::as_str));
        assert_eq!(kinds[..3], expected[..3], "on: calls for {}", r.host);
        let (mut got, mut want) = (kinds[3..].to_vec(), expected[3..].to_vec());
        got.sort();
        want.sort();
        assert_eq!(got, want, "on: deletes exactly shop's destinations of {}", r.host);
        assert_eq!(calls[0].1["metadata"]["labels"][&key], "on", "on writes the label first: {}", calls[0].1);
        assert!(calls[0].1["metadata"]["annotations"][&key].is_string(), "and the annotation: {}", calls[0].1);
        assert_eq!(app_guids(&calls[1].1), std::slice::from_ref(&maint), "on: POST adds only the maintenance app");
    }
    for g in &w.skipped_routes {
        assert!(calls_for(&w, g).iter().all(|(k, _)| k.starts_with("GET")), "internal/TCP routes are not written");
    }

    w.cf.faults.clear_log();
    let deletes: Vec<Vec<String>> = w.routes.iter().map(|r| deletes_of(&w, &r.guid, &maint)).collect();
    w.run(&["off", "shop"]).await.expect_code(0);
    for (r, delete) in w.routes.iter().zip(deletes) {
        let calls = calls_for(&w, &r.guid);
        let kinds: Vec<&str> = calls.iter().map(|(k, _)| k.as_str()).collect();
        // `off` reads the whole route before the delete (not only its destinations): whether the
        // maintenance app stays depends on the other apps' records on it as they are now.
        assert_eq!(
            kinds,
            ["POST destinations", "GET route", delete[0].as_str(), "PATCH route"],
            "off: calls for {} (the DELETE is the maintenance app's destination)",
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
            .map(|(a, p, port, proto)| (a.clone(), p.clone(), u64::from(port.unwrap_or(8080)), proto.clone()))
            .collect();
        assert_eq!(re_added, expected, "off: POST re-adds exactly the recorded destinations of {}", r.host);
        let meta = &calls[3].1["metadata"];
        assert!(meta["labels"][&key].is_null(), "off removes the label (null): {meta}");
        assert!(meta["annotations"][&key].is_null(), "off removes the annotation (null): {meta}");
    }
    let writes = w.cc_writes();
    let replace = format!("{} ", Method::PATCH);
    assert!(
        !writes.iter().any(|w| w.starts_with(&replace) && w.contains("/destinations ->")),
        "no replace: {writes:?}"
    );
    w.assert_restored(&before, "after off").await;
}
