//! The `approvals` table and the facts an approval needs: who may approve (approvers), where
//! their DM is (`user_dms`), the membership an approved sender gets (docs/runtime.md#approvals). A row is written when a card goes out and kept after its decision as the audit.

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};

/// One approval as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The card's id (`apv-…`).
    pub id: String,
    /// What is asked (`unknown_sender`, `install_packages`, …): picks the handler.
    pub kind: String,
    /// What it is about, unique among pending rows of a kind (`<chat>|<sender>`).
    pub subject: String,
    /// The agent it concerns: its admins may decide too.
    pub agent: Option<String>,
    /// The handler's input, JSON.
    pub payload: String,
    pub approver: String,
    /// Where the card was sent.
    pub card_channel_type: String,
    pub card_platform_id: String,
    /// The card, as outbound content JSON.
    pub card_json: String,
    pub expires_at_ms: i64,
}

const INSERT: &str = "INSERT OR IGNORE INTO approvals
  (id, kind, subject, agent_group_id, payload, approver_user_id, card_channel_type,
   card_platform_id, card_json, status, created_at, expires_at)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11)";

/// Stores a pending approval; false (and nothing written) when one for the same kind and
/// subject is already pending.
pub fn insert(conn: &Connection, approval: &Approval, now_ms: i64) -> rusqlite::Result<bool> {
    let written = conn.prepare_cached(INSERT)?.execute(params![
        approval.id,
        approval.kind,
        approval.subject,
        approval.agent,
        approval.payload,
        approval.approver,
        approval.card_channel_type,
        approval.card_platform_id,
        approval.card_json,
        now_ms,
        approval.expires_at_ms,
    ])?;
    Ok(written == 1)
}

const PENDING_SUBJECT: &str =
    "SELECT 1 FROM approvals WHERE kind = ?1 AND subject = ?2 AND status = 'pending'";

/// Whether an approval of `kind` about `subject` waits for a decision.
pub fn is_pending(conn: &Connection, kind: &str, subject: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(PENDING_SUBJECT)?
        .exists(params![kind, subject])
}

const COLUMNS: &str = "id, kind, subject, agent_group_id, payload, approver_user_id,
  card_channel_type, card_platform_id, card_json, expires_at";

fn approval(row: &rusqlite::Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: row.get(0)?,
        kind: row.get(1)?,
        subject: row.get(2)?,
        agent: row.get(3)?,
        payload: row.get(4)?,
        approver: row.get(5)?,
        card_channel_type: row.get(6)?,
        card_platform_id: row.get(7)?,
        card_json: row.get(8)?,
        expires_at_ms: row.get(9)?,
    })
}

/// The pending approval `id`, unless it has expired by `now_ms`.
pub fn pending(conn: &Connection, id: &str, now_ms: i64) -> rusqlite::Result<Option<Approval>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE id = ?1 AND status = 'pending' AND expires_at > ?2"
    );
    conn.prepare_cached(&sql)?
        .query_row(params![id, now_ms], approval)
        .optional()
}

/// The approvals still pending at `now_ms` whose card went to chat `platform_id` of
/// `channel_type` before `created_before_ms` (when the reader arrived: a later card reached it
/// as usual), oldest first: what a reader arriving in that chat is shown again.
pub fn pending_in_chat(
    conn: &Connection,
    channel_type: &str,
    platform_id: &str,
    now_ms: i64,
    created_before_ms: i64,
) -> rusqlite::Result<Vec<Approval>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at > ?3
           AND card_channel_type = ?1 AND card_platform_id = ?2 AND created_at < ?4
         ORDER BY created_at, rowid"
    );
    conn.prepare_cached(&sql)?
        .query_map(
            params![channel_type, platform_id, now_ms, created_before_ms],
            approval,
        )?
        .collect()
}

const DECIDE: &str = "UPDATE approvals SET status = 'decided', decision = ?2, decided_by = ?3,
  decided_at = ?4 WHERE id = ?1 AND status = 'pending'";

/// Records the decision; false when the row was no longer pending (decided by someone else
/// in the meantime, or expired).
pub fn decide(
    conn: &Connection,
    id: &str,
    decision: &str,
    by: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(DECIDE)?
        .execute(params![id, decision, by, now_ms])?
        == 1)
}

