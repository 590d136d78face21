//! The real Claude Code binary in the real production image, driven by the real daemon through
//! the credential proxy (issue 10 point 8): chat → daemon → container (`network: none`) →
//! the runner's loopback forwarder → the proxy's mounted Unix socket → the host's proxy → the
//! fake Anthropic API on the host's loopback. The container reaches nothing else.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::agent_env::auth_set;
use crate::runtime::{Client, Daemon};
use crate::support::fake_anthropic::{
    Exchange, FakeAnthropic, Reply, Script, When, last_user_message, tool_results, user_text,
};
use crate::support::{self, Env};

/// The key `nanoclaw auth set anthropic` stores; the fake accepts only it.
const REAL_KEY: &str = "sk-ant-api03-e2e-real-key-0123456789";

/// One Claude agent in the production test image on the CLI chat `local`, without network.
fn claude_agent() -> String {
    crate::agent_env::CLAUDE_AGENT.replace(
        "provider: claude\n",
        &format!(
            "provider: claude\nimage: {}\ninstructions: Always call the user Ann.\n",
            support::production_test_image()
        ),
    )
}

/// A data dir with the Claude agent whose daemon's upstream is `fake`, the credential set
/// when `credential`.
fn claude_env(name: &str, fake: &FakeAnthropic, credential: bool) -> Env {
    support::production_image();
    let env = Env::new(name);
    env.write("agents.yaml", &claude_agent());
    env.set_var("NANOCLAW_ANTHROPIC_BASE_URL", &fake.url());
    if credential {
        auth_set(&env, REAL_KEY);
    }
    env
}

/// The one session of the `claude` agent: its folder.
fn session_dir(env: &Env) -> std::path::PathBuf {
    let (session, _) = crate::runtime::sessions(env)
        .into_iter()
        .find(|(_, owner)| owner == "claude")
        .expect("a session");
    env.data().join("sessions/claude").join(session)
}

/// The tool `container_state` names, if any.
fn current_tool(env: &Env) -> Option<String> {
    let outbound = agent_runner::session_db::open_outbound_host(
        &agent_runner::session_db::outbound_path(&session_dir(env)),
    )
    .ok()?;
    agent_runner::session_db::container_state(&outbound)
        .ok()
        .flatten()
        .and_then(|state| state.current_tool)
}

/// The messages requests whose last user turn contains `text`.
fn requests_with(fake: &FakeAnthropic, text: &str) -> Vec<Exchange> {
    fake.messages_requests()
        .into_iter()
        .filter(|exchange| {
            last_user_message(&exchange.body).is_some_and(|m| user_text(m).contains(text))
        })
        .collect()
}

/// The tool results of the last request that carried one.
fn last_tool_results(fake: &FakeAnthropic) -> Vec<String> {
    fake.messages_requests()
        .iter()
        .rev()
        .find_map(|exchange| {
            let results = tool_results(last_user_message(&exchange.body)?);
            (!results.is_empty()).then_some(results)
        })
        .unwrap_or_default()
}

/// A model answer the runner sends to the chat: its `<message to="terminal">` block (the
/// destination the channel `terminal` gives the agent).
fn to_chat(text: &str) -> Reply {
    Reply::text(&format!("<message to=\"terminal\">{text}</message>"))
}

