//! `switchctl`: switch a Cloud Foundry app's routes to the maintenance app and back.
//!
//! The cf CLI login ([`cfconfig`], [`uaa`], [`session`]), a typed Cloud Controller v3 client with
//! timeouts, retries and rate-limit handling ([`capi`]), the switch itself ([`switch`]: `on`, `off`,
//! `status`), errors that say what to do ([`error`]), and the command line ([`cli`]). [`run`] executes a parsed command
//! line; the binary is a thin wrapper around it, and tests call it in-process.
//!
//! ```no_run
//! # async fn example() -> Result<(), switchctl::Error> {
//! use switchctl::session::{LoginEnv, Session, SessionOptions};
//! let session = Session::connect(SessionOptions { env: LoginEnv::from_process(), ..Default::default() }).await?;
//! let target = session.target().await?;
//! if let Some(app) = session.client().find_app(&target.space.guid, "shop").await? {
//!     for route in session.client().app_routes(&app.guid).await? {
//!         println!("{}", route.url);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod capi;
pub mod cfconfig;
pub mod cli;
pub mod error;
pub mod logging;
pub mod output;
pub mod plugin;
pub mod session;
pub mod settings;
pub mod switch;
pub mod uaa;

use std::{process::ExitCode, sync::Arc};

pub use capi::Client;
pub use cli::{Cli, Command};
pub use error::{ApiError, ConfigError, Error, TokenError};
pub use session::{LoginEnv, Session, SessionOptions};

use capi::{HttpOptions, Notify};
use output::{Output, Style};
use settings::{Action, Settings};

/// Ends the process on a command-line error as clap does (help and version too), after telling
/// it as a JSON event when `--json` was asked for (clap's text still goes to stderr).
pub fn exit_usage_error(err: clap::Error) -> ! {
    if err.use_stderr() && std::env::args().any(|a| a == "--json") {
        output::usage_error_event(&err.to_string());
    }
    err.exit()
}

/// Runs a parsed command line with the process environment (see [`run_with`]).
pub async fn run(cli: Cli) -> ExitCode {
    run_with(cli, LoginEnv::from_process()).await
}

/// Runs a parsed command line with the given login environment: the exit code, every message
/// (errors included) printed through one [`Output`].
pub async fn run_with(cli: Cli, env: LoginEnv) -> ExitCode {
    let settings = Arc::new(Settings::from_cli(&cli));
    let out = Output::new(Style::detect(settings.output, settings.verbose));
    let notifier = switch::notify::Notifier::install(&out, &settings);
    let code = match execute(&settings, &out, env).await {
        Ok(code) => code,
        Err(err) => {
            out.error(&error::describe(&err));
            ExitCode::from(err.exit_code())
        }
    };
    // The last events go out, and the hooks end (each bounded), before exit.
    switch::notify::finish_hooks(&out).await;
    if let Some(notifier) = notifier {
        notifier.flush(&out).await;
    }
    out.clear();
    code
}

async fn execute(settings: &Arc<Settings>, out: &Output, env: LoginEnv) -> Result<ExitCode, Error> {
    if let Action::Completions(shell) = &settings.action {
        let mut script = Vec::new();
        cli::write_completions(*shell, &mut script);
        use std::io::Write as _;
        // A closed pipe (`switchctl completions bash | head`) is not an error.
        let _ = std::io::stdout().write_all(&script);
        return Ok(ExitCode::SUCCESS);
    }
    let mut http = HttpOptions::default();
    http.retry.max_retry_after = settings.max_wait;
    // Waits for the rate limit are told through the one output, as notices.
    let notices = out.clone();
    http.retry.notify = Notify::new(move |text| notices.notice(text));
    let options = SessionOptions {
        org: settings.org.clone(),
        space: settings.space.clone(),
        skip_ssl_validation: settings.skip_ssl_validation,
        env,
        http,
    };
    // The login and the target first: configuration problems show up (exit 2) before any change.
    let session = Session::connect(options).await?;
    switch::dispatch(&session, settings, out).await
}
