//! The central DB (`<data>/nanoclaw.db`): the one place it is opened, its pragmas and migrations.
//!
//! Every connection to the central DB comes from [`open`] (read-write, migrated) or
//! [`open_readonly`]; `Connection::open` is banned elsewhere (clippy.toml). The schema itself is
//! [`migrations::MIGRATIONS`]. [`open_copy`] opens a private copy of NanoClaw v2's DB, which
//! [`v2`] reads for `nanoclaw import`. Session DBs are not opened here: see `agent_runner::session_db`.
//!
//! Every statement on the central DB lives in this folder, one file per table group:
//! [`config`] (the configuration rows apply writes and plan compares), [`history`] (generations
//! and applies), [`routing`], [`sessions`], [`questions`] (questions agents ask), [`delivered`], [`failures`], [`executor`] (running containers, restart
//! requests, deferred restarts); and [`v2`], the rows of a
//! NanoClaw v2 install's own central DB.

pub mod agent_images;
pub mod approvals;
pub mod config;
pub mod delivered;
pub mod executor;
pub mod failures;
pub mod history;
pub mod migrations;
pub mod pairing;
pub mod questions;
pub mod routing;
pub mod sessions;
pub mod v2;
pub mod watch;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

/// How long a writer waits for another writer before `SQLITE_BUSY` (apply vs. runtime).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// File name of the central DB inside the data directory.
pub const FILE_NAME: &str = "nanoclaw.db";

/// Opens (creating if needed) the central DB read-write: WAL, foreign keys, busy timeout, and
/// every pending migration applied.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    create_private(path);
    #[allow(clippy::disallowed_methods)] // the one permitted opener of the central DB
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Creates the DB file owner-only (0600) when it does not exist yet: it holds chats and
/// configuration, and SQLite gives its `-wal` and `-shm` files the DB file's mode. Any failure
/// is left to SQLite's own open, which reports it.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

/// Opens an existing central DB read-only (for `plan`, tests and tools that must not write).
/// Fails when the file does not exist.
pub fn open_readonly(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Opens a private copy of a foreign SQLite DB (NanoClaw v2's, which `import` copies with its
/// WAL) read-write, so SQLite recovers the WAL into it; no pragma is changed and nothing is
/// migrated. Never pass a file another program owns: opening writes to it.
pub fn open_copy(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Opens a fresh in-memory DB with the full schema (unit tests of queries only).
pub fn open_in_memory() -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn)?;
    Ok(conn)
}

const CREATE_SCHEMA_VERSION: &str = "CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_schema_version_name ON schema_version (name);";

const INSERT_VERSION: &str = "INSERT INTO schema_version (version, name, applied)
  VALUES ((SELECT COALESCE(MAX(version), 0) + 1 FROM schema_version), ?1,
          strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";

/// Runs every migration whose name is not yet in `schema_version`, each in its own
/// transaction, recording it with an applied-order version number
/// (docs/runtime.md#central-db-tables-and-migrations).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(CREATE_SCHEMA_VERSION)?;
    for migration in migrations::MIGRATIONS {
        let applied: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_version WHERE name = ?1)",
            [migration.name],
            |row| row.get(0),
        )?;
        if applied {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(migration.sql)?;
        tx.execute(INSERT_VERSION, [migration.name])?;
        tx.commit()?;
    }
    Ok(())
}

/// The current generation: how many applies have changed the DB.
pub fn generation(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT generation FROM reconcile_state WHERE id = 1",
        [],
        |row| row.get(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_idempotent_and_recorded_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        drop(open(&path).unwrap());
        let mut conn = open(&path).unwrap();
        migrate(&mut conn).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM schema_version ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<&str> = migrations::MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(names, expected);
        assert_eq!(generation(&conn).unwrap(), 0);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_db_from_before_container_resources_upgrades_to_default_limits() {
        let dir = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods)] // builds a DB as the first release left it
        let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(CREATE_SCHEMA_VERSION).unwrap();
        let first = &migrations::MIGRATIONS[0];
        conn.execute_batch(first.sql).unwrap();
        conn.execute(INSERT_VERSION, [first.name]).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 'now');
             INSERT INTO container_configs (agent_group_id, updated_at) VALUES ('a', 'now');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let limits: (Option<i64>, Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT memory_bytes, cpu_millis, pids_limit FROM container_configs",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            limits,
            (None, None, None),
            "existing agents keep the defaults"
        );
        for column in ["memory_bytes", "cpu_millis", "pids_limit"] {
            let err = conn
                .execute(&format!("UPDATE container_configs SET {column} = 0"), [])
                .unwrap_err();
            assert!(
                err.to_string().contains("CHECK constraint failed"),
                "{column}: {err}"
            );
        }
    }

    #[test]
    fn a_db_from_before_agent_networks_upgrades_with_every_agent_on_the_full_network() {
        let dir = tempfile::tempdir().unwrap();
        #[allow(clippy::disallowed_methods)] // builds a DB as release 002 left it
        let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
        conn.execute_batch(CREATE_SCHEMA_VERSION).unwrap();
        for migration in &migrations::MIGRATIONS[..2] {
            conn.execute_batch(migration.sql).unwrap();
            conn.execute(INSERT_VERSION, [migration.name]).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 'now');
             INSERT INTO container_configs (agent_group_id, updated_at) VALUES ('a', 'now');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let network: String = conn
            .query_row("SELECT network FROM container_configs", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(network, "full");
        let err = conn
            .execute("UPDATE container_configs SET network = 'host'", [])
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    }

    #[test]
    fn enum_columns_reject_bad_values() {
        let conn = open_in_memory().unwrap();
        conn.execute(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 'now')",
            [],
        )
        .unwrap();
        let err = conn
            .execute(
                "INSERT INTO container_configs (agent_group_id, updated_at, cli_scope) VALUES ('a', 'now', 'bogus')",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
        let err = conn
            .execute(
                "INSERT INTO users (id, kind, created_at) VALUES ('cli:x', 'cli', 'now')",
                [],
            )
            .and_then(|_| {
                conn.execute(
                    "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('cli:x', 'owner', 'a', 'now')",
                    [],
                )
            })
            .unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    }
}
