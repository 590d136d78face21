//! The folders of a session as its container needs them (the layout in `paths.rs`): who owns
//! which folder, the mount points, and the move from the previous layout.
//!
//! Host-owned folders (`sessions/<agent>/<session>/`) are the daemon's, mode 0755, so the
//! container can read them through its read-only mount. Agent-writable folders (`groups/<agent>`,
//! `outbound/`, `outbound/outbox/`, `.claude-shared`) belong to the container user
//! ([`containers::container_user`]); when the daemon runs as root they are `fchown`ed to it,
//! with everything inside (never following a link) when their owner is not that user yet.
//! Every step works through [`hostfs::Dir`] handles; nothing here composes files
//! (`runtime::session` does) or talks to Docker.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use agent_runner::session_db;
use anyhow::Context;
use tracing::{info, warn};

use crate::containers;
use crate::hostfs::{Dir, Kind, Owner};
use crate::paths::Paths;

/// Mode of every folder the host creates (readable through the read-only mount).
pub const DIR_MODE: u32 = 0o755;
/// Mode of every file the host writes for a container to read.
pub const FILE_MODE: u32 = 0o644;
/// The empty mount point of the agent's folder inside the session folder.
pub const AGENT_MOUNT_POINT: &str = "agent";
/// The parent of the additional mounts' mount points inside the session folder.
pub const EXTRA_MOUNT_POINTS: &str = "extra";
/// Entries of a session folder of the previous layout that move into `outbound/`.
const LEGACY_OUTBOUND_ENTRIES: &[(&str, Kind)] = &[
    (session_db::OUTBOUND_FILE, Kind::File),
    ("outbound.db-journal", Kind::File),
    (session_db::HEARTBEAT_FILE, Kind::File),
    (session_db::OUTBOX_DIR, Kind::Dir),
];

/// The opened folders of one prepared session.
#[derive(Debug)]
pub struct SessionDirs {
    /// `sessions/<agent>/`: host-owned, never mounted.
    pub agent_state: Dir,
    /// `sessions/<agent>/<session>/`: host-owned, `/workspace` (read-only).
    pub session: Dir,
    /// `<session>/outbound/`: agent-writable, `/workspace/outbound`.
    pub outbound: Dir,
    /// `groups/<agent>/`: agent-writable, `/workspace/agent`.
    pub group: Dir,
}

/// One additional mount's mount point: its path under `extra/` and whether the source is a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPoint {
    pub container: String,
    pub is_file: bool,
}

/// The owner of agent-writable folders: the container user when the daemon is root (`None`
/// otherwise: the daemon's own files are already the container user's).
pub fn agent_owner() -> Option<Owner> {
    if !rustix::process::geteuid().is_root() {
        return None;
    }
    let (uid, gid) = containers::container_user();
    Some(Owner { uid, gid })
}

/// Makes every folder of the session ready for a spawn (idempotent): the host-owned session
/// folder with its mount points and `inbound.db`, the agent-writable `outbound/` (moving a
/// previous layout's files into it), the agent's folder and `.claude-shared/`.
pub fn prepare(
    paths: &Paths,
    agent: &str,
    session: &str,
    extra_mounts: &[MountPoint],
) -> anyhow::Result<SessionDirs> {
    let owner = agent_owner();
    let sessions = Dir::create_all(&paths.sessions(), DIR_MODE)?;
    let agent_state = sessions.ensure_dir(agent, DIR_MODE, None)?;
    let session_dir = agent_state.ensure_dir(session, DIR_MODE, None)?;
    // A folder the router created under a restrictive umask must still be readable in the
    // container (it runs as another uid when the daemon is root).
    session_dir.set_mode(DIR_MODE)?;
    let legacy = LEGACY_OUTBOUND_ENTRIES
        .iter()
        .any(|(name, _)| matches!(session_dir.entry(name), Ok(Some(_))));
    let outbound = ensure_agent_dir(&session_dir, session_db::OUTBOUND_DIR, owner)?;
    if legacy {
        migrate_session(&session_dir, &outbound, owner).with_context(|| {
            format!(
                "moving `{}` to the new layout",
                session_dir.path().display()
            )
        })?;
    }
    if let Err(err) = outbound.ensure_dir(session_db::OUTBOX_DIR, DIR_MODE, owner) {
        // The agent's own folder: whatever it put there is its problem, not a failed wake.
        warn!(session, error = %err, "`outbound/outbox` is not a folder; left as the agent made it");
    }
    mount_points(&session_dir, extra_mounts)?;
    ensure_inbound(&session_dir)?;

    let groups = Dir::create_all(&paths.groups(), DIR_MODE)?;
    let group = ensure_agent_dir(&groups, agent, owner)?;
    let shared = ensure_agent_dir(&agent_state, ".claude-shared", owner)?;
    if let Err(err) = shared.ensure_dir("skills", DIR_MODE, owner) {
        warn!(agent, error = %err, "`.claude-shared/skills` is not a folder; left as the agent made it");
    }
    Ok(SessionDirs {
        agent_state,
        session: session_dir,
        outbound,
        group,
    })
}

