//! Getting a session ready for its container (host.md §4.2 steps 1–5, §4.8, §4.9, §8):
//! its folders ([`layout::prepare`]), `container.json` and the composed `CLAUDE.md` in the
//! (host-owned, read-only mounted) session folder, `CLAUDE.local.md` seeded in the agent's
//! folder, the destinations projection and the default reply address in `inbound.db`.
//!
//! Everything here is read from the central DB at spawn time, which is why the effect table
//! calls these fields `restart`. The result is a [`Prepared`] the waker hands to
//! `containers`. No Docker code here. Every file is written through [`crate::hostfs`]: into the
//! session folder with an unpredictable temp name and `renameat`; into the agent's folder only
//! `CLAUDE.local.md`, created exclusively or replaced by a rename (never written through).

use std::collections::BTreeMap;
use std::path::PathBuf;

use agent_runner::session_db::{self, DestinationRow};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::layout::{self, FILE_MODE, MountPoint};
use crate::containers::AgentImages;
use crate::db::config::MountRow;
use crate::db::sessions::Session;
use crate::hostfs::{Dir, Owner, Read};
use crate::paths::Paths;
use crate::resources::Resources;
use crate::state::{Agent, Network};

/// The agent's memory file in its folder, seeded from the manifest's `instructions`.
pub const LOCAL_INSTRUCTIONS: &str = "CLAUDE.local.md";
/// The last seed written, kept host-side in `sessions/<agent>/` (re-seed rule).
pub const SEED_FILE: &str = "claude-local.seed";
/// The composed instructions in the session folder.
pub const CLAUDE_MD: &str = "CLAUDE.md";
/// The composed fragments' folder in the session folder.
pub const FRAGMENTS_DIR: &str = ".claude-fragments";
/// Largest `CLAUDE.local.md` (and old seed) the host reads; a larger file counts as the agent's.
const MAX_LOCAL_BYTES: u64 = 1024 * 1024;
/// Files the previous layout composed into the agent's folder; removed once (never followed).
const LEGACY_GROUP_FILES: &[&str] = &["container.json", "CLAUDE.md", ".claude-fragments"];
/// Where the previous layout remembered the seed: the agent's folder.
const LEGACY_SEED_FILE: &str = ".claude-local.seed";

/// What the container runner needs to start the session's container.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub session_id: String,
    pub agent: String,
    pub session_dir: PathBuf,
    pub group_dir: PathBuf,
    /// The image: the agent's override, else the install's image for the agent's provider.
    pub image: String,
    pub extra_mounts: Vec<ExtraMount>,
    /// Hash of everything read at spawn; a container labelled with another hash is stale.
    pub config_hash: String,
    /// The agent's container limits.
    pub resources: Resources,
    /// The agent's container network.
    pub network: Network,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraMount {
    pub host: PathBuf,
    pub container: String,
    pub readonly: bool,
}

/// The agent's configuration in the shapes `container.json` and the spawn use, from the typed
/// agent `db::config::agent` reads (the same value `plan` compares).
#[derive(Clone, Debug)]
struct AgentConfig {
    name: String,
    provider: Option<String>,
    model: Option<String>,
    effort: Option<String>,
    image_tag: Option<String>,
    assistant_name: Option<String>,
    max_messages_per_prompt: Option<u32>,
    skills: Value,
    mcp_servers: Value,
    packages_apt: Value,
    packages_npm: Value,
    additional_mounts: Value,
    instructions: Option<String>,
    resources: Resources,
    network: Network,
}

impl AgentConfig {
    fn of(agent: Agent) -> AgentConfig {
        fn json<T: serde::Serialize>(value: &T) -> Value {
            serde_json::to_value(value).unwrap_or(Value::Null)
        }
        let mounts: Vec<MountRow> = agent.mounts.iter().map(MountRow::from).collect();
        AgentConfig {
            skills: json(&agent.skills),
            mcp_servers: json(&agent.mcp_servers),
            packages_apt: json(&agent.packages.apt),
            packages_npm: json(&agent.packages.npm),
            additional_mounts: json(&mounts),
            name: agent.name,
            provider: agent.provider,
            model: agent.model,
            effort: agent.effort,
            image_tag: agent.image,
            assistant_name: agent.assistant_name,
            max_messages_per_prompt: agent.max_messages_per_prompt,
            instructions: agent.instructions,
            resources: agent.resources,
            network: agent.network,
        }
    }
}

