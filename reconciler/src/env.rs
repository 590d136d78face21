//! Every environment variable nanoclaw reads, documented in one place.
//!
//! `std::env::var` is banned elsewhere (clippy.toml): read through [`get`] with one of these
//! constants so `docs/` can list them all. Values are resolved once at startup into
//! `Paths`/settings and passed explicitly.

/// State directory (central DB, sessions, sockets); same as `--data`.
/// Default: `$XDG_STATE_HOME/nanoclaw`, else `~/.local/state/nanoclaw`.
pub const NANOCLAW_DATA_DIR: &str = "NANOCLAW_DATA_DIR";
/// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `reconciler::runtime=debug`).
/// Falls back to `RUST_LOG`, then `info`.
pub const NANOCLAW_LOG: &str = "NANOCLAW_LOG";
/// Standard tracing filter, used when `NANOCLAW_LOG` is unset.
pub const RUST_LOG: &str = "RUST_LOG";
/// Any value disables colour (https://no-color.org).
pub const NO_COLOR: &str = "NO_COLOR";
/// Set to `1` in CI: Docker tests fail instead of skipping when no daemon answers.
pub const NANOCLAW_REQUIRE_DOCKER: &str = "NANOCLAW_REQUIRE_DOCKER";
/// Set to `1` to keep test containers after a test (debugging).
pub const NANOCLAW_TEST_KEEP: &str = "NANOCLAW_TEST_KEEP";
/// Docker endpoint; default `unix:///var/run/docker.sock`.
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// Timezone handed to containers (`TZ`); default the host's zone, else UTC.
pub const TZ: &str = "TZ";
/// Used to find the default data directory.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// Used to find the default data directory, `~` in mount paths and the mount allowlist.
pub const HOME: &str = "HOME";
/// Where the mount allowlist lives: `$XDG_CONFIG_HOME/nanoclaw/mount-allowlist.yaml`
/// (default `~/.config/nanoclaw/…`).
pub const XDG_CONFIG_HOME: &str = "XDG_CONFIG_HOME";

/// The Anthropic API key the credential proxy injects when none is stored with
/// `nanoclaw auth set anthropic` (which wins). Never passed into a container.
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
/// A Claude subscription OAuth token (`claude setup-token`), used like `ANTHROPIC_API_KEY`
/// when neither a stored credential nor `ANTHROPIC_API_KEY` is there.
pub const CLAUDE_CODE_OAUTH_TOKEN: &str = "CLAUDE_CODE_OAUTH_TOKEN";
/// Where the credential proxy sends API requests; default `https://api.anthropic.com`.
/// Tests point it at a fake on loopback.
pub const NANOCLAW_ANTHROPIC_BASE_URL: &str = "NANOCLAW_ANTHROPIC_BASE_URL";
/// The Telegram bot token (from BotFather), used when none is stored with
/// `nanoclaw auth set telegram` (which wins). Read only when some channel is a Telegram chat.
pub const TELEGRAM_BOT_TOKEN: &str = "TELEGRAM_BOT_TOKEN";
/// The Telegram Bot API base URL; default `https://api.telegram.org`. Tests point it at a fake
/// on loopback.
pub const NANOCLAW_TELEGRAM_API_URL: &str = "NANOCLAW_TELEGRAM_API_URL";
/// The static agent-runner binary agent images get, when `--runner` is not given (`run`,
/// `image build`); default: `agent-runner` beside the `nanoclaw` executable.
pub const NANOCLAW_RUNNER: &str = "NANOCLAW_RUNNER";
/// Set to `1` to keep the daemon from writing approved self-modifications (`install_packages`,
/// `add_mcp_server`) into the manifests, as for a read-only or pull-only (GitOps) checkout: the
/// approver and the agent get the patch to apply by hand instead. `nanoclaw adopt` then edits no
/// existing manifest file either (it prints the entry and the patch).
pub const NANOCLAW_MANIFESTS_READONLY: &str = "NANOCLAW_MANIFESTS_READONLY";

/// How many times Claude Code retries a failed API call before it gives up on a turn (its own
/// default: 10, some 2.5 minutes when the API cannot be reached); when set, passed on to Claude
/// Code in agent containers. After Claude Code gives up on an unreachable API, nanoclaw gives
/// the message back and retries it with its own backoff (docs/agents.md). Tests set it low.
pub const CLAUDE_CODE_MAX_RETRIES: &str = "CLAUDE_CODE_MAX_RETRIES";

/// The daemon's variables passed on to Claude Code in agent containers, when set.
pub const PASSED_TO_CLAUDE_CODE: &[&str] = &[CLAUDE_CODE_MAX_RETRIES];

/// Every variable above, with its one-line meaning (for docs and `--help`).
pub const ALL: &[(&str, &str)] = &[
    (NANOCLAW_DATA_DIR, "state directory; same as --data"),
    (
        NANOCLAW_LOG,
        "log filter, e.g. `info` or `reconciler=debug`",
    ),
    (RUST_LOG, "log filter used when NANOCLAW_LOG is unset"),
    (NO_COLOR, "disable colour"),
    (
        NANOCLAW_REQUIRE_DOCKER,
        "tests: fail instead of skip without Docker",
    ),
    (NANOCLAW_TEST_KEEP, "tests: keep containers after a test"),
    (DOCKER_HOST, "Docker endpoint"),
    (TZ, "timezone handed to agent containers"),
    (XDG_STATE_HOME, "base of the default data directory"),
    (
        HOME,
        "base of the default data directory; `~` in mount paths",
    ),
    (XDG_CONFIG_HOME, "base of the mount allowlist's folder"),
    (
        ANTHROPIC_API_KEY,
        "Anthropic API key for the credential proxy when none is stored",
    ),
    (
        CLAUDE_CODE_OAUTH_TOKEN,
        "Claude subscription OAuth token, used when no key is stored or set",
    ),
    (
        NANOCLAW_ANTHROPIC_BASE_URL,
        "upstream of the credential proxy (default Anthropic's API)",
    ),
    (
        TELEGRAM_BOT_TOKEN,
        "Telegram bot token when none is stored with `nanoclaw auth set telegram`",
    ),
    (
        NANOCLAW_TELEGRAM_API_URL,
        "Telegram Bot API base URL (default Telegram's)",
    ),
    (
        NANOCLAW_RUNNER,
        "static agent-runner for agent images (default: beside nanoclaw)",
    ),
    (
        NANOCLAW_MANIFESTS_READONLY,
        "`1`: approved self-modifications, and `nanoclaw adopt`'s edits of existing files, are not written into the manifests",
    ),
    (
        CLAUDE_CODE_MAX_RETRIES,
        "retries of a failed API call by Claude Code in agent containers (default its own, 10)",
    ),
];

/// Reads one of the variables above; unset or non-UTF-8 is `None`, empty is `None`.
pub fn get(name: &str) -> Option<String> {
    #[allow(clippy::disallowed_methods)] // the one permitted reader of the environment
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// True when the variable is set to `1` or `true`.
pub fn flag(name: &str) -> bool {
    matches!(get(name).as_deref(), Some("1" | "true"))
}