/// Marks every pending approval due by `now_ms` expired and returns them.
pub fn expire_due(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Approval>> {
    let sql =
        format!("SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND expires_at <= ?1");
    let due: Vec<Approval> = conn
        .prepare_cached(&sql)?
        .query_map([now_ms], approval)?
        .collect::<Result<_, _>>()?;
    for approval in &due {
        conn.execute(
            "UPDATE approvals SET status = 'expired', decided_at = ?2 WHERE id = ?1 AND status = 'pending'",
            params![approval.id, now_ms],
        )?;
    }
    Ok(due)
}

const APPROVERS: &str = "SELECT user_id FROM user_roles
  WHERE (role = 'admin' AND agent_group_id = ?1)
  ORDER BY granted_at, user_id";
const GLOBAL_APPROVERS: &str = "SELECT user_id FROM user_roles
  WHERE agent_group_id IS NULL AND role = ?1
  ORDER BY granted_at, user_id";

/// Who may approve for `agent` (docs/runtime.md#approvals): its scoped admins, then the
/// global admins, then the owners, each by grant time, without repeats.
pub fn approvers(conn: &Connection, agent: Option<&str>) -> rusqlite::Result<Vec<String>> {
    let mut found: Vec<String> = Vec::new();
    let mut push = |user: String| {
        if !found.contains(&user) {
            found.push(user);
        }
    };
    if let Some(agent) = agent {
        for user in conn
            .prepare_cached(APPROVERS)?
            .query_map([agent], |row| row.get(0))?
        {
            push(user?);
        }
    }
    for role in ["admin", "owner"] {
        for user in conn
            .prepare_cached(GLOBAL_APPROVERS)?
            .query_map([role], |row| row.get(0))?
        {
            push(user?);
        }
    }
    Ok(found)
}

const CACHED_DM: &str = "SELECT m.platform_id FROM user_dms d
  JOIN messaging_groups m ON m.id = d.messaging_group_id
  WHERE d.user_id = ?1 AND d.channel_type = ?2";

/// The platform id of `user`'s cached DM chat on `channel_type`, if the chat still exists.
pub fn cached_dm(
    conn: &Connection,
    user: &str,
    channel_type: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(CACHED_DM)?
        .query_row(params![user, channel_type], |row| row.get(0))
        .optional()
}

/// Records `platform_id` as `user`'s DM chat on `channel_type`, registering the chat (a
/// runtime-owned row, policy `strict`, named after the user) when it is not known yet.
pub fn remember_dm(
    conn: &Connection,
    user: &str,
    channel_type: &str,
    platform_id: &str,
) -> rusqlite::Result<String> {
    let existing: Option<String> = conn
        .query_row(
            "SELECT id FROM messaging_groups WHERE channel_type = ?1 AND platform_id = ?2",
            params![channel_type, platform_id],
            |row| row.get(0),
        )
        .optional()?;
    let chat = match existing {
        Some(chat) => chat,
        None => {
            let chat = ids::new_id("mg");
            conn.execute(
                "INSERT INTO messaging_groups
                   (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
                 VALUES (?1, ?2, ?3, (SELECT display_name FROM users WHERE id = ?4), 0, 'strict', ?5)",
                params![chat, channel_type, platform_id, user, ids::now_iso()],
            )?;
            chat
        }
    };
    conn.execute(
        "INSERT INTO user_dms (user_id, channel_type, messaging_group_id, resolved_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user_id, channel_type) DO UPDATE SET
           messaging_group_id = excluded.messaging_group_id, resolved_at = excluded.resolved_at",
        params![user, channel_type, chat, ids::now_iso()],
    )?;
    Ok(chat)
}

/// Whether `user` exists (a DM can only be resolved for a known user).
pub fn user_kind(conn: &Connection, user: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT kind FROM users WHERE id = ?1", [user], |row| {
        row.get(0)
    })
    .optional()
}

