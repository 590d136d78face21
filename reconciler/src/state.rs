//! The configuration as typed resources keyed by [`Address`]: the one shape shared by the
//! manifests (desired state, built by `manifest`), the central DB (current state, [`Current`],
//! read by `db::config`) and the plan (`plan::diff`).
//!
//! Every field here is already resolved: defaults applied, names validated. Nothing in this
//! module reads files or the DB. A resource serialises (serde_json) to the field map the plan
//! diffs, so the JSON field names below are the field paths of the effect table
//! (`agent.packages.apt`, `wiring.engage_mode`, …) and of the plan's JSON format.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod effect;
mod text_enum;

pub use self::text_enum::TextEnum;
use self::text_enum::text_enum;
pub use crate::resources::Resources;

/// The stable name of a resource in plans, errors and JSON: `<kind>.<key>`.
///
/// Keys: `agent.<name>`, `channel.<name>`, `wiring.<channel>/<agent>`, `user.<user id>`,
/// `role.<user id>/owner`, `role.<user id>/admin` (global), `role.<user id>/admin/<agent>`,
/// `member.<user id>/<agent>`, `destination.<agent>/<local name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Address {
    pub kind: Kind,
    pub key: String,
}

text_enum! {
    /// Resource kinds, in the order a plan lists them (and an apply creates them).
    #[derive(PartialOrd, Ord)]
    pub enum Kind {
        Agent = "agent",
        Channel = "channel",
        Wiring = "wiring",
        User = "user",
        Role = "role",
        Member = "member",
        Destination = "destination",
    }
}

impl Address {
    pub fn new(kind: Kind, key: impl Into<String>) -> Address {
        Address {
            kind,
            key: key.into(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.as_str(), self.key)
    }
}

impl From<Address> for String {
    fn from(address: Address) -> String {
        address.to_string()
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(text: String) -> Result<Address, String> {
        let (kind, key) = text
            .split_once('.')
            .ok_or_else(|| format!("address `{text}` has no `<kind>.` prefix"))?;
        let kind = Kind::parse(kind).ok_or_else(|| format!("unknown resource kind `{kind}`"))?;
        Ok(Address::new(kind, key))
    }
}

/// The whole configuration: every resource by address (sorted, so plans are deterministic).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub resources: BTreeMap<Address, Resource>,
}

impl State {
    pub fn insert(&mut self, resource: Resource) -> Option<Resource> {
        self.resources.insert(resource.address(), resource)
    }

    pub fn get(&self, address: &Address) -> Option<&Resource> {
        self.resources.get(address)
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.resources
            .values()
            .filter_map(|resource| match resource {
                Resource::Agent(agent) => Some(agent),
                _ => None,
            })
    }
}

/// What the central DB holds now (read by `db::config::read`, handed to `plan` as data).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Current {
    /// Every config row as a resource, managed or not.
    pub state: State,
    /// Addresses whose rows have `managed_by = 'manifest'`.
    pub managed: BTreeSet<Address>,
    /// The last-applied spec of each managed address (`managed_resources.spec_json`).
    pub specs: BTreeMap<Address, Resource>,
    /// `reconcile_state.generation` (0 for a DB that does not exist yet).
    pub generation: i64,
}

/// One resource of any kind. Agents are the big variant; boxing them would put an allocation
/// and a deref on every plan and apply path for a few hundred bytes per resource.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    Agent(Agent),
    Channel(Channel),
    Wiring(Wiring),
    User(User),
    Role(Role),
    Member(Member),
    Destination(Destination),
}

impl Resource {
    pub fn kind(&self) -> Kind {
        match self {
            Resource::Agent(_) => Kind::Agent,
            Resource::Channel(_) => Kind::Channel,
            Resource::Wiring(_) => Kind::Wiring,
            Resource::User(_) => Kind::User,
            Resource::Role(_) => Kind::Role,
            Resource::Member(_) => Kind::Member,
            Resource::Destination(_) => Kind::Destination,
        }
    }

    pub fn address(&self) -> Address {
        let key = match self {
            Resource::Agent(agent) => agent.name.clone(),
            Resource::Channel(channel) => channel.name.clone(),
            Resource::Wiring(wiring) => format!("{}/{}", wiring.channel, wiring.agent),
            Resource::User(user) => user.id.clone(),
            Resource::Role(role) => match &role.agent {
                Some(agent) => format!("{}/{}/{agent}", role.user, role.role.as_str()),
                None => format!("{}/{}", role.user, role.role.as_str()),
            },
            Resource::Member(member) => format!("{}/{}", member.user, member.agent),
            Resource::Destination(destination) => {
                format!("{}/{}", destination.agent, destination.local_name)
            }
        };
        Address::new(self.kind(), key)
    }

