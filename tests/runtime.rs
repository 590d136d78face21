//! End-to-end tests of the runtime against a real dockerd: `nanoclaw run` as a child process,
//! `nanoclaw chat` and raw socket clients talking to it, real containers running the static
//! agent-runner with the mock provider.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Env};

/// A running `nanoclaw run`; SIGTERM and wait on drop; its guard removes what it left.
pub(crate) struct Daemon<'a> {
    env: &'a Env,
    child: Option<Child>,
    guard: support::DockerGuard,
}

pub(crate) const CLI_AGENT: &str = "\
kind: agent
name: echo
provider: mock
---
kind: channel
name: terminal
channel_type: cli
platform_id: local
unknown_sender_policy: public
wirings:
  - agent: echo
    engage_mode: pattern
    engage_pattern: \".\"
";

impl<'a> Daemon<'a> {
    pub(crate) fn start(env: &'a Env) -> Daemon<'a> {
        Daemon::start_with(env, &[])
    }

    pub(crate) fn start_with(env: &'a Env, extra: &[&str]) -> Daemon<'a> {
        Daemon::start_args(env, &[&["--sweep-interval", "1s"], extra].concat())
    }

    /// `nanoclaw run manifests --image <test image>` plus `extra` (the sweep runs at its
    /// default interval unless `extra` sets one).
    pub(crate) fn start_args(env: &'a Env, extra: &[&str]) -> Daemon<'a> {
        let image = support::agent_image().tag;
        std::fs::create_dir_all(env.data()).expect("data dir");
        let guard = support::DockerGuard::new(&reconciler::paths::slug_of(&env.data()));
        let child = env
            .command(&[&["run", "manifests", "--image", image], extra].concat())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(env.root.path().join("run.log")).expect("log file"),
            ))
            .spawn()
            .expect("start nanoclaw run");
        let daemon = Daemon {
            env,
            child: Some(child),
            guard,
        };
        let socket = env.data().join("cli.sock");
        support::wait_until("the runtime to listen", Duration::from_secs(60), || {
            UnixStream::connect(&socket).is_ok()
        });
        daemon
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.env.root.path().join("run.log")).unwrap_or_default()
    }

