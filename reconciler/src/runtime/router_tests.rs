//! Tests of the router's IO shell ([`Router::route_batch`]) on real temp SQLite files: the
//! central DB through `db::open`, session DBs through `agent_runner::session_db`. Ported from
//! v2's host-core tests (`router`, `routing metadata preservation`, `session manager`) and the
//! routing gates of its permissions tests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_runner::session_db;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::channels::{Adapter, Content, Delivered, DeliveryError, InboundMessage, Start};
use crate::runtime::mailbox::Mail;
use crate::runtime::waker::WAKES;
use crate::runtime::work::Inbox;

/// An adapter that records what it was asked to deliver.
#[derive(Default)]
struct Recorder {
    channel_type: String,
    threads: bool,
    delivered: Mutex<Vec<Outbound>>,
    /// `(platform id, thread id)` of every subscription the router asked for.
    subscribed: Mutex<Vec<(String, String)>>,
}

impl Adapter for Recorder {
    fn channel_type(&self) -> &str {
        &self.channel_type
    }
    fn supports_threads(&self) -> bool {
        self.threads
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
        self.delivered.lock().unwrap().push(message.clone());
        std::future::ready(Ok(Delivered::Sent(None))).boxed()
    }
    fn subscribe(&self, platform_id: &str, thread_id: &str) {
        let entry = (platform_id.to_string(), thread_id.to_string());
        self.subscribed.lock().unwrap().push(entry);
    }
}

/// An audit row: `(reason, user, sender name, chat, agent, count)`.
type Audit = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

/// One inbound row as the tests read it.
#[derive(Debug, PartialEq)]
struct Row {
    id: String,
    trigger: bool,
    platform_id: Option<String>,
    channel_type: Option<String>,
    thread_id: Option<String>,
    content: Value,
}

/// A data dir with a migrated central DB, a router on it, the router's wake queue, and the
/// outboxes (on a runtime of their own) that take its direct replies.
struct World {
    _dir: tempfile::TempDir,
    paths: Paths,
    conn: Connection,
    router: Router,
    wakes: Wakes,
    outboxes: Outboxes,
    _runtime: tokio::runtime::Runtime,
}

impl World {
    /// v2's router fixture: agent `ag-1` wired to the public group chat discord/chan-123 with
    /// `pattern .`, scope `all`, policy `drop`, session mode `shared`.
    fn new() -> World {
        World::with_adapters(Adapters::default())
    }

