//! switchctl as a cf CLI plugin, end to end: a Go program that is not ours (`tests/cfplugin`,
//! standard library `net/rpc` and `encoding/gob` only) plays the cf CLI's RPC server, with the
//! method names and argument/reply types of cloudfoundry/cli `plugin/rpc/cli_rpc_server.go`, and
//! launches the real `switchctl` binary as the cf CLI launches a plugin
//! (`plugin/rpc/run_plugin.go`): `switchctl PORT SendMetadata`, then
//! `switchctl PORT maintenance on hello`. The switch itself happens against the double.
//!
//! Needs Go (`apt-get install golang-go`; `.ci/run` installs it): without it these tests fail.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use serde_json::Value;
use tests::serve::Server;

use crate::switch_support::{Setup, TempDir, World, binary};

/// Builds the harness once per test run (Go's build cache makes later runs quick).
fn harness() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfplugin");
            let out = std::env::temp_dir().join(format!("cfplugin-harness-{}", std::process::id()));
            let built = Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(&source)
                .env("GOFLAGS", "-buildvcs=false")
                .env("GOCACHE", std::env::temp_dir().join("cfplugin-gocache"))
                .stdin(Stdio::null())
                .output();
            match built {
                Err(e) => panic!(
                    "cannot run `go` ({e}): the cf plugin tests need Go; install it with `apt-get install golang-go`"
                ),
                Ok(o) if !o.status.success() => {
                    panic!("go build of tests/cfplugin failed:\n{}", String::from_utf8_lossy(&o.stderr))
                }
                Ok(_) => out,
            }
        })
        .clone()
}

