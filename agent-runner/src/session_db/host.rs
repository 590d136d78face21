//! The host's half of the session DB protocol: writes to `inbound.db`, reads of `outbound.db`.
//!
//! Every function takes an already opened connection (see the openers in the parent module) and
//! does one protocol step; none decides routing or retries. Writers use `BEGIN IMMEDIATE`.
//!
//! `outbound.db` is written by the container, so every read of it is bounded: at most
//! [`DUE_PAGE`] rows per query, text columns checked for type and size in SQL *before* their
//! value is loaded ([`MAX_CONTENT_BYTES`], [`MAX_ID_BYTES`], [`MAX_FIELD_BYTES`]), and a row
//! that breaks a bound comes back as [`Due::Bad`] (to be recorded and skipped) instead of
//! failing the whole read. Rows without a usable id cannot be recorded; they are never read
//! and only counted ([`unaddressable_outbound`]).

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::values::{AckStatus, DeliveryStatus, InboundStatus, Kind};
use super::{AGENT_CHANNEL_TYPE, InboundDb, OutboundDb, Result, columns, ids, next_even_seq};

/// Largest `content` (bytes) the host reads from an outbound row; larger rows are recorded as
/// failed and skipped.
pub const MAX_CONTENT_BYTES: i64 = 256 * 1024;
/// Largest `id` / `in_reply_to` / ack `message_id` (bytes) the host reads.
pub const MAX_ID_BYTES: i64 = 256;
/// Largest routing or time field (`kind`, `channel_type`, `platform_id`, `thread_id`,
/// `timestamp`, `status_changed`, tool names) in bytes.
pub const MAX_FIELD_BYTES: i64 = 512;
/// Most outbound rows one [`due_outbound`] call returns (page with its `offset`).
pub const DUE_PAGE: usize = 256;
/// Most claims [`processing_claims`] reports (the pending rows it checks are the host's own).
pub const MAX_CLAIMS: usize = 1000;

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
    /// An agent-to-agent message (docs/runtime.md, "The message path"): a waking chat row from `source_agent`'s
    /// address (`channel_type` [`AGENT_CHANNEL_TYPE`], `platform_id` the agent), remembering the
    /// sending session so the answer finds its way back.
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

/// One due `messages_out` row: within every bound, or not (with the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    Row(OutboundRow),
    /// Breaks a bound of the protocol: record it as failed under `id` and skip it.
    Bad {
        id: String,
        reason: String,
    },
}

impl Due {
    /// The row's `messages_out.id`.
    pub fn id(&self) -> &str {
        match self {
            Due::Row(row) => &row.id,
            Due::Bad { id, .. } => id,
        }
    }
}

/// One `messages_out` row as the host's delivery reads it (every text within its bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRow {
    pub id: String,
    pub seq: Option<i64>,
    pub in_reply_to: Option<String>,
    pub timestamp: String,
    pub deliver_after: Option<String>,
    /// As written by the container: [`Kind::Unknown`] for anything this version does not know.
    pub kind: Kind,
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

/// A delivery outcome to record in `inbound.db`'s `delivered` projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub message_out_id: String,
    pub platform_message_id: Option<String>,
    pub status: DeliveryStatus,
}

/// Retry bookkeeping of a pending inbound message (docs/runtime.md, "The sweep").
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

/// `id` is usable: text of 1..=MAX_ID_BYTES bytes. Rows failing this are never read.
fn addressable(column: &str) -> String {
    format!("(typeof({column}) = 'text' AND octet_length({column}) BETWEEN 1 AND {MAX_ID_BYTES})")
}

/// `column` when it is NULL or text within `max` bytes, else NULL; the value is loaded only
/// when it is within the bound (`octet_length` reads the record header).
fn bounded(column: &str, max: i64) -> String {
    format!(
        "CASE WHEN typeof({column}) = 'text' AND octet_length({column}) <= {max} THEN {column} END"
    )
}

/// NULL when the row is within every bound, else why not (the first broken bound).
fn problem() -> String {
    let text = |column: &str, max: i64, nullable: bool| {
        let allowed = if nullable {
            "('text', 'null')"
        } else {
            "('text')"
        };
        format!(
            "WHEN typeof({column}) NOT IN {allowed} THEN '`{column}` is ' || typeof({column}) || ', not text'
             WHEN octet_length({column}) > {max} THEN '`{column}` is ' || octet_length({column}) || ' bytes, more than {max}'"
        )
    };
    format!(
        "CASE {} {} {} {} {} {} {} {} ELSE NULL END",
        text("content", MAX_CONTENT_BYTES, false),
        text("kind", MAX_FIELD_BYTES, false),
        text("timestamp", MAX_FIELD_BYTES, false),
        text("in_reply_to", MAX_ID_BYTES, true),
        text("channel_type", MAX_FIELD_BYTES, true),
        text("platform_id", MAX_FIELD_BYTES, true),
        text("thread_id", MAX_FIELD_BYTES, true),
        "WHEN typeof(seq) NOT IN ('integer', 'null') THEN '`seq` is ' || typeof(seq) || ', not an integer'",
    )
}