/// Makes `user` a member of `agent` (a runtime-owned row: `managed_by` NULL); nothing when
/// they already are.
pub fn add_member(
    conn: &Connection,
    user: &str,
    agent: &str,
    added_by: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO agent_group_members (user_id, agent_group_id, added_by, added_at)
         VALUES (?1, ?2, (SELECT id FROM users WHERE id = ?3), ?4)",
        params![user, agent, added_by, ids::now_iso()],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Connection {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a','a','a','t'), ('b','b','b','t');
             INSERT INTO users (id, kind, created_at) VALUES
               ('cli:owner', 'cli', 't'), ('telegram:9', 'telegram', 't'), ('cli:admin', 'cli', 't'), ('cli:scoped', 'cli', 't');
             INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES
               ('cli:owner', 'owner', NULL, '1'), ('telegram:9', 'owner', NULL, '0'),
               ('cli:admin', 'admin', NULL, '5'), ('cli:scoped', 'admin', 'a', '9'),
               ('cli:owner', 'admin', NULL, '2');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn approvers_are_scoped_admins_then_global_admins_then_owners_without_repeats() {
        let conn = seed();
        assert_eq!(
            approvers(&conn, Some("a")).unwrap(),
            ["cli:scoped", "cli:owner", "cli:admin", "telegram:9"]
        );
        assert_eq!(
            approvers(&conn, None).unwrap(),
            ["cli:owner", "cli:admin", "telegram:9"]
        );
    }

    fn approval(id: &str) -> Approval {
        Approval {
            id: id.into(),
            kind: "unknown_sender".into(),
            subject: "mg|cli:x".into(),
            agent: Some("a".into()),
            payload: "{}".into(),
            approver: "cli:owner".into(),
            card_channel_type: "cli".into(),
            card_platform_id: "owner".into(),
            card_json: "{}".into(),
            expires_at_ms: 100,
        }
    }

    #[test]
    fn one_pending_row_per_subject_then_decided_once_then_expired_ones_are_gone() {
        let conn = seed();
        assert!(insert(&conn, &approval("apv-1"), 0).unwrap());
        assert!(
            !insert(&conn, &approval("apv-2"), 0).unwrap(),
            "duplicate subject"
        );
        assert!(is_pending(&conn, "unknown_sender", "mg|cli:x").unwrap());
        assert!(pending(&conn, "apv-1", 50).unwrap().is_some());
        assert!(pending(&conn, "apv-1", 100).unwrap().is_none(), "expired");
        assert!(decide(&conn, "apv-1", "allow", "cli:owner", 60).unwrap());
        assert!(!decide(&conn, "apv-1", "deny", "cli:owner", 61).unwrap());
        assert!(
            insert(&conn, &approval("apv-3"), 0).unwrap(),
            "a new card once decided"
        );
        assert_eq!(expire_due(&conn, 99).unwrap(), []);
        let expired = expire_due(&conn, 100).unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].id, "apv-3");
        assert!(!is_pending(&conn, "unknown_sender", "mg|cli:x").unwrap());
    }

    #[test]
    fn issue_12_a_chats_pending_cards_are_listed_oldest_first_without_the_decided_or_expired() {
        let conn = seed();
        let at = |id: &str, subject: &str, chat: &str, expires: i64| Approval {
            subject: subject.into(),
            card_platform_id: chat.into(),
            expires_at_ms: expires,
            ..approval(id)
        };
        assert!(insert(&conn, &at("apv-b", "s1", "owner", 100), 1).unwrap());
        assert!(insert(&conn, &at("apv-a", "s2", "owner", 100), 2).unwrap());
        assert!(insert(&conn, &at("apv-c", "s3", "other", 100), 3).unwrap());
        assert!(insert(&conn, &at("apv-d", "s4", "owner", 10), 4).unwrap());
        assert!(insert(&conn, &at("apv-e", "s5", "owner", 100), 5).unwrap());
        assert!(decide(&conn, "apv-e", "allow", "cli:owner", 6).unwrap());
        let ids: Vec<String> = pending_in_chat(&conn, "cli", "owner", 50, 50)
            .unwrap()
            .into_iter()
            .map(|approval| approval.id)
            .collect();
        assert_eq!(ids, ["apv-b", "apv-a"]);
        assert!(
            pending_in_chat(&conn, "telegram", "owner", 50, 50)
                .unwrap()
                .is_empty()
        );
        // A card made after the reader arrived reached it as usual: it is not shown again.
        let before_2: Vec<String> = pending_in_chat(&conn, "cli", "owner", 50, 2)
            .unwrap()
            .into_iter()
            .map(|approval| approval.id)
            .collect();
        assert_eq!(before_2, ["apv-b"]);
    }

    #[test]
    fn a_dm_is_remembered_and_its_chat_registered_once() {
        let conn = seed();
        assert_eq!(cached_dm(&conn, "telegram:9", "telegram").unwrap(), None);
        let chat = remember_dm(&conn, "telegram:9", "telegram", "9").unwrap();
        assert_eq!(
            remember_dm(&conn, "telegram:9", "telegram", "9").unwrap(),
            chat
        );
        assert_eq!(
            cached_dm(&conn, "telegram:9", "telegram")
                .unwrap()
                .as_deref(),
            Some("9")
        );
    }
}
