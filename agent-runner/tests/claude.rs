//! The `claude` provider end to end, without Docker: the real `agent-runner` binary with
//! `provider: claude` drives the real Claude Code CLI (npm-installed by
//! `tests/support/claude_code.rs`, run as a non-root user when the tests run as root, as in the
//! container) against the fake Anthropic API (`tests/support/fake_anthropic.rs`), through the
//! poll loop: chat rows in `inbound.db`, replies in `outbound.db`, the hooks calling this binary
//! back in hook mode. The production-image (Docker) tests of the same path are the host's.

#![allow(clippy::unwrap_used, clippy::print_stderr)] // test binary: a failed setup step is a failed test

#[path = "../../tests/support/fake_anthropic.rs"]
mod fake_anthropic;

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent_runner::providers::claude::hooks;
use agent_runner::session_db::{self, DestinationRow, NewInbound};
use fake_anthropic::{FakeAnthropic, Reply, Script, When, last_user_message, tool_results};
use serde_json::{Value, json};
use support::wait_until;

/// The uid Claude Code and the runner run as when the tests run as root (Claude Code refuses
/// `bypassPermissions` as root; the container's user is not root either).
const NOBODY: u32 = 65534;
/// Longest wait for one answer through Claude Code.
const ANSWER: Duration = Duration::from_secs(120);

/// A session folder as the host lays it out, plus Claude Code's state folder, a home and a
/// temporary folder, all owned by the user the runner runs as.
struct Session {
    root: tempfile::TempDir,
}

impl Session {
    fn new(config: Value) -> Session {
        let root = tempfile::Builder::new()
            .prefix("nanoclaw-claude-provider-")
            .tempdir()
            .unwrap();
        let session = Session { root };
        let ws = session.workspace();
        std::fs::create_dir_all(ws.join("agent")).unwrap();
        std::fs::create_dir_all(session_db::outbound_dir(&ws)).unwrap();
        for dir in ["claude-state", "home", "tmp"] {
            std::fs::create_dir_all(session.root.path().join(dir)).unwrap();
        }
        session_db::create_inbound(&ws).unwrap();
        std::fs::write(session_db::container_config_path(&ws), config.to_string()).unwrap();
        let runner = env!("CARGO_BIN_EXE_agent-runner");
        std::fs::write(
            ws.join(hooks::SETTINGS_FILE),
            serde_json::to_string_pretty(&hooks::settings_json(runner)).unwrap(),
        )
        .unwrap();
        let mut inbound = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
        session_db::write_destinations(
            &mut inbound,
            &[DestinationRow {
                name: "cli".into(),
                kind: "channel".into(),
                channel_type: Some("cli".into()),
                platform_id: Some("local".into()),
                ..DestinationRow::default()
            }],
        )
        .unwrap();
        session_db::write_session_routing(&inbound, Some("cli"), Some("local"), None).unwrap();
        drop(inbound);
        if rustix::process::geteuid().is_root() {
            chown_tree(session.root.path());
        }
        session
    }

    fn workspace(&self) -> PathBuf {
        self.root.path().join("ws")
    }

    fn state_dir(&self) -> PathBuf {
        self.root.path().join("claude-state")
    }

    /// Inserts a chat message from the CLI user (as the host does).
    fn send(&self, id: &str, text: &str) {
        let mut inbound =
            session_db::open_inbound_host(&self.workspace().join("inbound.db")).unwrap();
        session_db::insert_inbound(
            &mut inbound,
            &[NewInbound {
                id: id.into(),
                kind: "chat".into(),
                timestamp: "2026-06-15T12:00:00Z".into(),
                channel_type: Some("cli".into()),
                platform_id: Some("local".into()),
                content: json!({"sender": "me", "text": text}).to_string(),
                trigger: true,
                ..NewInbound::default()
            }],
        )
        .unwrap();
    }

    /// The texts the runner wrote for delivery, oldest first.
    fn replies(&self) -> Vec<String> {
        let ws = self.workspace();
        let inbound = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
        let Ok(outbound) = session_db::open_outbound_host(&session_db::outbound_path(&ws)) else {
            return Vec::new();
        };
        let Ok(due) = session_db::due_outbound(&inbound, &outbound, 0) else {
            return Vec::new();
        };
        due.into_iter()
            .map(|due| {
                let session_db::Due::Row(row) = due else {
                    panic!("a bad row: {due:?}")
                };
                let content: Value = serde_json::from_str(&row.content).unwrap();
                content["text"].as_str().unwrap().to_string()
            })
            .collect()
    }

