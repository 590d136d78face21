//! `nanoclaw import --sessions`: moves v2's conversations into a data dir whose central DB
//! already holds the imported configuration, so each chat continues where it stopped.
//!
//! Per session (v2: `data/v2-sessions/<agent group id>/<session id>/`, docs/moving-from-v2.md), into
//! nanoclaw's layout (`paths.rs`, docs/containers.md):
//!
//! - `inbound.db` (with its journal, never the main file alone) and `inbox/` → the host-owned
//!   session folder; the file is then opened through the session DB protocol, which runs its
//!   lazy migrations (an older file gains `trigger`, `on_wake`, … and rolls back a hot journal);
//! - `outbound.db` (with its journal) and `outbox/` → the agent-writable `outbound/`;
//! - every row v2 recorded in `inbound.db`'s `delivered` → the central `delivered_outbound`, so
//!   nothing v2 already sent is sent again; the session row keeps its id, chat and thread.
//!
//! Per agent: `groups/<folder>/` (its `CLAUDE.local.md` memory and working files, without the
//! files v2 composed there) → `groups/<agent>/`, and `.claude-shared/` (Claude's state) →
//! `sessions/<agent>/.claude-shared/`. Symlinks and special files are never copied (they are
//! counted in the report). Every write goes through `hostfs::Dir` into folders this import
//! creates; v2's folder is only read.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use agent_runner::session_db::DeliveredRow;
use rusqlite::Connection;

use super::Imported;
use super::report::{Report, Section};
use crate::db::sessions::ImportedSession;
use crate::hostfs::{Dir, Owner};
use crate::paths::Paths;
use crate::runtime::layout::{self, DIR_MODE, FILE_MODE};
use agent_runner::session_db;

/// Where v2 keeps its sessions, relative to its install folder.
pub const SESSIONS_DIR: &str = "data/v2-sessions";
/// Where v2 keeps the agent groups' folders, relative to its install folder.
pub const GROUPS_DIR: &str = "groups";
/// Files v2 composes into a group folder at every spawn; nanoclaw composes its own elsewhere.
const COMPOSED: &[&str] = &[
    "container.json",
    "CLAUDE.md",
    ".claude-fragments",
    ".claude-shared.md",
];

/// Why sessions could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error(
        "session `{id}` is already in `{db}`: these sessions were imported before\n\nhint: import into a fresh data dir (`--data DIR`)"
    )]
    AlreadyImported { id: String, db: PathBuf },
    #[error(
        "`{path}` already exists: moving v2's files there would mix two histories\n\nhint: import into a fresh data dir (`--data DIR`)"
    )]
    Exists { path: PathBuf },
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("session DB `{path}`: {source}")]
    SessionDb {
        path: PathBuf,
        source: session_db::SessionDbError,
    },
    #[error("central DB: {0}")]
    Db(#[from] rusqlite::Error),
}

/// What was moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub sessions: usize,
    /// Outbound rows recorded as already delivered.
    pub delivered: usize,
    pub agents: usize,
}

