//! Poll-loop integration tests (v2's end-to-end and integration tests;
//! docs/agent-runner.md#tests-ported-from-v2): real temp session DBs written through the host's
//! API, the loop on a thread with a stop flag, the mock provider.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::providers::mock::{MockProvider, Responder};
use crate::session_db::{DestinationRow, NewInbound};

/// (text, channel_type, platform_id, thread_id, in_reply_to) of one outbound row.
type Reply = (String, String, String, Option<String>, Option<String>);

type SendResponder = Box<dyn FnMut(&str) -> Result<String, String> + Send>;

struct Loop {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    prompts: Arc<Mutex<Vec<String>>>,
}

/// A mock whose stored continuation errors are "session invalid".
struct Strict(MockProvider);

impl Provider for Strict {
    fn supports_native_slash_commands(&self) -> bool {
        false
    }
    fn query(&mut self, input: QueryInput) -> Box<dyn AgentQuery> {
        self.0.query(input)
    }
    fn is_session_invalid(&self, message: &str) -> bool {
        message.contains("no conversation found")
    }
}

fn dest(name: &str, ct: &str, pid: &str) -> DestinationRow {
    DestinationRow {
        name: name.into(),
        kind: "channel".into(),
        channel_type: Some(ct.into()),
        platform_id: Some(pid.into()),
        ..DestinationRow::default()
    }
}

fn msg(id: &str, ct: &str, pid: &str, thread: Option<&str>, text: &str) -> NewInbound {
    NewInbound {
        id: id.into(),
        kind: "chat".into(),
        timestamp: "2026-06-15T12:00:00Z".into(),
        channel_type: Some(ct.into()),
        platform_id: Some(pid.into()),
        thread_id: thread.map(str::to_string),
        content: serde_json::json!({"sender": "Ann", "text": text}).to_string(),
        trigger: true,
        ..NewInbound::default()
    }
}

fn chat(id: &str, text: &str) -> NewInbound {
    msg(id, "discord", "chan-1", None, text)
}

impl Loop {
    fn session(dests: &[DestinationRow]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().to_path_buf();
        session_db::create(&ws).unwrap();
        let mut inb = session_db::open_inbound_host(&ws.join(INBOUND_FILE)).unwrap();
        session_db::write_destinations(&mut inb, dests).unwrap();
        (dir, ws)
    }

    /// Starts the loop; `responder` None = the default echoing mock.
    fn start(
        dir: tempfile::TempDir,
        ws: PathBuf,
        responder: Option<SendResponder>,
        strict: bool,
    ) -> Loop {
        let stop = Arc::new(AtomicBool::new(false));
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let (ws2, stop2, prompts2) = (ws.clone(), stop.clone(), prompts.clone());
        let handle = std::thread::spawn(move || {
            let config = ContainerConfig {
                provider: "mock".into(),
                ..ContainerConfig::default()
            };
            let options = ProviderOptions {
                config: config.clone(),
                workspace: ws2.clone(),
                base_url: None,
            };
            let mock = match responder {
                Some(mut f) => {
                    let log = prompts2.clone();
                    let f: Responder = Box::new(move |p: &str| {
                        log.lock().unwrap().push(p.to_string());
                        f(p)
                    });
                    MockProvider::with_responder(options, f)
                }
                None => MockProvider::new(options),
            };
            let provider: Box<dyn Provider> = if strict {
                Box::new(Strict(mock))
            } else {
                Box::new(mock)
            };
            let mut runner = Runner::new(&ws2, &config, "UTC", provider).unwrap();
            runner.run(&stop2).unwrap();
        });
        Loop {
            _dir: dir,
            ws,
            stop,
            handle: Some(handle),
            prompts,
        }
    }

    fn with(dests: &[DestinationRow], rows: &[NewInbound], reply: &'static str) -> Loop {
        let (dir, ws) = Self::session(dests);
        let l = Loop {
            _dir: dir,
            ws,
            stop: Arc::default(),
            handle: None,
            prompts: Arc::default(),
        };
        l.insert(rows);
        let Loop { _dir, ws, .. } = l;
        Loop::start(
            _dir,
            ws,
            Some(Box::new(move |_| Ok(reply.to_string()))),
            false,
        )
    }

    fn insert(&self, rows: &[NewInbound]) {
        let mut inb = session_db::open_inbound_host(&self.ws.join(INBOUND_FILE)).unwrap();
        session_db::insert_inbound(&mut inb, rows).unwrap();
    }

