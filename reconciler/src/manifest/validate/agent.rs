//! Agent documents: the agent itself, its skills, MCP servers, packages, mounts, container
//! resources and declared destinations. Part of `validate`; pure.

use std::collections::{BTreeMap, BTreeSet};

use super::{At, Checker, LOCAL_NAME, MAX_NAME_LEN, MAX_PACKAGES, normalise, text};
use agent_runner::container_config::DEFAULT_PROVIDER;
use agent_runner::providers;

use crate::containers::agent_image;
use crate::manifest::diagnostic::did_you_mean;
use crate::manifest::model::{AgentDoc, McpServerDoc, SkillsDoc, Sp};
use crate::mount_policy::{self, Refusal, Request};
use crate::resources::{Cpus, Memory, Refusal as LimitRefusal, check_pids};
use crate::state::{
    Agent, CliScope, Destination, DestinationTarget, Effort, Kind, McpServer, Mount, Network,
    Packages, Resource, Resources, Skills,
};

impl Checker<'_> {
    pub(super) fn agent(&mut self, at: At, doc: &AgentDoc) {
        let name = &doc.name.value;
        let address = format!("agent.{name}");
        self.name_rule(at, &doc.name, &address, "name");
        self.choice::<Effort>(at, doc.effort.as_ref(), &address, "effort");
        self.provider(at, doc, &address);
        if let Some(max) = &doc.max_messages_per_prompt
            && !(1..=100).contains(&max.value)
        {
            let message = format!(
                "`max_messages_per_prompt` must be 1 to 100, not {}",
                max.value
            );
            self.push(at.diag(max, &address, "max_messages_per_prompt", message));
        }
        let cli_scope: CliScope = self
            .choice(at, doc.cli_scope.as_ref(), &address, "cli_scope")
            .unwrap_or_default();
        if let Some(image) = &doc.image
            && !text::is_image_reference(&image.value)
        {
            let message = format!(
                "`image` `{}` is not a Docker image reference",
                text::shown(&image.value)
            );
            let hint = "for example `ghcr.io/me/agent:1.2` or `my-agent:latest` (lowercase name, optional tag)";
            self.push(at.diag(image, &address, "image", message).hint(hint));
        }
        if let Some(assistant_name) = &doc.assistant_name {
            self.visible(at, assistant_name, &address, "assistant_name");
        }
        let network: Network = self
            .choice(at, doc.network.as_ref(), &address, "network")
            .unwrap_or_default();
        let skills = self.skills(at, doc.skills.as_ref(), &address);
        let mcp_servers = self.mcp_servers(at, doc, &address);
        let packages = self.packages(at, doc, &address);
        let mounts = self.mounts(at, doc, &address);
        let resources = self.resources(at, doc, &address);
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
            resources,
            network,
        };
        self.add(
            at,
            &doc.name,
            Resource::Agent(agent),
            &format!("agent `{name}`"),
        );
        self.destinations(at, doc, &address);
    }

    /// The provider must be one the runner of this build has (`agent_runner`'s registry, the
    /// one list of them); an absent one means the contract's default, which must be too. Names
    /// compare as `compose` passes them on: lowercased. The registry is a fact of this build
    /// as the allowlist is of this machine, so, like the resolved mounts, it is checked only
    /// for the host (`load_for_host`: validate, plan, apply, run); `export` and `load_str`
    /// accept any provider.
    fn provider(&mut self, at: At, doc: &AgentDoc, address: &str) {
        if self.mount_policy.is_none() {
            return;
        }
        let available = providers::provider_names();
        let listed = available
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match &doc.provider {
            Some(sp) if available.contains(&sp.value.to_lowercase().as_str()) => {}
            Some(sp) => {
                let message = format!(
                    "unknown `provider` `{}`: this build has {listed}",
                    text::shown(&sp.value)
                );
                let hint = did_you_mean(&sp.value, available.iter().copied())
                    .unwrap_or_else(|| format!("set `provider:` to one of {listed}"));
                self.push(at.diag(sp, address, "provider", message).hint(hint));
            }
            None if available.contains(&DEFAULT_PROVIDER) => {}
            None => {
                let message = format!(
                    "no `provider`, and the default, `{DEFAULT_PROVIDER}`, is not in this build (it has {listed})"
                );
                let example = available.first().copied().unwrap_or("mock");
                let hint = format!(
                    "set `provider: {example}`, or install a build with the `{DEFAULT_PROVIDER}` provider"
                );
                self.push(at.diag(&doc.name, address, "provider", message).hint(hint));
            }
        }
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
                    for name in names {
                        if let Some(problem) = text::unsafe_name(name, MAX_NAME_LEN) {
                            let message = format!("skill name `{}` {problem}", text::shown(name));
                            self.push(at.diag(sp, address, "skills", message));
                        }
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
            if let Some(problem) = text::unsafe_name(name, MAX_NAME_LEN) {
                let message = format!("MCP server name `{}` {problem}", text::shown(name));
                let hint = "name it like `github` or `my-files`";
                self.push(at.diag(sp, address, &field, message).hint(hint));
            }
            self.mcp_transport(at, sp, address, &field, name);
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

    /// The values of an MCP server that can never start: a URL that is not `http(s)`, an
    /// empty command, a NUL byte (no `exec` argument or variable can hold one), and
    /// environment keys that are not variable names.
    fn mcp_transport(
        &mut self,
        at: At,
        sp: &Sp<McpServerDoc>,
        address: &str,
        field: &str,
        name: &str,
    ) {
        let server = &sp.value;
        let mut problems: Vec<(String, Option<&str>)> = Vec::new();
        if let Some(url) = &server.url
            && let Some(problem) = text::bad_url(url)
        {
            let message = format!(
                "MCP server `{name}`: `url` `{}` {problem}",
                text::shown(url)
            );
            problems.push((
                message,
                Some("remote MCP servers are reached over `https://…`"),
            ));
        }
        if server.command.as_deref() == Some("") {
            let message = format!("MCP server `{name}`: `command` must not be empty");
            problems.push((message, None));
        }
        let texts = server
            .command
            .iter()
            .chain(&server.args)
            .chain(server.env.values());
        if texts.into_iter().any(|value| value.contains('\0')) {
            let message = format!(
                "MCP server `{name}`: `command`, `args` and `env` values must not hold a NUL character"
            );
            problems.push((
                message,
                Some("a program's arguments and environment cannot hold `\\0`"),
            ));
        }
        for key in server.env.keys() {
            if !text::is_env_key(key) {
                let message = format!(
                    "MCP server `{name}`: `env` key `{}` is not a variable name",
                    text::shown(key)
                );
                let hint = "variable names are letters, digits and `_`, not starting with a digit";
                problems.push((message, Some(hint)));
            }
        }
        for (message, hint) in problems {
            let diagnostic = at.diag(sp, address, field, message);
            self.push(diagnostic.hint_opt(hint.map(str::to_string)));
        }
    }

    fn packages(&mut self, at: At, doc: &AgentDoc, address: &str) -> Packages {
        let Some(packages) = &doc.packages else {
            return Packages::default();
        };
        type Check = fn(&str) -> Result<(), String>;
        for (manager, list, check) in [
            ("apt", &packages.apt, agent_image::check_apt as Check),
            ("npm", &packages.npm, agent_image::check_npm as Check),
        ] {
            let mut seen = BTreeSet::new();
            for sp in list {
                if !seen.insert(sp.value.as_str()) {
                    let field = format!("packages.{manager}");
                    let message = format!("{manager} package `{}` is listed twice", sp.value);
                    self.push(
                        at.diag(sp, address, &field, message)
                            .hint("remove one of the two entries"),
                    );
                } else if let Err(why) = check(&sp.value) {
                    let field = format!("packages.{manager}");
                    let message = format!("invalid package `{}` in `{field}`", sp.value);
                    self.push(at.diag(sp, address, &field, message).hint(why));
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

    /// `resources`: each limit parsed and bounded by `crate::resources`; a refused one is
    /// reported where it is written and left at its default.
    fn resources(&mut self, at: At, doc: &AgentDoc, address: &str) -> Resources {
        let Some(sp) = &doc.resources else {
            return Resources::default();
        };
        let limits = &sp.value;
        Resources {
            memory: self.limit(at, limits.memory.as_ref(), address, "memory", |memory| {
                Memory::parse(&memory.to_text())
            }),
            cpus: self.limit(at, limits.cpus.as_ref(), address, "cpus", |cpus| {
                Cpus::parse(&cpus.to_text())
            }),
            pids: self.limit(at, limits.pids.as_ref(), address, "pids", |pids| {
                check_pids(*pids)
            }),
        }
    }

    /// One limit of `resources`, or `None` (absent, or refused and reported).
    fn limit<V, T>(
        &mut self,
        at: At,
        sp: Option<&Sp<V>>,
        address: &str,
        name: &str,
        parse: impl Fn(&V) -> Result<T, LimitRefusal>,
    ) -> Option<T> {
        let sp = sp?;
        match parse(&sp.value) {
            Ok(value) => Some(value),
            Err(refusal) => {
                let field = format!("resources.{name}");
                self.push(
                    at.diag(sp, address, &field, refusal.message)
                        .hint(refusal.hint),
                );
                None
            }
        }
    }

    /// The mount rules live in `mount_policy`: the text rules always, the resolved path and
    /// the allowlist when validation runs with this machine's policy.
    fn mounts(&mut self, at: At, doc: &AgentDoc, address: &str) -> Vec<Mount> {
        let mut mounts = Vec::new();
        let mut container_paths: BTreeSet<String> = BTreeSet::new();
        for (index, sp) in doc.mounts.iter().enumerate() {
            let mount = &sp.value;
            let host = &mount.host_path;
            let host_field = format!("mounts[{index}].host_path");
            let request = Request {
                host_path: &host.value,
                container_path: mount.container_path.as_ref().map(|sp| sp.value.as_str()),
                readonly: mount.readonly.unwrap_or(true),
            };
            let extra = self
                .mount_policy
                .and_then(|policy| policy.allowlist.as_ref().ok())
                .map_or(&[][..], |allowlist| &allowlist.blocked[..]);
            let text_ok = match mount_policy::check_text(&host.value, extra) {
                Ok(()) => true,
                Err(refusal) => {
                    self.refuse(at, host, address, &host_field, &refusal);
                    false
                }
            };
            let container_sp = mount.container_path.as_ref().unwrap_or(host);
            let container_field = format!("mounts[{index}].container_path");
            let container_path = match mount_policy::container_path(&request) {
                Ok(name) => {
                    if !container_paths.insert(name.clone()) {
                        let message = format!("two mounts use `container_path` `{name}`");
                        self.push(at.diag(container_sp, address, &container_field, message));
                    }
                    Some(name)
                }
                Err(refusal) => {
                    // A host path refused above has no meaningful default name.
                    if text_ok || mount.container_path.is_some() {
                        self.refuse(at, container_sp, address, &container_field, &refusal);
                    }
                    None
                }
            };
            if text_ok
                && container_path.is_some()
                && let Some(policy) = self.mount_policy
                && let Err(refusal) = policy.check(&request)
            {
                self.refuse(at, host, address, &host_field, &refusal);
            }
            mounts.push(Mount {
                host_path: host.value.clone(),
                container_path: container_path.unwrap_or_default(),
                readonly: request.readonly,
            });
        }
        mounts
    }

    fn refuse<T>(&mut self, at: At, sp: &Sp<T>, address: &str, field: &str, refusal: &Refusal) {
        let diagnostic = at.diag(sp, address, field, refusal.reason());
        self.push(diagnostic.hint(refusal.hint()));
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
}
