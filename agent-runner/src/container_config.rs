//! THE host↔container contract: `container.json`, which the host composes from the agent's
//! configuration at every spawn into the (read-only) session folder, and the runner reads once
//! at its start. One serde type, [`ContainerConfig`], serialised by the host and deserialised by
//! the runner; providers receive all of it (docs/agent-runner.md#containerjson).
//!
//! Compatibility between a host and a runner of other versions:
//!
//! - a key the runner does not know is ignored, kept in [`ContainerConfig::unknown`] and logged
//!   (a newer host added a field an older runner can do without);
//! - a missing key takes its documented default, and so does an empty or zero value (`""`,
//!   `0`, `null`), as in v2 (an older host did not write it);
//! - [`ContainerConfig::version`] changes only when a change is incompatible: a runner refuses a
//!   config of a newer version with a clear error (rebuild the agent image) instead of
//!   misreading it. A config without `version` is version 1.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The contract version this runner understands (and this host writes).
pub const VERSION: u32 = 1;
/// The provider of a config that names none (v2's default).
pub const DEFAULT_PROVIDER: &str = "claude";
/// The pending window of a config that sets none (docs/agent-runner.md#the-loop).
pub const DEFAULT_MAX_MESSAGES: usize = 10;

/// `container.json`. JSON keys are camelCase (v2's names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerConfig {
    /// The contract's version; default (and missing) 1. See the module doc.
    #[serde(default = "default_version", deserialize_with = "falsy_version")]
    pub version: u32,
    /// The provider's registry name, lowercased; default [`DEFAULT_PROVIDER`].
    #[serde(default = "default_provider", deserialize_with = "falsy_provider")]
    pub provider: String,
    /// The agent's name.
    #[serde(default, deserialize_with = "falsy")]
    pub group_name: String,
    /// The agent's id (its name; v2 kept both).
    #[serde(default, deserialize_with = "falsy")]
    pub agent_group_id: String,
    /// The name the agent answers to (the system prompt's identity); `None`: none given.
    #[serde(
        default,
        deserialize_with = "falsy_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub assistant_name: Option<String>,
    /// Messages batched into one prompt; default [`DEFAULT_MAX_MESSAGES`].
    #[serde(default = "default_max_messages", deserialize_with = "falsy_max")]
    pub max_messages_per_prompt: usize,
    /// Model name for the provider; `None`: the provider's default.
    #[serde(
        default,
        deserialize_with = "falsy_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<String>,
    /// Reasoning effort for the provider; `None`: the provider's default.
    #[serde(
        default,
        deserialize_with = "falsy_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub effort: Option<String>,
    /// MCP servers by name.
    #[serde(default, deserialize_with = "falsy")]
    pub mcp_servers: BTreeMap<String, McpServer>,
    /// Packages the agent's image was asked to hold.
    #[serde(default, deserialize_with = "falsy")]
    pub packages: Packages,
    /// The agent's own image, when it names one.
    #[serde(
        default,
        deserialize_with = "falsy_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_tag: Option<String>,
    /// The agent's additional mounts as configured (each appears at
    /// `/workspace/extra/<containerPath>`).
    #[serde(default, deserialize_with = "falsy")]
    pub additional_mounts: Vec<AdditionalMount>,
    /// The skills the agent may use.
    #[serde(default, deserialize_with = "falsy")]
    pub skills: Skills,
    /// Keys this version does not know (a newer host's), kept as read; the runner logs them.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// One MCP server: a stdio `command` (with `args` and `env`) or a `url`, with an optional
/// `CLAUDE.md` fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct McpServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// System and npm packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Packages {
    pub apt: Vec<String>,
    pub npm: Vec<String>,
}

/// One additional mount as configured (v2's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalMount {
    pub host_path: String,
    /// The name under `/workspace/extra/`.
    pub container_path: String,
    #[serde(default = "default_readonly")]
    pub readonly: bool,
}

