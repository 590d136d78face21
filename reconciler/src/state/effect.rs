//! THE field table: for every manifest field path, what changing it does to running agents,
//! why, and what an unset field means (its default).
//!
//! One row per field path (`<kind>.<field>`, the names of `state` and of the YAML), declared
//! beside the state types it is keyed by. The plan text, the JSON plan, the JSON Schema
//! descriptions and docs/manifests.md all read this table; a test fails when a schema field has
//! no row. A path without a row (and without a row for any prefix of it) is treated as
//! `restart`, never `none`: an unknown change is assumed to need a fresh container.
//!
//! Each row says only what the code does today (docs/runtime.md): wirings, policies, roles and
//! memberships are read from the central DB per message (`none`); `container.json` and the
//! instruction files are composed at spawn (`restart`); image, mounts, resource limits and the
//! network are `docker run` arguments (`recreate`); packages are baked into the per-agent image
//! (`rebuild`). Defaults that are declared elsewhere as values (enum defaults, resource limits,
//! the runner's defaults) are read from their declaration, not repeated here.

use agent_runner::container_config::{DEFAULT_MAX_MESSAGES, DEFAULT_PROVIDER};

use super::UnknownSenderPolicy;
use super::text_enum::text_enum;
use super::{CliScope, EngageMode, IgnoredMessagePolicy, Network, SenderScope, SessionMode};
use crate::resources::{DEFAULT_CPUS, DEFAULT_MEMORY, DEFAULT_PIDS};

text_enum! {
    /// What a change needs before it takes effect. Ordered: a bigger effect includes the smaller.
    #[derive(PartialOrd, Ord)]
    pub enum Effect {
        /// Read per message: takes effect on the next message, no container is touched.
        None = "none",
        /// Read at container spawn: a running daemon replaces the agent's running containers at
        /// their next safe point (docs/operating.md).
        Restart = "restart",
        /// New container arguments (image, mounts): a running daemon removes the agent's
        /// containers at their next safe point and creates them again.
        Recreate = "recreate",
        /// Baked into the agent's image: a running daemon builds the new image in the
        /// background (its containers serve meanwhile), then replaces them at their next safe
        /// point; without a daemon, the next `nanoclaw run` (or `nanoclaw image build`) builds it.
        Rebuild = "rebuild",
    }
}

