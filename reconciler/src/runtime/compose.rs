//! Composing a session's container, as a pure function (docs/runtime.md#the-message-path): from the
//! session and the agent's typed configuration, everything a container needs, decided without
//! touching a file, the DB or Docker.
//!
//! [`compose`] returns a [`Composed`]: the `container.json` ([`ContainerConfig`]), the
//! instruction files' contents (`CLAUDE.md`, the shared base, its module, skill and MCP
//! fragments, Claude Code's settings, the selected skills, the `CLAUDE.local.md` seed:
//! [`instructions`]), and the [`SpawnSpec`] `containers` starts (image, mounts, env, resources,
//! network; for Claude the agent's state folder and skills, for every provider that calls the
//! API the credential proxy's socket folder) labelled
//! with the hash of all of it. "Is this running container current?" is [`is_current`]: the
//! container's hash label against a fresh composition, no IO. The impure half (reading the
//! agent, resolving mounts on the host, writing the files, starting the container) is
//! `session::prepare` and the waker.

use std::collections::BTreeMap;

use agent_runner::container_config::{
    self, AdditionalMount, ContainerConfig, McpServer, Packages, Skills,
};
use sha2::{Digest, Sha256};

pub use super::instructions::{self, FRAGMENTS_DIR, Instructions};
use crate::containers::{AgentImages, MountSpec, SpawnSpec};
use crate::credentials::proxy;
use crate::db::sessions::Session;
use crate::mount_policy::Resolved;
use crate::paths::Paths;
use crate::state::{self, Agent};

/// Where the agent's Claude Code state folder (`sessions/<agent>/.claude-shared/`: sessions,
/// transcripts for `--resume`) is mounted read-write: the Claude provider's `CLAUDE_CONFIG_DIR`.
pub use agent_runner::providers::claude::DEFAULT_CONFIG_DIR as CLAUDE_STATE_DIR;

/// Where the agent's selected skills are mounted read-only: Claude Code's user skills,
/// `skills/` in its state folder.
pub fn claude_skills_dir() -> String {
    format!("{CLAUDE_STATE_DIR}/skills")
}
/// The agent's Claude state folder in `sessions/<agent>/` (agent-writable).
pub const CLAUDE_STATE_FOLDER: &str = ".claude-shared";
/// The agent's selected skills in `sessions/<agent>/` (host-owned).
pub const SKILLS_FOLDER: &str = "skills";

/// Everything one session's container needs, decided.
#[derive(Clone, Debug)]
pub struct Composed {
    /// What `containers` starts; `config_hash` covers everything below and in it.
    pub spec: SpawnSpec,
    /// `container.json`, written into the session folder.
    pub config: ContainerConfig,
    /// The instruction files, settings and skills.
    pub instructions: Instructions,
}

/// The facts [`compose`] needs besides the session and the agent. Gathering them may take IO
/// (the mounts are resolved on the host); composing does not.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Where the install keeps session and agent folders (paths only; nothing is opened).
    pub paths: &'a Paths,
    /// The images of this run, for an agent without its own.
    pub images: &'a AgentImages,
    /// The agent's additional mounts as the mount policy resolved them for this spawn.
    pub mounts: &'a [Resolved],
    /// Extra environment for the container (provider contributions).
    pub env: &'a [(String, String)],
    /// The session's provider, resolved ([`crate::provider::resolve`]): it goes into
    /// `container.json`, picks the image, and says whether the container gets the credential
    /// proxy.
    pub provider: &'a str,
}

/// Composes the session's container (pure).
pub fn compose(session: &Session, agent: &Agent, inputs: &Inputs<'_>) -> Composed {
    let config = container_config(agent, inputs.provider);
    let instructions = instructions::compose(agent);
    // A per-agent image (its packages, built `FROM` its own `image` when it names one) wins.
    let image = match inputs.images.per_agent.get(&agent.name) {
        Some(tag) => tag.clone(),
        None => agent
            .image
            .clone()
            .filter(|tag| !tag.is_empty())
            .unwrap_or_else(|| inputs.images.for_provider(inputs.provider).to_string()),
    };
    let credentials = crate::provider::needs_credentials(inputs.provider);
    let mut system_mounts = Vec::new();
    if crate::provider::runs_claude_code(inputs.provider) {
        let agent_state = inputs.paths.sessions().join(&session.agent);
        system_mounts.push(MountSpec {
            host: agent_state.join(CLAUDE_STATE_FOLDER),
            container: CLAUDE_STATE_DIR.to_string(),
            readonly: false,
        });
        system_mounts.push(MountSpec {
            host: agent_state.join(SKILLS_FOLDER),
            container: claude_skills_dir(),
            readonly: true,
        });
    }
    if credentials {
        // The folder, not the socket: a socket replaced by a restarted daemon stays reachable.
        system_mounts.push(MountSpec {
            host: proxy::socket_dir(&inputs.paths.data),
            container: proxy::CONTAINER_SOCKET_DIR.to_string(),
            readonly: true,
        });
    }
    let mut spec = SpawnSpec {
        session_id: session.id.clone(),
        agent: session.agent.clone(),
        session_dir: inputs.paths.session(&session.agent, &session.id),
        group_dir: inputs.paths.group(&session.agent),
        image,
        system_mounts,
        extra_mounts: inputs
            .mounts
            .iter()
            .map(|mount| MountSpec {
                host: mount.host.clone(),
                container: mount.container.clone(),
                readonly: mount.readonly,
            })
            .collect(),
        env: inputs.env.to_vec(),
        config_hash: String::new(),
        credentials,
        resources: agent.resources,
        network: agent.network,
    };
    spec.config_hash = config_hash(&spec, &config, &instructions);
    Composed {
        spec,
        config,
        instructions,
    }
}

