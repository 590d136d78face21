//! Central-DB reads and writes the router needs per message: the chat and its wirings, the
//! sender's user row and access, the dropped-messages audit (docs/runtime.md#routing-algorithm).

use std::collections::{BTreeSet, HashSet};

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};

use crate::state::{TextEnum, UnknownSenderPolicy, Wiring};

/// Reasons recorded in the dropped-messages audit (`unregistered_senders.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    NoAgentWired,
    NoAgentEngaged,
    UnknownSenderStrict,
    UnknownSenderRequestApproval,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoAgentWired => "no_agent_wired",
            DropReason::NoAgentEngaged => "no_agent_engaged",
            DropReason::UnknownSenderStrict => "unknown_sender_strict",
            DropReason::UnknownSenderRequestApproval => "unknown_sender_request_approval",
        }
    }
}

/// A chat (messaging group) row as the router reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Chat {
    pub id: String,
    pub channel_type: String,
    pub platform_id: String,
    pub is_group: bool,
    pub unknown_sender_policy: UnknownSenderPolicy,
    pub denied: bool,
}

const CHAT_BY_ADDRESS: &str =
    "SELECT id, channel_type, platform_id, is_group, unknown_sender_policy, denied_at IS NOT NULL
  FROM messaging_groups WHERE channel_type = ?1 AND platform_id = ?2";

/// The chat for `(channel_type, platform_id)`, if one is registered.
pub fn chat(
    conn: &Connection,
    channel_type: &str,
    platform_id: &str,
) -> rusqlite::Result<Option<Chat>> {
    let mut statement = conn.prepare_cached(CHAT_BY_ADDRESS)?;
    statement
        .query_row(params![channel_type, platform_id], |row| {
            Ok(Chat {
                id: row.get(0)?,
                channel_type: row.get(1)?,
                platform_id: row.get(2)?,
                is_group: row.get(3)?,
                unknown_sender_policy: enum_column(row, 4)?,
                denied: row.get(5)?,
            })
        })
        .optional()
}

const INSERT_CHAT: &str = "INSERT INTO messaging_groups
  (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
  VALUES (?1, ?2, ?3, NULL, ?4, 'request_approval', ?5)";

/// Registers an unknown chat that addressed the bot (docs/runtime.md#routing-algorithm): a runtime
/// row with policy `request_approval` and no wirings; it shows in `plan --prune` as unmanaged.
pub fn create_chat(
    conn: &Connection,
    channel_type: &str,
    platform_id: &str,
    is_group: bool,
) -> rusqlite::Result<Chat> {
    let id = super::pairing::free_chat_id(conn, channel_type, platform_id)?;
    conn.execute(
        INSERT_CHAT,
        params![id, channel_type, platform_id, is_group, ids::now_iso()],
    )?;
    Ok(Chat {
        id,
        channel_type: channel_type.to_string(),
        platform_id: platform_id.to_string(),
        is_group,
        unknown_sender_policy: UnknownSenderPolicy::RequestApproval,
        denied: false,
    })
}

const WIRINGS_OF_CHAT: &str =
    "SELECT w.agent_group_id, w.engage_mode, w.engage_pattern, w.sender_scope,
    w.ignored_message_policy, w.session_mode, w.priority
  FROM messaging_group_agents w JOIN agent_groups a ON a.id = w.agent_group_id
  WHERE w.messaging_group_id = ?1
  ORDER BY w.priority DESC, w.agent_group_id";

/// The chat's wirings whose agent exists, highest priority first (ties by agent name, so the
/// order is deterministic where v2's was unspecified).
pub fn wirings(conn: &Connection, chat_id: &str) -> rusqlite::Result<Vec<Wiring>> {
    let mut statement = conn.prepare_cached(WIRINGS_OF_CHAT)?;
    let rows = statement.query_map([chat_id], |row| {
        Ok(Wiring {
            channel: chat_id.to_string(),
            agent: row.get(0)?,
            engage_mode: enum_column(row, 1)?,
            engage_pattern: row.get(2)?,
            sender_scope: enum_column(row, 3)?,
            ignored_message_policy: enum_column(row, 4)?,
            session_mode: enum_column(row, 5)?,
            priority: row.get(6)?,
        })
    })?;
    rows.collect()
}

/// A chat of one channel type with the agents wired to it (for `nanoclaw chat`'s choice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WiredChat {
    /// The chat's manifest name (messaging group id).
    pub name: String,
    pub platform_id: String,
    /// Wired agents that exist, by name.
    pub agents: Vec<String>,
}

