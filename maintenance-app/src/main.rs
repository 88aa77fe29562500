//! `maintenance-app`: read the configuration, bind `0.0.0.0:$PORT`, serve until SIGTERM.

use std::process::ExitCode;

use maintenance_app::{Config, alloc::Recycling, logging, server};

#[global_allocator]
static ALLOCATOR: Recycling = Recycling::new();

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("maintenance-app: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Every connection is a file descriptor: take all the hard limit allows (CF containers set
    // it high, but the soft limit may be lower).
    let max_connections = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);

    // One thread: the answers are precomputed, so one core saturates the network long before the
    // CPU, and a single-threaded runtime keeps the tail latency and memory of many connections low.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maintenance-app: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match server::bind(config.port) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("maintenance-app: cannot listen on port {}: {e}; set PORT to a free port", config.port);
                return ExitCode::FAILURE;
            }
        };
        let addr = listener.local_addr().map_or_else(|_| "?".to_owned(), |a| a.to_string());
        tracing::info!(version = env!("CARGO_PKG_VERSION"), addr = %addr, max_connections, config = %config.summary(), "listening");
        match server::serve(listener, config, server::shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