    #[track_caller]
    fn wait_for_replies(&self, n: usize) -> Vec<String> {
        wait_until(&format!("{n} replies"), ANSWER, || {
            self.replies().len() >= n
        });
        self.replies()
    }

    fn container_state(&self) -> Option<session_db::ContainerState> {
        let path = session_db::outbound_path(&self.workspace());
        let outbound = session_db::open_outbound_host(&path).ok()?;
        session_db::container_state(&outbound).ok().flatten()
    }

    /// Ids of the messages the runner holds `processing`.
    fn claims(&self) -> Vec<String> {
        let ws = self.workspace();
        let inbound = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
        let outbound = session_db::open_outbound_host(&session_db::outbound_path(&ws)).unwrap();
        session_db::processing_claims(&inbound, &outbound)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    fn continuation(&self) -> Option<String> {
        let path = session_db::outbound_path(&self.workspace());
        let outbound = session_db::open_outbound_container(&path).ok()?;
        session_db::container::continuation(&outbound, "claude").unwrap()
    }

    /// Stores a continuation as an earlier container would have.
    fn store_continuation(&self, id: &str) {
        let path = session_db::outbound_path(&self.workspace());
        let outbound = session_db::open_outbound_container(&path).unwrap();
        session_db::container::set_continuation(&outbound, "claude", id).unwrap();
        drop(outbound);
        if rustix::process::geteuid().is_root() {
            chown_tree(&session_db::outbound_dir(&self.workspace()));
        }
    }

    /// Starts the runner, with a fresh home and temporary folder named `run`: only the
    /// session folder and Claude Code's state folder carry over between runs, as between
    /// containers.
    fn start(&self, claude: &Path, fake: &FakeAnthropic, run: &str) -> Runner {
        self.start_with(claude, fake, run, &[])
    }

    /// [`Session::start`] with more environment for the runner (and so Claude Code).
    fn start_with(
        &self,
        claude: &Path,
        fake: &FakeAnthropic,
        run: &str,
        env: &[(&str, &str)],
    ) -> Runner {
        let home = self.root.path().join("home").join(run);
        let tmp = self.root.path().join("tmp").join(run);
        for dir in [&home, &tmp] {
            std::fs::create_dir_all(dir).unwrap();
            if rustix::process::geteuid().is_root() {
                std::os::unix::fs::chown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
        let runner = env!("CARGO_BIN_EXE_agent-runner");
        let mut command = if rustix::process::geteuid().is_root() {
            let mut command = Command::new("setpriv");
            command
                .arg(format!("--reuid={NOBODY}"))
                .arg(format!("--regid={NOBODY}"))
                .arg("--clear-groups")
                .arg(runner);
            command
        } else {
            Command::new(runner)
        };
        let log = self.root.path().join(format!("runner-{run}.log"));
        command
            .arg("--workspace")
            .arg(self.workspace())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env("TMPDIR", &tmp)
            .env("TZ", "UTC")
            .env("RUST_LOG", "info")
            .env("NANOCLAW_CLAUDE_CODE", claude)
            .env("NANOCLAW_CLAUDE_CONFIG_DIR", self.state_dir())
            // Straight to the fake; the credential path is tested in tests/claude_code.rs.
            .env("ANTHROPIC_BASE_URL", fake.url())
            .env("ANTHROPIC_API_KEY", "nanoclaw-placeholder-test")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (name, value) in env {
            command.env(name, value);
        }
        Runner {
            child: command.spawn().unwrap(),
            log,
        }
    }
}

fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

/// A running `agent-runner`; killed on drop, its log printed when a test fails.
struct Runner {
    child: Child,
    log: PathBuf,
}

impl Runner {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> Option<i32> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let code = self.child.wait().unwrap().code();
        eprintln!("runner log:\n{}", self.log());
        code
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("runner log:\n{}", self.log());
        }
    }
}

fn config() -> Value {
    json!({"provider": "claude", "assistantName": "Andy", "model": "claude-sonnet-4-5"})
}

/// What the fake's messages requests said, per request: the last user text or tool result.
fn last_user_texts(fake: &FakeAnthropic) -> Vec<String> {
    fake.messages_requests()
        .iter()
        .map(|request| {
            let message = last_user_message(&request.body)
                .cloned()
                .unwrap_or_default();
            let results = tool_results(&message);
            if results.is_empty() {
                fake_anthropic::user_text(&message)
            } else {
                results.join("\n")
            }
        })
        .collect()
}

#[test]
fn claude_provider_answers_a_chat_message_through_the_poll_loop() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(
        Script::new()
            .once(
                When::LastUserContains("hello".into()),
                Reply::text("<message to=\"cli\">Hello from Claude.</message>"),
            )
            .fallback(Reply::text("unexpected request")),
    );
    // An MCP server nobody listens on: Claude Code reports it failed and runs on.
    let mut config = config();
    config["mcpServers"] = json!({"notes": {"url": "http://127.0.0.1:9/mcp"}});
    let session = Session::new(config);
    session.send("m1", "hello");
    let runner = session.start(claude, &fake, "one");
    assert_eq!(
        session.wait_for_replies(1),
        ["Hello from Claude."],
        "{}",
        runner.log()
    );
    let requests = fake.messages_requests();
    let request = &requests[0];
    assert_eq!(request.body["model"], "claude-sonnet-4-5");
    let system = request.body["system"].to_string();
    assert!(system.contains("# You are Andy"), "{system}");
    assert!(system.contains("Your destination is `cli`"), "{system}");
    let tools: Vec<&str> = request.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    assert!(tools.contains(&"Bash"), "{tools:?}");
    assert!(!tools.contains(&"ScheduleWakeup"), "{tools:?}");
    assert!(
        session.continuation().is_some(),
        "the init's session id is stored"
    );
    let log = runner.log();
    assert!(
        log.contains(r#"MCP server not connected server="notes" status="failed""#),
        "--mcp-config reached Claude Code: {log}"
    );
    assert_eq!(runner.stop(), Some(0));
}

/// A Bash call's `container_state` while it runs (the sweep's Bash-timeout extension reads
/// it), and a follow-up written to the open query's stdin while that turn is in flight.
#[test]
fn a_bash_call_shows_in_container_state_and_a_follow_up_joins_the_open_query() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let session = Session::new(config());
    let go = session.workspace().join("agent/go");
    let command = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo released",
        go.display()
    );
    let fake = FakeAnthropic::start(
        Script::new()
            .once(
                When::LastUserContains("run the slow command".into()),
                Reply::Tool {
                    text: "Running it.".into(),
                    name: "Bash".into(),
                    input: json!({"command": command, "description": "Wait", "timeout": 120000}),
                },
            )
            .once(
                When::ToolResultContains("released".into()),
                Reply::text(
                    "<message to=\"cli\">The command finished, and here is the second answer.</message>",
                ),
            )
            .fallback(Reply::text("unexpected request")),
    );
    session.send("m1", "run the slow command");
    let runner = session.start(claude, &fake, "one");
    wait_until("the Bash call in container_state", ANSWER, || {
        session
            .container_state()
            .is_some_and(|state| state.current_tool.as_deref() == Some("Bash"))
    });
    let state = session.container_state().unwrap();
    assert_eq!(state.tool_declared_timeout_ms, Some(120_000));
    assert!(state.tool_started_at.is_some());

    // While the tool runs, a second message arrives: it is written to Claude Code's stdin.
    session.send("m2", "second question");
    wait_until("the runner to push the follow-up", ANSWER, || {
        runner
            .log()
            .contains("Pushing follow-up message(s) into active query")
    });
    std::fs::write(&go, "").unwrap();
    assert_eq!(
        session.wait_for_replies(1),
        ["The command finished, and here is the second answer."],
        "{}",
        runner.log()
    );
    wait_until("the Bash call to leave container_state", ANSWER, || {
        session
            .container_state()
            .is_some_and(|state| state.current_tool.is_none())
    });
    // Claude Code 2.1.332 hands a message written during a tool call to the running turn,
    // beside the tool's result (docs/claude-code.md#stream-json-input).
    let texts = last_user_texts(&fake);
    let with_result = fake.messages_requests()[1].body["messages"].to_string();
    assert!(texts[1].contains("released"), "{texts:#?}");
    assert!(with_result.contains("second question"), "{with_result}");
    assert_eq!(
        runner.log().matches("Starting Claude Code").count(),
        1,
        "one process for both messages"
    );
    // The result answered both, so both are completed now, not when the query ends.
    wait_until("both messages completed", ANSWER, || {
        session.claims().is_empty()
    });
    assert_eq!(runner.stop(), Some(0));
}