/// `"all"` (every skill in the image) or an explicit list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Skills {
    #[default]
    All,
    List(Vec<String>),
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            version: VERSION,
            provider: DEFAULT_PROVIDER.to_string(),
            group_name: String::new(),
            agent_group_id: String::new(),
            assistant_name: None,
            max_messages_per_prompt: DEFAULT_MAX_MESSAGES,
            model: None,
            effort: None,
            mcp_servers: BTreeMap::new(),
            packages: Packages::default(),
            image_tag: None,
            additional_mounts: Vec::new(),
            skills: Skills::All,
            unknown: BTreeMap::new(),
        }
    }
}

/// Why `container.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{path}` is not a container config: {source}\n\nhint: the host writes this file at every start of the container; a runner and a host of different versions disagree on a field: rebuild the agent images (`nanoclaw image build`)"
    )]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "`{path}` is version {version} of the container contract; this runner understands up to version {VERSION}\n\nhint: the host is newer than the runner in the agent image: rebuild the agent images (`nanoclaw image build`)"
    )]
    TooNew { path: PathBuf, version: u32 },
}

impl ConfigError {
    /// The file does not exist (a runner started by hand: run on defaults).
    pub fn is_missing(&self) -> bool {
        matches!(self, ConfigError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl ContainerConfig {
    /// Reads and checks the file (see [`ContainerConfig::parse`]).
    pub fn load(path: &Path) -> Result<ContainerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ContainerConfig::parse(&text, path)
    }

    /// Parses a config (`path` names it in errors): unknown keys kept in
    /// [`ContainerConfig::unknown`], missing or empty ones defaulted, a newer incompatible
    /// version refused.
    pub fn parse(text: &str, path: &Path) -> Result<ContainerConfig, ConfigError> {
        let config: ContainerConfig =
            serde_json::from_str(text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        if config.version > VERSION {
            return Err(ConfigError::TooNew {
                path: path.to_path_buf(),
                version: config.version,
            });
        }
        Ok(config)
    }

    /// The file's text as the host writes it: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .expect("a config is plain data: maps with string keys, strings, numbers");
        text.push('\n');
        text
    }

    /// The keys this runner does not know, for the log.
    pub fn unknown_keys(&self) -> Vec<&str> {
        self.unknown.keys().map(String::as_str).collect()
    }
}

fn default_version() -> u32 {
    VERSION
}

fn default_provider() -> String {
    DEFAULT_PROVIDER.to_string()
}

fn default_max_messages() -> usize {
    DEFAULT_MAX_MESSAGES
}

fn default_readonly() -> bool {
    true
}

/// `null` → the type's default.
fn falsy<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `null` or `""` → `None`.
fn falsy_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()))
}

/// `null` or `""` → [`DEFAULT_PROVIDER`]; lowercased (registry names are lower-case).
fn falsy_provider<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(falsy_text(deserializer)?.map_or_else(default_provider, |name| name.to_lowercase()))
}

/// `null` or `0` → [`DEFAULT_MAX_MESSAGES`].
fn falsy_max<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(deserializer)?
        .filter(|max| *max > 0)
        .unwrap_or(DEFAULT_MAX_MESSAGES))
}

/// `null` or `0` → version 1.
fn falsy_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(deserializer)?
        .filter(|version| *version > 0)
        .unwrap_or(1))
}

impl Serialize for Skills {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Skills::All => serializer.serialize_str("all"),
            Skills::List(names) => names.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Skills {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Text(String),
            List(Vec<String>),
        }
        match Form::deserialize(deserializer)? {
            Form::Text(text) if text == "all" => Ok(Skills::All),
            Form::Text(text) => Err(serde::de::Error::custom(format!(
                "`skills` is `{text}`: expected \"all\" or a list of names"
            ))),
            Form::List(names) => Ok(Skills::List(names)),
        }
    }
}

#[cfg(test)]
mod tests;
