//! The manifest documents as written in YAML: one struct per `kind`, every semantically
//! checked value wrapped in [`Sp`] so validation can point at its line and column.
//!
//! These types are the YAML's shape only (serde + schemars); they hold no defaults and no
//! rules. `validate` turns them into `crate::state` resources; `schema` derives the JSON
//! Schema from them. Enum-like fields stay strings here so validation can list the allowed
//! values with a location instead of failing the whole document. Unknown keys are ignored by
//! serde here and reported, all of them, by `tree` against the schema (which keeps
//! `additionalProperties: false` through `#[schemars(deny_unknown_fields)]`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value with the 1-based line and column where it appears (0:0 when built in code).
#[derive(Clone, Debug)]
pub struct Sp<T> {
    pub value: T,
    pub line: u32,
    pub col: u32,
}

impl<T> Sp<T> {
    /// A value without a source location (used when writing manifests from a `State`).
    pub fn bare(value: T) -> Sp<T> {
        Sp {
            value,
            line: 0,
            col: 0,
        }
    }
}

impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, other: &Sp<T>) -> bool {
        self.value == other.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sp<T>, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Sp {
            value: spanned.value,
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            col: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
        })
    }
}

impl<T: Serialize> Serialize for Sp<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// `kind: agent`: an agent group, its container configuration and its destinations.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AgentDoc {
    pub kind: Sp<String>,
    /// The agent's folder and id: lowercase letters, digits and `-`, at most 64, not `global`.
    pub name: Sp<String>,
    /// Name the agent answers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant_name: Option<Sp<String>>,
    /// Provider (`claude`, `mock`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Sp<String>>,
    /// Model name passed to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Sp<String>>,
    /// Reasoning effort: `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::Effort>")]
    pub effort: Option<Sp<String>>,
    /// Image tag override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Sp<String>>,
    /// Messages batched into one prompt, 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_messages_per_prompt: Option<Sp<u32>>,
    /// Which `nanoclaw` CLI commands the agent may run: `disabled`, `group` or `global`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::CliScope>")]
    pub cli_scope: Option<Sp<String>>,
    /// Seed of the agent's `CLAUDE.local.md`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Sp<String>>,
    /// `all` (every skill in the image) or a list of skill names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Sp<SkillsDoc>>,
    /// MCP servers by name: a stdio `command` or a `url`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp_servers: BTreeMap<String, Sp<McpServerDoc>>,
    /// Extra packages installed into the agent's own image (at most 20 in total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<PackagesDoc>,
    /// Host directories mounted at `/workspace/extra/<container_path>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Sp<MountDoc>>,
    /// Agents and channels this agent may send to, under a local name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<Sp<DestinationDoc>>,
    /// Limits of the agent's containers: `memory`, `cpus`, `pids`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Sp<ResourcesDoc>>,
    /// The container's network: `full` (internet) or `none` (loopback only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::Network>")]
    pub network: Option<Sp<String>>,
}

/// `all` or a list of skill names.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SkillsDoc {
    /// The literal `all`.
    All(String),
    List(Vec<String>),
}

/// One MCP server: exactly one of `command` (stdio) or `url`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct McpServerDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Fragment added to the agent's CLAUDE.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Packages by manager.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct PackagesDoc {
    /// Debian package names, each optionally pinned with `=version`; installed with
    /// `--no-install-recommends` into the agent's own image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt: Vec<Sp<String>>,
    /// npm package names (optionally `@scope/name`), each optionally with `@version`; installed
    /// globally into the agent's own image, running only their own install scripts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub npm: Vec<Sp<String>>,
}

/// An additional mount.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct MountDoc {
    /// Absolute host path or `~/…`.
    pub host_path: Sp<String>,
    /// Relative name under `/workspace/extra/`; defaults to the host path's basename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_path: Option<Sp<String>>,
    /// Read-only unless `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<bool>,
}

/// Container limits; each absent one takes its default.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ResourcesDoc {
    /// Memory limit, swap included: a number and a binary unit (`512m`, `2g`, `1.5GiB`); at least `32MiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Sp<QuantityDoc>>,
    /// CPU time as a number of CPUs (`0.5`, `2`); at least `0.01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Sp<QuantityDoc>>,
    /// Most processes and threads at once, 16 to 4194304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Sp<i64>>,
}

/// A quantity as written: a YAML number (`1.5`) or text with a unit (`512m`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum QuantityDoc {
    Number(f64),
    Text(String),
}

impl QuantityDoc {
    /// The quantity as text (`1.5`, `512m`), for parsing and messages.
    pub fn to_text(&self) -> String {
        match self {
            QuantityDoc::Number(number) => number.to_string(),
            QuantityDoc::Text(text) => text.clone(),
        }
    }
}

/// A local name for another agent or a channel: exactly one of `agent` or `channel`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct DestinationDoc {
    /// Local name: lowercase letters, digits and single `-` between them.
    pub name: Sp<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Sp<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Sp<String>>,
}

/// `kind: channel`: a chat on one adapter and the agents wired to it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ChannelDoc {
    pub kind: Sp<String>,
    /// The channel's manifest key: lowercase letters, digits and `-`.
    pub name: Sp<String>,
    /// Adapter type (`cli`, `telegram`, …).
    pub channel_type: Sp<String>,
    /// The chat id exactly as the adapter emits it.
    pub platform_id: Sp<String>,
    /// Human name of the chat (shown to agents in their destination list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Sp<String>>,
    /// A group chat (several people) rather than a direct message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_group: Option<bool>,
    /// What happens to messages from senders who are not known users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::UnknownSenderPolicy>")]
    pub unknown_sender_policy: Option<Sp<String>>,
    /// Agents that receive this chat's messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wirings: Vec<Sp<WiringDoc>>,
}

/// One channel → agent wiring.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct WiringDoc {
    /// The agent's `name`.
    pub agent: Sp<String>,
    /// When the agent engages: `pattern`, `mention` or `mention-sticky`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::EngageMode>")]
    pub engage_mode: Option<Sp<String>>,
    /// Regex for `pattern` (`.` = every message); only allowed with `pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engage_pattern: Option<Sp<String>>,
    /// Whose messages engage: `all` or `known` users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::SenderScope>")]
    pub sender_scope: Option<Sp<String>>,
    /// Messages that do not engage: `drop` or `accumulate` as context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::IgnoredMessagePolicy>")]
    pub ignored_message_policy: Option<Sp<String>>,
    /// Session per chat (`shared`), per thread (`per-thread`) or one per agent (`agent-shared`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<crate::state::SessionMode>")]
    pub session_mode: Option<Sp<String>>,
    /// Fan-out order: higher first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// `kind: user`: a person on one channel, their roles and memberships.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UserDoc {
    pub kind: Sp<String>,
    /// `<channel>:<handle>`, both parts non-empty.
    pub id: Sp<String>,
    /// The person's name as shown to agents and in approvals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<Sp<String>>,
    /// `owner` (global only), `admin` (global) or `{role: admin, agent: <name>}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Sp<RoleDoc>>,
    /// Agents this user is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_of: Vec<Sp<String>>,
}

/// A role: a bare name (global) or a mapping with an agent scope.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RoleDoc {
    Global(String),
    Scoped(ScopedRoleDoc),
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ScopedRoleDoc {
    /// `owner` or `admin`.
    #[schemars(with = "crate::state::RoleKind")]
    pub role: String,
    /// The agent an `admin` is scoped to; absent = global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// One parsed document of any kind (short-lived: boxing would only add noise).
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Doc {
    Agent(AgentDoc),
    Channel(ChannelDoc),
    User(UserDoc),
}
