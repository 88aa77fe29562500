//! `switchctl`: see the library crate. Parses the command line, sets up logging and runs; the
//! library prints every message and says the exit code (0 done, 1 failed, 2 usage or
//! configuration).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match switchctl::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // With --json, a usage error is an event on stdout too (clap's text still goes to stderr).
            if err.use_stderr() && std::env::args().any(|a| a == "--json") {
                switchctl::output::usage_error_event(&err.to_string());
            }
            err.exit()
        }
    };
    switchctl::logging::init(cli.verbose);
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(switchctl::run(cli)),
        Err(err) => {
            switchctl::output::early_error(&format!("cannot start the async runtime: {err}"));
            ExitCode::from(switchctl::error::EXIT_FAILURE)
        }
    }
}
