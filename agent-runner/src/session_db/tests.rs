//! Tests of the session DB protocol against real temp files (both sides' openers).

use super::container::{self, NewOutbound};
use super::untrusted::{DUE_PAGE, MAX_CONTENT_BYTES};
use super::*;

fn session() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sess");
    create(&path).unwrap();
    (dir, path)
}

fn chat(id: &str) -> NewInbound {
    NewInbound {
        id: id.into(),
        kind: "chat".into(),
        timestamp: "2026-06-15T12:00:00.000Z".into(),
        platform_id: Some("chan-1".into()),
        channel_type: Some("discord".into()),
        content: r#"{"text":"hi"}"#.into(),
        trigger: true,
        ..NewInbound::default()
    }
}

fn record(id: &str, platform_message_id: Option<&str>, status: DeliveryStatus) -> DeliveryRecord {
    DeliveryRecord {
        message_out_id: id.into(),
        platform_message_id: platform_message_id.map(str::to_string),
        status,
    }
}

fn out(id: &str) -> NewOutbound {
    NewOutbound {
        id: id.into(),
        kind: "chat".into(),
        platform_id: Some("chan-1".into()),
        channel_type: Some("discord".into()),
        content: r#"{"text":"yo"}"#.into(),
        ..NewOutbound::default()
    }
}

#[test]
fn create_is_idempotent_and_makes_outbox() {
    let (_d, s) = session();
    create(&s).unwrap();
    assert!(s.join("outbound/outbox").is_dir());
    assert!(s.join(INBOUND_FILE).is_file() && s.join("outbound/outbound.db").is_file());
}

#[test]
fn the_host_creates_inbound_only_and_never_creates_outbound() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("sess");
    create_inbound(&s).unwrap();
    assert!(s.join(INBOUND_FILE).is_file());
    assert!(!outbound_path(&s).exists());
    let err = open_outbound_host(&outbound_path(&s)).unwrap_err();
    assert!(err.is_missing(), "{err}");
    assert!(!outbound_path(&s).exists(), "a host read creates nothing");
    fs::remove_file(s.join(INBOUND_FILE)).unwrap();
    let err = open_inbound_host(&s.join(INBOUND_FILE)).unwrap_err();
    assert!(
        err.is_missing(),
        "a lost inbound.db is not silently recreated: {err}"
    );
}

#[test]
fn seq_parity_across_both_tables() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    assert_eq!(
        insert_inbound(&mut inb, &[chat("a"), chat("b")]).unwrap(),
        vec![2, 4]
    );
    let ro_in = open_inbound_container(&s.join(INBOUND_FILE)).unwrap();
    assert_eq!(
        container::write_outbound(&ro_in, &mut outb, &out("o1")).unwrap(),
        5
    );
    assert_eq!(
        container::write_outbound(&ro_in, &mut outb, &out("o2")).unwrap(),
        7
    );
    // The host consults only messages_in: next even above 4.
    assert_eq!(insert_inbound(&mut inb, &[chat("c")]).unwrap(), vec![6]);
    assert_eq!(
        container::write_outbound(&ro_in, &mut outb, &out("o3")).unwrap(),
        9
    );
    assert_eq!(next_even_seq(0), 2);
    assert_eq!(next_even_seq(7), 8);
    assert_eq!(next_odd_seq(0), 1);
    assert_eq!(next_odd_seq(9), 11);
}