    fn with_adapters(adapters: Adapters) -> World {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path().join("data"));
        paths.ensure().unwrap();
        let conn = db::open(&paths.db()).unwrap();
        conn.execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-1', 'Test Agent', 'ag-1', 't');
             INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
               VALUES ('mg-1', 'discord', 'chan-123', 'General', 1, 'public', 't');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, engage_pattern,
               sender_scope, ignored_message_policy, session_mode, priority, created_at)
               VALUES ('mga-1', 'mg-1', 'ag-1', 'pattern', '.', 'all', 'drop', 'shared', 0, 't');",
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let outboxes = {
            let _entered = runtime.enter();
            Outboxes::start(
                adapters,
                Inbox::new(),
                &TaskTracker::new(),
                CancellationToken::new(),
            )
        };
        let wakes = Wakes::new(WAKES);
        let router = Router::new(paths.clone(), outboxes.clone(), wakes.clone()).unwrap();
        World {
            _dir: dir,
            paths,
            conn,
            router,
            wakes,
            outboxes,
            _runtime: runtime,
        }
    }

    /// The fixture with a recording discord adapter (threaded or not) registered.
    fn with_recorder(threads: bool) -> (Arc<Recorder>, World) {
        let recorder = Arc::new(Recorder {
            channel_type: "discord".into(),
            threads,
            ..Recorder::default()
        });
        let mut adapters = Adapters::default();
        adapters.register(recorder.clone());
        (recorder, World::with_adapters(adapters))
    }

    fn sql(&self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }

    fn add_agent(&self, agent: &str) {
        self.sql(&format!(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('{agent}', '{agent}', '{agent}', 't');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, engage_pattern,
               sender_scope, ignored_message_policy, session_mode, priority, created_at)
               VALUES ('mga-{agent}', 'mg-1', '{agent}', 'pattern', '.', 'all', 'drop', 'shared', 0, 't');"
        ));
    }

    /// Routes one event; returns once the outboxes sent what it answered directly.
    fn route(&mut self, event: InboundEvent) {
        self.router.route_batch(&mut vec![Envelope::new(event)]);
        self.settle();
    }

    /// Waits until the outboxes finished every job.
    fn settle(&self) {
        assert!(
            self.outboxes.wait_idle(Duration::from_secs(60)),
            "the outboxes finish within a minute"
        );
    }

    /// Sessions the router asked to wake since the last call.
    fn woken(&mut self) -> Vec<String> {
        std::iter::from_fn(|| match self.wakes.try_recv()? {
            Mail::Key(session, _) => Some(session),
            Mail::Overflow => panic!("the wake queue overflowed"),
        })
        .collect()
    }

    /// `(id, chat, thread)` of the agent's sessions, oldest first.
    fn sessions(&self, agent: &str) -> Vec<(String, Option<String>, Option<String>)> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT id, messaging_group_id, thread_id FROM sessions
                 WHERE agent_group_id = ?1 ORDER BY created_at, id",
            )
            .unwrap();
        statement
            .query_map([agent], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The only session of `agent`.
    fn session(&self, agent: &str) -> String {
        let sessions = self.sessions(agent);
        assert_eq!(sessions.len(), 1, "sessions of {agent}: {sessions:?}");
        sessions[0].0.clone()
    }

    fn rows(&self, agent: &str, session: &str) -> Vec<Row> {
        let path = self
            .paths
            .session(agent, session)
            .join(session_db::INBOUND_FILE);
        let conn = session_db::open_inbound_container(&path).unwrap();
        let mut statement = conn
            .as_connection()
            .prepare(
                "SELECT id, trigger, platform_id, channel_type, thread_id, content, status, seq
                 FROM messages_in ORDER BY seq",
            )
            .unwrap();
        statement
            .query_map([], |row| {
                let status: String = row.get(6)?;
                let seq: i64 = row.get(7)?;
                assert_eq!(status, "pending");
                assert_eq!(seq % 2, 0, "host seqs are even");
                let content: String = row.get(5)?;
                Ok(Row {
                    id: row.get(0)?,
                    trigger: row.get(1)?,
                    platform_id: row.get(2)?,
                    channel_type: row.get(3)?,
                    thread_id: row.get(4)?,
                    content: serde_json::from_str(&content).unwrap(),
                })
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// `(reason, user, sender name, chat, agent, count)` of the audit row of a chat.
    fn audit(&self, channel_type: &str, platform_id: &str) -> Option<Audit> {
        self.conn
            .query_row(
                "SELECT reason, user_id, sender_name, messaging_group_id, agent_group_id, message_count
                 FROM unregistered_senders WHERE channel_type = ?1 AND platform_id = ?2",
                [channel_type, platform_id],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                    ))
                },
            )
            .optional()
            .unwrap()
    }
}

fn event(id: &str, content: Value) -> InboundEvent {
    InboundEvent {
        channel_type: "discord".into(),
        platform_id: "chan-123".into(),
        thread_id: None,
        message: InboundMessage {
            id: id.into(),
            kind: "chat".into(),
            content: Content::from_value(content),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            is_mention: false,
            is_group: None,
        },
        reply_to: None,
    }
}

fn in_thread(mut event: InboundEvent, thread: &str) -> InboundEvent {
    event.thread_id = Some(thread.into());
    event
}

fn mention(mut event: InboundEvent) -> InboundEvent {
    event.message.is_mention = true;
    event
}

// ---- router ----

#[test]
fn should_route_a_message_end_to_end() {
    let mut world = World::new();
    world.route(event(
        "msg-in-1",
        json!({"sender": "User", "text": "Hello agent!"}),
    ));
    let session = world.session("ag-1");
    assert_eq!(
        world.sessions("ag-1")[0],
        (session.clone(), Some("mg-1".into()), None)
    );
    let rows = world.rows("ag-1", &session);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].id, "msg-in-1:ag-1",
        "row ids are namespaced by agent"
    );
    assert_eq!(rows[0].content["text"], "Hello agent!");
    assert!(rows[0].trigger);
    assert_eq!(world.woken(), [session]);
}

