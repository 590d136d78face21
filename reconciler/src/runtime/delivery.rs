//! Delivery: outbound rows written by containers → channel adapters (host.md §6).
//!
//! One worker thread owns the attempt counters and drains sessions one at a time, so a
//! session is never drained twice at once and its replies go out in order. It is told what
//! to drain through [`Work`]: a file change under a session folder (the fast path: `notify`
//! reports `outbound.db` writes within milliseconds), a chat gaining a reader, or the
//! backstop polls (running sessions every second, all active sessions every minute).
//! Rows are marked in `inbound.db`'s `delivered` table right after the adapter accepts them;
//! the table is checked before every send, so a restart never re-sends what was delivered.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use agent_runner::session_db::{self, OutboundRow};
use rusqlite::{Connection, OptionalExtension};
use tracing::{debug, info, warn};

use crate::channels::{Adapters, Delivered, Outbound};
use crate::db::{self, sessions};
use crate::paths::Paths;

/// Attempts before a row is marked failed (host.md §6.2).
pub const MAX_ATTEMPTS: u32 = 3;

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
}

impl Delivery {
    pub fn new(paths: Paths, adapters: Adapters) -> anyhow::Result<Delivery> {
        let conn = db::open(&paths.db())?;
        Ok(Delivery {
            conn,
            paths,
            adapters,
            attempts: HashMap::new(),
        })
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
        let dir = self.paths.session(agent, session);
        let outbound_path = dir.join(session_db::OUTBOUND_FILE);
        if !outbound_path.exists() {
            return;
        }
        let opened = session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE))
            .and_then(|inbound| Ok((inbound, session_db::open_outbound_host(&outbound_path)?)));
        let (inbound, outbound) = match opened {
            Ok(pair) => pair,
            Err(err) => {
                debug!(session, error = %err, "session DBs not readable yet");
                return;
            }
        };
        let rows = match session_db::due_outbound(&inbound, &outbound) {
            Ok(rows) => rows,
            Err(err) => {
                warn!(session, error = %err, "reading outbound rows failed");
                return;
            }
        };
        for row in rows {
            self.deliver_row(&inbound, agent, session, &row);
        }
    }

    fn deliver_row(&mut self, inbound: &Connection, agent: &str, session: &str, row: &OutboundRow) {
        let outcome = self.send(agent, session, row);
        let mark = |failed: bool, platform_message_id: Option<&str>| {
            if let Err(err) =
                session_db::mark_delivered(inbound, &row.id, platform_message_id, failed)
            {
                warn!(session, id = %row.id, error = %err, "delivery not recorded");
            }
        };
        match outcome {
            Ok(Delivered::Sent(platform_message_id)) => {
                self.attempts.remove(&row.id);
                mark(false, platform_message_id.as_deref());
                debug!(session, id = %row.id, "delivered");
            }
            Ok(Delivered::NoReader) => {
                debug!(session, id = %row.id, "no reader connected; reply stays queued")
            }
            Err(reason) => {
                let tries = self.attempts.entry(row.id.clone()).or_insert(0);
                *tries += 1;
                if *tries >= MAX_ATTEMPTS {
                    self.attempts.remove(&row.id);
                    warn!(session, id = %row.id, %reason, "delivery failed {MAX_ATTEMPTS} times; marked failed");
                    mark(true, None);
                } else {
                    warn!(session, id = %row.id, %reason, attempt = *tries, "delivery failed; will retry");
                }
            }
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
            return Err("agent-to-agent messages are not supported yet".to_string());
        }
        self.authorise(agent, session, channel_type, platform_id)?;
        let adapter = self
            .adapters
            .get(channel_type)
            .ok_or_else(|| format!("no `{channel_type}` channel is running"))?;
        let message = Outbound {
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