#[test]
fn lazy_migration_of_old_inbound_db() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbound.db");
    {
        let conn = open_rw(&path, true).unwrap();
        conn.execute_batch(
            "CREATE TABLE messages_in (id TEXT PRIMARY KEY, seq INTEGER UNIQUE, kind TEXT NOT NULL,
               timestamp TEXT NOT NULL, status TEXT DEFAULT 'pending', process_after TEXT,
               recurrence TEXT, tries INTEGER DEFAULT 0, platform_id TEXT, channel_type TEXT,
               thread_id TEXT, content TEXT NOT NULL);
             INSERT INTO messages_in (id, seq, kind, timestamp, content)
               VALUES ('old', 2, 'chat', 'now', '{}');
             CREATE TABLE delivered (message_out_id TEXT PRIMARY KEY, delivered_at TEXT NOT NULL);",
        )
        .unwrap();
    }
    let mut conn = open_inbound_host(&path).unwrap();
    let cols = columns(conn.as_connection(), "messages_in").unwrap();
    for c in ["series_id", "trigger", "source_session_id", "on_wake"] {
        assert!(cols.iter().any(|x| x == c), "missing {c}");
    }
    let (series, trigger, on_wake): (String, i64, i64) = conn
        .as_connection()
        .query_row(
            "SELECT series_id, trigger, on_wake FROM messages_in WHERE id = 'old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((series.as_str(), trigger, on_wake), ("old", 1, 0));
    assert_eq!(insert_inbound(&mut conn, &[chat("new")]).unwrap(), vec![4]);
    mark_delivered(
        &mut conn,
        &[record("x", Some("p1"), DeliveryStatus::Failed)],
    )
    .unwrap();
    let status: String = conn
        .as_connection()
        .query_row(
            "SELECT status FROM delivered WHERE message_out_id='x'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "failed");
}

#[test]
fn due_outbound_excludes_delivered_of_any_status() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let ro_in = open_inbound_container(&s.join(INBOUND_FILE)).unwrap();
    for id in ["o1", "o2", "o3"] {
        container::write_outbound(&ro_in, &mut outb, &out(id)).unwrap();
    }
    outb.as_connection()
        .execute(
            "UPDATE messages_out SET deliver_after = '2999-01-01 00:00:00' WHERE id = 'o3'",
            [],
        )
        .unwrap();
    mark_delivered(&mut inb, &[record("o1", None, DeliveryStatus::Failed)]).unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let due: Vec<_> = due_outbound(&inb, &host_out, 0)
        .unwrap()
        .into_iter()
        .map(|r| r.id().to_string())
        .collect();
    assert_eq!(due, vec!["o2"]);
    mark_delivered(
        &mut inb,
        &[record("o2", Some("pm-1"), DeliveryStatus::Delivered)],
    )
    .unwrap();
    // Ignored: the first outcome wins.
    mark_delivered(
        &mut inb,
        &[record("o2", Some("pm-2"), DeliveryStatus::Failed)],
    )
    .unwrap();
    assert!(due_outbound(&inb, &host_out, 0).unwrap().is_empty());
    let pm: String = inb
        .as_connection()
        .query_row(
            "SELECT platform_message_id FROM delivered WHERE message_out_id='o2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pm, "pm-1");
}

#[test]
fn ack_sync_completes_only_finished_claims() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    insert_inbound(&mut inb, &[chat("a"), chat("b"), chat("c")]).unwrap();
    assert_eq!(count_due(&inb).unwrap(), 3);
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    container::ack(&mut outb, &["a".into(), "b".into()], AckStatus::Processing).unwrap();
    container::ack(&mut outb, &["a".into()], AckStatus::Completed).unwrap();
    outb.as_connection()
        .execute(
            "INSERT INTO processing_ack VALUES ('c', 'failed', datetime('now'))",
            [],
        )
        .unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    assert_eq!(sync_acks(&mut inb, &host_out).unwrap(), 2);
    assert_eq!(sync_acks(&mut inb, &host_out).unwrap(), 0);
    assert_eq!(count_due(&inb).unwrap(), 1);
    let claims: Vec<_> = processing_claims(&inb, &host_out)
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(claims, vec!["b"]);
}

#[test]
fn issue_10_a_given_back_message_is_hidden_until_the_host_rescheduled_it() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    insert_inbound(&mut inb, &[chat("a"), chat("b")]).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    container::write_replies_and_give_back(&inb, &mut outb, &[out("o1")], &["a".into()]).unwrap();
    outb.as_connection()
        .execute(
            "UPDATE processing_ack SET status_changed = datetime('now', '-10 seconds')",
            [],
        )
        .unwrap();
    let pending = || -> Vec<String> {
        container::pending(&s.join(INBOUND_FILE), &outb, false, 10)
            .unwrap()
            .into_iter()
            .map(|row| row.id)
            .collect()
    };
    let schedule = |when: &str| {
        inb.as_connection()
            .execute(
                &format!("UPDATE messages_in SET process_after = {when} WHERE id = 'a'"),
                [],
            )
            .unwrap();
    };
    assert_eq!(
        pending(),
        ["b"],
        "not rescheduled yet: the try is not counted"
    );
    schedule("datetime('now', '-20 seconds')");
    assert_eq!(pending(), ["b"], "scheduled before the give-back");
    schedule("datetime('now', '+5 seconds')");
    assert_eq!(pending(), ["b"], "rescheduled, not due yet");
    schedule("datetime('now', '-5 seconds')");
    assert_eq!(
        pending(),
        ["a", "b"],
        "rescheduled after the give-back and due"
    );

    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let given_back: Vec<_> = given_back(&inb, &host_out)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(given_back, ["a"]);
    assert!(processing_claims(&inb, &host_out).unwrap().is_empty());
    assert_eq!(sync_acks(&mut inb, &host_out).unwrap(), 0, "not finished");
    assert_eq!(
        container::tries(&inb, &["a".into(), "gone".into()]).unwrap(),
        [("a".to_string(), 0)]
    );
}