/// The next reply, checked to answer the chat message `id` (the agent's copy `<id>:<agent>`).
fn answer(client: &mut Client, id: &str) -> String {
    let (text, to) = client.reply();
    assert_eq!(to, format!("{id}:claude"), "{text}");
    text
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn running(name: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", name]).trim() == "true"
}

/// Issue 10 point 8 (a), (b), (c): a chat round trip; a `Bash` call whose output the fake sees
/// in the next request while `container_state` names the tool; and after the container is
/// stopped, the next message's request carries the earlier turns (the conversation resumed).
#[test]
fn claude_answers_runs_bash_and_resumes_after_its_container_stopped() {
    let Some(()) = support::docker() else { return };
    // The command waits for a file the test creates once it saw the tool in `container_state`.
    let command = "echo $((6*7)); until [ -e /workspace/agent/go ]; do sleep 0.1; done";
    let fake = FakeAnthropic::start(
        Script::new()
            .require_key(REAL_KEY)
            .once(
                When::LastUserContains("hello".into()),
                to_chat("Hello from Claude."),
            )
            .once(
                When::LastUserContains("compute".into()),
                Reply::bash(command),
            )
            .always(
                When::ToolResultContains("42".into()),
                to_chat("The answer is 42."),
            )
            .once(
                When::LastUserContains("what did I ask".into()),
                to_chat("You asked me to compute."),
            )
            .fallback(to_chat("unexpected request")),
    );
    let env = claude_env("claude-turns", &fake, true);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);

    client.say("m1", "hello there");
    assert_eq!(answer(&mut client, "m1"), "Hello from Claude.");
    // Claude Code loaded the composed CLAUDE.md with its imports, and the agent's memory.
    let first = fake.messages_requests()[0].body.to_string();
    for part in [
        "You are a personal assistant run by nanoclaw.",
        "Only text inside a `<message to=\\\"NAME\\\">",
        "Always call the user Ann.",
        // The selected skill, from the read-only skills folder.
        "Keep, update or forget facts about the people you work for",
    ] {
        assert!(
            first.contains(part),
            "{part} not in the first request: {first}"
        );
    }

    client.say("m2", "compute six times seven");
    support::wait_until(
        "container_state to name the Bash call",
        Duration::from_secs(60),
        || current_tool(&env).as_deref() == Some("Bash"),
    );
    std::fs::write(env.data().join("groups/claude/go"), "").expect("the go file");
    assert_eq!(answer(&mut client, "m2"), "The answer is 42.");
    assert_eq!(last_tool_results(&fake), ["42"]);
    support::wait_until("the tool cleared", Duration::from_secs(30), || {
        current_tool(&env).is_none()
    });

    let containers = daemon.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    docker(&["stop", "-t", "5", &containers[0]]);
    support::wait_until("the container to stop", Duration::from_secs(30), || {
        !running(&containers[0])
    });
    client.say("m3", "what did I ask first?");
    assert_eq!(
        answer(&mut client, "m3"),
        "You asked me to compute.",
        "{}",
        daemon.log()
    );
    let resumed = requests_with(&fake, "what did I ask");
    assert_eq!(resumed.len(), 1, "{:#?}", fake.exchanges());
    let history = resumed[0].body["messages"].to_string();
    for earlier in [
        "hello there",
        "Hello from Claude.",
        "compute six times seven",
        "42",
    ] {
        assert!(
            history.contains(earlier),
            "{earlier} not resumed: {history}"
        );
    }
    assert!(
        daemon.containers().iter().any(|name| running(name)),
        "a new container answered"
    );
}

