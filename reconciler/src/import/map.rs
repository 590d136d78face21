//! v2 rows → nanoclaw resources (pure): names, defaults for NULLs, the engage-mode backfill of
//! legacy wirings, and a report note for every value that does not come across unchanged.
//!
//! v2 ids (`ag-…`, `mg-…`) become manifest names: an agent group is named by its folder, a chat
//! by the local name its agents already use for it (else v2's destination base name: the chat's
//! name or `<channel type>-<first 8 characters of its id>`), both in v2's normalised form. The
//! caller supplies the mount check (this machine's allowlist) and what the group folders hold;
//! nothing here reads a file or the DB.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::report::{Report, Section};
use crate::db::v2::{AgentGroupRow, ConfigRow, MessagingGroupRow, V2, WiringRow};
use crate::manifest::limits::{MAX_NAME_LEN, MAX_PATTERN_BYTES};
use crate::manifest::validate::normalise;
use crate::mount_policy::{Reason, Refusal, Request, Resolved};
use crate::state::{
    Agent, Channel, CliScope, Destination, DestinationTarget, EngageMode, IgnoredMessagePolicy,
    McpServer, Member, Mount, Network, Packages, Resource, Resources, Role, RoleKind, SenderScope,
    SessionMode, Skills, State, UnknownSenderPolicy, User, Wiring,
};
use crate::state::{Effort, TextEnum};

/// Prefix of the per-group images v2 builds (host.md §4.13): they hold v2's runner, not ours.
pub const V2_IMAGE_PREFIX: &str = "nanoclaw-agent-v2-";

/// What an agent group's folder (`groups/<folder>/`) holds, as far as the mapping cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupFiles {
    /// `CLAUDE.local.md`: its text, or why it cannot be the agent's `instructions`.
    pub local_md: Option<Result<String, String>>,
    /// The legacy `container.json` (the source of a group without a config row), or why it
    /// cannot be read.
    pub container_json: Option<Result<Value, String>>,
}

/// v2 ids → nanoclaw names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// Agent group id → agent name.
    pub agents: BTreeMap<String, String>,
    /// Messaging group id → channel name.
    pub channels: BTreeMap<String, String>,
}

/// The mapping's inputs besides the DB rows.
pub struct Inputs<'a> {
    /// Agent group folder → what its folder holds.
    pub groups: &'a BTreeMap<String, GroupFiles>,
    /// Decides an additional mount on this machine (the mount allowlist, v2's included).
    pub check_mount: &'a dyn Fn(&Request<'_>) -> Result<Resolved, Refusal>,
    /// Provider names nanoclaw has.
    pub providers: &'a [&'a str],
}

/// The desired state for the v2 rows, the names given, and the notes.
pub fn map(v2: &V2, inputs: &Inputs<'_>) -> (State, Names, Report) {
    let mut out = Mapper {
        state: State::default(),
        names: Names::default(),
        report: Report::default(),
    };
    out.agents(v2, inputs);
    out.channels(v2);
    out.wirings(v2);
    out.users(v2);
    out.destinations(v2);
    out.implied_destinations();
    out.unmodelled(v2);
    (out.state, out.names, out.report)
}

struct Mapper {
    state: State,
    names: Names,
    report: Report,
}

impl Mapper {
    fn agents(&mut self, v2: &V2, inputs: &Inputs<'_>) {
        let mut taken = BTreeSet::new();
        let configs: BTreeMap<&str, &ConfigRow> = v2
            .configs
            .iter()
            .flatten()
            .map(|row| (row.agent_group_id.as_str(), row))
            .collect();
        for group in &v2.agent_groups {
            let folder = &group.folder;
            let name = unique(name_of(folder), &mut taken);
            let subject = format!("agent group `{}`", group.id);
            if name != *folder || group.id != name {
                self.report.note(
                    Section::Renamed,
                    &subject,
                    format!("folder `{folder}` (name `{}`) → agent `{name}`", group.name),
                );
            }
            self.names.agents.insert(group.id.clone(), name.clone());
            let files = inputs.groups.get(folder).cloned().unwrap_or_default();
            let config = match configs.get(group.id.as_str()) {
                Some(row) => (*row).clone(),
                None => self.legacy_config(&group.id, &name, folder, group, &files),
            };
            let agent = self.agent(&name, &group.name, &config, &files, inputs);
            self.state.insert(Resource::Agent(agent));
        }
    }