#[test]
fn issue_10_the_outage_told_fact_is_kept_in_the_session_db() {
    let (_d, s) = session();
    let outb = open_outbound_container(&outbound_path(&s)).unwrap();
    assert!(!container::outage_told(&outb).unwrap());
    container::set_outage_told(&outb, true).unwrap();
    let reopened = open_outbound_container(&outbound_path(&s)).unwrap();
    assert!(container::outage_told(&reopened).unwrap());
    container::set_outage_told(&reopened, false).unwrap();
    assert!(!container::outage_told(&outb).unwrap());
}

#[test]
fn claims_on_ids_the_host_never_wrote_are_not_read() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    insert_inbound(&mut inb, &[chat("a")]).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let junk: Vec<String> = (0..5000).map(|n| format!("junk-{n}")).collect();
    container::ack(&mut outb, &junk, AckStatus::Processing).unwrap();
    container::ack(&mut outb, &["a".into()], AckStatus::Processing).unwrap();
    outb.as_connection()
        .execute(
            "UPDATE processing_ack SET status_changed = zeroblob(10) WHERE message_id = 'a'",
            [],
        )
        .unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    assert_eq!(
        processing_claims(&inb, &host_out).unwrap(),
        vec![("a".to_string(), String::new())],
        "only the host's pending id; a blob time reads as empty"
    );
}

#[test]
fn count_due_skips_context_and_future_rows() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut ctx = chat("ctx");
    ctx.trigger = false;
    let mut later = chat("later");
    later.process_after = Some("2999-01-01T00:00:00Z".into());
    let mut past = chat("past");
    past.process_after = Some("2000-01-01T00:00:00Z".into());
    insert_inbound(&mut inb, &[ctx, later, past]).unwrap();
    assert_eq!(count_due(&inb).unwrap(), 1);
}

#[test]
fn destinations_routing_and_container_state() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let d = |n: &str| DestinationRow {
        name: n.into(),
        kind: "channel".into(),
        channel_type: Some("discord".into()),
        platform_id: Some(format!("p-{n}")),
        ..DestinationRow::default()
    };
    write_destinations(&mut inb, &[d("b"), d("a")]).unwrap();
    write_destinations(&mut inb, &[d("c"), d("a")]).unwrap();
    let names: Vec<_> = container::destinations(&inb)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, vec!["a", "c"]);
    write_session_routing(&inb, Some("discord"), Some("p-a"), None).unwrap();
    write_session_routing(&inb, Some("discord"), Some("p-a"), Some("t1")).unwrap();
    let n: i64 = inb
        .as_connection()
        .query_row("SELECT COUNT(*) FROM session_routing", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);

    let outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    assert_eq!(container_state(&host_out).unwrap(), None);
    container::set_current_tool(&outb, "Bash", Some(1000)).unwrap();
    let st = container_state(&host_out).unwrap().unwrap();
    assert_eq!(
        (st.current_tool.as_deref(), st.tool_declared_timeout_ms),
        (Some("Bash"), Some(1000))
    );
    container::clear_current_tool(&outb).unwrap();
    assert_eq!(
        container_state(&host_out).unwrap().unwrap().current_tool,
        None
    );

    let bare = tempfile::tempdir().unwrap();
    let p = bare.path().join("outbound.db");
    open_rw(&p, true).unwrap();
    assert_eq!(
        container_state(&open_outbound_host(&p).unwrap()).unwrap(),
        None
    );
}

