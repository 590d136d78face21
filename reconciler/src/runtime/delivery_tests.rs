//! Delivery against real temp session DBs and a recording fake adapter behind real outbox
//! tasks: ported from v2's delivery tests, then untrusted rows (issue 7 point 6), lost or
//! damaged session DBs (issue 8 point 12) and the typed delivery errors (issue 9 point 6).

use std::sync::{Arc, Mutex};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::channels::{Adapter, Adapters, DeliveryError, Start};
use crate::db::sessions::Session;

type Script = Box<dyn Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync>;

/// A `telegram` adapter that records every message and answers per call number; with a
/// gate, each answer waits for a permit (a slow platform).
struct Recorder {
    calls: Mutex<Vec<Outbound>>,
    script: Script,
    gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Adapter for Recorder {
    fn channel_type(&self) -> &str {
        "telegram"
    }
    fn supports_threads(&self) -> bool {
        false
    }
    fn start(self: Arc<Self>, _start: Start) -> BoxFuture<'static, anyhow::Result<()>> {
        std::future::ready(Ok(())).boxed()
    }
    fn stop(&self) -> BoxFuture<'_, ()> {
        std::future::ready(()).boxed()
    }
    fn deliver<'a>(
        &'a self,
        message: &'a Outbound,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let result = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(message.clone());
            (self.script)(calls.len())
        };
        let gate = self.gate.clone();
        async move {
            if let Some(gate) = gate {
                let _permit = gate.acquire().await;
            }
            result
        }
        .boxed()
    }
}

/// The outboxes' tasks on a runtime of their own, and the inbox their reports go to.
struct Channels {
    runtime: tokio::runtime::Runtime,
    tasks: TaskTracker,
    inbox: Inbox,
}

impl Channels {
    fn new() -> Channels {
        Channels {
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap(),
            tasks: TaskTracker::new(),
            inbox: Inbox::new(),
        }
    }

    fn outboxes(&self, adapters: Adapters) -> Outboxes {
        let _entered = self.runtime.enter();
        Outboxes::start(
            adapters,
            self.inbox.clone(),
            &self.tasks,
            CancellationToken::new(),
        )
    }
}

struct World {
    _dir: tempfile::TempDir,
    paths: Paths,
    conn: Connection,
    session: Session,
    recorder: Arc<Recorder>,
    channels: Channels,
    delivery: Delivery,
}

/// v2's fixture: agent `ag-1`, chat telegram/telegram:123, a shared session on it.
fn world(
    script: impl Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync + 'static,
) -> World {
    gated_world(script, None)
}

fn gated_world(
    script: impl Fn(usize) -> Result<Delivered, DeliveryError> + Send + Sync + 'static,
    gate: Option<Arc<tokio::sync::Semaphore>>,
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
        gate,
    });
    let mut adapters = Adapters::default();
    adapters.register(recorder.clone());
    let channels = Channels::new();
    let delivery = Delivery::new(paths.clone(), channels.outboxes(adapters)).unwrap();
    World {
        _dir: dir,
        paths,
        conn,
        session,
        recorder,
        channels,
        delivery,
    }
}

fn sent(_: usize) -> Result<Delivered, DeliveryError> {
    Ok(Delivered::Sent(Some("plat-msg-1".into())))
}

