//! Validation: parsed documents → a resolved `State`, or every problem at once.
//!
//! Owns the manifest rules (names, references, enums, packages, mounts, duplicates) and the
//! defaults (host.md §1.2, §3.10). Pure: no IO. Every diagnostic carries the file, line and
//! column of the offending value, the resource address and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::Source;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::load::{BrokenDoc, ParsedDoc};
use super::model::{AgentDoc, ChannelDoc, Doc, RoleDoc, SkillsDoc, Sp, UserDoc};
use crate::state::{
    Address, Agent, Channel, CliScope, Destination, DestinationTarget, EngageMode,
    IgnoredMessagePolicy, Kind, McpServer, Member, Mount, Packages, Resource, Role, RoleKind,
    SenderScope, SessionMode, Skills, State, UnknownSenderPolicy, User, Wiring,
};

/// Most packages (apt + npm) one agent may list.
pub const MAX_PACKAGES: usize = 20;
/// Longest agent or channel name.
pub const MAX_NAME_LEN: usize = 64;
/// Path components that mark a credential folder or file (host.md §4.4); never mounted.
pub const BLOCKED_MOUNT_PATTERNS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".gpg",
    ".aws",
    ".azure",
    ".gcloud",
    ".kube",
    ".docker",
    "credentials",
    ".env",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "id_rsa",
    "id_ed25519",
    "private_key",
    ".secret",
];
pub const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];

static NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9][a-z0-9-]*$"));
static LOCAL_NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9]+(-[a-z0-9]+)*$"));
static CHANNEL_TYPE: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z][a-z0-9-]*$"));
static APT: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9][a-z0-9._+-]*$"));
static NPM: LazyLock<Regex> =
    LazyLock::new(|| rx(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$"));

fn rx(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant regex compiles")
}

/// The result of validation: the state and where each resource was declared.
pub struct Validated {
    pub state: State,
    pub sources: BTreeMap<Address, Source>,
}

/// Checks every document and builds the state. Never stops at the first error.
pub fn validate(
    docs: &[ParsedDoc],
    broken: &[BrokenDoc],
    diagnostics: &mut Vec<Diagnostic>,
) -> Validated {
    let mut checker = Checker {
        diagnostics,
        state: State::default(),
        sources: BTreeMap::new(),
        declared: BTreeMap::new(),
        agents: BTreeSet::new(),
        channels: BTreeSet::new(),
    };
    for doc in broken {
        match doc.kind.as_str() {
            "agent" => checker.agents.insert(doc.name.clone()),
            "channel" => checker.channels.insert(doc.name.clone()),
            _ => false,
        };
    }
    // Names first, so references can be checked in any order across files.
    for parsed in docs {
        match &parsed.doc {
            Doc::Agent(agent) => checker.agents.insert(agent.name.value.clone()),
            Doc::Channel(channel) => checker.channels.insert(channel.name.value.clone()),
            Doc::User(_) => false,
        };
    }
    for parsed in docs {
        let at = At { file: &parsed.file };
        match &parsed.doc {
            Doc::Agent(agent) => checker.agent(at, agent),
            Doc::Channel(channel) => checker.channel(at, channel),
            Doc::User(user) => checker.user(at, user),
        }
    }
    checker.implied_destinations();
    checker.unique_platform_ids();
    Validated {
        state: checker.state,
        sources: checker.sources,
    }
}

#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
}

impl At<'_> {
    fn diag<T>(&self, sp: &Sp<T>, address: &str, field: &str, message: String) -> Diagnostic {
        Diagnostic::new(self.file, sp.line, sp.col, message)
            .address(address)
            .field(field)
    }

    fn source<T>(&self, sp: &Sp<T>) -> Source {
        Source {
            file: self.file.to_path_buf(),
            line: sp.line,
            col: sp.col,
        }
    }
}

struct Checker<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    state: State,
    sources: BTreeMap<Address, Source>,
    /// Where each address was first declared, for duplicate errors.
    declared: BTreeMap<Address, (PathBuf, u32, u32)>,
    agents: BTreeSet<String>,
    channels: BTreeSet<String>,
}