    /// SIGTERM, wait for a clean exit; returns the exit code.
    pub(crate) fn stop(&mut self) -> i32 {
        let Some(mut child) = self.child.take() else {
            return 0;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("nanoclaw run did not stop within 30 s\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: a crash.
    pub(crate) fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Daemon<'_> {
    pub(crate) fn containers(&self) -> Vec<String> {
        self.guard.containers()
    }
}

impl Drop for Daemon<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// A raw chat client on the CLI socket.
pub(crate) struct Client {
    pub(crate) reader: BufReader<UnixStream>,
    pub(crate) writer: UnixStream,
    /// Replies that arrived while waiting for an acknowledgement.
    pub(crate) early: std::collections::VecDeque<(String, String)>,
}

impl Client {
    pub(crate) fn connect(env: &Env) -> Client {
        Client::connect_to(env, "local")
    }

    /// A client reading the replies of CLI chat `platform_id`.
    pub(crate) fn connect_to(env: &Env, platform_id: &str) -> Client {
        let stream = UnixStream::connect(env.data().join("cli.sock")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            early: std::collections::VecDeque::new(),
        };
        client.send(&serde_json::json!({ "hello": { "platform_id": platform_id } }));
        client
    }

    pub(crate) fn send(&mut self, value: &serde_json::Value) {
        writeln!(self.writer, "{value}").expect("send");
    }

    /// Sends a message and waits until the runtime says it is stored.
    pub(crate) fn say(&mut self, id: &str, text: &str) {
        self.send(&serde_json::json!({ "text": text, "id": id }));
        loop {
            let line = self.next();
            if line.get("accepted").and_then(|v| v.as_str()) == Some(id) {
                return;
            }
            if let Some(reply) = as_reply(&line) {
                self.early.push_back(reply);
            }
            assert!(line.get("error").is_none(), "rejected: {line}");
        }
    }

    pub(crate) fn next(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .expect("read from the runtime");
        assert!(read > 0, "the runtime closed the connection");
        serde_json::from_str(&line).expect("JSON line")
    }

    /// Next reply text (skipping acks).
    pub(crate) fn reply(&mut self) -> (String, String) {
        if let Some(reply) = self.early.pop_front() {
            return reply;
        }
        loop {
            if let Some(reply) = as_reply(&self.next()) {
                return reply;
            }
        }
    }
}

pub(crate) fn as_reply(line: &serde_json::Value) -> Option<(String, String)> {
    let text = line.get("text")?.as_str()?;
    let reply_to = line.get("in_reply_to")?.as_str()?;
    Some((text.to_string(), reply_to.to_string()))
}

pub(crate) fn sessions(env: &Env) -> Vec<(String, String)> {
    let conn = reconciler::db::open_readonly(&env.db()).expect("open db");
    let mut statement = conn
        .prepare("SELECT id, agent_group_id FROM sessions ORDER BY agent_group_id")
        .expect("query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("sessions")
}

#[test]
fn chat_round_trip_through_a_real_container() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("roundtrip");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start(&env);
    let run = env.run(&["chat", "--message", "hello there", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "chat failed: {}\n{}", run.stderr, daemon.log());
    assert_eq!(run.stdout.trim(), "echo: hello there");
    assert_eq!(
        daemon.containers().len(),
        1,
        "one container for the session"
    );
    assert_eq!(daemon.stop(), 0, "clean shutdown\n{}", daemon.log());
    assert!(
        daemon.containers().is_empty(),
        "shutdown leaves no containers behind"
    );
}

#[test]
fn fan_out_to_two_agents_makes_two_sessions_and_two_containers() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("fanout");
    env.write(
        "agents.yaml",
        "kind: agent\nname: alpha\nprovider: mock\n---\nkind: agent\nname: beta\nprovider: mock\n---\n\
         kind: channel\nname: terminal\nchannel_type: cli\nplatform_id: local\nunknown_sender_policy: public\n\
         wirings:\n  - { agent: alpha, engage_mode: pattern, engage_pattern: \".\" }\n  - { agent: beta, engage_mode: pattern, engage_pattern: \".\" }\n",
    );
    let daemon = Daemon::start(&env);
    let run = env.run(&[
        "chat",
        "--message",
        "both of you",
        "--replies",
        "2",
        "--timeout",
        "60s",
    ]);
    assert_eq!(run.code, 0, "chat failed: {}\n{}", run.stderr, daemon.log());
    assert_eq!(run.stdout, "echo: both of you\necho: both of you\n");
    let agents: Vec<String> = sessions(&env).into_iter().map(|(_, agent)| agent).collect();
    assert_eq!(agents, ["alpha", "beta"]);
    assert_eq!(daemon.containers().len(), 2);
}

#[test]
fn accumulated_context_reaches_the_agent_with_the_trigger() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("accumulate");
    env.write(
        "agents.yaml",
        "kind: agent\nname: bot\nprovider: mock\n---\n\
         kind: channel\nname: terminal\nchannel_type: cli\nplatform_id: local\nunknown_sender_policy: public\n\
         wirings:\n  - { agent: bot, engage_mode: pattern, engage_pattern: \"^@bot\", ignored_message_policy: accumulate }\n",
    );
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("ctx-1", "the sky is green today");
    client.say("go-1", "@bot what colour is the sky?");
    let (text, reply_to) = client.reply();
    assert_eq!(
        text,
        "echo: the sky is green today\necho: @bot what colour is the sky?"
    );
    assert_eq!(reply_to, "go-1:bot");
    let (session, _) = sessions(&env).pop().expect("a session");
    let turns = std::fs::read_to_string(
        env.data()
            .join("sessions/bot")
            .join(&session)
            .join(".mock/turns.jsonl"),
    )
    .unwrap_or_else(|err| panic!("mock turns log: {err}\n{}", daemon.log()));
    let first: serde_json::Value =
        serde_json::from_str(turns.lines().next().expect("a turn")).expect("json");
    let prompt = first["prompt"].as_str().expect("prompt");
    assert!(
        prompt.contains("the sky is green today"),
        "context row missing from the prompt:\n{prompt}"
    );
    assert!(prompt.contains("what colour is the sky?"), "{prompt}");
}

#[test]
fn a_burst_of_50_messages_is_answered_once_each_in_order() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("burst");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    for n in 0..50 {
        client.say(&format!("m{n:02}"), &format!("message {n:02}"));
    }
    // Messages that arrive together are one turn: the mock answers a turn with one reply
    // holding an `echo:` line per message, so count lines, not replies.
    let mut echoed: Vec<String> = Vec::new();
    let mut replies = Vec::new();
    while echoed.len() < 50 {
        let (text, reply_to) = client.reply();
        echoed.extend(text.lines().map(str::to_string));
        replies.push(reply_to);
    }
    let expected: Vec<String> = (0..50).map(|n| format!("echo: message {n:02}")).collect();
    assert_eq!(
        echoed,
        expected,
        "each answered exactly once, in order\n{}",
        daemon.log()
    );
    // A reply answers the newest message of its turn, so the replies' targets are increasing.
    let mut sorted = replies.clone();
    sorted.sort();
    assert_eq!(replies, sorted, "replies come back in message order");
}

#[test]
fn a_host_crash_mid_conversation_loses_nothing() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("restart");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start(&env);
    {
        let mut client = Client::connect(&env);
        client.say("first", "first message");
        assert_eq!(client.reply().0, "echo: first message");
        // Stored (accepted) but the host dies before the reply can be delivered.
        client.say("second", "second message");
    }
    daemon.crash();
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    let (text, reply_to) = client.reply();
    assert_eq!(
        (text.as_str(), reply_to.as_str()),
        ("echo: second message", "second:echo"),
        "{}",
        daemon.log()
    );
    client.say("third", "third message");
    assert_eq!(client.reply().0, "echo: third message");
}

