//! The host's half of the session DB protocol: writes to `inbound.db`, reads of `outbound.db`.
//!
//! Every function takes an already opened connection (see the openers in the parent module) and
//! does one protocol step; none decides routing or retries. Writers use `BEGIN IMMEDIATE`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{Result, columns, next_even_seq};

/// One message the host writes into `messages_in` (status `pending`, `series_id = id`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewInbound {
    pub id: String,
    /// `chat`, `chat-sdk`, `task`, `system` (`webhook` reserved).
    pub kind: String,
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

/// One `messages_out` row as the host's delivery reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRow {
    pub id: String,
    pub seq: Option<i64>,
    pub in_reply_to: Option<String>,
    pub timestamp: String,
    pub deliver_after: Option<String>,
    pub kind: String,
    pub platform_id: Option<String>,
    pub channel_type: Option<String>,
    pub thread_id: Option<String>,
    pub content: String,
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

/// The `container_state` row: which tool is in flight, for the host's stuck-tool sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub current_tool: Option<String>,
    pub tool_declared_timeout_ms: Option<i64>,
    pub tool_started_at: Option<String>,
    pub updated_at: String,
}

const MAX_IN_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM messages_in";
const INSERT_IN: &str = "INSERT INTO messages_in (id, seq, kind, timestamp, status, process_after,
  recurrence, series_id, tries, trigger, platform_id, channel_type, thread_id, content,
  source_session_id, on_wake)
VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?1, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Inserts `rows` in ONE `BEGIN IMMEDIATE` transaction with even seqs; returns the seqs.
/// Batch rows per call: each DELETE-journal commit costs about a millisecond.
pub fn insert_inbound(conn: &mut Connection, rows: &[NewInbound]) -> Result<Vec<i64>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut max: i64 = tx.query_row(MAX_IN_SEQ, [], |r| r.get(0))?;
    let mut seqs = Vec::with_capacity(rows.len());
    {
        let mut stmt = tx.prepare_cached(INSERT_IN)?;
        for row in rows {
            let seq = next_even_seq(max);
            stmt.execute(params![
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
            ])?;
            max = seq;
            seqs.push(seq);
        }
    }
    tx.commit()?;
    Ok(seqs)
}

const DUE_COLUMNS: &str = "id, seq, in_reply_to, timestamp, deliver_after, kind, platform_id,
  channel_type, thread_id, content";
const DUE_WHERE: &str = "(deliver_after IS NULL OR deliver_after <= datetime('now'))";

/// Outbound rows due for delivery and not yet in `delivered` (any status), oldest first.
///
/// Runs as one SQL join: `outbound.db` is attached read-only (URI `mode=ro`) to the inbound
/// connection for the duration of the query, so the cost stays about a millisecond however
/// many rows were already delivered (so `inbound` must not be inside a transaction). An
/// in-memory `outbound` (no path) is filtered in Rust.
pub fn due_outbound(inbound: &Connection, outbound: &Connection) -> Result<Vec<OutboundRow>> {
    match outbound.path().filter(|p| !p.is_empty()) {
        Some(path) => due_attached(inbound, path),
        None => due_two_connections(inbound, outbound),
    }
}