#[test]
fn a_runner_restart_resumes_the_conversation() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(
        Script::new()
            .once(
                When::LastUserContains("remember the word pineapple".into()),
                Reply::text("<message to=\"cli\">I will remember pineapple.</message>"),
            )
            .once(
                When::LastUserContains("what was the word".into()),
                Reply::text("<message to=\"cli\">The word was pineapple.</message>"),
            )
            .fallback(Reply::text("unexpected request")),
    );
    let session = Session::new(config());
    session.send("m1", "remember the word pineapple");
    let first = session.start(claude, &fake, "one");
    session.wait_for_replies(1);
    assert_eq!(first.stop(), Some(0));
    let stored = session.continuation().expect("a stored continuation");

    // A new container: fresh home and /tmp; the session and state folders carry over.
    session.send("m2", "what was the word?");
    let second = session.start(claude, &fake, "two");
    assert_eq!(
        session.wait_for_replies(2)[1],
        "The word was pineapple.",
        "{}",
        second.log()
    );
    let requests = fake.messages_requests();
    let resumed = requests.last().unwrap();
    assert!(
        resumed.body["messages"]
            .to_string()
            .contains("I will remember pineapple."),
        "the earlier turns were replayed"
    );
    assert_eq!(
        resumed.headers.get("x-claude-code-session-id"),
        Some(&stored)
    );
    let transcripts = std::fs::read_dir(session.state_dir().join("projects"))
        .map(|dirs| dirs.count())
        .unwrap_or(0);
    assert!(
        transcripts > 0,
        "transcripts live in the mounted state folder"
    );
    assert_eq!(second.stop(), Some(0));
}

