//! `cf-double`: Cloud Foundry on a laptop, for trying `switchctl` without a foundation.
//!
//! Starts the CC + UAA doubles and the gorouter double on loopback, seeds org `demo`, space `dev`,
//! shared domain `apps.localhost`, an app `hello` (two built-in backend instances) on
//! `hello.apps.localhost` and the real `maintenance-app` as app `maintenance-app`,
//! writes a cf CLI `config.json` logged in as a Space Developer into a fresh CF_HOME, and prints
//! how to use it. Stops on Ctrl-C.
//!
//! The maintenance app's instances are real child processes of the `maintenance-app` binary
//! next to `cf-double` (or `--maintenance-app-binary PATH`): two of them, started from the app's
//! environment variables, restarted when they die, replaced one at a time by a rolling deployment
//! (`POST /v3/deployments`), as [`tests::instances`] describes. Without a binary (or with
//! `--in-process`) one server runs inside `cf-double` instead, as before.
//!
//! `--production` turns on everything a real foundation does at once ([`Options::production`]:
//! three routers behind a balancer, Diego's routes limit, CC's rate limiter, staging and stopping
//! that take time) and also seeds `legacy`, a Docker app whose image exposes port 80, on
//! `legacy.apps.localhost`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use tests::{CfDouble, Options, Role, RunOptions, seed_cli_config};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cf-double: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line: `[--production] [--maintenance-app-binary PATH | --in-process]`.
struct Args {
    production: bool,
    /// The binary the maintenance app's instances run; `None`: served in-process.
    binary: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { production: false, binary: beside("maintenance-app") };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--production" => args.production = true,
            "--in-process" => args.binary = None,
            "--maintenance-app-binary" => {
                let path = it.next().ok_or("--maintenance-app-binary needs a path")?;
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!("--maintenance-app-binary {}: no such file", path.display()));
                }
                args.binary = Some(path);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: cf-double [--production] \
                     [--maintenance-app-binary PATH | --in-process]"
                ));
            }
        }
    }
    Ok(args)
}

/// `name` next to this executable (`target/release/`), if it was built.
fn beside(name: &str) -> Option<PathBuf> {
    let name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let path = std::env::current_exe().ok()?.parent()?.join(name);
    path.is_file().then_some(path)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let Args { production, binary } = parse_args()?;
    // Route changes take 50–500 ms to reach the router, as through the route emitter and NATS.
    let options = if production {
        Options::production()
    } else {
        Options { router_delay: (Duration::from_millis(50), Duration::from_millis(500)), ..Options::default() }
    };
    let cf = CfDouble::start(options).await?;
    let org = cf.add_org("demo");
    let space = cf.add_space(&org, "dev");
    let domain = cf.add_shared_domain("apps.localhost");
    let user = cf.add_user("developer", "developer-pass", &[(&space, Role::Developer)]);

    let hello = cf.add_app_with(&space, "hello", 2, true);
    let hello_route = cf.add_route(&space, &domain, "hello", "");
    cf.map_route(&hello_route, &hello.guid, "web", 8080);
    let _hello = cf.serve_instances(&hello.guid, "hello", "web", 2).await?;
    // `legacy`: a Docker image exposing port 80, mapped as `cf map-route` maps it (no port: CC
    // stores -1 and shows 80).
    let _legacy = if production {
        let legacy = cf.add_docker_app(&space, "legacy", &[80]);
        let route = cf.add_route(&space, &domain, "legacy", "");
        cf.map_route_port(&route, &legacy.guid, "web", None);
        cf.serve_instances(&legacy.guid, "legacy", "web", 1).await?
    } else {
        Vec::new()
    };

    // The real maintenance app: two instances, each a child process of the binary, started from
    // the app's environment variables, restarted when killed, replaced one at a time by a rolling
    // deployment (`tests::instances`); or one server in-process with its default policy.
    let maint = match &binary {
        Some(path) => {
            let maint = cf.add_app_with(&space, "maintenance-app", 2, true);
            cf.run_instances(&maint.guid, RunOptions::new(path));
            maint
        }
        None => {
            let maint = cf.add_app(&space, "maintenance-app");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            cf.router.register(&maint.guid, "web", vec![listener.local_addr()?]);
            let config = maintenance_app::Config::from_vars([])?;
            tokio::spawn(maintenance_app::serve(listener, config, std::future::pending()));
            maint
        }
    };

    let home = std::env::var_os("CF_DOUBLE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cf-double-{}", std::process::id())));
    let file = seed_cli_config(&cf, &home, &user.name, ("demo", &org), ("dev", &space))?;
    cf.wait_settled(Duration::from_secs(5)).await;

    let router = cf.router_addr();
    if production {
        println!("Cloud Foundry double running as harsh as production (Ctrl-C to stop)");
        println!(
            "  3 routers behind a random balancer, route changes 50-500 ms to each; Diego's 128 KiB routes limit;"
        );
        println!(
            "  CC's rate limiter at 2000 requests per user per hour over 4 instances; app legacy (Docker, port 80)"
        );
        println!(
            "  registrations refreshed every 600 ms (a foundation's 20 s, scaled), TLS endpoints (pruned on a failed dial)"
        );
    } else {
        println!("Cloud Foundry double running (Ctrl-C to stop)");
    }
    println!("  API        {}", cf.api_url());
    println!("  UAA        {}", cf.uaa_url());
    println!("  router     http://{router}");
    println!("  cf config  {}", file.display());
    match &binary {
        Some(path) => println!("  maintenance-app  2 instances of {} (guid {})", path.display(), maint.guid),
        None => println!("  maintenance-app  in-process (no maintenance-app binary beside cf-double)"),
    }
    println!();
    println!("export CF_HOME={}", shell_quote(&home.display().to_string()));
    println!("curl -i -H 'Host: hello.apps.localhost' http://{router}/");
    if production {
        println!("curl -i -H 'Host: legacy.apps.localhost' http://{router}/");
    }
    // The route's host only exists behind this router, so switchctl's probes must go through it.
    let switchctl = switchctl_command();
    println!("{switchctl} on hello --probe-via {router}    # then the curl answers from maintenance-app");
    println!("{switchctl} status hello --probe-via {router}");
    println!("{switchctl} off hello --probe-via {router}   # and back to hello");
    if production {
        println!("{switchctl} on hello legacy --probe-via {router}");
        println!("{switchctl} off hello legacy --probe-via {router}");
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// How to run switchctl, as printed: it is not on PATH after a cargo build. The built binary next
/// to this one (`target/release/`, after `cargo build --release -p switchctl` or the workspace's
/// tests) by its full path; else `cargo run` from the workspace root, with a line saying so.
fn switchctl_command() -> String {
    let name = format!("switchctl{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(name)));
    match beside {
        Some(path) if path.is_file() => shell_quote(&path.display().to_string()),
        _ => {
            println!("# switchctl is not built yet: from the workspace root, `cargo build --release -p switchctl`,");
            println!("# or run it through cargo as below.");
            "cargo run --release -p switchctl --".to_owned()
        }
    }
}

/// `s` as one shell word: unchanged when it has only safe characters, else single-quoted.
fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@%".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