/// What an unset field means.
#[derive(Clone, Copy, Debug)]
pub enum Unset {
    /// The field is required, or the row is a whole kind's: there is no default to show.
    Required,
    /// In words: `none`, "the provider's default".
    Means(&'static str),
    /// A value declared in code (shown as `` `value` ``), and an optional note after it.
    Value(fn() -> String, &'static str),
}

impl Unset {
    /// The default as docs and schema descriptions show it; `None` for [`Unset::Required`].
    pub fn text(self) -> Option<String> {
        match self {
            Unset::Required => None,
            Unset::Means(text) => Some(text.to_string()),
            Unset::Value(value, "") => Some(format!("`{}`", value())),
            Unset::Value(value, note) => Some(format!("`{}` {note}", value())),
        }
    }
}

/// One row: a field path, its effect, why (shown in plans and docs), and its default.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub path: &'static str,
    pub effect: Effect,
    pub why: &'static str,
    pub default: Unset,
}

const fn row(path: &'static str, effect: Effect, why: &'static str, default: Unset) -> Row {
    Row {
        path,
        effect,
        why,
        default,
    }
}

const NONE: Unset = Unset::Means("none");
const REQUIRED: Unset = Unset::Required;
const SPAWN: &str = "written to container.json at spawn";

/// Every field path, its effect, why, and its default. Kinds whose whole resource is one unit
/// (`role`, `member`, `destination`) have a row for the kind itself: adding or removing one is
/// the change.
pub const TABLE: &[Row] = &[
    row(
        "agent",
        Effect::None,
        "a new agent's first message starts its container; a removed agent's sessions go with it",
        REQUIRED,
    ),
    row(
        "agent.name",
        Effect::Recreate,
        "the name is the agent's folder and id: a rename is a new agent",
        REQUIRED,
    ),
    row(
        "agent.assistant_name",
        Effect::Restart,
        SPAWN,
        Unset::Means("the agent's `name`"),
    ),
    row(
        "agent.provider",
        Effect::Restart,
        "the runner picks its provider from container.json at spawn",
        Unset::Value(|| DEFAULT_PROVIDER.to_string(), ""),
    ),
    row(
        "agent.model",
        Effect::Restart,
        SPAWN,
        Unset::Means("the provider's default"),
    ),
    row(
        "agent.effort",
        Effect::Restart,
        SPAWN,
        Unset::Means("the provider's default"),
    ),
    row(
        "agent.image",
        Effect::Recreate,
        "the image is a `docker run` argument",
        Unset::Means("the install's base image (or the agent's own, with packages)"),
    ),
    row(
        "agent.max_messages_per_prompt",
        Effect::Restart,
        SPAWN,
        Unset::Value(|| DEFAULT_MAX_MESSAGES.to_string(), "(the runner's)"),
    ),
    row(
        "agent.cli_scope",
        Effect::None,
        "stored in the central DB only: this build has no agent-side CLI that reads it",
        Unset::Value(|| CliScope::default().to_string(), ""),
    ),
    row(
        "agent.instructions",
        Effect::Restart,
        "seeds CLAUDE.local.md at spawn, unless the agent has edited the file since the last seed",
        Unset::Means("none (an empty `CLAUDE.local.md`)"),
    ),
    row(
        "agent.skills",
        Effect::Restart,
        "written to container.json at spawn (no provider of this build acts on it yet)",
        Unset::Value(|| "all".to_string(), ""),
    ),
    row(
        "agent.mcp_servers",
        Effect::Restart,
        "written to container.json and CLAUDE.md's fragments at spawn",
        NONE,
    ),
    row(
        "agent.packages",
        Effect::Rebuild,
        "packages are installed into the agent's own image",
        NONE,
    ),
    row(
        "agent.packages.apt",
        Effect::Rebuild,
        "apt packages are installed into the agent's own image",
        NONE,
    ),
    row(
        "agent.packages.npm",
        Effect::Rebuild,
        "npm packages are installed into the agent's own image",
        NONE,
    ),
    row(
        "agent.mounts",
        Effect::Recreate,
        "mounts are `docker run` arguments",
        Unset::Means(
            "none (`readonly` defaults to `true`, `container_path` to the host path's basename)",
        ),
    ),
    row(
        "agent.resources",
        Effect::Recreate,
        "limits are set when the container is created (`docker run --memory`, `--cpu-quota`, `--pids-limit`)",
        Unset::Means("every limit at its default"),
    ),
    row(
        "agent.resources.memory",
        Effect::Recreate,
        "the memory limit is set when the container is created (`docker run --memory`)",
        Unset::Value(|| DEFAULT_MEMORY.to_string(), "(no swap beyond it)"),
    ),
    row(
        "agent.resources.cpus",
        Effect::Recreate,
        "the CPU quota is set when the container is created (`docker run --cpu-quota`)",
        Unset::Value(|| DEFAULT_CPUS.to_string(), ""),
    ),
    row(
        "agent.resources.pids",
        Effect::Recreate,
        "the pids limit is set when the container is created (`docker run --pids-limit`)",
        Unset::Value(|| DEFAULT_PIDS.to_string(), ""),
    ),
    row(
        "agent.network",
        Effect::Recreate,
        "the network is set when the container is created (`docker run --network`)",
        Unset::Value(|| Network::default().to_string(), ""),
    ),
    row(
        "channel",
        Effect::None,
        "chats are looked up per message",
        REQUIRED,
    ),
    row(
        "channel.name",
        Effect::None,
        "the manifest key of the chat; looked up per message",
        REQUIRED,
    ),
    row(
        "channel.channel_type",
        Effect::None,
        "looked up per message",
        REQUIRED,
    ),
    row(
        "channel.platform_id",
        Effect::None,
        "looked up per message",
        REQUIRED,
    ),
    row(
        "channel.display_name",
        Effect::None,
        "not read per message: agents see it in their destination list from their next spawn",
        NONE,
    ),
    row(
        "channel.is_group",
        Effect::None,
        "read per message",
        Unset::Value(|| false.to_string(), ""),
    ),
    row(
        "channel.unknown_sender_policy",
        Effect::None,
        "read per message",
        Unset::Value(|| UnknownSenderPolicy::default().to_string(), ""),
    ),
    row(
        "wiring",
        Effect::None,
        "wirings are read per message by the router",
        NONE,
    ),
    row("wiring.channel", Effect::None, "read per message", REQUIRED),
    row("wiring.agent", Effect::None, "read per message", REQUIRED),
    row(
        "wiring.engage_mode",
        Effect::None,
        "read per message",
        Unset::Value(|| EngageMode::default().to_string(), ""),
    ),
    row(
        "wiring.engage_pattern",
        Effect::None,
        "read per message",
        Unset::Means("none (required for `pattern`; `.` = every message)"),
    ),
    row(
        "wiring.sender_scope",
        Effect::None,
        "read per message",
        Unset::Value(|| SenderScope::default().to_string(), ""),
    ),
    row(
        "wiring.ignored_message_policy",
        Effect::None,
        "read per message",
        Unset::Value(|| IgnoredMessagePolicy::default().to_string(), ""),
    ),
    row(
        "wiring.session_mode",
        Effect::None,
        "read when a message resolves its session",
        Unset::Value(|| SessionMode::default().to_string(), ""),
    ),
    row(
        "wiring.priority",
        Effect::None,
        "read per message",
        Unset::Value(|| 0.to_string(), ""),
    ),
    row("user", Effect::None, "users are read per message", REQUIRED),
    row("user.id", Effect::None, "read per message", REQUIRED),
    row(
        "user.display_name",
        Effect::None,
        "stored in the central DB only: nothing running reads it",
        NONE,
    ),
    row(
        "role",
        Effect::None,
        "roles are read per message by the access gate",
        NONE,
    ),
    row(
        "member",
        Effect::None,
        "memberships are read per message by the access gate",
        NONE,
    ),
    row(
        "destination",
        Effect::Restart,
        "the destination list is given to the agent in its system prompt at spawn",
        Unset::Means("one per wiring: the channel's name → that channel"),
    ),
    row(
        "destination.target",
        Effect::Restart,
        "destinations are projected into the session at spawn",
        REQUIRED,
    ),
];

/// The effect of changing `path` and why: its own row, else the row of the longest listed
/// field prefix (`agent.mcp_servers.x.command` → `agent.mcp_servers`), else `restart`. A bare
/// kind row (`channel`) speaks only for adding or removing a whole resource, so an unlisted
/// field is assumed to need a fresh container, never `none`.
pub fn of(path: &str) -> (Effect, &'static str) {
    if let Some(row) = row_of(path) {
        return (row.effect, row.why);
    }
    let mut candidate = path;
    while let Some(dot) = candidate.rfind('.') {
        candidate = &candidate[..dot];
        if !candidate.contains('.') {
            break;
        }
        if let Some(row) = row_of(candidate) {
            return (row.effect, row.why);
        }
    }
    (
        Effect::Restart,
        "not in the effect table: assumed to be read at spawn",
    )
}

/// The row for exactly `path`, if the table lists it.
pub fn row_of(path: &str) -> Option<&'static Row> {
    TABLE.iter().find(|row| row.path == path)
}

