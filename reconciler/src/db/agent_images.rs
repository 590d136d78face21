//! The `agent_images` table: the per-agent image each agent with packages runs (its last
//! successful build), its last failed build, kept until a build succeeds, and the build the
//! daemon runs now (`status` shows all three). `runtime::builds` writes (for the daemon and for
//! `nanoclaw run`/`image build` through `ops::agent_images`); `status`, the executor and the
//! composition of a container read.

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
    /// The build the daemon runs now, if any: the tag it makes, since when (ISO-8601 UTC) and
    /// its last output line.
    pub building: Option<Building>,
}

/// A build in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Building {
    pub tag: String,
    pub since: String,
    pub last_line: Option<String>,
}

const RECORD_BUILT: &str = "INSERT INTO agent_images (agent_group_id, tag, built_at)
  VALUES (?1, ?2, ?3)
  ON CONFLICT (agent_group_id) DO UPDATE SET tag = ?2, built_at = ?3,
    error = NULL, failed_tag = NULL, failed_at = NULL,
    building_tag = NULL, building_since = NULL, building_line = NULL";

/// Records that `agent` runs `tag` now (and clears its last error and its build in progress).
pub fn record_built(conn: &Connection, agent: &str, tag: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_BUILT)?
        .execute(params![agent, tag, ids::now_iso()])?;
    Ok(())
}

const RECORD_FAILED: &str =
    "INSERT INTO agent_images (agent_group_id, error, failed_tag, failed_at)
  VALUES (?1, ?2, ?3, ?4)
  ON CONFLICT (agent_group_id) DO UPDATE SET error = ?2, failed_tag = ?3, failed_at = ?4,
    building_tag = NULL, building_since = NULL, building_line = NULL";

/// Records a failed build of `agent` (its previous image, if any, stays recorded; its build in
/// progress ends).
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

const RECORD_BUILDING: &str =
    "INSERT INTO agent_images (agent_group_id, building_tag, building_since)
  VALUES (?1, ?2, ?3)
  ON CONFLICT (agent_group_id) DO UPDATE SET building_tag = ?2, building_since = ?3,
    building_line = NULL";

/// Records that the daemon builds `tag` for `agent` from `since` on.
pub fn record_building(
    conn: &Connection,
    agent: &str,
    tag: &str,
    since: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_BUILDING)?
        .execute(params![agent, tag, since])?;
    Ok(())
}

/// Sets the last output line of `agent`'s build that started at `since`; a build that ended
/// (its row cleared by [`record_built`] or [`record_failed`]) is left alone.
pub fn record_build_line(
    conn: &Connection,
    agent: &str,
    since: &str,
    line: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE agent_images SET building_line = ?3
         WHERE agent_group_id = ?1 AND building_since = ?2",
    )?
    .execute(params![agent, since, line])?;
    Ok(())
}

/// Ends every build in progress: a daemon starting finds only a dead one's leftovers.
pub fn clear_building(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE agent_images SET building_tag = NULL, building_since = NULL, building_line = NULL
         WHERE building_tag IS NOT NULL",
    )?
    .execute([])
}

/// Forgets `agent` (it has no packages any more, or was removed).
pub fn forget(conn: &Connection, agent: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM agent_images WHERE agent_group_id = ?1")?
        .execute([agent])?;
    Ok(())
}

const SELECT: &str = "SELECT agent_group_id, tag, built_at, error, failed_tag, failed_at,
  building_tag, building_since, building_line FROM agent_images";

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
        building: match (row.get::<_, Option<String>>(6)?, row.get(7)?) {
            (Some(tag), Some(since)) => Some(Building {
                tag,
                since,
                last_line: row.get(8)?,
            }),
            _ => None,
        },
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

    #[test]
    fn a_build_in_progress_shows_its_last_line_until_it_ends() {
        let conn = crate::db::open_in_memory().unwrap();
        record_built(&conn, "andy", "img:1").unwrap();
        record_building(&conn, "andy", "img:2", "t1").unwrap();
        record_build_line(&conn, "andy", "t1", "Step 2/4 : RUN apt-get …").unwrap();
        let row = get(&conn, "andy").unwrap().unwrap();
        assert_eq!(
            row.tag.as_deref(),
            Some("img:1"),
            "it runs the old one meanwhile"
        );
        assert_eq!(
            row.building,
            Some(Building {
                tag: "img:2".into(),
                since: "t1".into(),
                last_line: Some("Step 2/4 : RUN apt-get …".into()),
            })
        );
        record_failed(&conn, "andy", "img:2", "apt failed").unwrap();
        // A line that comes after the end is not a build in progress.
        record_build_line(&conn, "andy", "t1", "late").unwrap();
        assert_eq!(get(&conn, "andy").unwrap().unwrap().building, None);
        record_building(&conn, "andy", "img:3", "t2").unwrap();
        record_building(&conn, "bob", "img:b", "t2").unwrap();
        assert_eq!(clear_building(&conn).unwrap(), 2);
        record_building(&conn, "andy", "img:3", "t3").unwrap();
        record_built(&conn, "andy", "img:3").unwrap();
        let row = get(&conn, "andy").unwrap().unwrap();
        assert_eq!((row.tag.as_deref(), row.building), (Some("img:3"), None));
    }
}