fn due_columns() -> String {
    format!(
        "id, CASE WHEN typeof(seq) = 'integer' THEN seq END, {}, {}, {}, {}, {}, {}, {}, {}, {}",
        bounded("in_reply_to", MAX_ID_BYTES),
        bounded("timestamp", MAX_FIELD_BYTES),
        bounded("deliver_after", MAX_FIELD_BYTES),
        bounded("kind", MAX_FIELD_BYTES),
        bounded("platform_id", MAX_FIELD_BYTES),
        bounded("channel_type", MAX_FIELD_BYTES),
        bounded("thread_id", MAX_FIELD_BYTES),
        bounded("content", MAX_CONTENT_BYTES),
        problem(),
    )
}

const DUE_WHERE: &str = "(deliver_after IS NULL OR deliver_after <= datetime('now'))";

/// One page of outbound rows due for delivery and not yet in `delivered` (any status), oldest
/// first: at most [`DUE_PAGE`] rows after skipping `offset` (the rows of earlier pages that
/// stayed undelivered). Rows breaking a bound come back as [`Due::Bad`].
///
/// Runs as one SQL join: `outbound.db` is attached read-only (URI `mode=ro`; the inbound
/// connection's `SQLITE_OPEN_NOFOLLOW` carries over) to the inbound connection for the duration
/// of the query, so the cost stays about a millisecond however many rows were already delivered
/// (so `inbound` must not be inside a transaction). An in-memory `outbound` (no path) is
/// filtered in Rust.
pub fn due_outbound(inbound: &InboundDb, outbound: &OutboundDb, offset: usize) -> Result<Vec<Due>> {
    match outbound.0.path().filter(|p| !p.is_empty()) {
        Some(path) => due_attached(&inbound.0, path, offset),
        None => due_two_connections(&inbound.0, &outbound.0, offset),
    }
}

fn due_attached(inbound: &Connection, outbound_path: &str, offset: usize) -> Result<Vec<Due>> {
    let uri = format!(
        "file:{}?mode=ro",
        outbound_path
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23")
    );
    use rusqlite::limits::Limit;
    let limit = inbound.set_limit(Limit::SQLITE_LIMIT_LENGTH, super::HOST_MAX_VALUE_BYTES)?;
    let result = attached_query(inbound, &uri, outbound_path, offset);
    inbound.set_limit(Limit::SQLITE_LIMIT_LENGTH, limit)?;
    result
}