/// Issue 10 point 8 (f), (g), (h), in one container: no file and no process environment inside
/// it holds the real key (the placeholder is found by the same search); a blocklisted tool the
/// model asks for is refused (by Claude Code itself: `--disallowedTools` removes it, so the
/// runner's `PreToolUse` hook never sees it); the composed instructions, settings and container
/// config are read-only to the agent's own `Bash` and its `CLAUDE.local.md` is writable.
#[test]
fn inside_the_claude_container_the_key_is_nowhere_blocked_tools_are_refused_and_instructions_are_read_only()
 {
    let Some(()) = support::docker() else { return };
    let probe = [
        "/workspace/CLAUDE.md",
        "/workspace/.claude-shared.md",
        "/workspace/.claude-fragments/module-messaging.md",
        "/workspace/.claude-fragments/new.md",
        "/workspace/claude-settings.json",
        "/workspace/container.json",
        "/home/agent/.claude/skills/remember/SKILL.md",
    ];
    let writes = format!(
        "for f in {}; do if (echo x >> \"$f\") 2>/dev/null; then echo \"WROTE $f\"; else echo \"REFUSED $f\"; fi; done; \
         echo 'remember me' >> /workspace/agent/CLAUDE.local.md && echo MEMORY-OK",
        probe.join(" ")
    );
    let fake = FakeAnthropic::start(
        Script::new()
            .require_key(REAL_KEY)
            .once(
                When::LastUserContains("probe-cron".into()),
                Reply::Tool {
                    text: "Scheduling.".into(),
                    name: "CronCreate".into(),
                    input: json!({"cron": "*/5 * * * *", "prompt": "ping", "recurring": true}),
                },
            )
            .once(
                When::ToolResultContains("CronCreate".into()),
                to_chat("I cannot schedule that way."),
            )
            .once(
                When::LastUserContains("probe-writes".into()),
                Reply::bash(&writes),
            )
            .once(
                When::ToolResultContains("MEMORY-OK".into()),
                to_chat("Checked the files."),
            )
            .fallback(to_chat("Hello.")),
    );
    let env = claude_env("claude-inside", &fake, true);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    assert_eq!(client.reply().0, "Hello.", "{}", daemon.log());

    // (f) Search every file (mounts included) and every process's environment.
    let container = daemon.containers().pop().expect("the container");
    let search = |needle: &str| {
        docker(&[
            "exec",
            "-u",
            "0",
            &container,
            "sh",
            "-c",
            "grep -rlsF -e \"$0\" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev; \
             for p in /proc/[0-9]*; do grep -lsF -e \"$0\" $p/environ; done; true",
            needle,
        ])
    };
    let placeholder_found = search("ANTHROPIC_BASE_URL=http://127.0.0.1:");
    assert!(
        placeholder_found.contains("/environ"),
        "the search finds what is there: {placeholder_found}"
    );
    assert_eq!(search(REAL_KEY), "", "the real key is inside the container");
    assert_eq!(
        search(&REAL_KEY[10..]),
        "",
        "part of the real key is inside"
    );

    // (g) The blocklisted tool.
    client.say("m2", "probe-cron: schedule a ping every five minutes");
    assert_eq!(client.reply().0, "I cannot schedule that way.");
    let refused = last_tool_results(&fake).join("\n");
    assert!(
        refused.contains("No such tool available: CronCreate"),
        "refused by Claude Code's --disallowedTools: {refused}"
    );

    // (h) Write attempts by the agent's own Bash.
    client.say("m3", "probe-writes: write to your files");
    assert_eq!(client.reply().0, "Checked the files.");
    let report = last_tool_results(&fake).join("\n");
    for path in probe {
        assert!(report.contains(&format!("REFUSED {path}")), "{report}");
    }
    assert!(!report.contains("WROTE"), "{report}");
    assert!(report.contains("MEMORY-OK"), "{report}");
    let memory = std::fs::read_to_string(env.data().join("groups/claude/CLAUDE.local.md"))
        .expect("the memory");
    assert!(memory.ends_with("remember me\n"), "{memory:?}");
}

/// Issue 10 point 8 (d): upstream refuses the credential (401): the chat reads the runner's
/// message naming `nanoclaw auth set anthropic`, not Claude Code's login banner.
#[test]
fn a_401_from_upstream_tells_the_chat_how_to_set_the_credential() {
    let Some(()) = support::docker() else { return };
    let fake = FakeAnthropic::start(Script::new().fallback(Reply::unauthorized()));
    let env = claude_env("claude-401", &fake, true);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "hello");
    let (text, _) = client.reply();
    assert!(
        text.contains("`nanoclaw auth set anthropic`"),
        "{text}\n{}",
        daemon.log()
    );
    for banner in ["/login", "Invalid API key", "API Error: 401"] {
        assert!(
            !text.contains(banner),
            "the banner reached the chat: {text}"
        );
    }
    assert!(!fake.messages_requests().is_empty(), "upstream was asked");
}