/// Runs the harness (and through it switchctl) with HOME and CF_HOME at `home`, at most 120 s.
async fn run_harness(args: Vec<String>, home: &Path) -> Output {
    let home = home.to_owned();
    let task = tokio::task::spawn_blocking(move || {
        Command::new(harness())
            .args(&args)
            .env_clear()
            .env("HOME", &home)
            .env("CF_HOME", &home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("harness runs")
    });
    tokio::time::timeout(Duration::from_secs(120), task).await.expect("harness ends within 120 s").expect("joins")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `switchctl ARGS` as a plain process: its stdout.
fn switchctl_stdout(args: &[&str]) -> String {
    let out = Command::new(binary("switchctl")).args(args).env_clear().output().expect("switchctl runs");
    text(&out.stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cf_cli_gets_the_metadata_field_by_field() {
    let version = switchctl_stdout(&["--version"]);
    let version = version.trim().strip_prefix("switchctl ").expect("`switchctl X.Y.Z`").to_owned();
    let home = TempDir::new("plugin-meta");
    let args = vec![
        "metadata".to_owned(),
        "--want-name=maintenance".to_owned(),
        format!("--want-version={version}"),
        "--want-min-cli-version=7.0.0".to_owned(),
        "--want-command=maintenance".to_owned(),
        binary("switchctl").display().to_string(),
    ];
    let out = run_harness(args, home.path()).await;
    assert!(out.status.success(), "harness: {}\n{}", text(&out.stdout), text(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("the harness prints the metadata as JSON");
    let command = &meta["Commands"][0];
    // The help text is the about line of `switchctl --help`, and the usage shows every
    // subcommand as `cf maintenance SUB`, from the same clap definition.
    let help = switchctl_stdout(&["--help"]);
    assert_eq!(command["HelpText"].as_str(), help.lines().next(), "{meta}");
    let usage = command["UsageDetails"]["Usage"].as_str().expect("usage");
    for sub in ["on", "off", "run", "status"] {
        assert!(usage.contains(&format!("cf maintenance {sub} ")), "`cf maintenance {sub}` in {usage}");
    }
    assert!(!usage.contains("completions"), "{usage}");
    let options = command["UsageDetails"]["Options"].as_object().expect("options");
    for flag in ["org", "space", "json", "probe-via", "skip-ssl-validation"] {
        assert!(options.get(flag).and_then(Value::as_str).is_some_and(|h| !h.is_empty()), "--{flag}: {options:?}");
    }
}

/// The double with `hello` (a route, two instances: dropping the servers stops them) beside the
/// shared world's `shop`; `hello`'s GUID and its route's.
async fn hello_world() -> (World, String, String, Vec<Server>) {
    let w = World::new(Setup::default()).await;
    let hello = w.cf.add_app_with(&w.std.space, "hello", 2, true);
    let servers = w.cf.serve_instances(&hello.guid, "hello", "web", 2).await.expect("hello instances");
    let route = w.cf.add_route(&w.std.space, &w.std.domain, "hello", "");
    w.cf.map_route(&route, &hello.guid, "web", 8080);
    assert!(w.cf.router.wait_settled(Duration::from_secs(5)).await, "router settles");
    (w, hello.guid, route, servers)
}

/// `cfplugin run` with the double's session, then `switchctl PORT maintenance ARGS…`.
fn run_args(w: &World, calls: &Path, extra: &[&str], plugin_args: &[&str]) -> Vec<String> {
    let token = w.cf.bearer("developer").expect("developer");
    let mut args = vec![
        "run".to_owned(),
        format!("--api={}", w.cf.api_url()),
        format!("--token={token}"),
        format!("--org-guid={}", w.std.org),
        "--org-name=org".to_owned(),
        format!("--space-guid={}", w.std.space),
        "--space-name=dev".to_owned(),
        format!("--calls={}", calls.display()),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.push(binary("switchctl").display().to_string());
    args.push("maintenance".to_owned());
    args.extend(plugin_args.iter().map(|s| (*s).to_owned()));
    args
}

fn calls_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).expect("calls written").lines().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_on_and_off_hello_run_inside_the_cf_session() {
    let (w, hello, route, _servers) = hello_world().await;
    let maint = w.maint_guid();
    let router = w.probe_via();
    let switch = ["--probe-via", router.as_str(), "--settle", "0", "--timeout", "30"];
    // An empty home: everything comes from the CLI over RPC, nothing from a config.json. The
    // first token is one the Cloud Controller rejects, as a token that expired while the CLI held
    // it: switchctl must ask the CLI again (it refreshes) rather than fail or go to UAA itself.
    let home = TempDir::new("plugin-run");
    let calls = home.path().join("calls");
    let on_args: Vec<&str> = ["on", "hello"].iter().copied().chain(switch).collect();
    let args = run_args(&w, &calls, &["--first-token=bearer expired-while-the-cli-held-it"], &on_args);
    let out = run_harness(args, home.path()).await;
    let shown = format!("stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(text(&out.stdout).contains("Switching route hello.apps.example.com to maintenance-app... OK"), "{shown}");
    let dests = w.dests(&route);
    assert!(
        dests.iter().all(|d| d.0 == maint) && !dests.is_empty(),
        "hello's route goes to the maintenance app: {dests:?}"
    );
    let calls_made = calls_of(&calls);
    for method in ["IsMinCliVersion", "ApiEndpoint", "GetCurrentOrg", "GetCurrentSpace", "IsSSLDisabled"] {
        assert!(calls_made.iter().any(|c| c == method), "{method} called: {calls_made:?}");
    }
    let tokens = calls_made.iter().filter(|c| *c == "AccessToken").count();
    assert_eq!(tokens, 2, "the first token, then a fresh one after the 401: {calls_made:?}");
    let rejected = w.cc_log().iter().filter(|r| r.status == 401).count();
    assert!(rejected >= 1, "the Cloud Controller rejected the stale token");
    assert!(w.cf.faults.log().iter().all(|r| r.service != "uaa"), "switchctl never asks UAA itself");

    let off_args: Vec<&str> = ["off", "hello"].iter().copied().chain(switch).collect();
    let out = run_harness(run_args(&w, &calls, &[], &off_args), home.path()).await;
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    let dests = w.dests(&route);
    assert!(dests.iter().all(|d| d.0 == hello) && !dests.is_empty(), "hello has its route back: {dests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cli_cannot_say_comes_from_config_json() {
    let (w, _hello, route, _servers) = hello_world().await;
    let maint = w.maint_guid();
    let calls = w.home.path().join("calls");
    let router = w.probe_via();
    let failing = "--fail=ApiEndpoint,GetCurrentOrg,GetCurrentSpace,IsSSLDisabled,AccessToken";
    let args = run_args(&w, &calls, &[failing], &["on", "hello", "--probe-via", &router, "--settle", "0"]);
    // The world's home holds the config.json of a `cf login` to the double.
    let out = run_harness(args, w.home.path()).await;
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    assert!(w.dests(&route).iter().all(|d| d.0 == maint), "switched with the login of config.json");

    // With neither the CLI's answers nor a config.json there is no login: a configuration error.
    let empty = TempDir::new("plugin-empty");
    let args = run_args(&w, &calls, &[failing], &["status", "hello", "--probe-via", &router]);
    let out = run_harness(args, empty.path()).await;
    assert_eq!(out.status.code(), Some(2), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_help_an_old_cli_and_uninstall() {
    let (w, _hello, _route, _servers) = hello_world().await;
    let home = TempDir::new("plugin-usage");
    let calls = home.path().join("calls");
    let out = run_harness(run_args(&w, &calls, &[], &["on"]), home.path()).await;
    assert_eq!(out.status.code(), Some(2), "a usage error is switchctl's exit 2");
    assert!(text(&out.stderr).contains("cf maintenance on"), "usage names the cf command: {}", text(&out.stderr));

    // A cf CLI older than MinCliVersion (IsMinCliVersion answers false): nothing runs.
    let out = run_harness(run_args(&w, &calls, &["--cli-version=6.53.0"], &["status", "hello"]), home.path()).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Minimum CLI version 7.0.0 is required"), "{}", text(&out.stderr));
    assert_eq!(calls_of(&calls), ["IsMinCliVersion"], "nothing else is asked of a CLI too old");

    // cf answers `--help` after a plugin command itself; the details are behind `help SUB`.
    let out = run_harness(run_args(&w, &calls, &[], &["help", "on"]), home.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    assert!(help.contains("Usage: cf maintenance on") && help.contains("--probe-via"), "{help}");

    let mut args = run_args(&w, &calls, &[], &[]);
    // `switchctl PORT CLI-MESSAGE-UNINSTALL`, as `cf uninstall-plugin` runs it.
    args.pop();
    args.push("CLI-MESSAGE-UNINSTALL".to_owned());
    let out = run_harness(args, home.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