#[test]
fn auto_creates_messaging_group_only_when_the_bot_is_addressed() {
    let mut world = World::new();
    let chats = |world: &World, platform: &str| -> i64 {
        world
            .conn
            .query_row(
                "SELECT COUNT(*) FROM messaging_groups WHERE channel_type = 'slack' AND platform_id = ?1",
                [platform],
                |row| row.get(0),
            )
            .unwrap()
    };
    let mut plain = event("msg-plain", json!({"sender": "User", "text": "Hi"}));
    plain.channel_type = "slack".into();
    plain.platform_id = "C-PLAIN".into();
    world.route(plain);
    assert_eq!(chats(&world, "C-PLAIN"), 0);
    assert_eq!(
        world.audit("slack", "C-PLAIN"),
        None,
        "no audit for chatter"
    );

    let mut addressed = mention(event(
        "msg-mentioned",
        json!({"sender": "User", "text": "@bot hi"}),
    ));
    addressed.channel_type = "slack".into();
    addressed.platform_id = "C-MENTIONED".into();
    addressed.message.is_group = Some(true);
    world.route(addressed);
    assert_eq!(chats(&world, "C-MENTIONED"), 1);
    let (policy, is_group): (String, bool) = world
        .conn
        .query_row(
            "SELECT unknown_sender_policy, is_group FROM messaging_groups WHERE platform_id = 'C-MENTIONED'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((policy.as_str(), is_group), ("request_approval", true));
    let (reason, user, name, _, agent, _) = world.audit("slack", "C-MENTIONED").unwrap();
    assert_eq!(reason, "no_agent_wired");
    assert_eq!(user, None, "no_agent_wired drops carry no user");
    assert_eq!(name.as_deref(), Some("User"));
    assert_eq!(agent, None);
    assert!(world.woken().is_empty());
}

#[test]
fn a_denied_chat_without_wirings_stays_silent() {
    let mut world = World::new();
    world.sql(
        "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at, denied_at)
           VALUES ('mg-denied', 'discord', 'chan-denied', 't', 't');",
    );
    let mut addressed = mention(event("m", json!({"text": "hi"})));
    addressed.platform_id = "chan-denied".into();
    world.route(addressed);
    assert_eq!(world.audit("discord", "chan-denied"), None);
}

#[test]
fn should_route_multiple_messages_to_the_same_session() {
    let mut world = World::new();
    world.route(event("msg-a", json!({"sender": "A", "text": "First"})));
    world.route(event("msg-b", json!({"sender": "B", "text": "Second"})));
    let session = world.session("ag-1");
    let ids: Vec<String> = world
        .rows("ag-1", &session)
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(ids, ["msg-a:ag-1", "msg-b:ag-1"]);
}

#[test]
fn fans_out_to_every_matching_agent_each_in_its_own_session() {
    let mut world = World::new();
    world.add_agent("ag-2");
    world.route(event("msg-fan", json!({"text": "hello all"})));
    let first = world.session("ag-1");
    let second = world.session("ag-2");
    assert_ne!(first, second);
    let mut woken = world.woken();
    woken.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(woken, expected);
    assert_eq!(world.rows("ag-1", &first)[0].id, "msg-fan:ag-1");
    assert_eq!(world.rows("ag-2", &second)[0].id, "msg-fan:ag-2");
}

#[test]
fn accumulates_without_waking_when_engage_fails_and_policy_is_accumulate() {
    let mut world = World::new();
    world.sql(
        "UPDATE messaging_group_agents SET engage_mode = 'mention', ignored_message_policy = 'accumulate'",
    );
    world.route(event("msg-nomatch", json!({"text": "no mention here"})));
    assert!(world.woken().is_empty());
    let session = world.session("ag-1");
    let rows = world.rows("ag-1", &session);
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].trigger, "context only");
    assert_eq!(world.audit("discord", "chan-123"), None);
}