fn agent_config(conn: &Connection, agent: &str) -> anyhow::Result<Option<AgentConfig>> {
    let agent =
        crate::db::config::agent(conn, agent).context("reading the agent's container config")?;
    Ok(agent.map(AgentConfig::of))
}

/// Prepares `session` for a container. Errors (missing agent or config, unwritable files)
/// make the wake fail; the messages stay pending for the sweep.
pub fn prepare(
    conn: &Connection,
    paths: &Paths,
    session: &Session,
    images: &AgentImages,
) -> anyhow::Result<Prepared> {
    let config = agent_config(conn, &session.agent)?.with_context(|| {
        format!(
            "agent `{}` or its container config no longer exists",
            session.agent
        )
    })?;
    let extra_mounts = extra_mounts(&config.additional_mounts, paths, &session.agent);
    let mount_points: Vec<MountPoint> = extra_mounts
        .iter()
        .map(|mount| MountPoint {
            container: mount.container.clone(),
            is_file: layout::is_file_source(&mount.host),
        })
        .collect();
    let dirs = layout::prepare(paths, &session.agent, &session.id, &mount_points)?;
    init_group(
        &dirs.group,
        &dirs.agent_state,
        layout::agent_owner(),
        config.instructions.as_deref(),
    )?;
    let container_json = container_json(&config);
    let container_text = serde_json::to_string_pretty(&container_json)? + "\n";
    dirs.session.replace(
        session_db::CONTAINER_CONFIG_FILE,
        container_text.as_bytes(),
        FILE_MODE,
        None,
    )?;
    let claude_md = compose_claude_md(&dirs.session, &config)?;

    let session_dir = paths.session(&session.agent, &session.id);
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(&session_dir))?;
    write_projections(conn, session, &mut inbound)?;

    let image = config
        .image_tag
        .clone()
        .filter(|tag| !tag.is_empty())
        .unwrap_or_else(|| images.for_provider(config.provider.as_deref()).to_string());
    let mut hasher = Sha256::new();
    for part in [container_text.as_str(), claude_md.as_str(), image.as_str()] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.update(format!("{extra_mounts:?}").as_bytes());
    hasher.update(format!("{:?}", config.resources).as_bytes());
    hasher.update(config.network.as_str().as_bytes());
    let config_hash = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Prepared {
        session_id: session.id.clone(),
        agent: session.agent.clone(),
        session_dir,
        group_dir: paths.group(&session.agent),
        image,
        extra_mounts,
        config_hash,
        resources: config.resources,
        network: config.network,
    })
}

/// Writes what `inbound.db` mirrors from the central DB: the agent's destinations and the
/// session's default reply address (host.md §2.3). At every spawn, and when a lost
/// `inbound.db` is recreated.
pub fn write_projections(
    conn: &Connection,
    session: &Session,
    inbound: &mut Connection,
) -> anyhow::Result<()> {
    let destinations = destinations(conn, &session.agent)?;
    session_db::write_destinations(inbound, &destinations)?;
    let routing = default_routing(conn, session)?;
    session_db::write_session_routing(
        inbound,
        routing
            .as_ref()
            .map(|(channel_type, _)| channel_type.as_str()),
        routing
            .as_ref()
            .map(|(_, platform_id)| platform_id.as_str()),
        session.thread_id.as_deref(),
    )?;
    Ok(())
}

/// `container.json` as the runner reads it (host.md §4.8; cli_scope stays host-side).
fn container_json(config: &AgentConfig) -> Value {
    let mut map = serde_json::Map::new();
    map.insert("mcpServers".into(), config.mcp_servers.clone());
    map.insert(
        "packages".into(),
        json!({ "apt": config.packages_apt, "npm": config.packages_npm }),
    );
    if let Some(tag) = &config.image_tag {
        map.insert("imageTag".into(), json!(tag));
    }
    map.insert("additionalMounts".into(), config.additional_mounts.clone());
    map.insert("skills".into(), config.skills.clone());
    if let Some(provider) = &config.provider {
        map.insert("provider".into(), json!(provider.to_lowercase()));
    }
    map.insert("groupName".into(), json!(config.name));
    let assistant = config
        .assistant_name
        .clone()
        .unwrap_or_else(|| config.name.clone());
    map.insert("assistantName".into(), json!(assistant));
    map.insert("agentGroupId".into(), json!(config.name));
    if let Some(max) = config.max_messages_per_prompt {
        map.insert("maxMessagesPerPrompt".into(), json!(max));
    }
    if let Some(model) = &config.model {
        map.insert("model".into(), json!(model));
    }
    if let Some(effort) = &config.effort {
        map.insert("effort".into(), json!(effort));
    }
    Value::Object(map)
}

