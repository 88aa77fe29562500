//! What an app's users see, set by `switchctl on --message` and changed live by `switchctl
//! message`, served by every real instance of the maintenance app (the double runs them as child
//! processes: `tests/src/instances.rs`), surviving an instance's restart, and removed by `off`
//! while another app's content stays. Also: the control secret's bootstrap (a rolling deployment
//! under load), its refusal with one instance carrying routes, and the secret never printed.
//!
//! Needs the binaries: `cargo build --release -p switchctl -p maintenance-app`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    time::{Duration, Instant},
};

use http::Method;
use tests::{RunOptions, cc::state::InstanceState, router::APP_INSTANCE_HEADER, serve::Server, world::SeededApp};

use crate::switch_support::{
    Answer, HttpRoute, Load, Maint, Setup, TempDir, World, binary, tally, wait_for, waiting_command, with_command,
};

/// A secret of the length switchctl makes (the maintenance app wants at least 32 characters).
const SECRET: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2";
const SHOP: &str = "shop.apps.example.com";
const HELLO: &str = "hello.apps.example.com";

/// `shop` (routes `shop`, `shop/api`), `hello` (route `hello`), and `maintenance-app` with
/// `instances` real instances and no route, its environment holding `secret` when given.
struct Scene {
    world: World,
    maint: SeededApp,
    hello: SeededApp,
    hello_route: HttpRoute,
    _hello_servers: Vec<Server>,
}

async fn scene(instances: u32, secret: Option<&str>) -> Scene {
    scene_with(2, instances, secret).await
}

/// [`scene`] with `routes` routes of `shop`.
async fn scene_with(routes: usize, instances: u32, secret: Option<&str>) -> Scene {
    let world = World::new(Setup { maint: Maint::Missing, routes, ..Setup::default() }).await;
    let (cf, std) = (&world.cf, &world.std);
    let hello = cf.add_app_with(&std.space, "hello", 1, true);
    let hello_servers = cf.serve_instances(&hello.guid, "hello", "web", 1).await.expect("hello instances");
    let route = cf.add_route(&std.space, &std.domain, "hello", "");
    cf.map_route(&route, &hello.guid, "web", 8080);
    let maint = cf.add_app_with(&std.space, "maintenance-app", instances, true);
    if let Some(secret) = secret {
        set_var(&world, &maint.guid, "MAINTENANCE_CONTROL_SECRET", secret);
    }
    let run = RunOptions { restart_delay: Duration::from_millis(300), ..RunOptions::new(binary("maintenance-app")) };
    cf.run_instances(&maint.guid, run);
    let scene = Scene {
        hello_route: HttpRoute { guid: route, host: HELLO.to_owned(), request_path: "/".to_owned() },
        world,
        maint,
        hello,
        _hello_servers: hello_servers,
    };
    scene.wait_running(instances).await;
    scene
}

fn set_var(world: &World, app: &str, key: &str, value: &str) {
    let mut st = world.cf.cc.state();
    let app = st.apps.iter_mut().find(|a| a.guid == app).expect("app");
    app.environment_variables.insert(key.to_owned(), value.to_owned());
}

impl Scene {
    fn var(&self, key: &str) -> Option<String> {
        self.world.cf.cc.state().app(&self.maint.guid).and_then(|a| a.environment_variables.get(key).cloned())
    }

    fn doc_key(app: &SeededApp) -> String {
        format!("MAINTENANCE_APP_{}", app.guid.to_ascii_uppercase().replace('-', "_"))
    }

    /// The maintenance app's deployments: (status reason, strategy).
    fn deployments(&self) -> Vec<String> {
        let st = self.world.cf.cc.state();
        st.deployments.iter().filter(|d| d.app_guid == self.maint.guid).map(|d| d.reason.clone()).collect()
    }