/// The blocklist's two layers: `--disallowedTools` takes the tools away (Claude Code refuses a
/// call itself), and the `PreToolUse` hook refuses them with the nanoclaw message should one
/// reach it anyway (shown by running Claude Code with the runner's hook settings and no
/// `--disallowedTools`).
#[test]
fn a_blocklisted_tool_is_refused_with_the_nanoclaw_message() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let script = || {
        Script::new()
            .once(
                When::LastUserContains("wake me".into()),
                Reply::Tool {
                    text: "Scheduling.".into(),
                    name: "ScheduleWakeup".into(),
                    input: json!({"delaySeconds": 600, "reason": "standup", "prompt": "standup"}),
                },
            )
            .always(
                When::LastIsToolResult,
                Reply::text("<message to=\"cli\">I could not schedule it.</message>"),
            )
            .fallback(Reply::text("unexpected request"))
    };
    let fake = FakeAnthropic::start(script());
    let session = Session::new(config());
    session.send("m1", "wake me at nine");
    let runner = session.start(claude, &fake, "one");
    assert_eq!(session.wait_for_replies(1), ["I could not schedule it."]);
    let refusal = last_user_texts(&fake).pop().unwrap();
    assert!(
        refusal.contains("No such tool available: ScheduleWakeup"),
        "{refusal}\n{}",
        runner.log()
    );
    assert_eq!(runner.stop(), Some(0));

    // The hook, for a call that gets past the list.
    let fake = FakeAnthropic::start(script());
    let home = support::claude_code::Home::new();
    let workspace = session.workspace();
    let printed = support::claude_code::run(
        claude,
        &home,
        &[
            ("ANTHROPIC_BASE_URL", fake.url()),
            ("ANTHROPIC_API_KEY", "nanoclaw-placeholder-test".into()),
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("NANOCLAW_WORKSPACE", workspace.display().to_string()),
        ],
        &[
            "--permission-mode",
            "bypassPermissions",
            "--settings",
            &workspace.join(hooks::SETTINGS_FILE).display().to_string(),
        ],
        &["wake me at nine"],
    );
    let refusal = last_user_texts(&fake).pop().unwrap();
    assert_eq!(
        refusal,
        "PreToolUse:ScheduleWakeup hook error: Tool 'ScheduleWakeup' is not available in this environment — use the nanoclaw equivalent.",
        "{printed:#?}"
    );
    assert_eq!(
        session
            .container_state()
            .and_then(|state| state.current_tool),
        None,
        "a refused call is not recorded"
    );
}

/// Issue 10 point 2: Claude Code's banner for a rejected key becomes a message naming what the
/// operator must do, sent at the first retry of the refused request (Claude Code retries a 401
/// for minutes by default; one retry here) and only once.
#[test]
fn a_rejected_key_tells_the_user_what_the_operator_must_do() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(Script::new().always(When::Any, Reply::unauthorized()));
    let session = Session::new(config());
    session.send("m1", "hello");
    let runner = session.start_with(claude, &fake, "one", &[("CLAUDE_CODE_MAX_RETRIES", "1")]);
    session.wait_for_replies(1);
    wait_until("the turn to end", ANSWER, || {
        fake.messages_requests().len() == 2 && session.claims().is_empty()
    });
    let replies = session.replies();
    assert_eq!(
        replies,
        [agent_runner::providers::claude::banner::AUTH_REQUIRED_MESSAGE],
        "{}",
        runner.log()
    );
    assert!(replies[0].contains("`nanoclaw auth set anthropic`"));
    assert!(
        runner.log().contains("INFO agent_runner::poll: Notice"),
        "sent at the retry, not at the banner"
    );
    assert_eq!(runner.stop(), Some(0));
}