#[test]
fn run_refuses_to_start_on_invalid_manifests() {
    let env = Env::new("run-invalid");
    env.write(
        "agents.yaml",
        "kind: agent\nname: Bad_Name\nprovider: mock\n",
    );
    let run = env.run(&["run", "manifests"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("agents.yaml:2:"),
        "diagnostic names file and line: {}",
        run.stderr
    );
    assert!(run.stderr.contains("refusing to start"), "{}", run.stderr);
    assert!(!env.data().join("cli.sock").exists(), "nothing was started");
    assert!(!env.db().exists(), "nothing was applied");
}

#[test]
fn bad_input_is_logged_and_never_stops_the_loop() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("bad-input");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("warm", "first");
    assert_eq!(client.reply().0, "echo: first");

    // Malformed, oversized and empty lines are answered with an error; the connection lives.
    writeln!(client.writer, "this is not json").expect("send");
    assert!(
        client.next()["error"]
            .as_str()
            .expect("error")
            .contains("malformed")
    );
    writeln!(client.writer, "{{\"text\": \"{}\"}}", "x".repeat(70 * 1024)).expect("send");
    assert!(
        client.next()["error"]
            .as_str()
            .expect("error")
            .contains("longer than")
    );
    client.send(&serde_json::json!({ "text": "   " }));
    assert!(
        client.next()["error"]
            .as_str()
            .expect("error")
            .contains("empty")
    );
    client.send(&serde_json::json!({ "text": "x", "id": "../escape" }));
    assert!(
        client.next()["error"]
            .as_str()
            .expect("error")
            .contains("may only use")
    );

    // A message on a chat nobody configured is ignored (stored nowhere, nothing breaks).
    client
        .send(&serde_json::json!({ "text": "anyone?", "id": "lost-1", "platform_id": "nowhere" }));
    assert_eq!(client.next()["accepted"], "lost-1");

    // A container writing a garbage row: it is retried, then marked failed; others still flow.
    let (session, _) = sessions(&env).pop().expect("a session");
    let dir = env.data().join("sessions/echo").join(&session);
    {
        let outbound = agent_runner::session_db::open_outbound_container(&dir.join("outbound.db"))
            .expect("outbound");
        outbound
            .execute(
                "INSERT INTO messages_out (id, seq, timestamp, kind, platform_id, channel_type, content)
                 VALUES ('garbage-1', 100001, datetime('now'), 'chat', 'local', 'cli', '{not json')",
                [],
            )
            .expect("insert garbage");
    }
    client.say("after", "after the garbage");
    assert_eq!(client.reply().0, "echo: after the garbage");
    support::wait_until(
        "the garbage row to be marked failed",
        Duration::from_secs(30),
        || {
            let inbound = agent_runner::session_db::open_inbound_host(&dir.join("inbound.db"))
                .expect("inbound");
            inbound
                .query_row(
                    "SELECT status FROM delivered WHERE message_out_id = 'garbage-1'",
                    [],
                    |row| row.get::<_, String>(0),
                )
                .is_ok_and(|status| status == "failed")
        },
    );
    assert!(
        daemon.log().contains("garbage-1"),
        "the bad row is logged with its id"
    );
}