/// The default of exactly `path` as docs show it; `None` when required or not listed.
pub fn default_of(path: &str) -> Option<String> {
    row_of(path).and_then(|row| row.default.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_unknown_defaults_to_restart() {
        assert_eq!(of("agent.packages.apt").0, Effect::Rebuild);
        assert_eq!(of("wiring.engage_mode").0, Effect::None);
        assert_eq!(of("agent.mcp_servers.github.command").0, Effect::Restart);
        assert_eq!(of("role").0, Effect::None);
        assert_eq!(of("something.new").0, Effect::Restart);
        assert_eq!(of("channel").0, Effect::None);
        assert_eq!(
            of("channel.brand_new_field").0,
            Effect::Restart,
            "kind rows never cover fields"
        );
    }

    #[test]
    fn effects_are_ordered_by_strength() {
        assert!(Effect::None < Effect::Restart);
        assert!(Effect::Restart < Effect::Recreate);
        assert!(Effect::Recreate < Effect::Rebuild);
    }

    #[test]
    fn defaults_are_read_from_their_declarations() {
        assert_eq!(default_of("agent.cli_scope").as_deref(), Some("`group`"));
        assert_eq!(
            default_of("wiring.engage_mode").as_deref(),
            Some("`mention`")
        );
        assert_eq!(default_of("agent.provider").as_deref(), Some("`claude`"));
        assert_eq!(
            default_of("agent.max_messages_per_prompt").as_deref(),
            Some("`10` (the runner's)")
        );
        assert_eq!(default_of("agent.name"), None, "required fields have none");
        assert_eq!(default_of("wiring").as_deref(), Some("none"));
    }

    #[test]
    fn table_paths_are_unique() {
        let mut paths: Vec<&str> = TABLE.iter().map(|row| row.path).collect();
        paths.sort_unstable();
        let before = paths.len();
        paths.dedup();
        assert_eq!(before, paths.len());
    }
}
