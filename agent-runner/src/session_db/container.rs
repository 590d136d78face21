//! The container's half of the session DB protocol: reads of `inbound.db`, writes to `outbound.db`.
//!
//! Pending-row selection (docs/agent-runner.md#pending-selection), claims and completions
//! (`processing_ack`), odd-seq outbound writes, continuations (`session_state`) and
//! `container_state`. The container never writes `inbound.db`. Decisions about batches and routing
//! live in `poll`, not here.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::host::DestinationRow;
use super::values::{AckStatus, InboundStatus, Kind};
use super::{InboundDb, OutboundDb, Result, columns, next_odd_seq, open_inbound_container};

/// One `messages_in` row as the runner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboundRow {
    pub id: String,
    pub seq: Option<i64>,
    pub kind: Kind,
    pub timestamp: String,
    pub trigger: bool,
    pub platform_id: Option<String>,
    pub channel_type: Option<String>,
    pub thread_id: Option<String>,
    pub content: String,
}

/// One row the runner writes into `messages_out`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewOutbound {
    pub id: String,
    pub in_reply_to: Option<String>,
    pub kind: Kind,
    pub platform_id: Option<String>,
    pub channel_type: Option<String>,
    pub thread_id: Option<String>,
    pub content: String,
}

const PENDING: &str = "SELECT id, seq, kind, timestamp, trigger, platform_id, channel_type,
  thread_id, content, process_after FROM messages_in
WHERE status = ?2
  AND (process_after IS NULL OR datetime(process_after) <= datetime('now'))
  AND (on_wake = 0 OR ?1)
ORDER BY seq IS NULL, seq ASC";

/// Pending due rows (on_wake rows only on the first poll) that no ack hides, oldest first, up
/// to `limit` non-`system` rows. Opens `inbound.db` fresh (cross-mount rule).
///
/// Every ack hides its message except a `retry` ack (given back after the model's API could not
/// be reached) once the host has rescheduled the message after it: `process_after` later than
/// the give-back, and due. Until then the host has not counted the try, so taking the message
/// again would retry it at once and without end.
///
/// Deliberate change from v2 (docs/agent-runner.md#pending-selection, runner quirk 10): v2 takes
/// the newest N rows before filtering acked ones, so a backlog larger than N is answered out of
/// order and its older rows wait for the host's ack sync. Taking the oldest unacked rows answers a
/// backlog in order, promptly, N at a time. `system` rows are returned (callers drop them) but do
/// not count against the window, so an orphan tool response cannot block it.
pub fn pending(
    inbound_path: &Path,
    outbound: &OutboundDb,
    first_poll: bool,
    limit: usize,
) -> Result<Vec<InboundRow>> {
    let inbound = open_inbound_container(inbound_path)?;
    let mut stmt = inbound.0.prepare(PENDING)?;
    let mut rows = stmt.query(params![first_poll, InboundStatus::Pending])?;
    // Per-row lookups: acks are never pruned, so loading them all would grow without bound.
    let mut acked = outbound.0.prepare_cached(
        "SELECT 1 FROM processing_ack WHERE message_id = ?1
           AND NOT (status = ?2 AND IFNULL(datetime(?3) > datetime(status_changed), 0))",
    )?;
    let mut fresh = Vec::new();
    let mut counted = 0;
    while counted < limit {
        let Some(r) = rows.next()? else { break };
        let row = InboundRow {
            id: r.get(0)?,
            seq: r.get(1)?,
            kind: r.get(2)?,
            timestamp: r.get(3)?,
            trigger: r.get::<_, i64>(4)? == 1,
            platform_id: r.get(5)?,
            channel_type: r.get(6)?,
            thread_id: r.get(7)?,
            content: r.get(8)?,
        };
        let process_after: Option<String> = r.get(9)?;
        if acked.exists(params![&row.id, AckStatus::Retry, process_after])? {
            continue;
        }
        if row.kind != Kind::System {
            counted += 1;
        }
        fresh.push(row);
    }
    Ok(fresh)
}