/// Issue 10 point 8 (e): no credential → the chat is told how to set one and nothing asks
/// upstream; `nanoclaw auth set anthropic` → the pending message is answered, once.
#[test]
fn without_a_credential_the_message_waits_and_auth_set_answers_it_once() {
    let Some(()) = support::docker() else { return };
    let fake = FakeAnthropic::start(
        Script::new()
            .require_key(REAL_KEY)
            .once(
                When::LastUserContains("are you there".into()),
                to_chat("Here now."),
            )
            .fallback(to_chat("Next.")),
    );
    let env = claude_env("claude-no-key", &fake, false);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "are you there?");
    let (notice, about) = client.reply();
    assert!(notice.contains("`nanoclaw auth set anthropic`"), "{notice}");
    assert_eq!(
        about, "m1:claude",
        "the notice answers the message it is about"
    );
    assert!(fake.messages_requests().is_empty());

    auth_set(&env, REAL_KEY);
    assert_eq!(answer(&mut client, "m1"), "Here now.", "{}", daemon.log());
    client.say("m2", "and again");
    assert_eq!(answer(&mut client, "m2"), "Next.", "no second answer to m1");
    assert_eq!(requests_with(&fake, "are you there").len(), 1);
}

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The script of the unreachable tests: the held message, then the next one.
fn back_script() -> Script {
    Script::new()
        .require_key(REAL_KEY)
        .once(
            When::LastUserContains("are you there".into()),
            to_chat("Back now."),
        )
        .fallback(to_chat("Next."))
}

/// The chat was told that Anthropic cannot be reached (a notice, not an answer to `m1`: a
/// one-shot client keeps waiting for the answer).
fn told_unreachable(client: &mut Client, daemon: &Daemon) {
    let (notice, about) = client.reply();
    assert!(
        notice.contains("can't reach Anthropic right now"),
        "{notice}\n{}",
        daemon.log()
    );
    assert_eq!(about, "", "a notice");
}

/// After the notice, `m1` is answered once (the next reply), then `m2` is answered: no second
/// notice and no second answer came in between.
fn answered_once_after(client: &mut Client, fake: &FakeAnthropic, daemon: &Daemon) {
    assert_eq!(answer(client, "m1"), "Back now.", "{}", daemon.log());
    client.say("m2", "and again");
    assert_eq!(answer(client, "m2"), "Next.");
    assert_eq!(requests_with(fake, "are you there").len(), 1);
}

/// Issue 10 point 5 (a): the upstream is unreachable (the proxy's upstream is a closed loopback
/// port): the message stays pending while Claude Code retries with backoff, the chat is told
/// once after `UNREACHABLE_NOTICE_AFTER`, and once the API is back the message is answered once.
#[test]
fn issue_10_an_unreachable_upstream_is_told_once_and_the_message_answered_once_when_it_is_back() {
    let Some(()) = support::docker() else { return };
    support::production_image();
    let port = closed_port();
    let env = Env::new("claude-upstream-down");
    env.write("agents.yaml", &claude_agent());
    env.set_var(
        "NANOCLAW_ANTHROPIC_BASE_URL",
        &format!("http://127.0.0.1:{port}"),
    );
    auth_set(&env, REAL_KEY);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "are you there?");
    told_unreachable(&mut client, &daemon);
    let fake = FakeAnthropic::start_on(port, back_script());
    answered_once_after(&mut client, &fake, &daemon);
}

/// Issue 10 point 5 (b): the credential proxy's socket is gone from the container's view (moved
/// away): same shape as (a) once it is back.
#[test]
fn issue_10_a_missing_proxy_socket_is_told_once_and_the_message_answered_once_when_it_is_back() {
    let Some(()) = support::docker() else { return };
    let fake = FakeAnthropic::start(back_script());
    let env = claude_env("claude-proxy-gone", &fake, true);
    let daemon = Daemon::start(&env);
    let socket = env.data().join("proxy/anthropic.sock");
    let away = env.data().join("proxy/anthropic.sock.away");
    support::wait_until("the proxy socket", Duration::from_secs(30), || {
        socket.exists()
    });
    std::fs::rename(&socket, &away).expect("move the socket away");
    let mut client = Client::connect(&env);
    client.say("m1", "are you there?");
    told_unreachable(&mut client, &daemon);
    assert!(fake.messages_requests().is_empty());
    std::fs::rename(&away, &socket).expect("put the socket back");
    answered_once_after(&mut client, &fake, &daemon);
}

/// The retries the host counted for the message `id` of the `claude` agent's session.
fn tries(env: &Env, id: &str) -> i64 {
    let Ok(inbound) = agent_runner::session_db::open_inbound_host(
        &agent_runner::session_db::inbound_path(&session_dir(env)),
    ) else {
        return 0;
    };
    agent_runner::session_db::retry_state(&inbound, id)
        .ok()
        .flatten()
        .map_or(0, |state| state.tries)
}