fn attached_query(inbound: &Connection, uri: &str, path: &str, offset: usize) -> Result<Vec<Due>> {
    inbound.execute("ATTACH DATABASE ?1 AS outbound_ro", [uri])?;
    let rows = inbound
        .pragma_update(Some("outbound_ro"), "mmap_size", 0)
        .map_err(super::SessionDbError::from)
        .and_then(|()| {
            super::check_outbound_schema(inbound, "outbound_ro", std::path::Path::new(path))
        })
        .and_then(|()| {
            let sql = format!(
                "SELECT {} FROM outbound_ro.messages_out m WHERE {} AND {DUE_WHERE}
                   AND NOT EXISTS (SELECT 1 FROM main.delivered d WHERE d.message_out_id = m.id)
                 ORDER BY timestamp, seq LIMIT {DUE_PAGE} OFFSET ?1",
                due_columns(),
                addressable("id"),
            );
            let mut stmt = inbound.prepare(&sql)?;
            let rows = stmt
                .query_map([offset as i64], due_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        });
    let detached = inbound.execute("DETACH DATABASE outbound_ro", []);
    let rows = rows?;
    detached?;
    Ok(rows)
}

fn due_two_connections(
    inbound: &Connection,
    outbound: &Connection,
    offset: usize,
) -> Result<Vec<Due>> {
    let sql = format!(
        "SELECT {} FROM messages_out WHERE {} AND {DUE_WHERE} ORDER BY timestamp, seq",
        due_columns(),
        addressable("id"),
    );
    let mut stmt = outbound.prepare(&sql)?;
    let rows = stmt
        .query_map([], due_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut delivered =
        inbound.prepare_cached("SELECT 1 FROM delivered WHERE message_out_id = ?1")?;
    let mut due = Vec::new();
    for row in rows {
        if !delivered.exists([row.id()])? {
            due.push(row);
        }
    }
    Ok(due.into_iter().skip(offset).take(DUE_PAGE).collect())
}

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Due> {
    let id: String = r.get(0)?;
    if let Some(reason) = r.get::<_, Option<String>>(10)? {
        return Ok(Due::Bad { id, reason });
    }
    Ok(Due::Row(OutboundRow {
        id,
        seq: r.get(1)?,
        in_reply_to: r.get(2)?,
        timestamp: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        deliver_after: r.get(4)?,
        kind: Kind::parse(&r.get::<_, Option<String>>(5)?.unwrap_or_default()),
        platform_id: r.get(6)?,
        channel_type: r.get(7)?,
        thread_id: r.get(8)?,
        content: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
    }))
}

/// How many `messages_out` rows have no usable id (not text, empty, or longer than
/// [`MAX_ID_BYTES`]): the host never reads them and cannot record them.
pub fn unaddressable_outbound(outbound: &OutboundDb) -> Result<i64> {
    let outbound = &outbound.0;
    if columns(outbound, "messages_out")?.is_empty() {
        return Ok(0);
    }
    Ok(outbound.query_row(
        &format!(
            "SELECT COUNT(*) FROM messages_out WHERE NOT {}",
            addressable("id")
        ),
        [],
        |r| r.get(0),
    )?)
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

/// Copies `completed`/`failed` acks into `messages_in` as `completed` (host.md §5.2 step 1).
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
fn pending_ids(inbound: &Connection, limit: Option<usize>) -> Result<Vec<String>> {
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
/// now (docs/runtime.md, "The sweep").
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

/// Whether a row of `messages_out` waits for a later `deliver_after`.
pub fn has_later_outbound(outbound: &OutboundDb) -> Result<bool> {
    Ok(outbound.0.query_row(
        "SELECT EXISTS (SELECT 1 FROM messages_out WHERE deliver_after > datetime('now'))",
        [],
        |row| row.get(0),
    )?)
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

/// Claims the container holds on the host's pending messages: `(message_id, status_changed)`
/// of each `processing` ack whose message is pending in `inbound.db`, at most [`MAX_CLAIMS`].
/// Starting from the host's own pending rows means acks for unknown ids (however many the
/// container writes) are never read.
pub fn processing_claims(
    inbound: &InboundDb,
    outbound: &OutboundDb,
) -> Result<Vec<(String, String)>> {
    let pending = pending_ids(&inbound.0, Some(MAX_CLAIMS))?;
    let outbound = &outbound.0;
    if pending.is_empty() || columns(outbound, "processing_ack")?.is_empty() {
        return Ok(Vec::new());
    }
    let mut claimed = outbound.prepare_cached(&format!(
        "SELECT {} FROM processing_ack WHERE message_id = ?1 AND status = ?2",
        bounded("status_changed", MAX_FIELD_BYTES)
    ))?;
    let mut claims = Vec::new();
    for id in pending {
        let at: Option<Option<String>> = claimed
            .query_row(params![&id, AckStatus::Processing], |r| r.get(0))
            .optional()?;
        if let Some(at) = at {
            claims.push((id, at.unwrap_or_default()));
        }
    }
    Ok(claims)
}

/// The tool in flight, if the container recorded one; a missing table or row reads as `None`.
/// Values of the wrong type or size read as absent (`tool_declared_timeout_ms` only as a
/// non-negative integer).
pub fn container_state(outbound: &OutboundDb) -> Result<Option<ContainerState>> {
    let outbound = &outbound.0;
    if columns(outbound, "container_state")?.is_empty() {
        return Ok(None);
    }
    Ok(outbound
        .query_row(
            &format!(
                "SELECT {}, CASE WHEN typeof(tool_declared_timeout_ms) = 'integer'
                                  AND tool_declared_timeout_ms >= 0 THEN tool_declared_timeout_ms END,
                        {}, {}
                 FROM container_state WHERE id = 1",
                bounded("current_tool", MAX_FIELD_BYTES),
                bounded("tool_started_at", MAX_FIELD_BYTES),
                bounded("updated_at", MAX_FIELD_BYTES),
            ),
            [],
            |r| {
                Ok(ContainerState {
                    current_tool: r.get(0)?,
                    tool_declared_timeout_ms: r.get(1)?,
                    tool_started_at: r.get(2)?,
                    updated_at: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                })
            },
        )
        .optional()?)
}
