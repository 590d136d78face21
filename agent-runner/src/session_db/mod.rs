//! THE session DB protocol shared by the host and the agent-runner: schemas, openers, seq parity,
//! and the layout of a session folder.
//!
//! ```text
//! <session>/                 host-owned; the container sees it read-only at /workspace
//!   inbound.db               written only by the host
//!   container.json, CLAUDE.md, .claude-fragments/, inbox/<msg>/…   host-written
//!   outbound/                agent-writable; read-write at /workspace/outbound
//!     outbound.db            written only by the container (it creates it at startup)
//!     .heartbeat             touched by the container (liveness)
//!     outbox/                files the agent sends
//! ```
//!
//! Every session folder holds two SQLite files, each with exactly ONE writer:
//!
//! - `inbound.db` — written only by the host (messages_in, delivered, destinations,
//!   session_routing); the container opens it read-only with `mmap_size=0`, fresh per poll.
//! - `outbound/outbound.db` — written only by the container (messages_out, processing_ack,
//!   session_state, container_state). The host never writes it: it opens it read-only, after
//!   checking that the file and its journal are regular files ([`open_outbound_host`]), and
//!   bounds everything it reads from it (`host`).
//!
//! Both use `journal_mode=DELETE`, never WAL: WAL's shared-memory index does not propagate across
//! bind mounts, so a reader on the other side of the mount would freeze on a stale snapshot.
//!
//! Seq parity: `messages_in.seq` is even (host, [`host::insert_inbound`]); `messages_out.seq` is
//! odd (container, [`container::write_outbound`]), computed from the max over both tables, so a
//! seq names one message in either table and its parity says which. Both allocations run in a
//! `BEGIN IMMEDIATE` transaction of the writer's own file.
//!
//! Liveness is the mtime of `outbound/.heartbeat` ([`touch_heartbeat`]), never a DB write.
//!
//! This module is the only place allowed to open a session DB (clippy bans `Connection::open`
//! elsewhere) and the only one that runs statements on its tables (a tidy test checks): the
//! openers return [`InboundDb`] or [`OutboundDb`], and every step takes the one of its file. It
//! also owns the values stored there: kinds and statuses ([`values`]), ids and times ([`ids`]),
//! chat message content ([`content`]). It does no routing or formatting: callers decide what
//! to write.

pub mod container;
pub mod content;
pub mod host;
pub mod ids;
pub mod untrusted;
pub mod values;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::config::DbConfig;
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags};

pub use content::{Attachment, Content};
pub use host::{
    DeliveredRow, DeliveryRecord, DestinationRow, NewInbound, RetryState, count_due,
    delivered_rows, fail_inbound, insert_inbound, insert_new_inbound, latest_source_session_from,
    mark_delivered, newest_chat_from_people, oldest_pending_trigger, retry_later, retry_state,
    source_session_of, sync_acks, write_destinations, write_session_routing,
};
pub use ids::{new_id, now_iso, parse_time};
pub use untrusted::{
    ContainerState, Due, OutboundRow, container_state, due_outbound, given_back,
    has_later_outbound, processing_claims, unaddressable_outbound,
};
pub use values::{AckStatus, DeliveryStatus, InboundStatus, Kind};

/// File name of the host-written DB inside a session folder.
pub const INBOUND_FILE: &str = "inbound.db";
/// Retries of a message before the host marks it `failed`: the first attempt plus this many
/// (docs/runtime.md#stuck-containers-and-retries). The host decides each retry's backoff; the
/// runner reads this to know that a message it gives back had its last try.
pub const MAX_TRIES: i64 = 5;
/// The agent-writable folder inside a session folder (`/workspace/outbound` in the container).
pub const OUTBOUND_DIR: &str = "outbound";
/// File name of the container-written DB inside [`OUTBOUND_DIR`].
pub const OUTBOUND_FILE: &str = "outbound.db";
/// File name of the liveness file inside [`OUTBOUND_DIR`].
pub const HEARTBEAT_FILE: &str = ".heartbeat";
/// Folder of files the agent sends, inside [`OUTBOUND_DIR`].
pub const OUTBOX_DIR: &str = "outbox";
/// The composed container configuration, in the (read-only) session folder.
pub const CONTAINER_CONFIG_FILE: &str = "container.json";
/// The `channel_type` of an agent's address: agent-to-agent rows and agent destinations, whose
/// `platform_id` (or `agent_group_id`) is the agent.
pub const AGENT_CHANNEL_TYPE: &str = "agent";
/// Suffix SQLite gives a DELETE-mode journal.
pub const JOURNAL_SUFFIX: &str = "-journal";
/// Mode of `inbound.db`: the container (another uid when the daemon is root) reads it.
pub const INBOUND_MODE: u32 = 0o644;
/// How long either side waits for the other's lock before `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// Longest string or blob a host connection to a container-written DB materialises
/// (`SQLITE_LIMIT_LENGTH`): a crafted row cannot make the host allocate more than this per value.
pub const HOST_MAX_VALUE_BYTES: i32 = 16 * 1024 * 1024;

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
    /// A session file is a symlink, FIFO, directory or device: never opened.
    #[error("`{path}` is {kind}, not a regular file; not opened")]
    NotRegular { path: PathBuf, kind: &'static str },
    /// The container-written DB's schema is not the protocol's (a view, generated columns).
    #[error("`{path}`: {why}")]
    BadSchema { path: PathBuf, why: String },
}

