//! The `sessions` table: resolution by session mode (docs/runtime.md#session-resolution), container
//! status, and the lists the sweep and delivery iterate.

use std::collections::BTreeSet;

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};

use crate::state::SessionMode;

/// A session row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub agent: String,
    pub chat_id: Option<String>,
    pub thread_id: Option<String>,
    /// This session's provider override (`sessions.agent_provider`), the first source of
    /// `provider::resolve`; nothing in nanoclaw sets it yet.
    pub agent_provider: Option<String>,
}

const COLUMNS: &str = "id, agent_group_id, messaging_group_id, thread_id, agent_provider";

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        agent: row.get(1)?,
        chat_id: row.get(2)?,
        thread_id: row.get(3)?,
        agent_provider: row.get(4)?,
    })
}

/// The active session a message for `(agent, chat, thread)` belongs to under `mode`, if any.
pub fn find(
    conn: &Connection,
    agent: &str,
    chat_id: &str,
    thread_id: Option<&str>,
    mode: SessionMode,
) -> rusqlite::Result<Option<Session>> {
    let found = match mode {
        SessionMode::AgentShared => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE agent_group_id = ?1 AND status = 'active'
                 ORDER BY created_at DESC, id DESC LIMIT 1"
            ))?
            .query_row(params![agent], from_row),
        SessionMode::Shared => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE agent_group_id = ?1 AND messaging_group_id = ?2
                 AND thread_id IS NULL AND status = 'active' LIMIT 1"
            ))?
            .query_row(params![agent, chat_id], from_row),
        SessionMode::PerThread => conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sessions WHERE agent_group_id = ?1 AND messaging_group_id = ?2
                 AND thread_id IS ?3 AND status = 'active' LIMIT 1"
            ))?
            .query_row(params![agent, chat_id, thread_id], from_row),
    };
    found.optional()
}

const INSERT: &str =
    "INSERT INTO sessions (id, agent_group_id, messaging_group_id, thread_id, created_at)
  VALUES (?1, ?2, ?3, ?4, ?5)";

/// Creates a session row (status active, container stopped). The caller creates its folder.
pub fn create(
    conn: &Connection,
    agent: &str,
    chat_id: Option<&str>,
    thread_id: Option<&str>,
) -> rusqlite::Result<Session> {
    let id = ids::new_id("sess");
    conn.prepare_cached(INSERT)?
        .execute(params![id, agent, chat_id, thread_id, ids::now_iso()])?;
    Ok(Session {
        id,
        agent: agent.to_string(),
        chat_id: chat_id.map(str::to_string),
        thread_id: thread_id.map(str::to_string),
        agent_provider: None,
    })
}

/// A session moved in from another install (`nanoclaw import --sessions`), with the outcomes
/// it already recorded, so none of its replies is sent again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedSession {
    pub session: Session,
    pub closed: bool,
    pub last_active: Option<String>,
    pub created_at: String,
    pub delivered: Vec<agent_runner::session_db::DeliveredRow>,
}

const INSERT_IMPORTED: &str = "INSERT INTO sessions
  (id, agent_group_id, messaging_group_id, thread_id, status, container_status, last_active, created_at)
  VALUES (?1, ?2, ?3, ?4, ?5, 'stopped', ?6, ?7)";

/// Inserts imported sessions and their delivery outcomes (into `delivered_outbound`) in one
/// transaction; fails on a session id already present. Returns how many outcomes it recorded.
pub fn insert_imported(
    conn: &mut Connection,
    sessions: &[ImportedSession],
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut recorded = 0;
    for imported in sessions {
        let session = &imported.session;
        tx.prepare_cached(INSERT_IMPORTED)?.execute(params![
            session.id,
            session.agent,
            session.chat_id,
            session.thread_id,
            if imported.closed { "closed" } else { "active" },
            imported.last_active,
            imported.created_at
        ])?;
        for row in &imported.delivered {
            recorded += super::delivered::record_at(&tx, &session.id, row)?;
        }
    }
    tx.commit()?;
    Ok(recorded)
}