    fn outbound(&self) -> OutboundDb {
        session_db::open_outbound_host(&session_db::outbound_path(&self.ws)).unwrap()
    }

    /// (text, channel_type, platform_id, thread_id, in_reply_to) of every outbound row.
    fn replies(&self) -> Vec<Reply> {
        let conn = self.outbound();
        let mut stmt = conn
            .as_connection()
            .prepare(
                "SELECT content, channel_type, platform_id, thread_id, in_reply_to
                 FROM messages_out ORDER BY seq",
            )
            .unwrap();
        stmt.query_map([], |r| {
            let content: String = r.get(0)?;
            let v: serde_json::Value = serde_json::from_str(&content).unwrap();
            Ok((
                v["text"].as_str().unwrap_or_default().to_string(),
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                r.get(3)?,
                r.get(4)?,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
    }

    fn ack(&self, id: &str) -> Option<String> {
        session_db::open_outbound_host(&session_db::outbound_path(&self.ws))
            .ok()?
            .as_connection()
            .query_row(
                "SELECT status FROM processing_ack WHERE message_id = ?1",
                [id],
                |r| r.get(0),
            )
            .ok()
    }

    fn continuation(&self) -> Option<String> {
        db::continuation(&self.outbound(), "mock").unwrap()
    }

    /// Waits (bounded) until `cond` holds; the bound only turns a hang into a failure.
    fn wait(&self, what: &str, cond: impl Fn(&Loop) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_completed(&self, id: &str) {
        self.wait(id, |l| l.ack(id).as_deref() == Some("completed"));
    }

    fn finish(mut self) -> Self {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self
    }
}

fn discord() -> Vec<DestinationRow> {
    vec![dest("discord-test", "discord", "chan-1")]
}

#[test]
fn issue_8_a_deleted_outbound_db_is_recreated_and_the_next_message_answered() {
    // Deleting outbound.db under a running container left the chat silently dead: the runner
    // kept writing into the deleted file, which the host can no longer see.
    let (dir, ws) = Loop::session(&discord());
    let l = Loop::start(dir, ws, None, false);
    l.insert(&[chat("m1", "before")]);
    l.wait_completed("m1");
    std::fs::remove_file(session_db::outbound_path(&l.ws)).unwrap();
    l.insert(&[chat("m2", "after")]);
    l.wait_completed("m2");
    let replies = l.finish().replies();
    assert_eq!(
        replies.len(),
        1,
        "the fresh file holds the answer to m2: {replies:?}"
    );
    assert!(replies[0].0.ends_with("echo: after"), "{replies:?}");
    assert_eq!(replies[0].4.as_deref(), Some("m2"));
}

#[test]
fn issue_8_a_corrupt_outbound_db_is_moved_aside_and_replaced() {
    let (dir, ws) = Loop::session(&discord());
    let path = session_db::outbound_path(&ws);
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let l = Loop::start(dir, ws, None, false);
    l.insert(&[chat("m1", "hello")]);
    l.wait_completed("m1");
    let l = l.finish();
    assert_eq!(l.replies()[0].0, "echo: hello");
    let aside: Vec<_> = std::fs::read_dir(session_db::outbound_dir(&l.ws))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("outbound.db.damaged-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged file is kept for inspection: {aside:?}"
    );
}

#[test]
fn picks_up_a_message_processes_it_and_writes_a_response() {
    let l = Loop::with(
        &discord(),
        &[chat("m1", "hi")],
        "<message to=\"discord-test\">42</message>",
    );
    l.wait_completed("m1");
    let l = l.finish();
    assert_eq!(
        l.replies(),
        vec![(
            "42".into(),
            "discord".into(),
            "chan-1".into(),
            None,
            Some("m1".into())
        )]
    );
    let inb = session_db::open_inbound_host(&l.ws.join(INBOUND_FILE)).unwrap();
    let mut inb = inb;
    session_db::sync_acks(&mut inb, &l.outbound()).unwrap();
    assert_eq!(session_db::count_due(&inb).unwrap(), 0);
}

#[test]
fn processes_multiple_messages_in_one_batch() {
    let l = Loop::with(
        &discord(),
        &[chat("m1", "a"), chat("m2", "b")],
        "<message to=\"discord-test\">both</message>",
    );
    l.wait_completed("m2");
    let l = l.finish();
    assert_eq!(l.replies().len(), 1);
    let prompts = l.prompts.lock().unwrap();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].contains("<messages>") && prompts[0].contains(">a</message>"));
}

#[test]
fn resolves_thread_per_destination() {
    let dests = vec![
        dest("discord-test", "discord", "chan-1"),
        dest("slack-test", "slack", "C-99"),
    ];
    let l = Loop::with(
        &dests,
        &[
            msg(
                "m-discord",
                "discord",
                "chan-1",
                Some("discord-thread-1"),
                "d",
            ),
            msg("m-slack", "slack", "C-99", Some("slack-thread-99"), "s"),
        ],
        "<message to=\"discord-test\">to d</message><message to=\"slack-test\">to s</message>",
    );
    l.wait_completed("m-slack");
    let r = l.finish().replies();
    assert_eq!(r[0].3.as_deref(), Some("discord-thread-1"));
    assert_eq!(r[0].4.as_deref(), Some("m-discord"));
    assert_eq!(r[1].3.as_deref(), Some("slack-thread-99"));
    assert_eq!(r[1].4.as_deref(), Some("m-slack"));
}

#[test]
fn bare_text_is_scratchpad_and_triggers_one_nudge() {
    let l = Loop::with(&discord(), &[chat("m1", "hi")], "just thinking");
    l.wait_completed("m1");
    l.wait("nudge", |l| l.prompts.lock().unwrap().len() >= 2);
    let l = l.finish();
    assert!(l.replies().is_empty());
    let prompts = l.prompts.lock().unwrap();
    assert_eq!(prompts.len(), 2, "exactly one nudge per turn");
    assert!(prompts[1].contains("Your destinations: discord-test"));
}

#[test]
fn unknown_destination_dropped_valid_sent() {
    let l = Loop::with(
        &discord(),
        &[chat("m1", "hi")],
        "<message to=\"nowhere\">lost</message><message to=\"discord-test\">kept</message>",
    );
    l.wait_completed("m1");
    let texts: Vec<_> = l.finish().replies().into_iter().map(|r| r.0).collect();
    assert_eq!(texts, vec!["kept"]);
}

#[test]
fn multiple_blocks_each_produce_a_row() {
    let l = Loop::with(
        &discord(),
        &[chat("m1", "hi")],
        "<message to=\"discord-test\">one</message>\n<message to=\"discord-test\">two</message>",
    );
    l.wait_completed("m1");
    let texts: Vec<_> = l.finish().replies().into_iter().map(|r| r.0).collect();
    assert_eq!(texts, vec!["one", "two"]);
}

#[test]
fn null_thread_when_no_prior_inbound_from_destination() {
    let dests = vec![
        dest("discord-test", "discord", "chan-1"),
        dest("slack-test", "slack", "C-99"),
    ];
    let l = Loop::with(
        &dests,
        &[msg("m1", "discord", "chan-1", Some("t-1"), "hi")],
        "<message to=\"slack-test\">hello slack</message>",
    );
    l.wait_completed("m1");
    let r = l.finish().replies();
    assert_eq!(r[0].2, "C-99");
    assert_eq!((r[0].3.as_deref(), r[0].4.as_deref()), (None, Some("m1")));
}

#[test]
fn most_recent_thread_from_destination_wins() {
    let l = Loop::with(
        &discord(),
        &[
            msg("m-old", "discord", "chan-1", Some("thread-old"), "a"),
            msg("m-new", "discord", "chan-1", Some("thread-new"), "b"),
        ],
        "<message to=\"discord-test\">x</message>",
    );
    l.wait_completed("m-new");
    let r = l.finish().replies();
    assert_eq!(
        (r[0].3.as_deref(), r[0].4.as_deref()),
        (Some("thread-new"), Some("m-new"))
    );
}

/// Issue 13 point 1 (v2's quirk: its tools never knew the message they answered): the poll loop
/// records the turn's reply target for the tools process, follow-ups included.
#[test]
fn the_tools_see_the_message_being_answered_follow_ups_included() {
    let (dir, ws) = Loop::session(&discord());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (ws2, seen2) = (ws.clone(), seen.clone());
    let l = Loop::start(
        dir,
        ws,
        Some(Box::new(move |_| {
            let path = session_db::outbound_path(&ws2);
            let outbound = session_db::open_outbound_container(&path).unwrap();
            seen2
                .lock()
                .unwrap()
                .push(db::turn_reply(&outbound).unwrap());
            Ok("<message to=\"discord-test\">ok</message>".into())
        })),
        false,
    );
    l.insert(&[chat("m1", "first")]);
    l.wait_completed("m1");
    l.insert(&[chat("m2", "second")]);
    l.wait_completed("m2");
    l.finish();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![Some("m1".to_string()), Some("m2".to_string())]
    );
}

#[test]
fn processes_messages_arriving_after_start_with_default_echo() {
    let (dir, ws) = Loop::session(&discord());
    let l = Loop::start(dir, ws, None, false);
    l.insert(&[chat("m1", "first")]);
    l.wait_completed("m1");
    // A follow-up pushed into the open mock query.
    l.insert(&[chat("m2", "second <b>")]);
    l.wait_completed("m2");
    l.wait("two replies", |l| l.replies().len() == 2);
    let l = l.finish();
    let texts: Vec<_> = l.replies().into_iter().map(|r| (r.0, r.4)).collect();
    assert_eq!(
        texts,
        vec![
            ("echo: first".into(), Some("m1".into())),
            ("echo: second <b>".into(), Some("m2".into()))
        ]
    );
    assert!(session_db::heartbeat_mtime(&l.ws).is_some());
    let turns = std::fs::read_to_string(l.ws.join("outbound/.mock/turns.jsonl")).unwrap();
    assert_eq!(turns.lines().count(), 2);
}

#[test]
fn internal_tags_between_blocks_are_stripped() {
    let l = Loop::with(
        &discord(),
        &[chat("m1", "hi")],
        "<internal>plan</internal><message to=\"discord-test\">answer <internal>x</internal></message><internal>done</internal>",
    );
    l.wait_completed("m1");
    let l = l.finish();
    let texts: Vec<_> = l.replies().into_iter().map(|r| r.0).collect();
    assert_eq!(texts, vec!["answer"]);
    assert_eq!(
        l.prompts.lock().unwrap().len(),
        1,
        "no nudge for internal-only scratchpad"
    );
}

#[test]
fn mixed_task_and_chat_batch() {
    let mut task = chat("t1", "");
    task.kind = "task".into();
    task.content = serde_json::json!({"prompt": "check"}).to_string();
    let l = Loop::with(
        &discord(),
        &[task, chat("m1", "hi")],
        "<message to=\"discord-test\">ok</message>",
    );
    l.wait_completed("m1");
    let l = l.finish();
    let r = l.replies();
    assert_eq!((r.len(), r[0].2.as_str()), (1, "chan-1"));
    let prompts = l.prompts.lock().unwrap();
    assert!(
        prompts[0].contains("<task from=\"discord-test\"")
            && prompts[0].contains("from=\"discord-test\" sender=\"Ann\"")
    );
}

#[test]
fn provider_error_writes_error_row_and_continues() {
    let (dir, ws) = Loop::session(&discord());
    let mut calls = 0;
    let l = Loop::start(
        dir,
        ws,
        Some(Box::new(move |_| {
            calls += 1;
            if calls == 1 {
                Err("boom".into())
            } else {
                Ok("<message to=\"discord-test\">fine</message>".into())
            }
        })),
        false,
    );
    l.insert(&[chat("m1", "hi")]);
    l.wait_completed("m1");
    l.insert(&[chat("m2", "again")]);
    l.wait_completed("m2");
    let r = l.finish().replies();
    // The error row goes to the batch's own address (its first row), without in_reply_to.
    let error: Reply = (
        "Error: boom".into(),
        "discord".into(),
        "chan-1".into(),
        None,
        None,
    );
    assert_eq!(r[0], error);
    assert_eq!((r[1].0.as_str(), r[1].4.as_deref()), ("fine", Some("m2")));
}

#[test]
fn stale_session_is_cleared_on_session_invalid_error() {
    let (dir, ws) = Loop::session(&discord());
    let o = session_db::open_outbound_container(&session_db::outbound_path(&ws)).unwrap();
    db::set_continuation(&o, "mock", "old-session").unwrap();
    let l = Loop::start(
        dir,
        ws,
        Some(Box::new(|_| Err("no conversation found".into()))),
        true,
    );
    l.insert(&[chat("m1", "hi")]);
    l.wait_completed("m1");
    let l = l.finish();
    assert!(l.replies()[0].0.starts_with("Error: no conversation found"));
    assert_eq!(l.continuation(), None);
}

#[test]
fn clear_command_resets_session_and_skips_query() {
    let (dir, ws) = Loop::session(&discord());
    let o = session_db::open_outbound_container(&session_db::outbound_path(&ws)).unwrap();
    db::set_continuation(&o, "mock", "old-session").unwrap();
    let l = Loop::start(dir, ws, Some(Box::new(|_| Ok("unused".into()))), false);
    l.insert(&[chat("c1", "/clear")]);
    l.wait_completed("c1");
    let l = l.finish();
    let texts: Vec<_> = l.replies().into_iter().map(|r| r.0).collect();
    assert_eq!(texts, vec!["Session cleared."]);
    assert_eq!(l.continuation(), None);
    assert!(l.prompts.lock().unwrap().is_empty());
}

#[test]
fn context_only_rows_wait_for_a_trigger_row() {
    let (dir, ws) = Loop::session(&discord());
    let l = Loop::start(dir, ws, None, false);
    let mut ctx = chat("ctx", "background");
    ctx.trigger = false;
    l.insert(&[ctx]);
    // The loop may poll in between; the context row must still wait for `go`.
    l.insert(&[chat("go", "now")]);
    l.wait_completed("go");
    let l = l.finish();
    assert_eq!(l.ack("ctx").as_deref(), Some("completed"));
    let turns = std::fs::read_to_string(l.ws.join("outbound/.mock/turns.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(turns.lines().next().unwrap()).unwrap();
    assert!(first["prompt"].as_str().unwrap().contains("background"));
}

#[test]
fn command_follow_up_ends_query_and_mock_config_answers() {
    let (dir, ws) = Loop::session(&discord());
    let l = Loop::start(dir, ws, None, false);
    l.insert(&[chat("m1", "hello")]);
    l.wait_completed("m1");
    l.insert(&[chat("m2", "/mock-config")]);
    l.wait_completed("m2");
    let l = l.finish();
    let r = l.replies();
    assert_eq!(r.len(), 2);
    let cfg: serde_json::Value = serde_json::from_str(&r[1].0).unwrap();
    assert_eq!(cfg["provider"], "mock");
    assert_eq!(cfg["max_messages_per_prompt"], 10);
    assert!(
        cfg["system_prompt"]
            .as_str()
            .unwrap()
            .contains("`discord-test`")
    );
}

#[test]
fn on_wake_rows_are_seen_by_the_first_poll_only() {
    let (dir, ws) = Loop::session(&discord());
    let pre = Loop {
        _dir: dir,
        ws,
        stop: Arc::default(),
        handle: None,
        prompts: Arc::default(),
    };
    let mut wake = chat("w1", "wake note");
    wake.on_wake = true;
    pre.insert(&[wake]);
    let Loop { _dir, ws, .. } = pre;
    let l = Loop::start(_dir, ws, None, false);
    l.wait_completed("w1");
    let mut late = chat("w2", "late wake");
    late.on_wake = true;
    l.insert(&[late, chat("m3", "normal")]);
    l.wait_completed("m3");
    let l = l.finish();
    assert_eq!(l.ack("w2"), None);
}

/// A provider that answers each user turn (prompt, then every push) with its own result, in order,
/// and, just before handing out the second result, records the ack status of `watched`.
struct OneResultPerTurn {
    outbound: PathBuf,
    watched: &'static str,
    seen: Arc<Mutex<Option<String>>>,
}

struct OneResultPerTurnQuery {
    queue: std::collections::VecDeque<Next>,
    results_given: usize,
    outbound: PathBuf,
    watched: &'static str,
    seen: Arc<Mutex<Option<String>>>,
}

impl Provider for OneResultPerTurn {
    fn supports_native_slash_commands(&self) -> bool {
        false
    }
    fn query(&mut self, _input: QueryInput) -> Box<dyn AgentQuery> {
        let reply = r#"<message to="discord-test">first turn</message>"#;
        Box::new(OneResultPerTurnQuery {
            queue: [
                Next::Event(ProviderEvent::Activity),
                Next::Event(ProviderEvent::Result {
                    text: Some(reply.into()),
                }),
            ]
            .into(),
            results_given: 0,
            outbound: self.outbound.clone(),
            watched: self.watched,
            seen: self.seen.clone(),
        })
    }
    fn is_session_invalid(&self, _message: &str) -> bool {
        false
    }
}

impl AgentQuery for OneResultPerTurnQuery {
    fn push(&mut self, _text: &str) {
        let reply = r#"<message to="discord-test">second turn</message>"#;
        self.queue.push_back(Next::Event(ProviderEvent::Result {
            text: Some(reply.into()),
        }));
    }
    fn end(&mut self) {}
    fn next_event(&mut self, _wait: Duration) -> Next {
        let next = self.queue.pop_front().unwrap_or(Next::Done);
        if matches!(next, Next::Event(ProviderEvent::Result { .. })) {
            self.results_given += 1;
            if self.results_given == 2 {
                let conn = session_db::open_outbound_host(&self.outbound).unwrap();
                let status = conn
                    .as_connection()
                    .query_row(
                        "SELECT status FROM processing_ack WHERE message_id = ?1",
                        [self.watched],
                        |r| r.get(0),
                    )
                    .ok();
                *self.seen.lock().unwrap() = status;
            }
        }
        next
    }
}

#[test]
fn a_follow_up_stays_claimed_until_its_own_result_arrives() {
    // m2 arrives while the first turn is in flight and is pushed before that turn's result is
    // read; a crash between the two results must leave m2 claimed (retried), not completed (lost).
    let (dir, ws) = Loop::session(&discord());
    let inb_path = ws.join(INBOUND_FILE);
    let mut inb = session_db::open_inbound_host(&inb_path).unwrap();
    session_db::insert_inbound(&mut inb, &[chat("m1", "one"), chat("m2", "two")]).unwrap();
    let seen = Arc::new(Mutex::new(None));
    let provider = OneResultPerTurn {
        outbound: session_db::outbound_path(&ws),
        watched: "m2",
        seen: seen.clone(),
    };
    let config = ContainerConfig {
        provider: "mock".into(),
        ..ContainerConfig::default()
    };
    let mut runner = Runner::new(&ws, &config, "UTC", Box::new(provider)).unwrap();
    let initial = vec!["m1".to_string()];
    db::ack(&mut runner.outbound, &initial, AckStatus::Processing).unwrap();
    let batch = Batch {
        first_id: "m1".into(),
        channel_type: Some("discord".into()),
        platform_id: Some("chan-1".into()),
        thread_id: None,
    };
    runner.watch.force();
    let stop = AtomicBool::new(false);
    let (outcome, given_back) = runner.run_query("prompt".into(), &batch, &initial, &stop);
    outcome.unwrap();
    assert!(given_back.is_empty());
    assert_eq!(seen.lock().unwrap().as_deref(), Some("processing"));
    let status = |id: &str| -> Option<String> {
        session_db::open_outbound_host(&session_db::outbound_path(&ws))
            .unwrap()
            .as_connection()
            .query_row(
                "SELECT status FROM processing_ack WHERE message_id = ?1",
                [id],
                |r| r.get(0),
            )
            .ok()
    };
    assert_eq!(status("m1").as_deref(), Some("completed"));
    assert_eq!(status("m2").as_deref(), Some("completed"));
    drop(dir);
}

#[test]
fn a_reply_is_written_before_its_message_is_completed() {
    // A container killed between the two writes must not leave a message completed without its
    // reply (lost); the other order at worst answers it twice. The trigger makes the wrong order
    // observable: it refuses a reply whose message is already completed.
    let (dir, ws) = Loop::session(&discord());
    session_db::open_outbound_container(&session_db::outbound_path(&ws))
        .unwrap()
        .as_connection()
        .execute_batch(
            "CREATE TRIGGER reply_after_completion BEFORE INSERT ON messages_out
             WHEN (SELECT status FROM processing_ack WHERE message_id = 'm1') = 'completed'
             BEGIN SELECT RAISE(ABORT, 'm1 was completed before its reply'); END;",
        )
        .unwrap();
    let mut inb = session_db::open_inbound_host(&ws.join(INBOUND_FILE)).unwrap();
    session_db::insert_inbound(&mut inb, &[chat("m1", "hi")]).unwrap();
    let reply = r#"<message to="discord-test">hello</message>"#;
    let l = Loop::start(
        dir,
        ws,
        Some(Box::new(move |_| Ok(reply.to_string()))),
        false,
    );
    l.wait_completed("m1");
    let l = l.finish();
    let texts: Vec<_> = l.replies().into_iter().map(|r| r.0).collect();
    assert_eq!(texts, vec!["hello".to_string()]);
}

/// A provider whose queries cannot reach its API while `down` is set: each turn tells of the
/// outage, then ends unreachable; otherwise it answers.
struct Flaky {
    down: Arc<AtomicBool>,
    queries: Arc<std::sync::atomic::AtomicUsize>,
}

impl Provider for Flaky {
    fn supports_native_slash_commands(&self) -> bool {
        false
    }
    fn query(&mut self, _input: QueryInput) -> Box<dyn AgentQuery> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let events = if self.down.load(Ordering::SeqCst) {
            vec![
                ProviderEvent::Activity,
                ProviderEvent::Unreachable {
                    notice: "can't reach".into(),
                },
                ProviderEvent::TurnUnreachable {
                    error: "the API could not be reached (refused)".into(),
                    notice: "can't reach".into(),
                },
            ]
        } else {
            vec![ProviderEvent::Result {
                text: Some(r#"<message to="discord-test">answer</message>"#.into()),
            }]
        };
        Box::new(Scripted(events.into_iter().map(Next::Event).collect()))
    }
    fn is_session_invalid(&self, _message: &str) -> bool {
        false
    }
}

struct Scripted(std::collections::VecDeque<Next>);

impl AgentQuery for Scripted {
    fn push(&mut self, _text: &str) {}
    fn end(&mut self) {}
    fn next_event(&mut self, _wait: Duration) -> Next {
        self.0.pop_front().unwrap_or(Next::Done)
    }
}

#[test]
fn issue_10_an_outage_is_told_once_and_its_message_given_back_until_the_last_try() {
    let (dir, ws) = Loop::session(&discord());
    let down = Arc::new(AtomicBool::new(true));
    let queries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let provider = Flaky {
        down: down.clone(),
        queries: queries.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (ws2, stop2) = (ws.clone(), stop.clone());
    let handle = std::thread::spawn(move || {
        let config = ContainerConfig {
            provider: "mock".into(),
            ..ContainerConfig::default()
        };
        let mut runner = Runner::new(&ws2, &config, "UTC", Box::new(provider)).unwrap();
        runner.run(&stop2).unwrap();
    });
    let l = Loop {
        _dir: dir,
        ws,
        stop,
        handle: Some(handle),
        prompts: Arc::default(),
    };
    let texts = |l: &Loop| -> Vec<(String, Option<String>)> {
        l.replies().into_iter().map(|r| (r.0, r.4)).collect()
    };
    // What the host's sweep does with a given-back message: one more try, due in a second.
    let reschedule = |l: &Loop, id: &str, tries: i64| {
        let inbound = session_db::open_inbound_host(&l.ws.join(INBOUND_FILE)).unwrap();
        session_db::retry_later(&inbound, id, tries, Duration::from_secs(1)).unwrap();
    };
    let tried = |n: usize| {
        move |l: &Loop| {
            queries.load(Ordering::SeqCst) == n && l.ack("m1").as_deref() == Some("retry")
        }
    };

    l.insert(&[chat("m1", "hello")]);
    l.wait("m1 given back", |l| l.ack("m1").as_deref() == Some("retry"));
    assert_eq!(
        texts(&l),
        [("can't reach".to_string(), None)],
        "no error reply, one notice"
    );

    reschedule(&l, "m1", 1);
    l.wait("the second try of m1", tried(2));
    assert_eq!(texts(&l).len(), 1, "told once per outage, not per try");

    down.store(false, Ordering::SeqCst);
    reschedule(&l, "m1", 2);
    l.wait_completed("m1");
    assert_eq!(texts(&l)[1], ("answer".to_string(), Some("m1".to_string())));

    // A new outage is told anew; a message's last try is answered with the failure.
    down.store(true, Ordering::SeqCst);
    l.insert(&[chat("m2", "again")]);
    l.wait("m2 given back", |l| l.ack("m2").as_deref() == Some("retry"));
    assert_eq!(texts(&l).len(), 3);
    assert_eq!(texts(&l)[2].0, "can't reach");
    reschedule(&l, "m2", session_db::MAX_TRIES);
    l.wait("the failure", |l| texts(l).len() == 4);
    let l = l.finish();
    assert_eq!(
        texts(&l)[3],
        (
            "❌ I gave up on your message after 6 tries: the API could not be reached (refused). Please send it again later.".to_string(),
            Some("m2".to_string())
        )
    );
    assert_eq!(
        l.ack("m2").as_deref(),
        Some("retry"),
        "the host marks it failed"
    );
    assert!(!db::outage_told(&l.outbound()).unwrap());
}