#[test]
fn drops_silently_when_engage_fails_and_policy_is_drop() {
    let mut world = World::new();
    world.sql("UPDATE messaging_group_agents SET engage_mode = 'mention'");
    world.route(event("msg-drop", json!({"text": "ignored"})));
    assert!(world.woken().is_empty());
    assert!(world.sessions("ag-1").is_empty(), "no session is created");
    let (reason, ..) = world.audit("discord", "chan-123").unwrap();
    assert_eq!(reason, "no_agent_engaged");
}

#[test]
fn a_waking_message_starts_typing_toward_its_chat_and_context_does_not() {
    let mut world = World::new();
    let (sender, mut events) = tokio::sync::mpsc::channel(16);
    let router = std::mem::replace(
        &mut world.router,
        Router::new(
            world.paths.clone(),
            world.outboxes.clone(),
            world.wakes.clone(),
        )
        .unwrap(),
    );
    world.router = router.typing(crate::runtime::typing::Typing::new(sender));
    world.route(in_thread(event("msg-typing", json!({"text": "hi"})), "t-1"));
    let session = world.session("ag-1");
    match events.try_recv().unwrap() {
        crate::runtime::typing::Event::Engaged {
            session: engaged,
            session_dir,
            target,
        } => {
            assert_eq!(engaged, session);
            assert_eq!(session_dir, world.paths.session("ag-1", &session));
            assert_eq!(
                (target.channel_type.as_str(), target.platform_id.as_str()),
                ("discord", "chan-123")
            );
        }
        other => panic!("{other:?}"),
    }
    world.sql(
        "UPDATE messaging_group_agents SET engage_mode = 'mention', ignored_message_policy = 'accumulate'",
    );
    world.route(event("msg-context", json!({"text": "context only"})));
    assert!(
        events.try_recv().is_err(),
        "a message that does not wake shows no typing"
    );
}

// ---- routing metadata preservation ----

#[test]
fn routed_message_carries_platform_id_channel_type_thread_id_on_the_row() {
    // No live discord adapter: the thread is kept (only an adapter that says it has no
    // threads collapses them).
    let mut world = World::new();
    world.route(in_thread(
        event("msg-r1", json!({"sender": "A", "text": "hi"})),
        "thread-42",
    ));
    let session = world.session("ag-1");
    assert_eq!(
        world.sessions("ag-1")[0].2,
        None,
        "shared session: no thread"
    );
    let row = &world.rows("ag-1", &session)[0];
    assert_eq!(
        (
            row.platform_id.as_deref(),
            row.channel_type.as_deref(),
            row.thread_id.as_deref()
        ),
        (Some("chan-123"), Some("discord"), Some("thread-42"))
    );
}

#[test]
fn fan_out_gives_each_agent_its_own_routing_not_leaked_from_sibling() {
    let mut world = World::new();
    world.add_agent("ag-2");
    world.route(in_thread(
        event("msg-fo", json!({"text": "fan"})),
        "thread-fanout",
    ));
    for agent in ["ag-1", "ag-2"] {
        let session = world.session(agent);
        let rows = world.rows(agent, &session);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (
                rows[0].platform_id.as_deref(),
                rows[0].channel_type.as_deref(),
                rows[0].thread_id.as_deref()
            ),
            (Some("chan-123"), Some("discord"), Some("thread-fanout")),
            "{agent}"
        );
    }
}

#[test]
fn reply_to_overrides_the_row_routing() {
    let mut world = World::new();
    let mut injected = event("msg-op", json!({"text": "from the operator"}));
    injected.reply_to = Some(crate::channels::ReplyAddress {
        channel_type: "cli".into(),
        platform_id: "local".into(),
        thread_id: None,
    });
    world.route(injected);
    let session = world.session("ag-1");
    let row = &world.rows("ag-1", &session)[0];
    assert_eq!(
        (row.channel_type.as_deref(), row.platform_id.as_deref()),
        (Some("cli"), Some("local"))
    );
}

