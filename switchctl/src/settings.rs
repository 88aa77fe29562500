//! What the command line asked for, with every decision made: clap's structs ([`crate::cli`]) are
//! turned into these once, and nothing below [`crate::run`] sees clap (ripgrep's low args → high
//! args).
//!
//! The commands switchctl prints for the operator to paste (finish a window, resume a switch,
//! undo it) are rendered from these settings by [`Settings::command`], so they repeat every flag
//! that changes behaviour and cannot forget one.

use std::time::Duration;

use clap_complete::Shell;

use crate::cli::{
    Cli, Command, DEFAULT_CONCURRENCY, DEFAULT_MAINTENANCE_APP, DEFAULT_PARALLEL, DEFAULT_ROUTES_LIMIT, DEFAULT_SETTLE,
    DEFAULT_TIMEOUT, Fleet, OffArgs, OnFailure, RunArgs, StatusArgs, SwitchArgs,
};

/// Every setting of one invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `-v` count.
    pub verbose: u8,
    /// `--skip-ssl-validation` (or `CF_SKIP_SSL_VALIDATION`).
    pub skip_ssl_validation: bool,
    /// `--org`, else the targeted org.
    pub org: Option<String>,
    /// `--space`, else the targeted space.
    pub space: Option<String>,
    /// How output looks.
    pub output: OutputMode,
    /// `--max-wait`: the longest one request waits for the rate limit.
    pub max_wait: Duration,
    /// What to do.
    pub action: Action,
}

/// Text for people, or JSON events for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Lines (live on a terminal).
    Text,
    /// One JSON event per stdout line.
    Json,
}

/// The command.
#[derive(Debug, Clone)]
pub enum Action {
    /// `on`.
    On(Switch),
    /// `off`.
    Off(Off),
    /// `run`.
    Run(Run),
    /// `status`.
    Status(Status),
    /// `completions SHELL`.
    Completions(Shell),
}

/// Which apps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetSelection {
    /// Names.
    pub apps: Vec<String>,
    /// A CAPI label selector.
    pub selector: Option<String>,
    /// Every space of the org.
    pub all_spaces: bool,
    /// Apps at once.
    pub parallel: u16,
}

/// How a change is confirmed before the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Probe the routes (through `via`, a router address, when given) for up to `timeout`.
    Probe {
        /// `--probe-via HOST:PORT`.
        via: Option<String>,
        /// `--timeout`.
        timeout: Duration,
        /// `--settle`: how long a route that cannot be probed (bound to a route service that
        /// answers itself, or on a domain enforcing route policies) gets for the router to take a
        /// change.
        settle: Duration,
    },
    /// `--no-verify`: wait this long after each change instead.
    Settle(Duration),
}

impl Verification {
    /// Whether routes are probed.
    pub fn probes(&self) -> bool {
        matches!(self, Verification::Probe { .. })
    }
}

/// Settings of a switch (`on`, and the switching part of `off` and `run`).
#[derive(Debug, Clone)]
pub struct Switch {
    /// The apps.
    pub fleet: FleetSelection,
    /// The maintenance apps.
    pub maintenance: Pool,
    /// Plan only.
    pub dry_run: bool,
    /// How changes are confirmed.
    pub verify: Verification,
    /// Routes at once per app.
    pub concurrency: u16,
    /// `--routes-limit`: Diego's limit on one process's routes, in bytes.
    pub routes_limit: u64,
}

/// The maintenance apps of a switch: one, or a pool that a fleet's routes are spread over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// `--maintenance-app`, in the order given, without repeats. Empty only with a selector and
    /// no name given.
    pub names: Vec<String>,
    /// `--maintenance-selector`: every app of the space it picks is in the pool too.
    pub selector: Option<String>,
}

impl Pool {
    /// The pool `--maintenance-app` (`names`, clap's default when none was given) and
    /// `--maintenance-selector` ask for. A selector alone does not drag the default name in: a
    /// space whose maintenance apps are labelled need not also have one called `maintenance-app`.
    pub fn new(names: &[String], selector: Option<&str>) -> Pool {
        let mut unique: Vec<String> = Vec::new();
        for n in names {
            if !unique.contains(n) {
                unique.push(n.clone());
            }
        }
        if selector.is_some() && unique == [DEFAULT_MAINTENANCE_APP] {
            unique.clear();
        }
        Pool { names: unique, selector: selector.map(str::to_owned) }
    }

    /// The default: the one app called `maintenance-app`.
    pub fn single(name: &str) -> Pool {
        Pool { names: vec![name.to_owned()], selector: None }
    }

    /// How lines name the pool: `maintenance-app`, `maint-a, maint-b`, `apps labelled tier=maint`.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.names.clone();
        if let Some(s) = &self.selector {
            parts.push(format!("the apps labelled {s}"));
        }
        parts.join(", ")
    }

    /// Whether `name` is one of the pool's names (apps picked by the selector are known only once
    /// resolved).
    pub fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    /// The flags that ask for this pool again (none for the default).
    pub fn flags(&self) -> Vec<String> {
        let mut words = Vec::new();
        if self.names != [DEFAULT_MAINTENANCE_APP] || self.selector.is_some() {
            for n in &self.names {
                words.extend(["--maintenance-app".into(), quote(n)]);
            }
        }
        if let Some(s) = &self.selector {
            words.extend(["--maintenance-selector".into(), quote(s)]);
        }
        words
    }
}

