//! `switchctl`: see the library crate. Parses the command line, sets up logging and runs; the
//! library prints every message and says the exit code (0 done, 1 failed, 2 usage or
//! configuration). Started by the cf CLI as its plugin (a port, then what it wants), it serves
//! the CLI instead (`switchctl::plugin`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if let Some(invocation) = switchctl::plugin::detect(&args) {
        return switchctl::plugin::main(invocation);
    }
    let cli = switchctl::Cli::try_parse_from(args).unwrap_or_else(|err| switchctl::exit_usage_error(err));
    switchctl::logging::init(cli.verbose);
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(switchctl::run(cli)),
        Err(err) => {
            switchctl::output::early_error(&format!("cannot start the async runtime: {err}"));
            ExitCode::from(switchctl::error::EXIT_FAILURE)
        }
    }
}
