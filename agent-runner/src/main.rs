//! Entry point of the in-container runner: `agent-runner [--workspace DIR]` (default
//! `/workspace`). Reads `container.json` (missing: defaults; unreadable, malformed or from a
//! newer incompatible host: exit 1 saying so), installs SIGTERM/SIGINT handlers that request a
//! stop at the next safe point, and runs the poll loop. Logs go to stderr; stdout stays empty.
//!
//! `agent-runner mcp` serves the `nanoclaw` MCP server on stdio (`mcp`).
//!
//! `agent-runner hook <event>` is the hook mode Claude Code's hooks call
//! (`providers::claude::hooks`): the answer goes to stdout, the exit code is 0 unless the
//! arguments are wrong.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use agent_runner::container_config::ContainerConfig;
use agent_runner::providers::claude::hooks;
use agent_runner::{env, forward, poll, timezone};
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
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("hook") {
        return hook(args.nth(1).unwrap_or_default());
    }
    if args.peek().map(String::as_str) == Some("mcp") {
        return mcp();
    }
    let workspace = match workspace_arg(args) {
        Ok(w) => w,
        Err(msg) => {
            error!("{msg}");
            return ExitCode::from(2);
        }
    };
    let config_path = agent_runner::session_db::container_config_path(&workspace);
    let config = match ContainerConfig::load(&config_path) {
        Ok(config) => config,
        Err(err) if err.is_missing() => {
            warn!(error = %err, "no container config; using the defaults");
            ContainerConfig::default()
        }
        Err(err) => {
            error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    if !config.unknown.is_empty() {
        warn!(keys = ?config.unknown_keys(), "container config keys this runner does not know are ignored (a newer host wrote them)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(err) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            error!(error = %err, "cannot install signal handler");
            return ExitCode::FAILURE;
        }
    }
    // Kept for the process's life: Claude Code reaches the credential proxy through it.
    let forwarder = start_forwarder();
    let base_url = forwarder.as_ref().map(forward::Forwarder::base_url);
    match poll::start(&workspace, &config, &timezone::from_env(), base_url, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "Fatal error");
            ExitCode::FAILURE
        }
    }
}

/// Starts the credential forwarder when the host mounted the proxy socket. A failure is logged
/// and the runner goes on: the mock provider needs no credential, and a provider that does
/// reports the connection error in the chat.
fn start_forwarder() -> Option<forward::Forwarder> {
    let socket = env::get(env::NANOCLAW_CREDENTIAL_SOCKET)?;
    let port = match env::get(env::NANOCLAW_CREDENTIAL_PORT) {
        None => forward::DEFAULT_PORT,
        Some(text) => match text.parse() {
            Ok(port) => port,
            Err(_) => {
                error!(value = %text, "`NANOCLAW_CREDENTIAL_PORT` is not a port number; using the default");
                forward::DEFAULT_PORT
            }
        },
    };
    forward::Forwarder::start(std::path::Path::new(&socket), port)
        .map_err(|err| error!(error = %err, port, "cannot start the credential forwarder"))
        .ok()
}

/// `agent-runner hook <event>`: Claude Code's hook input on stdin, the answer on stdout.
fn hook(event: String) -> ExitCode {
    let workspace = env::get(env::NANOCLAW_WORKSPACE).unwrap_or_else(|| "/workspace".into());
    match hooks::main(
        &event,
        std::path::Path::new(&workspace),
        &timezone::from_env(),
    ) {
        Ok(answer) => {
            #[allow(clippy::print_stdout)] // the hook's answer is Claude Code's protocol
            if !answer.is_empty() {
                println!("{answer}");
            }
            ExitCode::SUCCESS
        }
        Err(msg) => {
            error!("{msg}");
            ExitCode::from(2)
        }
    }
}

/// `agent-runner mcp`: the `nanoclaw` MCP server on stdin/stdout for the workspace in
/// `NANOCLAW_WORKSPACE` (default `/workspace`); logs go to stderr.
fn mcp() -> ExitCode {
    let workspace = env::get(env::NANOCLAW_WORKSPACE).unwrap_or_else(|| "/workspace".into());
    let tools = agent_runner::mcp::Tools::new(std::path::Path::new(&workspace));
    match agent_runner::mcp::rpc::serve(&tools, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            error!(error = %err, "MCP server error");
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
