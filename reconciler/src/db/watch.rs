//! The `watch_state` table (one row): what the manifest watcher (`nanoclaw watch`, `run
//! --watch`) last did: the folder it watches, the last generation it applied, and the last
//! invalid set's errors (`file:line: …`), cleared by the next valid one. `ops::watch` writes;
//! `status` reads.

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The watcher's last outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WatchState {
    pub dir: String,
    /// The diagnostics of the last invalid manifest set, one per line; `None` once a valid
    /// set was loaded.
    pub error: Option<String>,
    pub error_at: Option<String>,
    /// The generation the watcher's last apply wrote (or found current).
    pub applied_generation: Option<i64>,
    pub applied_at: Option<String>,
    /// The changes the last reconcile held until confirmed (deletions, rebuilds), one
    /// `address (action)` per line; `None` when nothing is held.
    pub held: Option<String>,
}

const RECORD_ERROR: &str =
    "INSERT INTO watch_state (id, dir, error, error_at) VALUES (1, ?1, ?2, ?3)
  ON CONFLICT (id) DO UPDATE SET dir = ?1, error = ?2, error_at = ?3";

/// Records that the set in `dir` is invalid (`error`: its diagnostics).
pub fn record_error(conn: &Connection, dir: &str, error: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_ERROR)?
        .execute(params![dir, error, ids::now_iso()])?;
    Ok(())
}

const RECORD_APPLIED: &str = "INSERT INTO watch_state (id, dir, applied_generation, applied_at)
  VALUES (1, ?1, ?2, ?3)
  ON CONFLICT (id) DO UPDATE SET dir = ?1, error = NULL, error_at = NULL,
    applied_generation = ?2, applied_at = ?3";

/// Records a valid set applied (or found current) as `generation`; clears the error.
pub fn record_applied(conn: &Connection, dir: &str, generation: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_APPLIED)?
        .execute(params![dir, generation, ids::now_iso()])?;
    Ok(())
}

/// Records the changes the last reconcile held (`held` empty: none).
pub fn record_held(conn: &Connection, held: &[String]) -> rusqlite::Result<()> {
    let text = (!held.is_empty()).then(|| held.join("\n"));
    conn.prepare_cached("UPDATE watch_state SET held = ?1 WHERE id = 1")?
        .execute(params![text])?;
    Ok(())
}

/// The watcher's last outcome; `None` when no watcher ever ran on this data dir.
pub fn get(conn: &Connection) -> rusqlite::Result<Option<WatchState>> {
    conn.prepare_cached(
        "SELECT dir, error, error_at, applied_generation, applied_at, held FROM watch_state WHERE id = 1",
    )?
    .query_row([], |row| {
        Ok(WatchState {
            dir: row.get(0)?,
            error: row.get(1)?,
            error_at: row.get(2)?,
            applied_generation: row.get(3)?,
            applied_at: row.get(4)?,
            held: row.get(5)?,
        })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_kept_until_a_valid_set_is_applied() {
        let conn = crate::db::open_in_memory().unwrap();
        assert_eq!(get(&conn).unwrap(), None);
        record_applied(&conn, "m", 3).unwrap();
        record_error(&conn, "m", "a.yaml:4:3: bad").unwrap();
        let state = get(&conn).unwrap().unwrap();
        assert_eq!(state.error.as_deref(), Some("a.yaml:4:3: bad"));
        assert_eq!(
            state.applied_generation,
            Some(3),
            "the last applied generation stays"
        );
        record_applied(&conn, "m", 4).unwrap();
        let state = get(&conn).unwrap().unwrap();
        assert_eq!((state.error, state.applied_generation), (None, Some(4)));
    }

    #[test]
    fn held_changes_are_replaced_at_each_reconcile() {
        let conn = crate::db::open_in_memory().unwrap();
        record_applied(&conn, "m", 3).unwrap();
        record_held(&conn, &["agent.a (delete)".to_string()]).unwrap();
        assert_eq!(
            get(&conn).unwrap().unwrap().held.as_deref(),
            Some("agent.a (delete)")
        );
        record_held(&conn, &[]).unwrap();
        assert_eq!(get(&conn).unwrap().unwrap().held, None);
    }
}
