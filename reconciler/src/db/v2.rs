//! Reading a NanoClaw v2 install's central DB (`data/v2.db`, host.md §1) into typed rows.
//!
//! v2 leaves `v2.db-wal` behind even after a clean shutdown, so the main file alone is not the
//! database. And opening v2's files in place would write to them (a WAL reader creates or
//! updates `v2.db-shm`). So the DB is read from a private snapshot: the main file and its
//! `-wal`/`-journal` companions are copied into a temp folder and opened there, where SQLite
//! recovers the WAL. Nothing under the v2 folder is ever opened for writing.
//!
//! Every shape v2 ever had is read: tables added by later migrations may be missing
//! (`agent_destinations`, `container_configs`), and a wiring may still have the pre-engage-mode
//! `trigger_rules`/`response_scope` columns. Mapping the rows is `map`'s job.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// Where v2 keeps its central DB, relative to its install folder.
pub const DB_PATH: &str = "data/v2.db";
/// Companion files SQLite may need to see the committed state (WAL, rollback journal).
const COMPANIONS: &[&str] = &["-wal", "-journal"];

/// Why a v2 DB cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum V2DbError {
    #[error("there is no NanoClaw v2 database at `{}`\n\nhint: pass the folder of the v2 install (the one holding `data/v2.db` and `groups/`)", path.display())]
    Missing { path: PathBuf },
    #[error("copying `{}` to a private snapshot", path.display())]
    Copy {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the v2 database `{}`: {source}", path.display())]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the snapshot of `{}` is not consistent ({why}): v2 was probably writing while it was copied\n\nhint: stop NanoClaw v2 (its service or `npm run dev`), then import again", path.display())]
    Inconsistent { path: PathBuf, why: String },
}

/// The rows of a v2 central DB that nanoclaw maps, plus the counts of the ones it does not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct V2 {
    pub agent_groups: Vec<AgentGroupRow>,
    /// `None` when the DB predates `container_configs` (migration 14).
    pub configs: Option<Vec<ConfigRow>>,
    pub messaging_groups: Vec<MessagingGroupRow>,
    pub wirings: Vec<WiringRow>,
    pub users: Vec<UserRow>,
    pub roles: Vec<RoleRow>,
    pub members: Vec<MemberRow>,
    /// `None` when the agent-to-agent module's table is absent.
    pub destinations: Option<Vec<DestinationRow>>,
    pub sessions: Vec<SessionRow>,
    /// Tables nanoclaw does not model that hold rows: `(table, rows)`.
    pub unmodelled: Vec<(String, i64)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentGroupRow {
    pub id: String,
    pub name: String,
    pub folder: String,
    pub agent_provider: Option<String>,
}