#[test]
fn container_state_values_of_the_wrong_type_read_as_absent() {
    let (_d, s) = session();
    let outb = open_outbound_container(&outbound_path(&s)).unwrap();
    outb.as_connection()
        .execute(
            "INSERT INTO container_state (id, current_tool, tool_declared_timeout_ms, updated_at)
         VALUES (1, zeroblob(100), 'forever', zeroblob(1))",
            [],
        )
        .unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let state = container_state(&host_out).unwrap().unwrap();
    assert_eq!(state.current_tool, None);
    assert_eq!(state.tool_declared_timeout_ms, None);
    assert_eq!(state.updated_at, "");
    outb.as_connection()
        .execute(
            "UPDATE container_state SET current_tool = 'Bash', tool_declared_timeout_ms = -5",
            [],
        )
        .unwrap();
    let state = container_state(&host_out).unwrap().unwrap();
    assert_eq!(
        state.tool_declared_timeout_ms, None,
        "negative timeouts are ignored"
    );
}

#[test]
fn heartbeat_is_created_and_touched() {
    let (_d, s) = session();
    assert_eq!(heartbeat_mtime(&s), None);
    touch_heartbeat(&s);
    assert!(heartbeat_mtime(&s).is_some());
    assert!(
        s.join("outbound/.heartbeat").is_file(),
        "in the writable folder"
    );
}

#[test]
fn the_host_reads_a_heartbeat_defensively() {
    let (_d, s) = session();
    let heartbeat = heartbeat_path(&s);
    // A time in the future (the container sets its own mtime) reads as now.
    touch_heartbeat(&s);
    File::options()
        .write(true)
        .open(&heartbeat)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(365 * 24 * 3600))
        .unwrap();
    assert!(heartbeat_mtime(&s).unwrap() <= SystemTime::now());
    // Only a regular file counts: a link is never followed, a folder is no heartbeat.
    fs::remove_file(&heartbeat).unwrap();
    let target = s.join("fresh");
    fs::write(&target, "").unwrap();
    std::os::unix::fs::symlink(&target, &heartbeat).unwrap();
    assert_eq!(heartbeat_mtime(&s), None);
    fs::remove_file(&heartbeat).unwrap();
    fs::create_dir(&heartbeat).unwrap();
    assert_eq!(heartbeat_mtime(&s), None);
}

// ---- pending selection (v2's poll-loop tests: accumulate gate, on_wake;
// docs/agent-runner.md#tests-ported-from-v2) ----

fn pending_ids(s: &Path, first: bool) -> Vec<(String, bool)> {
    let outb = open_outbound_container(&outbound_path(s)).unwrap();
    container::pending(&s.join(INBOUND_FILE), &outb, first, 10)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.trigger))
        .collect()
}

#[test]
fn pending_returns_trigger_zero_and_one_rows() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut ctx = chat("ctx");
    ctx.trigger = false;
    insert_inbound(&mut inb, &[ctx, chat("go")]).unwrap();
    assert_eq!(
        pending_ids(&s, false),
        vec![("ctx".into(), false), ("go".into(), true)]
    );
    // Legacy insert without the column value: trigger defaults to 1.
    inb.as_connection().execute(
        "INSERT INTO messages_in (id, seq, kind, timestamp, content) VALUES ('leg', 10, 'chat', 'x', '{}')",
        [],
    )
    .unwrap();
    assert!(pending_ids(&s, false).contains(&("leg".into(), true)));
}

#[test]
fn on_wake_rows_only_on_first_poll() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut wake = chat("wake");
    wake.on_wake = true;
    insert_inbound(&mut inb, &[wake, chat("normal")]).unwrap();
    let ids = |first| {
        pending_ids(&s, first)
            .into_iter()
            .map(|x| x.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(true), vec!["wake", "normal"]);
    assert_eq!(ids(false), vec!["normal"]);
}

