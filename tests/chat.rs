//! End-to-end tests of `nanoclaw chat` and of the CLI socket's edges against a real runtime:
//! which agent a chat reaches, replies delivered only once shown, and the protocol's bad
//! inputs (issue 8 points 4, 5, 11 and 13).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime::{CLI_AGENT, Client, Daemon, reply_status, sessions};
use crate::support::{self, Env};

/// Two agents that say who they are when asked for `!config`: `andy` and `helper` share the
/// CLI chat `chat` (platform `local`).
const SHARED: &str = "\
kind: agent
name: andy
provider: mock
assistant_name: Andy
---
kind: agent
name: helper
provider: mock
assistant_name: Helper
---
kind: channel
name: chat
channel_type: cli
platform_id: local
unknown_sender_policy: public
wirings:
  - { agent: andy, engage_mode: pattern, engage_pattern: \".\" }
  - { agent: helper, engage_mode: pattern, engage_pattern: \".\" }
";

/// `helper` also has a CLI chat of its own. Its name sorts after the shared one on purpose.
const HELPER_ONLY: &str = "\
---
kind: channel
name: helper-only
channel_type: cli
platform_id: helper
unknown_sender_policy: public
wirings:
  - { agent: helper, engage_mode: pattern, engage_pattern: \".\" }
";

/// The `assistant_name` in the mock's `!config` answer.
#[track_caller]
fn assistant_name(stdout: &str) -> String {
    let config: serde_json::Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("not the mock's config JSON ({err}): {stdout}"));
    config["assistant_name"]
        .as_str()
        .expect("assistant_name")
        .to_string()
}

#[test]
fn issue_8_chat_agent_uses_the_chat_wired_only_to_that_agent() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-own");
    env.write("agents.yaml", &format!("{SHARED}{HELPER_ONLY}"));
    let daemon = Daemon::start(&env);
    for _ in 0..2 {
        let run = env.run(&["chat", "helper", "-m", "!config", "--timeout", "60s"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
        assert_eq!(assistant_name(&run.stdout), "Helper", "{}", run.stderr);
        assert!(
            run.stderr.contains("`helper-only`"),
            "says which of the two chats it used: {}",
            run.stderr
        );
    }
    let sessions: Vec<String> = sessions(&env).into_iter().map(|(_, agent)| agent).collect();
    assert_eq!(sessions, ["helper"], "andy was never asked");
}

#[test]
fn issue_8_chat_agent_on_a_shared_chat_waits_for_that_agents_reply() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-shared");
    env.write("agents.yaml", SHARED);
    let daemon = Daemon::start(&env);
    for (agent, name) in [("helper", "Helper"), ("andy", "Andy"), ("helper", "Helper")] {
        let run = env.run(&["chat", agent, "-m", "!config", "--timeout", "60s"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
        assert_eq!(assistant_name(&run.stdout), name, "{}", run.stderr);
        assert!(
            run.stderr.contains("shared") && run.stderr.contains(&format!("`{agent}`")),
            "says the chat is shared and whose reply it waits for: {}",
            run.stderr
        );
    }
}

/// An interactive `nanoclaw chat` on pipes, its stdout and stderr collected as they come.
struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
}

impl Interactive {
    fn start(env: &Env, args: &[&str]) -> Interactive {
        let mut child = env
            .command(&[&["chat"], args].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nanoclaw chat");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for stream in [
            Box::new(stdout) as Box<dyn Read + Send>,
            Box::new(stderr) as Box<dyn Read + Send>,
        ] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut output = output.lock().expect("output lock");
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        Interactive {
            stdin: child.stdin.take(),
            child,
            output,
        }
    }

    fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    #[track_caller]
    fn wait_for(&self, what: &str) {
        support::wait_until(what, Duration::from_secs(60), || {
            self.output().contains(what)
        });
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("type a line");
    }

    /// Waits for the client to exit by itself; its exit code.
    #[track_caller]
    fn exit_code(&mut self) -> i32 {
        let mut code = None;
        support::wait_until("the chat client to exit", Duration::from_secs(30), || {
            code = self.child.try_wait().expect("wait").map(|s| s.code());
            code.is_some()
        });
        code.flatten().unwrap_or(-1)
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn issue_8_interactive_chat_on_a_shared_chat_names_the_agent_of_each_reply() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-prefix");
    env.write("agents.yaml", SHARED);
    let daemon = Daemon::start(&env);
    let mut chat = Interactive::start(&env, &["helper"]);
    chat.wait_for("shared");
    chat.type_line("hello both");
    chat.wait_for("[andy] echo: hello both");
    chat.wait_for("[helper] echo: hello both");
    drop(chat.stdin.take());
    assert_eq!(chat.exit_code(), 0, "{}\n{}", chat.output(), daemon.log());
}

#[test]
fn issue_8_a_superseded_interactive_client_exits_saying_so() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-superseded");
    env.write("agents.yaml", CLI_AGENT);
    let _daemon = Daemon::start(&env);
    let mut first = Interactive::start(&env, &[]);
    first.wait_for("Connected");
    let _second = Client::connect(&env);
    assert_eq!(first.exit_code(), 1, "{}", first.output());
    assert!(
        first.output().contains("took over"),
        "says why it stopped: {}",
        first.output()
    );
}

#[test]
fn issue_8_a_one_shot_client_leaves_replies_to_other_messages_queued() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-queued");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    {
        // A client that sends and leaves without reading: its reply waits for a reader.
        let stream = UnixStream::connect(env.data().join("cli.sock")).expect("connect");
        let mut writer = stream.try_clone().expect("clone");
        writeln!(writer, r#"{{"text":"first","id":"first"}}"#).expect("send");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("read");
        assert!(line.contains("accepted"), "{line}");
    }
    support::wait_until("the reply to `first`", Duration::from_secs(60), || {
        reply_status(&env, "echo", "first").is_some()
    });
    let run = env.run(&["chat", "-m", "second", "--timeout", "60s"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    assert_eq!(run.stdout, "echo: second\n", "only its own reply is shown");
    let (_, status) = reply_status(&env, "echo", "first").expect("reply");
    assert_eq!(status, None, "a reply nobody showed is not delivered");
    let mut reader = Client::connect(&env);
    assert_eq!(
        reader.reply(),
        ("echo: first".to_string(), "first:echo".to_string()),
        "the next reader gets it"
    );
    support::wait_until(
        "the shown reply to be recorded as delivered",
        Duration::from_secs(30),
        || {
            reply_status(&env, "echo", "first").and_then(|(_, status)| status)
                == Some("delivered".into())
        },
    );
}

#[test]
fn issue_8_a_line_with_invalid_utf8_gets_an_error_and_the_next_line_is_read() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-utf8");
    env.write("agents.yaml", CLI_AGENT);
    let _daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client
        .writer
        .write_all(b"{\"text\": \"\xff\xfe\"}\n")
        .expect("send");
    client.send(&serde_json::json!({ "text": "x", "id": "../escape" }));
    let first = client.next_error();
    assert!(first.contains("UTF-8"), "{first}");
    let second = client.next_error();
    assert!(
        second.contains("may only use"),
        "the next line is read: {second}"
    );
}

#[test]
fn issue_8_a_message_to_an_unknown_cli_chat_gets_an_error_naming_it() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-unknown");
    env.write("agents.yaml", CLI_AGENT);
    let _daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client
        .send(&serde_json::json!({ "text": "anyone?", "id": "lost-1", "platform_id": "nowhere" }));
    let error = client.next_error();
    assert!(error.contains("`nowhere`"), "names the chat: {error}");
    let run = env.run(&["chat", "-m", "still there?", "--timeout", "60s"]);
    assert_eq!(run.stdout, "echo: still there?\n", "{}", run.stderr);
}

#[test]
fn issue_8_running_out_of_file_descriptors_backs_off_and_recovers() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("chat-fds");
    env.write("agents.yaml", CLI_AGENT);
    // No sweep after the first: its DB opens would come and go with free descriptors.
    let daemon = Daemon::start_with_fd_limit(&env, 64, &["--sweep-interval", "1h"]);
    let socket = env.data().join("cli.sock");
    let accept_lines = |log: &str| log.lines().filter(|line| line.contains("accept")).count();
    let mut held = Vec::new();
    support::wait_until("accept to fail", Duration::from_secs(30), || {
        held.push(UnixStream::connect(&socket).expect("connect"));
        accept_lines(&daemon.log()) > 0
    });
    support::wait_until(
        "a summary of the failures since",
        Duration::from_secs(30),
        || daemon.log().contains("more accept failures"),
    );
    let log = daemon.log();
    assert!(accept_lines(&log) <= 5, "the log is not flooded:\n{log}");
    drop(held);
    support::wait_until(
        "the runtime to answer again",
        Duration::from_secs(30),
        || {
            let Ok(mut stream) = UnixStream::connect(&socket) else {
                return false;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = writeln!(stream, "not json");
            let mut line = String::new();
            let _ = BufReader::new(stream).read_line(&mut line);
            line.contains("error")
        },
    );
    assert!(
        daemon.log().contains("accepting connections again"),
        "{}",
        daemon.log()
    );
}