#[test]
fn at_the_container_limit_an_idle_container_makes_room() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("limit");
    env.write(
        "agents.yaml",
        "kind: agent\nname: echo\nprovider: mock\n---\n\
         kind: channel\nname: one\nchannel_type: cli\nplatform_id: one\nunknown_sender_policy: public\n\
         wirings:\n  - { agent: echo, engage_mode: pattern, engage_pattern: \".\" }\n---\n\
         kind: channel\nname: two\nchannel_type: cli\nplatform_id: two\nunknown_sender_policy: public\n\
         wirings:\n  - { agent: echo, engage_mode: pattern, engage_pattern: \".\" }\n",
    );
    let daemon = Daemon::start_with(&env, &["--max-containers", "1"]);
    for chat in ["one", "two", "one"] {
        let run = env.run(&[
            "chat",
            chat,
            "--message",
            &format!("hi {chat}"),
            "--timeout",
            "60s",
        ]);
        assert_eq!(run.code, 0, "chat {chat}: {}\n{}", run.stderr, daemon.log());
        assert_eq!(run.stdout.trim(), format!("echo: hi {chat}"));
        assert_eq!(daemon.containers().len(), 1, "never more than the limit");
    }
    assert_eq!(sessions(&env).len(), 2);
    assert!(
        daemon
            .log()
            .contains("least recently active idle container")
    );
}

#[test]
fn idle_containers_are_stopped_and_come_back_on_the_next_message() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("idle");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start_with(&env, &["--idle-timeout", "2s"]);
    let run = env.run(&["chat", "--message", "before", "--timeout", "60s"]);
    assert_eq!(run.stdout.trim(), "echo: before", "{}", run.stderr);
    support::wait_until(
        "the idle container to be stopped",
        Duration::from_secs(30),
        || daemon.containers().is_empty(),
    );
    let run = env.run(&["chat", "--message", "after", "--timeout", "60s"]);
    assert_eq!(
        run.stdout.trim(),
        "echo: after",
        "{}\n{}",
        run.stderr,
        daemon.log()
    );
    assert!(daemon.log().contains("idle: stopping container"));
}

#[test]
fn the_agent_sees_its_configured_provider_and_model() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("mock-config");
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace(
            "provider: mock\n",
            "provider: mock\nmodel: test-model-7\nassistant_name: Echo\n",
        ),
    );
    let daemon = Daemon::start(&env);
    let run = env.run(&[
        "chat",
        "--message",
        "show me your !config",
        "--timeout",
        "60s",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    let config: serde_json::Value =
        serde_json::from_str(run.stdout.trim()).expect("the mock answers with its config JSON");
    assert_eq!(config["provider"], "mock");
    assert_eq!(config["model"], "test-model-7");
    assert_eq!(config["assistant_name"], "Echo");
}

#[test]
fn kept_containers_survive_shutdown_and_are_reaped_at_the_next_start() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("keep");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start_with(&env, &["--keep-containers"]);
    let run = env.run(&["chat", "--message", "hi", "--timeout", "60s"]);
    assert_eq!(run.stdout.trim(), "echo: hi", "{}", run.stderr);
    assert_eq!(daemon.stop(), 0);
    assert_eq!(
        daemon.containers().len(),
        1,
        "--keep-containers leaves the container running"
    );
    let daemon = Daemon::start(&env);
    assert!(
        daemon.containers().is_empty(),
        "startup removes this install's leftovers\n{}",
        daemon.log()
    );
    let run = env.run(&["chat", "--message", "again", "--timeout", "60s"]);
    assert_eq!(run.stdout.trim(), "echo: again", "{}", run.stderr);
}