/// Whether a running container labelled with `label` (`nanoclaw.config-hash`) runs what
/// `composed` describes. Pure: a comparison of two strings.
pub fn is_current(label: Option<&str>, composed: &Composed) -> bool {
    label == Some(composed.spec.config_hash.as_str())
}

/// `container.json` for an agent running `provider` (resolved: the session's, the group's or
/// the agent's, docs/agent-runner.md#containerjson): every field of the agent the runner or its
/// provider may use; `cli_scope` stays host-side. Unset fields take the contract's defaults.
pub fn container_config(agent: &Agent, provider: &str) -> ContainerConfig {
    ContainerConfig {
        version: container_config::VERSION,
        provider: provider.to_string(),
        group_name: agent.name.clone(),
        agent_group_id: agent.name.clone(),
        assistant_name: Some(
            agent
                .assistant_name
                .clone()
                .unwrap_or_else(|| agent.name.clone()),
        ),
        max_messages_per_prompt: agent
            .max_messages_per_prompt
            .map_or(container_config::DEFAULT_MAX_MESSAGES, |max| {
                usize::try_from(max).unwrap_or(container_config::DEFAULT_MAX_MESSAGES)
            }),
        model: agent.model.clone(),
        effort: agent.effort.clone(),
        mcp_servers: agent
            .mcp_servers
            .iter()
            .map(|(name, server)| (name.clone(), mcp_server(server)))
            .collect(),
        packages: Packages {
            apt: agent.packages.apt.clone(),
            npm: agent.packages.npm.clone(),
        },
        image_tag: agent.image.clone(),
        additional_mounts: agent
            .mounts
            .iter()
            .map(|mount| AdditionalMount {
                host_path: mount.host_path.clone(),
                container_path: mount.container_path.clone(),
                readonly: mount.readonly,
            })
            .collect(),
        skills: match &agent.skills {
            state::Skills::All => Skills::All,
            state::Skills::List(names) => Skills::List(names.clone()),
        },
        unknown: BTreeMap::new(),
    }
}

fn mcp_server(server: &state::McpServer) -> McpServer {
    McpServer {
        command: server.command.clone(),
        args: server.args.clone(),
        env: server.env.clone(),
        url: server.url.clone(),
        instructions: server.instructions.clone(),
    }
}

/// The first 8 bytes (hex) of a SHA-256 over everything the container is started with: the
/// config file, the instruction files (not the local seed: the agent's memory is its own), the
/// image, mounts, environment, limits and network.
fn config_hash(spec: &SpawnSpec, config: &ContainerConfig, instructions: &Instructions) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update(bytes);
        hasher.update([0]);
    };
    part(config.to_json().as_bytes());
    part(instructions.claude_md.as_bytes());
    part(instructions::SHARED_BASE.as_bytes());
    part(instructions.settings.as_bytes());
    for (name, text) in &instructions.fragments {
        part(name.as_bytes());
        part(text.as_bytes());
    }
    for skill in &instructions.skills {
        for (path, text) in skill.files {
            part(format!("{}/{path}", skill.name).as_bytes());
            part(text.as_bytes());
        }
    }
    part(spec.image.as_bytes());
    part(format!("{:?}", spec.system_mounts).as_bytes());
    part(format!("{:?}", spec.extra_mounts).as_bytes());
    part(format!("{:?}", spec.env).as_bytes());
    part(format!("{:?}", spec.resources).as_bytes());
    part(spec.network.as_str().as_bytes());
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
#[path = "compose_tests.rs"]
mod tests;