impl World {
    fn outbound(&self, id: &str, channel_type: &str, platform_id: &str, extra: &str) {
        let dir = self.paths.session("ag-1", &self.session.id);
        let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
        conn.as_connection().execute(
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

    /// One drain, then what the outboxes report for the rows it handed over.
    fn drain(&mut self) {
        self.delivery.drain("ag-1", &self.session.id);
        self.settle();
    }

    /// One tracked drain (as a batch does it), then the reports.
    fn drain_tracked(&mut self) {
        let id = self.session.id.clone();
        self.delivery.drain_tracked("ag-1", &id);
        self.settle();
    }

    /// Waits until the outboxes finished every job, and hands their reports to delivery (as
    /// its thread does), until no row is in flight.
    fn settle(&mut self) {
        loop {
            assert!(
                self.delivery.outboxes.wait_idle(Duration::from_secs(60)),
                "the outboxes finish within a minute"
            );
            if let Some(mut batch) = self
                .channels
                .inbox
                .recv(Instant::now(), Duration::from_millis(1))
            {
                batch.reports.sort_by(|a, b| a.row.cmp(&b.row));
                assert!(batch.sessions.is_empty() && !batch.everything);
                // As the worker does: reports first, then the sessions they ask to drain again.
                self.delivery.handle(batch);
            }
            if self.delivery.in_flight.is_empty() {
                return;
            }
        }
    }

    fn calls(&self) -> usize {
        self.recorder.calls.lock().unwrap().len()
    }

    /// Makes `outbound.db` look last written a minute ago (an idle session).
    fn age(&self) {
        let dir = self.paths.session("ag-1", &self.session.id);
        std::fs::File::options()
            .write(true)
            .open(outbound_path(&dir))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
    }

    /// What a backstop batch would drain.
    fn backstop(&mut self) -> Vec<String> {
        let batch = Batch {
            backstop: true,
            ..Batch::default()
        };
        self.delivery
            .targets(&batch)
            .into_iter()
            .map(|(_, session)| session)
            .collect()
    }

    /// `(status, platform message id)` recorded in `delivered` for an outbound id.
    fn delivered(&self, id: &str) -> Option<(String, Option<String>)> {
        let dir = self.paths.session("ag-1", &self.session.id);
        let inbound =
            session_db::open_inbound_container(&dir.join(session_db::INBOUND_FILE)).unwrap();
        inbound
            .as_connection()
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
fn issue_8_the_backstop_drains_only_sessions_that_changed_or_hold_rows() {
    let mut world = world(|call| {
        if call == 2 {
            Ok(Delivered::NoReader)
        } else {
            Ok(Delivered::Sent(None))
        }
    });
    let id = world.session.id.clone();
    let only = vec![id.clone()];
    world.reply("out-1");
    world.age();
    assert_eq!(world.backstop(), only, "the first pass drains everything");
    world.drain_tracked();
    assert_eq!(world.calls(), 1);
    assert!(
        world.backstop().is_empty(),
        "settled and unchanged: no drain"
    );
    assert!(world.backstop().is_empty());

    world.reply("out-2");
    assert_eq!(
        world.backstop(),
        only,
        "a container write is seen by its stamp"
    );
    world.drain_tracked();
    world.age();
    assert_eq!(
        world.backstop(),
        only,
        "a reply without a reader keeps the session unsettled"
    );
    world.drain_tracked();
    assert_eq!(world.calls(), 3);
    assert!(world.backstop().is_empty());

    world.reply("out-3");
    world.drain_tracked();
    assert_eq!(world.calls(), 4);
    assert_eq!(
        world.backstop(),
        only,
        "a write just now is checked once more"
    );
    world.age();
    world.drain_tracked();
    assert!(world.backstop().is_empty());

    world.delivery.last_full = Some(Instant::now() - FULL_PASS);
    assert_eq!(world.backstop(), only, "the full pass drains every session");
}

#[test]
fn issue_8_a_reply_sent_just_before_a_kill_is_not_sent_again() {
    // What a `kill -9` between sending and recording leaves: the adapter took the row and
    // the sent log names it, but no outcome is recorded.
    let world = world(sent);
    world.reply("out-1");
    let log = world.paths.data.join(sent_log::FILE_NAME);
    let entry = Sent {
        agent: "ag-1".into(),
        session: world.session.id.clone(),
        id: "out-1".into(),
        platform_message_id: Some("plat-9".into()),
    };
    std::fs::write(
        &log,
        format!("{}\n", serde_json::to_string(&entry).unwrap()),
    )
    .unwrap();
    let mut adapters = Adapters::default();
    adapters.register(world.recorder.clone());
    let channels = Channels::new();
    let mut restarted = Delivery::new(world.paths.clone(), channels.outboxes(adapters)).unwrap();
    assert_eq!(
        delivered::outcome(&world.conn, &world.session.id, "out-1").unwrap(),
        Some(Outcome {
            failed: false,
            platform_message_id: Some("plat-9".into())
        }),
        "recorded at startup"
    );
    restarted.drain("ag-1", &world.session.id);
    assert_eq!(world.calls(), 0, "not sent again");
    assert_eq!(
        world.delivered("out-1"),
        Some(("delivered".into(), Some("plat-9".into()))),
        "the projection follows at the drain"
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "",
        "the log is cleared"
    );
}

#[test]
fn sent_rows_are_recorded_and_the_log_is_left_empty() {
    let mut world = world(sent);
    world.reply("out-1");
    world.reply("out-2");
    world.drain();
    assert_eq!(world.calls(), 2);
    assert!(world.delivered("out-1").is_some() && world.delivered("out-2").is_some());
    let log = world.paths.data.join(sent_log::FILE_NAME);
    assert_eq!(std::fs::read_to_string(log).unwrap(), "");
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
    let mut world = world(|_| Err(DeliveryError::Transient("network timeout".into())));
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
            Err(DeliveryError::Transient("transient".into()))
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

/// Issue 13 point 2 changed this: v2 (and we, before) dropped every `system` row as delivered;
/// an unknown action is now recorded as failed and the agent is told why. Rows without routing
/// are still dropped as delivered.
#[test]
fn unknown_system_actions_fail_and_rows_without_routing_are_dropped_as_delivered() {
    let mut world = world(sent);
    let dir = world.paths.session("ag-1", &world.session.id);
    let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
    conn.as_connection()
        .execute_batch(
            "INSERT INTO messages_out (id, timestamp, kind, content)
           VALUES ('out-sys', datetime('now'), 'system', '{\"action\":\"schedule_task\"}'),
                  ('out-bare', datetime('now'), 'chat', '{\"text\":\"to nobody\"}');",
        )
        .unwrap();
    world.drain();
    assert_eq!(world.calls(), 0);
    assert_eq!(
        world.delivered("out-sys").map(|d| d.0),
        Some("failed".into())
    );
    let inbound = session_db::open_inbound_reader(&session_db::inbound_path(&dir)).unwrap();
    let note: String = inbound
        .as_connection()
        .query_row(
            "SELECT content FROM messages_in WHERE id LIKE 'sys-%'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        note.contains("unknown system action \\\"schedule_task\\\""),
        "{note}"
    );
    assert_eq!(
        world.delivered("out-bare").map(|d| d.0),
        Some("delivered".into())
    );
}

#[test]
fn a_reply_for_a_channel_without_a_running_adapter_fails_after_retries() {
    // v2 drops such a row as delivered at once (docs/runtime.md#delivering-a-sessions-rows); we
    // count it as a failed attempt so the operator sees `failed`, not a silent success.
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
    let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
    conn.as_connection().execute_batch(
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

// ---- issue 7 point 6: everything read from outbound.db is untrusted ----

impl World {
    fn session_dir(&self) -> std::path::PathBuf {
        self.paths.session("ag-1", &self.session.id)
    }

    /// Inserts a row with raw SQL values for `(kind, channel_type, platform_id, content)`.
    fn raw(&self, id: &str, values: &str) {
        let conn =
            session_db::open_outbound_container(&session_db::outbound_path(&self.session_dir()))
                .unwrap();
        conn.as_connection()
            .execute(
                &format!(
                "INSERT INTO messages_out (id, timestamp, kind, channel_type, platform_id, content)
                 VALUES ('{id}', datetime('now'), {values})"
            ),
                [],
            )
            .unwrap();
    }

    /// Texts the adapter was given, in order.
    fn texts(&self) -> Vec<String> {
        self.recorder
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| {
                call.content["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    fn recorded(&self, id: &str) -> Option<Outcome> {
        delivered::outcome(&self.conn, &self.session.id, id).unwrap()
    }
}

#[test]
fn bad_rows_are_recorded_failed_at_once_and_never_reach_the_adapter() {
    let mut world = world(sent);
    let big = format!("'{{\"text\":\"{}\"}}'", "x".repeat(300 * 1024));
    let cases = [
        (
            "unknown-kind",
            "'webhook', 'telegram', 'telegram:123', '{}'".to_string(),
        ),
        (
            "not-json",
            "'chat', 'telegram', 'telegram:123', '{not json'".to_string(),
        ),
        (
            "not-an-object",
            "'chat', 'telegram', 'telegram:123', '[1, 2]'".to_string(),
        ),
        (
            "too-big",
            format!("'chat', 'telegram', 'telegram:123', {big}"),
        ),
        (
            "blob",
            "'chat', 'telegram', 'telegram:123', x'7b7d'".to_string(),
        ),
        (
            "bad-channel",
            "'chat', 'Telegram; DROP', 'telegram:123', '{}'".to_string(),
        ),
        (
            "control",
            "'chat', 'telegram', 'telegram:123' || char(10), '{}'".to_string(),
        ),
        ("empty-address", "'chat', 'telegram', '', '{}'".to_string()),
    ];
    for (id, values) in &cases {
        world.raw(id, values);
    }
    world.reply("fine");
    world.drain();
    assert_eq!(world.texts(), ["hello"], "only the good row is sent");
    for (id, _) in &cases {
        assert_eq!(
            world.delivered(id).map(|d| d.0).as_deref(),
            Some("failed"),
            "{id} is recorded failed on the first drain"
        );
        assert_eq!(world.recorded(id).map(|o| o.failed), Some(true), "{id}");
    }
    world.drain();
    assert_eq!(world.calls(), 1, "nothing is retried");
}

#[test]
fn row_checks_name_what_is_wrong() {
    let row = |kind: &str, channel_type: Option<&str>, platform_id: Option<&str>, content: &str| {
        OutboundRow {
            id: "o1".into(),
            seq: Some(1),
            in_reply_to: None,
            timestamp: "t".into(),
            deliver_after: None,
            kind: kind.into(),
            platform_id: platform_id.map(str::to_string),
            channel_type: channel_type.map(str::to_string),
            thread_id: None,
            content: content.into(),
        }
    };
    let results: Vec<String> = [
        row("chat", Some("telegram"), Some("tg:1"), "{}"),
        row("system", None, None, r#"{"action":"x"}"#),
        row("chat-sdk", Some("cli"), Some("local"), "{}"),
        row("webhook", None, None, "{}"),
        row("chat\n", None, None, "{}"),
        row("chat", Some("UPPER"), Some("x"), "{}"),
        row("chat", Some("agent"), Some("a\u{7}b"), "{}"),
        row("chat", None, None, "\"text\""),
    ]
    .iter()
    .map(|row| match check_row(row) {
        Ok(()) => "ok".to_string(),
        Err(why) => why,
    })
    .collect();
    expect_test::expect![[r#"
        [
            "ok",
            "ok",
            "ok",
            "unknown kind `webhook` (known: chat, chat-sdk, system)",
            "unknown kind `chat\\n` (known: chat, chat-sdk, system)",
            "`channel_type` `UPPER` is not a channel name",
            "`platform_id` holds control characters",
            "content is not a JSON object",
        ]
    "#]]
    .assert_debug_eq(&results);
}

#[test]
fn a_backlog_larger_than_a_page_is_read_in_pages_and_kept_rows_do_not_block_later_ones() {
    // 300 replies to a chat without a reader stay queued; the page offset skips them so the
    // replies behind them still go out in the same drain.
    let mut world = world(|_| Ok(Delivered::Sent(None)));
    world
        .conn
        .execute_batch(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
               VALUES ('mg-q', 'cli', 'queued', 't');
             INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
               VALUES ('ag-1', 'queued', 'channel', 'mg-q', 't');",
        )
        .unwrap();
    let queue = Arc::new(crate::channels::cli_socket::CliSocket::new("unused.sock"));
    let mut adapters = Adapters::default();
    adapters.register(world.recorder.clone());
    adapters.register(queue);
    world.delivery = Delivery::new(world.paths.clone(), world.channels.outboxes(adapters)).unwrap();
    let conn =
        session_db::open_outbound_container(&session_db::outbound_path(&world.session_dir()))
            .unwrap();
    conn.as_connection().execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 299)
         INSERT INTO messages_out (id, seq, timestamp, kind, channel_type, platform_id, content)
         SELECT printf('q%03d', i), 2 * i + 1, '2026-01-01 00:00:00', 'chat', 'cli', 'queued', '{\"text\":\"q\"}' FROM n;
         INSERT INTO messages_out (id, seq, timestamp, kind, channel_type, platform_id, content)
         VALUES ('late', 1001, '2026-01-01 00:00:01', 'chat', 'telegram', 'telegram:123', '{\"text\":\"late\"}');",
    )
    .unwrap();
    world.drain();
    assert_eq!(world.texts(), ["late"]);
    assert_eq!(world.delivered("q000"), None, "queued rows stay due");
}

// ---- issue 8 point 12: missing or damaged session DBs ----

#[test]
fn issue_8_deleting_inbound_db_never_sends_an_earlier_reply_again() {
    let mut world = world(sent);
    world.reply("out-1");
    world.drain();
    assert_eq!(world.texts(), ["hello"]);
    std::fs::remove_file(world.session_dir().join(session_db::INBOUND_FILE)).unwrap();
    world.drain();
    world.drain();
    let texts = world.texts();
    assert_eq!(texts.len(), 2, "no re-send, one notice: {texts:?}");
    assert!(texts[1].contains("inbound.db was missing"), "{}", texts[1]);
    assert_eq!(
        world.delivered("out-1").map(|d| d.0).as_deref(),
        Some("delivered"),
        "the recreated inbound.db gets the projection back"
    );
    assert!(world.delivery.health().was_told(
        &world.session.id,
        super::super::health::Problem::InboundLost
    ));
    // New replies flow again.
    world.reply("out-2");
    world.drain();
    assert_eq!(world.texts().last().map(String::as_str), Some("hello"));
    assert_eq!(world.calls(), 3);
}

#[test]
fn issue_8_a_recreated_inbound_db_gets_its_destinations_back() {
    let mut world = world(sent);
    world
        .conn
        .execute_batch(
            "INSERT INTO agent_destinations (agent_group_id, local_name, target_type, target_id, created_at)
               VALUES ('ag-1', 'home', 'channel', 'mg-1', 't');",
        )
        .unwrap();
    world.drain();
    std::fs::remove_file(world.session_dir().join(session_db::INBOUND_FILE)).unwrap();
    world.drain();
    let inbound =
        session_db::open_inbound_container(&world.session_dir().join(session_db::INBOUND_FILE))
            .unwrap();
    let routing: (String, String) = inbound
        .as_connection()
        .query_row(
            "SELECT channel_type, platform_id FROM session_routing WHERE id = 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        routing,
        ("telegram".to_string(), "telegram:123".to_string())
    );
    let names: i64 = inbound
        .as_connection()
        .query_row("SELECT COUNT(*) FROM destinations", [], |row| row.get(0))
        .unwrap();
    assert_eq!(names, 1);
}

#[test]
fn issue_8_a_garbage_inbound_db_is_moved_aside_recreated_and_told_once() {
    let mut world = world(sent);
    world.reply("out-1");
    world.drain();
    std::fs::write(
        world.session_dir().join(session_db::INBOUND_FILE),
        vec![0x5a; 8192],
    )
    .unwrap();
    world.drain();
    world.drain();
    let texts = world.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("was damaged"), "{}", texts[1]);
    let aside = std::fs::read_dir(world.session_dir())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("inbound.db.damaged-")
        })
        .count();
    assert_eq!(aside, 1, "the damaged file is kept for inspection");
    assert!(world.delivered("out-1").is_some(), "the projection is back");
}

#[test]
fn issue_8_a_garbage_outbound_db_is_reported_and_the_chat_told_once() {
    let mut world = world(sent);
    let outbound = session_db::outbound_path(&world.session_dir());
    std::fs::write(&outbound, vec![0x5a; 8192]).unwrap();
    for _ in 0..3 {
        world.drain();
    }
    let texts = world.texts();
    assert_eq!(texts.len(), 1, "told once: {texts:?}");
    assert!(texts[0].contains("outbound.db is damaged"), "{}", texts[0]);
    assert_eq!(
        std::fs::read(&outbound).unwrap(),
        vec![0x5a; 8192],
        "the host never writes outbound.db"
    );
    // The container replaces it; replies flow again; a new damage is told again.
    std::fs::remove_file(&outbound).unwrap();
    world.reply("out-1");
    world.drain();
    assert_eq!(world.texts().last().map(String::as_str), Some("hello"));
    std::fs::write(&outbound, vec![0x5a; 8192]).unwrap();
    world.drain();
    assert_eq!(world.calls(), 3);
}

#[test]
fn issue_8_a_deleted_outbound_db_is_told_and_its_successor_delivers() {
    let mut world = world(sent);
    world.reply("out-1");
    world.drain();
    std::fs::remove_file(session_db::outbound_path(&world.session_dir())).unwrap();
    world.drain();
    world.drain();
    let texts = world.texts();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].contains("outbound.db was deleted or replaced"),
        "{}",
        texts[1]
    );
    // The runner creates a fresh file; its rows are delivered, no second notice.
    world.reply("out-2");
    world.drain();
    assert_eq!(world.texts().len(), 3);
    assert_eq!(world.texts()[2], "hello");
}

#[test]
fn a_symlink_or_fifo_at_outbound_db_is_damage_and_never_opened() {
    let mut world = world(sent);
    let outbound = session_db::outbound_path(&world.session_dir());
    std::fs::remove_file(&outbound).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&outbound)
        .status()
        .unwrap();
    assert!(status.success());
    // A FIFO without a writer would block a plain open (and the delivery thread) forever.
    world.drain();
    let texts = world.texts();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].contains("outbound.db is damaged"));
}

// ---- issue 9 point 6: typed delivery errors, and a channel never blocks the worker ----

/// Lets the clock run past every row's retry time.
fn retry_time_passes(world: &mut World) {
    for at in world.delivery.retry_at.values_mut() {
        *at = Instant::now();
    }
}

#[test]
fn issue_9_retry_after_holds_the_row_back_that_long_without_counting_an_attempt() {
    let calls_held_back = MAX_ATTEMPTS as usize + 2;
    let mut world = world(move |call| {
        if call <= calls_held_back {
            Err(DeliveryError::RetryAfter(Duration::from_secs(3600)))
        } else {
            Ok(Delivered::Sent(None))
        }
    });
    world.reply("out-1");
    world.drain();
    assert_eq!(world.calls(), 1);
    world.drain();
    world.drain();
    assert_eq!(world.calls(), 1, "not attempted again before the hour");
    assert_eq!(world.delivered("out-1"), None);
    for call in 2..=calls_held_back {
        retry_time_passes(&mut world);
        world.drain();
        assert_eq!(world.calls(), call);
    }
    assert_eq!(
        world.delivered("out-1"),
        None,
        "more retry-afters than MAX_ATTEMPTS do not fail it"
    );
    retry_time_passes(&mut world);
    world.drain();
    assert_eq!(world.delivered("out-1"), Some(("delivered".into(), None)));
}

#[test]
fn issue_9_a_row_held_back_by_retry_after_does_not_hold_back_the_next() {
    let mut world = world(|call| {
        if call == 1 {
            Err(DeliveryError::RetryAfter(Duration::from_secs(3600)))
        } else {
            Ok(Delivered::Sent(None))
        }
    });
    world.reply("out-1");
    world.drain();
    world.reply("out-2");
    world.drain();
    assert_eq!(world.delivered("out-1"), None);
    assert_eq!(world.delivered("out-2"), Some(("delivered".into(), None)));
}

#[test]
fn issue_9_a_permanent_refusal_marks_the_row_failed_at_once() {
    let mut world = world(|_| Err(DeliveryError::Permanent("chat not found".into())));
    world.reply("out-1");
    world.drain();
    assert_eq!(world.calls(), 1);
    assert_eq!(world.delivered("out-1"), Some(("failed".into(), None)));
    world.drain();
    assert_eq!(world.calls(), 1, "never attempted again");
}

#[test]
fn issue_9_a_slow_channel_never_blocks_the_delivery_worker() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut world = gated_world(sent, Some(Arc::clone(&gate)));
    world.reply("out-1");
    let id = world.session.id.clone();
    assert_eq!(
        world.delivery.drain("ag-1", &id),
        Drained::InFlight,
        "the drain returns while the channel has not answered"
    );
    assert_eq!(world.delivery.drain("ag-1", &id), Drained::InFlight);
    assert_eq!(
        world.delivery.outboxes.pending(),
        1,
        "a row in flight is not handed over twice"
    );
    assert_eq!(world.delivered("out-1"), None);
    gate.add_permits(16);
    world.settle();
    assert_eq!(world.calls(), 1);
    assert_eq!(
        world.delivered("out-1"),
        Some(("delivered".into(), Some("plat-msg-1".into())))
    );
}

