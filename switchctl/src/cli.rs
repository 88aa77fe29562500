//! The command line: `switchctl [-v] [--skip-ssl-validation] [--org O] [--space S] [--json]
//! <on|off|run|status|completions> …`.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// The maintenance app's name when `--maintenance-app` is not given.
pub const DEFAULT_MAINTENANCE_APP: &str = "maintenance-app";
/// `--routes-limit` when not given: `maximumRouteLength` in Diego's BBS (`models/desired_lrp.go`).
pub const DEFAULT_ROUTES_LIMIT: u64 = 128 * 1024;
/// `--max-wait` when not given (seconds): capi's [`crate::capi::DEFAULT_MAX_WAIT`].
pub const DEFAULT_MAX_WAIT_SECS: u64 = crate::capi::DEFAULT_MAX_WAIT.as_secs();
/// Apps worked on at once when `--parallel` is not given.
pub const DEFAULT_PARALLEL: u16 = 8;
/// Routes changed at once when `--concurrency` is not given.
pub const DEFAULT_CONCURRENCY: u16 = 4;
/// Seconds a verification step waits when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// Seconds of `--settle` when not given.
pub const DEFAULT_SETTLE: u64 = 5;

/// Shown at the end of `--help`.
const AFTER_LONG_HELP: &str = "\
Login:
  switchctl uses the login of `cf login`: $CF_HOME/.cf/config.json, else ~/.cf/config.json
  (API, tokens, targeted org and space). Renewed tokens are written back to that file.
  In pipelines without `cf login`, set CF_API plus CF_CLIENT_ID and CF_CLIENT_SECRET (or
  CF_USERNAME and CF_PASSWORD), and pass --org and --space (or set CF_ORG and CF_SPACE).