/// `inbound.db` exists as a regular file of its own the container can read. Anything else at
/// its name or its journal's (a link, a FIFO, a file with a second hard link: left by the
/// previous layout, where the container could write here) is moved aside first, so SQLite never
/// writes through it.
fn ensure_inbound(session: &Dir) -> anyhow::Result<()> {
    let name = session_db::INBOUND_FILE;
    for entry in [
        name.to_string(),
        format!("{name}{}", session_db::JOURNAL_SUFFIX),
    ] {
        if let Some(found) = session.entry(&entry)?
            && (found.kind != Kind::File || found.links != 1)
        {
            let aside = move_aside(session, &entry)?;
            warn!(path = %session.path().join(&entry).display(), ?found.kind, %aside,
                "not a regular file where the host keeps `inbound.db`; moved aside");
        }
    }
    if session.entry(name)?.is_none() {
        create_inbound(session, None)?;
    }
    Ok(())
}

/// Creates `inbound.db` in the session folder atomically: a fresh file under an unpredictable
/// temp name gets the schema (and, given the central DB and the session, the destinations and
/// reply address), then is renamed into place without replacing anything. Nobody ever sees a
/// half-made file; when another thread won the race, its file stays. Returns whether this call
/// created it.
pub fn create_inbound(
    session: &Dir,
    projections: Option<(&rusqlite::Connection, &crate::db::sessions::Session)>,
) -> anyhow::Result<bool> {
    let temp = crate::hostfs::temp_name()?;
    let temp_path = session.path().join(&temp);
    let made = (|| -> anyhow::Result<()> {
        let mut conn = session_db::create_inbound_file(&temp_path)?;
        if let Some((central, row)) = projections {
            super::session::write_projections(central, row, &mut conn)?;
        }
        Ok(())
    })();
    let placed = made.and_then(|()| {
        session
            .rename_new(&temp, session, session_db::INBOUND_FILE)
            .map_err(anyhow::Error::from)
    });
    let journal = format!("{temp}{}", session_db::JOURNAL_SUFFIX);
    if !matches!(placed, Ok(true)) {
        let _ = session.remove(&temp);
    }
    let _ = session.remove(&journal);
    placed
}

/// Opens (creating) an agent-writable folder `name` in `parent`, owned by `owner`. An entry
/// that is not a folder is moved aside. When the folder's owner is not `owner` (a previous
/// layout, or a container that ran as root), it and its contents are given to `owner`.
fn ensure_agent_dir(parent: &Dir, name: &str, owner: Option<Owner>) -> io::Result<Dir> {
    if let Some(found) = parent.entry(name)?
        && found.kind != Kind::Dir
    {
        let aside = move_aside(parent, name)?;
        warn!(path = %parent.path().join(name).display(), ?found.kind, %aside,
            "not a folder where an agent-writable folder belongs; moved aside");
    }
    let dir = parent.ensure_dir(name, DIR_MODE, owner)?;
    if let Some(owner) = owner {
        let current = dir.stat()?;
        if (current.uid, current.gid) != (owner.uid, owner.gid) {
            info!(path = %dir.path().display(), uid = owner.uid, "giving an agent-writable folder to the container user");
            dir.chown_tree(owner)?;
        }
    }
    Ok(dir)
}