/// Writes `status` for every id in one transaction (`INSERT OR REPLACE`).
pub fn ack(outbound: &mut OutboundDb, ids: &[String], status: AckStatus) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let tx = outbound
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO processing_ack (message_id, status, status_changed)
             VALUES (?1, ?2, datetime('now'))",
        )?;
        for id in ids {
            stmt.execute(params![id, status])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The retries so far of each message of `ids` still pending: `(id, tries)`.
pub fn tries(inbound: &InboundDb, ids: &[String]) -> Result<Vec<(String, i64)>> {
    let mut stmt = inbound
        .0
        .prepare_cached("SELECT tries FROM messages_in WHERE id = ?1 AND status = ?2")?;
    let mut out = Vec::new();
    for id in ids {
        let tries: Option<Option<i64>> = stmt
            .query_row(params![id, InboundStatus::Pending], |r| r.get(0))
            .optional()?;
        if let Some(tries) = tries {
            out.push((id.clone(), tries.unwrap_or(0)));
        }
    }
    Ok(out)
}

/// At loop start: forgets this container's predecessor's unfinished claims.
pub fn delete_stale_claims(outbound: &OutboundDb) -> Result<usize> {
    Ok(outbound.0.execute(
        "DELETE FROM processing_ack WHERE status = ?1",
        [AckStatus::Processing],
    )?)
}

/// Writes one outbound row with the next odd seq
/// (docs/agent-runner.md#the-session-db-protocol-agent_runnersession_db) in its own
/// `BEGIN IMMEDIATE` transaction; returns the seq.
pub fn write_outbound(
    inbound: &InboundDb,
    outbound: &mut OutboundDb,
    row: &NewOutbound,
) -> Result<i64> {
    let seqs = write_replies_and_complete(inbound, outbound, std::slice::from_ref(row), &[])?;
    Ok(seqs[0])
}

/// Writes a turn's replies and marks the messages they answer `completed`, in ONE
/// `BEGIN IMMEDIATE` transaction: a container killed at any point has either answered and
/// completed them (nothing to redo) or neither (the host retries them), so a kill can neither
/// lose an answer nor send it twice. Returns the replies' seqs.
pub fn write_replies_and_complete(
    inbound: &InboundDb,
    outbound: &mut OutboundDb,
    rows: &[NewOutbound],
    completed: &[String],
) -> Result<Vec<i64>> {
    write_replies_and_ack(inbound, outbound, rows, completed, AckStatus::Completed)
}

/// Writes what the chat is told and gives `given_back` back for a retry (`retry` acks), in ONE
/// transaction like [`write_replies_and_complete`]: a kill in between cannot tell the chat
/// without giving the messages back, or the reverse.
pub fn write_replies_and_give_back(
    inbound: &InboundDb,
    outbound: &mut OutboundDb,
    rows: &[NewOutbound],
    given_back: &[String],
) -> Result<Vec<i64>> {
    write_replies_and_ack(inbound, outbound, rows, given_back, AckStatus::Retry)
}

fn write_replies_and_ack(
    inbound: &InboundDb,
    outbound: &mut OutboundDb,
    rows: &[NewOutbound],
    acked: &[String],
    status: AckStatus,
) -> Result<Vec<i64>> {
    let tx = outbound
        .0
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let max_in: i64 =
        inbound
            .0
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM messages_in", [], |r| {
                r.get(0)
            })?;
    let max_out: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages_out", [], |r| {
        r.get(0)
    })?;
    let mut max = max_in.max(max_out);
    let mut seqs = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = next_odd_seq(max);
        tx.execute(
            "INSERT INTO messages_out (id, seq, in_reply_to, timestamp, kind, platform_id,
               channel_type, thread_id, content)
             VALUES (?1, ?2, ?3, datetime('now'), ?4, ?5, ?6, ?7, ?8)",
            params![
                row.id,
                seq,
                row.in_reply_to,
                row.kind,
                row.platform_id,
                row.channel_type,
                row.thread_id,
                row.content
            ],
        )?;
        seqs.push(seq);
        max = seq;
    }
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO processing_ack (message_id, status, status_changed)
             VALUES (?1, ?2, datetime('now'))",
        )?;
        for id in acked {
            stmt.execute(params![id, status])?;
        }
    }
    tx.commit()?;
    Ok(seqs)
}

