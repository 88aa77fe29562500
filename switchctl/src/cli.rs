//! The command line: `switchctl [-v] [--skip-ssl-validation] [--org O] [--space S] [--json]
//! <on|off|status|completions> …`.

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

/// Shown at the end of `--help`.
const AFTER_LONG_HELP: &str = "\
Login:
  switchctl uses the login of `cf login`: $CF_HOME/.cf/config.json, else ~/.cf/config.json
  (API, tokens, targeted org and space). Renewed tokens are written back to that file.
  In pipelines without `cf login`, set CF_API plus CF_CLIENT_ID and CF_CLIENT_SECRET (or
  CF_USERNAME and CF_PASSWORD), and pass --org and --space (or set CF_ORG and CF_SPACE).

State:
  A switched route carries the label and annotation switchctl.cf-maintenance/m-<APP_GUID>; the
  annotation records APP's original destinations, so `off` (from any machine) restores them.
  After a failure or a crash, run the same command again: it resumes where it stopped.

Exit codes:
  0  done (every route switched, restored, already done or skipped)
  1  failed: a route could not be switched or restored (each route is left consistent and
     reported; run the same command again to finish), or an app that must serve is not running
  2  usage or configuration error (bad arguments, not logged in, no target, APP or the
     maintenance app not found); nothing was changed";

/// Switch a Cloud Foundry app's routes to the maintenance app and back, verified.
#[derive(Debug, Parser)]
#[command(name = "switchctl", version, about, propagate_version = true, after_long_help = AFTER_LONG_HELP)]
pub struct Cli {
    /// Show each API request (method, URL, status, duration) on stderr; twice for headers (tokens redacted).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Do not verify the API's TLS certificate (like `cf api --skip-ssl-validation`).
    #[arg(long, global = true, env = "CF_SKIP_SSL_VALIDATION")]
    pub skip_ssl_validation: bool,

    /// Org to work in, instead of the one targeted with `cf target`.
    #[arg(long, global = true, env = "CF_ORG", value_name = "ORG")]
    pub org: Option<String>,

    /// Space to work in, instead of the one targeted with `cf target`.
    #[arg(long, global = true, env = "CF_SPACE", value_name = "SPACE")]
    pub space: Option<String>,

    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send APP's traffic to the maintenance app.
    On(SwitchArgs),
    /// Give APP its routes back from the maintenance app.
    Off(OffArgs),
    /// Show where APP's routes (or those of every switched app) send traffic.
    Status(StatusArgs),
    /// Print a shell completion script, e.g. `switchctl completions bash > /etc/bash_completion.d/switchctl`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Arguments of `on` (and, flattened, of `off`).
#[derive(Debug, Clone, Args)]
pub struct SwitchArgs {
    /// The app whose routes are switched.
    #[arg(value_name = "APP")]
    pub app: String,

    /// The maintenance app (in the same space).
    #[arg(long, env = "SWITCHCTL_MAINTENANCE_APP", default_value = "maintenance-app", value_name = "NAME")]
    pub maintenance_app: String,

    /// Show what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not probe the routes after each change; wait --settle seconds instead.
    #[arg(long)]
    pub no_verify: bool,

    /// With --no-verify: seconds to wait after each destination change (router tables settle).
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub settle: u64,

    /// Send verification probes to this router address (HOST:PORT) with each route's Host header.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub probe_via: Option<String>,

    /// Give up each verification step after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Routes changed in parallel.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
}

/// Arguments of `off`.
#[derive(Debug, Clone, Args)]
pub struct OffArgs {
    /// As for `on`.
    #[command(flatten)]
    pub switch: SwitchArgs,

    /// Restore even if APP has no running web instance (then the restore is not verified).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The app; without it, every app switched to the maintenance app in the space.
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// The maintenance app (in the same space).
    #[arg(long, env = "SWITCHCTL_MAINTENANCE_APP", default_value = "maintenance-app", value_name = "NAME")]
    pub maintenance_app: String,

    /// Send the probe (one request per route) to this router address (HOST:PORT) with each route's Host header.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub probe_via: Option<String>,

    /// Do not ask the routes who answers; show the API's view only.
    #[arg(long)]
    pub no_probe: bool,
}

/// Checks a `HOST:PORT` (`[v6]:PORT` for IPv6 addresses).
fn parse_host_port(value: &str) -> Result<String, String> {
    let (host, port) = value.rsplit_once(':').ok_or("expected HOST:PORT")?;
    port.parse::<u16>().map_err(|_| format!("{port:?} is not a port number"))?;
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if bare.is_empty() || (bare.contains(':') && bare.len() == host.len()) {
        return Err("expected HOST:PORT (write IPv6 addresses as [ADDR]:PORT)".to_owned());
    }
    Ok(value.to_owned())
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "switchctl", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_anywhere_with_defaults() {
        let cli = Cli::parse_from(["switchctl", "-vv", "on", "shop", "--org", "o", "--space", "s", "--dry-run"]);
        assert_eq!((cli.verbose, cli.org.as_deref(), cli.space.as_deref()), (2, Some("o"), Some("s")));
        let Command::On(args) = cli.command else { panic!("on") };
        assert_eq!(args.app, "shop");
        assert!(args.dry_run && !args.no_verify);
        assert_eq!((args.settle, args.timeout, args.concurrency), (5, 60, 4));
        let cli = Cli::parse_from(["switchctl", "off", "shop", "--force", "--probe-via", "127.0.0.1:8080"]);
        let Command::Off(args) = cli.command else { panic!("off") };
        assert!(args.force);
        assert_eq!(args.switch.probe_via.as_deref(), Some("127.0.0.1:8080"));
        for ok in ["router.example.com:443", "[::1]:8080"] {
            assert!(Cli::try_parse_from(["switchctl", "on", "a", "--probe-via", ok]).is_ok(), "{ok}");
        }
        for bad in ["router", "router:http", ":80", "::1:80"] {
            assert!(Cli::try_parse_from(["switchctl", "on", "a", "--probe-via", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let err = Cli::try_parse_from(["switchctl", "on", "a", "--concurrency", "0"]).expect_err("range");
        assert_eq!(err.exit_code(), 2);
        let err = Cli::try_parse_from(["switchctl", "on"]).expect_err("app missing");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn long_help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:") && help.contains("2  usage or configuration error"));
    }
}
