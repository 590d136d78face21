//! The hook mode, `agent-runner hook <event>` (docs/agent-runner.md#providers): Claude Code runs it
//! for its `PreToolUse`, `PostToolUse`, `PostToolUseFailure` and `PreCompact` hooks with one JSON
//! object on stdin (docs/claude-code.md#hooks), and it answers on stdout:
//!
//! - `PreToolUse` of a blocked tool ([`super::args::BLOCKED_TOOLS`]): `{"decision":"block",
//!   "reason":"Tool '<name>' is not available in this environment — use the nanoclaw
//!   equivalent."}`; of any other tool: records it, and a `Bash` call's declared `timeout`,
//!   in `container_state` (so the host's sweep extends its stuck verdict for long commands);
//! - `PostToolUse`, `PostToolUseFailure`: clear `container_state`;
//! - `PreCompact`: archive the transcript ([`super::archive`]).
//!
//! A hook never fails a tool call because of its own trouble: errors go to stderr, exit 0.
//! The settings that register these hooks are [`settings_json`]: the host writes them to
//! [`SETTINGS_FILE`] in the session folder, the provider passes that file with `--settings`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use super::archive;
use super::args::{BLOCKED_TOOLS, agent_dir};
use crate::container_config::ContainerConfig;
use crate::session_db::{self, container as db};

/// The hook settings file in the session folder (`/workspace/claude-settings.json`), written
/// by the host, read-only to the agent.
pub const SETTINGS_FILE: &str = "claude-settings.json";
/// The runner binary the host's settings call, in the production image.
pub const RUNNER_IN_IMAGE: &str = "/agent-runner";

/// The hooks the runner answers, by their `agent-runner hook <name>` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    PreToolUse,
    PostToolUse,
    PostToolUseFailure,
    PreCompact,
}

impl HookEvent {
    pub const ALL: [HookEvent; 4] = [
        HookEvent::PreToolUse,
        HookEvent::PostToolUse,
        HookEvent::PostToolUseFailure,
        HookEvent::PreCompact,
    ];

    /// Claude Code's name of the event (a settings.json key).
    pub fn claude_name(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "PreToolUse",
            HookEvent::PostToolUse => "PostToolUse",
            HookEvent::PostToolUseFailure => "PostToolUseFailure",
            HookEvent::PreCompact => "PreCompact",
        }
    }

    /// The argument of `agent-runner hook <arg>`.
    pub fn arg(self) -> &'static str {
        match self {
            HookEvent::PreToolUse => "pre-tool-use",
            HookEvent::PostToolUse => "post-tool-use",
            HookEvent::PostToolUseFailure => "post-tool-use-failure",
            HookEvent::PreCompact => "pre-compact",
        }
    }

    pub fn from_arg(arg: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|event| event.arg() == arg)
    }
}

/// Claude Code's settings: the hooks, each calling `<runner> hook <event>`, and the environment
/// that keeps Claude Code to its job (docs/claude-code.md#environment): no non-essential
/// traffic, no auto-update, no auto memory (the agent's memory is `CLAUDE.local.md`). The host
/// writes them (pretty JSON) to `<session folder>/`[`SETTINGS_FILE`] with
/// `runner` = [`RUNNER_IN_IMAGE`].
pub fn settings_json(runner: &str) -> Value {
    let hooks: serde_json::Map<String, Value> = HookEvent::ALL
        .into_iter()
        .map(|event| {
            let command = format!("{runner} hook {}", event.arg());
            (
                event.claude_name().to_string(),
                json!([{"hooks": [{"type": "command", "command": command}]}]),
            )
        })
        .collect();
    json!({
        "hooks": hooks,
        "env": {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
        },
    })
}

/// The settings file to pass: the host's, else one this runner writes for itself in the
/// temporary folder (a host that predates the file); `None` when neither can be had.
pub fn settings_file(workspace: &Path) -> Option<PathBuf> {
    let host = workspace.join(SETTINGS_FILE);
    if host.is_file() {
        return Some(host);
    }
    let runner = std::env::current_exe().ok()?;
    let own = std::env::temp_dir().join(format!("nanoclaw-{SETTINGS_FILE}"));
    let text = settings_json(&runner.display().to_string()).to_string();
    match std::fs::write(&own, text) {
        Ok(()) => {
            warn!(missing = %host.display(), written = %own.display(), "no hook settings from the host; using the runner's own");
            Some(own)
        }
        Err(err) => {
            warn!(error = %err, "no hook settings: tools are not tracked and blocked tools are refused by --disallowedTools only");
            None
        }
    }
}