Fleets:
  `on`, `off` and `run` take several APPs, or --selector with a label selector on the space's
  apps; with --all-spaces, every space of the org (each app with its own space's maintenance app).
  --parallel apps are worked on at once; each app's result is independent and listed at the end.

State:
  A switched route carries the label and annotation switchctl.cf-maintenance/m-<APP_GUID>; the
  annotation records APP's original destinations, so `off` (from any machine) restores them.
  After a failure or a crash, run the same command again: it resumes where it stopped.

Verification:
  Before the first change, each route about to change is probed once; if this machine cannot
  reach it (no connection, DNS or TLS failure), nothing is changed (exit 2): give a router
  address with --probe-via, or accept the risk with --no-verify --settle SECS. If the new side
  never answers on a route, the change is taken back: a route never stays half switched because
  a probe failed. Commands printed to finish or undo repeat the flags of this run.

Output:
  With --json every stdout line is one JSON event (errors too, as `error` events); `run`'s
  COMMAND then writes its standard output to stderr. A closed pipe ends the output, not the work.

Exit codes:
  0  done (every route switched, restored, already done or skipped); `status`: all consistent
  N  `run`: the COMMAND's own exit code when it failed (128+signal when a signal ended it);
     the apps stay in maintenance unless --on-failure off
  1  failed: a route could not be switched or restored (the state each route was left in is
     reported, with the command to finish), an app that must serve is not running, or `on`
     found no route to switch; `status`: a route has a problem or the router answers itself
  2  usage or configuration error (bad arguments or label selector, not logged in, no target,
     APP or the maintenance app not found, routes unreachable from here); nothing was changed
  126/127  `run`: COMMAND is not executable / not found; nothing was changed
  129/130/143  interrupted by SIGHUP/SIGINT/SIGTERM (each route is in a state a rerun finishes)";

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

    /// Longest wait for the Cloud Controller's rate limit, per request: a longer wait stops the run
    /// between routes (exit 1, with the command that finishes it).
    #[arg(long, global = true, value_name = "SECS", default_value_t = DEFAULT_MAX_WAIT_SECS, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub max_wait: u64,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send the apps' traffic to the maintenance app.
    On(SwitchArgs),
    /// Give the apps their routes back from the maintenance app.
    Off(OffArgs),
    /// A whole window: `on`, then COMMAND (and/or a restage), then `off` when all went well.
    Run(RunArgs),
    /// Show where APP's routes (or those of every switched app) send traffic.
    Status(StatusArgs),
    /// Print a shell completion script, e.g. `switchctl completions bash > /etc/bash_completion.d/switchctl`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// Which apps: names, or a label selector; in the target space, or in every space of the org.
#[derive(Debug, Clone, Default, Args)]
pub struct Fleet {
    /// The apps (names; with --selector, added to the apps it selects).
    #[arg(value_name = "APP", required_unless_present = "selector")]
    pub apps: Vec<String>,

    /// Every app matching this CAPI label selector, e.g. `backend=orders` or `tier in (a,b),!canary`.
    #[arg(long, value_name = "SELECTOR", value_parser = parse_selector)]
    pub selector: Option<String>,

    /// Look in every space of the org, not only the target space.
    #[arg(long)]
    pub all_spaces: bool,

    /// Apps worked on at once (each with --concurrency routes at once).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLEL, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

/// Arguments of `on` (and, flattened, of `off` and `run`).
#[derive(Debug, Clone, Args)]
pub struct SwitchArgs {
    /// The apps whose routes are switched.
    #[command(flatten)]
    pub fleet: Fleet,

    /// The maintenance app (in the same space). Give it more than once for a pool: each route
    /// goes to the pool's app carrying the fewest routes, and its record says which, so `off`
    /// needs no flag to find it. Diego limits the routes of one app (see --routes-limit).
    #[arg(long, env = "SWITCHCTL_MAINTENANCE_APP", default_value = DEFAULT_MAINTENANCE_APP, value_name = "NAME", action = clap::ArgAction::Append)]
    pub maintenance_app: Vec<String>,

    /// Every app of the space this label selector picks joins the pool of maintenance apps
    /// (with --maintenance-app names too, only when those are given).
    #[arg(long, value_name = "SELECTOR")]
    pub maintenance_selector: Option<String>,

    /// Show what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not probe the routes after each change; wait --settle seconds instead.
    #[arg(long)]
    pub no_verify: bool,

    /// With --no-verify: seconds to wait after each destination change (router tables settle);
    /// also what a route that cannot be probed gets (bound to a route service that answers
    /// itself, or on a domain enforcing route policies).
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SETTLE, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub settle: u64,

    /// Send verification probes to this router address (HOST:PORT) with each route's Host header.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub probe_via: Option<String>,

    /// Give up each verification step after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Routes changed in parallel.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,

    /// Diego's limit on the routes of one process, in bytes (the BBS's 128 KiB). `on` refuses,
    /// before any change, to bring a maintenance app past three quarters of it: past the limit,
    /// Diego refuses the maintenance app's routes and the new ones never reach the routers. A
    /// fleet too large for one maintenance app is spread over a pool (--maintenance-app twice).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_ROUTES_LIMIT, value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub routes_limit: u64,

    /// The window around the switch: writers stopped, reason, notifications, hooks, deadline.
    #[command(flatten)]
    pub window: WindowArgs,
}

/// The window's edges (`on` and `run`; `off` takes only --notify and --on-close).
#[derive(Debug, Clone, Default, Args)]
pub struct WindowArgs {
    /// `on`/`run`: process types to scale to 0 once the routes are switched (comma-separated or
    /// repeated; `all-but-web` for every type but web). Their instance counts are recorded on the
    /// app first; `off` restores them exactly. The web process cannot be stopped this way: it is
    /// what `off` probes to give the routes back.
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub stop_processes: Vec<String>,

    /// `on`/`run`: why the window is open (e.g. a ticket): stored on the app, shown by `status`
    /// and carried in every JSON event and notification.
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,

    /// POST every window event (the JSON objects of --json, except per-route and phase lines) to
    /// this URL, in order, 5 s timeout, 3 attempts; repeatable. A failing receiver only warns.
    /// Printed commands never show a URL's credentials or query: keep such URLs in
    /// SWITCHCTL_NOTIFY (space-separated), which a pasted command then still finds.
    #[arg(long, value_name = "URL", env = "SWITCHCTL_NOTIFY", value_delimiter = ' ', value_parser = parse_notify_url)]
    pub notify: Vec<String>,

    /// `on`/`run`: run CMD once the window is open (split like a shell, run without one; gets
    /// SWITCHCTL_APPS, SWITCHCTL_APP, SWITCHCTL_REASON, SWITCHCTL_EVENT). Failure only warns; it
    /// is killed after 30 s.
    #[arg(long, value_name = "CMD", value_parser = parse_hook)]
    pub on_open: Option<String>,

    /// Run CMD once the window is closed (as --on-open).
    #[arg(long, value_name = "CMD", value_parser = parse_hook)]
    pub on_close: Option<String>,

    /// `on`/`run`: the planned end (RFC 3339, or HH:MM in UTC, the next one to come): recorded,
    /// shown by `status`; `run` warns once (output and notifications) when the window is still
    /// open past it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub deadline: Option<String>,

    /// `on`/`run`: once the routes are switched, map the app (its destinations as recorded on
    /// its first HTTP route) to a preview route only testers know: `APP-preview-<8 random
    /// characters>` on that route's domain (or --preview-host), created if needed, recorded on
    /// the app, printed, and exported to `run`'s command as SWITCHCTL_PREVIEW_URL (one app) and
    /// SWITCHCTL_PREVIEW_URLS (one per line, in SWITCHCTL_APPS' order). `off` deletes it (or,
    /// for a route that existed before, unmaps only what it mapped).
    #[arg(long)]
    pub preview: bool,

    /// `on`/`run`: the preview route's host name (with --preview; one app only).
    #[arg(long, value_name = "NAME", requires = "preview", value_parser = parse_host)]
    pub preview_host: Option<String>,

    /// `on`/`run`: keep this path prefix on the app while the rest of each host route goes to
    /// maintenance (repeatable): a route `host.domain/PATH` is created (or an existing one of the
    /// app reused) and mapped to the app's destinations before the host route switches; `off`
    /// deletes exactly the routes it created. gorouter picks the longest matching path and does
    /// not strip the prefix: the app serves those requests under the same URLs as before.
    #[arg(long, value_name = "PATH", value_parser = parse_route_path, conflicts_with = "only")]
    pub except: Vec<String>,

    /// `on`/`run`: take only this path prefix down (repeatable): a route `host.domain/PATH` to the
    /// maintenance app, for each host route of the app; the rest keeps reaching the app. The
    /// maintenance app gets the requests under their full path (no prefix stripped).
    #[arg(long, value_name = "PATH", value_parser = parse_route_path)]
    pub only: Vec<String>,
}

/// Arguments of `off`.
#[derive(Debug, Clone, Args)]
pub struct OffArgs {
    /// As for `on`.
    #[command(flatten)]
    pub switch: SwitchArgs,

    /// Restore even if APP has no running web instance (then the restore is not verified); and
    /// scale a process stopped by --stop-processes back to its recorded count even when someone
    /// else scaled it during the window.
    #[arg(long)]
    pub force: bool,
}

/// What `run` does with the apps when COMMAND fails or switchctl is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    /// Keep them in maintenance (a failed migration is not shown to users) and say how to finish.
    Stay,
    /// Take them out of maintenance again.
    Off,
}

/// Arguments of `run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// As for `on`.
    #[command(flatten)]
    pub switch: SwitchArgs,

    /// Restage each app inside the window, as `cf restage` does, before taking it out again.
    #[arg(long)]
    pub restage: bool,

    /// When COMMAND fails or switchctl is interrupted: `stay` in maintenance, or switch `off`.
    #[arg(long, value_enum, default_value_t = OnFailure::Stay, value_name = "WHAT")]
    pub on_failure: OnFailure,

    /// Wait until TIME before anything changes (RFC 3339, or HH:MM in UTC, the next one to come),
    /// with a countdown; Ctrl-C while waiting exits with nothing changed.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<String>,

    /// When closing: scale a process stopped by --stop-processes back to its recorded count even
    /// when someone else scaled it during the window (as `off --force`).
    #[arg(long)]
    pub force: bool,

    /// With --restage: seconds to wait for staging (as CF_STAGING_TIMEOUT).
    #[arg(long, value_name = "SECS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub staging_timeout: u64,

    /// With --restage: seconds to wait until every web instance runs (as CF_STARTUP_TIMEOUT).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub startup_timeout: u64,

    /// The command to run while the apps are in maintenance, after `--`; no shell. It inherits
    /// stdin/stdout/stderr (with --json its stdout goes to stderr, so stdout stays JSON events)
    /// and gets SWITCHCTL_APPS (names, one per line), SWITCHCTL_ORG and SWITCHCTL_SPACE in its
    /// environment. It is looked up before the window opens: one not found exits 127 with
    /// nothing changed.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,

    /// With --preview: after COMMAND and the restage, run CMD (split like a shell, run without
    /// one: write `sh -c '…'` for a shell) with the preview URLs set as for COMMAND; the window
    /// closes only if it exits 0, else the apps stay in maintenance as for a failed COMMAND.
    #[arg(long, value_name = "CMD", requires = "preview", value_parser = parse_hook)]
    pub smoke: Option<String>,

    /// With --preview: a built-in smoke test: GET each app's preview URL + PATH must answer 2xx
    /// or 3xx from the app (not the maintenance app) within --timeout.
    #[arg(long, value_name = "PATH", requires = "preview", value_parser = parse_smoke_path)]
    pub smoke_url: Option<String>,
}