/// A stored continuation Claude Code does not know (its state folder was lost) is dropped:
/// the user hears of the error once and the next message starts a fresh conversation.
#[test]
fn a_lost_conversation_is_forgotten_and_the_next_message_starts_afresh() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(
        Script::new().fallback(Reply::text("<message to=\"cli\">A fresh start.</message>")),
    );
    let session = Session::new(config());
    let lost = "0b5b3a2e-1111-2222-3333-444455556666";
    session.store_continuation(lost);
    session.send("m1", "hello");
    let runner = session.start(claude, &fake, "one");
    let replies = session.wait_for_replies(1);
    assert_eq!(
        replies,
        [format!(
            "Error: no conversation found with session id `{lost}`"
        )],
        "{}",
        runner.log()
    );
    assert!(fake.messages_requests().is_empty());
    session.send("m2", "hello again");
    assert_eq!(session.wait_for_replies(2)[1], "A fresh start.");
    assert_ne!(session.continuation().as_deref(), Some(lost));
    assert_eq!(runner.stop(), Some(0));
}

/// `/compact` from the chat reaches Claude Code raw, in a new query resuming the conversation;
/// its `PreCompact` hook archives the transcript into the agent's `conversations/`.
#[test]
fn compact_archives_the_conversation_through_the_hook() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(
        Script::new().fallback(Reply::text("<message to=\"cli\">Hello there.</message>")),
    );
    let session = Session::new(config());
    session.send("m1", "hello");
    let runner = session.start(claude, &fake, "one");
    session.wait_for_replies(1);
    session.send("m2", "/compact");
    let conversations = session.workspace().join("agent/conversations");
    let archived = || -> Vec<PathBuf> {
        std::fs::read_dir(&conversations)
            .map(|dir| {
                dir.map(|entry| entry.unwrap().path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until("an archived conversation", ANSWER, || {
        !archived().is_empty()
    });
    let file = archived().remove(0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# "), "{text}");
    assert!(text.contains("**User**: "), "{text}");
    assert!(
        text.contains("**Andy**: <message to=\"cli\">Hello there.</message>"),
        "{text}"
    );
    wait_until("the compaction notice", ANSWER, || {
        runner.log().contains("Context compacted")
    });
    assert_eq!(session.replies().len(), 1, "compaction sends nothing");
    assert_eq!(runner.stop(), Some(0));
}

/// Issue 13 point 7: Claude Code calls `send_message` on the runner's own `nanoclaw` MCP server
/// (`agent-runner mcp`, registered in `--mcp-config`); the message is written mid-turn, answers
/// the message that prompted the turn, and the tool's result reaches the model.
#[test]
fn send_message_through_the_nanoclaw_mcp_server() {
    let Some(claude) = support::claude_code::binary() else {
        return;
    };
    let fake = FakeAnthropic::start(
        Script::new()
            .once(
                When::LastUserContains("status".into()),
                Reply::Tool {
                    text: "Sending a progress note.".into(),
                    name: "mcp__nanoclaw__send_message".into(),
                    input: json!({"text": "working on it"}),
                },
            )
            .always(
                When::ToolResultContains("Message sent to".into()),
                Reply::text("<message to=\"cli\">done</message>"),
            )
            .fallback(Reply::text("unexpected request")),
    );
    let session = Session::new(config());
    session.send("m1", "status please");
    let runner = session.start(claude, &fake, "one");
    assert_eq!(
        session.wait_for_replies(2),
        ["working on it", "done"],
        "{}\n{:#?}",
        runner.log(),
        last_user_texts(&fake)
    );
    let results = last_user_texts(&fake);
    assert!(
        results
            .iter()
            .any(|text| text.contains("Message sent to (current conversation) (id: 3)")),
        "{results:#?}"
    );
    let outbound =
        session_db::open_outbound_host(&session_db::outbound_path(&session.workspace())).unwrap();
    let in_reply_to: Option<String> = outbound
        .as_connection()
        .query_row(
            "SELECT in_reply_to FROM messages_out ORDER BY seq LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(in_reply_to.as_deref(), Some("m1"));
    assert_eq!(runner.stop(), Some(0));
}