impl Checker<'_> {
    fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records a resource unless its address is taken; reports a duplicate with both places.
    fn add<T>(&mut self, at: At, sp: &Sp<T>, resource: Resource, what: &str) {
        let address = resource.address();
        if let Some((file, line, col)) = self.declared.get(&address) {
            let message = format!(
                "{what} is declared twice (first at {}:{line}:{col})",
                file.display()
            );
            self.push(
                Diagnostic::new(at.file, sp.line, sp.col, message)
                    .address(address.to_string())
                    .hint("remove one of the two declarations or rename one"),
            );
            return;
        }
        self.declared
            .insert(address.clone(), (at.file.to_path_buf(), sp.line, sp.col));
        self.sources.insert(address, at.source(sp));
        self.state.insert(resource);
    }

    fn name_rule(&mut self, at: At, sp: &Sp<String>, address: &str, field: &str) {
        let name = &sp.value;
        let problem = if name.is_empty() {
            Some("must not be empty".to_string())
        } else if name.len() > MAX_NAME_LEN {
            Some(format!("is longer than {MAX_NAME_LEN} characters"))
        } else if name == "global" {
            Some("is reserved".to_string())
        } else if !NAME.is_match(name) {
            Some(
                "may only hold lowercase letters, digits and `-`, starting with a letter or digit"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            let suggestion = normalise(name);
            let diagnostic = at.diag(sp, address, field, format!("`{field}` `{name}` {problem}"));
            let diagnostic = if suggestion != *name && suggestion != "global" {
                diagnostic.hint(format!("try `{suggestion}`"))
            } else {
                diagnostic
            };
            self.push(diagnostic);
        }
    }

    /// Parses an enum-valued string, reporting the allowed values when it is not one.
    fn choice<T: Copy>(
        &mut self,
        at: At,
        sp: Option<&Sp<String>>,
        address: &str,
        field: &str,
        allowed: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(sp) = sp else { return default };
        if let Some((_, value)) = allowed.iter().find(|(text, _)| *text == sp.value) {
            return *value;
        }
        let names: Vec<&str> = allowed.iter().map(|(text, _)| *text).collect();
        let listed = names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let diagnostic = at
            .diag(
                sp,
                address,
                field,
                format!("invalid `{field}` `{}`: expected one of {listed}", sp.value),
            )
            .hint_opt(did_you_mean(&sp.value, names.iter().copied()));
        self.push(diagnostic);
        default
    }

    fn reference(&mut self, at: At, sp: &Sp<String>, address: &str, field: &str, kind: Kind) {
        let known = match kind {
            Kind::Agent => &self.agents,
            _ => &self.channels,
        };
        if known.contains(&sp.value) {
            return;
        }
        let hint = did_you_mean(&sp.value, known.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "declare it with `kind: {}` and `name: {}`",
                kind.as_str(),
                sp.value
            )
        });
        let message = format!("unknown {} `{}`", kind.as_str(), sp.value);
        self.push(at.diag(sp, address, field, message).hint(hint));
    }

    fn agent(&mut self, at: At, doc: &AgentDoc) {
        let name = &doc.name.value;
        let address = format!("agent.{name}");
        self.name_rule(at, &doc.name, &address, "name");
        if let Some(effort) = &doc.effort
            && !EFFORTS.contains(&effort.value.as_str())
        {
            let choices: Vec<(&str, ())> = EFFORTS.iter().map(|effort| (*effort, ())).collect();
            self.choice(at, Some(effort), &address, "effort", &choices, ());
        }
        if let Some(max) = &doc.max_messages_per_prompt
            && !(1..=100).contains(&max.value)
        {
            let message = format!(
                "`max_messages_per_prompt` must be 1 to 100, not {}",
                max.value
            );
            self.push(at.diag(max, &address, "max_messages_per_prompt", message));
        }
        let cli_scope = self.choice(
            at,
            doc.cli_scope.as_ref(),
            &address,
            "cli_scope",
            &[
                ("disabled", CliScope::Disabled),
                ("group", CliScope::Group),
                ("global", CliScope::Global),
            ],
            CliScope::default(),
        );
        let skills = self.skills(at, doc.skills.as_ref(), &address);
        let mcp_servers = self.mcp_servers(at, doc, &address);
        let packages = self.packages(at, doc, &address);
        let mounts = self.mounts(at, doc, &address);
        let agent = Agent {
            name: name.clone(),
            assistant_name: doc.assistant_name.as_ref().map(|sp| sp.value.clone()),
            provider: doc.provider.as_ref().map(|sp| sp.value.clone()),
            model: doc.model.as_ref().map(|sp| sp.value.clone()),
            effort: doc.effort.as_ref().map(|sp| sp.value.clone()),
            image: doc.image.as_ref().map(|sp| sp.value.clone()),
            max_messages_per_prompt: doc.max_messages_per_prompt.as_ref().map(|sp| sp.value),
            cli_scope,
            instructions: doc.instructions.as_ref().map(|sp| sp.value.clone()),
            skills,
            mcp_servers,
            packages,
            mounts,
        };
        self.add(
            at,
            &doc.name,
            Resource::Agent(agent),
            &format!("agent `{name}`"),
        );
        self.destinations(at, doc, &address);
    }

    fn skills(&mut self, at: At, skills: Option<&Sp<SkillsDoc>>, address: &str) -> Skills {
        match skills {
            None => Skills::All,
            Some(sp) => match &sp.value {
                SkillsDoc::All(text) if text == "all" => Skills::All,
                SkillsDoc::All(text) => {
                    let message =
                        format!("`skills` must be `all` or a list of names, not `{text}`");
                    self.push(
                        at.diag(sp, address, "skills", message)
                            .hint(format!("write `skills: [{text}]` for one skill")),
                    );
                    Skills::All
                }
                SkillsDoc::List(names) => {
                    if names.iter().any(|name| name.trim().is_empty()) {
                        let message = "skill names must not be empty".to_string();
                        self.push(at.diag(sp, address, "skills", message));
                    }
                    Skills::List(names.clone())
                }
            },
        }
    }

    fn mcp_servers(
        &mut self,
        at: At,
        doc: &AgentDoc,
        address: &str,
    ) -> BTreeMap<String, McpServer> {
        let mut servers = BTreeMap::new();
        for (name, sp) in &doc.mcp_servers {
            let server = &sp.value;
            let field = format!("mcp_servers.{name}");
            match (&server.command, &server.url) {
                (Some(_), Some(_)) => {
                    let message = format!("MCP server `{name}` has both `command` and `url`");
                    self.push(
                        at.diag(sp, address, &field, message)
                            .hint("keep `command` for a stdio server or `url` for a remote one"),
                    );
                }
                (None, None) => {
                    let message = format!("MCP server `{name}` needs `command` or `url`");
                    self.push(
                        at.diag(sp, address, &field, message)
                            .hint("add `command: <program>` (stdio) or `url: https://…`"),
                    );
                }
                _ => {}
            }
            if server.url.is_some() && (!server.args.is_empty() || !server.env.is_empty()) {
                let message =
                    format!("MCP server `{name}`: `args` and `env` only apply to a `command`");
                self.push(at.diag(sp, address, &field, message));
            }
            servers.insert(
                name.clone(),
                McpServer {
                    command: server.command.clone(),
                    args: server.args.clone(),
                    env: server.env.clone(),
                    url: server.url.clone(),
                    instructions: server.instructions.clone(),
                },
            );
        }
        servers
    }

    fn packages(&mut self, at: At, doc: &AgentDoc, address: &str) -> Packages {
        let Some(packages) = &doc.packages else {
            return Packages::default();
        };
        for (manager, list, rule) in [("apt", &packages.apt, &*APT), ("npm", &packages.npm, &*NPM)]
        {
            for sp in list {
                if !rule.is_match(&sp.value) {
                    let field = format!("packages.{manager}");
                    let message = format!("invalid {manager} package name `{}`", sp.value);
                    let hint = format!("{manager} names match `{}`", rule.as_str());
                    self.push(at.diag(sp, address, &field, message).hint(hint));
                }
            }
        }
        let total = packages.apt.len() + packages.npm.len();
        if total > MAX_PACKAGES {
            let first_extra = packages.apt.iter().chain(&packages.npm).nth(MAX_PACKAGES);
            if let Some(sp) = first_extra {
                let message =
                    format!("{total} packages listed; at most {MAX_PACKAGES} are allowed");
                self.push(
                    at.diag(sp, address, "packages", message)
                        .hint("bake large toolsets into your own image and set `image`"),
                );
            }
        }
        Packages {
            apt: packages.apt.iter().map(|sp| sp.value.clone()).collect(),
            npm: packages.npm.iter().map(|sp| sp.value.clone()).collect(),
        }
    }

    fn mounts(&mut self, at: At, doc: &AgentDoc, address: &str) -> Vec<Mount> {
        let mut mounts = Vec::new();
        let mut container_paths: BTreeSet<String> = BTreeSet::new();
        for (index, sp) in doc.mounts.iter().enumerate() {
            let mount = &sp.value;
            let host = &mount.host_path;
            let host_field = format!("mounts[{index}].host_path");
            if !(host.value.starts_with('/') || host.value.starts_with("~/") || host.value == "~") {
                let message = format!(
                    "`host_path` `{}` must be absolute or start with `~/`",
                    host.value
                );
                self.push(at.diag(host, address, &host_field, message));
            }
            if let Some(pattern) = blocked_pattern(&host.value) {
                let message = format!(
                    "`host_path` `{}` is blocked: it matches `{pattern}`",
                    host.value
                );
                self.push(
                    at.diag(host, address, &host_field, message)
                        .hint("credential folders and files are never mounted (host.md §4.4)"),
                );
            }
            let basename = host
                .value
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let container_path = mount
                .container_path
                .as_ref()
                .map_or(basename, |sp| sp.value.clone());
            let container_sp = mount.container_path.as_ref().unwrap_or(host);
            let container_field = format!("mounts[{index}].container_path");
            let problem = if container_path.is_empty() || container_path == "~" {
                Some("must not be empty")
            } else if container_path.starts_with('/') {
                Some("must be relative (it is placed under `/workspace/extra/`)")
            } else if container_path.split('/').any(|part| part == "..") {
                Some("must not contain `..`")
            } else if container_path.contains(':') {
                Some("must not contain `:`")
            } else {
                None
            };
            if let Some(problem) = problem {
                let message = format!("`container_path` `{container_path}` {problem}");
                self.push(at.diag(container_sp, address, &container_field, message));
            } else if !container_paths.insert(container_path.clone()) {
                let message = format!("two mounts use `container_path` `{container_path}`");
                self.push(at.diag(container_sp, address, &container_field, message));
            }
            mounts.push(Mount {
                host_path: host.value.clone(),
                container_path,
                readonly: mount.readonly.unwrap_or(true),
            });
        }
        mounts
    }

    fn destinations(&mut self, at: At, doc: &AgentDoc, agent_address: &str) {
        let agent = &doc.name.value;
        for (index, sp) in doc.destinations.iter().enumerate() {
            let destination = &sp.value;
            let local_name = &destination.name.value;
            let address = format!("destination.{agent}/{local_name}");
            let field = format!("destinations[{index}]");
            if !LOCAL_NAME.is_match(local_name) {
                let message = format!(
                    "destination name `{local_name}` may only hold lowercase letters and digits, with single `-` between them"
                );
                let diagnostic = at
                    .diag(
                        &destination.name,
                        &address,
                        &format!("{field}.name"),
                        message,
                    )
                    .hint(format!("try `{}`", normalise(local_name)));
                self.push(diagnostic);
            }
            let target = match (&destination.agent, &destination.channel) {
                (Some(target), None) => {
                    self.reference(at, target, &address, &format!("{field}.agent"), Kind::Agent);
                    DestinationTarget::Agent(target.value.clone())
                }
                (None, Some(target)) => {
                    self.reference(
                        at,
                        target,
                        &address,
                        &format!("{field}.channel"),
                        Kind::Channel,
                    );
                    DestinationTarget::Channel(target.value.clone())
                }
                _ => {
                    let message = format!(
                        "destination `{local_name}` needs exactly one of `agent` or `channel`"
                    );
                    self.push(at.diag(sp, agent_address, &field, message));
                    continue;
                }
            };
            let resource = Resource::Destination(Destination {
                agent: agent.clone(),
                local_name: local_name.clone(),
                target,
            });
            self.add(
                at,
                &destination.name,
                resource,
                &format!("destination `{local_name}` of agent `{agent}`"),
            );
        }
    }

    fn channel(&mut self, at: At, doc: &ChannelDoc) {
        let name = &doc.name.value;
        let address = format!("channel.{name}");
        self.name_rule(at, &doc.name, &address, "name");
        if !CHANNEL_TYPE.is_match(&doc.channel_type.value) {
            let message = format!(
                "`channel_type` `{}` must be lowercase letters, digits and `-`, starting with a letter",
                doc.channel_type.value
            );
            self.push(at.diag(&doc.channel_type, &address, "channel_type", message));
        }
        if doc.platform_id.value.trim().is_empty() {
            let message = "`platform_id` must not be empty".to_string();
            self.push(
                at.diag(&doc.platform_id, &address, "platform_id", message)
                    .hint("use the chat id exactly as the adapter emits it"),
            );
        }
        let unknown_sender_policy = self.choice(
            at,
            doc.unknown_sender_policy.as_ref(),
            &address,
            "unknown_sender_policy",
            &[
                ("strict", UnknownSenderPolicy::Strict),
                ("request_approval", UnknownSenderPolicy::RequestApproval),
                ("public", UnknownSenderPolicy::Public),
            ],
            UnknownSenderPolicy::default(),
        );
        let channel = Channel {
            name: name.clone(),
            channel_type: doc.channel_type.value.clone(),
            platform_id: doc.platform_id.value.clone(),
            display_name: doc.display_name.as_ref().map(|sp| sp.value.clone()),
            is_group: doc.is_group.unwrap_or(false),
            unknown_sender_policy,
        };
        self.add(
            at,
            &doc.name,
            Resource::Channel(channel),
            &format!("channel `{name}`"),
        );
        for (index, sp) in doc.wirings.iter().enumerate() {
            self.wiring(at, doc, index, sp);
        }
    }

    fn wiring(
        &mut self,
        at: At,
        channel: &ChannelDoc,
        index: usize,
        sp: &Sp<super::model::WiringDoc>,
    ) {
        let wiring = &sp.value;
        let channel_name = &channel.name.value;
        let agent = &wiring.agent.value;
        let address = format!("wiring.{channel_name}/{agent}");
        let field = |name: &str| format!("wirings[{index}].{name}");
        self.reference(at, &wiring.agent, &address, &field("agent"), Kind::Agent);
        let engage_mode = self.choice(
            at,
            wiring.engage_mode.as_ref(),
            &address,
            "engage_mode",
            &[
                ("pattern", EngageMode::Pattern),
                ("mention", EngageMode::Mention),
                ("mention-sticky", EngageMode::MentionSticky),
            ],
            EngageMode::default(),
        );
        // An unknown mode was already reported; judging the pattern against it would only
        // add a second, misleading error.
        let mode_is_valid = wiring
            .engage_mode
            .as_ref()
            .is_none_or(|mode| mode.value == engage_mode.as_str());
        match (&wiring.engage_pattern, engage_mode) {
            (None, EngageMode::Pattern) => {
                let mode = wiring.engage_mode.as_ref().unwrap_or(&wiring.agent);
                let message = "`engage_pattern` is required for `engage_mode: pattern`".to_string();
                self.push(
                    at.diag(mode, &address, &field("engage_pattern"), message)
                        .hint("use `engage_pattern: \".\"` to engage on every message"),
                );
            }
            (Some(pattern), EngageMode::Pattern) => {
                if let Err(err) = Regex::new(&pattern.value) {
                    let text = err.to_string();
                    let last = text.lines().last().unwrap_or_default().trim();
                    let reason = last.strip_prefix("error: ").unwrap_or(last);
                    let message = format!(
                        "`engage_pattern` `{}` is not a valid regex: {reason}",
                        pattern.value
                    );
                    let hint =
                        "the syntax is Rust's `regex` crate (no look-around or backreferences)";
                    self.push(
                        at.diag(pattern, &address, &field("engage_pattern"), message)
                            .hint(hint),
                    );
                }
            }
            (Some(pattern), _) if mode_is_valid => {
                let message = format!(
                    "`engage_pattern` is only allowed with `engage_mode: pattern` (this wiring uses `{}`)",
                    engage_mode.as_str()
                );
                self.push(
                    at.diag(pattern, &address, &field("engage_pattern"), message)
                        .hint("add `engage_mode: pattern` or remove `engage_pattern`"),
                );
            }
            _ => {}
        }
        let sender_scope = self.choice(
            at,
            wiring.sender_scope.as_ref(),
            &address,
            "sender_scope",
            &[("all", SenderScope::All), ("known", SenderScope::Known)],
            SenderScope::default(),
        );
        let ignored_message_policy = self.choice(
            at,
            wiring.ignored_message_policy.as_ref(),
            &address,
            "ignored_message_policy",
            &[
                ("drop", IgnoredMessagePolicy::Drop),
                ("accumulate", IgnoredMessagePolicy::Accumulate),
            ],
            IgnoredMessagePolicy::default(),
        );
        let session_mode = self.choice(
            at,
            wiring.session_mode.as_ref(),
            &address,
            "session_mode",
            &[
                ("shared", SessionMode::Shared),
                ("per-thread", SessionMode::PerThread),
                ("agent-shared", SessionMode::AgentShared),
            ],
            SessionMode::default(),
        );
        let resource = Resource::Wiring(Wiring {
            channel: channel_name.clone(),
            agent: agent.clone(),
            engage_mode,
            engage_pattern: wiring.engage_pattern.as_ref().map(|sp| sp.value.clone()),
            sender_scope,
            ignored_message_policy,
            session_mode,
            priority: wiring.priority.unwrap_or(0),
        });
        self.add(
            at,
            sp,
            resource,
            &format!("wiring of agent `{agent}` on channel `{channel_name}`"),
        );
    }

    fn user(&mut self, at: At, doc: &UserDoc) {
        let id = &doc.id.value;
        let address = format!("user.{id}");
        match id.split_once(':') {
            Some((channel, handle)) if !channel.is_empty() && !handle.is_empty() => {}
            _ => {
                let message = format!("user id `{id}` must be `<channel>:<handle>`");
                self.push(
                    at.diag(&doc.id, &address, "id", message)
                        .hint("for example `telegram:6037840640`"),
                );
            }
        }
        let user = User {
            id: id.clone(),
            display_name: doc.display_name.as_ref().map(|sp| sp.value.clone()),
        };
        self.add(at, &doc.id, Resource::User(user), &format!("user `{id}`"));
        for (index, sp) in doc.roles.iter().enumerate() {
            let field = format!("roles[{index}]");
            let (role_text, agent) = match &sp.value {
                RoleDoc::Global(role) => (role.as_str(), None),
                RoleDoc::Scoped(scoped) => (scoped.role.as_str(), scoped.agent.as_ref()),
            };
            let role = match role_text {
                "owner" => RoleKind::Owner,
                "admin" => RoleKind::Admin,
                other => {
                    let message =
                        format!("invalid role `{other}`: expected one of `owner`, `admin`");
                    self.push(
                        at.diag(sp, &address, &field, message)
                            .hint_opt(did_you_mean(other, ["owner", "admin"])),
                    );
                    continue;
                }
            };
            if let Some(agent) = agent {
                if role == RoleKind::Owner {
                    let message =
                        "`owner` is always global: it cannot be scoped to an agent".to_string();
                    self.push(at.diag(sp, &address, &field, message).hint(format!(
                        "use `{{role: admin, agent: {agent}}}` for one agent"
                    )));
                    continue;
                }
                let agent_sp = Sp {
                    value: agent.clone(),
                    line: sp.line,
                    col: sp.col,
                };
                self.reference(
                    at,
                    &agent_sp,
                    &address,
                    &format!("{field}.agent"),
                    Kind::Agent,
                );
            }
            let resource = Resource::Role(Role {
                user: id.clone(),
                role,
                agent: agent.cloned(),
            });
            self.add(
                at,
                sp,
                resource,
                &format!("role `{role_text}` of user `{id}`"),
            );
        }
        for (index, sp) in doc.member_of.iter().enumerate() {
            self.reference(
                at,
                sp,
                &address,
                &format!("member_of[{index}]"),
                Kind::Agent,
            );
            let resource = Resource::Member(Member {
                user: id.clone(),
                agent: sp.value.clone(),
            });
            self.add(
                at,
                sp,
                resource,
                &format!("membership of user `{id}` in agent `{}`", sp.value),
            );
        }
    }

    /// v2 gives every wired agent a destination for the channel (host.md §1.2): the channel's
    /// name, unless the agent already declares a destination with that local name.
    fn implied_destinations(&mut self) {
        let wirings: Vec<(String, String, Source)> = self
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::Wiring(wiring) => Some((
                    wiring.agent.clone(),
                    wiring.channel.clone(),
                    self.sources.get(address).cloned()?,
                )),
                _ => None,
            })
            .collect();
        for (agent, channel, source) in wirings {
            let destination = Destination {
                agent,
                local_name: channel.clone(),
                target: DestinationTarget::Channel(channel),
            };
            let resource = Resource::Destination(destination);
            let address = resource.address();
            if self.state.get(&address).is_none() {
                self.sources.insert(address, source);
                self.state.insert(resource);
            }
        }
    }

    /// Two channels must not claim the same chat.
    fn unique_platform_ids(&mut self) {
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        let channels: Vec<(Address, Channel)> = self
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::Channel(channel) => Some((address.clone(), channel.clone())),
                _ => None,
            })
            .collect();
        for (address, channel) in channels {
            let key = (channel.channel_type.clone(), channel.platform_id.clone());
            if let Some(first) = seen.get(&key) {
                let first_source = self
                    .sources
                    .get(&Address::new(Kind::Channel, first.clone()))
                    .cloned();
                let Some(source) = self.sources.get(&address).cloned() else {
                    continue;
                };
                let place = first_source
                    .map(|s| format!(" (at {}:{}:{})", s.file.display(), s.line, s.col))
                    .unwrap_or_default();
                let message = format!(
                    "channels `{first}` and `{}` both use {} chat `{}`{place}",
                    channel.name, channel.channel_type, channel.platform_id
                );
                self.push(
                    Diagnostic::new(&source.file, source.line, source.col, message)
                        .address(address.to_string())
                        .field("platform_id")
                        .hint("one chat is one channel: wire several agents in one channel's `wirings`"),
                );
            } else {
                seen.insert(key, channel.name.clone());
            }
        }
    }
}

