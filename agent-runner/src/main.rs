//! Entry point of the in-container runner: `agent-runner [--workspace DIR]` (default
//! `/workspace`). Reads `container.json`, installs SIGTERM/SIGINT handlers that request a
//! stop at the next safe point, and runs the poll loop. Logs go to stderr; stdout stays empty.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agent_runner::{config, poll, timezone};
use tracing::{error, warn};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(tracing::Level::INFO.into())
                .from_env_lossy(),
        )
        .init();
    let workspace = match workspace_arg(std::env::args().skip(1)) {
        Ok(w) => w,
        Err(msg) => {
            error!("{msg}");
            return ExitCode::from(2);
        }
    };
    let config_path = agent_runner::session_db::container_config_path(&workspace);
    let config = config::load(&config_path).unwrap_or_else(|err| {
        warn!(error = %err, "using default config");
        config::Config::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(err) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            error!(error = %err, "cannot install signal handler");
            return ExitCode::FAILURE;
        }
    }
    match poll::start(&workspace, &config, &timezone::from_env(), &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "Fatal error");
            ExitCode::FAILURE
        }
    }
}

/// Parses `[--workspace DIR | --workspace=DIR]`.
fn workspace_arg(mut args: impl Iterator<Item = String>) -> Result<PathBuf, String> {
    let mut workspace = PathBuf::from("/workspace");
    while let Some(arg) = args.next() {
        if arg == "--workspace" {
            workspace = args.next().ok_or("`--workspace` needs a directory")?.into();
        } else if let Some(dir) = arg.strip_prefix("--workspace=") {
            workspace = dir.into();
        } else {
            return Err(format!(
                "unknown argument `{arg}`; usage: agent-runner [--workspace DIR]"
            ));
        }
    }
    Ok(workspace)
}