impl SessionDbError {
    /// True when the file itself is damaged or unsafe (not a database, corrupt, not a regular
    /// file, a foreign schema), as opposed to busy, missing or mid-recovery.
    pub fn is_damaged(&self) -> bool {
        match self {
            SessionDbError::NotRegular { .. } | SessionDbError::BadSchema { .. } => true,
            SessionDbError::Sqlite(err) => matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ),
            SessionDbError::Io { .. } => false,
        }
    }

    /// True when the file does not exist.
    pub fn is_missing(&self) -> bool {
        match self {
            SessionDbError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            SessionDbError::Sqlite(err) => {
                err.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen)
            }
            _ => false,
        }
    }
}

/// Result of every session DB function.
pub type Result<T> = std::result::Result<T, SessionDbError>;

/// A connection to a session's `inbound.db`: read-write on the host (its only writer), read-only
/// in the container. Its own type, so a statement meant for `outbound.db` cannot be run on it:
/// every protocol step takes the newtype of the file it works on.
///
/// ```
/// # use agent_runner::session_db::{InboundDb, OutboundDb, count_due, sync_acks};
/// fn sweep(inbound: &mut InboundDb, outbound: &OutboundDb) -> agent_runner::session_db::Result<i64> {
///     sync_acks(inbound, outbound)?;
///     count_due(inbound)
/// }
/// ```
///
/// Swapped, it does not compile:
///
/// ```compile_fail
/// # use agent_runner::session_db::{InboundDb, OutboundDb, count_due, sync_acks};
/// fn sweep(inbound: &mut InboundDb, outbound: &OutboundDb) -> agent_runner::session_db::Result<i64> {
///     sync_acks(inbound, outbound)?;
///     count_due(outbound)
/// }
/// ```
#[derive(Debug)]
pub struct InboundDb(Connection);

/// A connection to a session's `outbound/outbound.db`: read-write in the container (its only
/// writer), read-only and defensive on the host.
#[derive(Debug)]
pub struct OutboundDb(Connection);

impl InboundDb {
    /// The raw connection, for tests and tools that read the tables directly. Every statement
    /// of the protocol lives in this module (a tidy test checks that no other production code
    /// spells one).
    pub fn as_connection(&self) -> &Connection {
        &self.0
    }
}

impl OutboundDb {
    /// The raw connection, for tests and tools (see [`InboundDb::as_connection`]).
    pub fn as_connection(&self) -> &Connection {
        &self.0
    }
}

/// `<session>/inbound.db`.
pub fn inbound_path(session_dir: &Path) -> PathBuf {
    session_dir.join(INBOUND_FILE)
}

/// `<session>/outbound/`: the only part of a session folder the container may write.
pub fn outbound_dir(session_dir: &Path) -> PathBuf {
    session_dir.join(OUTBOUND_DIR)
}

/// `<session>/outbound/outbound.db`.
pub fn outbound_path(session_dir: &Path) -> PathBuf {
    outbound_dir(session_dir).join(OUTBOUND_FILE)
}

/// `<session>/container.json`.
pub fn container_config_path(session_dir: &Path) -> PathBuf {
    session_dir.join(CONTAINER_CONFIG_FILE)
}

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

/// Creates a session folder as a container finds it after its start: `inbound.db` (the
/// host's part, [`create_inbound`]) plus `outbound/outbox/` and `outbound/outbound.db` (what the
/// runner creates itself). For tests and tools: the host never creates `outbound.db`.
pub fn create(session_dir: &Path) -> Result<()> {
    create_inbound(session_dir)?;
    let outbox = outbound_dir(session_dir).join(OUTBOX_DIR);
    fs::create_dir_all(&outbox).map_err(|source| SessionDbError::Io {
        path: outbox,
        source,
    })?;
    open_outbound_container(&outbound_path(session_dir))?;
    Ok(())
}