/// The session by id.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Session>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Every active session (the sweep's and the slow delivery poll's work list).
pub fn active(conn: &Connection) -> rusqlite::Result<Vec<Session>> {
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM sessions WHERE status = 'active' ORDER BY id"
    ))?;
    let rows = statement.query_map([], from_row)?;
    rows.collect()
}

/// Agents among `agents` with an active session for exactly this chat and thread (the
/// mention-sticky subscription state, docs/runtime.md#engage-modes).
pub fn sticky(
    conn: &Connection,
    chat_id: &str,
    thread_id: Option<&str>,
    agents: &[&str],
) -> rusqlite::Result<Vec<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT 1 FROM sessions WHERE agent_group_id = ?1 AND messaging_group_id = ?2
         AND thread_id IS ?3 AND status = 'active' LIMIT 1",
    )?;
    let mut found = Vec::new();
    for agent in agents {
        if statement.exists(params![agent, chat_id, thread_id])? {
            found.push(agent.to_string());
        }
    }
    Ok(found)
}

/// Records whether a container runs for the session, and bumps `last_active` when it starts.
pub fn set_container_status(conn: &Connection, id: &str, running: bool) -> rusqlite::Result<()> {
    if running {
        conn.prepare_cached(
            "UPDATE sessions SET container_status = 'running', last_active = ?2 WHERE id = ?1",
        )?
        .execute(params![id, ids::now_iso()])?;
    } else {
        conn.prepare_cached("UPDATE sessions SET container_status = 'stopped' WHERE id = ?1")?
            .execute(params![id])?;
    }
    Ok(())
}

/// Marks every session stopped: at startup nothing runs yet (fixes host quirk 4,
/// docs/runtime.md#decisions-on-v2s-quirks).
pub fn reset_container_status(conn: &Connection) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE sessions SET container_status = 'stopped' WHERE container_status != 'stopped'",
        [],
    )
}

/// Agent groups with a session whose container is recorded as running: the fact a plan needs to
/// tell a restart from a change that waits for the next start. A crash leaves stale rows until
/// the next `run` resets them.
pub fn running_agents(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut statement = conn.prepare_cached(
        "SELECT DISTINCT agent_group_id FROM sessions WHERE container_status != 'stopped'",
    )?;
    let rows = statement.query_map([], |row| row.get(0))?;
    rows.collect()
}

