//! Delivery: outbound rows written by containers → channel adapters (host.md §6).
//!
//! One worker thread owns the attempt counters and drains sessions one at a time, so a
//! session is never drained twice at once and its replies go out in order. It is told what
//! to drain through [`Work`]: a file change under a session folder (the fast path: `notify`
//! reports `outbound.db` writes within milliseconds), a chat gaining a reader, or the
//! backstop polls (running sessions every second, all active sessions every minute).
//! Rows are recorded in the central DB's `delivered_outbound` (the authority, out of every
//! container's reach) and in `inbound.db`'s `delivered` (the projection the due query joins)
//! right after the adapter accepts them; the record is checked before every send, so neither a
//! restart nor a lost `inbound.db` re-sends what was delivered.
//!
//! Everything read from `outbound.db` is untrusted (the container writes it): the session DB
//! layer bounds sizes and types, [`check_row`] validates kind, routing and content before any
//! lookup, and a bad row is recorded as failed with a log line and skipped. Reads are paged
//! ([`session_db::host::DUE_PAGE`] rows, at most [`MAX_PAGES`] pages per drain). Missing or
//! damaged session DBs are handled by [`super::health`].

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use agent_runner::session_db::{self, Due, OutboundRow};
use rusqlite::{Connection, OptionalExtension};
use tracing::{debug, info, warn};

use super::health::{self, FileId, Health, Reporter};
use crate::channels::{Adapters, Delivered, Outbound};
use crate::db::delivered::{self, Outcome};
use crate::db::{self, sessions};
use crate::paths::Paths;

/// Attempts before a row is marked failed (host.md §6.2).
pub const MAX_ATTEMPTS: u32 = 3;
/// Most pages of due rows one drain reads; the next drain continues.
pub const MAX_PAGES: usize = 16;
/// The `kind`s a container may write (host.md §2.5); any other is recorded failed.
pub const KINDS: &[&str] = &["chat", "chat-sdk", "system"];

/// What the delivery worker should look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Something changed in this session's folder.
    Session { agent: String, session: String },
    /// A chat gained a reader (queued replies for it can go now).
    Reader {
        channel_type: String,
        platform_id: String,
    },
    /// Backstop: every active session.
    All,
    /// Stop after the current drain.
    Stop,
}

/// The worker's state; owned by its thread.
pub struct Delivery {
    conn: Connection,
    paths: Paths,
    adapters: Adapters,
    /// Failed attempts per outbound id; cleared on success or when the row is marked failed.
    attempts: HashMap<String, u32>,
    /// Sessions that received an agent-to-agent message; the waker starts their containers.
    wake: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// What each session's DB files were at the last drain, and what the chats were told.
    health: Health,
}

impl Delivery {
    pub fn new(paths: Paths, adapters: Adapters) -> anyhow::Result<Delivery> {
        let conn = db::open(&paths.db())?;
        Ok(Delivery {
            conn,
            paths,
            adapters,
            attempts: HashMap::new(),
            wake: None,
            health: Health::default(),
        })
    }

    /// Wake target sessions of agent-to-agent messages through `wake` (the runtime's waker).
    pub fn waking(mut self, wake: tokio::sync::mpsc::UnboundedSender<String>) -> Delivery {
        self.wake = Some(wake);
        self
    }

    /// Runs until [`Work::Stop`] or the senders are gone. Bursts of work are coalesced.
    pub fn run(mut self, work: std_mpsc::Receiver<Work>) {
        info!("delivery started");
        while let Ok(first) = work.recv() {
            let mut pending: BTreeSet<(String, String)> = BTreeSet::new();
            let mut everything = false;
            let mut stop = false;
            let mut take = |item: Work, pending: &mut BTreeSet<(String, String)>| match item {
                Work::Session { agent, session } => {
                    pending.insert((agent, session));
                }
                Work::Reader { .. } | Work::All => everything = true,
                Work::Stop => stop = true,
            };
            take(first, &mut pending);
            // Coalesce: a burst of file events for one session becomes one drain.
            while let Ok(item) = work.recv_timeout(Duration::from_millis(1)) {
                take(item, &mut pending);
            }
            if everything {
                match sessions::active(&self.conn) {
                    Ok(active) => pending.extend(active.into_iter().map(|s| (s.agent, s.id))),
                    Err(err) => warn!(error = %err, "listing sessions for delivery failed"),
                }
            }
            for (agent, session) in pending {
                self.drain(&agent, &session);
            }
            if stop {
                break;
            }
        }
        info!("delivery stopped");
    }

