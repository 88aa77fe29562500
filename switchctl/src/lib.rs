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
pub mod session;
pub mod switch;
pub mod uaa;

use std::process::ExitCode;

pub use capi::Client;
pub use cli::{Cli, Command};
pub use error::{ApiError, ConfigError, Error, TokenError};
pub use session::{LoginEnv, Session, SessionOptions};

/// Runs a parsed command line with the process environment (see [`run_with`]).
pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    run_with(cli, LoginEnv::from_process()).await
}

/// Runs a parsed command line with the given login environment. Errors carry their exit code
/// ([`Error::exit_code`]).
pub async fn run_with(cli: Cli, env: LoginEnv) -> Result<ExitCode, Error> {
    if let Command::Completions { shell } = &cli.command {
        let mut out = Vec::new();
        cli::write_completions(*shell, &mut out);
        use std::io::Write as _;
        std::io::stdout().write_all(&out).map_err(Error::Output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = SessionOptions {
        org: cli.org.clone(),
        space: cli.space.clone(),
        skip_ssl_validation: cli.skip_ssl_validation,
        env,
        ..SessionOptions::default()
    };
    // The login and the target first: configuration problems show up (exit 2) before any change.
    let session = Session::connect(options).await?;
    switch::run(&session, &cli).await
}