#[test]
fn an_adapter_without_threads_collapses_them_and_a_threaded_one_splits_group_sessions() {
    let (_flat, mut world) = World::with_recorder(false);
    world.route(in_thread(event("m1", json!({"text": "a"})), "t1"));
    let session = world.session("ag-1");
    assert_eq!(world.rows("ag-1", &session)[0].thread_id, None);

    let (_threaded, mut world) = World::with_recorder(true);
    world.route(in_thread(event("m1", json!({"text": "a"})), "t1"));
    world.route(in_thread(event("m2", json!({"text": "b"})), "t2"));
    world.route(in_thread(event("m3", json!({"text": "c"})), "t1"));
    let sessions = world.sessions("ag-1");
    let threads: Vec<Option<&str>> = sessions.iter().map(|s| s.2.as_deref()).collect();
    assert_eq!(
        threads,
        [Some("t1"), Some("t2")],
        "group chat on a threaded adapter: per-thread sessions"
    );
    assert_eq!(world.rows("ag-1", &sessions[0].0).len(), 2);
}

// ---- session manager (through the router) ----

#[test]
fn should_create_session_folder_and_inbound_db_only() {
    // v2's host created both DBs; the host never writes outbound.db now (issue 7): the
    // container creates it at its start.
    let mut world = World::new();
    world.route(event("m", json!({"text": "hi"})));
    let session = world.session("ag-1");
    let dir = world.paths.session("ag-1", &session);
    assert!(!session_db::outbound_path(&dir).exists());
    let tables = |conn: &Connection| -> Vec<String> {
        let mut statement = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let inbound = session_db::open_inbound_container(&dir.join(session_db::INBOUND_FILE)).unwrap();
    expect_test::expect![[r#"["delivered", "destinations", "messages_in", "session_routing"]"#]]
        .assert_eq(&format!("{:?}", tables(inbound.as_connection())));
}

#[test]
fn should_update_last_active_on_message_write() {
    let mut world = World::new();
    world.sql("UPDATE messaging_group_agents SET engage_mode = 'mention'");
    world.route(mention(event("m1", json!({"text": "hi"}))));
    let session = world.session("ag-1");
    let last_active = |world: &World| -> Option<String> {
        world
            .conn
            .query_row(
                "SELECT last_active FROM sessions WHERE id = ?1",
                [&session],
                |row| row.get(0),
            )
            .unwrap()
    };
    let first = last_active(&world).expect("set by the first write");
    world.sql(&format!(
        "UPDATE sessions SET last_active = NULL WHERE id = '{session}'"
    ));
    world.route(event("m2", json!({"text": "not a mention"})));
    assert_eq!(
        last_active(&world),
        None,
        "a dropped message is no activity"
    );
    world.route(mention(event("m3", json!({"text": "hi again"}))));
    assert!(last_active(&world).is_some_and(|again| again >= first));
}

#[test]
fn attachments_land_in_each_agent_s_own_session_inbox() {
    let mut world = World::new();
    world.add_agent("ag-2");
    world.route(event(
        "msg-att",
        json!({"text": "look", "attachments": [{"name": "photo.png", "data": "UE5HQllURVM="}]}),
    ));
    for agent in ["ag-1", "ag-2"] {
        let session = world.session(agent);
        let row_id = format!("msg-att:{agent}");
        let file = world
            .paths
            .session(agent, &session)
            .join("inbox")
            .join(&row_id)
            .join("photo.png");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "PNGBYTES");
        let row = &world.rows(agent, &session)[0];
        assert_eq!(
            row.content["attachments"],
            json!([{"name": "photo.png", "localPath": format!("inbox/{row_id}/photo.png")}])
        );
    }
}

// ---- permissions: access gate, sender scope, unknown-sender policy ----

/// A strict chat wired to `ag-1`, with `telegram:member` a member and `telegram:stranger`
/// known but not a member.
fn strict_world(policy: &str) -> World {
    let world = World::new();
    world.sql(&format!(
        "UPDATE messaging_groups SET unknown_sender_policy = '{policy}';
         INSERT INTO users (id, kind, created_at) VALUES ('discord:member', 'discord', 't'),
           ('discord:stranger', 'discord', 't');
         INSERT INTO agent_group_members (user_id, agent_group_id, added_at) VALUES ('discord:member', 'ag-1', 't');"
    ));
    world
}

#[test]
fn strict_chat_admits_members_and_drops_strangers_with_an_audit() {
    let mut world = strict_world("strict");
    world.route(event(
        "m1",
        json!({"senderId": "stranger", "sender": "Stan", "text": "hi"}),
    ));
    assert!(world.sessions("ag-1").is_empty());
    assert_eq!(
        world.audit("discord", "chan-123"),
        Some((
            "unknown_sender_strict".into(),
            Some("discord:stranger".into()),
            Some("Stan".into()),
            Some("mg-1".into()),
            Some("ag-1".into()),
            1
        ))
    );
    world.route(event("m2", json!({"senderId": "member", "text": "hi"})));
    let session = world.session("ag-1");
    assert_eq!(world.rows("ag-1", &session)[0].id, "m2:ag-1");
}

#[test]
fn unknown_sender_on_a_request_approval_chat_is_audited_as_such() {
    let mut world = strict_world("request_approval");
    world.route(event("m1", json!({"text": "no sender at all"})));
    let (reason, user, ..) = world.audit("discord", "chan-123").unwrap();
    assert_eq!(
        (reason.as_str(), user),
        ("unknown_sender_request_approval", None)
    );
}

#[test]
fn a_new_sender_gets_a_user_row_but_no_access() {
    let mut world = strict_world("strict");
    world.route(event(
        "m1",
        json!({"senderId": "newbie", "senderName": "Nina", "text": "hi"}),
    ));
    let name: Option<String> = world
        .conn
        .query_row(
            "SELECT display_name FROM users WHERE id = 'discord:newbie'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(name.as_deref(), Some("Nina"));
    assert!(world.sessions("ag-1").is_empty());
}

#[test]
fn owners_and_admins_pass_the_access_gate_and_scoped_admins_only_their_agent() {
    let mut world = strict_world("strict");
    world.add_agent("ag-2");
    world.sql(
        "INSERT INTO users (id, kind, created_at) VALUES ('discord:owner', 'discord', 't'), ('discord:sa', 'discord', 't');
         INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES
           ('discord:owner', 'owner', NULL, 't'), ('discord:sa', 'admin', 'ag-2', 't');",
    );
    world.route(event("m1", json!({"senderId": "owner", "text": "hi"})));
    assert_eq!(world.sessions("ag-1").len(), 1);
    assert_eq!(world.sessions("ag-2").len(), 1);
    world.route(event("m2", json!({"senderId": "sa", "text": "hi"})));
    let ag1 = world.session("ag-1");
    let ag2 = world.session("ag-2");
    assert_eq!(
        world.rows("ag-1", &ag1).len(),
        1,
        "scoped admin of ag-2 only"
    );
    assert_eq!(world.rows("ag-2", &ag2).len(), 2);
}

#[test]
fn sender_scope_known_refuses_unknown_senders_even_on_public_chats_without_audit() {
    let mut world = World::new();
    world.sql("UPDATE messaging_group_agents SET sender_scope = 'known', ignored_message_policy = 'accumulate'");
    world.route(event("m1", json!({"senderId": "anyone", "text": "hi"})));
    assert!(
        world.sessions("ag-1").is_empty(),
        "gate-refused messages are not accumulated"
    );
    let (reason, _, _, _, agent, _) = world.audit("discord", "chan-123").unwrap();
    assert_eq!(
        (reason.as_str(), agent),
        ("no_agent_engaged", None),
        "the scope gate records no drop of its own"
    );
}

#[test]
fn an_admin_command_from_a_non_admin_is_answered_not_stored() {
    // Host quirk 1 decided (docs/runtime.md#decisions-on-v2s-quirks): the denial goes straight to
    // the adapter instead of being written into the container-owned outbound.db.
    let (recorder, mut world) = World::with_recorder(false);
    world.route(event(
        "m1",
        json!({"senderId": "u", "text": "/clear please"}),
    ));
    let delivered = recorder.delivered.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].content,
        json!({"text": "Permission denied: /clear requires admin access."})
    );
    assert_eq!(delivered[0].platform_id, "chan-123");
    assert!(world.woken().is_empty());
}

// ---- engage modes and session modes through the router ----

#[test]
fn mention_sticky_keeps_engaging_a_group_chat_after_the_first_mention() {
    let mut world = World::new();
    world.sql("UPDATE messaging_group_agents SET engage_mode = 'mention-sticky'");
    world.route(event("m1", json!({"text": "before"})));
    assert!(world.sessions("ag-1").is_empty());
    world.route(mention(event("m2", json!({"text": "@bot hi"}))));
    world.route(event("m3", json!({"text": "follow-up"})));
    let session = world.session("ag-1");
    let ids: Vec<String> = world
        .rows("ag-1", &session)
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(ids, ["m2:ag-1", "m3:ag-1"]);

    world.sql("UPDATE messaging_groups SET is_group = 0");
    world.route(event("m4", json!({"text": "a DM never sticks"})));
    assert_eq!(world.rows("ag-1", &session).len(), 2);
}

#[test]
fn mention_sticky_subscribes_to_the_thread_in_threaded_group_chats_only() {
    let (threaded, mut world) = World::with_recorder(true);
    world.sql("UPDATE messaging_group_agents SET engage_mode = 'mention-sticky'");
    world.route(mention(in_thread(
        event("m1", json!({"text": "@bot hi"})),
        "t1",
    )));
    world.route(in_thread(event("m2", json!({"text": "more"})), "t1"));
    assert_eq!(
        *threaded.subscribed.lock().unwrap(),
        [
            ("chan-123".to_string(), "t1".to_string()),
            ("chan-123".to_string(), "t1".to_string())
        ],
        "once per engaged message; adapters make it idempotent"
    );
    world.route(mention(event("m3", json!({"text": "@bot no thread"}))));
    world.sql("UPDATE messaging_groups SET is_group = 0");
    world.route(mention(in_thread(
        event("m4", json!({"text": "@bot dm"})),
        "t2",
    )));
    assert_eq!(
        threaded.subscribed.lock().unwrap().len(),
        2,
        "no thread, or not a group: no subscription"
    );
}

#[test]
fn agent_shared_wirings_share_one_session_across_chats() {
    let mut world = World::new();
    world.sql(
        "UPDATE messaging_group_agents SET session_mode = 'agent-shared';
         INSERT INTO messaging_groups (id, channel_type, platform_id, is_group, unknown_sender_policy, created_at)
           VALUES ('mg-2', 'slack', 'C-2', 1, 'public', 't');
         INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, engage_pattern,
           session_mode, created_at) VALUES ('mga-2', 'mg-2', 'ag-1', 'pattern', '.', 'agent-shared', 't');",
    );
    world.route(event("m1", json!({"text": "from discord"})));
    let mut from_slack = event("m2", json!({"text": "from slack"}));
    from_slack.channel_type = "slack".into();
    from_slack.platform_id = "C-2".into();
    world.route(from_slack);
    let session = world.session("ag-1");
    let routes: Vec<(Option<String>, Option<String>)> = world
        .rows("ag-1", &session)
        .into_iter()
        .map(|row| (row.channel_type, row.platform_id))
        .collect();
    assert_eq!(
        routes,
        [
            (Some("discord".into()), Some("chan-123".into())),
            (Some("slack".into()), Some("C-2".into()))
        ],
        "each row keeps its own reply address"
    );
}