    /// The agent group whose containers a change to this resource affects, if any.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Resource::Agent(agent) => Some(&agent.name),
            Resource::Wiring(wiring) => Some(&wiring.agent),
            Resource::Role(role) => role.agent.as_deref(),
            Resource::Member(member) => Some(&member.agent),
            Resource::Destination(destination) => Some(&destination.agent),
            Resource::Channel(_) | Resource::User(_) => None,
        }
    }

    /// The resource's fields as a JSON object (without the `kind` tag): what the plan diffs.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = match self {
            Resource::Agent(inner) => serde_json::to_value(inner),
            Resource::Channel(inner) => serde_json::to_value(inner),
            Resource::Wiring(inner) => serde_json::to_value(inner),
            Resource::User(inner) => serde_json::to_value(inner),
            Resource::Role(inner) => serde_json::to_value(inner),
            Resource::Member(inner) => serde_json::to_value(inner),
            Resource::Destination(inner) => serde_json::to_value(inner),
        };
        match value {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }
}

/// An agent group (v2 `agent_groups` + `container_configs`). `name` is also its folder and id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub name: String,
    /// Name the agent answers to; `None` = the agent's name.
    pub assistant_name: Option<String>,
    /// Provider name (`claude`, `mock`, …); `None` = `claude`.
    pub provider: Option<String>,
    pub model: Option<String>,
    pub effort: Option<String>,
    /// Image tag override; `None` = the install's base (or per-group rebuilt) image.
    pub image: Option<String>,
    /// `None` = the runner's default (10).
    pub max_messages_per_prompt: Option<u32>,
    pub cli_scope: CliScope,
    /// Seed of the group's `CLAUDE.local.md`.
    pub instructions: Option<String>,
    pub skills: Skills,
    pub mcp_servers: BTreeMap<String, McpServer>,
    pub packages: Packages,
    pub mounts: Vec<Mount>,
    /// Container limits; `default` so specs saved before the field existed still load.
    #[serde(default)]
    pub resources: Resources,
    /// The container's network; `default` so specs saved before the field existed still load.
    #[serde(default)]
    pub network: Network,
}

text_enum! {
    /// An agent container's network. `full`: Docker's bridge (the agent can fetch and install);
    /// `none`: only its own loopback (Claude still reaches the API through the credential proxy's
    /// mounted socket, docs/security.md "Credentials").
    #[derive(Default)]
    pub enum Network {
        #[default]
        Full = "full",
        None = "none",
    }
}

text_enum! {
    #[derive(Default)]
    pub enum CliScope {
        Disabled = "disabled",
        #[default]
        Group = "group",
        Global = "global",
    }
}

text_enum! {
    /// Reasoning effort levels.
    pub enum Effort {
        Low = "low",
        Medium = "medium",
        High = "high",
        Xhigh = "xhigh",
        Max = "max",
    }
}

/// `"all"` (every skill in the image, tracking new ones) or an explicit list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Skills {
    #[default]
    #[serde(with = "all_literal")]
    All,
    List(Vec<String>),
}

mod all_literal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("all")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "all" {
            Ok(())
        } else {
            Err(serde::de::Error::custom("expected \"all\""))
        }
    }
}

/// An MCP server: a stdio command or a URL, with an optional CLAUDE.md instructions fragment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpServer {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub url: Option<String>,
    pub instructions: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packages {
    pub apt: Vec<String>,
    pub npm: Vec<String>,
}

/// An additional host directory mounted at `/workspace/extra/<container_path>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub host_path: String,
    /// Relative name under `/workspace/extra/`; defaults to the host path's basename.
    pub container_path: String,
    pub readonly: bool,
}

/// A chat (v2 `messaging_groups`). `name` is the manifest's key and the row id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Channel {
    pub name: String,
    /// Adapter type: `cli`, `telegram`, `discord`, …
    pub channel_type: String,
    /// The chat id exactly as the adapter emits it.
    pub platform_id: String,
    pub display_name: Option<String>,
    pub is_group: bool,
    pub unknown_sender_policy: UnknownSenderPolicy,
}

text_enum! {
    #[derive(Default)]
    pub enum UnknownSenderPolicy {
        #[default]
        Strict = "strict",
        RequestApproval = "request_approval",
        Public = "public",
    }
}

