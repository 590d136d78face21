//! `delivered_outbound`: the host's authoritative record of every outbound row it delivered or
//! gave up on, per session (issue 8 point 12).
//!
//! `inbound.db` keeps a `delivered` table too (the session DB protocol, and the fast join of
//! the delivery query), but that file can be lost or recreated; this table is what decides
//! whether a row was already sent, so a recreated `inbound.db` never re-sends a reply. It lives
//! in the central DB, out of every container's reach.

use rusqlite::{Connection, OptionalExtension, params};

/// How a row ended: sent (with the platform's id for it, if any) or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub failed: bool,
    pub platform_message_id: Option<String>,
}

/// Records a row's outcome; the first outcome wins (`INSERT OR IGNORE`).
pub fn record(
    conn: &Connection,
    session: &str,
    message_out_id: &str,
    outcome: &Outcome,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO delivered_outbound
           (session_id, message_out_id, status, platform_message_id, delivered_at)
         VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    )?
    .execute(params![
        session,
        message_out_id,
        if outcome.failed {
            "failed"
        } else {
            "delivered"
        },
        outcome.platform_message_id
    ])?;
    Ok(())
}

/// Records an outcome another install recorded, keeping its time; the first outcome wins.
/// Returns 1 when recorded, 0 when the row had one already.
pub fn record_at(
    conn: &Connection,
    session: &str,
    row: &agent_runner::session_db::DeliveredRow,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO delivered_outbound
           (session_id, message_out_id, status, platform_message_id, delivered_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        session,
        row.record.message_out_id,
        row.record.status,
        row.record.platform_message_id,
        row.delivered_at
    ])
}

/// The recorded outcome of a row, if it has one.
pub fn outcome(
    conn: &Connection,
    session: &str,
    message_out_id: &str,
) -> rusqlite::Result<Option<Outcome>> {
    conn.prepare_cached(
        "SELECT status, platform_message_id FROM delivered_outbound
         WHERE session_id = ?1 AND message_out_id = ?2",
    )?
    .query_row(params![session, message_out_id], |row| {
        Ok(Outcome {
            failed: row.get::<_, String>(0)? == "failed",
            platform_message_id: row.get(1)?,
        })
    })
    .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_outcome_wins_per_session() {
        let conn = crate::db::open_in_memory().unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('a', 'a', 'a', 't');
             INSERT INTO sessions (id, agent_group_id, created_at) VALUES ('s1', 'a', 't'), ('s2', 'a', 't');",
        )
        .unwrap();
        let sent = Outcome {
            failed: false,
            platform_message_id: Some("p1".into()),
        };
        record(&conn, "s1", "o1", &sent).unwrap();
        record(
            &conn,
            "s1",
            "o1",
            &Outcome {
                failed: true,
                platform_message_id: None,
            },
        )
        .unwrap();
        assert_eq!(outcome(&conn, "s1", "o1").unwrap(), Some(sent));
        assert_eq!(outcome(&conn, "s2", "o1").unwrap(), None, "per session");
    }
}
