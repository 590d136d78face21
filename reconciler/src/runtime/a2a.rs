//! Agent-to-agent messages (docs/runtime.md#agent-to-agent-messages): an outbound row addressed to
//! `channel_type = 'agent'` becomes an inbound row in a session of the target agent.
//!
//! The destination rows are the ACL (a manifest `destinations` entry, or one an agent created);
//! an agent may always message itself. The target session is the one that started the
//! conversation when there is one (the reply path), else the target's newest active session,
//! else a new session without a chat. Files attached to agent messages are not forwarded yet.

use std::path::Path;

use crate::db::sessions::{self, Session};
use crate::paths::Paths;
use crate::state::SessionMode;
use agent_runner::session_db::{self, NewInbound, OutboundRow};
use rusqlite::{Connection, params};

/// Where an agent message went: the target session, to be woken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Routed {
    pub agent: String,
    pub session: String,
}

/// Routes one agent-addressed row from `source` (agent, session) into the target agent's
/// session. `Err` carries the reason (unauthorised, unknown agent, DB trouble) for the
/// delivery retry path.
pub fn route(
    conn: &Connection,
    paths: &Paths,
    source_agent: &str,
    source_session: &str,
    row: &OutboundRow,
) -> Result<Routed, String> {
    let target = row
        .platform_id
        .as_deref()
        .filter(|target| !target.is_empty())
        .ok_or("agent message without a target agent")?;
    if target != source_agent
        && !allowed(conn, source_agent, target).map_err(|err| err.to_string())?
    {
        return Err(format!(
            "unauthorized agent-to-agent: {source_agent} has no destination for agent {target}"
        ));
    }
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM agent_groups WHERE id = ?1)",
            [target],
            |r| r.get(0),
        )
        .map_err(|err| err.to_string())?;
    if !exists {
        return Err(format!("agent {target} does not exist"));
    }
    let source_dir = paths.session(source_agent, source_session);
    let session =
        target_session(conn, &source_dir, target, row).map_err(|err| format!("{err:#}"))?;
    let dir = paths.session(target, &session.id);
    if !session_db::inbound_path(&dir).exists() {
        crate::hostfs::Dir::create_all(&dir, super::layout::DIR_MODE)
            .map_err(anyhow::Error::from)
            .and_then(|folder| super::layout::create_inbound(&folder, Some((conn, &session))))
            .map_err(|err| format!("{err:#}"))?;
    }
    let inbound_row = NewInbound::agent_message(source_agent, source_session, row.content.clone());
    let mut inbound = session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE))
        .map_err(|err| err.to_string())?;
    session_db::insert_inbound(&mut inbound, &[inbound_row]).map_err(|err| err.to_string())?;
    sessions::touch(conn, &session.id).map_err(|err| err.to_string())?;
    Ok(Routed {
        agent: target.to_string(),
        session: session.id,
    })
}

fn allowed(conn: &Connection, source: &str, target: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM agent_destinations
           WHERE agent_group_id = ?1 AND target_type = 'agent' AND target_id = ?2)",
        params![source, target],
        |row| row.get(0),
    )
}

