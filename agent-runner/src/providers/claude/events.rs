//! Claude Code's stream-json output → provider events (docs/agent-runner.md#providers, translated
//! from the Agent SDK's messages to the CLI's lines; docs/claude-code.md#stream-json-output), and
//! the typed errors of a Claude Code process.
//!
//! Pure: one parsed line in, events out. Every line is [`ProviderEvent::Activity`] first (the
//! heartbeat), then: `system`/`init` → `Init`; `result` → `Result`, `TurnUnreachable` when the
//! API could not be reached ([`is_unreachable_result`]), or `TurnError` for another API error
//! (the auth banner replaced, issue 10 point 2); `system`/`api_retry` → a retryable `Error`; `system`/`compact_boundary` → a `Progress` notice (not a result: v2's result made
//! the loop nudge the agent, docs/agent-runner.md#providers); `system`/`task_notification` →
//! `Progress`.

use serde_json::Value;

use super::banner::{AUTH_REQUIRED_MESSAGE, is_auth_required};
use crate::providers::ProviderEvent;

/// How long the API may stay unreachable within a turn before the chat is told (at the first
/// retry after it; the loop tells it once per outage): Claude Code keeps retrying with its
/// backoff, and when it gives up the message is given back and retried by the host with its own
/// backoff, so it is answered once the API answers again (docs/agents.md).
pub const UNREACHABLE_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// What the chat user reads when the API has been unreachable for
/// [`UNREACHABLE_NOTICE_AFTER`].
pub const UNREACHABLE_MESSAGE: &str = "⏳ I can't reach Anthropic right now, so I can't answer yet. I keep retrying; your message is kept and answered once Anthropic is reachable again.";

/// Whether a `result` line ended its turn because the API could not be reached, so the turn is
/// worth retrying unchanged: an API error (`is_error`, `terminal_reason: api_error`) after a
/// connection failure (`api_error: connection_failed`: refused, reset), without any HTTP status
/// (timed out), or with a gateway status (502/503/504: what the credential proxy answers when
/// it cannot reach the upstream). Any other status (400, 401, 429, 500, 529) means the API
/// answered: that turn's error stands (docs/claude-code.md#errors-and-retries).
pub fn is_unreachable_result(line: &Value) -> bool {
    let is_error = line.get("is_error").and_then(Value::as_bool) == Some(true);
    let api_error = line.get("terminal_reason").and_then(Value::as_str) == Some("api_error");
    let connection = line.get("api_error").and_then(Value::as_str) == Some("connection_failed");
    is_error && api_error && (connection || is_gateway_status(line.get("api_error_status")))
}

/// No HTTP status at all, or 502/503/504.
fn is_gateway_status(status: Option<&Value>) -> bool {
    match status {
        None | Some(Value::Null) => true,
        Some(status) => matches!(status.as_u64(), Some(502..=504)),
    }
}

/// Why a Claude Code process failed; the one place its failures are classified.
#[derive(Debug, thiserror::Error)]
pub enum ClaudeError {
    #[error(
        "cannot start Claude Code `{binary}`: {source}\n\nhint: the production image has it at `/usr/local/bin/claude`; `NANOCLAW_CLAUDE_CODE` names another"
    )]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    /// The stored continuation names a conversation Claude Code does not have (the state
    /// folder was lost, or another agent's id): the loop starts afresh.
    #[error("no conversation found with session id `{session}`")]
    SessionNotFound { session: String },
    /// A `result` of an `error_*` subtype: Claude Code could not run the turn.
    #[error("Claude Code could not run the turn: {errors}")]
    Execution { errors: String },
    #[error("Claude Code exited with {status}{stderr}")]
    Exited { status: String, stderr: String },
}

impl ClaudeError {
    /// Whether the stored continuation must be discarded (docs/agent-runner.md#providers).
    pub fn is_session_invalid(&self) -> bool {
        matches!(self, ClaudeError::SessionNotFound { .. })
    }
}

/// What one line of output means.
#[derive(Debug, Default)]
pub struct Translation {
    pub events: Vec<ProviderEvent>,
    /// A result of an `error_*` subtype: the process ends with it.
    pub failure: Option<ClaudeError>,
    /// The line ends a turn (a `result` of any subtype).
    pub ends_turn: bool,
    /// An API retry after the credential was refused (`api_retry` with `authentication_failed`):
    /// Claude Code retries a 401 for minutes before its banner.
    pub auth_failed: bool,
    /// An API retry after the API could not be reached (`api_retry` without an HTTP status:
    /// refused, reset, timed out; or a gateway status, 502/503/504, which the credential proxy
    /// answers when it cannot reach the upstream): see [`UNREACHABLE_NOTICE_AFTER`].
    pub unreachable: bool,
    /// The line is the echo of a message written to stdin (`--replay-user-messages`), printed
    /// where the message joined the conversation.
    pub replayed_input: bool,
}