    async fn wait_running(&self, n: u32) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let running = {
                let st = self.world.cf.cc.state();
                st.process_of(&self.maint.guid, "web")
                    .map_or(0, |p| st.instance_states(p).iter().filter(|s| matches!(s, InstanceState::Running)).count())
            };
            if running == n as usize {
                return;
            }
            assert!(Instant::now() < deadline, "{n} maintenance instances running: {running}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /` on `host` through the router, pinned to instance `index` when given: (status,
    /// body, X-Maintenance-Version).
    async fn ask(&self, host: &str, index: Option<u32>) -> (u16, String, Option<String>) {
        self.ask_path(host, "/", index).await
    }

    /// [`Scene::ask`] for `path`.
    async fn ask_path(&self, host: &str, path: &str, index: Option<u32>) -> (u16, String, Option<String>) {
        let pin = index.map(|i| format!("{}:{i}", self.maint.guid));
        let mut headers = vec![("host", host), ("accept", "text/html")];
        if let Some(pin) = &pin {
            headers.push((APP_INSTANCE_HEADER, pin));
        }
        let url = format!("{}{path}", self.world.cf.router_url());
        match self.world.http.send(Method::GET, &url, &headers, None).await {
            Ok(r) => (r.status.as_u16(), r.text(), r.header("x-maintenance-version").map(str::to_owned)),
            Err(e) => (0, e.to_string(), None),
        }
    }

    /// Polls instance `index` on `host` until its answer contains `text` (at most `within`).
    async fn until_serves(&self, host: &str, index: u32, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (status, body, _) = self.ask(host, Some(index)).await;
            if body.contains(text) {
                return;
            }
            assert!(Instant::now() < deadline, "instance {index} on {host} never served {text:?}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn endpoints(&self, host: &str) -> Vec<SocketAddr> {
        let mut e = self.world.cf.router.endpoints_for(host, "/");
        e.sort();
        e
    }

    fn all_routes(&self) -> Vec<HttpRoute> {
        let mut routes = self.world.routes.clone();
        routes.push(self.hello_route.clone());
        routes
    }

    /// `switchctl message ARGS` with the router as probe address.
    async fn message(&self, args: &[&str]) -> crate::switch_support::Run {
        let via = self.world.probe_via();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--probe-via", &via, "--timeout", "20"]);
        self.world.run(&all).await
    }
}

/// Every answer of the load came from the maintenance app: no 404, no 502, nothing else.
fn assert_all_maintenance(samples: &[crate::switch_support::Sample], context: &str) {
    let counts: BTreeMap<Answer, usize> = tally(samples);
    assert!(samples.len() >= 20, "{context}: too little load to say anything: {counts:?}");
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [Answer::Maintenance], "{context}: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_sees_its_own_text_changed_live_on_every_instance_kept_after_a_restart_and_removed_by_off() {
    let s = scene(2, Some(SECRET)).await;
    s.world.run(&["on", "hello", "--message", "Hello rests", "--title", "Hello"]).await.expect_code(0);
    let on = s.world.run(&["on", "shop", "--message", "Back at 18:00", "--until", "2099-01-01T18:00:00Z"]).await;
    on.expect_code(0);
    assert!(on.stdout.contains("content version"), "on tells the content: {on}");

    // Each app's own text, on each instance; every route of shop (the path route too).
    for i in 0..2 {
        let (status, body, _) = s.ask(SHOP, Some(i)).await;
        assert!(status == 503 && body.contains("Back at 18:00") && !body.contains("Hello rests"), "{i}: {body}");
        let (_, body, _) = s.ask(HELLO, Some(i)).await;
        assert!(body.contains("Hello rests") && !body.contains("Back at 18:00"), "{i}: {body}");
    }
    let api_url = format!("{}/api/items", s.world.cf.router_url());
    let api = s.world.http.send(Method::GET, &api_url, &[("host", SHOP)], None).await.expect("answer");
    assert!(api.text().contains("Back at 18:00"), "shop/api is shop's too");
    let shop_key = Scene::doc_key(&s.world.app);
    let hello_key = Scene::doc_key(&s.hello);
    assert!(s.var(&shop_key).is_some_and(|d| d.contains("Back at 18:00")), "durable in the environment");

    // A change under load: every instance within 5 s, no 404/502, nothing restarted.
    let before = s.endpoints(HELLO);
    assert_eq!(before.len(), 2, "two instances registered");
    let load = Load::start(s.world.cf.router_url(), s.all_routes(), 60);
    load.wait_more(20, Duration::from_secs(10)).await;
    let started = Instant::now();
    let changed = s.message(&["message", "shop", "Back at 19:00"]).await;
    changed.expect_code(0);
    for i in 0..2 {
        let (_, body, version) = s.ask(SHOP, Some(i)).await;
        assert!(body.contains("Back at 19:00"), "instance {i} right after `message`: {body}");
        assert!(body.contains("2099"), "fields not given are kept (until): {body}");
        assert!(version.is_some_and(|v| v != "0"), "instance {i} says its version");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "every instance within 5 s: {:?}\n{changed}",
        started.elapsed()
    );
    load.wait_more(20, Duration::from_secs(10)).await;
    assert_all_maintenance(&load.stop().await, "load during `message`");
    assert_eq!(s.endpoints(HELLO), before, "no instance restarted by `message`");
    assert!(s.deployments().is_empty(), "no deployment: the secret was there");
    let (_, body, _) = s.ask(HELLO, Some(1)).await;
    assert!(body.contains("Hello rests"), "hello keeps its text: {body}");

    // A crashed instance comes back from the environment with the current text.
    assert!(s.world.cf.kill_instance(&s.maint.guid, 1), "instance 1 runs");
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.endpoints(HELLO) == before {
        assert!(Instant::now() < deadline, "instance 1 was replaced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.wait_running(2).await;
    s.until_serves(SHOP, 1, "Back at 19:00", Duration::from_secs(15)).await;
    s.until_serves(HELLO, 1, "Hello rests", Duration::from_secs(5)).await;

    // off: shop's content goes (environment and instances), its route is back on shop; hello's stays.
    s.world.run(&["off", "shop"]).await.expect_code(0);
    assert_eq!(s.var(&shop_key), None, "shop's key removed");
    assert!(s.var(&hello_key).is_some_and(|d| d.contains("Hello rests")), "hello's key untouched");
    assert_eq!(s.world.probe(&s.world.routes[0]).await, Answer::App, "shop's route is shop's again");
    for i in 0..2 {
        let (_, body, _) = s.ask(HELLO, Some(i)).await;
        assert!(body.contains("Hello rests"), "hello's text after off shop, instance {i}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_made_and_rolled_out_without_a_404_and_never_shown() {
    let s = scene(2, None).await;
    s.world.run(&["on", "hello"]).await.expect_code(0);
    assert_eq!(s.var("MAINTENANCE_CONTROL_SECRET"), None, "no content asked: no secret made");

    let load = Load::start(s.world.cf.router_url(), vec![s.hello_route.clone()], 40);
    load.wait_more(20, Duration::from_secs(10)).await;
    let on = s.world.run(&["-vv", "on", "shop", "--message", "Back soon"]).await;
    on.expect_code(0);
    load.wait_more(20, Duration::from_secs(10)).await;
    assert_all_maintenance(&load.stop().await, "hello during the secret's rolling deployment");

    let secret = s.var("MAINTENANCE_CONTROL_SECRET").expect("a secret was set");
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "64 hex digits");
    assert_eq!(s.deployments(), ["DEPLOYED"], "one rolling deployment, finished");
    for i in 0..2 {
        let (_, body, _) = s.ask(SHOP, Some(i)).await;
        assert!(body.contains("Back soon"), "instance {i}: {body}");
    }
    assert!(!on.stdout.contains(&secret) && !on.stderr.contains(&secret), "-vv never shows the secret: {on}");

    let json = s.message(&["--json", "-v", "message", "shop", "Later"]).await;
    json.expect_code(0);
    assert!(!json.stdout.contains(&secret) && !json.stderr.contains(&secret), "--json never shows it: {json}");
    let events = json.events();
    let content = events.iter().find(|e| e["event"] == "content").unwrap_or_else(|| panic!("content event: {json}"));
    assert_eq!(content["instances"].as_array().map(Vec::len), Some(2), "{content}");
    assert!(content["instances"].as_array().into_iter().flatten().all(|i| i["state"] == "serving"), "{content}");
    let off = s.world.run(&["-vv", "off", "shop"]).await;
    off.expect_code(0);
    assert!(!off.stdout.contains(&secret) && !off.stderr.contains(&secret), "off never shows it: {off}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_carrying_routes_is_not_restarted_for_a_secret() {
    let s = scene(1, None).await;
    s.world.run(&["on", "hello"]).await.expect_code(0);
    s.world.cf.faults.clear_log();
    let refused = s.world.run(&["on", "shop", "--message", "Back soon"]).await;
    refused.expect_code(2);
    assert!(refused.stderr.contains("cf scale maintenance-app -i 2"), "says what to run: {refused}");
    assert_eq!(s.world.cc_writes(), Vec::<String>::new(), "nothing written");
    assert_eq!(s.var("MAINTENANCE_CONTROL_SECRET"), None);
    assert!(s.deployments().is_empty());
    assert_eq!(s.world.probe(&s.world.routes[0]).await, Answer::App, "shop still serves");
}

/// `status shop` shows the version of shop's content in the maintenance app's environment and
/// the version each instance serves; an instance behind it (the environment moved on, the
/// instance was not told) is marked stale, with the command that brings it up to date, exit 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_what_each_instance_serves_and_marks_stale_ones() {
    let s = scene(2, Some(SECRET)).await;
    s.world.run(&["on", "shop", "--message", "Back at 18:00"]).await.expect_code(0);
    let key = Scene::doc_key(&s.world.app);
    let doc: serde_json::Value = serde_json::from_str(&s.var(&key).expect("shop's document")).expect("JSON");
    let version = doc["version"].as_u64().expect("a version");
    let status = s.world.run(&["status", "shop"]).await;
    status.expect_code(0);
    let each = format!("instance 0 serves version {version}, instance 1 serves version {version}");
    let line = format!("content for shop: version {version} in maintenance-app's environment; {each}");
    assert!(status.stdout.contains(&line), "{status}");

    let mut newer = doc.clone();
    newer["version"] = (version + 1).into();
    set_var(&s.world, &s.maint.guid, &key, &newer.to_string());
    let stale = s.world.run(&["status", "shop"]).await;
    stale.expect_code(1);
    assert!(stale.stderr.contains(&format!("instance 0 serves version {version} (stale)")), "{stale}");
    assert!(stale.stderr.contains("`cf restart maintenance-app --strategy rolling`"), "{stale}");
    let json = s.world.run(&["--json", "status", "shop"]).await;
    let event = json.events().into_iter().find(|e| e["event"] == "content").expect("a content event");
    assert_eq!(event["instances"][1]["stale"], true, "{event}");
    assert!(!status.stdout.contains(SECRET) && !stale.stderr.contains(SECRET) && !json.stdout.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_needs_a_window_and_a_change() {
    let s = scene(2, Some(SECRET)).await;
    let none = s.message(&["message", "shop", "text"]).await;
    none.expect_code(1);
    assert!(none.stderr.contains("not in maintenance"), "{none}");
    let empty = s.message(&["message", "shop"]).await;
    empty.expect_code(2);
    let too_long = "x".repeat(5000);
    let bad = s.world.run(&["on", "shop", "--message", &too_long]).await;
    bad.expect_code(2);
    s.world.run(&["on", "shop", "--status", "99"]).await.expect_code(2);
    s.world.run(&["on", "shop", "--until", "soon"]).await.expect_code(2);
    assert_eq!(s.world.cc_writes(), Vec::<String>::new(), "usage errors change nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_shows_its_message_while_the_command_runs_and_removes_it_when_the_window_closes() {
    let s = scene(2, Some(SECRET)).await;
    let dir = TempDir::new("run-message");
    let command = waiting_command(dir.path());
    let job =
        s.world.spawn(&with_command(&["run", "shop", "--message", "Migrating", "--retry-after", "120"], &command));
    wait_for(&dir.path().join("started")).await;
    for i in 0..2 {
        let (status, body, _) = s.ask(SHOP, Some(i)).await;
        assert!(status == 503 && body.contains("Migrating"), "instance {i} while the command runs: {body}");
    }
    let key = Scene::doc_key(&s.world.app);
    assert!(s.var(&key).is_some_and(|d| d.contains("\"retry_after\":120")), "the document in the environment");
    std::fs::write(dir.path().join("release"), "").expect("release");
    job.wait(Duration::from_secs(60)).await.expect_code(0);
    assert_eq!(s.var(&key), None, "the window closed: shop's content removed");
    assert_eq!(s.world.probe(&s.world.routes[0]).await, Answer::App, "shop serves again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_with_only_is_refused_before_any_change() {
    let s = scene_with(1, 2, Some(SECRET)).await;
    let refused = s.world.run(&["on", "shop", "--only", "/admin", "--message", "Admin closed"]).await;
    refused.expect_code(2);
    assert!(refused.stderr.contains("--only"), "says why: {refused}");
    assert_eq!(s.world.cc_writes(), Vec::<String>::new(), "nothing written");
}