/// Creates the session folder (when missing) and `inbound.db` with its schema (idempotent).
/// For tests and tools; the host creates it atomically through [`create_inbound_file`] and a
/// rename, so nobody sees a half-made file.
pub fn create_inbound(session_dir: &Path) -> Result<()> {
    fs::create_dir_all(session_dir).map_err(|source| SessionDbError::Io {
        path: session_dir.to_path_buf(),
        source,
    })?;
    let path = inbound_path(session_dir);
    check_files(&path, false)?;
    if path.exists() {
        open_inbound_host(&path)?;
        return Ok(());
    }
    drop(create_inbound_file(&path)?);
    Ok(())
}

/// Host: creates a fresh `inbound.db` schema at `path` (which must not exist yet: the host
/// gives it an unpredictable temp name and renames it into place), mode [`INBOUND_MODE`]
/// whatever the umask. Returns the connection, to fill projections before the rename.
pub fn create_inbound_file(path: &Path) -> Result<InboundDb> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(SessionDbError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    let conn = open_rw(path, true)?;
    conn.execute_batch(INBOUND_SCHEMA)?;
    // chmod(2) by path, never an open + close: closing any descriptor of a DB file drops every
    // POSIX lock this process holds on it, including other connections' (SQLite's pitfall).
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(INBOUND_MODE)).map_err(|source| {
        SessionDbError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(InboundDb(conn))
}

/// Host: opens an existing `inbound.db` read-write (DELETE journal) and runs the lazy column
/// migrations of older files (docs/runtime.md#session-dbs-tables-and-lazy-migrations). Open per
/// operation; never keep it. A missing file is an error ([`SessionDbError::is_missing`]):
/// recreating it loses what it held, so that is the caller's decision ([`create_inbound`]).
pub fn open_inbound_host(path: &Path) -> Result<InboundDb> {
    check_files(path, true)?;
    let conn = open_rw(path, false)?;
    harden(&conn)?;
    migrate_inbound(&conn)?;
    conn.execute_batch(INBOUND_SCHEMA)?;
    Ok(InboundDb(conn))
}

/// Host: opens an existing `inbound.db` read-only, for reads that may take a while (delivery).
///
/// Why not read-write: a read-write connection whose file was deleted and recreated under it
/// takes the new file's journal for its own hot journal, rolls it back into the deleted file
/// and deletes it, breaking the new file's writer (SQLite's "unlinked while open" hazard). A
/// read-only connection never does; writes open read-write for the one statement.
pub fn open_inbound_reader(path: &Path) -> Result<InboundDb> {
    check_files(path, true)?;
    let conn = open_ro(path, true)?;
    harden(&conn)?;
    touch_schema(&conn)?;
    Ok(InboundDb(conn))
}

/// Host: opens the container-written `outbound.db` read-only, never writing it:
///
/// - `outbound.db` must be a regular file and `outbound.db-journal` a regular file or absent
///   (checked with `lstat`; anything else is [`SessionDbError::NotRegular`], never opened);
/// - SQLite opens it with `SQLITE_OPEN_NOFOLLOW`, `mmap_size=0` (a truncated file cannot fault
///   the host), defensive mode, untrusted schema, no views, and values capped at
///   [`HOST_MAX_VALUE_BYTES`];
/// - `messages_out` and `processing_ack` must be plain tables without computed columns.
///
/// A container killed mid-write leaves a hot journal that a read-only connection cannot roll
/// back: the open fails (`SQLITE_READONLY_ROLLBACK`, not damage) until the next container rolls
/// it back. Between the `lstat` and SQLite's own `open` the container could swap in a FIFO;
/// that residual window is documented in docs/security.md.
pub fn open_outbound_host(path: &Path) -> Result<OutboundDb> {
    check_files(path, true)?;
    let conn = open_ro(path, true)?;
    harden(&conn)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, HOST_MAX_VALUE_BYTES)?;
    touch_schema(&conn)?;
    check_outbound_schema(&conn, "main", path)?;
    Ok(OutboundDb(conn))
}

/// The cheapest read that makes SQLite look at the journal.
fn touch_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|_| ())
}

