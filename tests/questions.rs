//! End-to-end tests of questions agents ask (docs/runtime.md#questions), with real containers:
//! the mock provider's `!tool ask_user_question …` blocks in the real MCP server until the
//! person answers the card on the CLI (`nanoclaw chat`) or on Telegram (the fake Bot API), or
//! until its timeout; a question survives a `kill -9` of the daemon. Also the agent's edits and
//! reactions reaching Telegram.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use agent_runner::session_db;
use serde_json::Value;

use crate::runtime::Daemon;
use crate::support::fake_telegram::{Fake, Person, TOKEN};
use crate::support::{self, Env};

/// An `echo` agent on the public CLI chat `local`, whose person `cli:local` owns it.
const CLI_OWNED: &str = "\
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
  - { agent: echo, engage_mode: pattern, engage_pattern: \".\" }
---
kind: user
id: \"cli:local\"
roles: [owner]
";

/// `echo` in Ada's Telegram DM; Ada owns it.
const TELEGRAM_DM: &str = "\
kind: agent
name: echo
provider: mock
---
kind: channel
name: ada-dm
channel_type: telegram
platform_id: \"111222333\"
unknown_sender_policy: strict
wirings:
  - { agent: echo, engage_mode: pattern, engage_pattern: \".\" }
---
kind: user
id: \"telegram:111222333\"
display_name: Ada
roles: [owner]
";

const ADA: i64 = 111_222_333;

/// The mock's chat text asking "Deploy?" with options Yes and No (value `no`, shown once
/// chosen as `❌ Not now`), waiting `timeout` seconds (0: the default).
fn ask(timeout: u64) -> String {
    format!(
        r#"!tool ask_user_question {{"title": "Deploy?", "question": "Ship the release now?", "options": ["Yes", {{"label": "No", "value": "no", "selectedLabel": "❌ Not now"}}], "timeout": {timeout}}}"#
    )
}

/// `(question id, status, answer)` of every stored question.
fn questions(env: &Env) -> Vec<(String, String, Option<String>)> {
    let conn = reconciler::db::open_readonly(&env.db()).expect("db");
    let mut statement = conn
        .prepare("SELECT question_id, status, answer FROM pending_questions ORDER BY created_at")
        .expect("query");
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// `nanoclaw chat` in interactive mode with piped stdin and stdout (plain lines).
struct Chat {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Every line read so far (for failure messages).
    seen: Vec<String>,
}

impl Chat {
    fn start(env: &Env) -> Chat {
        let mut child = env
            .command(&["chat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nanoclaw chat");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Chat {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn type_line(&mut self, text: &str) {
        writeln!(self.stdin, "{text}").expect("type");
        self.stdin.flush().expect("flush");
    }

    /// Reads lines until one matches; returns it.
    fn until(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {what}; seen:\n{}", self.seen.join("\n")),
            }
        }
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_question_answered_by_number_in_nanoclaw_chat_returns_the_value_to_the_agent() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("q-cli");
    env.write("agents.yaml", CLI_OWNED);
    let daemon = Daemon::start(&env);
    let mut chat = Chat::start(&env);
    chat.until("the greeting", |line| line.starts_with("Connected to"));
    chat.type_line(&ask(0));
    chat.until("the card's title", |line| line == "Deploy?");
    chat.until("option 2", |line| line == "  2. No");
    let hint = chat.until("how to answer", |line| line.starts_with("(answer with"));
    assert!(hint.contains("its number"), "{hint}");
    chat.type_line("2");
    let outcome = chat.until("the outcome", |line| line.starts_with("(card msg-"));
    assert!(outcome.ends_with(": ❌ Not now)"), "{outcome}");
    chat.until("the tool's result", |line| {
        line == "tool ask_user_question: no"
    });
    let stored = questions(&env);
    assert_eq!(stored.len(), 1, "{}", daemon.log());
    assert_eq!(
        (stored[0].1.as_str(), stored[0].2.as_deref()),
        ("answered", Some("no"))
    );
    // A second answer is refused, and nothing more reaches the agent.
    let again = env.run(&["chat", "--answer", &stored[0].0, "1"]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("this question was already answered: ❌ Not now"),
        "{}",
        again.stderr
    );
}

#[test]
fn an_unanswered_question_times_out_with_v2s_error_and_a_late_answer_is_told_it_expired() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("q-timeout");
    env.write("agents.yaml", CLI_OWNED);
    let daemon = Daemon::start(&env);
    let run = env.run(&[
        "chat",
        "--message",
        &ask(2),
        "--replies",
        "2",
        "--timeout",
        "90s",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "Deploy?", "{}", run.stdout);
    assert_eq!(
        lines.last().copied(),
        Some("tool ask_user_question: Error: Question timed out after 2s"),
        "{}",
        run.stdout
    );
    let id = questions(&env)[0].0.clone();
    assert!(
        run.stderr
            .contains(&format!("(answer with `nanoclaw chat --answer {id} N`")),
        "{}",
        run.stderr
    );
    let late = env.run(&["chat", "--answer", &id, "1"]);
    assert_eq!(late.code, 1);
    assert!(
        late.stderr
            .contains("this question expired: the agent stopped waiting for an answer after 2s"),
        "{}",
        late.stderr
    );
    assert_eq!(questions(&env)[0].1, "expired");
}

/// The mock's recorded prompts (`outbound/.mock/turns.jsonl`) of the agent's session.
fn prompts(env: &Env) -> Vec<String> {
    let Some((session, _)) = crate::runtime::sessions(env).into_iter().next() else {
        return Vec::new();
    };
    let file = env
        .data()
        .join("sessions/echo")
        .join(session)
        .join("outbound/.mock/turns.jsonl");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|turn| turn["prompt"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_question_pending_across_kill_9_of_the_daemon_still_reaches_the_agent() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("q-kill9");
    env.write("agents.yaml", CLI_OWNED);
    let mut daemon = Daemon::start(&env);
    // One reply: the card (the tool's result would be the second).
    let run = env.run(&[
        "chat",
        "--message",
        &ask(600),
        "--replies",
        "1",
        "--timeout",
        "90s",
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, daemon.log());
    let id = questions(&env)[0].0.clone();
    daemon.crash();
    let daemon = Daemon::start(&env);
    let answered = env.run(&["chat", "--answer", &id, "No"]);
    assert_eq!(answered.code, 0, "{}\n{}", answered.stderr, daemon.log());
    assert_eq!(answered.stdout.trim(), "❌ Not now");
    // The asking container was replaced at the restart: the response row is stored, and the
    // agent is told the answer in a note that wakes it.
    support::wait_until(
        "the agent's next turn to read the answer",
        Duration::from_secs(90),
        || {
            prompts(&env)
                .iter()
                .any(|prompt| prompt.contains("The person answered your question"))
        },
    );
    let prompt = prompts(&env)
        .into_iter()
        .find(|prompt| prompt.contains("The person answered your question"))
        .expect("prompt");
    assert!(
        prompt.contains("your question &quot;Deploy?&quot;: no (❌ Not now)"),
        "{prompt}"
    );
    let (session, _) = crate::runtime::sessions(&env)[0].clone();
    let inbound = session_db::open_inbound_reader(&session_db::inbound_path(
        &env.data().join("sessions/echo").join(&session),
    ))
    .expect("inbound");
    let responses: i64 = inbound
        .as_connection()
        .query_row(
            "SELECT COUNT(*) FROM messages_in WHERE kind = 'system' AND content LIKE '%question_response%'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(responses, 1);
}

/// Starts the daemon against the fake Bot API with `echo` in Ada's DM.
fn telegram_env(name: &str, fake: &Fake) -> Env {
    let env = Env::new(name);
    env.write("agents.yaml", TELEGRAM_DM);
    env.set_var("NANOCLAW_TELEGRAM_API_URL", &fake.url());
    env.set_var("TELEGRAM_BOT_TOKEN", TOKEN);
    env
}

/// The bot's messages to Ada whose text is `text`, waited for.
fn wait_text(fake: &Fake, text: &str, daemon: &Daemon<'_>) {
    support::wait_until(
        &format!("`{text}` in Ada's DM"),
        Duration::from_secs(90),
        || fake.texts(ADA).iter().any(|sent| sent == text),
    );
    let _ = daemon;
}

#[test]
fn a_question_answered_by_a_telegram_button_returns_the_value_and_the_card_shows_the_choice() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("q-tg", &fake);
    let daemon = Daemon::start(&env);
    let ada = Person::new(ADA, "Ada", None);
    fake.dm(&ada, &ask(0));
    let card = || {
        fake.sent(Some(ADA))
            .into_iter()
            .find(|call| call.method == "sendMessage" && call.params.contains_key("reply_markup"))
    };
    support::wait_until("the card in Ada's DM", Duration::from_secs(90), || {
        card().is_some()
    });
    let card = card().expect("card");
    assert_eq!(card.text(), Some("Deploy?\n\nShip the release now?"));
    let message_id = card.answer["result"]["message_id"]
        .as_i64()
        .expect("message id");
    let markup = match &card.params["reply_markup"] {
        Value::String(text) => serde_json::from_str::<Value>(text).expect("markup"),
        value => value.clone(),
    };
    let no = markup["inline_keyboard"][0][1]["callback_data"]
        .as_str()
        .expect("the No button")
        .to_string();
    // Grace is no member: her press is refused and reaches nobody.
    let grace = Person::new(444_555_666, "Grace", None);
    fake.click(&grace, ADA, message_id, &no);
    let alerts = || {
        fake.calls()
            .into_iter()
            .filter(|call| {
                call.method == "answerCallbackQuery"
                    && call.params.get("show_alert") == Some(&Value::Bool(true))
            })
            .collect::<Vec<_>>()
    };
    support::wait_until("the refusal", Duration::from_secs(30), || {
        !alerts().is_empty()
    });
    fake.click(&ada, ADA, message_id, &no);
    wait_text(&fake, "tool ask_user_question: no", &daemon);
    let edited = fake
        .sent(Some(ADA))
        .into_iter()
        .find(|call| call.method == "editMessageText")
        .expect("the card edited");
    assert_eq!(edited.text(), Some("Deploy?\n\n❌ Not now"), "{edited:?}");
    let answered = fake
        .calls()
        .into_iter()
        .filter(|call| call.method == "answerCallbackQuery")
        .count();
    assert_eq!(answered, 2, "both presses were answered");
    // A second press (a double tap) is told it was answered, and nothing more reaches the agent.
    fake.click(&ada, ADA, message_id, &no);
    support::wait_until("the second alert", Duration::from_secs(30), || {
        alerts().len() == 2
    });
    let alert = alerts()[1].params["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(alert, "this question was already answered: ❌ Not now");
    assert_eq!(
        fake.texts(ADA)
            .iter()
            .filter(|text| text.starts_with("tool ask_user_question"))
            .count(),
        1,
        "{}",
        daemon.log()
    );
}

#[test]
fn an_agents_edit_and_reaction_reach_telegram() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("q-tg-edit", &fake);
    let daemon = Daemon::start(&env);
    let ada = Person::new(ADA, "Ada", None);
    fake.dm(&ada, "hello");
    wait_text(&fake, "echo: hello", &daemon);
    let reply_id = fake
        .sent(Some(ADA))
        .into_iter()
        .find(|call| call.text() == Some("echo: hello"))
        .and_then(|call| call.answer["result"]["message_id"].as_i64())
        .expect("the reply's message id");
    // The agent refers to messages by seq: the reply is the session's first outbound row, and
    // Ada's message its first inbound one.
    let (session, _) = crate::runtime::sessions(&env)[0].clone();
    let dir = env.data().join("sessions/echo").join(&session);
    let reply_seq: i64 = session_db::open_outbound_host(&session_db::outbound_path(&dir))
        .expect("outbound")
        .as_connection()
        .query_row(
            "SELECT seq FROM messages_out WHERE content LIKE '%echo: hello%'",
            [],
            |row| row.get(0),
        )
        .expect("the reply's seq");
    let hello_seq: i64 = session_db::open_inbound_reader(&session_db::inbound_path(&dir))
        .expect("inbound")
        .as_connection()
        .query_row(
            "SELECT seq FROM messages_in WHERE content LIKE '%hello%' AND kind != 'system'",
            [],
            |row| row.get(0),
        )
        .expect("the message's seq");
    fake.dm(
        &ada,
        &format!(
            r#"!tool edit_message {{"messageId": {reply_seq}, "text": "echo: hello (edited)"}}"#
        ),
    );
    wait_text(
        &fake,
        &format!("tool edit_message: Message edit queued for #{reply_seq}"),
        &daemon,
    );
    let edit = || {
        fake.sent(Some(ADA))
            .into_iter()
            .find(|call| call.method == "editMessageText")
    };
    support::wait_until("the edit", Duration::from_secs(30), || edit().is_some());
    let edit = edit().expect("edit");
    assert_eq!(edit.text(), Some("echo: hello (edited)"));
    assert_eq!(edit.params["message_id"], Value::from(reply_id));
    fake.dm(
        &ada,
        &format!(r#"!tool add_reaction {{"messageId": {hello_seq}, "emoji": "👍"}}"#),
    );
    let reaction = || {
        fake.sent(Some(ADA))
            .into_iter()
            .find(|call| call.method == "setMessageReaction")
    };
    support::wait_until("the reaction", Duration::from_secs(90), || {
        reaction().is_some()
    });
    let reaction = reaction().expect("reaction");
    assert_eq!(
        reaction.params["reaction"][0]["emoji"], "👍",
        "{reaction:?}"
    );
    assert_eq!(
        reaction.params["message_id"],
        Value::from(1),
        "Ada's first message: {}",
        daemon.log()
    );
}