/// Seeds `CLAUDE.local.md` in the agent's folder from the manifest's instructions (host.md
/// §4.9 step 2).
///
/// Re-seeding: the seed is written again when the manifest's instructions change *and* the
/// agent has not edited the file since the last seed (its content still equals the old seed,
/// remembered host-side in `sessions/<agent>/claude-local.seed`). An agent's own edits always
/// win; so does anything at the name that is not a small regular file. A missing file is created
/// exclusively; an unedited one is replaced by renaming a fresh temp file over it.
///
/// The first time a folder of the previous layout is seen (no host-side seed yet), its old seed
/// is adopted and the files the host used to compose there are removed (never followed).
fn init_group(
    group: &Dir,
    agent_state: &Dir,
    owner: Option<Owner>,
    instructions: Option<&str>,
) -> anyhow::Result<()> {
    let seed = instructions
        .map(|text| format!("{}\n", text.trim_end()))
        .unwrap_or_default();
    let remembered = match agent_state.read_regular(SEED_FILE, MAX_LOCAL_BYTES)? {
        Read::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => None,
    };
    let previous_seed = match &remembered {
        Some(seed) => Some(seed.clone()),
        None => migrate_legacy_group(group)?,
    };
    let current = match group.read_regular(LOCAL_INSTRUCTIONS, MAX_LOCAL_BYTES)? {
        Read::Absent => Local::Absent,
        Read::Bytes(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Local::Text(text),
            Err(_) => Local::Foreign,
        },
        Read::NotRegular(_) | Read::TooLarge(_) => Local::Foreign,
    };
    let untouched = match (&current, &previous_seed) {
        (Local::Absent, _) => true,
        (Local::Text(current), Some(previous)) => current == previous,
        (Local::Text(current), None) => current.is_empty(),
        (Local::Foreign, _) => false,
    };
    if untouched {
        match &current {
            Local::Absent => {
                group.create_new(LOCAL_INSTRUCTIONS, seed.as_bytes(), FILE_MODE, owner)?;
            }
            Local::Text(text) if *text != seed => {
                group.replace(LOCAL_INSTRUCTIONS, seed.as_bytes(), FILE_MODE, owner)?;
            }
            _ => {}
        }
    }
    let remember = if untouched {
        Some(seed)
    } else if remembered.is_none() {
        // Mark the folder as migrated, keeping the old seed's meaning.
        Some(previous_seed.unwrap_or_default())
    } else {
        None
    };
    if let Some(text) = remember
        && remembered.as_deref() != Some(text.as_str())
    {
        agent_state.replace(SEED_FILE, text.as_bytes(), FILE_MODE, None)?;
    }
    Ok(())
}

/// What `CLAUDE.local.md` holds, as far as the re-seed rule is concerned.
enum Local {
    Absent,
    Text(String),
    /// Not a small UTF-8 regular file: the agent's business, never touched.
    Foreign,
}