/// Refuses an `outbound.db` whose protocol tables are views, virtual tables or have computed
/// columns: reading those would run the container's code in the host's SQLite.
pub(crate) fn check_outbound_schema(conn: &Connection, schema: &str, path: &Path) -> Result<()> {
    let bad = |why: String| SessionDbError::BadSchema {
        path: path.to_path_buf(),
        why,
    };
    for table in ["messages_out", "processing_ack", "container_state"] {
        let found: Option<(String, Option<String>)> = conn
            .query_row(
                &format!("SELECT type, sql FROM \"{schema}\".sqlite_master WHERE name = ?1"),
                [table],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                err => Err(err),
            })?;
        let Some((kind, sql)) = found else { continue };
        let plain = sql.as_deref().is_some_and(|sql| {
            sql.trim_start()
                .get(..12)
                .is_some_and(|head| head.eq_ignore_ascii_case("CREATE TABLE"))
        });
        if kind != "table" || !plain {
            return Err(bad(format!("`{table}` is a {kind}, not a plain table")));
        }
        let computed: i64 = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_xinfo(?1, ?2) WHERE hidden <> 0",
            [table, schema],
            |r| r.get(0),
        )?;
        if computed > 0 {
            return Err(bad(format!("`{table}` has computed columns")));
        }
    }
    Ok(())
}

/// Container: opens `inbound.db` read-only with `mmap_size=0` (open fresh per poll).
pub fn open_inbound_container(path: &Path) -> Result<InboundDb> {
    Ok(InboundDb(open_ro(path, true)?))
}

/// Container: opens `outbound.db` read-write (creating it), DELETE journal, and creates the
/// container-owned tables. Opening rolls back a hot journal a killed predecessor left.
pub fn open_outbound_container(path: &Path) -> Result<OutboundDb> {
    let conn = open_rw(path, true)?;
    conn.execute_batch(OUTBOUND_SCHEMA)?;
    Ok(OutboundDb(conn))
}

/// Path of the liveness file of a session folder (`/workspace/outbound/.heartbeat` in the
/// container).
pub fn heartbeat_path(session_dir: &Path) -> PathBuf {
    outbound_dir(session_dir).join(HEARTBEAT_FILE)
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

/// Host: mtime of the heartbeat, `None` when absent (a fresh spawn) or not a regular file
/// (read with `lstat`: a symlink is never followed). A time in the future reads as now.
pub fn heartbeat_mtime(session_dir: &Path) -> Option<SystemTime> {
    let meta = fs::symlink_metadata(heartbeat_path(session_dir)).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    let mtime = meta.modified().ok()?;
    Some(mtime.min(SystemTime::now()))
}

/// Refuses a DB file (and its journal) that is not a regular file, without following links.
/// `must_exist`: a missing DB file is an error too (the journal may always be absent).
fn check_files(path: &Path, must_exist: bool) -> Result<()> {
    let mut journal = path.as_os_str().to_owned();
    journal.push(JOURNAL_SUFFIX);
    for (candidate, required) in [
        (path.to_path_buf(), must_exist),
        (PathBuf::from(journal), false),
    ] {
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_file() => {}
            Ok(meta) => {
                return Err(SessionDbError::NotRegular {
                    path: candidate,
                    kind: kind_name(&meta.file_type()),
                });
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(source) => {
                return Err(SessionDbError::Io {
                    path: candidate,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn kind_name(kind: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "a symlink"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    }
}

/// Settings for a host connection that may read container-written data: defensive mode, no
/// trust in schema-defined functions, no views, no triggers.
fn harden(conn: &Connection) -> Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)?;
    conn.pragma_update(None, "cell_size_check", true)?;
    Ok(())
}

/// The path SQLite is given: the parent resolved (the host owns every parent of a session
/// file), the file name kept, so `SQLITE_OPEN_NOFOLLOW` refuses exactly a symlinked file.
fn resolved(path: &Path) -> Result<PathBuf> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(path.to_path_buf());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let parent = fs::canonicalize(parent).map_err(|source| SessionDbError::Io {
        path: parent.to_path_buf(),
        source,
    })?;
    Ok(parent.join(name))
}

#[allow(clippy::disallowed_methods)] // the one permitted opener of session DBs (pragmas below)
fn open_rw(path: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(resolved(path)?, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(conn)
}

#[allow(clippy::disallowed_methods)] // the one permitted read-only opener of session DBs
fn open_ro(path: &Path, no_mmap: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(resolved(path)?, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if no_mmap {
        conn.pragma_update(None, "mmap_size", 0)?;
    }
    Ok(conn)
}

/// Lazy `messages_in` column migrations for files written by older hosts
/// (docs/runtime.md#session-dbs-tables-and-lazy-migrations). Runs before the schema so its series
/// index finds the column; missing tables are left to the schema.
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
        conn.execute_batch(&format!(
            "ALTER TABLE delivered ADD COLUMN status TEXT NOT NULL DEFAULT '{}';",
            DeliveryStatus::Delivered
        ))?;
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
