//! The host's half of the session DB protocol, writing `inbound.db`: new messages, their
//! retries and outcomes, delivery records, the projections, and the acks it copies from
//! `outbound.db` (its bounded reads of that file are `untrusted`).
//!
//! Every function takes an already opened connection (see the openers in the parent module) and
//! does one protocol step; none decides routing or retries. Writers use `BEGIN IMMEDIATE`.

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::values::{AckStatus, DeliveryStatus, InboundStatus, Kind};
use super::{AGENT_CHANNEL_TYPE, InboundDb, OutboundDb, Result, columns, ids, next_even_seq};

/// One message the host writes into `messages_in` (status `pending`, `series_id = id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewInbound {
    pub id: String,
    pub kind: Kind,
    /// ISO timestamp (or SQLite now for tasks; the runner reads zone-less as UTC).
    pub timestamp: String,
    pub platform_id: Option<String>,
    pub channel_type: Option<String>,
    pub thread_id: Option<String>,
    /// JSON payload.
    pub content: String,
    /// `true` wakes the agent; `false` is context only (accumulate).
    pub trigger: bool,
    /// Only visible to a container's first poll.
    pub on_wake: bool,
    pub process_after: Option<String>,
    pub recurrence: Option<String>,
    /// For agent-to-agent rows: the sending session (return path).
    pub source_session_id: Option<String>,
}

impl NewInbound {
    /// An agent-to-agent message (docs/runtime.md#the-message-path): a waking chat row from
    /// `source_agent`'s address (`channel_type` [`AGENT_CHANNEL_TYPE`], `platform_id` the agent),
    /// remembering the sending session so the answer finds its way back.
    pub fn agent_message(source_agent: &str, source_session: &str, content: String) -> NewInbound {
        NewInbound {
            id: ids::new_id("a2a"),
            kind: Kind::Chat,
            timestamp: ids::now_iso(),
            platform_id: Some(source_agent.to_string()),
            channel_type: Some(AGENT_CHANNEL_TYPE.to_string()),
            thread_id: None,
            content,
            trigger: true,
            on_wake: false,
            process_after: None,
            recurrence: None,
            source_session_id: Some(source_session.to_string()),
        }
    }
}

/// One row of the `destinations` projection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DestinationRow {
    pub name: String,
    pub display_name: Option<String>,
    /// `channel` or `agent` (column `type`).
    pub kind: String,
    pub channel_type: Option<String>,
    pub platform_id: Option<String>,
    pub agent_group_id: Option<String>,
}

/// A delivery outcome to record in `inbound.db`'s `delivered` projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message_out_id: String,
    pub platform_message_id: Option<String>,
    pub status: DeliveryStatus,
}

/// Retry bookkeeping of a pending inbound message (docs/runtime.md#the-sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryState {
    pub tries: i64,
    /// As stored (SQLite time, or ISO from older hosts); `None` = due now.
    pub process_after: Option<String>,
}

const MAX_IN_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM messages_in";
const INSERT_IN: &str = "INSERT INTO messages_in (id, seq, kind, timestamp, status, process_after,
  recurrence, series_id, tries, trigger, platform_id, channel_type, thread_id, content,
  source_session_id, on_wake)
