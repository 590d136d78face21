//! Every environment variable the runner reads. Config otherwise comes from `container.json`.

/// `TZ`: the user's IANA zone for prompt times (invalid or unset → UTC, see `timezone`).
pub const TZ: &str = "TZ";

/// The credential proxy's socket as mounted in the container (the host sets it, e.g.
/// `/run/nanoclaw-proxy/anthropic.sock`); when set, the runner starts `forward::Forwarder`.
pub const NANOCLAW_CREDENTIAL_SOCKET: &str = "NANOCLAW_CREDENTIAL_SOCKET";
/// The loopback port the forwarder listens on; default `forward::DEFAULT_PORT`.
pub const NANOCLAW_CREDENTIAL_PORT: &str = "NANOCLAW_CREDENTIAL_PORT";

/// The container's placeholder key. Claude Code reads it itself; the runner reads it only for
/// the mock's `!try credential-proxy` probe.
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";

/// The Claude provider's `claude` executable; default `/usr/local/bin/claude` (the production
/// image's). Tests point it at an npm-installed Claude Code.
pub const NANOCLAW_CLAUDE_CODE: &str = "NANOCLAW_CLAUDE_CODE";
/// Claude Code's state folder (sessions, transcripts), mounted read-write by the host; default
/// `/home/agent/.claude`. Handed to Claude Code as `CLAUDE_CONFIG_DIR` when it exists.
pub const NANOCLAW_CLAUDE_CONFIG_DIR: &str = "NANOCLAW_CLAUDE_CONFIG_DIR";
/// Claude Code's auto-compaction window in tokens, passed on; default 165000
/// (docs/agent-runner.md#providers).
pub const CLAUDE_CODE_AUTO_COMPACT_WINDOW: &str = "CLAUDE_CODE_AUTO_COMPACT_WINDOW";
/// The workspace, for `agent-runner hook …` and `agent-runner mcp` (Claude Code runs both; the
/// provider sets it in Claude Code's environment); default `/workspace`.
pub const NANOCLAW_WORKSPACE: &str = "NANOCLAW_WORKSPACE";

/// Reads one variable; unset or non-UTF-8 reads as `None`.
pub fn get(name: &str) -> Option<String> {
    #[allow(clippy::disallowed_methods)] // the one permitted reader of the environment
    std::env::var(name).ok()
}