/// Settings of `off`.
#[derive(Debug, Clone)]
pub struct Off {
    /// As for `on`.
    pub switch: Switch,
    /// Restore even if the app does not run.
    pub force: bool,
}

/// Settings of `run`.
#[derive(Debug, Clone)]
pub struct Run {
    /// As for `on`.
    pub switch: Switch,
    /// `--restage`, with its timeouts.
    pub restage: Option<RestageTimeouts>,
    /// What happens to the apps when the window's work fails.
    pub on_failure: OnFailure,
    /// COMMAND and its arguments (may be empty with `--restage`).
    pub command: Vec<String>,
}

/// How long staging and starting may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestageTimeouts {
    /// Until the build is staged.
    pub staging: Duration,
    /// Until every web instance runs.
    pub startup: Duration,
}

/// Settings of `status`.
#[derive(Debug, Clone)]
pub struct Status {
    /// One app, or every switched route of the space.
    pub app: Option<String>,
    /// The maintenance apps.
    pub maintenance: Pool,
    /// `None` with `--no-probe`; else where probes go (`--probe-via`).
    pub probe: Option<Option<String>>,
}

impl Settings {
    /// The settings `cli` asks for.
    pub fn from_cli(cli: &Cli) -> Settings {
        let action = match &cli.command {
            Command::On(args) => Action::On(Switch::from_args(args)),
            Command::Off(args) => Action::Off(Off::from_args(args)),
            Command::Run(args) => Action::Run(Run::from_args(args)),
            Command::Status(args) => Action::Status(Status::from_args(args)),
            Command::Completions { shell } => Action::Completions(*shell),
        };
        Settings {
            verbose: cli.verbose,
            max_wait: Duration::from_secs(cli.max_wait),
            skip_ssl_validation: cli.skip_ssl_validation,
            org: cli.org.clone(),
            space: cli.space.clone(),
            output: if cli.json { OutputMode::Json } else { OutputMode::Text },
            action,
        }
    }

    /// The command line that runs `verb` (`on`, `off`, `status`) on `apps` in `org`/`space` with
    /// the behaviour of this invocation's switch settings, as one line for a POSIX shell:
    /// `switchctl --org O --space S off a b --probe-via … --timeout …`.
    pub fn command(&self, verb: &str, org: &str, space: &str, apps: &[&str]) -> String {
        let mut words: Vec<String> = vec!["switchctl".into()];
        if self.skip_ssl_validation {
            words.push("--skip-ssl-validation".into());
        }
        // The finish command must be allowed the same waits as the run it finishes.
        if self.max_wait != crate::capi::DEFAULT_MAX_WAIT {
            words.extend(["--max-wait".into(), self.max_wait.as_secs().to_string()]);
        }
        words.extend(["--org".into(), quote(org), "--space".into(), quote(space), verb.into()]);
        words.extend(apps.iter().map(|a| quote(a)));
        if let Some(switch) = self.switch() {
            if verb == "status" {
                words.extend(switch.maintenance.flags());
                if let Verification::Probe { via: Some(via), .. } = &switch.verify {
                    words.extend(["--probe-via".into(), quote(via)]);
                }
            } else {
                words.extend(switch.flags());
            }
        }
        words.join(" ")
    }

    /// The switch settings of `on`, `off` and `run`.
    pub fn switch(&self) -> Option<&Switch> {
        match &self.action {
            Action::On(s) => Some(s),
            Action::Off(o) => Some(&o.switch),
            Action::Run(r) => Some(&r.switch),
            Action::Status(_) | Action::Completions(_) => None,
        }
    }
}

impl Switch {
    fn from_args(args: &SwitchArgs) -> Switch {
        let verify = if args.no_verify {
            Verification::Settle(Duration::from_secs(args.settle))
        } else {
            Verification::Probe {
                via: args.probe_via.clone(),
                timeout: Duration::from_secs(args.timeout),
                settle: Duration::from_secs(args.settle),
            }
        };
        Switch {
            fleet: FleetSelection::from_args(&args.fleet),
            maintenance: Pool::new(&args.maintenance_app, args.maintenance_selector.as_deref()),
            dry_run: args.dry_run,
            verify,
            concurrency: args.concurrency,
            routes_limit: args.routes_limit,
        }
    }