#[test]
fn issue_9_a_reply_asked_for_while_in_flight_is_drained_again_when_it_stays_queued() {
    // The reader arrives while the reply is in the channel's hands and says "no reader": the
    // drain the reader asked for must not be lost.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut world = gated_world(
        |call| {
            if call == 1 {
                Ok(Delivered::NoReader)
            } else {
                Ok(Delivered::Sent(None))
            }
        },
        Some(Arc::clone(&gate)),
    );
    world.reply("out-1");
    let id = world.session.id.clone();
    world.delivery.drain("ag-1", &id);
    world.delivery.drain("ag-1", &id);
    gate.add_permits(16);
    world.settle();
    assert_eq!(world.calls(), 2);
    assert_eq!(world.delivered("out-1"), Some(("delivered".into(), None)));
}

#[test]
fn issue_9_a_reply_awaiting_its_readers_acknowledgement_stays_queued_without_attempts() {
    let shown_at = MAX_ATTEMPTS as usize + 2;
    let mut world = world(move |call| {
        if call < shown_at {
            Ok(Delivered::AwaitingAck)
        } else {
            Ok(Delivered::Sent(None))
        }
    });
    world.reply("out-1");
    for _ in 1..shown_at {
        world.drain();
        assert_eq!(world.delivered("out-1"), None, "queued, never failed");
    }
    world.drain();
    assert_eq!(world.calls(), shown_at);
    assert_eq!(world.delivered("out-1"), Some(("delivered".into(), None)));
}

#[test]
fn issue_13_an_edit_or_reaction_names_the_platforms_message_id_not_the_stored_one() {
    let mut reaction =
        serde_json::json!({"operation": "reaction", "messageId": "111_1:echo", "emoji": "👍"});
    strip_agent_suffix(&mut reaction, "echo");
    assert_eq!(reaction["messageId"], "111_1");
    let mut other_agent = serde_json::json!({"operation": "edit", "messageId": "111_1:andy"});
    strip_agent_suffix(&mut other_agent, "echo");
    assert_eq!(
        other_agent["messageId"], "111_1:andy",
        "only this agent's suffix"
    );
    let mut text = serde_json::json!({"text": "a:echo", "messageId": "x:echo"});
    strip_agent_suffix(&mut text, "echo");
    assert_eq!(text["messageId"], "x:echo", "only edits and reactions");
}
