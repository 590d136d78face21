//! tracing setup: human-readable text or JSON lines, always to stderr.
//!
//! The filter comes from `NANOCLAW_LOG`, then `RUST_LOG`, then `info`. Colour only when stderr
//! is a terminal and `NO_COLOR` is unset. Plans, tables and JSON go to stdout from `cli/` only.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::env;

/// Log line format on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines (coloured on a terminal).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. Safe to call once per process; later calls are ignored.
pub fn init(format: LogFormat) {
    let filter = env::get(env::NANOCLAW_LOG)
        .or_else(|| env::get(env::RUST_LOG))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal() && env::get(env::NO_COLOR).is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _already_set = match format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}
