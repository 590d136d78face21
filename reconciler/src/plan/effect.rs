//! THE field → effect table: what changing each manifest field does to running agents.
//!
//! One row per field path (`<kind>.<field>`, the names of `state.rs` and of the YAML). The
//! plan text, the JSON plan, the JSON Schema descriptions and docs/manifests.md all read this
//! table; a test fails when a schema field has no row. A path without a row (and without a
//! row for any prefix of it) is treated as `restart`, never `none`: an unknown change is
//! assumed to need a fresh container.
//!
//! Why each effect (docs/manifests.md#field-reference): wirings, policies, users, roles and
//! memberships are read from the central DB per message (`none`); container.json, CLAUDE.md and
//! skills are composed at spawn (`restart`); image, mounts and resource limits are `docker run`
//! arguments (`recreate`); packages are
//! baked into the per-agent image (`rebuild`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a change needs before it takes effect. Ordered: a bigger effect includes the smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Read per message: takes effect on the next message, no container is touched.
    None,
    /// Read at container spawn: running containers of the agent are restarted.
    Restart,
    /// New container arguments (image, mounts): containers are removed and created again.
    Recreate,
    /// Baked into the agent's image: the image is rebuilt, then containers are recreated.
    Rebuild,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::None => "none",
            Effect::Restart => "restart",
            Effect::Recreate => "recreate",
            Effect::Rebuild => "rebuild",
        }
    }

    pub fn parse(text: &str) -> Option<Effect> {
        [
            Effect::None,
            Effect::Restart,
            Effect::Recreate,
            Effect::Rebuild,
        ]
        .into_iter()
        .find(|effect| effect.as_str() == text)
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row: a field path, its effect, and why (shown in plans and docs).
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub path: &'static str,
    pub effect: Effect,
    pub why: &'static str,
}

const fn row(path: &'static str, effect: Effect, why: &'static str) -> Row {
    Row { path, effect, why }
}

/// Every field path and its effect. Kinds whose whole resource is one unit (`role`, `member`,
/// `destination`) have a row for the kind itself: adding or removing one is the change.
pub const TABLE: &[Row] = &[
    row(
        "agent",
        Effect::None,
        "a new agent's first message starts its container; a removed agent's sessions go with it",
    ),
    row(
        "agent.name",
        Effect::Recreate,
        "the name is the agent's folder and id: a rename is a new agent",
    ),
    row(
        "agent.assistant_name",
        Effect::Restart,
        "written to container.json at spawn",
    ),
    row(
        "agent.provider",
        Effect::Restart,
        "the runner picks its provider from container.json at spawn",
    ),
    row(
        "agent.model",
        Effect::Restart,
        "written to container.json at spawn",
    ),
    row(
        "agent.effort",
        Effect::Restart,
        "written to container.json at spawn",
    ),
    row(
        "agent.image",
        Effect::Recreate,
        "the image is a `docker run` argument",
    ),
    row(
        "agent.max_messages_per_prompt",
        Effect::Restart,
        "written to container.json at spawn",
    ),
    row(
        "agent.cli_scope",
        Effect::Restart,
        "checked per request, but CLAUDE.md (CLI instructions) is composed at spawn",
    ),
    row(
        "agent.instructions",
        Effect::Restart,
        "seeds CLAUDE.local.md when the agent's folder is initialised at spawn",
    ),
    row(
        "agent.skills",
        Effect::Restart,
        "skill links are synced at spawn",
    ),
    row(
        "agent.mcp_servers",
        Effect::Restart,
        "MCP servers are read from container.json at spawn",
    ),
    row(
        "agent.packages",
        Effect::Rebuild,
        "packages are installed into the agent's own image",
    ),
    row(
        "agent.packages.apt",
        Effect::Rebuild,
        "apt packages are installed into the agent's own image",
    ),
    row(
        "agent.packages.npm",
        Effect::Rebuild,
        "npm packages are installed into the agent's own image",
    ),
    row(
        "agent.mounts",
        Effect::Recreate,
        "mounts are `docker run` arguments",
    ),
    row(
        "agent.resources",
        Effect::Recreate,
        "limits are set when the container is created (`docker run --memory`, `--cpu-quota`, `--pids-limit`)",
    ),
    row(
        "agent.resources.memory",
        Effect::Recreate,
        "the memory limit is set when the container is created (`docker run --memory`)",
    ),
    row(
        "agent.resources.cpus",
        Effect::Recreate,
        "the CPU quota is set when the container is created (`docker run --cpu-quota`)",
    ),
    row(
        "agent.resources.pids",
        Effect::Recreate,
        "the pids limit is set when the container is created (`docker run --pids-limit`)",
    ),
    row(
        "agent.network",
        Effect::Recreate,
        "the network is set when the container is created (`docker run --network`)",
    ),
    row("channel", Effect::None, "chats are looked up per message"),
    row(
        "channel.name",
        Effect::None,
        "the manifest key of the chat; looked up per message",
    ),
    row(
        "channel.channel_type",
        Effect::None,
        "looked up per message",
    ),
    row("channel.platform_id", Effect::None, "looked up per message"),
    row(
        "channel.display_name",
        Effect::None,
        "read per message and when destinations are projected",
    ),
    row("channel.is_group", Effect::None, "read per message"),
    row(
        "channel.unknown_sender_policy",
        Effect::None,
        "read per message",
    ),
    row(
        "wiring",
        Effect::None,
        "wirings are read per message by the router",
    ),
    row("wiring.channel", Effect::None, "read per message"),
    row("wiring.agent", Effect::None, "read per message"),
    row("wiring.engage_mode", Effect::None, "read per message"),
    row("wiring.engage_pattern", Effect::None, "read per message"),
    row("wiring.sender_scope", Effect::None, "read per message"),
    row(
        "wiring.ignored_message_policy",
        Effect::None,
        "read per message",
    ),
    row(
        "wiring.session_mode",
        Effect::None,
        "read when a message resolves its session",
    ),
    row("wiring.priority", Effect::None, "read per message"),
    row("user", Effect::None, "users are read per message"),
    row("user.id", Effect::None, "read per message"),
    row("user.display_name", Effect::None, "read per message"),
    row(
        "role",
        Effect::None,
        "roles are read per message by the access gate",
    ),
    row(
        "member",
        Effect::None,
        "memberships are read per message by the access gate",
    ),
    row(
        "destination",
        Effect::Restart,
        "the destination list is given to the agent in its system prompt at spawn",
    ),
    row(
        "destination.target",
        Effect::Restart,
        "destinations are projected into the session at spawn",
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
    fn table_paths_are_unique() {
        let mut paths: Vec<&str> = TABLE.iter().map(|row| row.path).collect();
        paths.sort_unstable();
        let before = paths.len();
        paths.dedup();
        assert_eq!(before, paths.len());
    }
}