    /// v2's startup backfill (host.md §4.9): a group without a config row gets one from its
    /// `container.json`, with `agent_groups.agent_provider` winning over the file's provider.
    fn legacy_config(
        &mut self,
        id: &str,
        name: &str,
        folder: &str,
        group: &AgentGroupRow,
        files: &GroupFiles,
    ) -> ConfigRow {
        let subject = format!("agent `{name}`");
        let legacy = match &files.container_json {
            Some(Ok(value)) => {
                self.report.note(
                    Section::Files,
                    &subject,
                    format!("no `container_configs` row: configuration read from `groups/{folder}/container.json`, as v2's startup backfill does"),
                );
                value.clone()
            }
            Some(Err(why)) => {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!("`groups/{folder}/container.json` cannot be read ({why}): defaults used, as v2 does"),
                );
                Value::Null
            }
            None => Value::Null,
        };
        let text = |key: &str| legacy.get(key).and_then(Value::as_str).map(str::to_string);
        let json = |value: Option<&Value>| value.map(Value::to_string);
        ConfigRow {
            agent_group_id: id.to_string(),
            provider: group
                .agent_provider
                .clone()
                .filter(|provider| !provider.is_empty())
                .or_else(|| text("provider")),
            model: None,
            effort: None,
            image_tag: text("imageTag"),
            assistant_name: text("assistantName"),
            max_messages_per_prompt: legacy.get("maxMessagesPerPrompt").and_then(Value::as_i64),
            skills: json(legacy.get("skills")),
            mcp_servers: json(legacy.get("mcpServers")),
            packages_apt: json(legacy.pointer("/packages/apt")),
            packages_npm: json(legacy.pointer("/packages/npm")),
            additional_mounts: json(legacy.get("additionalMounts")),
            cli_scope: None,
        }
    }

    fn agent(
        &mut self,
        name: &str,
        group_name: &str,
        config: &ConfigRow,
        files: &GroupFiles,
        inputs: &Inputs<'_>,
    ) -> Agent {
        let subject = format!("agent `{name}`");
        let provider = config
            .provider
            .as_deref()
            .map(str::trim)
            .filter(|provider| !provider.is_empty())
            .map(str::to_lowercase);
        if let Some(provider) = &provider
            && !inputs.providers.contains(&provider.as_str())
        {
            self.report.note(
                Section::NotModelled,
                &subject,
                format!(
                    "provider `{provider}` is not one nanoclaw has ({}): kept in the manifest, but the agent cannot answer until you change it",
                    inputs.providers.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        let effort = config.effort.clone().filter(|effort| {
            let known = Effort::parse(effort).is_some();
            if !known {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!(
                        "effort `{effort}` is not one of {}: the provider's default is used",
                        Effort::NAMES.join(", ")
                    ),
                );
            }
            known
        });
        let max_messages_per_prompt = config.max_messages_per_prompt.and_then(|max| {
            let fits = u32::try_from(max).ok().filter(|max| (1..=100).contains(max));
            if fits.is_none() {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!("max_messages_per_prompt {max} is outside 1 to 100: the default (10) is used"),
                );
            }
            fits
        });
        let image = config.image_tag.clone().filter(|tag| {
            let is_v2_image = tag.starts_with(V2_IMAGE_PREFIX);
            if is_v2_image {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!("image `{tag}` is v2's own build of this agent (v2's runner inside): nanoclaw builds its packages into its own image"),
                );
            }
            !tag.trim().is_empty() && !is_v2_image
        });
        // v2 answers as the configured name, else as the group's name (host.md §4.8).
        let assistant = config
            .assistant_name
            .clone()
            .unwrap_or_else(|| group_name.to_string());
        let assistant_name = (assistant != name).then_some(assistant);
        if config.assistant_name.is_some() && group_name != name {
            self.report.note(
                Section::NotModelled,
                &subject,
                format!("v2 display name `{group_name}`: nanoclaw names an agent by its folder"),
            );
        }
        let cli_scope = match config.cli_scope.as_deref() {
            None => CliScope::Group,
            Some(text) => parse_enum(text).unwrap_or_else(|| {
                self.report.note(
                    Section::Changed,
                    &subject,
                    format!("cli_scope `{text}` is unknown: `group` used (v2's default)"),
                );
                CliScope::Group
            }),
        };
        let instructions = match &files.local_md {
            Some(Ok(text)) if !text.trim().is_empty() => Some(text.clone()),
            Some(Err(why)) => {
                self.report.note(
                    Section::Files,
                    &subject,
                    format!("`CLAUDE.local.md` is not used as `instructions`: {why}"),
                );
                None
            }
            _ => None,
        };
        Agent {
            name: name.to_string(),
            assistant_name,
            provider,
            model: config
                .model
                .clone()
                .filter(|model| !model.trim().is_empty()),
            effort,
            image,
            max_messages_per_prompt,
            cli_scope,
            instructions,
            skills: self.skills(&subject, config.skills.as_deref()),
            mcp_servers: self.mcp_servers(&subject, config.mcp_servers.as_deref()),
            packages: Packages {
                apt: self.strings(&subject, "packages_apt", config.packages_apt.as_deref()),
                npm: self.strings(&subject, "packages_npm", config.packages_npm.as_deref()),
            },
            mounts: self.mounts(&subject, config.additional_mounts.as_deref(), inputs),
            resources: Resources::default(),
            network: Network::default(),
        }
    }

    fn json(&mut self, subject: &str, column: &str, text: Option<&str>) -> Option<Value> {
        let text = text?;
        match serde_json::from_str(text) {
            Ok(value) => Some(value),
            Err(err) => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("`{column}` is not JSON ({err}): left at its default"),
                );
                None
            }
        }
    }

    fn skills(&mut self, subject: &str, text: Option<&str>) -> Skills {
        match self.json(subject, "skills", text) {
            None => Skills::All,
            Some(Value::String(all)) if all == "all" => Skills::All,
            Some(Value::Array(items)) => Skills::List(
                items
                    .iter()
                    .filter_map(|item| self.string_item(subject, "skills", item))
                    .collect(),
            ),
            Some(other) => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("skills `{other}` is neither `\"all\"` nor a list: `all` used"),
                );
                Skills::All
            }
        }
    }

    fn strings(&mut self, subject: &str, column: &str, text: Option<&str>) -> Vec<String> {
        match self.json(subject, column, text) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| self.string_item(subject, column, item))
                .collect(),
            Some(other) => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("`{column}` `{other}` is not a list"),
                );
                Vec::new()
            }
        }
    }

    fn string_item(&mut self, subject: &str, column: &str, item: &Value) -> Option<String> {
        match item {
            Value::String(text) => Some(text.clone()),
            other => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("`{column}` entry `{other}` is not a string"),
                );
                None
            }
        }
    }

    /// v2's MCP servers: `{command, args?, env?, instructions?}` by name.
    fn mcp_servers(&mut self, subject: &str, text: Option<&str>) -> BTreeMap<String, McpServer> {
        let mut servers = BTreeMap::new();
        let entries = match self.json(subject, "mcp_servers", text) {
            None => return servers,
            Some(Value::Object(entries)) => entries,
            Some(other) => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("`mcp_servers` `{other}` is not a map of servers"),
                );
                return servers;
            }
        };
        for (name, entry) in entries {
            let what = format!("MCP server `{name}`");
            let Value::Object(fields) = entry else {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("{what} is not an object"),
                );
                continue;
            };
            let text = |key: &str| fields.get(key).and_then(Value::as_str).map(str::to_string);
            let args: Option<Vec<String>> = match fields.get("args") {
                None | Some(Value::Null) => Some(Vec::new()),
                Some(value) => serde_json::from_value(value.clone()).ok(),
            };
            let env: Option<BTreeMap<String, String>> = match fields.get("env") {
                None | Some(Value::Null) => Some(BTreeMap::new()),
                Some(value) => serde_json::from_value(value.clone()).ok(),
            };
            let (Some(args), Some(env)) = (args, env) else {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("{what}: `args` must be a list of strings and `env` a map of strings"),
                );
                continue;
            };
            let known = ["command", "args", "env", "instructions", "url"];
            let extra: Vec<&String> = fields
                .keys()
                .filter(|key| !known.contains(&key.as_str()))
                .collect();
            if !extra.is_empty() {
                self.report.note(
                    Section::NotModelled,
                    subject,
                    format!(
                        "{what}: {} not imported",
                        extra
                            .iter()
                            .map(|key| format!("`{key}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            servers.insert(
                name.clone(),
                McpServer {
                    command: text("command"),
                    args,
                    env,
                    url: text("url"),
                    instructions: text("instructions"),
                },
            );
        }
        servers
    }

    /// Each additional mount is decided by this machine's mount policy (v2's allowlist
    /// included). A read-write mount whose root does not allow read-write was read-only in v2
    /// too (host.md §4.4), so it comes across read-only; any other refusal leaves it out.
    fn mounts(&mut self, subject: &str, text: Option<&str>, inputs: &Inputs<'_>) -> Vec<Mount> {
        let entries = match self.json(subject, "additional_mounts", text) {
            None => return Vec::new(),
            Some(Value::Array(entries)) => entries,
            Some(other) => {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("`additional_mounts` `{other}` is not a list"),
                );
                return Vec::new();
            }
        };
        let mut mounts = Vec::new();
        for entry in entries {
            let Some(host_path) = entry.get("hostPath").and_then(Value::as_str) else {
                self.report.note(
                    Section::Dropped,
                    subject,
                    format!("additional mount `{entry}` has no `hostPath`"),
                );
                continue;
            };
            let container_path = entry
                .get("containerPath")
                .and_then(Value::as_str)
                .filter(|path| !path.is_empty());
            let readonly = entry.get("readonly").and_then(Value::as_bool) != Some(false);
            let request = Request {
                host_path,
                container_path,
                readonly,
            };
            let decided = match (inputs.check_mount)(&request) {
                Err(refusal)
                    if !readonly
                        && matches!(refusal.reason, Reason::ReadWriteNotAllowed { .. }) =>
                {
                    let read_only = Request {
                        readonly: true,
                        ..request.clone()
                    };
                    (inputs.check_mount)(&read_only).inspect(|_| {
                        self.report.note(
                            Section::Changed,
                            subject,
                            format!("mount `{host_path}` is read-only: its allowed root does not allow read-write, so v2 mounted it read-only too"),
                        );
                    })
                }
                other => other,
            };
            match decided {
                Ok(resolved) => mounts.push(Mount {
                    host_path: host_path.to_string(),
                    container_path: resolved.container,
                    readonly: resolved.readonly,
                }),
                Err(refusal) => self.report.note(
                    Section::Dropped,
                    subject,
                    format!(
                        "mount `{host_path}` is refused on this machine: {}; {}",
                        refusal.reason(),
                        refusal.hint()
                    ),
                ),
            }
        }
        mounts
    }

    fn channels(&mut self, v2: &V2) {
        // The local name the agents already use for each chat (the most used one).
        let mut used: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
        for row in v2.destinations.iter().flatten() {
            if row.target_type == "channel" {
                *used
                    .entry(row.target_id.as_str())
                    .or_default()
                    .entry(row.local_name.as_str())
                    .or_default() += 1;
            }
        }
        let mut candidates: Vec<(String, &MessagingGroupRow)> = v2
            .messaging_groups
            .iter()
            .map(|row| {
                let from_destinations = used.get(row.id.as_str()).and_then(|names| {
                    names
                        .iter()
                        .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
                        .map(|(name, _)| name.to_string())
                });
                let base = from_destinations.unwrap_or_else(|| match &row.name {
                    Some(name) if !name.trim().is_empty() => name.clone(),
                    _ => format!(
                        "{}-{}",
                        row.channel_type,
                        row.id.chars().take(8).collect::<String>()
                    ),
                });
                (name_of(&base), row)
            })
            .collect();
        // Chats whose name is already in normal form choose first, as v2's suffixes do.
        candidates.sort_by(|(a, left), (b, right)| (a, &left.id).cmp(&(b, &right.id)));
        let mut taken = BTreeSet::new();
        for (base, row) in candidates {
            let name = unique(base, &mut taken);
            let subject = format!("messaging group `{}`", row.id);
            self.report.note(
                Section::Renamed,
                &subject,
                format!(
                    "{} chat `{}`{} → channel `{name}`",
                    row.channel_type,
                    row.platform_id,
                    row.name
                        .as_ref()
                        .map(|n| format!(" (`{n}`)"))
                        .unwrap_or_default()
                ),
            );
            self.names.channels.insert(row.id.clone(), name.clone());
            let channel_subject = format!("channel `{name}`");
            let unknown_sender_policy = match row.unknown_sender_policy.as_deref() {
                None => UnknownSenderPolicy::Strict,
                Some(text) => parse_enum(text).unwrap_or_else(|| {
                    self.report.note(
                        Section::Changed,
                        &channel_subject,
                        format!("unknown_sender_policy `{text}` is unknown: `strict` used"),
                    );
                    UnknownSenderPolicy::Strict
                }),
            };
            if let Some(denied_at) = &row.denied_at {
                self.report.note(
                    Section::NotModelled,
                    &channel_subject,
                    format!("its registration was denied at {denied_at}: nanoclaw keeps no denial, so the chat is imported unwired"),
                );
            }
            self.state.insert(Resource::Channel(Channel {
                name,
                channel_type: row.channel_type.clone(),
                platform_id: row.platform_id.clone(),
                display_name: row.name.clone(),
                is_group: row.is_group.unwrap_or(0) != 0,
                unknown_sender_policy,
            }));
        }
    }

    fn wirings(&mut self, v2: &V2) {
        for row in &v2.wirings {
            let (Some(agent), Some(channel)) = (
                self.names.agents.get(&row.agent_group_id).cloned(),
                self.names.channels.get(&row.messaging_group_id).cloned(),
            ) else {
                self.report.note(
                    Section::Dropped,
                    format!("wiring `{}`", row.id),
                    format!(
                        "it wires agent group `{}` to messaging group `{}`, and one of them does not exist",
                        row.agent_group_id, row.messaging_group_id
                    ),
                );
                continue;
            };
            let subject = format!("wiring `{channel}/{agent}`");
            let wiring = self.wiring(row, channel, agent, &subject);
            self.state.insert(Resource::Wiring(wiring));
        }
    }

    fn wiring(&mut self, row: &WiringRow, channel: String, agent: String, subject: &str) -> Wiring {
        let engage = match &row.legacy {
            Some((trigger_rules, response_scope)) => {
                let engage = legacy_engage(trigger_rules.as_deref(), response_scope.as_deref());
                self.report.note(
                    Section::Changed,
                    subject,
                    format!(
                        "a wiring from before engage modes (trigger_rules {}, response_scope {}): engage_mode `{}`{}, sender_scope `{}`, as v2's migration 10 sets them",
                        trigger_rules.as_deref().map(|t| format!("`{t}`")).unwrap_or_else(|| "NULL".into()),
                        response_scope.as_deref().map(|t| format!("`{t}`")).unwrap_or_else(|| "NULL".into()),
                        engage.mode,
                        engage.pattern.as_deref().map(|p| format!(" `{p}`")).unwrap_or_default(),
                        engage.sender_scope,
                    ),
                );
                engage
            }
            None => Engage {
                mode: row.engage_mode.clone().unwrap_or_default(),
                pattern: row.engage_pattern.clone(),
                sender_scope: row.sender_scope.clone().unwrap_or_default(),
                ignored: row.ignored_message_policy.clone().unwrap_or_default(),
            },
        };
        let mut engage_mode = match parse_enum::<EngageMode>(&engage.mode) {
            Some(mode) => mode,
            None => {
                let shown = if engage.mode.is_empty() {
                    "NULL".to_string()
                } else {
                    format!("`{}`", engage.mode)
                };
                self.report.note(
                    Section::Changed,
                    subject,
                    format!("engage_mode {shown} is not a mode (v2 never engages such a wiring): `mention` used, the documented default"),
                );
                EngageMode::Mention
            }
        };
        let mut engage_pattern = None;
        if engage_mode == EngageMode::Pattern {
            // v2 reads a missing pattern as `.` (every message).
            let pattern = engage
                .pattern
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| ".".into());
            let problem = if pattern.len() > MAX_PATTERN_BYTES {
                Some(format!("is longer than {MAX_PATTERN_BYTES} bytes"))
            } else {
                crate::state::engage_regex(&pattern).err().map(|err| {
                    format!(
                        "does not compile here ({})",
                        err.to_string().lines().last().unwrap_or_default().trim()
                    )
                })
            };
            match problem {
                None => engage_pattern = Some(pattern),
                Some(problem) => {
                    self.report.note(
                        Section::Changed,
                        subject,
                        format!("engage_pattern `{pattern}` (a JavaScript regex) {problem}: `mention` used instead; write an equivalent Rust regex and set `engage_mode: pattern`"),
                    );
                    engage_mode = EngageMode::Mention;
                }
            }
        } else if let Some(pattern) = &engage.pattern {
            self.report.note(
                Section::Dropped,
                subject,
                format!(
                    "engage_pattern `{pattern}` with engage_mode `{}`: v2 ignores it",
                    engage_mode.as_str()
                ),
            );
        }
        let sender_scope = if engage.sender_scope.is_empty() {
            self.report.note(
                Section::Changed,
                subject,
                "sender_scope is NULL, which v2 treats like `known`: `known` used",
            );
            SenderScope::Known
        } else {
            parse_enum(&engage.sender_scope).unwrap_or_else(|| {
                self.report.note(
                    Section::Changed,
                    subject,
                    format!(
                        "sender_scope `{}` is unknown, which v2 treats like `known`: `known` used",
                        engage.sender_scope
                    ),
                );
                SenderScope::Known
            })
        };
        let ignored_message_policy = if engage.ignored.is_empty() {
            IgnoredMessagePolicy::Drop
        } else {
            parse_enum(&engage.ignored).unwrap_or_else(|| {
                self.report.note(
                    Section::Changed,
                    subject,
                    format!(
                        "ignored_message_policy `{}` is unknown (v2 drops): `drop` used",
                        engage.ignored
                    ),
                );
                IgnoredMessagePolicy::Drop
            })
        };
        let session_mode = match row.session_mode.as_deref() {
            None => SessionMode::Shared,
            Some(text) => parse_enum(text).unwrap_or_else(|| {
                self.report.note(
                    Section::Changed,
                    subject,
                    format!("session_mode `{text}` is unknown: `shared` used (v2's default)"),
                );
                SessionMode::Shared
            }),
        };
        Wiring {
            channel,
            agent,
            engage_mode,
            engage_pattern,
            sender_scope,
            ignored_message_policy,
            session_mode,
            priority: row.priority.unwrap_or(0),
        }
    }

    fn users(&mut self, v2: &V2) {
        let mut users = BTreeSet::new();
        for row in &v2.users {
            let subject = format!("user `{}`", row.id);
            let Some((kind, handle)) = row.id.split_once(':') else {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    "the id is not `<channel>:<handle>`, which nanoclaw needs; its roles and memberships are left out too",
                );
                continue;
            };
            if kind.is_empty() || handle.is_empty() || row.id.trim() != row.id {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    "the id is not `<channel>:<handle>` with both parts non-empty; its roles and memberships are left out too",
                );
                continue;
            }
            if row.kind != kind {
                self.report.note(
                    Section::NotModelled,
                    &subject,
                    format!(
                        "kind `{}`: nanoclaw takes a user's channel from the id (`{kind}`)",
                        row.kind
                    ),
                );
            }
            users.insert(row.id.clone());
            self.state.insert(Resource::User(User {
                id: row.id.clone(),
                display_name: row.display_name.clone(),
            }));
        }
        let mut granted_by = 0;
        for row in &v2.roles {
            let subject = format!("role `{}` of user `{}`", row.role, row.user_id);
            if !users.contains(&row.user_id) {
                self.report
                    .note(Section::Dropped, &subject, "its user is not imported");
                continue;
            }
            let Some(role) = parse_enum::<RoleKind>(&row.role) else {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    "not a role (`owner` or `admin`)",
                );
                continue;
            };
            let agent = match &row.agent_group_id {
                None => None,
                Some(id) => match self.names.agents.get(id) {
                    Some(name) => Some(name.clone()),
                    None => {
                        self.report.note(
                            Section::Dropped,
                            &subject,
                            format!("its agent group `{id}` does not exist"),
                        );
                        continue;
                    }
                },
            };
            if role == RoleKind::Owner && agent.is_some() {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    "an owner scoped to one agent group, which v2 never counts (owners are global)",
                );
                continue;
            }
            granted_by += usize::from(row.granted_by.is_some());
            self.state.insert(Resource::Role(Role {
                user: row.user_id.clone(),
                role,
                agent,
            }));
        }
        let mut added_by = 0;
        for row in &v2.members {
            let subject = format!("membership of user `{}`", row.user_id);
            let Some(agent) = self.names.agents.get(&row.agent_group_id).cloned() else {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!("its agent group `{}` does not exist", row.agent_group_id),
                );
                continue;
            };
            if !users.contains(&row.user_id) {
                self.report
                    .note(Section::Dropped, &subject, "its user is not imported");
                continue;
            }
            added_by += usize::from(row.added_by.is_some());
            self.state.insert(Resource::Member(Member {
                user: row.user_id.clone(),
                agent,
            }));
        }
        if granted_by + added_by > 0 {
            self.report.note(
                Section::NotModelled,
                "roles and memberships",
                format!("who granted them (`granted_by` on {granted_by} roles, `added_by` on {added_by} memberships) is not kept"),
            );
        }
    }

    fn destinations(&mut self, v2: &V2) {
        let Some(rows) = &v2.destinations else {
            return;
        };
        for row in rows {
            let subject = format!(
                "destination `{}` of agent group `{}`",
                row.local_name, row.agent_group_id
            );
            let Some(agent) = self.names.agents.get(&row.agent_group_id).cloned() else {
                self.report
                    .note(Section::Dropped, &subject, "its agent group does not exist");
                continue;
            };
            let target = match row.target_type.as_str() {
                "agent" => self
                    .names
                    .agents
                    .get(&row.target_id)
                    .cloned()
                    .map(DestinationTarget::Agent),
                "channel" => self
                    .names
                    .channels
                    .get(&row.target_id)
                    .cloned()
                    .map(DestinationTarget::Channel),
                other => {
                    self.report.note(
                        Section::Dropped,
                        &subject,
                        format!("target type `{other}` is neither `agent` nor `channel`"),
                    );
                    continue;
                }
            };
            let Some(target) = target else {
                self.report.note(
                    Section::Dropped,
                    &subject,
                    format!(
                        "its target {} `{}` does not exist (v2 skips it too)",
                        row.target_type, row.target_id
                    ),
                );
                continue;
            };
            let mut local_name = normalise(&row.local_name);
            if local_name != row.local_name {
                self.report.note(
                    Section::Renamed,
                    &subject,
                    format!("local name → `{local_name}` (v2's normalised form)"),
                );
            }
            let mut suffix = 1;
            while self
                .state
                .get(
                    &Resource::Destination(Destination {
                        agent: agent.clone(),
                        local_name: local_name.clone(),
                        target: target.clone(),
                    })
                    .address(),
                )
                .is_some()
            {
                suffix += 1;
                local_name = format!("{}-{suffix}", normalise(&row.local_name));
            }
            self.state.insert(Resource::Destination(Destination {
                agent,
                local_name,
                target,
            }));
        }
    }

    /// nanoclaw gives every wired agent a destination for the chat, named like the channel,
    /// unless the agent already has one of that name (docs/manifests.md); v2 only does when a
    /// setup flow made the wiring. The state carries them so it equals what loading gives.
    fn implied_destinations(&mut self) {
        let wirings: Vec<(String, String)> = self
            .state
            .resources
            .values()
            .filter_map(|resource| match resource {
                Resource::Wiring(wiring) => Some((wiring.agent.clone(), wiring.channel.clone())),
                _ => None,
            })
            .collect();
        for (agent, channel) in wirings {
            let destination = Destination {
                agent: agent.clone(),
                local_name: channel.clone(),
                target: DestinationTarget::Channel(channel.clone()),
            };
            let resource = Resource::Destination(destination);
            if self.state.get(&resource.address()).is_none() {
                let already = self.state.resources.values().any(|other| matches!(other,
                    Resource::Destination(d) if d.agent == agent && d.target == DestinationTarget::Channel(channel.clone())));
                self.report.note(
                    Section::Added,
                    format!("agent `{agent}`"),
                    if already {
                        format!("destination `{channel}` for its wired channel `{channel}` (it also keeps its v2 name for the chat)")
                    } else {
                        format!("destination `{channel}` for its wired channel `{channel}`: v2 had none, so the agent could only reply there")
                    },
                );
                self.state.insert(resource);
            }
        }
    }

    fn unmodelled(&mut self, v2: &V2) {
        for (table, rows) in &v2.unmodelled {
            let what = match table.as_str() {
                "pending_questions" => "open questions the agents asked",
                "pending_approvals" => "approval requests",
                "pending_sender_approvals" => "unknown senders waiting for approval",
                "pending_channel_approvals" => "chats waiting for registration",
                "unregistered_senders" => "the dropped-messages audit",
                "user_dms" => "the cached direct-message chats",
                _ => "Chat SDK adapter state",
            };
            self.report.note(
                Section::NotModelled,
                format!("table `{table}`"),
                format!("{rows} rows ({what}) are not imported"),
            );
        }
        let providers: BTreeSet<&str> = v2
            .sessions
            .iter()
            .filter_map(|session| session.agent_provider.as_deref())
            .collect();
        if !providers.is_empty() {
            self.report.note(
                Section::NotModelled,
                "sessions",
                format!(
                    "per-session provider overrides ({}) are not kept: in v2 they only changed the host's contribution, not the agent's provider",
                    providers.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
}

/// One wiring's engage settings as text (empty = NULL).
struct Engage {
    mode: String,
    pattern: Option<String>,
    sender_scope: String,
    ignored: String,
}

/// v2's migration 10 backfill of a pre-engage-mode wiring (host.md §1.1): a non-empty
/// `trigger_rules.pattern` → `pattern` with it; else `requiresTrigger: false` or
/// `response_scope = 'all'` → `pattern` `.`; else `mention`. `known` senders iff the scope was
/// `allowlisted`; ignored messages dropped. Unparsable JSON counts as `{}`.
fn legacy_engage(trigger_rules: Option<&str>, response_scope: Option<&str>) -> Engage {
    let rules: Value = trigger_rules
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let pattern = rules
        .get("pattern")
        .and_then(Value::as_str)
        .filter(|pattern| !pattern.is_empty());
    let always =
        rules.get("requiresTrigger") == Some(&Value::Bool(false)) || response_scope == Some("all");
    let (mode, pattern) = match (pattern, always) {
        (Some(pattern), _) => ("pattern", Some(pattern.to_string())),
        (None, true) => ("pattern", Some(".".to_string())),
        (None, false) => ("mention", None),
    };
    Engage {
        mode: mode.to_string(),
        pattern,
        sender_scope: if response_scope == Some("allowlisted") {
            "known"
        } else {
            "all"
        }
        .to_string(),
        ignored: "drop".to_string(),
    }
}

/// A manifest name for a v2 folder or chat name: itself when already in v2's normal form,
/// else normalised; at most [`MAX_NAME_LEN`] characters and never the reserved `global`.
pub fn name_of(text: &str) -> String {
    let mut name = normalise(text);
    if name.len() > MAX_NAME_LEN {
        name.truncate(MAX_NAME_LEN);
        name = name.trim_end_matches('-').to_string();
    }
    if name == "global" {
        name = "global-agent".to_string();
    }
    name
}

/// `base`, or `base-2`, `base-3`, … when taken (kept within [`MAX_NAME_LEN`]).
fn unique(base: String, taken: &mut BTreeSet<String>) -> String {
    let mut name = base.clone();
    let mut suffix = 1;
    while taken.contains(&name) {
        suffix += 1;
        let tail = format!("-{suffix}");
        let mut head = base.clone();
        head.truncate(MAX_NAME_LEN - tail.len());
        name = format!("{}{tail}", head.trim_end_matches('-'));
    }
    taken.insert(name.clone());
    name
}

#[cfg(test)]
mod tests;

/// One of v2's enum texts as nanoclaw's value (`None`: not one nanoclaw has).
fn parse_enum<T: TextEnum>(text: &str) -> Option<T> {
    T::parse(text)
}
