//! The host's reads of the container-written `outbound.db`: everything in it is untrusted, so
//! every read is bounded. At most [`DUE_PAGE`] rows per query; text columns checked for type
//! and size in SQL *before* their value is loaded ([`MAX_CONTENT_BYTES`], [`MAX_ID_BYTES`],
//! [`MAX_FIELD_BYTES`]); a row that breaks a bound comes back as [`Due::Bad`] (to be recorded
//! and skipped) instead of failing the whole read. Rows without a usable id cannot be recorded;
//! they are never read and only counted ([`unaddressable_outbound`]). Claims are read only for
//! the host's own pending messages ([`processing_claims`]), `container_state` only with values
//! of the right type ([`container_state`]).

use rusqlite::{Connection, OptionalExtension, params};

use super::host::pending_ids;
use super::values::{AckStatus, Kind};
use super::{InboundDb, OutboundDb, Result, columns};

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

/// The `container_state` row: which tool is in flight, for the host's stuck-tool sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub current_tool: Option<String>,
    pub tool_declared_timeout_ms: Option<i64>,
    pub tool_started_at: Option<String>,
    pub updated_at: String,
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

/// Whether a row of `messages_out` waits for a later `deliver_after`.
pub fn has_later_outbound(outbound: &OutboundDb) -> Result<bool> {
    Ok(outbound.0.query_row(
        "SELECT EXISTS (SELECT 1 FROM messages_out WHERE deliver_after > datetime('now'))",
        [],
        |row| row.get(0),
    )?)
}

/// Claims the container holds on the host's pending messages: `(message_id, status_changed)`
/// of each `processing` ack whose message is pending in `inbound.db`, at most [`MAX_CLAIMS`].
/// Starting from the host's own pending rows means acks for unknown ids (however many the
/// container writes) are never read.
pub fn processing_claims(
    inbound: &InboundDb,
    outbound: &OutboundDb,
) -> Result<Vec<(String, String)>> {
    acks_of_pending(inbound, outbound, AckStatus::Processing)
}

/// The messages the container gave back for a retry (`retry` acks: their turn could not reach
/// the model's API), as `(message id, given back at)` for each pending one, at most
/// [`MAX_CLAIMS`]; bounded like [`processing_claims`].
pub fn given_back(inbound: &InboundDb, outbound: &OutboundDb) -> Result<Vec<(String, String)>> {
    acks_of_pending(inbound, outbound, AckStatus::Retry)
}

/// `(message id, status_changed)` of each ack with `status` whose message is pending.
fn acks_of_pending(
    inbound: &InboundDb,
    outbound: &OutboundDb,
    status: AckStatus,
) -> Result<Vec<(String, String)>> {
    let pending = pending_ids(&inbound.0, Some(MAX_CLAIMS))?;
    let outbound = &outbound.0;
    if pending.is_empty() || columns(outbound, "processing_ack")?.is_empty() {
        return Ok(Vec::new());
    }
    let mut acked = outbound.prepare_cached(&format!(
        "SELECT {} FROM processing_ack WHERE message_id = ?1 AND status = ?2",
        bounded("status_changed", MAX_FIELD_BYTES)
    ))?;
    let mut acks = Vec::new();
    for id in pending {
        let at: Option<Option<String>> = acked
            .query_row(params![&id, status], |r| r.get(0))
            .optional()?;
        if let Some(at) = at {
            acks.push((id, at.unwrap_or_default()));
        }
    }
    Ok(acks)
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