    /// Delivers every due row of one session (host.md §6.2). Errors are logged per row.
    pub fn drain(&mut self, agent: &str, session: &str) {
        let reporter = Reporter {
            conn: &self.conn,
            adapters: &self.adapters,
            paths: &self.paths,
        };
        let Some((conn, outbound)) = self.health.open(&reporter, agent, session) else {
            return;
        };
        let path = session_db::inbound_path(&self.paths.session(agent, session));
        let inbound = Inbound {
            id: health::file_id(&path),
            path,
            conn,
            replaced: std::cell::Cell::new(false),
        };
        // Rows that stay due (no reader yet, an attempt short of the limit) are skipped by the
        // next page's offset.
        let mut kept = 0;
        for _ in 0..MAX_PAGES {
            if !inbound.is_current() {
                debug!(
                    session,
                    "inbound.db was replaced during the drain; stopping it"
                );
                return;
            }
            let page = match session_db::due_outbound(&inbound.conn, &outbound, kept) {
                Ok(page) => page,
                Err(err) if err.is_missing() => {
                    debug!(session, error = %err, "outbound.db went away during the drain");
                    return;
                }
                Err(err) => {
                    warn!(session, error = %err, "reading outbound rows failed");
                    return;
                }
            };
            let full = page.len() == session_db::host::DUE_PAGE;
            for due in page {
                if !self.deliver_due(&inbound, agent, session, &due) {
                    kept += 1;
                }
                if inbound.replaced.get() {
                    // The next drain opens the new file (and restores its projection).
                    debug!(
                        session,
                        "inbound.db was replaced during the drain; stopping it"
                    );
                    return;
                }
            }
            if !full {
                break;
            }
        }
    }

    /// Health of the session files (tests).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Handles one due row; returns whether it now has an outcome (false: it stays due).
    fn deliver_due(&mut self, inbound: &Inbound, agent: &str, session: &str, due: &Due) -> bool {
        match delivered::outcome(&self.conn, session, due.id()) {
            Ok(Some(outcome)) => {
                // Delivered before `inbound.db` was recreated: restore the projection only.
                self.mark_projection(inbound, session, due.id(), &outcome);
                return true;
            }
            Ok(None) => {}
            Err(err) => {
                warn!(session, id = %due.id(), error = %err, "delivery record not readable; row left for later");
                return false;
            }
        }
        let row = match due {
            Due::Row(row) => row,
            Due::Bad { id, reason } => {
                warn!(session, id = %id, %reason, "outbound row refused: out of bounds; recorded as failed");
                self.mark(inbound, session, id, &FAILED);
                return true;
            }
        };
        if let Err(reason) = check_row(row) {
            warn!(session, id = %row.id, %reason, "outbound row refused; recorded as failed");
            self.mark(inbound, session, &row.id, &FAILED);
            return true;
        }
        self.deliver_row(inbound, agent, session, row)
    }