const CHATS_OF_TYPE: &str = "SELECT m.id, m.platform_id, a.id
  FROM messaging_groups m
  LEFT JOIN messaging_group_agents w ON w.messaging_group_id = m.id
  LEFT JOIN agent_groups a ON a.id = w.agent_group_id
  WHERE m.channel_type = ?1
  ORDER BY m.id, a.id";

/// Every chat of `channel_type` with its wired agents, by name.
pub fn chats_of_type(conn: &Connection, channel_type: &str) -> rusqlite::Result<Vec<WiredChat>> {
    let mut statement = conn.prepare_cached(CHATS_OF_TYPE)?;
    let rows = statement.query_map([channel_type], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<String>>(2)?,
        ))
    })?;
    let mut chats: Vec<WiredChat> = Vec::new();
    for row in rows {
        let (name, platform_id, agent) = row?;
        if chats.last().is_none_or(|chat| chat.name != name) {
            chats.push(WiredChat {
                name,
                platform_id,
                agents: Vec::new(),
            });
        }
        if let (Some(agent), Some(chat)) = (agent, chats.last_mut()) {
            chat.agents.push(agent);
        }
    }
    Ok(chats)
}

const CHANNEL_TYPES: &str = "SELECT channel_type FROM messaging_groups
  UNION SELECT channel_type FROM pairing_codes WHERE used_at IS NULL";

/// The channel types of every registered chat, and of unused pairing codes (so a first
/// `nanoclaw pair telegram` on an install with no Telegram chat yet starts the Telegram
/// channel): the adapters a runtime starts.
pub fn channel_types(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut statement = conn.prepare_cached(CHANNEL_TYPES)?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    rows.collect()
}

/// An enum column; the CHECK constraints make anything else a corrupt DB, reported as such.
fn enum_column<T: TextEnum>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    T::parse(&text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unexpected value `{text}`").into(),
        )
    })
}

const INSERT_USER: &str =
    "INSERT OR IGNORE INTO users (id, kind, display_name, created_at) VALUES (?1, ?2, ?3, ?4)";

/// Creates the sender's user row when missing (docs/runtime.md#senders-and-users); existing users
/// are untouched.
pub fn ensure_user(
    conn: &Connection,
    user_id: &str,
    kind: &str,
    display_name: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_USER)?.execute(params![
        user_id,
        kind,
        display_name,
        ids::now_iso()
    ])?;
    Ok(())
}

const ROLES_OF_USER: &str = "SELECT role, agent_group_id FROM user_roles WHERE user_id = ?1";
const MEMBERSHIPS_OF_USER: &str =
    "SELECT agent_group_id FROM agent_group_members WHERE user_id = ?1";

/// What one user may do: `(accessible, administered)` restricted to `agents`
/// (docs/runtime.md#roles-and-access: owner ∨ global admin ∨ scoped admin ⇒ admin; admin ∨ member ⇒
/// access).
pub fn access(
    conn: &Connection,
    user_id: &str,
    agents: &[&str],
) -> rusqlite::Result<(HashSet<String>, HashSet<String>)> {
    let mut global_admin = false;
    let mut scoped_admin = HashSet::new();
    let mut roles = conn.prepare_cached(ROLES_OF_USER)?;
    let mut rows = roles.query([user_id])?;
    while let Some(row) = rows.next()? {
        let role: String = row.get(0)?;
        let agent: Option<String> = row.get(1)?;
        match (role.as_str(), agent) {
            ("owner", _) | ("admin", None) => global_admin = true,
            (_, Some(agent)) => {
                scoped_admin.insert(agent);
            }
            _ => {}
        }
    }
    let mut members = conn.prepare_cached(MEMBERSHIPS_OF_USER)?;
    let memberships: HashSet<String> = members
        .query_map([user_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let administered: HashSet<String> = agents
        .iter()
        .filter(|agent| global_admin || scoped_admin.contains(**agent))
        .map(|agent| agent.to_string())
        .collect();
    let accessible = agents
        .iter()
        .filter(|agent| administered.contains(**agent) || memberships.contains(**agent))
        .map(|agent| agent.to_string())
        .collect();
    Ok((accessible, administered))
}

const RECORD_DROP: &str = "INSERT INTO unregistered_senders
  (channel_type, platform_id, user_id, sender_name, reason, messaging_group_id, agent_group_id,
   message_count, first_seen, last_seen)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8)
  ON CONFLICT (channel_type, platform_id) DO UPDATE SET
    user_id = COALESCE(excluded.user_id, user_id),
    sender_name = COALESCE(excluded.sender_name, sender_name),
    reason = excluded.reason,
    messaging_group_id = COALESCE(excluded.messaging_group_id, messaging_group_id),
    agent_group_id = COALESCE(excluded.agent_group_id, agent_group_id),
    message_count = message_count + 1,
    last_seen = excluded.last_seen";

/// One entry of the dropped-messages audit, aggregated per chat
/// (docs/runtime.md#access-gate-and-sender-scope).
#[derive(Clone, Debug)]
pub struct Drop<'a> {
    pub channel_type: &'a str,
    pub platform_id: &'a str,
    pub user_id: Option<&'a str>,
    pub sender_name: Option<&'a str>,
    pub reason: DropReason,
    pub chat_id: Option<&'a str>,
    pub agent: Option<&'a str>,
}