#[test]
fn pending_window_takes_the_oldest_unacked_rows_so_a_backlog_is_answered_in_order() {
    let (_d, s) = session();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut rows: Vec<_> = (0..5).map(|i| chat(&format!("m{i}"))).collect();
    let mut orphan = chat("orphan-response");
    orphan.kind = "system".into();
    rows.insert(1, orphan);
    insert_inbound(&mut inb, &rows).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let window = |outb: &OutboundDb| -> Vec<String> {
        container::pending(&s.join(INBOUND_FILE), outb, false, 3)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    // The system row rides along but does not take a slot.
    assert_eq!(window(&outb), vec!["m0", "orphan-response", "m1", "m2"]);
    // Acked rows are skipped before the window is filled, not after.
    container::ack(
        &mut outb,
        &["m0".into(), "m1".into()],
        AckStatus::Processing,
    )
    .unwrap();
    assert_eq!(window(&outb), vec!["orphan-response", "m2", "m3", "m4"]);
    assert_eq!(container::delete_stale_claims(&outb).unwrap(), 2);
}

// ---- session_state (v2's session-state tests; docs/agent-runner.md#tests-ported-from-v2) ----

#[test]
fn continuations_are_per_provider_and_case_insensitive() {
    let (_d, s) = session();
    let o = open_outbound_container(&outbound_path(&s)).unwrap();
    container::set_continuation(&o, "Claude", "c1").unwrap();
    container::set_continuation(&o, "mock", "m1").unwrap();
    assert_eq!(
        container::continuation(&o, "claude").unwrap().as_deref(),
        Some("c1")
    );
    assert_eq!(
        container::continuation(&o, "MOCK").unwrap().as_deref(),
        Some("m1")
    );
    container::clear_continuation(&o, "mock").unwrap();
    assert_eq!(container::continuation(&o, "mock").unwrap(), None);
    assert_eq!(
        container::continuation(&o, "claude").unwrap().as_deref(),
        Some("c1")
    );
    assert_eq!(container::continuation(&o, "other").unwrap(), None);
}

#[test]
fn legacy_continuation_migration() {
    let (_d, s) = session();
    let o = open_outbound_container(&outbound_path(&s)).unwrap();
    let legacy = |v: &str| {
        o.as_connection()
            .execute(
                "INSERT OR REPLACE INTO session_state VALUES ('sdk_session_id', ?1, '')",
                [v],
            )
            .unwrap();
    };
    let has_legacy = || {
        o.as_connection()
            .query_row(
                "SELECT COUNT(*) FROM session_state WHERE key='sdk_session_id'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            > 0
    };
    // Adopted when empty; the legacy row is always deleted; idempotent.
    legacy("L1");
    assert_eq!(
        container::migrate_legacy_continuation(&o, "claude")
            .unwrap()
            .as_deref(),
        Some("L1")
    );
    assert!(!has_legacy());
    assert_eq!(
        container::migrate_legacy_continuation(&o, "claude")
            .unwrap()
            .as_deref(),
        Some("L1")
    );
    // The provider's own slot wins over legacy.
    legacy("L2");
    assert_eq!(
        container::migrate_legacy_continuation(&o, "claude")
            .unwrap()
            .as_deref(),
        Some("L1")
    );
    assert!(!has_legacy());
    // No legacy row: own value (possibly none).
    assert_eq!(
        container::migrate_legacy_continuation(&o, "mock").unwrap(),
        None
    );
}

#[test]
fn ids_have_prefix_ms_and_rand6() {
    let a = new_id("msg");
    let b = new_id("msg");
    assert_ne!(a, b);
    let parts: Vec<_> = a.split('-').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0], "msg");
    assert!(parts[1].parse::<u64>().is_ok());
    assert_eq!(parts[2].len(), 6);
}