    fn deliver_row(
        &mut self,
        inbound: &Inbound,
        agent: &str,
        session: &str,
        row: &OutboundRow,
    ) -> bool {
        match self.send(agent, session, row) {
            Ok(Delivered::Sent(platform_message_id)) => {
                self.attempts.remove(&row.id);
                let outcome = Outcome {
                    failed: false,
                    platform_message_id,
                };
                self.mark(inbound, session, &row.id, &outcome);
                debug!(session, id = %row.id, "delivered");
                true
            }
            Ok(Delivered::NoReader) => {
                debug!(session, id = %row.id, "no reader connected; reply stays queued");
                false
            }
            Ok(Delivered::AwaitingAck) => {
                debug!(session, id = %row.id, "not shown yet; reply stays queued");
                false
            }
            Err(reason) => {
                let tries = self.attempts.entry(row.id.clone()).or_insert(0);
                *tries += 1;
                if *tries >= MAX_ATTEMPTS {
                    self.attempts.remove(&row.id);
                    warn!(session, id = %row.id, %reason, "delivery failed {MAX_ATTEMPTS} times; marked failed");
                    self.mark(inbound, session, &row.id, &FAILED);
                    true
                } else {
                    warn!(session, id = %row.id, %reason, attempt = *tries, "delivery failed; will retry");
                    false
                }
            }
        }
    }

    /// Records an outcome: the central record first (the authority), then the projection.
    fn mark(&self, inbound: &Inbound, session: &str, id: &str, outcome: &Outcome) {
        if let Err(err) = delivered::record(&self.conn, session, id, outcome) {
            warn!(session, id, error = %err, "delivery not recorded");
        }
        self.mark_projection(inbound, session, id, outcome);
    }

    /// Writes the outcome into `inbound.db` through a read-write connection opened for this
    /// one statement (the drain reads through a read-only one), unless the file was replaced
    /// since the drain opened it: a read-write connection to a deleted DB file takes the new
    /// file's journal for its own hot journal and rolls it back, breaking the new file's writer
    /// (SQLite's "unlinked while open" hazard). Both narrow that window to microseconds.
    fn mark_projection(&self, inbound: &Inbound, session: &str, id: &str, outcome: &Outcome) {
        if !inbound.is_current() {
            return;
        }
        let written = session_db::open_inbound_host(&inbound.path).and_then(|writer| {
            session_db::mark_delivered(
                &writer,
                id,
                outcome.platform_message_id.as_deref(),
                outcome.failed,
            )
        });
        if let Err(err) = written {
            warn!(session, id, error = %err, "delivery not recorded in inbound.db");
        }
    }

    /// Routes one row (host.md §6.3): system actions, agent-to-agent, or a channel send
    /// checked against the agent's destinations (its own chat is always allowed).
    fn send(&self, agent: &str, session: &str, row: &OutboundRow) -> Result<Delivered, String> {
        let content: serde_json::Value = serde_json::from_str(&row.content)
            .map_err(|err| format!("content is not JSON: {err}"))?;
        if row.kind == "system" {
            let action = content
                .get("action")
                .and_then(|v| v.as_str())
                .unwrap_or("(none)");
            warn!(session, id = %row.id, action, "system action not supported yet; dropped");
            return Ok(Delivered::Sent(None));
        }
        let (Some(channel_type), Some(platform_id)) = (&row.channel_type, &row.platform_id) else {
            warn!(session, id = %row.id, "outbound row has no routing; dropped");
            return Ok(Delivered::Sent(None));
        };
        if channel_type == "agent" {
            let routed = super::a2a::route(&self.conn, &self.paths, agent, session, row)?;
            debug!(session, id = %row.id, to = %routed.session, "agent message routed");
            if let Some(wake) = &self.wake {
                let _ = wake.send(routed.session);
            }
            return Ok(Delivered::Sent(None));
        }
        self.authorise(agent, session, channel_type, platform_id)?;
        let adapter = self
            .adapters
            .get(channel_type)
            .ok_or_else(|| format!("no `{channel_type}` channel is running"))?;
        let message = Outbound {
            id: row.id.clone(),
            agent: Some(agent.to_string()),
            platform_id: platform_id.clone(),
            thread_id: row.thread_id.clone(),
            kind: row.kind.clone(),
            content,
            in_reply_to: row.in_reply_to.clone(),
        };
        adapter.deliver(&message).map_err(|err| err.to_string())
    }

