//! The `container_failures` table: agent containers that exited with an error nobody asked for,
//! or could not be started, with the last lines they wrote (`nanoclaw history --failures`).
//!
//! The runtime records; the CLI reads. The table keeps the newest [`KEEP`] rows.

use agent_runner::session_db::ids;
use rusqlite::{Connection, params};
use serde::Serialize;

/// Rows kept; older ones are deleted when a new one is recorded.
pub const KEEP: i64 = 1000;

/// One recorded failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub session_id: String,
    pub agent: String,
    /// The container's exit code; `None` when it could not be started at all.
    pub exit_code: Option<i64>,
    /// ISO-8601 UTC.
    pub failed_at: String,
    /// The container's last output lines (oldest first), or the reason it could not start.
    pub tail: Vec<String>,
}

const INSERT: &str =
    "INSERT INTO container_failures (session_id, agent_group_id, exit_code, failed_at, tail)
  VALUES (?1, ?2, ?3, ?4, ?5)";
const PRUNE: &str =
    "DELETE FROM container_failures WHERE id <= (SELECT MAX(id) FROM container_failures) - ?1";

/// Records a failure now (and prunes beyond [`KEEP`]).
pub fn record(
    conn: &Connection,
    session_id: &str,
    agent: &str,
    exit_code: Option<i64>,
    tail: &[String],
) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT)?.execute(params![
        session_id,
        agent,
        exit_code,
        ids::now_iso(),
        tail.join("\n")
    ])?;
    conn.prepare_cached(PRUNE)?.execute([KEEP])?;
    Ok(())
}

const RECENT: &str = "SELECT session_id, agent_group_id, exit_code, failed_at, tail
  FROM container_failures ORDER BY id DESC LIMIT ?1";

/// The newest `limit` failures, newest first. A DB from before the table existed reads as none.
pub fn recent(conn: &Connection, limit: usize) -> rusqlite::Result<Vec<Failure>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'container_failures')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(RECENT)?;
    let rows = statement.query_map([limit], |row| {
        let tail: String = row.get(4)?;
        Ok(Failure {
            session_id: row.get(0)?,
            agent: row.get(1)?,
            exit_code: row.get(2)?,
            failed_at: row.get(3)?,
            tail: tail.lines().map(str::to_string).collect(),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_back_newest_first_and_stay_bounded() {
        let conn = crate::db::open_in_memory().unwrap();
        record(&conn, "sess-1", "andy", Some(1), &["a".into(), "b".into()]).unwrap();
        record(&conn, "sess-2", "andy", None, &["image missing".into()]).unwrap();
        let failures = recent(&conn, 10).unwrap();
        assert_eq!(failures.len(), 2);
        assert_eq!(failures[0].session_id, "sess-2");
        assert_eq!(failures[0].exit_code, None);
        assert_eq!(failures[1].exit_code, Some(1));
        assert_eq!(failures[1].tail, ["a", "b"]);
        assert_eq!(recent(&conn, 1).unwrap().len(), 1);
        for _ in 0..KEEP {
            record(&conn, "sess-3", "andy", Some(2), &[]).unwrap();
        }
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM container_failures", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(count, KEEP);
    }
}
