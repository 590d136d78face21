//! End-to-end tests of the runtime against a real dockerd: `nanoclaw run` as a child process,
//! `nanoclaw chat` and raw socket clients talking to it, real containers running the static
//! agent-runner with the mock provider.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reconciler::channels::cli_protocol::{self, ClientLine, Hello, HostLine, Message, Reply};

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
        Daemon::spawn(env, extra, None, true)
    }

    /// [`Daemon::start_with`], logging what `filter` (`NANOCLAW_LOG`) lets through.
    pub(crate) fn start_logging(env: &'a Env, filter: &str, extra: &[&str]) -> Daemon<'a> {
        Daemon::launch(env, extra, None, true, Some(filter))
    }

    /// `nanoclaw run manifests --image <test image>` plus `extra`; the sweep runs at its
    /// default interval unless `extra` sets one (so a sweep cannot be what saves a test).
    pub(crate) fn start_args(env: &'a Env, extra: &[&str]) -> Daemon<'a> {
        Daemon::spawn(env, extra, None, false)
    }

    /// Starts the runtime with at most `files` open file descriptors (soft and hard limit) and
    /// `extra` arguments.
    pub(crate) fn start_with_fd_limit(env: &'a Env, files: u32, extra: &[&str]) -> Daemon<'a> {
        Daemon::spawn(env, extra, Some(files), true)
    }

    /// `fast_sweep`: a 1 s sweep unless `extra` sets an interval.
    fn spawn(env: &'a Env, extra: &[&str], fd_limit: Option<u32>, fast_sweep: bool) -> Daemon<'a> {
        Daemon::launch(env, extra, fd_limit, fast_sweep, None)
    }

    fn launch(
        env: &'a Env,
        extra: &[&str],
        fd_limit: Option<u32>,
        fast_sweep: bool,
        log_filter: Option<&str>,
    ) -> Daemon<'a> {
        let image = support::agent_image().tag;
        std::fs::create_dir_all(env.data()).expect("data dir");
        let guard = support::DockerGuard::new(&reconciler::paths::slug_of(&env.data()));
        let mut args = vec!["run", "manifests", "--image", image];
        if fast_sweep && !extra.contains(&"--sweep-interval") {
            args.extend(["--sweep-interval", "1s"]);
        }
        args.extend(extra);
        let mut command = match fd_limit {
            Some(files) => env.command_with_fd_limit(files, &args),
            None => env.command(&args),
        };
        if let Some(filter) = log_filter {
            command.env("NANOCLAW_LOG", filter);
        }
        let child = command
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

    /// The daemon's process id (0 once it was stopped).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
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

/// A chat client on the CLI socket speaking the protocol's typed lines: it reads the chat
/// `local` and acknowledges each reply it returns (as `nanoclaw chat` does once it showed one).
pub(crate) struct Client {
    pub(crate) reader: BufReader<UnixStream>,
    pub(crate) writer: UnixStream,
    /// Replies that arrived while waiting for an acknowledgement.
    early: std::collections::VecDeque<Reply>,
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
        client.send_line(&ClientLine::Hello {
            hello: Hello {
                platform_id: Some(platform_id.into()),
                protocol: Some(cli_protocol::VERSION),
            },
        });
        client
    }

    /// Sends a raw JSON line (for bad input).
    pub(crate) fn send(&mut self, value: &serde_json::Value) {
        writeln!(self.writer, "{value}").expect("send");
    }

    pub(crate) fn send_line(&mut self, line: &ClientLine) {
        writeln!(self.writer, "{}", line.to_line()).expect("send");
    }

    /// Sends a message and waits until the runtime says it is stored.
    pub(crate) fn say(&mut self, id: &str, text: &str) {
        self.send_line(&ClientLine::Message(Message {
            text: text.into(),
            id: Some(id.into()),
            platform_id: None,
            mention: None,
        }));
        loop {
            match self.next_line() {
                HostLine::Accepted { accepted, .. } if accepted == id => return,
                HostLine::Reply(reply) => self.early.push_back(reply),
                HostLine::Error { error } => panic!("rejected: {error}"),
                _ => {}
            }
        }
    }

    /// The next line as JSON.
    pub(crate) fn next(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .expect("read from the runtime");
        assert!(read > 0, "the runtime closed the connection");
        serde_json::from_str(&line).expect("JSON line")
    }

    /// The next line of a kind this protocol version knows.
    pub(crate) fn next_line(&mut self) -> HostLine {
        loop {
            if let Some(line) = HostLine::parse(&self.next().to_string()) {
                return line;
            }
        }
    }

    /// The next `{"error": …}` line's text (skipping other lines).
    pub(crate) fn next_error(&mut self) -> String {
        loop {
            if let HostLine::Error { error } = self.next_line() {
                return error;
            }
        }
    }

    /// The next reply (those that arrived during [`Client::say`] first), not acknowledged.
    pub(crate) fn next_reply(&mut self) -> Reply {
        if let Some(reply) = self.early.pop_front() {
            return reply;
        }
        loop {
            if let HostLine::Reply(reply) = self.next_line() {
                return reply;
            }
        }
    }

    /// The next reply as `(text, in_reply_to)`, acknowledged. Fails after [`REPLY_DEADLINE`]
    /// even while other lines keep arriving (each read alone has the socket's timeout), so a
    /// reply that never comes fails the test instead of hanging it.
    pub(crate) fn reply(&mut self) -> (String, String) {
        let started = std::time::Instant::now();
        let reply = match self.early.pop_front() {
            Some(reply) => reply,
            None => loop {
                assert!(
                    started.elapsed() < REPLY_DEADLINE,
                    "no reply within {REPLY_DEADLINE:?}"
                );
                if let HostLine::Reply(reply) = self.next_line() {
                    break reply;
                }
            },
        };
        self.send_line(&ClientLine::Ack {
            ack: reply.id.clone(),
        });
        (reply.text, reply.in_reply_to.unwrap_or_default())
    }
}

/// How long [`Client::reply`] waits for a reply, other lines arriving or not.
const REPLY_DEADLINE: Duration = Duration::from_secs(300);

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

/// `(outbound id, delivery status)` of the reply a session wrote to `message_id`.
/// A reply line's `(text, in_reply_to)`, or `None` for any other line.
pub(crate) fn as_reply(line: &serde_json::Value) -> Option<(String, String)> {
    let text = line.get("text")?.as_str()?;
    let reply_to = line.get("in_reply_to")?.as_str()?;
    Some((text.to_string(), reply_to.to_string()))
}

pub(crate) fn reply_status(
    env: &Env,
    agent: &str,
    message_id: &str,
) -> Option<(String, Option<String>)> {
    let (session, _) = sessions(env)
        .into_iter()
        .find(|(_, owner)| owner == agent)?;
    let dir = env.data().join("sessions").join(agent).join(session);
    let outbound = agent_runner::session_db::open_outbound_host(
        &agent_runner::session_db::outbound_path(&dir),
    )
    .ok()?;
    let id: String = outbound
        .as_connection()
        .query_row(
            "SELECT id FROM messages_out WHERE in_reply_to = ?1",
            [format!("{message_id}:{agent}")],
            |row| row.get(0),
        )
        .ok()?;
    let inbound = agent_runner::session_db::open_inbound_reader(
        &agent_runner::session_db::inbound_path(&dir),
    )
    .ok()?;
    let status = inbound
        .as_connection()
        .query_row(
            "SELECT status FROM delivered WHERE message_out_id = ?1",
            [&id],
            |row| row.get(0),
        )
        .ok();
    Some((id, status))
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
            .join("outbound/.mock/turns.jsonl"),
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
        // A reply counts as delivered once the client acknowledged it and the runtime recorded
        // that; a crash in between (milliseconds) would send it again.
        support::wait_until(
            "the shown reply to be recorded as delivered",
            Duration::from_secs(30),
            || {
                reply_status(&env, "echo", "first")
                    .and_then(|(_, status)| status)
                    .is_some()
            },
        );
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

    // A message on a chat nobody configured is refused, naming the chat; nothing breaks.
    client
        .send(&serde_json::json!({ "text": "anyone?", "id": "lost-1", "platform_id": "nowhere" }));
    assert!(client.next_error().contains("`nowhere`"));

    // A container writing a garbage row: it is recorded failed and skipped; others still flow.
    let (session, _) = sessions(&env).pop().expect("a session");
    let dir = env.data().join("sessions/echo").join(&session);
    {
        let outbound =
            agent_runner::session_db::open_outbound_container(&dir.join("outbound/outbound.db"))
                .expect("outbound");
        outbound
            .as_connection().execute(
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
                .as_connection()
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
            .as_connection().query_row(
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

/// `docker inspect`'s mounts of a container below `/workspace/extra`: (target, source, rw).
fn extra_mounts(container: &str) -> Vec<(String, String, bool)> {
    let output = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Mounts}}", container])
        .output()
        .expect("docker inspect");
    let mounts: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("mounts JSON");
    let mut extra: Vec<(String, String, bool)> = mounts
        .iter()
        .filter_map(|mount| {
            let target = mount["Destination"].as_str()?;
            target.starts_with("/workspace/extra/").then(|| {
                (
                    target.to_string(),
                    mount["Source"].as_str().unwrap_or_default().to_string(),
                    mount["RW"].as_bool().unwrap_or_default(),
                )
            })
        })
        .collect();
    extra.sort();
    extra
}

#[test]
fn issue_7_allowlisted_mounts_are_bound_read_only_or_read_write_and_a_swapped_one_is_left_out() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("mounts");
    let host = env.root.path().join("host");
    for folder in ["ro/docs", "rw/scratch", "rw/swap", "secrets/.ssh"] {
        std::fs::create_dir_all(host.join(folder)).expect("mkdir");
    }
    std::fs::write(host.join("ro/docs/hello.txt"), "hello from the host").expect("write");
    std::fs::write(host.join("secrets/.ssh/id_rsa"), "key").expect("write");
    let real = |relative: &str| {
        std::fs::canonicalize(host.join(relative))
            .expect("real path")
            .display()
            .to_string()
    };
    env.allowlist(&format!(
        "allowed_roots:\n  - path: {}\n  - path: {}\n    allow_read_write: true\n",
        real("ro"),
        real("rw")
    ));
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace(
            "provider: mock\n",
            &format!(
                "provider: mock\nmounts:\n  - {{ host_path: {} }}\n  - {{ host_path: {}, readonly: false }}\n  - {{ host_path: {} }}\n",
                real("ro/docs"),
                real("rw/scratch"),
                real("rw/swap"),
            ),
        ),
    );
    // The agent runs as 10001 when the daemon is root (as in CI): a read-write folder must be
    // writable by that user, as docs/manifests.md tells the operator.
    if rustix::process::geteuid().is_root() {
        let scratch = host.join("rw/scratch");
        rustix::fs::chown(
            &scratch,
            Some(rustix::fs::Uid::from_raw(10001)),
            Some(rustix::fs::Gid::from_raw(10001)),
        )
        .expect("chown");
    }
    let daemon = Daemon::start(&env);
    // Validated and applied; now the third folder becomes a link to a key folder.
    std::fs::remove_dir(host.join("rw/swap")).expect("rmdir");
    std::os::unix::fs::symlink(host.join("secrets/.ssh"), host.join("rw/swap")).expect("symlink");

    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello", "{}", daemon.log());
    let containers = daemon.containers();
    assert_eq!(containers.len(), 1, "{}", daemon.log());
    let container = &containers[0];
    assert_eq!(
        extra_mounts(container),
        [
            ("/workspace/extra/docs".to_string(), real("ro/docs"), false),
            (
                "/workspace/extra/scratch".to_string(),
                real("rw/scratch"),
                true
            ),
        ],
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains("additional mount refused") && log.contains(".ssh"),
        "the refusal is logged with its reason:\n{log}"
    );

    // Inside the container, the agent itself writes: the read-only mount refuses, the
    // read-write one takes it and the file appears on the host. (`docker cp` cannot show this:
    // it refuses a nested read-write mount below the read-only `/workspace`.)
    client.say("m2", "!try write /workspace/extra/docs/note.txt");
    let (refused, _) = client.reply();
    assert!(
        refused.contains("refused") && refused.contains("Read-only"),
        "{refused}"
    );
    assert!(!host.join("ro/docs/note.txt").exists());
    client.say("m3", "!try write /workspace/extra/scratch/note.txt");
    let (written, _) = client.reply();
    assert_eq!(
        written,
        "try write: wrote `/workspace/extra/scratch/note.txt`",
        "{}",
        daemon.log()
    );
    assert_eq!(
        std::fs::read_to_string(host.join("rw/scratch/note.txt")).expect("written through"),
        "written by the agent"
    );
    let listing = std::process::Command::new("docker")
        .args([
            "cp",
            &format!("{container}:/workspace/extra/docs/hello.txt"),
            "-",
        ])
        .output()
        .expect("docker cp out");
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("hello from the host"),
        "the host file is visible inside the container"
    );
}

/// An agent `intruder` with small limits on chat `attack`, and `bystander` on chat `calm`.
const CONFINED_AGENTS: &str = "\
kind: agent
name: intruder
provider: mock
resources: {memory: 64m, cpus: 0.5, pids: 64}
---
kind: agent
name: bystander
provider: mock
---
kind: channel
name: attack
channel_type: cli
platform_id: attack
unknown_sender_policy: public
wirings:
  - { agent: intruder, engage_mode: pattern, engage_pattern: \".\" }
---
kind: channel
name: calm
channel_type: cli
platform_id: calm
unknown_sender_policy: public
wirings:
  - { agent: bystander, engage_mode: pattern, engage_pattern: \".\" }
";

/// Sends one message on a CLI channel and returns the reply (the daemon log on failure).
#[track_caller]
fn ask(env: &Env, daemon: &Daemon, channel: &str, text: &str) -> String {
    let run = env.run(&["chat", channel, "--message", text, "--timeout", "60s"]);
    assert_eq!(
        run.code,
        0,
        "{channel} <- {text}: {}\n{}",
        run.stderr,
        daemon.log()
    );
    run.stdout.trim().to_string()
}

#[test]
fn an_agent_attacking_its_container_is_contained_while_others_keep_answering() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("confined");
    env.write("agents.yaml", CONFINED_AGENTS);
    let mut daemon = Daemon::start(&env);
    assert_eq!(ask(&env, &daemon, "calm", "hello"), "echo: hello");

    // The manifest's limits reach the container, with the rest of the confinement.
    assert_eq!(
        ask(&env, &daemon, "attack", "!try mount"),
        "try mount: refused: Operation not permitted (os error 1)"
    );
    let (session, _) = sessions(&env)
        .into_iter()
        .find(|(_, agent)| agent == "intruder")
        .expect("the intruder's session");
    let slug = reconciler::paths::slug_of(&env.data());
    let container = crate::containers::inspect(&format!("nanoclaw-{slug}-{session}"));
    crate::containers::assert_confined(&container, 64 << 20, 500, 64);

    assert_eq!(
        ask(&env, &daemon, "attack", "!try chown"),
        "try chown: refused: Operation not permitted (os error 1)"
    );
    assert_eq!(
        ask(&env, &daemon, "attack", "!try write-root"),
        "try write-root: refused: Read-only file system (os error 30); / is mounted read-only"
    );
    assert_eq!(
        ask(&env, &daemon, "attack", "!try docker-socket"),
        "try docker-socket: refused: /var/run/docker.sock: No such file or directory (os error 2); \
         /run/docker.sock: No such file or directory (os error 2)"
    );
    let fork_bomb = ask(&env, &daemon, "attack", "!try fork-bomb");
    let started: usize = fork_bomb
        .strip_prefix("try fork-bomb: contained: ")
        .and_then(|rest| rest.split_once(" threads started, then: "))
        .map(|(count, _)| count.parse().expect("a thread count"))
        .unwrap_or_else(|| panic!("the fork bomb is stopped: {fork_bomb}"));
    assert!(started < 64, "stopped at the pids limit of 64: {fork_bomb}");
    assert_eq!(
        ask(&env, &daemon, "attack", "and after it?"),
        "echo: and after it?",
        "the agent itself survives its fork bomb"
    );

    // The memory hog is killed inside its container, not on the host.
    let run = env.run(&[
        "chat",
        "attack",
        "--message",
        "!try memory-hog",
        "--replies",
        "0",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    support::wait_until(
        "the memory hog's container to be killed at its limit",
        Duration::from_secs(60),
        || daemon.log().contains("out of memory"),
    );
    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| line.contains("out of memory"))
        .expect("an out-of-memory line");
    assert!(
        line.contains(&session),
        "the line names the session: {line}"
    );
    assert_eq!(
        ask(&env, &daemon, "calm", "still there?"),
        "echo: still there?",
        "another agent keeps answering"
    );
    assert_eq!(daemon.stop(), 0, "the daemon stayed up\n{}", daemon.log());
}