    fn authorise(
        &self,
        agent: &str,
        session: &str,
        channel_type: &str,
        platform_id: &str,
    ) -> Result<(), String> {
        let query = "SELECT m.id,
              m.id = (SELECT messaging_group_id FROM sessions WHERE id = ?3),
              EXISTS (SELECT 1 FROM agent_destinations d WHERE d.agent_group_id = ?4
                      AND d.target_type = 'channel' AND d.target_id = m.id)
            FROM messaging_groups m WHERE m.channel_type = ?1 AND m.platform_id = ?2";
        let found: Option<(String, bool, bool)> = self
            .conn
            .prepare_cached(query)
            .and_then(|mut statement| {
                statement
                    .query_row(
                        rusqlite::params![channel_type, platform_id, session, agent],
                        |row| {
                            Ok((
                                row.get(0)?,
                                row.get::<_, Option<bool>>(1)?.unwrap_or(false),
                                row.get(2)?,
                            ))
                        },
                    )
                    .optional()
            })
            .map_err(|err| format!("destination check failed: {err}"))?;
        match found {
            None => Err(format!(
                "unknown messaging group {channel_type}/{platform_id}"
            )),
            Some((_, true, _)) | Some((_, _, true)) => Ok(()),
            Some(_) => Err(format!(
                "unauthorized channel destination: {agent} cannot send to {channel_type}/{platform_id}"
            )),
        }
    }
}

/// The `inbound.db` a drain works on, and whether it is still the file at its path.
struct Inbound {
    /// Read-only: the due query.
    conn: Connection,
    path: std::path::PathBuf,
    /// The file's identity when the drain opened it.
    id: Option<FileId>,
    /// Set when the file at `path` is no longer `id`: the drain stops.
    replaced: std::cell::Cell<bool>,
}

impl Inbound {
    /// Whether the file at the path is still the one `conn` has open (else `replaced` is set).
    fn is_current(&self) -> bool {
        let current = health::file_id(&self.path) == self.id;
        if !current {
            self.replaced.set(true);
        }
        current
    }
}

const FAILED: Outcome = Outcome {
    failed: true,
    platform_message_id: None,
};

/// Validates a container-written row before anything is looked up for it (issue 7 point 6):
/// a known `kind`, content that is a JSON object, and routing fields of a sane shape
/// (`channel_type` a lower-case name; ids and addresses without control characters). Sizes
/// were bounded when the row was read. A failure is final: the row is recorded failed.
pub fn check_row(row: &OutboundRow) -> Result<(), String> {
    if !KINDS.contains(&row.kind.as_str()) {
        return Err(format!(
            "unknown kind `{}` (known: {})",
            row.kind.escape_debug(),
            KINDS.join(", ")
        ));
    }
    match serde_json::from_str::<serde_json::Value>(&row.content) {
        Ok(serde_json::Value::Object(_)) => {}
        Ok(_) => return Err("content is not a JSON object".to_string()),
        Err(err) => return Err(format!("content is not JSON: {err}")),
    }
    if let Some(channel_type) = &row.channel_type {
        let valid = !channel_type.is_empty()
            && channel_type.len() <= 64
            && channel_type.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
            });
        if !valid {
            return Err(format!(
                "`channel_type` `{}` is not a channel name",
                channel_type.escape_debug()
            ));
        }
    }
    let fields = [
        ("id", Some(&row.id)),
        ("platform_id", row.platform_id.as_ref()),
        ("thread_id", row.thread_id.as_ref()),
        ("in_reply_to", row.in_reply_to.as_ref()),
    ];
    for (name, value) in fields {
        if let Some(value) = value
            && value.chars().any(char::is_control)
        {
            return Err(format!("`{name}` holds control characters"));
        }
    }
    if row.platform_id.as_deref() == Some("") {
        return Err("`platform_id` is empty".to_string());
    }
    Ok(())
}

#[cfg(test)]
#[path = "delivery_tests.rs"]
mod tests;