/// A `container_configs` row (or a legacy `container.json` read into the same shape).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigRow {
    pub agent_group_id: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub effort: Option<String>,
    pub image_tag: Option<String>,
    pub assistant_name: Option<String>,
    pub max_messages_per_prompt: Option<i64>,
    /// JSON texts, as stored.
    pub skills: Option<String>,
    pub mcp_servers: Option<String>,
    pub packages_apt: Option<String>,
    pub packages_npm: Option<String>,
    pub additional_mounts: Option<String>,
    /// `None` before migration 15 (`cli-scope`).
    pub cli_scope: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessagingGroupRow {
    pub id: String,
    pub channel_type: String,
    pub platform_id: String,
    pub name: Option<String>,
    pub is_group: Option<i64>,
    pub unknown_sender_policy: Option<String>,
    pub denied_at: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WiringRow {
    pub id: String,
    pub messaging_group_id: String,
    pub agent_group_id: String,
    pub session_mode: Option<String>,
    pub priority: Option<i64>,
    /// `None` (all four) before migration 10 (`engage-modes`); see `legacy`.
    pub engage_mode: Option<String>,
    pub engage_pattern: Option<String>,
    pub sender_scope: Option<String>,
    pub ignored_message_policy: Option<String>,
    /// `(trigger_rules, response_scope)` of a DB from before migration 10.
    pub legacy: Option<(Option<String>, Option<String>)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub kind: String,
    pub display_name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleRow {
    pub user_id: String,
    pub role: String,
    pub agent_group_id: Option<String>,
    pub granted_by: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub agent_group_id: String,
    pub added_by: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationRow {
    pub agent_group_id: String,
    pub local_name: String,
    pub target_type: String,
    pub target_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub agent_group_id: String,
    pub messaging_group_id: Option<String>,
    pub thread_id: Option<String>,
    pub agent_provider: Option<String>,
    pub status: Option<String>,
    pub last_active: Option<String>,
    pub created_at: String,
}

/// Tables v2 has that nanoclaw does not model; their rows are counted for the report.
const UNMODELLED_TABLES: &[&str] = &[
    "pending_questions",
    "pending_approvals",
    "pending_sender_approvals",
    "pending_channel_approvals",
    "unregistered_senders",
    "user_dms",
    "chat_sdk_kv",
    "chat_sdk_subscriptions",
    "chat_sdk_locks",
    "chat_sdk_lists",
];

/// Reads the central DB of the v2 install at `v2_dir` through a private snapshot.
pub fn read(v2_dir: &Path) -> Result<V2, V2DbError> {
    let path = v2_dir.join(DB_PATH);
    let meta = std::fs::metadata(&path).map_err(|_| V2DbError::Missing { path: path.clone() })?;
    if !meta.is_file() {
        return Err(V2DbError::Missing { path });
    }
    let snapshot = tempfile::Builder::new()
        .prefix("nanoclaw-import-")
        .tempdir()
        .map_err(|source| V2DbError::Copy {
            path: path.clone(),
            source,
        })?;
    let copy = snapshot.path().join("v2.db");
    copy_with_companions(&path, &copy)?;
    let db_error = |source| V2DbError::Db {
        path: path.clone(),
        source,
    };
    let conn = super::open_copy(&copy).map_err(db_error)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(db_error)?;
    if check != "ok" {
        return Err(V2DbError::Inconsistent { path, why: check });
    }
    read_rows(&conn).map_err(db_error)
}

/// Copies a SQLite file and whichever of its `-wal`/`-journal` files exist (never the main
/// file alone). The WAL is copied first: a checkpoint in between then only re-applies pages.
pub fn copy_with_companions(from: &Path, to: &Path) -> Result<(), V2DbError> {
    for suffix in COMPANIONS {
        let companion = with_suffix(from, suffix);
        match std::fs::symlink_metadata(&companion) {
            Ok(meta) if meta.is_file() => {
                std::fs::copy(&companion, with_suffix(to, suffix)).map_err(|source| {
                    V2DbError::Copy {
                        path: companion.clone(),
                        source,
                    }
                })?;
            }
            _ => {}
        }
    }
    std::fs::copy(from, to).map_err(|source| V2DbError::Copy {
        path: from.to_path_buf(),
        source,
    })?;
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

fn read_rows(conn: &Connection) -> rusqlite::Result<V2> {
    let mut v2 = V2 {
        agent_groups: query(
            conn,
            "SELECT id, name, folder, agent_provider FROM agent_groups ORDER BY name, id",
            |row| {
                Ok(AgentGroupRow {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    folder: row.get(2)?,
                    agent_provider: row.get(3)?,
                })
            },
        )?,
        ..V2::default()
    };
    if has_table(conn, "container_configs")? {
        v2.configs = Some(read_configs(conn)?);
    }
    let denied = optional_column(conn, "messaging_groups", "denied_at")?;
    v2.messaging_groups = query(
        conn,
        &format!(
            "SELECT id, channel_type, platform_id, name, is_group, unknown_sender_policy, {denied}
             FROM messaging_groups ORDER BY id"
        ),
        |row| {
            Ok(MessagingGroupRow {
                id: row.get(0)?,
                channel_type: row.get(1)?,
                platform_id: row.get(2)?,
                name: row.get(3)?,
                is_group: row.get(4)?,
                unknown_sender_policy: row.get(5)?,
                denied_at: row.get(6)?,
            })
        },
    )?;
    v2.wirings = read_wirings(conn)?;
    v2.users = query(
        conn,
        "SELECT id, kind, display_name FROM users ORDER BY id",
        |row| {
            Ok(UserRow {
                id: row.get(0)?,
                kind: row.get(1)?,
                display_name: row.get(2)?,
            })
        },
    )?;
    if has_table(conn, "user_roles")? {
        v2.roles = query(
            conn,
            "SELECT user_id, role, agent_group_id, granted_by FROM user_roles
             ORDER BY user_id, role, agent_group_id",
            |row| {
                Ok(RoleRow {
                    user_id: row.get(0)?,
                    role: row.get(1)?,
                    agent_group_id: row.get(2)?,
                    granted_by: row.get(3)?,
                })
            },
        )?;
    }
    v2.members = query(
        conn,
        "SELECT user_id, agent_group_id, added_by FROM agent_group_members
         ORDER BY user_id, agent_group_id",
        |row| {
            Ok(MemberRow {
                user_id: row.get(0)?,
                agent_group_id: row.get(1)?,
                added_by: row.get(2)?,
            })
        },
    )?;
    if has_table(conn, "agent_destinations")? {
        v2.destinations = Some(query(
            conn,
            "SELECT agent_group_id, local_name, target_type, target_id FROM agent_destinations
             ORDER BY agent_group_id, local_name",
            |row| {
                Ok(DestinationRow {
                    agent_group_id: row.get(0)?,
                    local_name: row.get(1)?,
                    target_type: row.get(2)?,
                    target_id: row.get(3)?,
                })
            },
        )?);
    }
    v2.sessions = query(
        conn,
        "SELECT id, agent_group_id, messaging_group_id, thread_id, agent_provider, status,
           last_active, created_at FROM sessions ORDER BY created_at, id",
        |row| {
            Ok(SessionRow {
                id: row.get(0)?,
                agent_group_id: row.get(1)?,
                messaging_group_id: row.get(2)?,
                thread_id: row.get(3)?,
                agent_provider: row.get(4)?,
                status: row.get(5)?,
                last_active: row.get(6)?,
                created_at: row.get(7)?,
            })
        },
    )?;
    for table in UNMODELLED_TABLES {
        if has_table(conn, table)? {
            let rows: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |row| {
                    row.get(0)
                })?;
            if rows > 0 {
                v2.unmodelled.push((table.to_string(), rows));
            }
        }
    }
    Ok(v2)
}

fn read_configs(conn: &Connection) -> rusqlite::Result<Vec<ConfigRow>> {
    let cli_scope = optional_column(conn, "container_configs", "cli_scope")?;
    query(
        conn,
        &format!(
            "SELECT agent_group_id, provider, model, effort, image_tag, assistant_name,
               max_messages_per_prompt, skills, mcp_servers, packages_apt, packages_npm,
               additional_mounts, {cli_scope}
             FROM container_configs ORDER BY agent_group_id"
        ),
        |row| {
            Ok(ConfigRow {
                agent_group_id: row.get(0)?,
                provider: row.get(1)?,
                model: row.get(2)?,
                effort: row.get(3)?,
                image_tag: row.get(4)?,
                assistant_name: row.get(5)?,
                max_messages_per_prompt: row.get(6)?,
                skills: row.get(7)?,
                mcp_servers: row.get(8)?,
                packages_apt: row.get(9)?,
                packages_npm: row.get(10)?,
                additional_mounts: row.get(11)?,
                cli_scope: row.get(12)?,
            })
        },
    )
}

/// Wirings of either shape: the four engage columns (migration 10 and later) or the legacy
/// `trigger_rules` + `response_scope` (earlier), whichever the table has.
fn read_wirings(conn: &Connection) -> rusqlite::Result<Vec<WiringRow>> {
    let table = "messaging_group_agents";
    let columns = [
        "engage_mode",
        "engage_pattern",
        "sender_scope",
        "ignored_message_policy",
        "trigger_rules",
        "response_scope",
    ]
    .iter()
    .map(|column| optional_column(conn, table, column))
    .collect::<rusqlite::Result<Vec<String>>>()?
    .join(", ");
    let is_legacy = !has_column(conn, table, "engage_mode")?;
    query(
        conn,
        &format!(
            "SELECT id, messaging_group_id, agent_group_id, session_mode, priority, {columns}
             FROM {table} ORDER BY messaging_group_id, agent_group_id"
        ),
        |row| {
            Ok(WiringRow {
                id: row.get(0)?,
                messaging_group_id: row.get(1)?,
                agent_group_id: row.get(2)?,
                session_mode: row.get(3)?,
                priority: row.get(4)?,
                engage_mode: row.get(5)?,
                engage_pattern: row.get(6)?,
                sender_scope: row.get(7)?,
                ignored_message_policy: row.get(8)?,
                legacy: if is_legacy {
                    Some((row.get(9)?, row.get(10)?))
                } else {
                    None
                },
            })
        },
    )
}

fn query<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = conn.prepare(sql)?;
    let rows = statement.query_map([], map)?;
    rows.collect()
}

fn has_table(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |row| row.get(0),
    )
}

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |row| row.get(0),
    )
}

/// `column` when the table has it, else `NULL` (a DB from before the migration adding it).
fn optional_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<String> {
    Ok(if has_column(conn, table, column)? {
        column.to_string()
    } else {
        "NULL".to_string()
    })
}
