//! Getting a session ready for its container (docs/runtime.md#waking-and-spawning-a-container): the
//! impure half of a spawn. [`prepare`] reads the agent's typed configuration, resolves its
//! mounts on the host, has [`compose`] decide everything (pure), then writes it: the session's
//! folders ([`layout::prepare`]), `container.json` and the composed `CLAUDE.md` in the
//! (host-owned, read-only mounted) session folder, `CLAUDE.local.md` seeded in the agent's
//! folder, the destinations projection and the default reply address in `inbound.db`, and the
//! removal of the previous container's heartbeat. It returns the [`SpawnSpec`] the waker hands
//! to `containers`.
//!
//! Everything here is read from the central DB at spawn time, which is why the effect table
//! calls these fields `restart`. No Docker code here. Every file is written through
//! [`crate::hostfs`]: into the session folder with an unpredictable temp name and `renameat`;
//! into the agent's folder only `CLAUDE.local.md`, created exclusively or replaced by a rename
//! (never written through).

use agent_runner::session_db::{self, DestinationRow, InboundDb};
use anyhow::Context;
use rusqlite::{Connection, OptionalExtension};
use tracing::{info, warn};

use super::compose::{self, Composed, FRAGMENTS_DIR, Inputs, SKILLS_FOLDER};
use super::instructions::{self, SETTINGS_FILE, SHARED_FILE};
use super::layout::{self, FILE_MODE, MountPoint};
use crate::containers::{AgentImages, SpawnSpec};
use crate::db::sessions::Session;
use crate::hostfs::{Dir, Owner, Read};
use crate::mount_policy::Resolved;
use crate::paths::Paths;
use crate::state::Agent;

/// The agent's memory file in its folder, seeded from the manifest's `instructions`.
pub const LOCAL_INSTRUCTIONS: &str = "CLAUDE.local.md";
/// The last seed written, kept host-side in `sessions/<agent>/` (re-seed rule).
pub const SEED_FILE: &str = "claude-local.seed";
/// The composed instructions in the session folder.
pub const CLAUDE_MD: &str = "CLAUDE.md";
/// Largest `CLAUDE.local.md` (and old seed) the host reads; a larger file counts as the agent's.
const MAX_LOCAL_BYTES: u64 = 1024 * 1024;
/// Files the previous layout composed into the agent's folder; removed once (never followed).
const LEGACY_GROUP_FILES: &[&str] = &["container.json", "CLAUDE.md", ".claude-fragments"];
/// Where the previous layout remembered the seed: the agent's folder.
const LEGACY_SEED_FILE: &str = ".claude-local.seed";

/// Prepares `session` for a container and returns what to start. Errors (a missing agent,
/// unwritable files) make the wake fail; the messages stay pending for the sweep.
pub fn prepare(
    conn: &Connection,
    paths: &Paths,
    session: &Session,
    images: &AgentImages,
    claude_code_env: &[(String, String)],
) -> anyhow::Result<SpawnSpec> {
    let composed = composition(conn, paths, session, images, claude_code_env)?;
    write(conn, paths, session, &composed)?;
    Ok(composed.spec)
}

/// What `session`'s container would be started with now: the agent read and its mounts
/// resolved as at a spawn, composed, nothing written. The executor compares its hash with a
/// running container's label. `claude_code_env` goes into the environment of a container that
/// runs Claude Code.
pub fn composition(
    conn: &Connection,
    paths: &Paths,
    session: &Session,
    images: &AgentImages,
    claude_code_env: &[(String, String)],
) -> anyhow::Result<Composed> {
    let agent = agent(conn, &session.agent)?
        .with_context(|| format!("agent `{}` no longer exists", session.agent))?;
    let provider = provider(conn, session)?;
    let mounts = resolve_mounts(&agent, paths);
    let images = recorded_image(conn, &agent, images)?;
    Ok(compose::compose(
        session,
        &agent,
        &Inputs {
            paths,
            images: &images,
            mounts: &mounts,
            env: if crate::provider::runs_claude_code(&provider) {
                claude_code_env
            } else {
                &[]
            },
            provider: &provider,
        },
    ))
}

/// The images of this run, with the per-agent image the central DB records for an agent with
/// packages (`db::agent_images`): a `nanoclaw image build` made while the daemon runs is used
/// from its next spawn, and the executor replaces the agent's running containers for it.
fn recorded_image(
    conn: &Connection,
    agent: &Agent,
    images: &AgentImages,
) -> anyhow::Result<AgentImages> {
    let mut images = images.clone();
    if agent.packages.apt.is_empty() && agent.packages.npm.is_empty() {
        // Its packages were removed while the daemon runs: back to its provider's image.
        images.per_agent.remove(&agent.name);
        return Ok(images);
    }
    let recorded = crate::db::agent_images::get(conn, &agent.name)
        .context("reading the agent's image")?
        .and_then(|row| row.tag);
    if let Some(tag) = recorded {
        images.per_agent.insert(agent.name.clone(), tag);
    }
    Ok(images)
}

/// The agent's configuration, typed, through `db::config`: THE one place the runtime reads it.
fn agent(conn: &Connection, name: &str) -> anyhow::Result<Option<Agent>> {
    crate::db::config::agent(conn, name).context("reading the agent's configuration")
}