/// Moves every session of `imported` (and each agent's folder and Claude state) into `paths`.
/// The caller holds the data dir's daemon lock, has applied `imported.state` and passes the
/// central DB.
pub fn move_all(
    imported: &Imported,
    paths: &Paths,
    conn: &mut Connection,
    report: &mut Report,
) -> Result<Moved, SessionsError> {
    let db_path = paths.db();
    for session in &imported.v2.sessions {
        if crate::db::sessions::get(conn, &session.id)?.is_some() {
            return Err(SessionsError::AlreadyImported {
                id: session.id.clone(),
                db: db_path,
            });
        }
    }
    let mut created: Vec<PathBuf> = Vec::new();
    let result = move_files(imported, paths, report, &mut created).and_then(|(rows, agents)| {
        let delivered = crate::db::sessions::insert_imported(conn, &rows)?;
        Ok(Moved {
            sessions: rows.len(),
            delivered,
            agents,
        })
    });
    if result.is_err() {
        // Leave the data dir as it was: only folders this import created are removed.
        for path in created.iter().rev() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    result
}

fn move_files(
    imported: &Imported,
    paths: &Paths,
    report: &mut Report,
    created: &mut Vec<PathBuf>,
) -> Result<(Vec<ImportedSession>, usize), SessionsError> {
    let v2_dir = &imported.v2_dir;
    let owner = layout::agent_owner();
    let sessions_root =
        Dir::create_all(&paths.sessions(), DIR_MODE).map_err(io(&paths.sessions()))?;
    let groups_root = Dir::create_all(&paths.groups(), DIR_MODE).map_err(io(&paths.groups()))?;
    let mut agents = 0;
    for group in &imported.v2.agent_groups {
        let Some(agent) = imported.names.agents.get(&group.id) else {
            continue;
        };
        if imported.state.agents().all(|a| &a.name != agent) {
            continue;
        }
        let subject = format!("agent `{agent}`");
        let mut skipped = Skipped::default();
        let source = v2_dir.join(GROUPS_DIR).join(&group.folder);
        if source.is_dir() {
            let target = fresh_dir(&groups_root, agent, owner, created)?;
            copy_tree(
                &source,
                &target,
                owner,
                &|name| COMPOSED.contains(&name),
                &mut skipped,
                0,
            )?;
        }
        let state = v2_dir
            .join(SESSIONS_DIR)
            .join(&group.id)
            .join(".claude-shared");
        if state.is_dir() {
            let agent_state = sessions_root
                .ensure_dir(agent, DIR_MODE, None)
                .map_err(io(&paths.agent_state(agent)))?;
            let target = fresh_dir(&agent_state, ".claude-shared", owner, created)?;
            copy_tree(&state, &target, owner, &|_| false, &mut skipped, 0)?;
        }
        skipped.note(report, &subject);
        agents += 1;
    }
    let mut rows = Vec::new();
    for session in &imported.v2.sessions {
        let subject = format!("session `{}`", session.id);
        let Some(agent) = imported.names.agents.get(&session.agent_group_id).cloned() else {
            report.note(
                Section::Dropped,
                &subject,
                format!(
                    "its agent group `{}` does not exist",
                    session.agent_group_id
                ),
            );
            continue;
        };
        if imported.state.agents().all(|a| a.name != agent) {
            report.note(
                Section::Dropped,
                &subject,
                format!("its agent `{agent}` was left out"),
            );
            continue;
        }
        let channel = match &session.messaging_group_id {
            None => None,
            Some(id) => match imported.names.channels.get(id) {
                Some(name)
                    if imported
                        .state
                        .get(&crate::state::Address::new(
                            crate::state::Kind::Channel,
                            name.clone(),
                        ))
                        .is_some() =>
                {
                    Some(name.clone())
                }
                _ => {
                    report.note(
                        Section::Dropped,
                        &subject,
                        format!("its chat `{id}` was not imported"),
                    );
                    continue;
                }
            },
        };
        let source = v2_dir
            .join(SESSIONS_DIR)
            .join(&session.agent_group_id)
            .join(&session.id);
        let agent_state = sessions_root
            .ensure_dir(&agent, DIR_MODE, None)
            .map_err(io(&paths.agent_state(&agent)))?;
        let target = fresh_dir(&agent_state, &session.id, None, created)?;
        let delivered = if source.is_dir() {
            move_session(&source, &target, owner, &subject, report)?
        } else {
            report.note(
                Section::Files,
                &subject,
                format!(
                    "its folder `{}` is missing: the conversation starts with an empty history",
                    source.display()
                ),
            );
            Vec::new()
        };
        rows.push(ImportedSession {
            session: crate::db::sessions::Session {
                id: session.id.clone(),
                agent,
                chat_id: channel,
                thread_id: session.thread_id.clone(),
                // Not kept: the import report lists v2's per-session provider overrides.
                agent_provider: None,
            },
            closed: session.status.as_deref() == Some("closed"),
            last_active: session.last_active.clone(),
            created_at: session.created_at.clone(),
            delivered,
        });
    }
    Ok((rows, agents))
}

/// One session folder: the host's files into `target`, the container's into `outbound/`.
fn move_session(
    source: &Path,
    target: &Dir,
    owner: Option<Owner>,
    subject: &str,
    report: &mut Report,
) -> Result<Vec<DeliveredRow>, SessionsError> {
    let mut skipped = Skipped::default();
    let inbound = source.join(session_db::INBOUND_FILE);
    let outbound_dir = target
        .ensure_dir(session_db::OUTBOUND_DIR, DIR_MODE, owner)
        .map_err(io(&target.path().join(session_db::OUTBOUND_DIR)))?;
    outbound_dir
        .ensure_dir(session_db::OUTBOX_DIR, DIR_MODE, owner)
        .map_err(io(&outbound_dir.path().join(session_db::OUTBOX_DIR)))?;
    let mut others = Vec::new();
    for entry in std::fs::read_dir(source).map_err(io(source))? {
        let entry = entry.map_err(io(source))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            skipped.unnamed += 1;
            continue;
        };
        let path = entry.path();
        match name.as_str() {
            "inbound.db" | "inbound.db-journal" | "inbound.db-wal" => {
                copy_file(
                    &path,
                    target,
                    &name,
                    session_db::INBOUND_MODE,
                    None,
                    &mut skipped,
                )?;
            }
            "outbound.db" | "outbound.db-journal" | "outbound.db-wal" => {
                copy_file(&path, &outbound_dir, &name, FILE_MODE, owner, &mut skipped)?;
            }
            // The liveness of a container that no longer exists.
            ".heartbeat" => {}
            "inbox" if path.is_dir() => {
                let inbox = target
                    .ensure_dir("inbox", DIR_MODE, None)
                    .map_err(io(&target.path().join("inbox")))?;
                copy_tree(&path, &inbox, None, &|_| false, &mut skipped, 0)?;
            }
            "outbox" if path.is_dir() => {
                let outbox = outbound_dir
                    .child(session_db::OUTBOX_DIR)
                    .map_err(io(&outbound_dir.path().join("outbox")))?;
                copy_tree(&path, &outbox, owner, &|_| false, &mut skipped, 0)?;
            }
            _ => others.push(name),
        }
    }
    skipped.note(report, subject);
    if !others.is_empty() {
        others.sort();
        report.note(
            Section::Files,
            subject,
            format!(
                "left in v2's folder (the agent wrote them where nanoclaw's workspace is read-only): {}",
                others.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let inbound_copy = target.path().join(session_db::INBOUND_FILE);
    if !inbound.is_file() {
        return Ok(Vec::new());
    }
    let conn = session_db::open_inbound_host(&inbound_copy).map_err(|source| {
        SessionsError::SessionDb {
            path: inbound_copy.clone(),
            source,
        }
    })?;
    session_db::delivered_rows(&conn).map_err(|source| SessionsError::SessionDb {
        path: inbound_copy,
        source,
    })
}

/// What a copy left out.
#[derive(Default)]
struct Skipped {
    links: usize,
    special: usize,
    unnamed: usize,
    too_deep: usize,
}

impl Skipped {
    fn note(&self, report: &mut Report, subject: &str) {
        let mut parts = Vec::new();
        for (count, what) in [
            (self.links, "symlinks"),
            (self.special, "special files (sockets, FIFOs, devices)"),
            (self.unnamed, "names that are not UTF-8"),
            (self.too_deep, "entries nested too deep"),
        ] {
            if count > 0 {
                parts.push(format!("{count} {what}"));
            }
        }
        if !parts.is_empty() {
            report.note(
                Section::Files,
                subject,
                format!("not copied: {}", parts.join(", ")),
            );
        }
    }
}

/// Creates `name` in `parent` (owned by `owner`); it must not exist yet, or be an empty folder.
fn fresh_dir(
    parent: &Dir,
    name: &str,
    owner: Option<Owner>,
    created: &mut Vec<PathBuf>,
) -> Result<Dir, SessionsError> {
    let path = parent.path().join(name);
    if let Some(_entry) = parent.entry(name).map_err(io(&path))? {
        let empty = std::fs::read_dir(&path)
            .map(|mut entries| entries.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(SessionsError::Exists { path });
        }
    } else {
        created.push(path.clone());
    }
    parent.ensure_dir(name, DIR_MODE, owner).map_err(io(&path))
}

/// Copies the folder `source` into `target`: folders and regular files only, `skip`ped names
/// (at the top) left out.
fn copy_tree(
    source: &Path,
    target: &Dir,
    owner: Option<Owner>,
    skip: &dyn Fn(&str) -> bool,
    skipped: &mut Skipped,
    depth: usize,
) -> Result<(), SessionsError> {
    if depth >= crate::hostfs::MAX_DEPTH {
        skipped.too_deep += 1;
        return Ok(());
    }
    let mut entries: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(source).map_err(io(source))? {
        let entry = entry.map_err(io(source))?;
        match entry.file_name().to_str() {
            Some(name) => {
                entries.insert(name.to_string(), entry.path());
            }
            None => skipped.unnamed += 1,
        }
    }
    for (name, path) in entries {
        if depth == 0 && skip(&name) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.file_type().is_symlink() {
            skipped.links += 1;
        } else if meta.is_dir() {
            let child = target
                .ensure_dir(&name, DIR_MODE, owner)
                .map_err(io(&target.path().join(&name)))?;
            copy_tree(&path, &child, owner, &|_| false, skipped, depth + 1)?;
        } else if meta.is_file() {
            copy_file(&path, target, &name, FILE_MODE, owner, skipped)?;
        } else {
            skipped.special += 1;
        }
    }
    Ok(())
}

/// Copies one regular file (opened without following a link) into `target` as `name`.
fn copy_file(
    path: &Path,
    target: &Dir,
    name: &str,
    mode: u32,
    owner: Option<Owner>,
    skipped: &mut Skipped,
) -> Result<(), SessionsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if !meta.is_file() {
        skipped.special += usize::from(!meta.file_type().is_symlink());
        skipped.links += usize::from(meta.file_type().is_symlink());
        return Ok(());
    }
    let mut file = File::options()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(io(path))?;
    let created = target
        .create_new_from(name, &mut file, mode, owner)
        .map_err(io(&target.path().join(name)))?;
    if !created {
        return Err(SessionsError::Exists {
            path: target.path().join(name),
        });
    }
    Ok(())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SessionsError + '_ {
    move |source| SessionsError::Io {
        path: path.to_path_buf(),
        source,
    }
}