/// First prepare of a folder the previous layout composed into: returns its old seed (read
/// only from a small regular file) and removes `container.json`, `CLAUDE.md`,
/// `.claude-fragments/` and the old seed with `unlinkat`, never following a link.
fn migrate_legacy_group(group: &Dir) -> anyhow::Result<Option<String>> {
    let seed = match group.read_regular(LEGACY_SEED_FILE, MAX_LOCAL_BYTES)? {
        Read::Bytes(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        _ => None,
    };
    let mut removed = Vec::new();
    for name in LEGACY_GROUP_FILES.iter().chain([&LEGACY_SEED_FILE]) {
        match group.remove(name) {
            Ok(true) => removed.push(*name),
            Ok(false) => {}
            Err(err) => warn!(path = %group.path().join(name).display(), error = %err,
                "a file of the previous layout could not be removed"),
        }
    }
    if !removed.is_empty() {
        info!(folder = %group.path().display(), removed = ?removed,
            "composed files moved out of the agent's folder (now in the read-only session folder)");
    }
    Ok(seed)
}

/// Composes `CLAUDE.md` from imports only (host.md §8.2): the shared base, then one fragment
/// per MCP server with instructions, into the session folder. Returns the text written.
fn compose_claude_md(session: &Dir, config: &AgentConfig) -> anyhow::Result<String> {
    let fragments = session.ensure_dir(FRAGMENTS_DIR, layout::DIR_MODE, None)?;
    let mut desired: BTreeMap<String, String> = BTreeMap::new();
    if let Value::Object(servers) = &config.mcp_servers {
        for (name, server) in servers {
            if let Some(Value::String(instructions)) = server.get("instructions") {
                desired.insert(
                    format!("mcp-{name}.md"),
                    format!("{}\n", instructions.trim_end()),
                );
            }
        }
    }
    for name in fragments.names()? {
        let name = name.to_string_lossy().into_owned();
        if !desired.contains_key(&name) {
            fragments.remove(&name)?;
        }
    }
    let mut text = String::from(
        "<!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->\n",
    );
    text.push_str("@./.claude-shared.md\n");
    for (name, content) in &desired {
        fragments.replace(name, content.as_bytes(), FILE_MODE, None)?;
        text.push_str(&format!("@./.claude-fragments/{name}\n"));
    }
    session.replace(CLAUDE_MD, text.as_bytes(), FILE_MODE, None)?;
    Ok(text)
}

/// The agent's destinations as the container sees them (host.md §2.3); dangling ones skipped.
fn destinations(conn: &Connection, agent: &str) -> anyhow::Result<Vec<DestinationRow>> {
    let mut statement = conn.prepare_cached(
        "SELECT d.local_name, d.target_type, d.target_id, m.channel_type, m.platform_id, m.name, a.name
         FROM agent_destinations d
         LEFT JOIN messaging_groups m ON d.target_type = 'channel' AND m.id = d.target_id
         LEFT JOIN agent_groups a ON d.target_type = 'agent' AND a.id = d.target_id
         WHERE d.agent_group_id = ?1 ORDER BY d.local_name",
    )?;
    let rows = statement.query_map([agent], |row| {
        let name: String = row.get(0)?;
        let kind: String = row.get(1)?;
        let target: String = row.get(2)?;
        let channel_type: Option<String> = row.get(3)?;
        let platform_id: Option<String> = row.get(4)?;
        let chat_name: Option<String> = row.get(5)?;
        let agent_name: Option<String> = row.get(6)?;
        Ok((
            name,
            kind,
            target,
            channel_type,
            platform_id,
            chat_name,
            agent_name,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, kind, target, channel_type, platform_id, chat_name, agent_name) = row?;
        let destination = match kind.as_str() {
            "channel" if platform_id.is_some() => DestinationRow {
                display_name: Some(chat_name.unwrap_or_else(|| name.clone())),
                name,
                kind: "channel".to_string(),
                channel_type,
                platform_id,
                agent_group_id: None,
            },
            "agent" if agent_name.is_some() => DestinationRow {
                display_name: agent_name,
                name,
                kind: "agent".to_string(),
                channel_type: None,
                platform_id: None,
                agent_group_id: Some(target),
            },
            _ => continue,
        };
        out.push(destination);
    }
    Ok(out)
}

/// The session's default reply address: its chat (host.md §2.3 `session_routing`).
fn default_routing(
    conn: &Connection,
    session: &Session,
) -> anyhow::Result<Option<(String, String)>> {
    let Some(chat_id) = &session.chat_id else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT channel_type, platform_id FROM messaging_groups WHERE id = ?1")?
        .query_row([chat_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?)
}

/// The agent's additional mounts, checked again now (`mount_policy`): refused ones are logged
/// and left out, and each is bound by its resolved real path.
fn extra_mounts(additional: &Value, paths: &Paths, agent: &str) -> Vec<ExtraMount> {
    let user = crate::containers::container_user();
    crate::mount_policy::at_spawn(agent, additional, &paths.data)
        .into_iter()
        .map(|resolved| {
            if !resolved.readonly && !writable_by(&resolved.host, user) {
                warn!(
                    agent,
                    path = %resolved.host.display(),
                    uid = user.0,
                    "a read-write mount the container user cannot write (its owner and mode do not allow uid {}); give it that user, e.g. `setfacl -R -m u:{}:rwX,d:u:{}:rwX {}`",
                    user.0, user.0, user.0, resolved.host.display()
                );
            }
            ExtraMount {
                host: resolved.host,
                container: resolved.container,
                readonly: resolved.readonly,
            }
        })
        .collect()
}

/// Whether the owner and mode bits of `path` let `(uid, gid)` write it (ACLs are not read, so
/// `false` may be wrong when an ACL grants it: the caller only warns).
fn writable_by(path: &std::path::Path, (uid, gid): (u32, u32)) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let mode = meta.mode();
    (meta.uid() == uid && mode & 0o200 != 0)
        || (meta.gid() == gid && mode & 0o020 != 0)
        || mode & 0o002 != 0
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
