//! THE session DB protocol shared by the host and the agent-runner: schemas, openers, seq parity.
//!
//! Every session folder holds two SQLite files, each with exactly ONE writer:
//!
//! - `inbound.db` — written only by the host (messages_in, delivered, destinations,
//!   session_routing); the container opens it read-only with `mmap_size=0`, fresh per poll.
//! - `outbound.db` — written only by the container (messages_out, processing_ack, session_state,
//!   container_state); the host opens it read-only, except at creation and to delete stale
//!   `processing` acks after it killed a container ([`open_outbound_host_rw`]).
//!
//! Both use `journal_mode=DELETE`, never WAL: WAL's shared-memory index does not propagate across
//! bind mounts, so a reader on the other side of the mount would freeze on a stale snapshot.
//!
//! Seq parity: `messages_in.seq` is even (host, [`host::insert_inbound`]); `messages_out.seq` is
//! odd (container, [`container::write_outbound`]), computed from the max over both tables, so a
//! seq names one message in either table and its parity says which. Both allocations run in a
//! `BEGIN IMMEDIATE` transaction of the writer's own file.
//!
//! Liveness is the mtime of `.heartbeat` ([`touch_heartbeat`]), never a DB write.
//!
//! This module is the only place allowed to open a session DB (clippy bans `Connection::open`
//! elsewhere). It does no routing or formatting: callers decide what to write.

pub mod container;
pub mod host;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OpenFlags};

pub use host::{
    ContainerState, DestinationRow, NewInbound, OutboundRow, container_state, count_due,
    due_outbound, insert_inbound, mark_delivered, processing_claims, sync_acks, write_destinations,
    write_session_routing,
};