/// Arguments of `status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The app; without it, every app switched to the maintenance app in the space.
    #[arg(value_name = "APP")]
    pub app: Option<String>,

    /// The maintenance app (in the same space); more than once for a pool.
    #[arg(long, env = "SWITCHCTL_MAINTENANCE_APP", default_value = DEFAULT_MAINTENANCE_APP, value_name = "NAME", action = clap::ArgAction::Append)]
    pub maintenance_app: Vec<String>,

    /// Every app of the space this label selector picks is a maintenance app too.
    #[arg(long, value_name = "SELECTOR")]
    pub maintenance_selector: Option<String>,

    /// Send the probe (one request per route) to this router address (HOST:PORT) with each route's Host header.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub probe_via: Option<String>,

    /// Do not ask the routes who answers; show the API's view only.
    #[arg(long)]
    pub no_probe: bool,
}

/// Rejects selectors CAPI would refuse for a reason visible here (empty, blank).
fn parse_selector(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the label selector is empty; write e.g. `backend=orders`".to_owned());
    }
    Ok(value.to_owned())
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

/// A reason must fit the app's annotation (CC: 5000 characters) with room for the rest.
fn parse_reason(value: &str) -> Result<String, String> {
    let value = value.trim();
    match value.chars().count() {
        0 => Err("the reason is empty".to_owned()),
        n if n > MAX_REASON_CHARS => Err(format!("the reason has {n} characters; at most {MAX_REASON_CHARS} fit")),
        _ => Ok(value.to_owned()),
    }
}

