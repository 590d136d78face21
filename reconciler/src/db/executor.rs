//! The executor's rows (docs/operating.md#what-happens-to-running-agents):
//!
//! - `running_containers`: the containers the daemon runs, each with the configuration hash and
//!   generation it was started with and the executor's verdict on it (`current`, `replacing`,
//!   `deferred`, `unknown`). The daemon's executor rewrites the whole table at each of its passes
//!   (and empties it at startup and shutdown); `status` and `apply` read it.
//! - `restart_requests`: `nanoclaw restart` writes one; the daemon's executor takes it, acts and
//!   records the outcome.
//! - `deferred_restarts`: agents whose changes `apply --no-restart` holds back from their running
//!   containers, until `nanoclaw restart` (or a removal of the agent) clears them.

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The executor's verdict on a running container, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It runs what its session's configuration composes to now.
    Current,
    /// It is stale and being replaced at its next safe point.
    Replacing,
    /// It is stale, and `apply --no-restart` holds the restart back.
    Deferred,
    /// Its configuration could not be composed (the reason says why).
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Current => "current",
            Verdict::Replacing => "replacing",
            Verdict::Deferred => "deferred",
            Verdict::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Verdict {
        match text {
            "current" => Verdict::Current,
            "replacing" => Verdict::Replacing,
            "deferred" => Verdict::Deferred,
            _ => Verdict::Unknown,
        }
    }
}

/// One running container as the executor last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunningContainer {
    pub session_id: String,
    pub agent: String,
    /// Its `nanoclaw.config-hash` label.
    pub config_hash: String,
    /// The generation its configuration was read at, when known.
    pub generation: Option<i64>,
    pub started_at: String,
    pub verdict: Verdict,
    /// Why it is not current (or why that is unknown).
    pub reason: Option<String>,
}

const INSERT_RUNNING: &str = "INSERT INTO running_containers
  (session_id, agent_group_id, config_hash, generation, started_at, verdict, reason, seen_at)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Replaces the table with `containers` (one transaction).
pub fn replace_running(
    conn: &mut Connection,
    containers: &[RunningContainer],
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM running_containers", [])?;
    let now = ids::now_iso();
    for container in containers {
        tx.prepare_cached(INSERT_RUNNING)?.execute(params![
            container.session_id,
            container.agent,
            container.config_hash,
            container.generation,
            container.started_at,
            container.verdict.as_str(),
            container.reason,
            now,
        ])?;
    }
    tx.commit()
}

/// Every running container, by agent then session.
pub fn running(conn: &Connection) -> rusqlite::Result<Vec<RunningContainer>> {
    let mut statement = conn.prepare_cached(
        "SELECT session_id, agent_group_id, config_hash, generation, started_at, verdict, reason
         FROM running_containers ORDER BY agent_group_id, session_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(RunningContainer {
            session_id: row.get(0)?,
            agent: row.get(1)?,
            config_hash: row.get(2)?,
            generation: row.get(3)?,
            started_at: row.get(4)?,
            verdict: Verdict::parse(&row.get::<_, String>(5)?),
            reason: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// A `nanoclaw restart` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartRequest {
    pub id: i64,
    pub agent: String,
    /// Only this session's container; every running one of the agent when `None`.
    pub session_id: Option<String>,
    /// Rebuild the agent's image first.
    pub rebuild: bool,
    /// Written as an on-wake row that only the fresh container's first poll takes.
    pub message: Option<String>,
    pub requested_at: String,
    pub done_at: Option<String>,
    /// What the daemon did (`restarted 2 containers`), or why it could not.
    pub outcome: Option<String>,
}

/// What `nanoclaw restart` asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRestart<'a> {
    pub agent: &'a str,
    pub session_id: Option<&'a str>,
    pub rebuild: bool,
    pub message: Option<&'a str>,
}

/// Records a restart request for the daemon; returns its id.
pub fn request_restart(conn: &Connection, request: &NewRestart<'_>) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO restart_requests (agent_group_id, session_id, rebuild, message, requested_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        request.agent,
        request.session_id,
        request.rebuild,
        request.message,
        ids::now_iso()
    ])?;
    Ok(conn.last_insert_rowid())
}

const REQUEST_COLUMNS: &str =
    "id, agent_group_id, session_id, rebuild, message, requested_at, done_at, outcome";

fn request_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RestartRequest> {
    Ok(RestartRequest {
        id: row.get(0)?,
        agent: row.get(1)?,
        session_id: row.get(2)?,
        rebuild: row.get(3)?,
        message: row.get(4)?,
        requested_at: row.get(5)?,
        done_at: row.get(6)?,
        outcome: row.get(7)?,
    })
}

