//! Composing a session's container, as a pure function (docs/runtime.md, "The message path"): from the
//! session and the agent's typed configuration, everything a container needs, decided without
//! touching a file, the DB or Docker.
//!
//! [`compose`] returns a [`Composed`]: the `container.json` ([`ContainerConfig`]), the
//! instruction files' contents (`CLAUDE.md`, its MCP fragments, the `CLAUDE.local.md` seed),
//! and the [`SpawnSpec`] `containers` starts (image, mounts, env, resources, network) labelled
//! with the hash of all of it. "Is this running container current?" is [`is_current`]: the
//! container's hash label against a fresh composition, no IO. The impure half (reading the
//! agent, resolving mounts on the host, writing the files, starting the container) is
//! `session::prepare` and the waker.

use std::collections::BTreeMap;

use agent_runner::container_config::{
    self, AdditionalMount, ContainerConfig, McpServer, Packages, Skills,
};
use sha2::{Digest, Sha256};

use crate::containers::{AgentImages, MountSpec, SpawnSpec};
use crate::db::sessions::Session;
use crate::mount_policy::Resolved;
use crate::paths::Paths;
use crate::state::{self, Agent};

/// The composed fragments' folder in the session folder.
pub const FRAGMENTS_DIR: &str = ".claude-fragments";
/// The first line of the composed `CLAUDE.md`.
const CLAUDE_MD_HEADER: &str = "<!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->\n";

/// Everything one session's container needs, decided.
#[derive(Clone, Debug)]
pub struct Composed {
    /// What `containers` starts; `config_hash` covers everything below and in it.
    pub spec: SpawnSpec,
    /// `container.json`, written into the session folder.
    pub config: ContainerConfig,
    /// The instruction files.
    pub instructions: Instructions,
}

/// The contents of the agent's instruction files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instructions {
    /// `CLAUDE.md` in the session folder: imports only (the shared base, then one fragment per
    /// MCP server with instructions).
    pub claude_md: String,
    /// `.claude-fragments/<name>` → its content.
    pub fragments: BTreeMap<String, String>,
    /// The seed of `CLAUDE.local.md` in the agent's folder (the manifest's `instructions`);
    /// written only under the re-seed rule (`session::prepare`).
    pub local_seed: String,
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
}

/// Composes the session's container (pure).
pub fn compose(session: &Session, agent: &Agent, inputs: &Inputs<'_>) -> Composed {
    let config = container_config(agent);
    let instructions = instructions(agent);
    let image = agent
        .image
        .clone()
        .filter(|tag| !tag.is_empty())
        .unwrap_or_else(|| {
            inputs
                .images
                .for_agent(&agent.name, agent.provider.as_deref())
                .to_string()
        });
    let mut spec = SpawnSpec {
        session_id: session.id.clone(),
        agent: session.agent.clone(),
        session_dir: inputs.paths.session(&session.agent, &session.id),
        group_dir: inputs.paths.group(&session.agent),
        image,
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

/// `container.json` for an agent (docs/agent-runner.md, "container.json"): every field of the agent the runner or its
/// provider may use; `cli_scope` stays host-side. Unset fields take the contract's defaults.
pub fn container_config(agent: &Agent) -> ContainerConfig {
    ContainerConfig {
        version: container_config::VERSION,
        provider: agent.provider.as_deref().map_or_else(
            || container_config::DEFAULT_PROVIDER.to_string(),
            str::to_lowercase,
        ),
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

/// `CLAUDE.md` from imports only, its fragments, and the local seed.
fn instructions(agent: &Agent) -> Instructions {
    let fragments: BTreeMap<String, String> = agent
        .mcp_servers
        .iter()
        .filter_map(|(name, server)| {
            let text = server.instructions.as_deref()?;
            Some((format!("mcp-{name}.md"), format!("{}\n", text.trim_end())))
        })
        .collect();
    let mut claude_md = String::from(CLAUDE_MD_HEADER);
    claude_md.push_str("@./.claude-shared.md\n");
    for name in fragments.keys() {
        claude_md.push_str(&format!("@./{FRAGMENTS_DIR}/{name}\n"));
    }
    let local_seed = agent
        .instructions
        .as_deref()
        .map(|text| format!("{}\n", text.trim_end()))
        .unwrap_or_default();
    Instructions {
        claude_md,
        fragments,
        local_seed,
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
    for (name, text) in &instructions.fragments {
        part(name.as_bytes());
        part(text.as_bytes());
    }
    part(spec.image.as_bytes());
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
