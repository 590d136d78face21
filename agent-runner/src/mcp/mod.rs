//! The `nanoclaw` MCP server (docs/agent-runner.md#tools): `agent-runner mcp` serves the agent's
//! tools over stdio to Claude Code (registered as server `nanoclaw`, its tools allowed as
//! `mcp__nanoclaw__*`) and to the mock provider's `!tool` command ([`client`]).
//!
//! A minimal JSON-RPC 2.0 implementation of MCP's stdio transport, not rmcp: rmcp's server
//! needs a tokio runtime (its stdio transport is `tokio::io` with `tokio-util` codecs), plus
//! `schemars`, `futures` and macros, and the runner is a small static musl binary built on std
//! threads with no async runtime (lib.rs). What the transport needs is small: one JSON message
//! per line on stdin, one response per line on stdout, `initialize`, `ping`, `tools/list`,
//! `tools/call`, notifications ignored, errors with JSON-RPC codes ([`rpc`]).
//!
//! One module per tool group, each with its instruction fragment ([`MODULES`]); the host
//! composes the fragments into the agent's `CLAUDE.md`. Every tool writes through the session
//! DB protocol: an outbound row in its own `BEGIN IMMEDIATE` transaction that allocates the next
//! odd seq inside the lock (`session_db::container::write_outbound`), the same path the poll
//! loop takes, so the two processes never hand out one seq twice.

pub mod agents;
pub mod client;
pub mod core;
pub mod interactive;
pub mod route;
pub mod rpc;
pub mod self_mod;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::session_db::container::{self as db, NewOutbound};
use crate::session_db::{self, InboundDb, OutboundDb};

/// The server's name: Claude Code prefixes its tools `mcp__nanoclaw__`.
pub const SERVER_NAME: &str = "nanoclaw";

/// One tool: its name, description, input schema and handler. The handler's `Err` is the
/// reason, returned as `Error: <reason>` with `isError: true`.
#[derive(Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub description: &'static str,
    pub schema: fn() -> Value,
    pub call: fn(&Tools, &Value) -> Result<String, String>,
}

/// One tool group and its instruction fragment (composed into `CLAUDE.md` as
/// `module-<name>.md`).
#[derive(Clone, Copy)]
pub struct Module {
    pub name: &'static str,
    pub fragment: &'static str,
    pub tools: &'static [Tool],
}

/// Every tool module, in registration order.
pub const MODULES: &[Module] = &[
    core::MODULE,
    interactive::MODULE,
    agents::MODULE,
    self_mod::MODULE,
];

/// Every tool, in registration order.
pub fn tools() -> impl Iterator<Item = &'static Tool> {
    MODULES.iter().flat_map(|module| module.tools.iter())
}

/// What a tool call works on: the session's workspace.
#[derive(Clone, Debug)]
pub struct Tools {
    /// `/workspace` in the container.
    pub workspace: PathBuf,
    /// How often ask_user_question looks for the answer.
    pub question_poll: Duration,
}

impl Tools {
    pub fn new(workspace: &Path) -> Tools {
        Tools {
            workspace: workspace.to_path_buf(),
            question_poll: Duration::from_secs(1),
        }
    }

    /// `inbound.db`, read-only, opened fresh (the host replaces it at will).
    pub fn inbound(&self) -> Result<InboundDb, String> {
        session_db::open_inbound_container(&session_db::inbound_path(&self.workspace))
            .map_err(|err| format!("cannot read the session database: {err}"))
    }

    /// `outbound.db`, read-write.
    pub fn outbound(&self) -> Result<OutboundDb, String> {
        session_db::open_outbound_container(&session_db::outbound_path(&self.workspace))
            .map_err(|err| format!("cannot open the outbound database: {err}"))
    }

    /// Writes one outbound row; returns its seq.
    pub fn write(&self, row: &NewOutbound) -> Result<i64, String> {
        let inbound = self.inbound()?;
        let mut outbound = self.outbound()?;
        db::write_outbound(&inbound, &mut outbound, row)
            .map_err(|err| format!("cannot write the message: {err}"))
    }

    /// The message the running turn answers (the poll loop records it), if any.
    pub fn in_reply_to(&self) -> Option<String> {
        let outbound = self.outbound().ok()?;
        db::turn_reply(&outbound).ok().flatten()
    }
}

/// Runs `name` with `args`: `(text, is_error)`.
pub fn call(tools: &Tools, name: &str, args: &Value) -> (String, bool) {
    match self::tools().find(|tool| tool.name == name) {
        None => (format!("Unknown tool: {name}"), true),
        Some(tool) => match (tool.call)(tools, args) {
            Ok(text) => (text, false),
            Err(reason) => (format!("Error: {reason}"), true),
        },
    }
}

/// A string argument; absent, null or empty reads as `None`.
pub fn text_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// Refuses content the host would refuse (docs/security.md: at most
/// `untrusted::MAX_CONTENT_BYTES` of content JSON), naming the size.
pub fn check_content_size(content: &str, what: &str) -> Result<(), String> {
    let max = session_db::untrusted::MAX_CONTENT_BYTES as usize;
    if content.len() > max {
        return Err(format!(
            "{what} is too long: {} bytes once encoded, at most {max}; split it into several messages or send it as a file",
            content.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