pub fn record_drop(conn: &Connection, drop: &Drop<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(RECORD_DROP)?.execute(params![
        drop.channel_type,
        drop.platform_id,
        drop.user_id,
        drop.sender_name,
        drop.reason.as_str(),
        drop.chat_id,
        drop.agent,
        ids::now_iso(),
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(conn: &Connection) {
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a','a','a','t'), ('b','b','b','t');
             INSERT INTO messaging_groups (id, channel_type, platform_id, unknown_sender_policy, created_at)
               VALUES ('fam', 'telegram', 'telegram:1', 'strict', 't');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, priority, created_at)
               VALUES ('fam/a', 'fam', 'a', 'pattern', 1, 't'), ('fam/b', 'fam', 'b', 'mention', 5, 't');
             INSERT INTO users (id, kind, created_at) VALUES ('telegram:1', 'telegram', 't'), ('telegram:2', 'telegram', 't');
             INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('telegram:1', 'admin', 'b', 't');
             INSERT INTO agent_group_members (user_id, agent_group_id, added_at) VALUES ('telegram:2', 'a', 't');",
        )
        .unwrap();
    }

    #[test]
    fn chat_and_wirings_in_priority_order() {
        let conn = crate::db::open_in_memory().unwrap();
        seed(&conn);
        let chat = chat(&conn, "telegram", "telegram:1").unwrap().unwrap();
        assert_eq!(chat.unknown_sender_policy, UnknownSenderPolicy::Strict);
        let agents: Vec<String> = wirings(&conn, &chat.id)
            .unwrap()
            .into_iter()
            .map(|w| w.agent)
            .collect();
        assert_eq!(agents, ["b", "a"]);
        assert!(super::chat(&conn, "telegram", "nope").unwrap().is_none());
    }

    #[test]
    fn chats_of_a_type_list_their_existing_agents() {
        let conn = crate::db::open_in_memory().unwrap();
        seed(&conn);
        conn.execute_batch(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, unknown_sender_policy, created_at)
               VALUES ('empty', 'telegram', 'telegram:9', 'strict', 't'), ('term', 'cli', 'local', 'public', 't');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, priority, created_at)
               VALUES ('term/a', 'term', 'a', 'pattern', 1, 't');",
        )
        .unwrap();
        let chats = chats_of_type(&conn, "telegram").unwrap();
        let wired = |name: &str, platform_id: &str, agents: &[&str]| WiredChat {
            name: name.into(),
            platform_id: platform_id.into(),
            agents: agents.iter().map(|agent| agent.to_string()).collect(),
        };
        assert_eq!(
            chats,
            [
                wired("empty", "telegram:9", &[]),
                wired("fam", "telegram:1", &["a", "b"])
            ]
        );
        assert_eq!(
            chats_of_type(&conn, "cli").unwrap(),
            [wired("term", "local", &["a"])]
        );
    }

    #[test]
    fn access_follows_roles_and_memberships() {
        let conn = crate::db::open_in_memory().unwrap();
        seed(&conn);
        let (accessible, administered) = access(&conn, "telegram:1", &["a", "b"]).unwrap();
        assert_eq!(accessible, HashSet::from(["b".to_string()]));
        assert_eq!(administered, HashSet::from(["b".to_string()]));
        let (accessible, administered) = access(&conn, "telegram:2", &["a", "b"]).unwrap();
        assert_eq!(accessible, HashSet::from(["a".to_string()]));
        assert!(administered.is_empty());
    }

    #[test]
    fn drops_aggregate_per_chat() {
        let conn = crate::db::open_in_memory().unwrap();
        let drop = Drop {
            channel_type: "telegram",
            platform_id: "telegram:9",
            user_id: None,
            sender_name: Some("Ann"),
            reason: DropReason::NoAgentWired,
            chat_id: None,
            agent: None,
        };
        record_drop(&conn, &drop).unwrap();
        record_drop(
            &conn,
            &Drop {
                reason: DropReason::NoAgentEngaged,
                sender_name: None,
                ..drop
            },
        )
        .unwrap();
        let (count, reason, name): (i64, String, String) = conn
            .query_row(
                "SELECT message_count, reason, sender_name FROM unregistered_senders",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (count, reason.as_str(), name.as_str()),
            (2, "no_agent_engaged", "Ann")
        );
    }

    // ---- ported from v2's permissions tests: canAccessAgentGroup ----

    /// `(may access, administers)` of `user` for agent `a`.
    fn grants(conn: &Connection, user: &str) -> (bool, bool) {
        let (accessible, administered) = access(conn, user, &["a", "b"]).unwrap();
        (accessible.contains("a"), administered.contains("a"))
    }

    fn with_user(sql: &str) -> Connection {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a','a','a','t'), ('b','b','b','t');
             INSERT INTO users (id, kind, created_at) VALUES ('u', 'telegram', 't');",
        )
        .unwrap();
        conn.execute_batch(sql).unwrap();
        conn
    }

    #[test]
    fn denies_unknown_users() {
        let conn = with_user("");
        assert_eq!(grants(&conn, "ghost"), (false, false));
    }

    #[test]
    fn allows_owners_and_global_admins_on_every_agent() {
        for role in ["owner", "admin"] {
            let conn = with_user(&format!(
                "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('u', '{role}', NULL, 't');"
            ));
            let (accessible, administered) = access(&conn, "u", &["a", "b"]).unwrap();
            assert_eq!(accessible.len(), 2, "{role}");
            assert_eq!(administered.len(), 2, "{role}");
        }
    }

    #[test]
    fn scopes_admins_to_their_agent_group() {
        let conn = with_user(
            "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('u', 'admin', 'b', 't');",
        );
        let (accessible, administered) = access(&conn, "u", &["a", "b"]).unwrap();
        assert_eq!(
            accessible,
            HashSet::from(["b".to_string()]),
            "admin of b is a member of b"
        );
        assert_eq!(administered, HashSet::from(["b".to_string()]));
    }

    #[test]
    fn allows_members_of_the_group_only() {
        let conn = with_user(
            "INSERT INTO agent_group_members (user_id, agent_group_id, added_at) VALUES ('u', 'a', 't');",
        );
        assert_eq!(grants(&conn, "u"), (true, false));
        let (accessible, _) = access(&conn, "u", &["a", "b"]).unwrap();
        assert!(!accessible.contains("b"));
    }

    #[test]
    fn denies_known_but_not_member_users() {
        let conn = with_user("");
        assert_eq!(grants(&conn, "u"), (false, false));
    }

    #[test]
    fn owner_rows_with_a_scope_are_rejected_by_the_schema() {
        let conn = with_user("");
        let scoped_owner = conn.execute(
            "INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('u', 'owner', 'a', 't')",
            [],
        );
        assert!(scoped_owner.is_err());
    }

    #[test]
    fn ensure_user_creates_once_and_never_updates() {
        let conn = with_user("");
        ensure_user(&conn, "telegram:9", "telegram", Some("Ann")).unwrap();
        ensure_user(&conn, "telegram:9", "telegram", Some("Bob")).unwrap();
        let name: Option<String> = conn
            .query_row(
                "SELECT display_name FROM users WHERE id = 'telegram:9'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(name.as_deref(), Some("Ann"));
    }
}
