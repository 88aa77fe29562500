//! What `cf push` uses must agree: manifest, Procfile, .cfignore, binary name, health path.

use std::path::{Path, PathBuf};

use maintenance_app::config::DEFAULT_HEALTH_PATH;
use yaml_rust2::{Yaml, YamlLoader};

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn app() -> Yaml {
    let docs = YamlLoader::load_from_str(&repo_file("manifest.yml")).expect("manifest.yml is YAML");
    docs[0]["applications"][0].clone()
}

/// The command the Procfile's `web` process runs.
fn procfile_command() -> String {
    let procfile = repo_file("Procfile");
    let web = procfile.lines().find_map(|l| l.strip_prefix("web:")).expect("Procfile has a web process");
    web.trim().to_owned()
}

#[test]
fn manifest_describes_a_small_binary_buildpack_app_without_a_route() {
    let app = app();
    assert_eq!(app["name"].as_str(), Some("maintenance-app"));
    assert_eq!(app["buildpacks"][0].as_str(), Some("binary_buildpack"));
    let memory = app["memory"].as_str().expect("memory");
    let mb: u32 = memory.trim_end_matches('M').parse().expect("memory in M");
    assert!(mb <= 32, "memory {memory}");
    assert_eq!(app["instances"].as_i64(), Some(2));
    assert_eq!(app["no-route"].as_bool(), Some(true));
    assert_eq!(app["health-check-type"].as_str(), Some("http"));
}

#[test]
fn health_check_endpoint_is_the_path_the_app_answers() {
    let app = app();
    let endpoint = app["health-check-http-endpoint"].as_str().expect("health endpoint");
    let configured = app["env"]["MAINTENANCE_HEALTH_PATH"].as_str().unwrap_or(DEFAULT_HEALTH_PATH);
    assert_eq!(endpoint, configured);
    assert_eq!(endpoint, DEFAULT_HEALTH_PATH, "the manifest documents the built-in default");
}

#[test]
fn procfile_runs_the_binary_that_cargo_builds_and_cfignore_uploads() {
    let command = procfile_command();
    let pushed = PathBuf::from(command.trim_start_matches("./"));
    let built = PathBuf::from(env!("CARGO_BIN_EXE_maintenance-app"));
    assert_eq!(pushed.file_name(), built.file_name(), "Procfile runs {command}");
    let cfignore = repo_file(".cfignore");
    assert!(
        cfignore.lines().any(|l| l == format!("!/{}", pushed.display())),
        "cfignore must keep {}",
        pushed.display()
    );
    assert!(cfignore.lines().any(|l| l == "!/Procfile"));
    let script = repo_file("scripts/build-cf-binary");
    assert!(script.contains(&format!("cp \"target/$musl/dist/maintenance-app\" {}", pushed.display())));
    assert!(script.contains(&format!("cp target/dist/maintenance-app {}", pushed.display())));
}

/// cflinuxfs4 (Ubuntu 22.04) has glibc 2.35: a dynamically linked binary must not need newer.
#[test]
fn glibc_build_needs_no_symbol_newer_than_cflinuxfs4_has() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_maintenance-app")).expect("read binary");
    let newest = glibc_versions(&binary).into_iter().max();
    if let Some((major, minor)) = newest {
        assert!((major, minor) <= (2, 35), "binary needs GLIBC_{major}.{minor}; cflinuxfs4 has 2.35");
    }
}

/// Every `GLIBC_x.y` version string in the binary (the versions its dynamic symbols need).
fn glibc_versions(binary: &[u8]) -> Vec<(u32, u32)> {
    let needle = b"GLIBC_";
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(pos) = binary[i..].windows(needle.len()).position(|w| w == needle) {
        let start = i + pos + needle.len();
        let digits: String =
            binary[start..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.').map(|b| *b as char).collect();
        if let Some((major, minor)) = digits.split_once('.')
            && let (Ok(major), Ok(minor)) = (major.parse(), minor.split('.').next().unwrap_or("").parse())
        {
            found.push((major, minor));
        }
        i = start;
    }
    found
}

#[test]
fn glibc_version_scan_finds_versions() {
    assert_eq!(glibc_versions(b"\0GLIBC_2.34\0GLIBC_2.2.5\0xGLIBC_PRIVATE\0"), vec![(2, 34), (2, 2)]);
}