/// The previous layout kept `outbound.db`, `.heartbeat` and `outbox/` at the top of the session
/// folder, which the container could write. They move into `outbound/` (`renameat`, so a link
/// moves as a link and is never followed); an entry of the wrong kind, or one whose new name is
/// taken, is moved aside instead.
fn migrate_session(session: &Dir, outbound: &Dir, owner: Option<Owner>) -> io::Result<()> {
    for (name, kind) in LEGACY_OUTBOUND_ENTRIES {
        let Some(found) = session.entry(name)? else {
            continue;
        };
        if found.kind == *kind && session.rename_new(name, outbound, name)? {
            continue;
        }
        let aside = move_aside(session, name)?;
        warn!(path = %session.path().join(name).display(), ?found.kind, %aside,
            "a previous-layout entry that cannot move into `outbound/`; moved aside");
    }
    if let Some(owner) = owner {
        outbound.chown_tree(owner)?;
    }
    info!(session = %session.path().display(), "session moved to the layout with a read-only workspace");
    Ok(())
}

/// Creates the empty mount points the read-only session mount needs: `agent/`, and under
/// `extra/` one folder (or empty file, for a file source) per additional mount. Anything else
/// already at one of those names (the previous layout let the container write here) is moved
/// aside, so Docker never mounts through a link.
fn mount_points(session: &Dir, extra_mounts: &[MountPoint]) -> anyhow::Result<()> {
    ensure_host_dir(session, AGENT_MOUNT_POINT)?;
    if extra_mounts.is_empty() {
        return Ok(());
    }
    let extra = ensure_host_dir(session, EXTRA_MOUNT_POINTS)?;
    for mount in extra_mounts {
        let parts: Vec<&str> = mount
            .container
            .split('/')
            .filter(|part| !part.is_empty() && *part != ".")
            .collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        if parts.contains(&"..") {
            continue;
        }
        let mut dir = extra.try_clone()?;
        for part in parents {
            dir = ensure_host_dir(&dir, part)?;
        }
        if mount.is_file {
            match dir.entry(last)? {
                Some(found) if found.kind == Kind::File => {}
                found => {
                    if found.is_some() {
                        move_aside(&dir, last)?;
                    }
                    dir.create_new(last, b"", FILE_MODE, None)?;
                }
            }
        } else {
            ensure_host_dir(&dir, last)?;
        }
    }
    Ok(())
}

/// A host-owned folder `name` in `parent`; anything else at the name is moved aside first.
fn ensure_host_dir(parent: &Dir, name: &str) -> io::Result<Dir> {
    if let Some(found) = parent.entry(name)?
        && found.kind != Kind::Dir
    {
        let aside = move_aside(parent, name)?;
        warn!(path = %parent.path().join(name).display(), ?found.kind, %aside, "moved aside");
    }
    parent.ensure_dir(name, DIR_MODE, None)
}

/// Renames `name` to `<name>.unsafe-<ms>` in the same folder (the entry itself moves, never
/// what it points to); returns the new name.
fn move_aside(dir: &Dir, name: &str) -> io::Result<String> {
    move_aside_as(dir, name, "unsafe")
}

/// Renames `name` to `<name>.<label>-<ms>` in the same folder without replacing anything;
/// returns the new name.
pub fn move_aside_as(dir: &Dir, name: &str, label: &str) -> io::Result<String> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    for attempt in 0..100u32 {
        let aside = if attempt == 0 {
            format!("{name}.{label}-{ms}")
        } else {
            format!("{name}.{label}-{ms}-{attempt}")
        };
        if dir.rename_new(name, dir, &aside)? {
            return Ok(aside);
        }
    }
    Err(io::Error::other(format!(
        "cannot move `{}` aside: every name is taken",
        dir.path().join(name).display()
    )))
}

/// Whether `path`'s source is a regular file (for its mount point), following links: the
/// source is the operator's, configured in a manifest.
pub fn is_file_source(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file())
}

#[cfg(test)]
mod tests;