/// Translates one stream-json line.
pub fn translate(line: &Value) -> Translation {
    let mut out = Translation {
        events: vec![ProviderEvent::Activity],
        ..Translation::default()
    };
    let text = |key: &str| line.get(key).and_then(Value::as_str);
    match (text("type"), text("subtype")) {
        (Some("user"), _) => {
            out.replayed_input = line.get("isReplay").and_then(Value::as_bool) == Some(true);
        }
        (Some("system"), Some("init")) => {
            if let Some(session) = text("session_id") {
                out.events.push(ProviderEvent::Init {
                    continuation: session.to_string(),
                });
            }
        }
        (Some("result"), subtype) => {
            out.ends_turn = true;
            if subtype.is_some_and(|s| s.starts_with("error")) {
                out.failure = Some(execution_error(line));
                out.events.push(ProviderEvent::Result { text: None });
            } else {
                out.events.push(result_event(line));
            }
        }
        (Some("system"), Some("api_retry")) => {
            out.auth_failed = text("error") == Some("authentication_failed");
            out.unreachable = is_gateway_status(line.get("error_status"));
            out.events.push(ProviderEvent::Error {
                message: api_retry_message(line),
                retryable: true,
            });
        }
        (Some("system"), Some("compact_boundary")) => {
            let tokens = line
                .pointer("/compact_metadata/pre_tokens")
                .and_then(Value::as_u64);
            out.events.push(ProviderEvent::Progress {
                message: match tokens {
                    Some(n) => format!("Context compacted ({} tokens compacted).", thousands(n)),
                    None => "Context compacted.".to_string(),
                },
            });
        }
        (Some("system"), Some("task_notification")) => out.events.push(ProviderEvent::Progress {
            message: text("summary").unwrap_or("Task notification").to_string(),
        }),
        _ => {}
    }
    out
}

/// A successful `result`: its text; an API error (`is_error`) becomes a reply the user sees,
/// the auth banners replaced by what the operator must do, unless the API could not be reached:
/// then the turn is given back for a retry.
fn result_event(line: &Value) -> ProviderEvent {
    let text = line
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    let is_error = line.get("is_error").and_then(Value::as_bool) == Some(true);
    match text {
        Some(text) if is_auth_required(&text) => ProviderEvent::TurnError {
            reply: AUTH_REQUIRED_MESSAGE.to_string(),
        },
        text if is_unreachable_result(line) => ProviderEvent::TurnUnreachable {
            error: match text.filter(|text| !text.trim().is_empty()) {
                Some(text) => format!("Anthropic could not be reached ({})", text.trim()),
                None => "Anthropic could not be reached".to_string(),
            },
            notice: UNREACHABLE_MESSAGE.to_string(),
        },
        Some(text) if is_error && !text.trim().is_empty() => ProviderEvent::TurnError {
            reply: format!("Error: {text}"),
        },
        text => ProviderEvent::Result { text },
    }
}

/// Classifies an `error_*` result by its `errors` (the only place Claude Code's wording is
/// read).
fn execution_error(line: &Value) -> ClaudeError {
    let errors: Vec<&str> = line
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let session = line
        .get("session_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let lost = errors.iter().any(|e| {
        e.starts_with("No conversation found with session ID")
            || e.contains("--resume requires a valid session ID")
    });
    if lost {
        return ClaudeError::SessionNotFound {
            session: session.to_string(),
        };
    }
    let subtype = line
        .get("subtype")
        .and_then(Value::as_str)
        .unwrap_or("error");
    ClaudeError::Execution {
        errors: if errors.is_empty() {
            subtype.to_string()
        } else {
            errors.join("; ")
        },
    }
}

fn api_retry_message(line: &Value) -> String {
    let field = |key: &str| line.get(key).map(|v| v.to_string()).unwrap_or_default();
    format!(
        "API retry {}/{} after status {} ({}), next in {} ms",
        field("attempt"),
        field("max_retries"),
        field("error_status"),
        line.get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown"),
        field("retry_delay_ms"),
    )
}

/// `12345` → `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
