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
    /// Sessions that received an agent-to-agent message; the waker starts their containers.
    wake: Option<tokio::sync::mpsc::UnboundedSender<String>>,
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
            Ok(Delivered::AwaitingAck) => {
                debug!(session, id = %row.id, "not shown yet; reply stays queued")
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

#[cfg(test)]
mod tests {
    //! Ported from v2's delivery tests: real temp session DBs, a recording fake adapter.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::channels::{Adapter, DeliveryError};
    use crate::db::sessions::Session;

    type Script = Box<dyn Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync>;

    /// A `telegram` adapter that records every message and answers per call number.
    struct Recorder {
        calls: Mutex<Vec<Outbound>>,
        script: Script,
    }

    impl Adapter for Recorder {
        fn channel_type(&self) -> &str {
            "telegram"
        }
        fn supports_threads(&self) -> bool {
            false
        }
        fn deliver(&self, message: &Outbound) -> Result<Delivered, DeliveryError> {
            let mut calls = self.calls.lock().unwrap();
            calls.push(message.clone());
            (self.script)(calls.len())
        }
    }

    struct World {
        _dir: tempfile::TempDir,
        paths: Paths,
        conn: Connection,
        session: Session,
        recorder: Arc<Recorder>,
        delivery: Delivery,
    }

    /// v2's fixture: agent `ag-1`, chat telegram/telegram:123, a shared session on it.
    fn world(
        script: impl Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync + 'static,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'Test Agent', 'ag-1', 't');
             INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
               VALUES ('mg-1', 'telegram', 'telegram:123', 'Test Chat', 0, 'public', 't');",
        )
        .unwrap();
        let session = sessions::create(&conn, "ag-1", Some("mg-1"), None).unwrap();
        session_db::create(&paths.session("ag-1", &session.id)).unwrap();
        let recorder = Arc::new(Recorder {
            calls: Mutex::default(),
            script: Box::new(script),
        });
        let mut adapters = Adapters::default();
        adapters.register(recorder.clone());
        let delivery = Delivery::new(paths.clone(), adapters).unwrap();
        World {
            _dir: dir,
            paths,
            conn,
            session,
            recorder,
            delivery,
        }
    }

    fn sent(_: usize) -> Result<Delivered, DeliveryError> {
        Ok(Delivered::Sent(Some("plat-msg-1".into())))
    }

    impl World {
        fn outbound(&self, id: &str, channel_type: &str, platform_id: &str, extra: &str) {
            let dir = self.paths.session("ag-1", &self.session.id);
            let conn =
                session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
            conn.execute(
                &format!(
                    "INSERT INTO messages_out (id, timestamp, kind, platform_id, channel_type, content{})
                     VALUES (?1, datetime('now'), 'chat', ?2, ?3, '{{\"text\":\"hello\"}}'{})",
                    if extra.is_empty() { "" } else { ", deliver_after" },
                    if extra.is_empty() { String::new() } else { format!(", {extra}") },
                ),
                rusqlite::params![id, platform_id, channel_type],
            )
            .unwrap();
        }

        fn reply(&self, id: &str) {
            self.outbound(id, "telegram", "telegram:123", "");
        }

        fn drain(&mut self) {
            self.delivery.drain("ag-1", &self.session.id);
        }

        fn calls(&self) -> usize {
            self.recorder.calls.lock().unwrap().len()
        }

        /// `(status, platform message id)` recorded in `delivered` for an outbound id.
        fn delivered(&self, id: &str) -> Option<(String, Option<String>)> {
            let dir = self.paths.session("ag-1", &self.session.id);
            let inbound =
                session_db::open_inbound_container(&dir.join(session_db::INBOUND_FILE)).unwrap();
            inbound
                .query_row(
                    "SELECT status, platform_message_id FROM delivered WHERE message_out_id = ?1",
                    [id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .unwrap()
        }
    }

    #[test]
    fn detects_an_undelivered_row_and_delivers_it_exactly_once() {
        // v2's concurrent-poll race cannot happen here: one worker thread drains sessions one
        // at a time. What remains to prove is that a second drain does not re-send.
        let mut world = world(sent);
        world.reply("out-1");
        world.drain();
        world.drain();
        assert_eq!(world.calls(), 1);
        assert_eq!(
            world.delivered("out-1"),
            Some(("delivered".into(), Some("plat-msg-1".into())))
        );
        let call = world.recorder.calls.lock().unwrap()[0].clone();
        assert_eq!(call.platform_id, "telegram:123");
        assert_eq!(call.content, serde_json::json!({"text": "hello"}));
    }

    #[test]
    fn still_delivers_on_a_subsequent_call_after_the_first_finishes() {
        let mut world = world(sent);
        world.reply("out-first");
        world.drain();
        world.reply("out-second");
        world.drain();
        assert_eq!(world.calls(), 2);
    }

    #[test]
    fn retries_on_adapter_failure_and_marks_failed_after_max_attempts() {
        let mut world = world(|_| Err(DeliveryError::Failed("network timeout".into())));
        world.reply("out-flaky");
        for attempt in 1..=MAX_ATTEMPTS as usize {
            assert_eq!(world.delivered("out-flaky"), None);
            world.drain();
            assert_eq!(world.calls(), attempt);
        }
        world.drain();
        assert_eq!(
            world.calls(),
            MAX_ATTEMPTS as usize,
            "failed rows are not retried"
        );
        assert_eq!(world.delivered("out-flaky"), Some(("failed".into(), None)));
    }

    #[test]
    fn clears_the_attempt_counter_on_successful_delivery() {
        let mut world = world(|call| {
            if call == 1 || call == 3 || call == 4 {
                Err(DeliveryError::Failed("transient".into()))
            } else {
                Ok(Delivered::Sent(None))
            }
        });
        world.reply("out-retry-ok");
        world.drain();
        world.drain();
        world.drain();
        assert_eq!(world.calls(), 2);
        assert_eq!(
            world.delivered("out-retry-ok"),
            Some(("delivered".into(), None))
        );
        // A later row gets its own full set of attempts.
        world.reply("out-next");
        world.drain();
        world.drain();
        assert_eq!(
            world.delivered("out-next"),
            None,
            "two failures are not three"
        );
        world.drain();
        assert_eq!(
            world.delivered("out-next"),
            Some(("delivered".into(), None))
        );
    }

    #[test]
    fn no_reader_keeps_the_row_queued_without_counting_an_attempt() {
        let mut world = world(|call| {
            if call <= 4 {
                Ok(Delivered::NoReader)
            } else {
                Ok(Delivered::Sent(None))
            }
        });
        world.reply("out-1");
        for _ in 0..4 {
            world.drain();
        }
        assert_eq!(world.delivered("out-1"), None);
        world.drain();
        assert_eq!(world.delivered("out-1"), Some(("delivered".into(), None)));
    }

    #[test]
    fn rows_due_later_wait() {
        let mut world = world(sent);
        world.outbound(
            "out-later",
            "telegram",
            "telegram:123",
            "datetime('now', '+1 hour')",
        );
        world.outbound(
            "out-past",
            "telegram",
            "telegram:123",
            "datetime('now', '-1 minute')",
        );
        world.drain();
        assert_eq!(world.calls(), 1);
        assert!(world.delivered("out-past").is_some());
        assert_eq!(world.delivered("out-later"), None);
    }

    #[test]
    fn rejects_delivery_to_an_unauthorized_channel_destination() {
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-2', 'telegram', 'telegram:456', 't');",
            )
            .unwrap();
        world.outbound("out-unauth", "telegram", "telegram:456", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0, "refused before the adapter");
        assert_eq!(world.delivered("out-unauth"), Some(("failed".into(), None)));
    }

    #[test]
    fn a_destination_row_authorises_another_chat() {
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-2', 'telegram', 'telegram:456', 't');
                 INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
                   VALUES ('ag-1', 'family', 'channel', 'mg-2', 't');",
            )
            .unwrap();
        world.outbound("out-family", "telegram", "telegram:456", "");
        world.drain();
        assert_eq!(world.calls(), 1);
        assert_eq!(
            world.delivered("out-family").map(|d| d.0),
            Some("delivered".into())
        );
    }

    #[test]
    fn refuses_an_unknown_destination() {
        let mut world = world(sent);
        world.outbound("out-nowhere", "telegram", "telegram:999", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0);
        assert_eq!(
            world.delivered("out-nowhere"),
            Some(("failed".into(), None))
        );
    }

    #[test]
    fn system_rows_and_rows_without_routing_are_dropped_as_delivered() {
        let mut world = world(sent);
        let dir = world.paths.session("ag-1", &world.session.id);
        let conn =
            session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
        conn.execute_batch(
            "INSERT INTO messages_out (id, timestamp, kind, content)
               VALUES ('out-sys', datetime('now'), 'system', '{\"action\":\"schedule_task\"}'),
                      ('out-bare', datetime('now'), 'chat', '{\"text\":\"to nobody\"}');",
        )
        .unwrap();
        world.drain();
        assert_eq!(world.calls(), 0);
        assert_eq!(
            world.delivered("out-sys").map(|d| d.0),
            Some("delivered".into())
        );
        assert_eq!(
            world.delivered("out-bare").map(|d| d.0),
            Some("delivered".into())
        );
    }

    #[test]
    fn a_reply_for_a_channel_without_a_running_adapter_fails_after_retries() {
        // v2 drops such a row as delivered at once (host.md §6.3 step 1); we count it as a
        // failed attempt so the operator sees `failed`, not a silent success.
        let mut world = world(sent);
        world
            .conn
            .execute_batch(
                "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
                   VALUES ('mg-d', 'discord', 'chan-1', 't');
                 UPDATE sessions SET messaging_group_id = 'mg-d';",
            )
            .unwrap();
        world.outbound("out-d", "discord", "chan-1", "");
        for _ in 0..MAX_ATTEMPTS {
            world.drain();
        }
        assert_eq!(world.calls(), 0);
        assert_eq!(world.delivered("out-d"), Some(("failed".into(), None)));
    }

    #[test]
    fn thread_and_reply_reference_reach_the_adapter() {
        let mut world = world(sent);
        let dir = world.paths.session("ag-1", &world.session.id);
        let conn =
            session_db::open_outbound_container(&dir.join(session_db::OUTBOUND_FILE)).unwrap();
        conn.execute_batch(
            "INSERT INTO messages_out (id, timestamp, kind, platform_id, channel_type, thread_id, in_reply_to, content)
               VALUES ('out-t', datetime('now'), 'chat', 'telegram:123', 'telegram', 'th-1', 'm1:ag-1', '{\"text\":\"x\"}');",
        )
        .unwrap();
        world.drain();
        let call = world.recorder.calls.lock().unwrap()[0].clone();
        assert_eq!(call.thread_id.as_deref(), Some("th-1"));
        assert_eq!(call.in_reply_to.as_deref(), Some("m1:ag-1"));
        assert_eq!(call.kind, "chat");
    }
}
