//! The apply bookkeeping rows: `reconcile_state.generation` and `apply_history` (one row per
//! apply that changed the DB). `apply` records inside its transaction; `nanoclaw history`
//! reads. Nothing here decides anything.

use rusqlite::{Connection, params};

/// One row of `apply_history`, as `nanoclaw history` lists it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryEntry {
    pub generation: i64,
    pub applied_at: String,
    pub git_commit: Option<String>,
    pub manifest_digest: String,
    pub summary: String,
}

/// What one apply records besides its generation and time.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub generation: i64,
    pub applied_at: &'a str,
    pub manifest_digest: &'a str,
    pub git_commit: Option<&'a str>,
    /// The plan's summary line.
    pub summary: &'a str,
    /// The plan in its JSON format (docs/plan-format.md).
    pub plan_json: &'a str,
}

const INSERT_HISTORY: &str = "INSERT INTO apply_history
  (generation, applied_at, manifest_digest, git_commit, summary, plan_json)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Moves the DB to `record.generation` and adds its history row (inside the apply's
/// transaction).
pub fn record(tx: &Connection, record: &Record<'_>) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE reconcile_state SET generation = ?1 WHERE id = 1",
        [record.generation],
    )?;
    tx.execute(
        INSERT_HISTORY,
        params![
            record.generation,
            record.applied_at,
            record.manifest_digest,
            record.git_commit,
            record.summary,
            record.plan_json
        ],
    )?;
    Ok(())
}

/// Every apply, newest first.
pub fn read(conn: &Connection) -> rusqlite::Result<Vec<HistoryEntry>> {
    let mut statement = conn.prepare(
        "SELECT generation, applied_at, git_commit, manifest_digest, summary
         FROM apply_history ORDER BY generation DESC",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(HistoryEntry {
            generation: row.get(0)?,
            applied_at: row.get(1)?,
            git_commit: row.get(2)?,
            manifest_digest: row.get(3)?,
            summary: row.get(4)?,
        })
    })?;
    rows.collect()
}