VALUES (?1, ?2, ?3, ?4, ?14, ?5, ?6, ?1, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const STORED_IN: &str = "SELECT 1 FROM messages_in WHERE id = ?1";

/// Inserts `rows` in ONE `BEGIN IMMEDIATE` transaction with even seqs; returns the seqs.
/// Batch rows per call: each DELETE-journal commit costs about a millisecond. An id that is
/// already stored fails the whole call (see [`insert_new_inbound`]).
pub fn insert_inbound(conn: &mut InboundDb, rows: &[NewInbound]) -> Result<Vec<i64>> {
    let tx = conn
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut max: i64 = tx.query_row(MAX_IN_SEQ, [], |r| r.get(0))?;
    let mut seqs = Vec::with_capacity(rows.len());
    for row in rows {
        max = insert_row(&tx, row, max)?;
        seqs.push(max);
    }
    tx.commit()?;
    Ok(seqs)
}

/// Inserts the rows whose ids are not stored yet, in ONE `BEGIN IMMEDIATE` transaction with
/// even seqs, and returns the ids it skipped: a message a channel delivered again (same id) is
/// already stored, so its primary-key conflict cannot fail the batch and lose the messages
/// stored with it. A second row of the same id in `rows` is skipped too.
pub fn insert_new_inbound(conn: &mut InboundDb, rows: &[NewInbound]) -> Result<Vec<String>> {
    let tx = conn
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut max: i64 = tx.query_row(MAX_IN_SEQ, [], |r| r.get(0))?;
    let mut seen = HashSet::new();
    let mut skipped = Vec::new();
    {
        let mut stored = tx.prepare_cached(STORED_IN)?;
        for row in rows {
            if !seen.insert(row.id.as_str()) || stored.exists([&row.id])? {
                skipped.push(row.id.clone());
                continue;
            }
            max = insert_row(&tx, row, max)?;
        }
    }
    tx.commit()?;
    Ok(skipped)
}

/// Inserts one row with the next even seq after `max`; returns its seq.
fn insert_row(tx: &Connection, row: &NewInbound, max: i64) -> Result<i64> {
    let seq = next_even_seq(max);
    tx.prepare_cached(INSERT_IN)?.execute(params![
        row.id,
        seq,
        row.kind,
        row.timestamp,
        row.process_after,
        row.recurrence,
        row.trigger,
        row.platform_id,
        row.channel_type,
        row.thread_id,
        row.content,
        row.source_session_id,
        row.on_wake,
        InboundStatus::Pending,
    ])?;
    Ok(seq)
}

/// Records delivery outcomes in `delivered` in one `BEGIN IMMEDIATE` transaction
/// (`INSERT OR IGNORE`: the first outcome of a row wins).
pub fn mark_delivered(inbound: &mut InboundDb, records: &[DeliveryRecord]) -> Result<()> {
    let tx = inbound
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO delivered (message_out_id, platform_message_id, status, delivered_at)
             VALUES (?1, ?2, ?3, datetime('now'))",
        )?;
        for record in records {
            stmt.execute(params![
                record.message_out_id,
                record.platform_message_id,
                record.status
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A row of `inbound.db`'s `delivered`, with when it was recorded (as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredRow {
    pub record: DeliveryRecord,
    pub delivered_at: String,
}

/// Every delivery outcome recorded in `delivered` (an imported session's record of what was
/// already sent). Opened through an opener, the table has `platform_message_id` and `status`.
pub fn delivered_rows(inbound: &InboundDb) -> Result<Vec<DeliveredRow>> {
    let mut stmt = inbound.0.prepare_cached(
        "SELECT message_out_id, platform_message_id, status, delivered_at FROM delivered
         ORDER BY delivered_at, message_out_id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(DeliveredRow {
            record: DeliveryRecord {
                message_out_id: row.get(0)?,
                platform_message_id: row.get(1)?,
                status: row.get(2)?,
            },
            delivered_at: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Copies `completed`/`failed` acks into `messages_in` as `completed` (docs/runtime.md#the-sweep).
/// Returns how many inbound rows changed.
pub fn sync_acks(inbound: &mut InboundDb, outbound: &OutboundDb) -> Result<usize> {
    let outbound = &outbound.0;
    if columns(outbound, "processing_ack")?.is_empty() {
        return Ok(0);
    }
    // Start from the (small) pending set: acks are never pruned, so they only grow.
    let pending = pending_ids(&inbound.0, None)?;
    let mut finished = outbound.prepare_cached(
        "SELECT 1 FROM processing_ack WHERE message_id = ?1 AND status IN (?2, ?3)",
    )?;
    let mut done = Vec::new();
    for id in pending {
        if finished.exists(params![&id, AckStatus::Completed, AckStatus::Failed])? {
            done.push(id);
        }
    }
    if done.is_empty() {
        return Ok(0);
    }
    let tx = inbound
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = 0;
    {
        let mut update =
            tx.prepare_cached("UPDATE messages_in SET status = ?2 WHERE id = ?1 AND status = ?3")?;
        for id in &done {
            changed += update.execute(params![
                id,
                InboundStatus::Completed,
                InboundStatus::Pending
            ])?;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Ids of the pending `messages_in` rows in seq order, at most `limit`.
pub(super) fn pending_ids(inbound: &Connection, limit: Option<usize>) -> Result<Vec<String>> {
    let limit = limit.map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let mut stmt = inbound
        .prepare_cached("SELECT id FROM messages_in WHERE status = ?1 ORDER BY seq LIMIT ?2")?;
    let ids = stmt
        .query_map(params![InboundStatus::Pending, limit], |r| {
            r.get::<_, String>(0)
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids)
}

/// Number of rows that should wake the container: pending, trigger=1, due.
pub fn count_due(inbound: &InboundDb) -> Result<i64> {
    Ok(inbound.0.query_row(
        "SELECT COUNT(*) FROM messages_in WHERE status = ?1 AND trigger = 1
           AND (process_after IS NULL OR datetime(process_after) <= datetime('now'))",
        [InboundStatus::Pending],
        |r| r.get(0),
    )?)
}

/// The id of the oldest pending trigger row: the message a notice about the session (its agent
/// cannot answer yet) is about.
pub fn oldest_pending_trigger(inbound: &InboundDb) -> Result<Option<String>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT id FROM messages_in WHERE status = ?1 AND trigger = 1 ORDER BY seq LIMIT 1",
            [InboundStatus::Pending],
            |r| r.get(0),
        )
        .optional()?)
}

/// The retry bookkeeping of a pending message; `None` when it is not pending (any more).
pub fn retry_state(inbound: &InboundDb, message_id: &str) -> Result<Option<RetryState>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT tries, process_after FROM messages_in WHERE id = ?1 AND status = ?2",
            params![message_id, InboundStatus::Pending],
            |row| {
                Ok(RetryState {
                    tries: row.get(0)?,
                    process_after: row.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Gives a message back for another attempt: `tries` recorded, not due before `delay` from
/// now (docs/runtime.md#the-sweep).
pub fn retry_later(
    inbound: &InboundDb,
    message_id: &str,
    tries: i64,
    delay: Duration,
) -> Result<()> {
    inbound.0.execute(
        "UPDATE messages_in SET tries = ?2, process_after = datetime('now', ?3) WHERE id = ?1",
        params![message_id, tries, format!("+{} seconds", delay.as_secs())],
    )?;
    Ok(())
}

/// Gives a message up: status `failed`, never retried.
pub fn fail_inbound(inbound: &InboundDb, message_id: &str) -> Result<()> {
    inbound.0.execute(
        "UPDATE messages_in SET status = ?2 WHERE id = ?1",
        params![message_id, InboundStatus::Failed],
    )?;
    Ok(())
}

/// The sending session of an agent-to-agent message stored here (its return path), if any.
pub fn source_session_of(inbound: &InboundDb, message_id: &str) -> Result<Option<String>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT source_session_id FROM messages_in WHERE id = ?1",
            [message_id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// The sending session of the newest message `agent` sent into this session (peer affinity).
pub fn latest_source_session_from(inbound: &InboundDb, agent: &str) -> Result<Option<String>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT source_session_id FROM messages_in
             WHERE channel_type = ?1 AND platform_id = ?2 AND source_session_id IS NOT NULL
             ORDER BY seq DESC LIMIT 1",
            params![AGENT_CHANNEL_TYPE, agent],
            |r| r.get(0),
        )
        .optional()?)
}

/// Rewrites the `destinations` projection wholesale in one transaction.
pub fn write_destinations(inbound: &mut InboundDb, rows: &[DestinationRow]) -> Result<()> {
    let tx = inbound
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM destinations", [])?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO destinations
               (name, display_name, type, channel_type, platform_id, agent_group_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for d in rows {
            stmt.execute(params![
                d.name,
                d.display_name,
                d.kind,
                d.channel_type,
                d.platform_id,
                d.agent_group_id
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Upserts the single `session_routing` row (the session's default reply address).
pub fn write_session_routing(
    inbound: &InboundDb,
    channel_type: Option<&str>,
    platform_id: Option<&str>,
    thread_id: Option<&str>,
) -> Result<()> {
    inbound.0.execute(
        "INSERT OR REPLACE INTO session_routing (id, channel_type, platform_id, thread_id)
         VALUES (1, ?1, ?2, ?3)",
        params![channel_type, platform_id, thread_id],
    )?;
    Ok(())
}

/// The newest chat message from a person (any channel but agents) in the session:
/// `(channel_type, content)`. The host's admin gate reads its sender.
pub fn newest_chat_from_people(inbound: &InboundDb) -> Result<Option<(String, String)>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT channel_type, content FROM messages_in
             WHERE kind = 'chat' AND channel_type IS NOT NULL AND channel_type != ?1
             ORDER BY seq DESC LIMIT 1",
            [AGENT_CHANNEL_TYPE],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?)
}