#[test]
fn agents_message_each_other_through_their_destinations() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("a2a");
    env.write(
        "agents.yaml",
        "kind: agent\nname: front\nprovider: mock\ndestinations:\n  - { name: helper, agent: helper }\n---\n\
         kind: agent\nname: helper\nprovider: mock\ndestinations:\n  - { name: front, agent: front }\n---\n\
         kind: channel\nname: terminal\nchannel_type: cli\nplatform_id: local\nunknown_sender_policy: public\n\
         wirings:\n  - { agent: front, engage_mode: pattern, engage_pattern: \".\" }\n",
    );
    let daemon = Daemon::start(&env);
    let run = env.run(&[
        "chat",
        "--message",
        "!tell helper what is 2+2?",
        "--replies",
        "0",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // front → helper (a new session without a chat) → helper's echo → back to front's session.
    let front_session = || {
        sessions(&env)
            .into_iter()
            .find(|(_, agent)| agent == "front")
            .map(|(id, _)| id)
    };
    support::wait_until(
        "the helper's answer to reach front's session",
        Duration::from_secs(60),
        || {
            let Some(session) = front_session() else {
                return false;
            };
            let path = env
                .data()
                .join("sessions/front")
                .join(session)
                .join("inbound.db");
            let Ok(inbound) = agent_runner::session_db::open_inbound_host(&path) else {
                return false;
            };
            inbound
            .query_row(
                "SELECT content FROM messages_in WHERE channel_type = 'agent' AND platform_id = 'helper'",
                [],
                |row| row.get::<_, String>(0),
            )
            .is_ok_and(|content| content.contains("echo: what is 2+2?"))
        },
    );
    let conn = reconciler::db::open_readonly(&env.db()).expect("db");
    let helper_chat: Option<String> = conn
        .query_row(
            "SELECT messaging_group_id FROM sessions WHERE agent_group_id = 'helper'",
            [],
            |row| row.get(0),
        )
        .expect("helper has a session");
    assert_eq!(helper_chat, None, "an agent-only session has no chat");
    assert_eq!(daemon.containers().len(), 2, "{}", daemon.log());
}

#[test]
fn a_chat_is_told_when_its_agent_cannot_start() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("cannot-start");
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace(
            "provider: mock\n",
            "provider: mock\nimage: nanoclaw-no-such-image:1\n",
        ),
    );
    let daemon = Daemon::start(&env);
    let run = env.run(&["chat", "--message", "anyone there?", "--timeout", "10s"]);
    assert_eq!(run.code, 1, "no reply can come: {run:?}");
    assert!(
        run.stderr.contains("could not be started"),
        "the chat is told why: {}",
        run.stderr
    );
    assert!(run.stderr.contains("no reply within"), "{}", run.stderr);
    assert!(
        daemon.log().contains("nanoclaw-no-such-image"),
        "the log names the missing image"
    );
    // The message is kept for the sweep, not dropped.
    let (session, _) = sessions(&env).pop().expect("a session");
    let inbound = agent_runner::session_db::open_inbound_host(
        &env.data()
            .join("sessions/echo")
            .join(session)
            .join("inbound.db"),
    )
    .expect("inbound");
    assert_eq!(
        agent_runner::session_db::count_due(&inbound).expect("count"),
        1
    );
}

#[test]
fn a_clean_shutdown_is_not_reported_as_unclean_at_the_next_start() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("cleanstop");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start(&env);
    let run = env.run(&["chat", "--message", "hello", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "chat failed: {}\n{}", run.stderr, daemon.log());
    assert_eq!(daemon.stop(), 0, "clean shutdown\n{}", daemon.log());
    let conn = reconciler::db::open_readonly(&env.db()).expect("open db");
    let running: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sessions WHERE container_status != 'stopped'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(running, 0, "sessions still marked running after shutdown");
}
