//! The agent's environment on the host (issue 10 points 3, 5, 6): the provider a session runs,
//! the credential lent to its container through the proxy, and the files composed for it, seen
//! through the real daemon and real containers.

use std::io::Write;
use std::time::Duration;

use crate::runtime::{Client, Daemon};
use crate::support::{self, Env};

/// One Claude agent on the CLI chat `local`, with no network (its model calls go through the
/// credential proxy's socket only).
pub(crate) const CLAUDE_AGENT: &str = "\
kind: agent
name: claude
provider: claude
network: none
---
kind: channel
name: terminal
channel_type: cli
platform_id: local
unknown_sender_policy: public
wirings:
  - agent: claude
    engage_mode: pattern
    engage_pattern: \".\"
";

/// `nanoclaw auth set anthropic` with `secret` on stdin.
pub(crate) fn auth_set(env: &Env, secret: &str) {
    let mut child = env
        .command(&["auth", "set", "anthropic"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start auth set");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{secret}\n").as_bytes())
        .expect("write the secret");
    let output = child.wait_with_output().expect("auth set");
    assert!(
        output.status.success(),
        "auth set failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Messages of the session still waiting for an answer.
fn due(env: &Env, agent: &str) -> i64 {
    let (session, _) = crate::runtime::sessions(env)
        .into_iter()
        .find(|(_, owner)| owner == agent)
        .expect("a session");
    let inbound = agent_runner::session_db::open_inbound_host(
        &env.data()
            .join("sessions")
            .join(agent)
            .join(session)
            .join("inbound.db"),
    )
    .expect("inbound.db");
    agent_runner::session_db::count_due(&inbound).expect("count")
}

/// Issue 10 point 5: an agent that needs the Anthropic credential, on a host without one: its
/// chat is told how to set one, no container is started (no crash loop, also across sweeps),
/// the message stays pending, and `nanoclaw auth set anthropic` lets the held session start.
#[test]
fn issue_10_without_a_credential_the_chat_is_told_once_and_the_message_waits_for_auth_set() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("no-credential");
    env.write("agents.yaml", CLAUDE_AGENT);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "are you there?");
    let (notice, _) = client.reply();
    assert!(
        notice.contains("`nanoclaw auth set anthropic`"),
        "the chat is told how to fix it: {notice}"
    );
    assert!(notice.contains("Your message is kept"), "{notice}");
    assert!(daemon.containers().is_empty(), "nothing was started");
    assert_eq!(due(&env, "claude"), 1, "the message waits");

    auth_set(&env, "sk-ant-api03-test-key");
    support::wait_until("the held session to start", Duration::from_secs(60), || {
        daemon
            .log()
            .contains("starting the sessions that waited for it")
    });
    support::wait_until(
        "a container for the held session",
        Duration::from_secs(60),
        || daemon.log().contains("container started"),
    );
    // Meanwhile the 1 s sweep asked for the session again and again: it was held, not retried.
    assert_eq!(
        daemon.log().matches("holding its messages").count(),
        1,
        "told once, started nothing while held\n{}",
        daemon.log()
    );
}

/// Issue 10 point 6 (the files, with the mock provider): the composed `CLAUDE.md` imports the
/// shared base, the module fragments (not the CLI module's when `cli_scope` is `disabled`) and
/// the selected skills' fragments; the settings and the skills are written host-side; inside
/// the container everything composed is read-only while the agent's folder, where its
/// `CLAUDE.local.md` memory lives, is writable.
#[test]
fn issue_10_the_composed_environment_is_read_only_and_the_memory_writable() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("composed-env");
    env.write(
        "agents.yaml",
        &crate::runtime::CLI_AGENT.replace(
            "provider: mock\n",
            "provider: mock\ncli_scope: disabled\ninstructions: Call me Ann.\n",
        ),
    );
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "echo: hello", "{}", daemon.log());
    let (session, _) = crate::runtime::sessions(&env).pop().expect("a session");
    let session_dir = env.data().join("sessions/echo").join(&session);
    let claude_md = std::fs::read_to_string(session_dir.join("CLAUDE.md")).expect("CLAUDE.md");
    assert!(claude_md.contains("@./.claude-shared.md\n"), "{claude_md}");
    assert!(
        claude_md.contains("@./.claude-fragments/module-messaging.md\n"),
        "{claude_md}"
    );
    assert!(
        claude_md.contains("@./.claude-fragments/skill-remember.md\n"),
        "{claude_md}"
    );
    assert!(!claude_md.contains("module-cli"), "cli_scope: disabled");
    let shared = std::fs::read_to_string(session_dir.join(".claude-shared.md")).expect("base");
    assert!(shared.starts_with("# nanoclaw agent\n"), "{shared}");
    for fragment in ["module-messaging.md", "skill-remember.md"] {
        assert!(
            session_dir
                .join(".claude-fragments")
                .join(fragment)
                .is_file(),
            "{fragment}"
        );
    }
    let settings: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(session_dir.join("claude-settings.json")).expect("settings"),
    )
    .expect("settings JSON");
    assert!(settings["hooks"]["PreToolUse"].is_array(), "{settings}");
    let skill = env.data().join("sessions/echo/skills/remember/SKILL.md");
    assert!(
        std::fs::read_to_string(&skill)
            .expect("the selected skill, host-side")
            .starts_with("---\nname: remember\n")
    );
    assert_eq!(
        std::fs::read_to_string(env.data().join("groups/echo/CLAUDE.local.md"))
            .expect("the memory"),
        "Call me Ann.\n",
        "seeded from the manifest's instructions"
    );

    for (id, path) in [
        ("w1", "/workspace/.claude-fragments/module-extra.md"),
        ("w2", "/workspace/claude-settings.json.new"),
        ("w3", "/workspace/CLAUDE.md.new"),
    ] {
        client.say(id, &format!("!try write {path}"));
        let (answer, _) = client.reply();
        assert!(
            answer.contains("refused") && answer.contains("Read-only"),
            "{path}: {answer}"
        );
    }
    client.say("w4", "!try write /workspace/agent/notes.md");
    assert_eq!(
        client.reply().0,
        "try write: wrote `/workspace/agent/notes.md`"
    );
    assert!(env.data().join("groups/echo/notes.md").is_file());
}

/// Issue 10 point 10: the Claude example validates, while the bundled manifests stay on the
/// offline `mock` provider (the first README command needs no key).
#[test]
fn the_claude_example_validates_and_the_bundled_agent_stays_on_mock() {
    let env = Env::new("claude-example");
    let example = support::repo_root().join("docs/examples/claude");
    let run = env.run(&["validate", example.to_str().expect("utf-8 path")]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let bundled = std::fs::read_to_string(support::repo_root().join("manifests/assistant.yaml"))
        .expect("the bundled agent");
    assert!(bundled.contains("\nprovider: mock\n"), "{bundled}");
}