    /// The flags that change how a switch behaves, as given (defaults left out), for a printed
    /// command: the maintenance app, how changes are verified, how many routes at once.
    pub fn flags(&self) -> Vec<String> {
        let mut words = Vec::new();
        words.extend(self.maintenance.flags());
        match &self.verify {
            Verification::Probe { via, timeout, settle } => {
                if let Some(via) = via {
                    words.extend(["--probe-via".into(), quote(via)]);
                }
                if timeout.as_secs() != DEFAULT_TIMEOUT {
                    words.extend(["--timeout".into(), timeout.as_secs().to_string()]);
                }
                if settle.as_secs() != DEFAULT_SETTLE {
                    words.extend(["--settle".into(), settle.as_secs().to_string()]);
                }
            }
            Verification::Settle(settle) => {
                words.extend(["--no-verify".into(), "--settle".into(), settle.as_secs().to_string()]);
            }
        }
        if self.concurrency != DEFAULT_CONCURRENCY {
            words.extend(["--concurrency".into(), self.concurrency.to_string()]);
        }
        if self.fleet.parallel != DEFAULT_PARALLEL {
            words.extend(["--parallel".into(), self.fleet.parallel.to_string()]);
        }
        if self.routes_limit != DEFAULT_ROUTES_LIMIT {
            words.extend(["--routes-limit".into(), self.routes_limit.to_string()]);
        }
        words
    }
}

impl FleetSelection {
    fn from_args(fleet: &Fleet) -> FleetSelection {
        FleetSelection {
            apps: fleet.apps.clone(),
            selector: fleet.selector.clone(),
            all_spaces: fleet.all_spaces,
            parallel: fleet.parallel,
        }
    }
}

impl Off {
    fn from_args(args: &OffArgs) -> Off {
        Off { switch: Switch::from_args(&args.switch), force: args.force }
    }
}

impl Run {
    fn from_args(args: &RunArgs) -> Run {
        Run {
            switch: Switch::from_args(&args.switch),
            restage: args.restage.then(|| RestageTimeouts {
                staging: Duration::from_secs(args.staging_timeout),
                startup: Duration::from_secs(args.startup_timeout),
            }),
            on_failure: args.on_failure,
            command: args.command.clone(),
        }
    }
}

impl Status {
    fn from_args(args: &StatusArgs) -> Status {
        Status {
            app: args.app.clone(),
            maintenance: Pool::new(&args.maintenance_app, args.maintenance_selector.as_deref()),
            probe: (!args.no_probe).then(|| args.probe_via.clone()),
        }
    }
}

/// `value` as one word for a POSIX shell.
pub fn quote(value: &str) -> String {
    let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/=:,@+%".contains(&b));
    if plain { value.to_owned() } else { format!("'{}'", value.replace('\'', r"'\''")) }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn settings(args: &[&str]) -> Settings {
        Settings::from_cli(&Cli::parse_from(args))
    }

    #[test]
    fn names_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(quote("shop-v2"), "shop-v2");
        assert_eq!(quote("my app"), "'my app'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn a_printed_command_repeats_every_flag_that_changes_behaviour() {
        let s = settings(&[
            "switchctl",
            "--skip-ssl-validation",
            "run",
            "shop",
            "--maintenance-app",
            "maint 2",
            "--probe-via",
            "127.0.0.1:8081",
            "--timeout",
            "30",
            "--concurrency",
            "2",
            "--parallel",
            "3",
            "--dry-run",
            "--",
            "true",
        ]);
        assert_eq!(
            s.command("off", "o", "dev", &["shop", "c d"]),
            "switchctl --skip-ssl-validation --org o --space dev off shop 'c d' --maintenance-app 'maint 2' \
             --probe-via 127.0.0.1:8081 --timeout 30 --concurrency 2 --parallel 3"
        );
        let s = settings(&["switchctl", "on", "shop", "--no-verify", "--settle", "7"]);
        assert_eq!(
            s.command("off", "o", "s", &["shop"]),
            "switchctl --org o --space s off shop --no-verify --settle 7"
        );
        assert_eq!(s.command("status", "o", "s", &["shop"]), "switchctl --org o --space s status shop");
        let s = settings(&["switchctl", "on", "shop"]);
        assert_eq!(s.command("on", "o", "s", &["shop"]), "switchctl --org o --space s on shop");
        // Probing, --settle is still the wait for routes that cannot be probed: repeated when set.
        let s = settings(&["switchctl", "on", "shop", "--settle", "2"]);
        assert_eq!(s.command("off", "o", "s", &["shop"]), "switchctl --org o --space s off shop --settle 2");
    }

    #[test]
    fn flags_become_typed_settings() {
        let s = settings(&["switchctl", "--json", "off", "a", "--force", "--no-verify"]);
        assert_eq!(s.output, OutputMode::Json);
        let Action::Off(off) = &s.action else { panic!("off") };
        assert!(off.force);
        assert_eq!(off.switch.verify, Verification::Settle(Duration::from_secs(5)));
        let s = settings(&["switchctl", "run", "a", "--restage", "--staging-timeout", "9"]);
        let Action::Run(run) = &s.action else { panic!("run") };
        assert_eq!(run.restage.map(|t| t.staging), Some(Duration::from_secs(9)));
        let s = settings(&["switchctl", "status", "--no-probe"]);
        let Action::Status(status) = &s.action else { panic!("status") };
        assert_eq!(status.probe, None);
    }
}
