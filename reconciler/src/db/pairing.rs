//! Pairing codes (`nanoclaw pair`, docs/runtime.md#pairing): short one-time codes, stored
//! only as their SHA-256, each for one channel type, expiring, used at most once; and the
//! runtime-owned rows a pairing or a new chat creates: the chat, its wiring, the owner role.

use agent_runner::session_db::ids;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The characters of a code: no `0`/`O`, `1`/`I`/`L` look-alikes.
const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters in a code (shown as two groups of four: `K7QM-2PXD`).
pub const CODE_LEN: usize = 8;

/// A fresh code, as shown (`K7QM-2PXD`). Randomness from the OS (`getrandom` through std's
/// hasher keys would not be secret): read from `/dev/urandom`.
pub fn new_code() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; CODE_LEN];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let chars: String = bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect();
    Ok(format!("{}-{}", &chars[..4], &chars[4..]))
}

/// A code as typed, normalised (`k7qm 2pxd` → `K7QM2PXD`); `None` when it cannot be one.
pub fn normalise(text: &str) -> Option<String> {
    let code: String = text
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == CODE_LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

fn hash(code: &str) -> String {
    let digest = Sha256::digest(code.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Stores `code` (hashed) for `channel_type` until `expires_at_ms`.
pub fn store(
    conn: &Connection,
    code: &str,
    channel_type: &str,
    now_ms: i64,
    expires_at_ms: i64,
) -> rusqlite::Result<()> {
    let code = normalise(code).unwrap_or_default();
    conn.execute(
        "INSERT INTO pairing_codes (code_hash, channel_type, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![hash(&code), channel_type, now_ms, expires_at_ms],
    )?;
    Ok(())
}

/// Uses the code in `text` for `channel_type` on behalf of `user`: true when it was a valid,
/// unused, unexpired code (it is now used); false otherwise (nothing changes).
pub fn redeem(
    conn: &Connection,
    text: &str,
    channel_type: &str,
    user: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    let Some(code) = normalise(text) else {
        return Ok(false);
    };
    let used = conn.execute(
        "UPDATE pairing_codes SET used_at = ?3, used_by = ?4
         WHERE code_hash = ?1 AND channel_type = ?2 AND used_at IS NULL AND expires_at > ?3",
        params![hash(&code), channel_type, now_ms, user],
    )?;
    Ok(used == 1)
}

/// Whether any owner exists.
pub fn has_owner(conn: &Connection) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM user_roles WHERE role = 'owner'")?
        .exists([])
}

/// Makes `user` the owner (a runtime-owned row).
pub fn grant_owner(conn: &Connection, user: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO user_roles (user_id, role, agent_group_id, granted_at)
         VALUES (?1, 'owner', NULL, ?2)",
        params![user, ids::now_iso()],
    )?;
    Ok(())
}

/// The agent a new DM is wired to: the only agent, else the first by name.
pub fn default_agent(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT id FROM agent_groups ORDER BY id LIMIT 1",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// The chat at `(channel_type, platform_id)`, registered when missing as a runtime-owned
/// row named `<channel type>-<platform id>` (made a manifest name; `-2`, `-3` … when taken).
pub fn ensure_chat(
    conn: &Connection,
    channel_type: &str,
    platform_id: &str,
    is_group: bool,
) -> rusqlite::Result<String> {
    if let Some(id) = conn
        .query_row(
            "SELECT id FROM messaging_groups WHERE channel_type = ?1 AND platform_id = ?2",
            params![channel_type, platform_id],
            |row| row.get::<_, String>(0),
        )
        .optional()?
    {
        return Ok(id);
    }
    let name = free_chat_id(conn, channel_type, platform_id)?;
    conn.execute(
        "INSERT INTO messaging_groups
           (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
         VALUES (?1, ?2, ?3, NULL, ?4, 'strict', ?5)",
        params![name, channel_type, platform_id, is_group, ids::now_iso()],
    )?;
    Ok(name)
}

/// An unused chat id (its manifest name) for a chat registered at runtime:
/// `<channel type>-<platform id>` made a manifest name, with `-2`, `-3` … when taken.
pub fn free_chat_id(
    conn: &Connection,
    channel_type: &str,
    platform_id: &str,
) -> rusqlite::Result<String> {
    let base = chat_name(channel_type, platform_id);
    let mut name = base.clone();
    let mut n = 2;
    while conn
        .prepare_cached("SELECT 1 FROM messaging_groups WHERE id = ?1")?
        .exists([&name])?
    {
        name = format!("{base}-{n}");
        n += 1;
    }
    Ok(name)
}

/// A manifest name for a chat: lowercase letters, digits and single `-`, at most 64.
fn chat_name(channel_type: &str, platform_id: &str) -> String {
    let mut name = String::new();
    for c in format!("{channel_type}-{platform_id}").chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.ends_with('-') && !name.is_empty() {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-');
    name.chars().take(56).collect()
}

/// Wires `chat` to `agent` (runtime-owned rows): every message engages (`pattern .`), the
/// session is shared; and the agent's destination for the chat, as an apply would write it.
pub fn wire(conn: &Connection, chat: &str, agent: &str) -> rusqlite::Result<()> {
    let now = ids::now_iso();
    conn.execute(
        "INSERT OR IGNORE INTO messaging_group_agents (id, messaging_group_id, agent_group_id,
           engage_mode, engage_pattern, sender_scope, ignored_message_policy, session_mode,
           priority, created_at)
         VALUES (?1, ?2, ?3, 'pattern', '.', 'all', 'drop', 'shared', 0, ?4)",
        params![format!("{chat}/{agent}"), chat, agent, now],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO agent_destinations (agent_group_id, local_name, target_type,
           target_id, created_at)
         VALUES (?1, ?2, 'channel', ?2, ?3)",
        params![agent, chat, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_used_once_before_it_expires_and_only_on_its_channel() {
        let conn = crate::db::open_in_memory().unwrap();
        let code = new_code().unwrap();
        assert_eq!(code.len(), CODE_LEN + 1);
        store(&conn, &code, "telegram", 0, 100).unwrap();
        let stored: String = conn
            .query_row("SELECT code_hash FROM pairing_codes", [], |row| row.get(0))
            .unwrap();
        assert!(!stored.contains(&code.replace('-', "")), "stored hashed");
        assert!(
            !redeem(&conn, &code, "cli", "cli:x", 1).unwrap(),
            "other channel"
        );
        assert!(
            !redeem(&conn, &code, "telegram", "telegram:1", 100).unwrap(),
            "expired"
        );
        let typed = code.to_lowercase().replace('-', " ");
        assert!(redeem(&conn, &typed, "telegram", "telegram:1", 99).unwrap());
        assert!(
            !redeem(&conn, &code, "telegram", "telegram:2", 99).unwrap(),
            "used"
        );
        assert!(!redeem(&conn, "hello there", "telegram", "telegram:2", 1).unwrap());
    }

    #[test]
    fn chat_names_are_manifest_names() {
        assert_eq!(chat_name("telegram", "-100123"), "telegram-100123");
        assert_eq!(chat_name("cli", "Me"), "cli-me");
        let conn = crate::db::open_in_memory().unwrap();
        let first = ensure_chat(&conn, "cli", "me", false).unwrap();
        assert_eq!(ensure_chat(&conn, "cli", "me", false).unwrap(), first);
        assert_eq!(ensure_chat(&conn, "cli", "ME", false).unwrap(), "cli-me-2");
    }
}