/// A route path as the Cloud Controller accepts it (cloud_controller_ng
/// `app/models/runtime/route.rb#validate_path`, messages from `app/actions/route_create.rb`):
/// begins with `/`, is not `/` alone, has no `?`, at most 128 characters, and parses as a URI
/// path (here: printable ASCII without spaces, `#` or `%`-less escapes; UNCONFIRMED how far
/// `UriUtils.is_uri?` goes beyond that). One trailing `/` is dropped: gorouter trims it from the
/// route's key anyway (gorouter `route/uris.go#RouteKey`; UNCONFIRMED for every version).
fn parse_route_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err(format!("{value:?} is missing the beginning '/' (a path prefix such as /webhooks)"));
    }
    let path = value.strip_suffix('/').unwrap_or(value);
    if path.is_empty() {
        return Err("the path cannot be a single '/' (that is the whole route)".to_owned());
    }
    if path.contains('?') {
        return Err(format!("{value:?} cannot contain '?'"));
    }
    if path.chars().count() > 128 {
        return Err(format!("{value:?} exceeds 128 characters"));
    }
    if path.contains("//") || path.chars().any(|c| !c.is_ascii_graphic() || c == '#') {
        return Err(format!("{value:?} is not a valid URL path"));
    }
    Ok(path.to_owned())
}