/// A channel → agent wiring (v2 `messaging_group_agents`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wiring {
    pub channel: String,
    pub agent: String,
    pub engage_mode: EngageMode,
    /// Regex (required for `pattern`; `.` = always).
    pub engage_pattern: Option<String>,
    pub sender_scope: SenderScope,
    pub ignored_message_policy: IgnoredMessagePolicy,
    pub session_mode: SessionMode,
    /// Fan-out order: higher first.
    pub priority: i64,
}

text_enum! {
    #[derive(Default)]
    pub enum EngageMode {
        Pattern = "pattern",
        #[default]
        Mention = "mention",
        MentionSticky = "mention-sticky",
    }
}

/// Bytes the regex crate may use for one compiled `engage_pattern` (`size_limit` and
/// `dfa_size_limit`): validation and the router compile with the same bound, so a pattern that
/// validates also compiles at runtime and none can make the host hold unbounded memory.
pub const ENGAGE_PATTERN_SIZE_LIMIT: usize = 1024 * 1024;

/// Compiles an `engage_pattern` with the size limits above (validate and the router).
pub fn engage_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(ENGAGE_PATTERN_SIZE_LIMIT)
        .dfa_size_limit(ENGAGE_PATTERN_SIZE_LIMIT)
        .build()
}

text_enum! {
    #[derive(Default)]
    pub enum SenderScope {
        #[default]
        All = "all",
        Known = "known",
    }
}

text_enum! {
    #[derive(Default)]
    pub enum IgnoredMessagePolicy {
        #[default]
        Drop = "drop",
        Accumulate = "accumulate",
    }
}

text_enum! {
    #[derive(Default)]
    pub enum SessionMode {
        #[default]
        Shared = "shared",
        PerThread = "per-thread",
        AgentShared = "agent-shared",
    }
}

/// A person on one channel: id `<channel>:<handle>` (v2 `users`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
}

impl User {
    /// The channel type of origin: the id's prefix before the first `:`.
    pub fn kind(&self) -> &str {
        self.id
            .split_once(':')
            .map_or(self.id.as_str(), |(kind, _)| kind)
    }
}

/// A role grant (v2 `user_roles`): owner is always global; admin is global or one agent's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub user: String,
    pub role: RoleKind,
    pub agent: Option<String>,
}

text_enum! {
    pub enum RoleKind {
        Owner = "owner",
        Admin = "admin",
    }
}

/// Membership of a user in an agent group (v2 `agent_group_members`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user: String,
    pub agent: String,
}

/// Agent `agent` may send to `target` under `local_name` (v2 `agent_destinations`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub agent: String,
    pub local_name: String,
    pub target: DestinationTarget,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationTarget {
    /// Another agent group, by name.
    Agent(String),
    /// A channel, by its manifest name.
    Channel(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_parse_from_their_serialised_names() {
        assert_eq!(
            EngageMode::parse("mention-sticky"),
            Some(EngageMode::MentionSticky)
        );
        assert_eq!(
            SessionMode::parse("agent-shared"),
            Some(SessionMode::AgentShared)
        );
        assert_eq!(
            UnknownSenderPolicy::parse("request_approval"),
            Some(UnknownSenderPolicy::RequestApproval)
        );
        assert_eq!(EngageMode::parse("sometimes"), None);
        for mode in EngageMode::ALL {
            let json = serde_json::to_string(mode).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", mode.as_str()),
                "serde uses the declared text"
            );
        }
    }

    #[test]
    fn addresses_round_trip_through_text() {
        let role = Resource::Role(Role {
            user: "telegram:42".into(),
            role: RoleKind::Admin,
            agent: Some("andy".into()),
        });
        let address = role.address();
        assert_eq!(address.to_string(), "role.telegram:42/admin/andy");
        assert_eq!(Address::try_from(address.to_string()).unwrap(), address);
        assert!(Address::try_from("nope".to_string()).is_err());
        assert!(Address::try_from("bogus.x".to_string()).is_err());
    }

    #[test]
    fn skills_serialise_as_all_or_list() {
        assert_eq!(serde_json::to_string(&Skills::All).unwrap(), r#""all""#);
        let list: Skills = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(list, Skills::List(vec!["a".into(), "b".into()]));
        let all: Skills = serde_json::from_str(r#""all""#).unwrap();
        assert_eq!(all, Skills::All);
    }
}
