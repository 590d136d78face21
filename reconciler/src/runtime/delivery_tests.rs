//! Delivery against real temp session DBs and a recording fake adapter: ported from v2's
//! delivery tests, then untrusted rows (issue 7 point 6) and lost or damaged session DBs
//! (issue 8 point 12).

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
        let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
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
    let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
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
    let conn = session_db::open_outbound_container(&session_db::outbound_path(&dir)).unwrap();
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