/// `(session, agent)` of every session whose container runs, by session.
pub fn running_sessions(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, agent_group_id FROM sessions WHERE container_status != 'stopped' ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Bumps `last_active` for sessions that just received messages.
pub fn touch(conn: &Connection, id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_active = ?2 WHERE id = ?1")?
        .execute(params![id, ids::now_iso()])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Connection {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a','a','a','t');
             INSERT INTO messaging_groups (id, channel_type, platform_id, created_at) VALUES
               ('m1', 'cli', 'local', 't'), ('m2', 'cli', 'other', 't');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn shared_sessions_ignore_threads_and_per_thread_sessions_split_them() {
        let conn = seeded();
        let shared = create(&conn, "a", Some("m1"), None).unwrap();
        let found = find(&conn, "a", "m1", Some("t1"), SessionMode::Shared).unwrap();
        assert_eq!(found.as_ref(), Some(&shared));
        assert_eq!(
            find(&conn, "a", "m1", Some("t1"), SessionMode::PerThread).unwrap(),
            None
        );
        let threaded = create(&conn, "a", Some("m1"), Some("t1")).unwrap();
        assert_eq!(
            find(&conn, "a", "m1", Some("t1"), SessionMode::PerThread).unwrap(),
            Some(threaded)
        );
        assert_eq!(
            find(&conn, "a", "m1", None, SessionMode::PerThread).unwrap(),
            Some(shared)
        );
    }

    #[test]
    fn agent_shared_reuses_the_newest_session_across_chats() {
        let conn = seeded();
        assert_eq!(
            find(&conn, "a", "m2", None, SessionMode::AgentShared).unwrap(),
            None
        );
        let first = create(&conn, "a", Some("m1"), None).unwrap();
        let found = find(&conn, "a", "m2", None, SessionMode::AgentShared).unwrap();
        assert_eq!(found, Some(first));
    }

    #[test]
    fn sticky_lists_agents_with_a_session_for_the_exact_thread() {
        let conn = seeded();
        create(&conn, "a", Some("m1"), None).unwrap();
        assert_eq!(sticky(&conn, "m1", None, &["a"]).unwrap(), ["a"]);
        assert!(sticky(&conn, "m1", Some("t"), &["a"]).unwrap().is_empty());
        assert!(sticky(&conn, "m2", None, &["a"]).unwrap().is_empty());
    }

    // ---- ported from v2's host-core `session manager` and `agent-shared` tests ----

    #[test]
    fn should_resolve_to_the_existing_session_in_shared_mode() {
        let conn = seeded();
        assert_eq!(
            find(&conn, "a", "m1", None, SessionMode::Shared).unwrap(),
            None
        );
        let created = create(&conn, "a", Some("m1"), None).unwrap();
        assert_eq!(
            find(&conn, "a", "m1", None, SessionMode::Shared).unwrap(),
            Some(created)
        );
    }

    #[test]
    fn should_create_separate_sessions_per_thread_and_reuse_the_same_thread() {
        let conn = seeded();
        let first = create(&conn, "a", Some("m1"), Some("thread-1")).unwrap();
        assert_eq!(
            find(&conn, "a", "m1", Some("thread-2"), SessionMode::PerThread).unwrap(),
            None
        );
        let second = create(&conn, "a", Some("m1"), Some("thread-2")).unwrap();
        assert_ne!(first.id, second.id);
        assert_eq!(
            find(&conn, "a", "m1", Some("thread-1"), SessionMode::PerThread).unwrap(),
            Some(first)
        );
    }

    #[test]
    fn sessions_of_another_agent_on_the_same_chat_are_not_reused() {
        let conn = seeded();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('b','b','b','t');",
        )
        .unwrap();
        create(&conn, "b", Some("m1"), None).unwrap();
        for mode in [
            SessionMode::Shared,
            SessionMode::PerThread,
            SessionMode::AgentShared,
        ] {
            assert_eq!(
                find(&conn, "a", "m1", None, mode).unwrap(),
                None,
                "{mode:?}"
            );
        }
    }

    #[test]
    fn agent_shared_resolves_to_the_same_session_and_it_has_no_chat() {
        let conn = seeded();
        let created = create(&conn, "a", None, None).unwrap();
        assert_eq!(created.chat_id, None);
        assert_eq!(
            find(&conn, "a", "m1", None, SessionMode::AgentShared).unwrap(),
            Some(created.clone())
        );
        assert_eq!(
            find(&conn, "a", "m2", Some("t"), SessionMode::AgentShared).unwrap(),
            Some(created)
        );
    }

    #[test]
    fn closed_sessions_are_never_resolved() {
        let conn = seeded();
        let closed = create(&conn, "a", Some("m1"), None).unwrap();
        conn.execute(
            "UPDATE sessions SET status = 'closed' WHERE id = ?1",
            [&closed.id],
        )
        .unwrap();
        for mode in [
            SessionMode::Shared,
            SessionMode::PerThread,
            SessionMode::AgentShared,
        ] {
            assert_eq!(
                find(&conn, "a", "m1", None, mode).unwrap(),
                None,
                "{mode:?}"
            );
        }
        assert!(sticky(&conn, "m1", None, &["a"]).unwrap().is_empty());
    }

    #[test]
    fn new_sessions_have_no_last_active_until_touched() {
        let conn = seeded();
        let session = create(&conn, "a", Some("m1"), None).unwrap();
        let last_active = |conn: &Connection| -> Option<String> {
            conn.query_row(
                "SELECT last_active FROM sessions WHERE id = ?1",
                [&session.id],
                |row| row.get(0),
            )
            .unwrap()
        };
        assert_eq!(last_active(&conn), None);
        touch(&conn, &session.id).unwrap();
        assert!(last_active(&conn).is_some());
    }
}
