//! Providers (docs/agent-runner.md#providers): the `Provider` trait the poll loop drives, and the
//! registry.
//!
//! A provider turns a formatted prompt into a stream of events; follow-up user messages are
//! pushed into the open query. Registered: `claude` (Claude Code, the default) and `mock`; a new
//! provider is one module plus one line in [`REGISTRY`].

pub mod claude;
pub mod mock;
pub mod probe;

use std::path::PathBuf;
use std::time::Duration;

use crate::container_config::ContainerConfig;

/// Construction options: the whole `container.json` (model, effort, MCP servers, …) and the
/// workspace. Providers may ignore any of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderOptions {
    /// The container config; its `provider` is the registry name the provider was created under.
    pub config: ContainerConfig,
    /// The runner's workspace (`/workspace` in the container).
    pub workspace: PathBuf,
    /// The credential forwarder's URL (`http://127.0.0.1:<port>`) when it runs: the provider's
    /// API base URL.
    pub base_url: Option<String>,
}

/// One query's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryInput {
    /// The formatted prompt (first user message).
    pub prompt: String,
    /// Opaque resume id from an earlier `Init`.
    pub continuation: Option<String>,
    /// The system-prompt addendum (identity and destinations).
    pub system_prompt: String,
}

/// What a query reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEvent {
    /// The conversation id to resume with later.
    Init {
        continuation: String,
    },
    /// The end of one turn: the agent's final text, if any.
    Result {
        text: Option<String>,
    },
    /// A reported (not thrown) error; nothing is sent to the user.
    Error {
        message: String,
        retryable: bool,
    },
    /// A message for the chat user that ends nothing (the turn goes on): `reply` goes to the
    /// batch's address as it is.
    Notice {
        reply: String,
    },
    /// The model's API has not been reachable for a while; the turn goes on retrying. `notice`
    /// is for the chat, which the loop tells once per outage.
    Unreachable {
        notice: String,
    },
    /// The end of one turn because the model's API could not be reached: no answer is sent,
    /// and what the turn answered is given back to be retried with backoff. `error` says what
    /// happened (the log, and the chat after the last try); `notice` is told to the chat when
    /// it was not told of this outage yet.
    TurnUnreachable {
        error: String,
        notice: String,
    },
    /// The oldest pushed follow-up still waiting for its turn joined the turn in flight
    /// instead: that turn's result answers it too.
    FollowUpJoined,
    /// The end of one turn in an error the chat user must hear about (an API error, the
    /// auth-required banner replaced): `reply` goes to the batch's address as it is.
    TurnError {
        reply: String,
    },
    Progress {
        message: String,
    },
    /// Any underlying activity (touches the heartbeat).
    Activity,
}

/// One step of a running query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Event(ProviderEvent),
    /// Nothing happened within the wait.
    Idle,
    /// The event stream ended.
    Done,
    /// The query failed (the loop writes an `Error: …` row).
    Failed(String),
}

/// A running query: receives follow-ups until ended.
pub trait AgentQuery {
    /// Queues a follow-up user message.
    fn push(&mut self, text: &str);
    /// No more input: finish the queued turns, then end the stream.
    fn end(&mut self);
    /// The next event, waiting at most `wait`.
    fn next_event(&mut self, wait: Duration) -> Next;
}

/// An agent backend.
pub trait Provider {
    /// Whether raw slash commands are passed through (docs/agent-runner.md#prompt-format).
    fn supports_native_slash_commands(&self) -> bool;
    /// Starts a query.
    fn query(&mut self, input: QueryInput) -> Box<dyn AgentQuery>;
    /// Whether an error means the stored continuation must be discarded.
    fn is_session_invalid(&self, message: &str) -> bool;
}

type Factory = fn(ProviderOptions) -> Box<dyn Provider>;

/// Every registered provider, by case-sensitive name.
pub const REGISTRY: &[(&str, Factory)] = &[
    ("claude", |o| Box::new(claude::ClaudeProvider::new(o))),
    ("mock", |o| Box::new(mock::MockProvider::new(o))),
];

/// No provider of that name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown provider: {name}. Registered: {registered}")]
pub struct UnknownProvider {
    pub name: String,
    pub registered: String,
}

/// Registered names, in registry order.
pub fn provider_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// Creates the provider registered as `name`.
pub fn create_provider(
    name: &str,
    mut options: ProviderOptions,
) -> Result<Box<dyn Provider>, UnknownProvider> {
    let Some((_, factory)) = REGISTRY.iter().find(|(n, _)| *n == name) else {
        let names = provider_names();
        return Err(UnknownProvider {
            name: name.to_string(),
            registered: if names.is_empty() {
                "(none)".into()
            } else {
                names.join(", ")
            },
        });
    };
    options.config.provider = name.to_string();
    Ok(factory(options))
}

/// Heartbeat-free wait used by in-process providers with nothing to report.
pub(crate) fn idle(wait: Duration) -> Next {
    std::thread::sleep(wait);
    Next::Idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_mock_provider_for_mock() {
        let p = create_provider("mock", ProviderOptions::default()).unwrap();
        assert!(!p.supports_native_slash_commands());
    }

    #[test]
    fn throws_for_unknown_name_listing_registered() {
        let err = create_provider("codex", ProviderOptions::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "Unknown provider: codex. Registered: claude, mock"
        );
        assert!(create_provider("Mock", ProviderOptions::default()).is_err());
    }

    #[test]
    fn returns_the_claude_provider_for_claude() {
        let p = create_provider("claude", ProviderOptions::default()).unwrap();
        assert!(p.supports_native_slash_commands());
    }

    #[test]
    fn registry_names_are_unique() {
        let mut names = provider_names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
    }
}