#[test]
fn a_hot_journal_is_left_to_the_container_and_never_written_by_the_host() {
    // v2's host rolled a killed container's hot journal back through a read-write open; the
    // host never writes `outbound.db` now (issue 7), so its read fails until the next container
    // opens the file, which rolls the journal back.
    let (_d, s) = session();
    let path = outbound_path(&s);
    let mut outb = open_outbound_container(&path).unwrap();
    let ro_in = open_inbound_container(&s.join(INBOUND_FILE)).unwrap();
    container::write_outbound(&ro_in, &mut outb, &out("kept")).unwrap();
    // Freeze a crash: a transaction whose pages spilled into the file, copied with its journal.
    outb.as_connection()
        .pragma_update(None, "cache_size", 1)
        .unwrap();
    outb.as_connection()
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap();
    for i in 0..200 {
        outb.as_connection()
            .execute(
                "INSERT INTO messages_out (id, seq, timestamp, kind, content)
             VALUES (?1, ?2, 'now', 'chat', ?3)",
                rusqlite::params![format!("x{i}"), 1001 + 2 * i, "y".repeat(500)],
            )
            .unwrap();
    }
    let crash = s.join("crash");
    fs::create_dir_all(&crash).unwrap();
    fs::copy(&path, crash.join(OUTBOUND_FILE)).unwrap();
    fs::copy(
        s.join("outbound/outbound.db-journal"),
        crash.join("outbound.db-journal"),
    )
    .unwrap();
    outb.as_connection().execute_batch("ROLLBACK").unwrap();

    let copy = crash.join(OUTBOUND_FILE);
    let before = fs::read(&copy).unwrap();
    let err = open_outbound_host(&copy).unwrap_err();
    let SessionDbError::Sqlite(sqlite) = &err else {
        panic!("{err}")
    };
    assert_eq!(
        sqlite.sqlite_error().map(|e| e.extended_code),
        Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK)
    );
    assert!(!err.is_damaged(), "recoverable, not damage");
    assert_eq!(fs::read(&copy).unwrap(), before, "the host wrote nothing");
    assert!(crash.join("outbound.db-journal").exists());
    let container = open_outbound_container(&copy).unwrap();
    let ids: Vec<String> = container
        .as_connection()
        .prepare("SELECT id FROM messages_out")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, vec!["kept"]);
    assert!(open_outbound_host(&copy).is_ok());
}