/// The newest inbound row (any status or kind) from an address: `(id, thread_id)`.
pub fn newest_inbound_from(
    inbound: &InboundDb,
    channel_type: &str,
    platform_id: &str,
) -> Result<Option<(String, Option<String>)>> {
    Ok(inbound
        .0
        .query_row(
            "SELECT id, thread_id FROM messages_in WHERE channel_type = ?1 AND platform_id = ?2
             ORDER BY seq DESC LIMIT 1",
            params![channel_type, platform_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Every destination, ordered by name (read live: the host may rewrite the table any time).
pub fn destinations(inbound: &InboundDb) -> Result<Vec<DestinationRow>> {
    let inbound = &inbound.0;
    if columns(inbound, "destinations")?.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = inbound.prepare_cached(
        "SELECT name, display_name, type, channel_type, platform_id, agent_group_id
         FROM destinations ORDER BY name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DestinationRow {
                name: r.get(0)?,
                display_name: r.get(1)?,
                kind: r.get(2)?,
                channel_type: r.get(3)?,
                platform_id: r.get(4)?,
                agent_group_id: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

const LEGACY_KEY: &str = "sdk_session_id";

fn continuation_key(provider: &str) -> String {
    format!("continuation:{}", provider.to_lowercase())
}

/// The provider's stored continuation (key `continuation:<provider lowercased>`).
pub fn continuation(outbound: &OutboundDb, provider: &str) -> Result<Option<String>> {
    get_state(&outbound.0, &continuation_key(provider))
}

/// Stores the provider's continuation.
pub fn set_continuation(outbound: &OutboundDb, provider: &str, value: &str) -> Result<()> {
    outbound.0.execute(
        "INSERT OR REPLACE INTO session_state (key, value, updated_at)
         VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        params![continuation_key(provider), value],
    )?;
    Ok(())
}

/// Forgets the provider's continuation (only that provider's slot).
pub fn clear_continuation(outbound: &OutboundDb, provider: &str) -> Result<()> {
    outbound.0.execute(
        "DELETE FROM session_state WHERE key = ?1",
        [continuation_key(provider)],
    )?;
    Ok(())
}

/// Loop start: always deletes the legacy `sdk_session_id` row, adopting it into the provider's
/// slot only when that slot is empty; returns the continuation to resume.
pub fn migrate_legacy_continuation(
    outbound: &OutboundDb,
    provider: &str,
) -> Result<Option<String>> {
    let own = continuation(outbound, provider)?;
    let legacy = get_state(&outbound.0, LEGACY_KEY)?;
    if legacy.is_some() {
        outbound
            .0
            .execute("DELETE FROM session_state WHERE key = ?1", [LEGACY_KEY])?;
    }
    match (own, legacy) {
        (Some(own), _) => Ok(Some(own)),
        (None, Some(legacy)) => {
            set_continuation(outbound, provider, &legacy)?;
            Ok(Some(legacy))
        }
        (None, None) => Ok(None),
    }
}

fn get_state(outbound: &Connection, key: &str) -> Result<Option<String>> {
    Ok(outbound
        .query_row(
            "SELECT value FROM session_state WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records the tool in flight (Bash's declared timeout when known).
pub fn set_current_tool(outbound: &OutboundDb, tool: &str, timeout_ms: Option<i64>) -> Result<()> {
    outbound.0.execute(
        "INSERT OR REPLACE INTO container_state
           (id, current_tool, tool_declared_timeout_ms, tool_started_at, updated_at)
         VALUES (1, ?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        params![tool, timeout_ms],
    )?;
    Ok(())
}

/// Clears the tool in flight.
pub fn clear_current_tool(outbound: &OutboundDb) -> Result<()> {
    outbound.0.execute(
        "INSERT OR REPLACE INTO container_state
           (id, current_tool, tool_declared_timeout_ms, tool_started_at, updated_at)
         VALUES (1, NULL, NULL, NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        [],
    )?;
    Ok(())
}

/// The session's default reply address (`session_routing`), as the tools read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routing {
    pub channel_type: Option<String>,
    pub platform_id: Option<String>,
    pub thread_id: Option<String>,
}

/// The session's default reply address; all `None` when the host wrote none.
pub fn session_routing(inbound: &InboundDb) -> Result<Routing> {
    if columns(&inbound.0, "session_routing")?.is_empty() {
        return Ok(Routing::default());
    }
    Ok(inbound
        .0
        .query_row(
            "SELECT channel_type, platform_id, thread_id FROM session_routing WHERE id = 1",
            [],
            |r| {
                Ok(Routing {
                    channel_type: r.get(0)?,
                    platform_id: r.get(1)?,
                    thread_id: r.get(2)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// `session_state` key of the turn's reply target, which the poll loop keeps for the tools
/// process (docs/agent-runner.md#tools; v2's tools never had it).
const TURN_REPLY_KEY: &str = "turn:in_reply_to";

/// Records (or, with `None`, clears) the id of the message the current turn answers.
pub fn set_turn_reply(outbound: &OutboundDb, id: Option<&str>) -> Result<()> {
    match id {
        Some(id) => set_state(&outbound.0, TURN_REPLY_KEY, id),
        None => {
            outbound
                .0
                .execute("DELETE FROM session_state WHERE key = ?1", [TURN_REPLY_KEY])?;
            Ok(())
        }
    }
}

/// `session_state` key of the time the chat was told that the model's API cannot be reached
/// (docs/agent-runner.md#when-the-model-api-cannot-be-reached); absent while it can. Kept in
/// the session DB, not the runner's memory: the retries of one outage may span containers.
const OUTAGE_TOLD_KEY: &str = "outage:told_at";

/// Whether the chat was told of the current outage of the model's API.
pub fn outage_told(outbound: &OutboundDb) -> Result<bool> {
    Ok(get_state(&outbound.0, OUTAGE_TOLD_KEY)?.is_some())
}

/// Records that the chat was told of the outage (`true`), or that it is over (`false`).
pub fn set_outage_told(outbound: &OutboundDb, told: bool) -> Result<()> {
    if told {
        outbound.0.execute(
            "INSERT OR REPLACE INTO session_state (key, value, updated_at)
             VALUES (?1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            [OUTAGE_TOLD_KEY],
        )?;
    } else {
        outbound.0.execute(
            "DELETE FROM session_state WHERE key = ?1",
            [OUTAGE_TOLD_KEY],
        )?;
    }
    Ok(())
}

/// The id of the message the current turn answers, when a turn is running.
pub fn turn_reply(outbound: &OutboundDb) -> Result<Option<String>> {
    get_state(&outbound.0, TURN_REPLY_KEY)
}

fn set_state(outbound: &Connection, key: &str, value: &str) -> Result<()> {
    outbound.execute(
        "INSERT OR REPLACE INTO session_state (key, value, updated_at)
         VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        params![key, value],
    )?;
    Ok(())
}

/// A message an agent refers to by its seq (edit_message, add_reaction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referenced {
    /// The platform's id for it: an inbound row's id, or an outbound row's recorded platform
    /// message id (its own id when none was recorded).
    pub platform_message_id: String,
    pub channel_type: Option<String>,
    pub platform_id: Option<String>,
    pub thread_id: Option<String>,
}

/// The message with `seq` (even: inbound, odd: outbound), if any.
pub fn message_by_seq(
    inbound: &InboundDb,
    outbound: &OutboundDb,
    seq: i64,
) -> Result<Option<Referenced>> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(Referenced {
            platform_message_id: r.get(0)?,
            channel_type: r.get(1)?,
            platform_id: r.get(2)?,
            thread_id: r.get(3)?,
        })
    };
    if seq % 2 == 0 {
        return Ok(inbound
            .0
            .query_row(
                "SELECT id, channel_type, platform_id, thread_id FROM messages_in WHERE seq = ?1",
                [seq],
                row,
            )
            .optional()?);
    }
    let found = outbound
        .0
        .query_row(
            "SELECT id, channel_type, platform_id, thread_id FROM messages_out WHERE seq = ?1",
            [seq],
            row,
        )
        .optional()?;
    let Some(mut found) = found else {
        return Ok(None);
    };
    if !columns(&inbound.0, "delivered")?.is_empty() {
        let platform: Option<Option<String>> = inbound
            .0
            .query_row(
                "SELECT platform_message_id FROM delivered WHERE message_out_id = ?1",
                [&found.platform_message_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(Some(id)) = platform {
            found.platform_message_id = id;
        }
    }
    Ok(Some(found))
}

/// The host's answer to question `question_id` (a pending `system` row whose content names it
/// and that no ack hides): `(row id, content)`.
pub fn question_response(
    inbound: &InboundDb,
    outbound: &OutboundDb,
    question_id: &str,
) -> Result<Option<(String, String)>> {
    let needle = format!("%\"questionId\":\"{question_id}\"%");
    let mut stmt = inbound.0.prepare_cached(
        "SELECT id, content FROM messages_in
         WHERE kind = 'system' AND status = 'pending' AND content LIKE ?1 ESCAPE '\\'
         ORDER BY seq",
    )?;
    let mut rows = stmt.query([needle])?;
    let mut acked = outbound
        .0
        .prepare_cached("SELECT 1 FROM processing_ack WHERE message_id = ?1")?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if !acked.exists([&id])? {
            return Ok(Some((id, r.get(1)?)));
        }
    }
    Ok(None)
}
