//! The `switchctl` binary: help, exit codes, error messages, completions.

use std::{path::Path, process::Command};

use crate::support::*;

/// The binary with a clean environment: no cf login variables, `CF_HOME` at `home`.
pub(crate) fn switchctl(home: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchctl"));
    for var in [
        "CF_API",
        "CF_USERNAME",
        "CF_PASSWORD",
        "CF_CLIENT_ID",
        "CF_CLIENT_SECRET",
        "CF_ORG",
        "CF_SPACE",
        "CF_SKIP_SSL_VALIDATION",
        "SWITCHCTL_MAINTENANCE_APP",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CF_HOME", home).env("HOME", home);
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run switchctl");
    let code = out.status.code().expect("exit code");
    (code, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn help_lists_the_exit_codes() {
    let home = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = run(switchctl(home.path()).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes:\n  0  done (every route"), "{out}");
    assert!(out.contains("\n  1  failed: a route could not be switched or restored"), "{out}");
    assert!(out.contains("2  usage or configuration error"), "{out}");
}

#[test]
fn bad_usage_exits_2() {
    let home = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run(switchctl(home.path()).arg("on"));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn not_logged_in_exits_2_and_says_run_cf_login() {
    let home = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = run(switchctl(home.path()).args(["status", "shop"]));
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty());
    assert!(err.starts_with("switchctl: error: not logged in: "), "{err}");
    assert!(err.contains("run `cf login`"), "{err}");
}

#[test]
fn no_targeted_space_exits_2_and_says_cf_target_or_space() {
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), "http://127.0.0.1:9", &format!("bearer {}", jwt(3600, "u")), |c| {
        c["SpaceFields"] = serde_json::json!({"GUID": "", "Name": "", "AllowSSH": false});
    });
    let (code, _, err) = run(switchctl(home.path()).args(["on", "shop"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run `cf target -s SPACE` or pass `--space`"), "{err}");
}

/// A loopback URL nothing listens on: bound to get a free port, then released.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    drop(listener);
    url
}

/// The unreachable-server rules: exit 2, one line, what to check, no HTTP library internals.
fn assert_one_line_unreachable(code: i32, out: &str, err: &str, expected_start: &str) {
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "one line on stderr:\n{err}");
    assert!(err.starts_with(expected_start), "{err}");
    assert!(err.contains("(connection refused"), "{err}");
    assert!(err.trim_end().ends_with("check the API target (`cf api`) and the network"), "{err}");
    for internal in ["error sending request", "client error", "tcp connect error", "os error"] {
        assert!(!err.contains(internal), "{internal:?} shows:\n{err}");
    }
}

#[test]
fn an_unreachable_api_from_config_json_is_a_configuration_error_on_one_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let api = closed_port_url();
    write_cf_config(home.path(), &api, &format!("bearer {}", jwt(3600, "u")), |_| {});
    let (code, out, err) = run(switchctl(home.path()).args(["on", "shop", "--dry-run"]));
    assert_one_line_unreachable(
        code,
        &out,
        &err,
        &format!("switchctl: error: cannot reach the Cloud Controller at {api} ("),
    );
}

#[test]
fn an_unreachable_cf_api_is_a_configuration_error_on_one_line() {
    let home = tempfile::tempdir().expect("tempdir");
    let api = closed_port_url();
    let mut cmd = switchctl(home.path());
    cmd.env("CF_API", &api).env("CF_CLIENT_ID", "ci").env("CF_CLIENT_SECRET", "s").env("CF_SPACE", "dev");
    let (code, out, err) = run(cmd.args(["status", "shop", "--org", "o"]));
    assert_one_line_unreachable(
        code,
        &out,
        &err,
        &format!("switchctl: error: cannot reach the Cloud Controller at {api} ("),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_uaa_is_a_configuration_error_on_one_line() {
    // The API answers; the login server it names does not.
    let api = serve(axum::Router::new()).await;
    let uaa = closed_port_url();
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), &api, &format!("bearer {}", jwt(-5, "expired")), |c| {
        c["AuthorizationEndpoint"] = uaa.clone().into();
    });
    let mut cmd = switchctl(home.path());
    cmd.args(["on", "shop", "--dry-run"]);
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.expect("join").expect("run switchctl");
    let (code, stdout, stderr) = (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_one_line_unreachable(
        code,
        &stdout,
        &stderr,
        &format!("switchctl: error: cannot reach UAA at {uaa}/oauth/token ("),
    );
}

#[test]
fn a_disabled_tls_check_is_warned_about() {
    let home = tempfile::tempdir().expect("tempdir");
    write_cf_config(home.path(), "http://127.0.0.1:9", &format!("bearer {}", jwt(3600, "u")), |c| {
        c["SSLDisabled"] = true.into();
    });
    let (_, _, err) = run(switchctl(home.path()).args(["status"]));
    assert!(err.contains("TLS certificates are not verified (SSLDisabled in config.json)"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let home = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (code, out, err) = run(switchctl(home.path()).args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("switchctl") && out.contains("maintenance-app"), "{shell}: {out}");
    }
}

#[test]
fn with_json_every_error_is_an_event_on_stdout() {
    let home = tempfile::tempdir().expect("tempdir");
    for args in [&["--json", "on", "shop"][..], &["--json", "on", "shop", "--concurrency", "0"][..]] {
        let (code, out, err) = run(switchctl(home.path()).args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        let lines: Vec<serde_json::Value> =
            out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        assert!(lines.iter().any(|e| e["event"] == "error" && e["message"].is_string()), "{args:?}: {out}");
        assert!(err.contains("error"), "and a line for the person watching: {err}");
    }
}