/// The session's provider: its own override, the agent group's, the agent's configuration,
/// else `claude` ([`crate::provider::resolve`]).
fn provider(conn: &Connection, session: &Session) -> anyhow::Result<String> {
    let columns = crate::db::config::provider_columns(conn, &session.agent)
        .context("reading the agent's provider")?
        .unwrap_or_default();
    Ok(crate::provider::resolve(crate::provider::Sources {
        session: session.agent_provider.as_deref(),
        group: columns.group.as_deref(),
        config: columns.config.as_deref(),
    }))
}

/// Writes what `composed` decided into the session's folders and `inbound.db` (idempotent).
fn write(
    conn: &Connection,
    paths: &Paths,
    session: &Session,
    composed: &Composed,
) -> anyhow::Result<()> {
    let mount_points: Vec<MountPoint> = composed
        .spec
        .extra_mounts
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
        &composed.instructions.local_seed,
    )?;
    dirs.session.replace(
        session_db::CONTAINER_CONFIG_FILE,
        composed.config.to_json().as_bytes(),
        FILE_MODE,
        None,
    )?;
    write_instructions(&dirs.session, &composed.instructions)?;
    write_skills(&dirs.agent_state, &composed.instructions.skills)?;
    let mut inbound =
        session_db::open_inbound_host(&session_db::inbound_path(&composed.spec.session_dir))?;
    write_projections(conn, session, &mut inbound)?;
    clear_heartbeat(session, &composed.spec);
    Ok(())
}

/// A stale heartbeat from the previous container would trip the sweep
/// (docs/runtime.md#waking-and-spawning-a-container). `outbound/` is agent-writable but the host
/// owns its parent, so the path is trusted up to the last name; unlink(2) removes whatever sits
/// there (a link, not its target).
fn clear_heartbeat(session: &Session, spec: &SpawnSpec) {
    let heartbeat = session_db::heartbeat_path(&spec.session_dir);
    if let Err(err) = std::fs::remove_file(&heartbeat)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        warn!(session = %session.id, error = %err, "cannot delete stale heartbeat");
    }
}

/// Writes what `inbound.db` mirrors from the central DB: the agent's destinations and the
/// session's default reply address (docs/runtime.md#destinations-and-the-default-reply-address). At
/// every spawn, and when a lost `inbound.db` is recreated.
pub fn write_projections(
    conn: &Connection,
    session: &Session,
    inbound: &mut InboundDb,
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

/// Seeds `CLAUDE.local.md` in the agent's folder from the manifest's instructions
/// (docs/runtime.md#waking-and-spawning-a-container).
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
    seed: &str,
) -> anyhow::Result<()> {
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
        Some(seed.to_string())
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

/// Writes the composed `CLAUDE.md` and its fragments into the session folder, removing
/// fragments no longer composed.
fn write_instructions(session: &Dir, instructions: &compose::Instructions) -> anyhow::Result<()> {
    session.replace(
        SHARED_FILE,
        instructions::SHARED_BASE.as_bytes(),
        FILE_MODE,
        None,
    )?;
    session.replace(
        SETTINGS_FILE,
        instructions.settings.as_bytes(),
        FILE_MODE,
        None,
    )?;
    let fragments = session.ensure_dir(FRAGMENTS_DIR, layout::DIR_MODE, None)?;
    for name in fragments.names()? {
        let name = name.to_string_lossy().into_owned();
        if !instructions.fragments.contains_key(&name) {
            fragments.remove(&name)?;
        }
    }
    for (name, content) in &instructions.fragments {
        fragments.replace(name, content.as_bytes(), FILE_MODE, None)?;
    }
    session.replace(
        CLAUDE_MD,
        instructions.claude_md.as_bytes(),
        FILE_MODE,
        None,
    )?;
    Ok(())
}

/// Writes the agent's selected skills into its host-owned `sessions/<agent>/skills/` (mounted
/// read-only as Claude Code's skills folder), removing the ones no longer selected. Files are
/// copied, not linked: the folder holds nothing the agent can redirect.
fn write_skills(agent_state: &Dir, skills: &[&instructions::Skill]) -> anyhow::Result<()> {
    let folder = agent_state.ensure_dir(SKILLS_FOLDER, layout::DIR_MODE, None)?;
    for name in folder.names()? {
        let name = name.to_string_lossy().into_owned();
        if !skills.iter().any(|skill| skill.name == name) {
            folder.remove(&name)?;
        }
    }
    for skill in skills {
        let dir = folder.ensure_dir(skill.name, layout::DIR_MODE, None)?;
        for (path, text) in skill.files {
            dir.replace(path, text.as_bytes(), FILE_MODE, None)?;
        }
    }
    Ok(())
}

/// The agent's destinations as the container sees them
/// (docs/runtime.md#destinations-and-the-default-reply-address); dangling ones skipped.
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

/// The session's default reply address: its chat
/// (docs/runtime.md#destinations-and-the-default-reply-address).
pub fn default_routing(
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
fn resolve_mounts(agent: &Agent, paths: &Paths) -> Vec<Resolved> {
    let user = crate::containers::container_user();
    let resolved = crate::mount_policy::at_spawn(&agent.name, &agent.mounts, &paths.data);
    for mount in &resolved {
        if !mount.readonly && !writable_by(&mount.host, user) {
            warn!(
                agent = %agent.name,
                path = %mount.host.display(),
                uid = user.0,
                "a read-write mount the container user cannot write (its owner and mode do not allow uid {}); give it that user, e.g. `setfacl -R -m u:{}:rwX,d:u:{}:rwX {}`",
                user.0, user.0, user.0, mount.host.display()
            );
        }
    }
    resolved
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
