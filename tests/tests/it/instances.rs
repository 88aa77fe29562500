//! The double's instance lifecycle: an app's environment variables as CC keeps them, real
//! `maintenance-app` instances behind the router, Diego's restart of a killed instance from the
//! current environment, and a rolling deployment that replaces every instance under load without
//! a moment of 404 or 502.
//!
//! Needs the `maintenance-app` binary: `cargo build --release -p maintenance-app`.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use tests::{Options, RunOptions, client::Reply, router::APP_INSTANCE_HEADER, world::SeededApp};

use crate::{
    common::{Env, assert_error},
    switch_support::binary,
};

const HOST: &str = "maint.apps.example.com";

/// Polls `check` every 20 ms until it gives `Some`, at most `within`.
async fn until<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn env_path(app: &str) -> String {
    format!("/v3/apps/{app}/environment_variables")
}

fn detail(r: &Reply) -> (u16, Value) {
    (r.status.as_u16(), r.json()["errors"][0]["detail"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_variables_are_merged_deleted_and_validated_as_cc_does() {
    let env = Env::new().await;
    let s = &env.std;
    let app = env.cf.add_app(&s.space, "shop");
    let path = env_path(&app.guid);
    let base = env.cf.api_url();
    let links = json!({
        "self": { "href": format!("{base}{path}") },
        "app": { "href": format!("{base}/v3/apps/{}", app.guid) },
    });
    assert_eq!(env.get(&path).await.json(), json!({ "var": {}, "links": links }));

    let set = env.send(Method::PATCH, &path, &json!({ "var": { "A": "1", "B": "2" } })).await;
    assert_eq!(set.status, 200);
    assert_eq!(set.json(), json!({ "var": { "A": "1", "B": "2" }, "links": links }));
    // Keys merge; `null` deletes; a key never set may be deleted too.
    let merged = env.send(Method::PATCH, &path, &json!({ "var": { "B": null, "C": "3", "NEVER": null } })).await;
    assert_eq!(merged.json()["var"], json!({ "A": "1", "C": "3" }));
    assert_eq!(env.get(&path).await.json()["var"], json!({ "A": "1", "C": "3" }));
    assert_eq!(
        env.get(&format!("/v3/apps/{}/env", app.guid)).await.json()["environment_variables"],
        json!({ "A": "1", "C": "3" })
    );

    // UpdateEnvironmentVariablesMessage's errors, all of them, joined.
    let refused = [
        (json!({ "var": { "VCAP_SERVICES": "x" } }), "Var cannot start with VCAP_"),
        (json!({ "var": { "vcap_x": "x" } }), "Var cannot start with VCAP_"),
        (json!({ "var": { "VMCX": "x" } }), "Var cannot start with VMC_"),
        (json!({ "var": { "port": "1" } }), "Var cannot set PORT"),
        (json!({ "var": { "": "x" } }), "Var key must be a minimum length of 1"),
        (json!({ "var": { "N": 1 } }), "Non-string value in environment variable for key 'N', value '1'"),
        (
            json!({ "var": { "O": { "a": [true] } } }),
            "Non-string value in environment variable for key 'O', value '{\"a\":[true]}'",
        ),
        (json!({ "var": "A=1" }), "Var must be an object"),
        (json!({}), "Var must be an object"),
        (json!({ "var": {}, "vars": {} }), "Unknown field(s): 'vars'"),
        (json!({ "x": 1 }), "Unknown field(s): 'x', Var must be an object"),
    ];
    for (body, text) in refused {
        let r = env.send(Method::PATCH, &path, &body).await;
        assert_eq!(detail(&r), (422, json!(text)), "{body}");
        assert_eq!(r.json()["errors"][0]["title"], "CF-UnprocessableEntity");
    }
    assert_eq!(env.get(&path).await.json()["var"], json!({ "A": "1", "C": "3" }), "refused patches change nothing");

    // Roles (permissions.rb): a Supporter reads and patches; an Auditor reads the app, not its
    // environment; a stranger does not see the app at all.
    let supporter = env.bearer("supporter");
    let r = env.send_as(&supporter, Method::PATCH, &path, &json!({ "var": { "S": "s" } })).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.get_as(&path, &supporter).await.json()["var"]["S"], "s");
    let auditor = env.bearer("auditor");
    assert_error(&env.get_as(&path, &auditor).await, "403-CF-NotAuthorized");
    assert_error(&env.send_as(&auditor, Method::PATCH, &path, &json!({ "var": {} })).await, "403-CF-NotAuthorized");
    let elsewhere = env.cf.add_app(&s.other_space, "other");
    env.cf.add_user("stranger", "stranger-pass", &[]);
    let stranger = env.bearer("stranger");
    assert_eq!(detail(&env.get_as(&env_path(&elsewhere.guid), &stranger).await), (404, json!("App not found")));
}

/// A double with app `maint` (`instances` web instances of the real maintenance app, answering
/// `MAINTENANCE_MESSAGE` as plain text) on `HOST`.
async fn maintenance_app(instances: u32, message: &str) -> (Env, SeededApp) {
    maintenance_app_on(Options::default(), RunOptions::new(binary("maintenance-app")), instances, message).await
}

/// [`maintenance_app`] on a double with `options`, its instances run with `run`.
async fn maintenance_app_on(options: Options, run: RunOptions, instances: u32, message: &str) -> (Env, SeededApp) {
    let env = Env::with(options).await;
    let s = &env.std;
    let app = env.cf.add_app_with(&s.space, "maint", instances, true);
    let route = env.cf.add_route(&s.space, &s.domain, "maint", "");
    env.cf.map_route(&route, &app.guid, "web", 8080);
    let vars = json!({ "var": { "MAINTENANCE_MODE": "503", "MAINTENANCE_MESSAGE": message } });
    assert_eq!(env.send(Method::PATCH, &env_path(&app.guid), &vars).await.status, 200);
    env.cf.run_instances(&app.guid, RunOptions { restart_delay: Duration::from_millis(300), ..run });
    (env, app)
}

/// `GET /` through the router, to one instance when `index` is given: (status, body).
async fn ask(env: &Env, app: &str, index: Option<u32>) -> (u16, String) {
    let pin = index.map(|i| format!("{app}:{i}"));
    let mut headers = vec![("host", HOST)];
    if let Some(pin) = &pin {
        headers.push((APP_INSTANCE_HEADER, pin));
    }
    match env.http.send(Method::GET, &env.cf.router_url(), &headers, None).await {
        Ok(r) if r.header("x-maintenance-app") == Some("cf-maintenance") => {
            (r.status.as_u16(), r.text().trim().to_owned())
        }
        Ok(r) => (r.status.as_u16(), format!("not the maintenance app: {}", r.text())),
        Err(e) => (0, format!("{e}")),
    }
}

/// What instance `index` answers once it answers as the maintenance app.
async fn instance_says(env: &Env, app: &str, index: u32) -> String {
    until(Duration::from_secs(15), &format!("instance {index} answers"), || async {
        let (status, body) = ask(env, app, Some(index)).await;
        (status == 503 && !body.starts_with("not the")).then_some(body)
    })
    .await
}

async fn stats(env: &Env, app: &str) -> Vec<(String, bool)> {
    let v = env.get(&format!("/v3/apps/{app}/processes/web/stats")).await.json();
    v["resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| (r["state"].as_str().unwrap_or("").to_owned(), r["routable"].as_bool().unwrap_or(false)))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_instances_answer_by_index_and_a_killed_one_restarts_with_the_current_environment() {
    let (env, app) = maintenance_app(2, "first text").await;
    assert_eq!(instance_says(&env, &app.guid, 0).await, "first text");
    assert_eq!(instance_says(&env, &app.guid, 1).await, "first text");
    let running = ("RUNNING".to_owned(), true);
    assert_eq!(stats(&env, &app.guid).await, [running.clone(), running.clone()]);

    // A new environment reaches no running instance.
    let vars = json!({ "var": { "MAINTENANCE_MESSAGE": "second text" } });
    assert_eq!(env.send(Method::PATCH, &env_path(&app.guid), &vars).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..2 {
        assert_eq!(ask(&env, &app.guid, Some(i)).await, (503, "first text".to_owned()), "instance {i}");
    }

    // Killed: CRASHED in the stats and out of the router, then back with the new environment.
    assert!(env.cf.kill_instance(&app.guid, 1), "instance 1 has a child to kill");
    until(Duration::from_secs(5), "instance 1 reported CRASHED", || async {
        let s = stats(&env, &app.guid).await;
        (s.get(1).is_some_and(|x| x.0 == "CRASHED" && !x.1)).then_some(())
    })
    .await;
    assert_eq!(instance_says(&env, &app.guid, 1).await, "second text");
    assert_eq!(ask(&env, &app.guid, Some(0)).await, (503, "first text".to_owned()), "instance 0 was not restarted");
    until(Duration::from_secs(5), "both RUNNING again", || async {
        (stats(&env, &app.guid).await == [running.clone(), running.clone()]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deployment_replaces_every_instance_under_load_without_a_404_or_502() {
    let (env, app) = maintenance_app(2, "old text").await;
    rolls_out_under_load(&env, &app).await;
}

/// The same on three routers behind a random balancer, each taking each registration 50–500 ms
/// later, with the deployment updater ticking every second (CC's ticks every few seconds, so a
/// registration has reached every router before the next step; the rate limiter is off so that
/// polling does not exhaust it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_deployment_behind_three_slow_routers_never_empties_a_pool() {
    let options = Options { rate_limit: None, ..Options::production() };
    let run = RunOptions { tick: Duration::from_secs(1), ..RunOptions::new(binary("maintenance-app")) };
    let (env, app) = maintenance_app_on(options, run, 3, "old text").await;
    rolls_out_under_load(&env, &app).await;
}

/// PATCHes a new message, then rolls out a deployment of `app` under steady load and checks
/// that every answer came from an instance, old then new, and that every instance was replaced.
async fn rolls_out_under_load(env: &Env, app: &SeededApp) {
    let count = u32::try_from(stats(env, &app.guid).await.len()).expect("a few instances");
    for i in 0..count {
        assert_eq!(instance_says(env, &app.guid, i).await, "old text");
    }
    let vars = json!({ "var": { "MAINTENANCE_MESSAGE": "new text" } });
    assert_eq!(env.send(Method::PATCH, &env_path(&app.guid), &vars).await.status, 200);

    // Every router has the route and every instance before the load starts.
    until(Duration::from_secs(10), "every router holds every instance", || async {
        let routers = env.cf.routers();
        routers.iter().all(|r| r.endpoints_for(HOST, "/").len() == count as usize).then_some(())
    })
    .await;

    // Steady load through the router: one request after the other, at most 20,000 or 60 s.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (router, done) = (env.cf.router_url(), std::sync::Arc::clone(&done));
        tokio::spawn(async move {
            // A connection per request: through several routers, each request meets a router of its own.
            let http = tests::client::Http::fresh();
            let started = Instant::now();
            let mut answers: Vec<(u16, String)> = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed)
                && answers.len() < 20_000
                && started.elapsed() < Duration::from_secs(60)
            {
                let r = http.send(Method::GET, &router, &[("host", HOST)], None).await;
                answers.push(match r {
                    Ok(r) => (r.status.as_u16(), r.text().trim().to_owned()),
                    Err(e) => (0, e.to_string()),
                });
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = json!({ "relationships": { "app": { "data": { "guid": app.guid } } } });
    let created = env.send(Method::POST, "/v3/deployments", &body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let dep = created.json();
    assert_eq!(
        (dep["status"]["value"].as_str(), dep["status"]["reason"].as_str()),
        (Some("ACTIVE"), Some("DEPLOYING"))
    );
    let new_process = dep["new_processes"][0]["guid"].as_str().unwrap_or("").to_owned();
    assert_ne!(new_process, app.web_process, "the deployment has a web process of its own");
    assert_eq!(dep["new_processes"][0]["type"], "web");
    let dep_path = format!("/v3/deployments/{}", dep["guid"].as_str().unwrap_or(""));
    let finished = until(Duration::from_secs(45), "deployment finalized", || async {
        let d = env.get(&dep_path).await.json();
        (d["status"]["value"] == "FINALIZED").then_some(d)
    })
    .await;
    assert_eq!(finished["status"]["reason"], "DEPLOYED");
    // The last old instance goes after the finalizing tick, and each router hears of it (and of
    // the newest instance) on its own time: wait until every router has exactly the new ones.
    until(Duration::from_secs(10), "every router holds only the new instances", || async {
        let routers = env.cf.routers();
        if !routers.iter().all(|r| r.endpoints_for(HOST, "/").len() == count as usize) {
            return None;
        }
        for i in 0..count {
            if ask(env, &app.guid, Some(i)).await != (503, "new text".to_owned()) {
                return None;
            }
        }
        Some(())
    })
    .await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = load.await.expect("load task");

    // Every answer came from the maintenance app: no 404, 502 or 503 from the router.
    let bad: Vec<&(u16, String)> = answers.iter().filter(|(s, b)| *s != 503 || !b.ends_with("text")).collect();
    assert!(answers.len() > 50, "the load ran: {} answers", answers.len());
    assert!(
        bad.is_empty(),
        "{} of {} answers were not the app's: {:?}",
        bad.len(),
        answers.len(),
        &bad[..bad.len().min(5)]
    );
    let first_new = answers.iter().position(|(_, b)| b == "new text").expect("new instances served");
    assert!(answers[..first_new].iter().all(|(_, b)| b == "old text"));
    assert_eq!(answers.last().map(|(_, b)| b.as_str()), Some("new text"));

    // The app's web process is the deployment's, and all its instances run.
    let web = env.get(&format!("/v3/apps/{}/processes/web", app.guid)).await.json();
    assert_eq!(web["guid"], json!(new_process));
    let processes = env.get(&format!("/v3/apps/{}/processes", app.guid)).await.json();
    assert_eq!(processes["resources"].as_array().map(Vec::len), Some(1), "the old web process is gone");
    let running = ("RUNNING".to_owned(), true);
    assert_eq!(stats(env, &app.guid).await, vec![running; count as usize]);
}