#[test]
fn an_admin_may_send_admin_commands() {
    let mut world = strict_world("strict");
    world.sql(
        "INSERT INTO users (id, kind, created_at) VALUES ('discord:boss', 'discord', 't');
         INSERT INTO user_roles (user_id, role, agent_group_id, granted_at) VALUES ('discord:boss', 'admin', 'ag-1', 't');",
    );
    world.route(event("m1", json!({"senderId": "boss", "text": "/clear"})));
    let session = world.session("ag-1");
    assert_eq!(world.rows("ag-1", &session)[0].content["text"], "/clear");
}

#[test]
fn accumulated_context_keeps_its_attachments_too() {
    let mut world = World::new();
    world.sql(
        "UPDATE messaging_group_agents SET engage_mode = 'mention', ignored_message_policy = 'accumulate'",
    );
    world.route(event(
        "m1",
        json!({"text": "", "attachments": [{"type": "photo", "data": "UE5HQllURVM="}]}),
    ));
    let session = world.session("ag-1");
    let row = &world.rows("ag-1", &session)[0];
    assert!(!row.trigger);
    let local = row.content["attachments"][0]["localPath"].as_str().unwrap();
    assert!(
        local.starts_with("inbox/m1:ag-1/attachment-") && local.ends_with(".jpg"),
        "{local}"
    );
    let file = world.paths.session("ag-1", &session).join(local);
    assert_eq!(std::fs::read(file).unwrap(), b"PNGBYTES");
}