fn due_attached(inbound: &Connection, outbound_path: &str) -> Result<Vec<OutboundRow>> {
    let uri = format!(
        "file:{}?mode=ro",
        outbound_path
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    inbound.execute("ATTACH DATABASE ?1 AS outbound_ro", [uri])?;
    let sql = format!(
        "SELECT {DUE_COLUMNS} FROM outbound_ro.messages_out m WHERE {DUE_WHERE}
           AND NOT EXISTS (SELECT 1 FROM main.delivered d WHERE d.message_out_id = m.id)
         ORDER BY timestamp, seq"
    );
    let rows = inbound
        .prepare(&sql)
        .and_then(|mut stmt| stmt.query_map([], outbound_row)?.collect());
    let detached = inbound.execute("DETACH DATABASE outbound_ro", []);
    let rows = rows?;
    detached?;
    Ok(rows)
}

fn due_two_connections(inbound: &Connection, outbound: &Connection) -> Result<Vec<OutboundRow>> {
    let sql =
        format!("SELECT {DUE_COLUMNS} FROM messages_out WHERE {DUE_WHERE} ORDER BY timestamp, seq");
    let mut stmt = outbound.prepare(&sql)?;
    let rows = stmt
        .query_map([], outbound_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut delivered =
        inbound.prepare_cached("SELECT 1 FROM delivered WHERE message_out_id = ?1")?;
    let mut due = Vec::with_capacity(rows.len());
    for row in rows {
        if !delivered.exists([&row.id])? {
            due.push(row);
        }
    }
    Ok(due)
}

fn outbound_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboundRow> {
    Ok(OutboundRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        in_reply_to: r.get(2)?,
        timestamp: r.get(3)?,
        deliver_after: r.get(4)?,
        kind: r.get(5)?,
        platform_id: r.get(6)?,
        channel_type: r.get(7)?,
        thread_id: r.get(8)?,
        content: r.get(9)?,
    })
}

/// Records a delivery attempt's outcome (`INSERT OR IGNORE`: the first outcome wins).
pub fn mark_delivered(
    inbound: &Connection,
    message_out_id: &str,
    platform_message_id: Option<&str>,
    failed: bool,
) -> Result<()> {
    let status = if failed { "failed" } else { "delivered" };
    inbound.execute(
        "INSERT OR IGNORE INTO delivered (message_out_id, platform_message_id, status, delivered_at)
         VALUES (?1, ?2, ?3, datetime('now'))",
        params![message_out_id, platform_message_id, status],
    )?;
    Ok(())
}

/// Copies `completed`/`failed` acks into `messages_in` as `completed` (host.md §5.2 step 1).
/// Returns how many inbound rows changed.
pub fn sync_acks(inbound: &mut Connection, outbound: &Connection) -> Result<usize> {
    // Start from the (small) pending set: acks are never pruned, so they only grow.
    let pending = {
        let mut stmt =
            inbound.prepare_cached("SELECT id FROM messages_in WHERE status = 'pending'")?;
        stmt.query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut finished = outbound.prepare_cached(
        "SELECT 1 FROM processing_ack WHERE message_id = ?1 AND status IN ('completed', 'failed')",
    )?;
    let mut done = Vec::new();
    for id in pending {
        if finished.exists([&id])? {
            done.push(id);
        }
    }
    if done.is_empty() {
        return Ok(0);
    }
    let tx = inbound.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut changed = 0;
    {
        let mut update = tx.prepare_cached(
            "UPDATE messages_in SET status = 'completed' WHERE id = ?1 AND status = 'pending'",
        )?;
        for id in &done {
            changed += update.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(changed)
}

/// Number of rows that should wake the container: pending, trigger=1, due.
pub fn count_due(inbound: &Connection) -> Result<i64> {
    Ok(inbound.query_row(
        "SELECT COUNT(*) FROM messages_in WHERE status = 'pending' AND trigger = 1
           AND (process_after IS NULL OR datetime(process_after) <= datetime('now'))",
        [],
        |r| r.get(0),
    )?)
}

/// Rewrites the `destinations` projection wholesale in one transaction.
pub fn write_destinations(inbound: &mut Connection, rows: &[DestinationRow]) -> Result<()> {
    let tx = inbound.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    inbound: &Connection,
    channel_type: Option<&str>,
    platform_id: Option<&str>,
    thread_id: Option<&str>,
) -> Result<()> {
    inbound.execute(
        "INSERT OR REPLACE INTO session_routing (id, channel_type, platform_id, thread_id)
         VALUES (1, ?1, ?2, ?3)",
        params![channel_type, platform_id, thread_id],
    )?;
    Ok(())
}

/// Claims the container holds: `(message_id, status_changed)` of every `processing` ack.
pub fn processing_claims(outbound: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = outbound.prepare_cached(
        "SELECT message_id, status_changed FROM processing_ack WHERE status = 'processing'",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// After a kill (host only, via `open_outbound_host_rw`): deletes every `processing` ack so the
/// rows become visible to the next container. Returns how many were deleted.
pub fn delete_processing_claims(outbound: &Connection) -> Result<usize> {
    Ok(outbound.execute("DELETE FROM processing_ack WHERE status = 'processing'", [])?)
}

/// The tool in flight, if the container recorded one; a missing table or row reads as `None`.
pub fn container_state(outbound: &Connection) -> Result<Option<ContainerState>> {
    if columns(outbound, "container_state")?.is_empty() {
        return Ok(None);
    }
    Ok(outbound
        .query_row(
            "SELECT current_tool, tool_declared_timeout_ms, tool_started_at, updated_at
             FROM container_state WHERE id = 1",
            [],
            |r| {
                Ok(ContainerState {
                    current_tool: r.get(0)?,
                    tool_declared_timeout_ms: r.get(1)?,
                    tool_started_at: r.get(2)?,
                    updated_at: r.get(3)?,
                })
            },
        )
        .optional()?)
}
