//! Diagnostics on stderr (user-facing output goes to stdout): warnings by default, each API
//! request with `-v`, request headers (credentials redacted) with `-vv`. `RUST_LOG` overrides the
//! default when no `-v` is given.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

/// The filter for a verbosity level.
pub fn filter(verbosity: u8) -> EnvFilter {
    match verbosity {
        0 => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        1 => EnvFilter::new("warn,switchctl=debug"),
        _ => EnvFilter::new("warn,switchctl=trace"),
    }
}

/// A subscriber writing to `writer` (tests capture the output with it).
pub fn subscriber<W>(verbosity: u8, writer: W, ansi: bool) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(writer)
        .with_ansi(ansi)
        // Its own report of a failed write is an `eprintln!`, which panics when stderr is a
        // closed pipe (`switchctl -v on shop 2>&1 | head`): a lost log line must not stop a switch.
        .log_internal_errors(false)
        .with_target(false)
        .without_time()
        .finish()
}

/// Installs the stderr subscriber for the process (once; later calls do nothing).
pub fn init(verbosity: u8) {
    // Colours only on a terminal, and never with `NO_COLOR` (non-empty, <https://no-color.org>).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing::subscriber::set_global_default(subscriber(verbosity, std::io::stderr, ansi));
}
