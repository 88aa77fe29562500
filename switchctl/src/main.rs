//! `switchctl`: see the library crate. Parses the command line, sets up logging, runs, and maps
//! errors to exit codes (0 done, 1 failed, 2 usage or configuration).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = switchctl::Cli::parse();
    switchctl::logging::init(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("switchctl: error: cannot start the async runtime: {err}");
            return ExitCode::from(switchctl::error::EXIT_FAILURE);
        }
    };
    match runtime.block_on(switchctl::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            let code = err.exit_code();
            eprintln!("switchctl: error: {:#}", anyhow::Error::new(err));
            ExitCode::from(code)
        }
    }
}