/// The longest `--reason`: the record is one annotation of at most 5000 characters
/// (cloud_controller_ng `MetadataValidatorHelper`, `MAX_ANNOTATION_VALUE_SIZE`), and the process
/// counts and times need the rest.
pub const MAX_REASON_CHARS: usize = 1000;

/// An http(s) URL to POST events to.
fn parse_notify_url(value: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    Ok(value.to_owned())
}

/// A hook command: it must split into words (quotes closed).
fn parse_hook(value: &str) -> Result<String, String> {
    match crate::settings::split_words(value) {
        Some(words) if !words.is_empty() => Ok(value.to_owned()),
        Some(_) => Err("the command is empty".to_owned()),
        None => Err("unbalanced quotes or a trailing backslash".to_owned()),
    }
}

/// A route host: one DNS label of letters, digits, `-`, `_`, at most 63 characters, as
/// cloud_controller_ng's `app/messages/route_create_message.rb` validates it
/// (`MAXIMUM_DOMAIN_LABEL_LENGTH = 63`, `/\A([\w\-]+|\*)?\z/`; Ruby's `\w` is ASCII), less the
/// wildcard `*` and the empty host, which are no preview's name. What `route.rb` checks beyond
/// the message (the whole name's length with the domain) is CC's own 422, reported as such.
fn parse_host(value: &str) -> Result<String, String> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(value.to_owned()) } else { Err("a host is 1 to 63 letters, digits, `-` or `_`".to_owned()) }
}

/// A path for --smoke-url: starts with `/`.
fn parse_smoke_path(value: &str) -> Result<String, String> {
    if value.starts_with('/') { Ok(value.to_owned()) } else { Err("the path starts with `/`".to_owned()) }
}

/// A time: RFC 3339, or `HH:MM` (UTC).
fn parse_time(value: &str) -> Result<String, String> {
    crate::settings::parse_time(value, time::OffsetDateTime::now_utc()).map(|_| value.to_owned())
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
        assert_eq!(args.fleet.apps, ["shop"]);
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
        let err = Cli::try_parse_from(["switchctl", "on", "--selector", " "]).expect_err("blank selector");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn fleets_and_run_parse() {
        let cli = Cli::parse_from(["switchctl", "off", "--selector", "team=a", "--all-spaces", "--parallel", "3"]);
        let Command::Off(args) = cli.command else { panic!("off") };
        let fleet = &args.switch.fleet;
        assert!(fleet.apps.is_empty() && fleet.all_spaces);
        assert_eq!((fleet.selector.as_deref(), fleet.parallel), (Some("team=a"), 3));
        let cli = Cli::parse_from(["switchctl", "run", "a", "b", "--restage", "--", "migrate", "--to", "v2"]);
        let Command::Run(args) = cli.command else { panic!("run") };
        assert_eq!(args.switch.fleet.apps, ["a", "b"]);
        assert_eq!(args.command, ["migrate", "--to", "v2"]);
        assert!(args.restage && args.on_failure == OnFailure::Stay);
        assert_eq!((args.staging_timeout, args.startup_timeout), (900, 300));
        let cli = Cli::parse_from(["switchctl", "run", "a", "--on-failure", "off", "--", "true"]);
        let Command::Run(args) = cli.command else { panic!("run") };
        assert_eq!(args.on_failure, OnFailure::Off);
    }

    #[test]
    fn long_help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:") && help.contains("2  usage or configuration error"));
    }
}
