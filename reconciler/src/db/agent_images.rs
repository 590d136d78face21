//! The `agent_images` table: the per-agent image each agent with packages runs (its last
//! successful build) and its last failed build, kept until a build succeeds (`status` shows
//! it). `ops::agent_images` writes; `status` and the executor read.

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// One agent's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgentImageRow {
    pub agent: String,
    /// The image the agent runs (its last successful build), if any.
    pub tag: Option<String>,
    /// ISO-8601 UTC of that build (or of the check that found it current).
    pub built_at: Option<String>,
    /// The last failed build's error; `None` once a build succeeds.
    pub error: Option<String>,
    /// The tag that build would have made.
    pub failed_tag: Option<String>,
    pub failed_at: Option<String>,
}

const RECORD_BUILT: &str = "INSERT INTO agent_images (agent_group_id, tag, built_at)
  VALUES (?1, ?2, ?3)
  ON CONFLICT (agent_group_id) DO UPDATE SET tag = ?2, built_at = ?3,
    error = NULL, failed_tag = NULL, failed_at = NULL";

/// Records that `agent` runs `tag` now (and clears its last error).
pub fn record_built(conn: &Connection, agent: &str, tag: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_BUILT)?
        .execute(params![agent, tag, ids::now_iso()])?;
    Ok(())
}

const RECORD_FAILED: &str =
    "INSERT INTO agent_images (agent_group_id, error, failed_tag, failed_at)
  VALUES (?1, ?2, ?3, ?4)
  ON CONFLICT (agent_group_id) DO UPDATE SET error = ?2, failed_tag = ?3, failed_at = ?4";

/// Records a failed build of `agent` (its previous image, if any, stays recorded).
pub fn record_failed(
    conn: &Connection,
    agent: &str,
    failed_tag: &str,
    error: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_FAILED)?.execute(params![
        agent,
        error,
        failed_tag,
        ids::now_iso()
    ])?;
    Ok(())
}

/// Forgets `agent` (it has no packages any more, or was removed).
pub fn forget(conn: &Connection, agent: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM agent_images WHERE agent_group_id = ?1")?
        .execute([agent])?;
    Ok(())
}

const SELECT: &str =
    "SELECT agent_group_id, tag, built_at, error, failed_tag, failed_at FROM agent_images";

/// `agent`'s row, if any.
pub fn get(conn: &Connection, agent: &str) -> rusqlite::Result<Option<AgentImageRow>> {
    conn.prepare_cached(&format!("{SELECT} WHERE agent_group_id = ?1"))?
        .query_row([agent], from_row)
        .optional()
}

/// Every row, by agent.
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<AgentImageRow>> {
    let mut statement = conn.prepare_cached(&format!("{SELECT} ORDER BY agent_group_id"))?;
    let rows = statement.query_map([], from_row)?;
    rows.collect()
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AgentImageRow> {
    Ok(AgentImageRow {
        agent: row.get(0)?,
        tag: row.get(1)?,
        built_at: row.get(2)?,
        error: row.get(3)?,
        failed_tag: row.get(4)?,
        failed_at: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_keeps_the_previous_image_and_a_success_clears_the_error() {
        let conn = crate::db::open_in_memory().unwrap();
        record_built(&conn, "andy", "img:1").unwrap();
        record_failed(&conn, "andy", "img:2", "apt failed").unwrap();
        let row = get(&conn, "andy").unwrap().unwrap();
        assert_eq!(row.tag.as_deref(), Some("img:1"));
        assert_eq!(row.error.as_deref(), Some("apt failed"));
        assert_eq!(row.failed_tag.as_deref(), Some("img:2"));
        record_built(&conn, "andy", "img:3").unwrap();
        let row = get(&conn, "andy").unwrap().unwrap();
        assert_eq!((row.tag.as_deref(), row.error), (Some("img:3"), None));
        record_failed(&conn, "bob", "img:b", "boom").unwrap();
        assert_eq!(get(&conn, "bob").unwrap().unwrap().tag, None);
        assert_eq!(all(&conn).unwrap().len(), 2);
        forget(&conn, "bob").unwrap();
        assert_eq!(get(&conn, "bob").unwrap(), None);
    }
}