/// The target agent's session for this message (docs/runtime.md#agent-to-agent-messages): the
/// session the row answers (its `in_reply_to` came from there), else the session of the latest
/// message the target sent us (peer affinity), if it is the target's and active; else the target's
/// agent-shared session, created without a chat when it has none.
fn target_session(
    conn: &Connection,
    source_dir: &Path,
    target: &str,
    row: &OutboundRow,
) -> anyhow::Result<Session> {
    let inbound = session_db::open_inbound_host(&source_dir.join(session_db::INBOUND_FILE))?;
    let by_reply = match &row.in_reply_to {
        Some(in_reply_to) => session_db::source_session_of(&inbound, in_reply_to)?,
        None => None,
    };
    let candidate = match by_reply {
        Some(session) => Some(session),
        None => session_db::latest_source_session_from(&inbound, target)?,
    };
    if let Some(id) = candidate {
        let active: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sessions WHERE id = ?1 AND agent_group_id = ?2 AND status = 'active')",
            params![id, target],
            |r| r.get(0),
        )?;
        if active && let Some(session) = sessions::get(conn, &id)? {
            return Ok(session);
        }
    }
    match sessions::find(conn, target, "", None, SessionMode::AgentShared)? {
        Some(session) => Ok(session),
        None => Ok(sessions::create(conn, target, None, None)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    struct World {
        _dir: tempfile::TempDir,
        paths: Paths,
        conn: Connection,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a','a','a','t'), ('b','b','b','t'), ('c','c','c','t');
             INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
               VALUES ('a', 'helper', 'agent', 'b', 't'), ('b', 'boss', 'agent', 'a', 't');",
        )
        .unwrap();
        World {
            _dir: dir,
            paths,
            conn,
        }
    }

    fn session(world: &World, agent: &str) -> String {
        let session = sessions::create(&world.conn, agent, None, None).unwrap();
        session_db::create(&world.paths.session(agent, &session.id)).unwrap();
        session.id
    }

    fn row(target: &str, text: &str, in_reply_to: Option<&str>) -> OutboundRow {
        OutboundRow {
            id: session_db::new_id("msg"),
            seq: Some(1),
            in_reply_to: in_reply_to.map(str::to_string),
            timestamp: session_db::now_iso(),
            deliver_after: None,
            kind: "chat".into(),
            platform_id: Some(target.into()),
            channel_type: Some("agent".into()),
            thread_id: None,
            content: serde_json::json!({ "text": text }).to_string(),
        }
    }

    /// `(id, platform_id, source_session_id, text)` of a session's inbound rows.
    fn inbound(world: &World, agent: &str, session: &str) -> Vec<(String, String, String, String)> {
        let conn = session_db::open_inbound_host(
            &world
                .paths
                .session(agent, session)
                .join(session_db::INBOUND_FILE),
        )
        .unwrap();
        let mut statement = conn
            .as_connection().prepare("SELECT id, platform_id, source_session_id, content FROM messages_in WHERE channel_type = 'agent' ORDER BY seq")
            .unwrap();
        statement
            .query_map([], |r| {
                let content: String = r.get(3)?;
                let text = serde_json::from_str::<serde_json::Value>(&content).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string();
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, text))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_message_lands_in_a_new_session_of_the_target_with_the_return_path() {
        let world = world();
        let source = session(&world, "a");
        let routed = route(
            &world.conn,
            &world.paths,
            "a",
            &source,
            &row("b", "hi b", None),
        )
        .unwrap();
        assert_eq!(routed.agent, "b");
        let rows = inbound(&world, "b", &routed.session);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].0.starts_with("a2a-"));
        assert_eq!(
            (rows[0].1.as_str(), rows[0].2.as_str(), rows[0].3.as_str()),
            ("a", source.as_str(), "hi b")
        );
    }

    #[test]
    fn a_reply_goes_back_to_the_originating_session_not_the_newest() {
        let world = world();
        let origin = session(&world, "a");
        let to_b = route(
            &world.conn,
            &world.paths,
            "a",
            &origin,
            &row("b", "question", None),
        )
        .unwrap();
        let newer = session(&world, "a");
        assert_ne!(newer, origin);
        let asked = &inbound(&world, "b", &to_b.session)[0].0;
        let back = route(
            &world.conn,
            &world.paths,
            "b",
            &to_b.session,
            &row("a", "answer", Some(asked)),
        )
        .unwrap();
        assert_eq!(
            back.session, origin,
            "in_reply_to leads back to the asking session"
        );
        let peer = route(
            &world.conn,
            &world.paths,
            "b",
            &to_b.session,
            &row("a", "more", None),
        )
        .unwrap();
        assert_eq!(peer.session, origin, "peer affinity without in_reply_to");
    }

    #[test]
    fn destinations_are_the_acl_and_self_messages_are_allowed() {
        let world = world();
        let source = session(&world, "a");
        let err = route(
            &world.conn,
            &world.paths,
            "a",
            &source,
            &row("c", "sneaky", None),
        )
        .unwrap_err();
        assert!(err.contains("unauthorized agent-to-agent"), "{err}");
        let err = route(
            &world.conn,
            &world.paths,
            "b",
            &session(&world, "b"),
            &row("zz", "x", None),
        )
        .unwrap_err();
        assert!(err.contains("unauthorized"), "{err}");
        let own = route(
            &world.conn,
            &world.paths,
            "a",
            &source,
            &row("a", "note to self", None),
        )
        .unwrap();
        assert_eq!(own.agent, "a");
    }
}