#[test]
fn a_message_id_with_a_slash_is_stored_without_extracting_attachments() {
    let mut world = World::new();
    let content = json!({"text": "x", "attachments": [{"name": "a.png", "data": "UE5HQllURVM="}]});
    world.route(event("../../escape", content.clone()));
    let session = world.session("ag-1");
    assert_eq!(world.rows("ag-1", &session)[0].content, content);
    assert!(!world.paths.session("ag-1", &session).join("inbox").exists());
}

#[test]
fn a_batch_acknowledges_each_message_once_it_is_stored() {
    let mut world = World::new();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let (second_tx, second_rx) = tokio::sync::oneshot::channel();
    let mut unknown = event("m2", json!({"text": "unknown chat"}));
    unknown.platform_id = "nowhere".into();
    world.router.route_batch(&mut vec![
        Envelope {
            event: event("m1", json!({"text": "hi"})),
            stored: Some(first_tx),
        },
        Envelope {
            event: unknown,
            stored: Some(second_tx),
        },
    ]);
    assert_eq!(
        first_rx.blocking_recv(),
        Ok(Receipt::Stored {
            answering: vec!["ag-1".into()]
        })
    );
    assert_eq!(
        second_rx.blocking_recv(),
        Ok(Receipt::UnknownChat),
        "the channel can tell its client that nobody will read it"
    );
}