/// The part of a hook's stdin the runner reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HookInput {
    pub session_id: String,
    pub transcript_path: Option<PathBuf>,
    pub tool_name: Option<String>,
    pub tool_input: Value,
}

/// What a `PreToolUse` hook decides (pure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreToolUse {
    Block {
        reason: String,
    },
    /// Record the tool in flight; `timeout_ms`: a Bash call's declared timeout.
    Record {
        tool: String,
        timeout_ms: Option<i64>,
    },
}

/// The decision for a tool call.
pub fn pre_tool_use(input: &HookInput) -> PreToolUse {
    let tool = input.tool_name.clone().unwrap_or_default();
    if BLOCKED_TOOLS.contains(&tool.as_str()) {
        return PreToolUse::Block {
            reason: block_reason(&tool),
        };
    }
    let timeout_ms = if tool == "Bash" {
        input.tool_input.get("timeout").and_then(Value::as_i64)
    } else {
        None
    };
    PreToolUse::Record { tool, timeout_ms }
}

/// The refusal the agent reads for a blocked tool (docs/agent-runner.md#providers).
pub fn block_reason(tool: &str) -> String {
    format!("Tool '{tool}' is not available in this environment — use the nanoclaw equivalent.")
}

/// Runs one hook: `input` is its stdin, the return value its stdout (possibly empty). The exit
/// code is always 0.
pub fn run(event: HookEvent, input: &str, workspace: &Path, tz: &str) -> String {
    let input: HookInput = match serde_json::from_str(input) {
        Ok(input) => input,
        Err(err) => {
            warn!(error = %err, hook = event.arg(), "hook input is not the JSON Claude Code sends; ignored");
            return String::new();
        }
    };
    let outbound = || session_db::open_outbound_container(&session_db::outbound_path(workspace));
    let recorded = match event {
        HookEvent::PreToolUse => match pre_tool_use(&input) {
            PreToolUse::Block { reason } => {
                info!(tool = ?input.tool_name, "blocked a tool call");
                return json!({"decision": "block", "reason": reason}).to_string();
            }
            PreToolUse::Record { tool, timeout_ms } => {
                outbound().and_then(|db| db::set_current_tool(&db, &tool, timeout_ms))
            }
        },
        HookEvent::PostToolUse | HookEvent::PostToolUseFailure => {
            outbound().and_then(|db| db::clear_current_tool(&db))
        }
        HookEvent::PreCompact => {
            pre_compact(&input, workspace, tz);
            Ok(())
        }
    };
    if let Err(err) = recorded {
        warn!(error = %err, hook = event.arg(), "cannot record the tool in flight");
    }
    String::new()
}

fn pre_compact(input: &HookInput, workspace: &Path, tz: &str) {
    let Some(transcript) = &input.transcript_path else {
        info!("No transcript found for archiving");
        return;
    };
    let config = ContainerConfig::load(&session_db::container_config_path(workspace)).ok();
    let name = config.as_ref().and_then(|c| c.assistant_name.as_deref());
    match archive::archive(
        transcript,
        &input.session_id,
        &agent_dir(workspace),
        name,
        tz,
        jiff::Timestamp::now(),
    ) {
        Ok(Some(path)) => info!(file = %path.display(), "Archived conversation"),
        Ok(None) => info!("No transcript found for archiving"),
        Err(err) => warn!(error = %err, "cannot archive the conversation"),
    }
}

/// `agent-runner hook <event>`: reads stdin, prints the answer.
pub fn main(event: &str, workspace: &Path, tz: &str) -> Result<String, String> {
    let Some(event) = HookEvent::from_arg(event) else {
        let names: Vec<_> = HookEvent::ALL.iter().map(|e| e.arg()).collect();
        return Err(format!(
            "unknown hook `{event}`; expected one of: {}",
            names.join(", ")
        ));
    };
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|err| format!("cannot read the hook's input: {err}"))?;
    Ok(run(event, &input, workspace, tz))
}

#[cfg(test)]
mod tests;