#[test]
fn the_host_never_opens_a_symlink_fifo_or_directory_as_outbound_db() {
    use std::os::unix::fs::symlink;
    let (_d, s) = session();
    let outside = s.join("outside.db");
    fs::copy(outbound_path(&s), &outside).unwrap();
    let path = outbound_path(&s);
    let journal = s.join("outbound/outbound.db-journal");
    let plant = |how: &str, at: &Path| {
        let _ = fs::remove_file(at);
        match how {
            "symlink" => symlink(&outside, at).unwrap(),
            "fifo" => {
                let status = std::process::Command::new("mkfifo")
                    .arg(at)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            _ => fs::create_dir(at).unwrap(),
        }
    };
    for how in ["symlink", "fifo", "dir"] {
        let original = s.join("outbound/real.db");
        fs::rename(&path, &original).unwrap();
        plant(how, &path);
        let err = open_outbound_host(&path).unwrap_err();
        assert!(
            matches!(err, SessionDbError::NotRegular { .. }),
            "{how}: {err}"
        );
        assert!(err.is_damaged(), "{how}");
        if how == "dir" {
            fs::remove_dir(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        fs::rename(&original, &path).unwrap();
        // The same at the journal's name.
        plant(how, &journal);
        let err = open_outbound_host(&path).unwrap_err();
        assert!(
            matches!(err, SessionDbError::NotRegular { .. }),
            "journal {how}: {err}"
        );
        if how == "dir" {
            fs::remove_dir(&journal).unwrap();
        } else {
            fs::remove_file(&journal).unwrap();
        }
    }
    assert!(open_outbound_host(&path).is_ok());
}

#[test]
fn the_attached_read_refuses_an_outbound_db_swapped_for_a_symlink() {
    let (_d, s) = session();
    let inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    // Swapped after the checks of `open_outbound_host`: SQLite's NOFOLLOW still refuses it.
    let outside = s.join("outside.db");
    fs::rename(outbound_path(&s), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, outbound_path(&s)).unwrap();
    assert!(due_outbound(&inb, &host_out, 0).is_err());
    let attached: i64 = inb
        .as_connection()
        .query_row("SELECT COUNT(*) FROM pragma_database_list", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(attached, 1, "nothing stays attached");
}

#[test]
fn a_view_or_computed_column_is_refused_as_a_foreign_schema() {
    for ddl in [
        "CREATE VIEW messages_out AS SELECT 'x' AS id",
        "CREATE TABLE messages_out (id TEXT PRIMARY KEY, content TEXT AS (upper(id)))",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbound.db");
        open_rw(&path, true).unwrap().execute_batch(ddl).unwrap();
        let err = open_outbound_host(&path).unwrap_err();
        assert!(
            matches!(err, SessionDbError::BadSchema { .. }),
            "{ddl}: {err}"
        );
        assert!(err.is_damaged());
    }
}

#[test]
fn garbage_bytes_are_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbound.db");
    fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = open_outbound_host(&path).unwrap_err();
    assert!(err.is_damaged(), "{err}");
}

/// Inserts a raw `messages_out` row with SQL values (the container may write anything).
fn raw_out(outb: &OutboundDb, id: &str, values: &str) {
    outb.as_connection().execute(
        &format!(
            "INSERT INTO messages_out (id, seq, timestamp, kind, channel_type, platform_id, in_reply_to, content)
             VALUES ({id}, {values})"
        ),
        [],
    )
    .unwrap();
}

#[test]
fn rows_breaking_a_bound_come_back_bad_without_being_loaded() {
    let (_d, s) = session();
    let inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let fine = "datetime('now'), 'chat', 'cli', 'local', NULL, '{\"text\":\"hi\"}'";
    raw_out(&outb, "'ok'", &format!("1, {fine}"));
    raw_out(
        &outb,
        "'huge'",
        &format!(
            "3, datetime('now'), 'chat', 'cli', 'local', NULL, randomblob({})",
            0
        ),
    );
    outb.as_connection()
        .execute(
            "UPDATE messages_out SET content = CAST(zeroblob(?1) AS TEXT) WHERE id = 'huge'",
            [MAX_CONTENT_BYTES + 1],
        )
        .unwrap();
    raw_out(
        &outb,
        "'blob'",
        "5, datetime('now'), 'chat', 'cli', 'local', NULL, x'00ff'",
    );
    // TEXT affinity turns numbers into text, so a non-text value is a blob.
    raw_out(
        &outb,
        "'kindless'",
        "7, datetime('now'), x'63686174', 'cli', 'local', NULL, '{}'",
    );
    raw_out(
        &outb,
        "'long-reply'",
        &format!(
            "9, datetime('now'), 'chat', 'cli', 'local', '{}', '{{}}'",
            "r".repeat(300)
        ),
    );
    raw_out(
        &outb,
        "'long-address'",
        &format!(
            "11, datetime('now'), 'chat', 'cli', '{}', NULL, '{{}}'",
            "p".repeat(600)
        ),
    );
    raw_out(
        &outb,
        "'textual-seq'",
        "'one', datetime('now'), 'chat', 'cli', 'local', NULL, '{}'",
    );
    // Rows without a usable id are never read at all.
    raw_out(&outb, "x'3432'", &format!("13, {fine}"));
    raw_out(&outb, "''", &format!("15, {fine}"));
    raw_out(
        &outb,
        &format!("'{}'", "i".repeat(300)),
        &format!("17, {fine}"),
    );
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let mut due: Vec<String> = due_outbound(&inb, &host_out, 0)
        .unwrap()
        .into_iter()
        .map(|d| match d {
            Due::Row(row) => format!("{}: ok", row.id),
            Due::Bad { id, reason } => format!("{id}: {reason}"),
        })
        .collect();
    due.sort();
    expect_test::expect![[r#"
        [
            "blob: `content` is blob, not text",
            "huge: `content` is 262145 bytes, more than 262144",
            "kindless: `kind` is blob, not text",
            "long-address: `platform_id` is 600 bytes, more than 512",
            "long-reply: `in_reply_to` is 300 bytes, more than 256",
            "ok: ok",
            "textual-seq: `seq` is text, not an integer",
        ]
    "#]]
    .assert_debug_eq(&due);
    assert_eq!(unaddressable_outbound(&host_out).unwrap(), 3);
}

#[test]
fn a_page_holds_at_most_due_page_rows_and_the_offset_skips_kept_ones() {
    let (_d, s) = session();
    let inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let outb = open_outbound_container(&outbound_path(&s)).unwrap();
    outb.as_connection().execute_batch(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {})
         INSERT INTO messages_out (id, seq, timestamp, kind, content)
         SELECT printf('o%05d', i), 2 * i + 1, printf('2026-01-01 00:%02d:%02d', i / 60 % 60, i % 60), 'chat', '{{}}' FROM n;",
        DUE_PAGE + 9
    ))
    .unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let first = due_outbound(&inb, &host_out, 0).unwrap();
    assert_eq!(first.len(), DUE_PAGE);
    assert_eq!(first[0].id(), "o00000");
    let rest = due_outbound(&inb, &host_out, DUE_PAGE).unwrap();
    assert_eq!(rest.len(), 10);
    assert_eq!(rest[0].id(), format!("o{DUE_PAGE:05}"));
}

#[test]
fn due_outbound_with_odd_path_characters_and_in_memory_outbound() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("we%ird #1?");
    create(&s).unwrap();
    let mut inb = open_inbound_host(&s.join(INBOUND_FILE)).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let ro_in = open_inbound_container(&s.join(INBOUND_FILE)).unwrap();
    container::write_outbound(&ro_in, &mut outb, &out("o1")).unwrap();
    container::write_outbound(&ro_in, &mut outb, &out("o2")).unwrap();
    mark_delivered(&mut inb, &[record("o1", None, DeliveryStatus::Delivered)]).unwrap();
    let host_out = open_outbound_host(&outbound_path(&s)).unwrap();
    let ids = |rows: Vec<Due>| {
        rows.into_iter()
            .map(|r| r.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(due_outbound(&inb, &host_out, 0).unwrap()), vec!["o2"]);
    // Nothing stays attached to the host's inbound connection.
    let attached: i64 = inb
        .as_connection()
        .query_row("SELECT COUNT(*) FROM pragma_database_list", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(attached, 1);

    let mem = Connection::open_in_memory().unwrap();
    mem.execute_batch(OUTBOUND_SCHEMA).unwrap();
    mem.execute_batch(
        "INSERT INTO messages_out (id, seq, timestamp, kind, content) VALUES
           ('o1', 1, '2026-01-01', 'chat', '{}'), ('m2', 3, '2026-01-02', 'chat', '{}')",
    )
    .unwrap();
    assert_eq!(
        ids(due_outbound(&inb, &OutboundDb(mem), 0).unwrap()),
        vec!["m2"]
    );
}

#[test]
fn replies_and_their_completion_commit_together_or_not_at_all() {
    let (_d, s) = session();
    let ro_in = open_inbound_container(&s.join(INBOUND_FILE)).unwrap();
    let mut outb = open_outbound_container(&outbound_path(&s)).unwrap();
    let answered = vec!["m1".to_string()];
    let seqs = container::write_replies_and_complete(
        &ro_in,
        &mut outb,
        &[out("r1"), out("r2")],
        &answered,
    )
    .unwrap();
    assert_eq!(seqs, vec![1, 3]);
    let completed = |outb: &OutboundDb, id: &str| -> bool {
        outb.as_connection().query_row(
            "SELECT EXISTS (SELECT 1 FROM processing_ack WHERE message_id = ?1 AND status = 'completed')",
            [id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(completed(&outb, "m1"));
    // A failing reply (duplicate id) takes the completion down with it: nothing half-done.
    let err = container::write_replies_and_complete(
        &ro_in,
        &mut outb,
        &[out("r3"), out("r1")],
        &["m2".into()],
    );
    assert!(err.is_err());
    assert!(!completed(&outb, "m2"), "no completion without its replies");
    let r3: i64 = outb
        .as_connection()
        .query_row(
            "SELECT COUNT(*) FROM messages_out WHERE id = 'r3'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(r3, 0, "no reply without its completion");
}

#[test]
fn a_reader_left_on_a_deleted_inbound_db_never_breaks_the_writer_of_its_successor() {
    // A read-write connection to a deleted file takes the new file's journal for its own hot
    // journal and deletes it (the new file's commit then fails with a disk I/O error); that is
    // why the host reads `inbound.db` through `open_inbound_reader` and writes per statement.
    let (_d, s) = session();
    let path = s.join(INBOUND_FILE);
    let stale = open_inbound_reader(&path).unwrap();
    fs::remove_file(&path).unwrap();
    create_inbound(&s).unwrap();
    let mut fresh = open_inbound_host(&path).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reading = stop.clone();
    let reader = std::thread::spawn(move || {
        while !reading.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = stale
                .as_connection()
                .query_row("SELECT COUNT(*) FROM messages_in", [], |r| {
                    r.get::<_, i64>(0)
                });
        }
    });
    let failures = (0..200)
        .filter(|i| insert_inbound(&mut fresh, &[chat(&format!("m{i}"))]).is_err())
        .count();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(failures, 0);
    assert_eq!(count_due(&fresh).unwrap(), 200);
}
