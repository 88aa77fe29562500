//! One subscriber for the process: JSON lines on Cloud Foundry (loggregator keeps one event per
//! line), readable text on a terminal. `RUST_LOG` overrides the default `info` level.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: a log redirected to a file or a pipe must not carry escape codes.
    let ansi = std::io::stdout().is_terminal() && !no_color();
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stdout).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// `NO_COLOR` set to anything but the empty string turns colours off (<https://no-color.org>).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