#[test]
fn a_receipt_names_only_the_agents_that_will_answer() {
    let mut world = World::new();
    world
        .conn
        .execute_batch(
            "INSERT INTO agent_groups (id, name, folder, created_at) VALUES ('ag-2', 'Quiet', 'ag-2', 't');
             INSERT INTO messaging_group_agents (id, messaging_group_id, agent_group_id, engage_mode, engage_pattern,
               sender_scope, ignored_message_policy, session_mode, priority, created_at)
               VALUES ('mga-2', 'mg-1', 'ag-2', 'pattern', '^@quiet', 'all', 'accumulate', 'shared', 0, 't');",
        )
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    world.router.route_batch(&mut vec![Envelope {
        event: event("m1", json!({"text": "hi"})),
        stored: Some(tx),
    }]);
    assert_eq!(
        rx.blocking_recv(),
        Ok(Receipt::Stored {
            answering: vec!["ag-1".into()]
        }),
        "ag-2 keeps the message as context and will not answer"
    );
    assert_eq!(world.rows("ag-2", &world.session("ag-2")).len(), 1);
}

#[test]
fn a_redelivered_message_does_not_take_its_batch_neighbours_down() {
    let mut world = World::new();
    world.route(event("m1", json!({"text": "first"})));
    let (again_tx, again_rx) = tokio::sync::oneshot::channel();
    let (next_tx, next_rx) = tokio::sync::oneshot::channel();
    world.router.route_batch(&mut vec![
        Envelope {
            event: event("m1", json!({"text": "first"})),
            stored: Some(again_tx),
        },
        Envelope {
            event: event("m2", json!({"text": "second"})),
            stored: Some(next_tx),
        },
    ]);
    let session = world.session("ag-1");
    let ids: Vec<String> = world
        .rows("ag-1", &session)
        .into_iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(ids, ["m1:ag-1", "m2:ag-1"]);
    let stored = Ok(Receipt::Stored {
        answering: vec!["ag-1".into()],
    });
    assert_eq!(next_rx.blocking_recv(), stored);
    assert_eq!(
        again_rx.blocking_recv(),
        stored,
        "already stored counts as stored"
    );
}