/// Requests not done yet, oldest first.
pub fn open_requests(conn: &Connection) -> rusqlite::Result<Vec<RestartRequest>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM restart_requests WHERE done_at IS NULL ORDER BY id"
    ))?;
    let rows = statement.query_map([], request_from_row)?;
    rows.collect()
}

/// One request by id.
pub fn request(conn: &Connection, id: i64) -> rusqlite::Result<Option<RestartRequest>> {
    conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM restart_requests WHERE id = ?1"
    ))?
    .query_row([id], request_from_row)
    .optional()
}

/// Records what the daemon did with request `id`.
pub fn finish_request(conn: &Connection, id: i64, outcome: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE restart_requests SET done_at = ?2, outcome = ?3 WHERE id = ?1")?
        .execute(params![id, ids::now_iso(), outcome])?;
    Ok(())
}

/// An agent whose restarts `apply --no-restart` holds back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deferred {
    pub agent: String,
    /// The generation that deferred it.
    pub generation: i64,
    pub since: String,
}

/// Holds back restarts of `agent` from `generation` on (inside the apply's transaction).
pub fn defer(conn: &Connection, agent: &str, generation: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO deferred_restarts (agent_group_id, generation, since) VALUES (?1, ?2, ?3)
         ON CONFLICT (agent_group_id) DO UPDATE SET generation = ?2, since = ?3",
    )?
    .execute(params![agent, generation, ids::now_iso()])?;
    Ok(())
}

/// Lets `agent`'s running containers be replaced again; true when a deferral was cleared.
pub fn clear_deferral(conn: &Connection, agent: &str) -> rusqlite::Result<bool> {
    let n_rows = conn
        .prepare_cached("DELETE FROM deferred_restarts WHERE agent_group_id = ?1")?
        .execute([agent])?;
    Ok(n_rows > 0)
}

/// Ends `agent`'s deferral made by `generation` (not a newer one); true when it did.
pub fn end_deferral(conn: &Connection, agent: &str, generation: i64) -> rusqlite::Result<bool> {
    let n_rows = conn
        .prepare_cached(
            "DELETE FROM deferred_restarts WHERE agent_group_id = ?1 AND generation = ?2",
        )?
        .execute(params![agent, generation])?;
    Ok(n_rows > 0)
}

/// Every deferral, by agent.
pub fn deferred(conn: &Connection) -> rusqlite::Result<Vec<Deferred>> {
    let mut statement = conn.prepare_cached(
        "SELECT agent_group_id, generation, since FROM deferred_restarts ORDER BY agent_group_id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(Deferred {
            agent: row.get(0)?,
            generation: row.get(1)?,
            since: row.get(2)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        crate::db::open_in_memory().unwrap()
    }

    #[test]
    fn running_containers_are_replaced_as_a_whole() {
        let mut conn = db();
        let container = |session: &str, verdict| RunningContainer {
            session_id: session.to_string(),
            agent: "andy".to_string(),
            config_hash: "h1".to_string(),
            generation: Some(3),
            started_at: "2026-01-01T00:00:00.000Z".to_string(),
            verdict,
            reason: None,
        };
        replace_running(
            &mut conn,
            &[
                container("s1", Verdict::Current),
                container("s2", Verdict::Replacing),
            ],
        )
        .unwrap();
        replace_running(&mut conn, &[container("s2", Verdict::Deferred)]).unwrap();
        assert_eq!(
            running(&conn).unwrap(),
            [container("s2", Verdict::Deferred)]
        );
    }

    #[test]
    fn a_request_is_open_until_finished() {
        let conn = db();
        let id = request_restart(
            &conn,
            &NewRestart {
                agent: "andy",
                message: Some("hello again"),
                ..NewRestart::default()
            },
        )
        .unwrap();
        let open = open_requests(&conn).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].message.as_deref(), Some("hello again"));
        finish_request(&conn, id, "restarted 1 container").unwrap();
        assert!(open_requests(&conn).unwrap().is_empty());
        let done = request(&conn, id).unwrap().unwrap();
        assert_eq!(done.outcome.as_deref(), Some("restarted 1 container"));
    }

    #[test]
    fn a_deferral_is_kept_until_cleared() {
        let conn = db();
        defer(&conn, "andy", 4).unwrap();
        defer(&conn, "andy", 5).unwrap();
        assert_eq!(deferred(&conn).unwrap()[0].generation, 5);
        assert!(
            !end_deferral(&conn, "andy", 4).unwrap(),
            "a newer deferral stays"
        );
        assert!(clear_deferral(&conn, "andy").unwrap());
        assert!(!clear_deferral(&conn, "andy").unwrap());
        defer(&conn, "andy", 6).unwrap();
        assert!(end_deferral(&conn, "andy", 6).unwrap());
    }
}