/// Issue 10 point 5 (c): an outage longer than Claude Code's own retries (cut to one with
/// `CLAUDE_CODE_MAX_RETRIES`, passed on by the daemon): each turn ends with an API error that
/// is not sent; the message is given back and retried by the host with backoff; the chat is
/// told once, however many tries; once the API is back the message is answered once.
#[test]
fn issue_10_an_outage_longer_than_claude_codes_retries_is_told_once_and_answered_once() {
    let Some(()) = support::docker() else { return };
    support::production_image();
    let port = closed_port();
    let env = Env::new("claude-long-outage");
    env.write("agents.yaml", &claude_agent());
    env.set_var(
        "NANOCLAW_ANTHROPIC_BASE_URL",
        &format!("http://127.0.0.1:{port}"),
    );
    env.set_var("CLAUDE_CODE_MAX_RETRIES", "1");
    auth_set(&env, REAL_KEY);
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    client.say("m1", "are you there?");
    told_unreachable(&mut client, &daemon);
    support::wait_until(
        "Claude Code gave up on three tries of m1",
        Duration::from_secs(120),
        || tries(&env, "m1:claude") >= 2,
    );
    let fake = FakeAnthropic::start_on(port, back_script());
    answered_once_after(&mut client, &fake, &daemon);
}

/// Issue 13 point 7: Claude calls the nanoclaw tools through the real MCP server. It sends a
/// message to another destination (the CLI chat `other`), then asks a question that the person
/// answers on the CLI card; the chosen value comes back to the model as the tool result.
#[test]
fn claude_sends_to_another_destination_and_asks_a_question_answered_on_the_cli_card() {
    let Some(()) = support::docker() else { return };
    use reconciler::channels::cli_protocol::{AnswerLine, ClientLine, HostLine};
    let fake = FakeAnthropic::start(
        Script::new()
            .require_key(REAL_KEY)
            .once(
                When::LastUserContains("plan the trip".into()),
                Reply::Tool {
                    text: "Telling the others first.".into(),
                    name: "mcp__nanoclaw__send_message".into(),
                    input: json!({"to": "other", "text": "Trip planning has started."}),
                },
            )
            .once(
                When::ToolResultContains("Message sent to other".into()),
                Reply::Tool {
                    text: "Asking Ann.".into(),
                    name: "mcp__nanoclaw__ask_user_question".into(),
                    input: json!({"title": "Trip", "question": "Where to?",
                        "options": ["Rome", {"label": "Oslo", "value": "oslo", "selectedLabel": "✅ Oslo"}]}),
                },
            )
            .always(
                When::ToolResultContains("oslo".into()),
                to_chat("Oslo it is."),
            )
            .fallback(to_chat("unexpected request")),
    );
    let env = claude_env("claude-tools", &fake, false);
    env.write(
        "agents.yaml",
        &(claude_agent().replacen(
            "network: none\n",
            "network: none\ndestinations:\n  - { name: other, channel: other }\n",
            1,
        ) + "---\nkind: channel\nname: other\nchannel_type: cli\nplatform_id: other\nunknown_sender_policy: public\n"),
    );
    auth_set(&env, REAL_KEY);
    let daemon = Daemon::start(&env);
    let mut other = Client::connect_to(&env, "other");
    let mut client = Client::connect(&env);
    client.say("m1", "plan the trip");
    let (text, _) = other.reply();
    assert_eq!(text, "Trip planning has started.", "{}", daemon.log());
    let card = loop {
        if let HostLine::Reply(reply) = client.next_line() {
            client.send_line(&ClientLine::Ack {
                ack: reply.id.clone(),
            });
            if let Some(card) = reply.card {
                assert!(reply.text.contains("  2. Oslo"), "{}", reply.text);
                break card;
            }
        }
    };
    client.send_line(&ClientLine::Answer {
        answer: AnswerLine {
            card: card.id.clone(),
            option: "2".into(),
            platform_id: None,
        },
    });
    assert_eq!(answer(&mut client, "m1"), "Oslo it is.", "{}", daemon.log());
    assert_eq!(
        last_tool_results(&fake),
        [r#"[{"type":"text","text":"oslo"}]"#]
    );
}