/// The first blocked pattern a path component equals or contains.
fn blocked_pattern(path: &str) -> Option<&'static str> {
    path.split('/').find_map(|component| {
        BLOCKED_MOUNT_PATTERNS
            .iter()
            .find(|pattern| !component.is_empty() && component.contains(**pattern))
            .copied()
    })
}

/// v2's name normalisation (host.md §1.2): lowercase, runs of other characters → `-`, trimmed.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for char in name.to_lowercase().chars() {
        if char.is_ascii_lowercase() || char.is_ascii_digit() {
            out.push(char);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-').to_string();
    if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use crate::manifest::{load_str, render};
    use crate::state::{Address, DestinationTarget, Resource};

    /// Loads `yaml` as `m.yaml` and snapshots the diagnostics (or `ok: <n> resources`).
    #[track_caller]
    fn check(yaml: &str, expected: Expect) {
        let actual = match load_str("m.yaml", yaml) {
            Ok(manifests) => format!("ok: {} resources\n", manifests.state.len()),
            Err(diagnostics) => render(&diagnostics),
        };
        expected.assert_eq(&actual);
    }

    const AGENT: &str = "kind: agent\nname: andy\n---\n";

    #[test]
    fn defaults_fill_a_minimal_setup() {
        let yaml = format!(
            "{AGENT}kind: channel\nname: fam\nchannel_type: telegram\nplatform_id: 'telegram:1'\nwirings: [{{agent: andy}}]\n"
        );
        let manifests = load_str("m.yaml", &yaml).unwrap();
        let wiring = manifests
            .state
            .get(&Address::try_from("wiring.fam/andy".to_string()).unwrap())
            .unwrap();
        let Resource::Wiring(wiring) = wiring else {
            panic!("not a wiring")
        };
        assert_eq!(wiring.engage_mode, crate::state::EngageMode::Mention);
        assert_eq!(wiring.priority, 0);
        let implied = manifests
            .state
            .get(&Address::try_from("destination.andy/fam".to_string()).unwrap());
        assert!(
            matches!(implied, Some(Resource::Destination(d)) if d.target == DestinationTarget::Channel("fam".into()))
        );
        let source = &manifests.sources[&Address::try_from("channel.fam".to_string()).unwrap()];
        assert_eq!((source.line, source.col), (5, 7));
    }

    #[test]
    fn pattern_wiring_needs_a_regex() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{{agent: andy, engage_mode: pattern}}]\n"
            ),
            expect![[r#"
                error: m.yaml:8:38: wiring.fam/andy: `engage_pattern` is required for `engage_mode: pattern`

                hint: use `engage_pattern: "."` to engage on every message
            "#]],
        );
    }

    #[test]
    fn pattern_must_compile_and_is_only_for_pattern_mode() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings:\n  - {{agent: andy, engage_mode: pattern, engage_pattern: '(a'}}\n---\nkind: channel\nname: two\nchannel_type: cli\nplatform_id: y\nwirings:\n  - {{agent: andy, engage_pattern: 'x'}}\n"
            ),
            expect![[r#"
                error: m.yaml:9:57: wiring.fam/andy: `engage_pattern` `(a` is not a valid regex: unclosed group

                hint: the syntax is Rust's `regex` crate (no look-around or backreferences)

                error: m.yaml:16:35: wiring.two/andy: `engage_pattern` is only allowed with `engage_mode: pattern` (this wiring uses `mention`)

                hint: add `engage_mode: pattern` or remove `engage_pattern`
            "#]],
        );
    }

    #[test]
    fn dangling_references_name_the_closest_agent() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{{agent: andi}}]\n---\nkind: user\nid: 'cli:me'\nroles: [{{role: admin, agent: bob}}]\nmember_of: [andyy]\n"
            ),
            expect![[r#"
                error: m.yaml:8:19: wiring.fam/andi: unknown agent `andi`

                hint: did you mean `andy`?

                error: m.yaml:12:9: user.cli:me: unknown agent `bob`

                hint: declare it with `kind: agent` and `name: bob`

                error: m.yaml:13:13: user.cli:me: unknown agent `andyy`

                hint: did you mean `andy`?
            "#]],
        );
    }

    #[test]
    fn duplicates_name_the_first_place() {
        check(
            &format!("{AGENT}kind: agent\nname: andy\n"),
            expect![[r#"
                error: m.yaml:5:7: agent.andy: agent `andy` is declared twice (first at m.yaml:2:7)

                hint: remove one of the two declarations or rename one
            "#]],
        );
    }

    #[test]
    fn enums_list_allowed_values() {
        check(
            "kind: agent\nname: andy\ncli_scope: everything\neffort: huge\n",
            expect![[r#"
                error: m.yaml:3:12: agent.andy: invalid `cli_scope` `everything`: expected one of `disabled`, `group`, `global`

                error: m.yaml:4:9: agent.andy: invalid `effort` `huge`: expected one of `low`, `medium`, `high`, `xhigh`, `max`

                hint: did you mean `high`?
            "#]],
        );
    }

    #[test]
    fn names_packages_and_mounts_follow_the_rules() {
        check(
            "kind: agent\nname: Andy_1\npackages: {apt: ['Bad Name'], npm: ['@scope/ok', 'UPPER']}\nmounts:\n  - {host_path: ~/.ssh}\n  - {host_path: relative/dir}\n  - {host_path: /srv/data, container_path: ../up}\n",
            expect![[r#"
                error: m.yaml:2:7: agent.Andy_1: `name` `Andy_1` may only hold lowercase letters, digits and `-`, starting with a letter or digit

                hint: try `andy-1`

                error: m.yaml:3:18: agent.Andy_1: invalid apt package name `Bad Name`

                hint: apt names match `^[a-z0-9][a-z0-9._+-]*$`

                error: m.yaml:3:50: agent.Andy_1: invalid npm package name `UPPER`

                hint: npm names match `^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`

                error: m.yaml:5:17: agent.Andy_1: `host_path` `~/.ssh` is blocked: it matches `.ssh`

                hint: credential folders and files are never mounted (host.md §4.4)

                error: m.yaml:6:17: agent.Andy_1: `host_path` `relative/dir` must be absolute or start with `~/`

                error: m.yaml:7:44: agent.Andy_1: `container_path` `../up` must not contain `..`
            "#]],
        );
    }

    #[test]
    fn owner_cannot_be_scoped_and_user_ids_have_a_channel() {
        check(
            &format!(
                "{AGENT}kind: user\nid: nochannel\nroles: [{{role: owner, agent: andy}}, boss]\n"
            ),
            expect![[r#"
                error: m.yaml:5:5: user.nochannel: user id `nochannel` must be `<channel>:<handle>`

                hint: for example `telegram:6037840640`

                error: m.yaml:6:9: user.nochannel: `owner` is always global: it cannot be scoped to an agent

                hint: use `{role: admin, agent: andy}` for one agent

                error: m.yaml:6:37: user.nochannel: invalid role `boss`: expected one of `owner`, `admin`
            "#]],
        );
    }

    #[test]
    fn mcp_servers_need_exactly_one_transport() {
        check(
            "kind: agent\nname: andy\nmcp_servers:\n  both: {command: npx, url: 'https://x'}\n  none: {instructions: hi}\n",
            expect![[r#"
                error: m.yaml:4:9: agent.andy: MCP server `both` has both `command` and `url`

                hint: keep `command` for a stdio server or `url` for a remote one

                error: m.yaml:5:9: agent.andy: MCP server `none` needs `command` or `url`

                hint: add `command: <program>` (stdio) or `url: https://…`
            "#]],
        );
    }

    #[test]
    fn same_chat_twice_is_an_error() {
        check(
            "kind: channel\nname: a\nchannel_type: cli\nplatform_id: local\n---\nkind: channel\nname: b\nchannel_type: cli\nplatform_id: local\n",
            expect![[r#"
                error: m.yaml:7:7: channel.b: channels `a` and `b` both use cli chat `local` (at m.yaml:2:7)

                hint: one chat is one channel: wire several agents in one channel's `wirings`
            "#]],
        );
    }

    #[test]
    fn duplicate_destination_names_and_wirings() {
        check(
            "kind: agent\nname: andy\ndestinations: [{name: x, agent: andy}, {name: x, channel: fam}, {name: Bad Name, agent: andy}]\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: p\nwirings: [{agent: andy}, {agent: andy}]\n",
            expect![[r#"
                error: m.yaml:3:47: destination.andy/x: destination `x` of agent `andy` is declared twice (first at m.yaml:3:23)

                hint: remove one of the two declarations or rename one

                error: m.yaml:3:72: destination.andy/Bad Name: destination name `Bad Name` may only hold lowercase letters and digits, with single `-` between them

                hint: try `bad-name`

                error: m.yaml:9:26: wiring.fam/andy: wiring of agent `andy` on channel `fam` is declared twice (first at m.yaml:9:11)

                hint: remove one of the two declarations or rename one
            "#]],
        );
    }
}