/// File name of the host-written DB inside a session folder.
pub const INBOUND_FILE: &str = "inbound.db";
/// File name of the container-written DB inside a session folder.
pub const OUTBOUND_FILE: &str = "outbound.db";
/// File name of the liveness file inside a session folder.
pub const HEARTBEAT_FILE: &str = ".heartbeat";
/// How long either side waits for the other's lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Errors of the session DB layer.
#[derive(Debug, thiserror::Error)]
pub enum SessionDbError {
    #[error("session DB: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Result of every session DB function.
pub type Result<T> = std::result::Result<T, SessionDbError>;

/// Schema of `inbound.db` (host-owned). Idempotent.
pub const INBOUND_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages_in (
  id TEXT PRIMARY KEY,
  seq INTEGER UNIQUE,
  kind TEXT NOT NULL,
  timestamp TEXT NOT NULL,
  status TEXT DEFAULT 'pending',
  process_after TEXT,
  recurrence TEXT,
  series_id TEXT,
  tries INTEGER DEFAULT 0,
  trigger INTEGER NOT NULL DEFAULT 1,
  platform_id TEXT,
  channel_type TEXT,
  thread_id TEXT,
  content TEXT NOT NULL,
  source_session_id TEXT,
  on_wake INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_messages_in_series ON messages_in(series_id);
CREATE TABLE IF NOT EXISTS delivered (
  message_out_id TEXT PRIMARY KEY,
  platform_message_id TEXT,
  status TEXT NOT NULL DEFAULT 'delivered',
  delivered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS destinations (
  name TEXT PRIMARY KEY,
  display_name TEXT,
  type TEXT NOT NULL,
  channel_type TEXT,
  platform_id TEXT,
  agent_group_id TEXT
);
CREATE TABLE IF NOT EXISTS session_routing (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  channel_type TEXT,
  platform_id TEXT,
  thread_id TEXT
);
";

/// Schema of `outbound.db` (container-owned; the host creates it empty). Idempotent.
pub const OUTBOUND_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages_out (
  id TEXT PRIMARY KEY,
  seq INTEGER UNIQUE,
  in_reply_to TEXT,
  timestamp TEXT NOT NULL,
  deliver_after TEXT,
  recurrence TEXT,
  kind TEXT NOT NULL,
  platform_id TEXT,
  channel_type TEXT,
  thread_id TEXT,
  content TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS processing_ack (
  message_id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  status_changed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session_state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS container_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  current_tool TEXT,
  tool_declared_timeout_ms INTEGER,
  tool_started_at TEXT,
  updated_at TEXT NOT NULL
);
";

/// Host: creates the session folder, its `outbox/`, and both DBs with their schema (idempotent).
pub fn create(session_dir: &Path) -> Result<()> {
    let outbox = session_dir.join("outbox");
    fs::create_dir_all(&outbox).map_err(|source| SessionDbError::Io {
        path: outbox,
        source,
    })?;
    let inbound = open_inbound_host(&session_dir.join(INBOUND_FILE))?;
    inbound.execute_batch(INBOUND_SCHEMA)?;
    let outbound = open_rw(&session_dir.join(OUTBOUND_FILE), true)?;
    outbound.execute_batch(OUTBOUND_SCHEMA)?;
    Ok(())
}

/// Host: opens `inbound.db` read-write (creating it), DELETE journal, and runs the lazy column
/// migrations of older files (host.md §2.4). Open per operation; never keep it.
pub fn open_inbound_host(path: &Path) -> Result<Connection> {
    let conn = open_rw(path, true)?;
    migrate_inbound(&conn)?;
    conn.execute_batch(INBOUND_SCHEMA)?;
    Ok(conn)
}

/// Host: opens `outbound.db` read-only. If a container killed mid-write left a hot journal
/// (which a read-only connection cannot roll back: `SQLITE_READONLY_ROLLBACK`), it is rolled
/// back once through a read-write open first; a live writer's journal is never hot, so this
/// cannot undo a transaction in progress.
pub fn open_outbound_host(path: &Path) -> Result<Connection> {
    let conn = open_ro(path, false)?;
    match touch_schema(&conn) {
        Ok(()) => Ok(conn),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
        {
            drop(conn);
            touch_schema(&open_rw(path, false)?)?;
            open_ro(path, false)
        }
        Err(e) => Err(e.into()),
    }
}

/// The cheapest read that makes SQLite look at the journal.
fn touch_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
}

/// Host: opens `outbound.db` read-write, only to delete stale `processing` acks after a kill.
pub fn open_outbound_host_rw(path: &Path) -> Result<Connection> {
    open_rw(path, false)
}

/// Container: opens `inbound.db` read-only with `mmap_size=0` (open fresh per poll).
pub fn open_inbound_container(path: &Path) -> Result<Connection> {
    open_ro(path, true)
}

/// Container: opens `outbound.db` read-write, DELETE journal, and creates the container-owned
/// tables if an older host did not.
pub fn open_outbound_container(path: &Path) -> Result<Connection> {
    let conn = open_rw(path, true)?;
    conn.execute_batch(OUTBOUND_SCHEMA)?;
    Ok(conn)
}

/// Path of the liveness file of a session folder (`/workspace/.heartbeat` in the container).
pub fn heartbeat_path(session_dir: &Path) -> PathBuf {
    session_dir.join(HEARTBEAT_FILE)
}

/// Container: sets the heartbeat's mtime to now, creating the file if missing. Errors are
/// swallowed: liveness is best effort and must never stop the loop.
pub fn touch_heartbeat(session_dir: &Path) {
    let path = heartbeat_path(session_dir);
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    if let Ok(file) = file {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Host: mtime of the heartbeat, `None` when absent (a fresh spawn).
pub fn heartbeat_mtime(session_dir: &Path) -> Option<SystemTime> {
    fs::metadata(heartbeat_path(session_dir))
        .and_then(|m| m.modified())
        .ok()
}

#[allow(clippy::disallowed_methods)] // the one permitted opener of session DBs (pragmas below)
fn open_rw(path: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(conn)
}

#[allow(clippy::disallowed_methods)] // the one permitted read-only opener of session DBs
fn open_ro(path: &Path, no_mmap: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if no_mmap {
        conn.pragma_update(None, "mmap_size", 0)?;
    }
    Ok(conn)
}

/// Lazy `messages_in` column migrations for files written by older hosts (host.md §2.4). Runs
/// before the schema so its series index finds the column; missing tables are left to the schema.
fn migrate_inbound(conn: &Connection) -> Result<()> {
    let cols = columns(conn, "messages_in")?;
    if cols.is_empty() {
        return Ok(());
    }
    let has = |c: &str| cols.iter().any(|x| x == c);
    if !has("series_id") {
        conn.execute_batch(
            "ALTER TABLE messages_in ADD COLUMN series_id TEXT;
             UPDATE messages_in SET series_id = id WHERE series_id IS NULL;
             CREATE INDEX IF NOT EXISTS idx_messages_in_series ON messages_in(series_id);",
        )?;
    }
    if !has("trigger") {
        conn.execute_batch(
            "ALTER TABLE messages_in ADD COLUMN trigger INTEGER NOT NULL DEFAULT 1;",
        )?;
    }
    if !has("source_session_id") {
        conn.execute_batch("ALTER TABLE messages_in ADD COLUMN source_session_id TEXT;")?;
    }
    if !has("on_wake") {
        conn.execute_batch(
            "ALTER TABLE messages_in ADD COLUMN on_wake INTEGER NOT NULL DEFAULT 0;",
        )?;
    }
    let delivered = columns(conn, "delivered")?;
    if delivered.is_empty() {
        return Ok(());
    }
    if !delivered.iter().any(|c| c == "platform_message_id") {
        conn.execute_batch("ALTER TABLE delivered ADD COLUMN platform_message_id TEXT;")?;
    }
    if !delivered.iter().any(|c| c == "status") {
        conn.execute_batch(
            "ALTER TABLE delivered ADD COLUMN status TEXT NOT NULL DEFAULT 'delivered';",
        )?;
    }
    Ok(())
}

/// Column names of a table (empty when the table does not exist).
pub(crate) fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// Next odd seq for `messages_out` given the max over both tables (`max even → +1, odd → +2`).
pub fn next_odd_seq(max: i64) -> i64 {
    if max % 2 == 0 { max + 1 } else { max + 2 }
}

/// Next even seq for `messages_in` given its max (`< 2 → 2`, else the next even above max).
pub fn next_even_seq(max: i64) -> i64 {
    if max < 2 {
        2
    } else if max % 2 == 0 {
        max + 2
    } else {
        max + 1
    }
}

#[cfg(test)]
mod tests;
