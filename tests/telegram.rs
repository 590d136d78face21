//! The Telegram channel against the fake Bot API (`support::fake_telegram`): the client's wire
//! protocol, the poller's offset and receipts, outbound formatting, splitting, files and
//! errors; and `nanoclaw auth set telegram`.

use std::time::Duration;

use reconciler::channels::telegram::api::{Api, ApiError, Disposition};
use reconciler::channels::telegram::offset::OffsetStore;
use reconciler::channels::telegram::poll::Poller;
use reconciler::channels::telegram::send::{self, OutFile, Outgoing, Progress};
use reconciler::channels::telegram::types::{Update, User};
use reconciler::channels::{Envelope, Receipt};
use reconciler::credentials::Secret;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::runtime::Daemon;
use crate::support::fake_telegram::{BOT_ID, Failure, Fake, Person, TOKEN};
use crate::support::{self, Env};

fn api(fake: &Fake, tasks: &TaskTracker, stop: &CancellationToken) -> Api {
    Api::new(&fake.url(), Secret::new(TOKEN), tasks.clone(), stop.clone())
        .expect("the fake's URL is a base URL")
}

fn ada() -> Person {
    Person::new(111_222_333, "Ada", Some("ada"))
}

async fn me(api: &Api) -> User {
    api.call("getMe", &json!({}), Duration::ZERO)
        .await
        .expect("the fake answers getMe")
}

/// Waits (without blocking the runtime) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_fake_holds_a_long_poll_until_an_update_and_forgets_confirmed_ones() {
    let fake = Fake::start();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    assert_eq!(me(&api).await.id, BOT_ID);
    let params = json!({"timeout": 20});
    let poll = api.call::<_, Vec<Update>>("getUpdates", &params, Duration::from_secs(20));
    let person = async {
        eventually("the poll is held open", || fake.polls_waiting() == 1).await;
        fake.dm(&ada(), "hello")
    };
    let (updates, first) = tokio::join!(poll, person);
    let updates = updates.unwrap();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].update_id, first);
    let again: Vec<Update> = api
        .call("getUpdates", &json!({"offset": first}), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "not confirmed yet: offset = its own id");
    let none: Vec<Update> = api
        .call("getUpdates", &json!({"offset": first + 1}), Duration::ZERO)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(fake.unconfirmed(), 0);
    let wrong = Api::new(
        &fake.url(),
        Secret::new("1:wrong"),
        tasks.clone(),
        stop.clone(),
    )
    .unwrap();
    let err = wrong
        .call::<_, User>("getMe", &json!({}), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err}");
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

/// A stand-in for the router's answer: every message is acknowledged with `receipt`.
async fn answer_all(
    mut inbound: mpsc::Receiver<Envelope>,
    receipt: impl Fn(&Envelope) -> Receipt,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Envelope>>>,
) {
    while let Some(mut envelope) = inbound.recv().await {
        if let Some(stored) = envelope.stored.take() {
            let _ = stored.send(receipt(&envelope));
        }
        seen.lock()
            .expect("no test panicked holding it")
            .push(envelope);
    }
}

#[tokio::test]
async fn the_offset_advances_only_past_stored_updates_and_survives_a_restart() {
    let fake = Fake::start();
    let data = tempfile::tempdir().unwrap();
    let offsets = OffsetStore::new(&data.path().join("channels/telegram"));
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let me = me(&api).await;
    let stored = fake.dm(&ada(), "one");
    let refused = fake.dm(&ada(), "two");

    // The router stores "one" but fails "two" every time: the poller keeps asking for "two",
    // never past it, until it gives up on it.
    let (sender, receiver) = mpsc::channel(16);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let poller = Poller::new(api.clone(), me.clone(), offsets.clone(), sender);
    let poller_stop = stop.child_token();
    let router = answer_all(
        receiver,
        |envelope| match envelope.event.message.content.text.as_deref() {
            Some("two") => Receipt::Failed,
            _ => Receipt::Stored { answering: vec![] },
        },
        seen.clone(),
    );
    let watch = async {
        eventually("`two` asked for again", || {
            fake.deliveries().get(&refused).copied().unwrap_or(0) >= 2
        })
        .await;
        assert_eq!(
            offsets.load(me.id).unwrap(),
            Some(refused),
            "stopped before `two`"
        );
        assert_eq!(
            fake.deliveries()[&stored],
            1,
            "`one` is never fetched again"
        );
        poller_stop.cancel();
    };
    tokio::join!(poller.run(poller_stop.clone()), router, watch);

    // A restart reads the offset back and starts at `two`.
    let (sender, receiver) = mpsc::channel(16);
    let restarted = Poller::new(api.clone(), me.clone(), offsets.clone(), sender);
    assert_eq!(restarted.next, Some(refused));
    let poller_stop = stop.child_token();
    let seen_after = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let router = answer_all(
        receiver,
        |_| Receipt::Stored { answering: vec![] },
        seen_after.clone(),
    );
    let watch = async {
        eventually("`two` stored after the restart", || {
            offsets.load(me.id).unwrap() == Some(refused + 1)
        })
        .await;
        poller_stop.cancel();
    };
    tokio::join!(restarted.run(poller_stop.clone()), router, watch);
    let texts: Vec<_> = seen_after
        .lock()
        .unwrap()
        .iter()
        .map(|envelope| envelope.event.message.content.text.clone().unwrap())
        .collect();
    assert_eq!(texts, ["two"]);
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn a_photo_arrives_as_an_attachment_with_its_bytes() {
    use base64::Engine;
    let fake = Fake::start();
    let data = tempfile::tempdir().unwrap();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let me = me(&api).await;
    let photo = b"\xff\xd8\xff\xe0 not really a jpeg";
    fake.photo(&ada(), photo, "what is this?");
    let (sender, receiver) = mpsc::channel(16);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let poller = Poller::new(api, me, OffsetStore::new(data.path()), sender);
    let poller_stop = stop.child_token();
    let router = answer_all(
        receiver,
        |_| Receipt::Stored { answering: vec![] },
        seen.clone(),
    );
    let watch = async {
        eventually("the photo routed", || !seen.lock().unwrap().is_empty()).await;
        poller_stop.cancel();
    };
    tokio::join!(poller.run(poller_stop.clone()), router, watch);
    let event = seen.lock().unwrap()[0].event.clone();
    let content = &event.message.content;
    assert_eq!(content.text.as_deref(), Some("what is this?"));
    let attachment = &content.attachments[0];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(attachment.data().unwrap())
        .unwrap();
    assert_eq!(bytes, photo);
    assert_eq!(attachment.as_map()["type"], json!("photo"));
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

fn outgoing<'a>(
    id: &'a str,
    chat: &'a str,
    content: &'a Value,
    files: &'a [OutFile],
) -> Outgoing<'a> {
    Outgoing {
        id,
        chat,
        thread: None,
        content,
        files,
    }
}

#[tokio::test]
async fn issue_12_replies_keep_markdown_special_characters_and_split_long_text() {
    let fake = Fake::start();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let progress = Progress::default();
    let special = "echo: _*[]()~>#+-=|{}.! and **bold**";
    let content = json!({"text": special});
    let id = send::deliver(&api, &progress, &outgoing("r1", "42", &content, &[]))
        .await
        .unwrap();
    assert!(id.is_some());
    let call = &fake.sent(Some(42))[0];
    assert_eq!(call.text(), Some("echo: _*[]()~>#+-=|{}.! and bold"));
    assert_eq!(
        call.params.get("parse_mode"),
        None,
        "entities, never markup"
    );
    assert_eq!(
        call.params["entities"],
        json!([{"type": "bold", "offset": 28, "length": 4}])
    );

    let paragraph = "lorem ipsum ".repeat(300);
    let long = format!("{paragraph}\n\n{paragraph}\n\n{paragraph}");
    let content = json!({"text": long});
    send::deliver(&api, &progress, &outgoing("r2", "42", &content, &[]))
        .await
        .unwrap();
    let texts = fake.texts(42);
    assert_eq!(texts.len(), 4, "one reply + three chunks");
    for chunk in &texts[1..] {
        assert_eq!(chunk, paragraph.trim());
        assert!(chunk.encode_utf16().count() <= 4096);
    }
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn issue_12_a_429_asks_to_wait_and_the_retry_sends_only_what_is_missing() {
    let fake = Fake::start();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let progress = Progress::default();
    let paragraph = "word ".repeat(700);
    let content = json!({"text": format!("{paragraph}\n\n{paragraph}")});
    // The first chunk goes through, the second is rate limited.
    fake.fail_next("sendMessage", Failure::RateLimited { retry_after: 3 });
    let err = send::deliver(&api, &progress, &outgoing("r1", "42", &content, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err.disposition(),
        Disposition::RetryAfter(Duration::from_secs(3))
    );
    assert_eq!(fake.texts(42).len(), 0);
    send::deliver(&api, &progress, &outgoing("r1", "42", &content, &[]))
        .await
        .unwrap();
    assert_eq!(fake.texts(42).len(), 2);

    fake.fail_next("sendMessage", Failure::Blocked);
    let blocked = send::deliver(
        &api,
        &progress,
        &outgoing("r3", "44", &json!({"text": "hi"}), &[]),
    )
    .await
    .unwrap_err();
    assert_eq!(blocked.disposition(), Disposition::Permanent);
    fake.fail_next("sendMessage", Failure::BadGateway);
    let gateway = send::deliver(
        &api,
        &progress,
        &outgoing("r4", "44", &json!({"text": "hi"}), &[]),
    )
    .await
    .unwrap_err();
    assert!(matches!(gateway.disposition(), Disposition::RetryAfter(_)));
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn files_edits_reactions_and_cards_reach_the_bot_api() {
    let fake = Fake::start();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let progress = Progress::default();
    let files = [
        OutFile {
            filename: "report.txt".into(),
            data: bytes::Bytes::from_static(b"the report"),
        },
        OutFile {
            filename: "chart.png".into(),
            data: bytes::Bytes::from_static(b"\x89PNG fake"),
        },
    ];
    let content = json!({"text": "here you go"});
    send::deliver(&api, &progress, &outgoing("r1", "42", &content, &files))
        .await
        .unwrap();
    let sent = fake.sent(Some(42));
    let methods: Vec<&str> = sent.iter().map(|call| call.method.as_str()).collect();
    assert_eq!(methods, ["sendMessage", "sendDocument", "sendPhoto"]);
    assert_eq!(sent[1].file.as_deref(), Some(&b"the report"[..]));
    assert_eq!(sent[1].params["document"]["filename"], json!("report.txt"));

    let edit = json!({"operation": "edit", "messageId": "1", "markdown": "*fixed*"});
    send::deliver(&api, &progress, &outgoing("r2", "42", &edit, &[]))
        .await
        .unwrap();
    let reaction = json!({"operation": "reaction", "messageId": "42_7", "emoji": "👍"});
    send::deliver(&api, &progress, &outgoing("r3", "42", &reaction, &[]))
        .await
        .unwrap();
    let question = json!({"type": "ask_question", "questionId": "q-1", "title": "Deploy?",
                          "question": "Now?", "options": ["Yes", "No"]});
    send::deliver(&api, &progress, &outgoing("r4", "42", &question, &[]))
        .await
        .unwrap();
    let sent = fake.sent(Some(42));
    assert_eq!(sent[3].method, "editMessageText");
    assert_eq!(sent[3].text(), Some("fixed"));
    assert_eq!(
        sent[4].params["reaction"],
        json!([{"type": "emoji", "emoji": "👍"}])
    );
    assert_eq!(sent[4].params["message_id"], json!(7));
    assert_eq!(
        sent[5].params["reply_markup"]["inline_keyboard"][0][1]["callback_data"],
        json!("ncq:q-1:1")
    );
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[tokio::test]
async fn a_pressed_button_is_answered_and_its_card_shows_the_choice() {
    let fake = Fake::start();
    let data = tempfile::tempdir().unwrap();
    let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
    let api = api(&fake, &tasks, &stop);
    let me = me(&api).await;
    let question = json!({"type": "ask_question", "questionId": "q-1", "title": "Deploy?",
                          "question": "Now?", "options": ["Yes", "No"]});
    let card_id = send::deliver(
        &api,
        &Progress::default(),
        &outgoing("r1", "111222333", &question, &[]),
    )
    .await
    .unwrap()
    .unwrap();
    fake.click(&ada(), 111_222_333, card_id.parse().unwrap(), "ncq:q-1:1");
    let (sender, receiver) = mpsc::channel(16);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let poller = Poller::new(api, me, OffsetStore::new(data.path()), sender);
    let poller_stop = stop.child_token();
    let router = answer_all(
        receiver,
        |_| Receipt::Stored { answering: vec![] },
        seen.clone(),
    );
    let watch = async {
        eventually("the card edited", || {
            fake.sent(Some(111_222_333))
                .iter()
                .any(|call| call.method == "editMessageText")
        })
        .await;
        poller_stop.cancel();
    };
    tokio::join!(poller.run(poller_stop.clone()), router, watch);
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .any(|call| call.method == "answerCallbackQuery")
    );
    let edit = calls
        .iter()
        .find(|call| call.method == "editMessageText")
        .unwrap();
    assert_eq!(edit.text(), Some("Deploy?\n\n✅ No"));
    assert_eq!(edit.params["reply_markup"], json!({"inline_keyboard": []}));
    assert!(
        seen.lock().unwrap().is_empty(),
        "a press is not a chat message"
    );
    stop.cancel();
    tasks.close();
    tasks.wait().await;
}

#[test]
fn auth_set_telegram_stores_the_token_privately_and_refuses_garbage() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("auth-telegram");
    let set = |input: &str| {
        let mut child = env
            .command(&["auth", "set", "telegram"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let refused = set("not-a-token\n");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("hint: BotFather"));
    let output = set(&format!("{TOKEN}\n"));
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    let file = env.data().join("credentials/telegram.json");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let status = env.run(&["auth", "status", "telegram"]);
    assert_eq!(status.code, 0, "{status:?}");
    assert_eq!(
        env.normalize(&status.stdout),
        "telegram: a bot token, stored in `$ROOT/data/credentials/telegram.json`\n"
    );
    assert!(!status.stdout.contains(TOKEN));
    let removed = env.run(&["auth", "remove", "telegram"]);
    assert_eq!(removed.code, 0, "{removed:?}");
    let status = env.run(&["auth", "status", "telegram"]);
    assert_eq!(status.code, 1, "{status:?}");
    assert!(
        status.stderr.contains("nanoclaw auth set telegram"),
        "{status:?}"
    );
}

// End to end: `nanoclaw run` with the Telegram channel pointed at the fake, real containers
// running the mock agent.

const ADA_CHAT: i64 = 111_222_333;
const GROUP_CHAT: i64 = -1_001_234_567_890;

/// An echo agent answering Ada's DM (every message) and a group (mentions only).
const TELEGRAM_AGENT: &str = "\
kind: agent
name: echo
provider: mock
---
kind: channel
name: ada-dm
channel_type: telegram
platform_id: \"111222333\"
unknown_sender_policy: public
wirings:
  - agent: echo
    engage_mode: pattern
    engage_pattern: \".\"
---
kind: channel
name: family
channel_type: telegram
platform_id: \"-1001234567890\"
is_group: true
unknown_sender_policy: public
wirings:
  - agent: echo
    engage_mode: mention
";

/// An env whose daemon talks to `fake` with the test token.
fn telegram_env(name: &str, fake: &Fake) -> Env {
    let env = Env::new(name);
    env.write("agents.yaml", TELEGRAM_AGENT);
    env.set_var("NANOCLAW_TELEGRAM_API_URL", &fake.url());
    env.set_var("TELEGRAM_BOT_TOKEN", TOKEN);
    env.set_var("NANOCLAW_LOG", "info,reconciler::runtime::typing=debug");
    env
}

#[track_caller]
fn wait_for_texts(fake: &Fake, chat: i64, count: usize, daemon: &Daemon) -> Vec<String> {
    support::wait_until(
        &format!("{count} replies in chat {chat}"),
        Duration::from_secs(90),
        || fake.texts(chat).len() >= count,
    );
    let texts = fake.texts(chat);
    assert_eq!(texts.len(), count, "{texts:?}\n{}", daemon.log());
    texts
}

#[test]
fn issue_12_a_dm_round_trip_shows_typing_until_the_reply() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-dm", &fake);
    let daemon = Daemon::start(&env);
    fake.dm(&ada(), "hello");
    let texts = wait_for_texts(&fake, ADA_CHAT, 1, &daemon);
    assert_eq!(texts, ["echo: hello"]);
    let reply_at = fake.sent(Some(ADA_CHAT))[0].at;
    let typing = fake.actions(ADA_CHAT);
    assert!(!typing.is_empty(), "typing was shown\n{}", daemon.log());
    assert_eq!(typing[0].params["action"], json!("typing"));
    assert!(typing[0].at < reply_at);
    // The refresher stops once the paused indicator finds the agent done; nothing after the
    // reply shows typing again.
    support::wait_until("typing stopped", Duration::from_secs(30), || {
        daemon.log().contains("typing stopped")
    });
    let after: Vec<_> = fake
        .actions(ADA_CHAT)
        .into_iter()
        .filter(|call| call.at > reply_at)
        .collect();
    assert!(after.is_empty(), "typing after the reply: {after:?}");
}

#[test]
fn issue_12_a_group_answers_a_mention_and_ignores_the_rest() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-group", &fake);
    let daemon = Daemon::start(&env);
    let grace = Person::new(444_555_666, "Grace", None);
    fake.group(GROUP_CHAT, &grace, "dinner at 7", false);
    fake.group(GROUP_CHAT, &grace, "what is for dinner?", true);
    let texts = wait_for_texts(&fake, GROUP_CHAT, 1, &daemon);
    assert_eq!(texts, ["echo: @nanoclaw_test_bot what is for dinner?"]);
}

#[test]
fn issue_12_special_characters_arrive_intact_and_a_long_reply_is_split() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-format", &fake);
    let daemon = Daemon::start(&env);
    fake.dm(&ada(), "_*[]()~>#+-=|{}.!");
    assert_eq!(
        wait_for_texts(&fake, ADA_CHAT, 1, &daemon),
        ["echo: _*[]()~>#+-=|{}.!"]
    );
    let long = "word ".repeat(819) + "end"; // 4098 characters: the echo is longer than 4096
    fake.dm(&ada(), &long);
    let texts = wait_for_texts(&fake, ADA_CHAT, 3, &daemon);
    assert!(texts[1].encode_utf16().count() <= 4096);
    assert_eq!(
        format!("{} {}", texts[1], texts[2]),
        format!("echo: {}", long.trim())
    );
}

#[test]
fn issue_12_a_photo_arrives_in_the_session_inbox() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-photo", &fake);
    let daemon = Daemon::start(&env);
    let photo = b"\xff\xd8\xff\xe0 a small photo";
    fake.photo(&ada(), photo, "what is this?");
    let texts = wait_for_texts(&fake, ADA_CHAT, 1, &daemon);
    // The agent is shown the caption and where the photo was saved.
    assert!(
        texts[0].starts_with("echo: what is this?\n[photo: ")
            && texts[0].contains("saved to /workspace/inbox/"),
        "{texts:?}"
    );
    let sessions = env.data().join("sessions/echo");
    let saved: Vec<Vec<u8>> = walk_files(&sessions)
        .into_iter()
        .filter(|path| path.components().any(|part| part.as_os_str() == "inbox"))
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert_eq!(saved, [photo.to_vec()], "{}", daemon.log());
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            files.extend(walk_files(&path));
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files
}

#[test]
fn issue_12_kill_9_between_updates_loses_nothing_and_repeats_nothing() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-crash", &fake);
    let offset_file = env.data().join("channels/telegram/offset.json");
    let mut daemon = Daemon::start(&env);
    let first = fake.dm(&ada(), "one");
    assert_eq!(wait_for_texts(&fake, ADA_CHAT, 1, &daemon), ["echo: one"]);
    let stored_offset = std::fs::read_to_string(&offset_file).unwrap();
    assert!(
        stored_offset.contains(&format!("\"next\":{}", first + 1)),
        "{stored_offset}"
    );
    // The crash comes between updates, not inside the send of the reply: between Telegram
    // accepting `sendMessage` and the daemon recording it no platform lets a sender tell a
    // repeat apart, so a crash there would send it again (docs/channels.md).
    support::wait_until(
        "the reply to `one` to be recorded as delivered",
        Duration::from_secs(30),
        || {
            reconciler::db::open_readonly(&env.db())
                .and_then(|conn| {
                    conn.query_row(
                        "SELECT COUNT(*) FROM delivered_outbound WHERE status = 'delivered'",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
                .is_ok_and(|count| count >= 1)
        },
    );
    daemon.crash();

    // While the daemon is down: a new message, and Telegram sending `one` again as if the
    // crash had come after storing it but before the offset was recorded.
    let second = fake.dm(&ada(), "two");
    fake.resend(first);
    std::fs::write(
        &offset_file,
        format!("{{\"bot_id\":{BOT_ID},\"next\":{first}}}"),
    )
    .unwrap();
    let daemon = Daemon::start(&env);
    let texts = wait_for_texts(&fake, ADA_CHAT, 2, &daemon);
    assert_eq!(texts, ["echo: one", "echo: two"]);
    support::wait_until(
        "the offset moves past `two`",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&offset_file)
                .unwrap_or_default()
                .contains(&format!("\"next\":{}", second + 1))
        },
    );
    assert_eq!(fake.deliveries()[&second], 1, "`two` was fetched once");
}

#[test]
fn issue_12_a_429_is_honoured_and_the_reply_sent_once() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-429", &fake);
    let daemon = Daemon::start(&env);
    fake.fail_next("sendMessage", Failure::RateLimited { retry_after: 2 });
    fake.dm(&ada(), "hello");
    assert_eq!(wait_for_texts(&fake, ADA_CHAT, 1, &daemon), ["echo: hello"]);
    let calls: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|call| call.method == "sendMessage")
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].status, 429);
    assert!(
        calls[1].at - calls[0].at >= Duration::from_secs(2),
        "the retry waited as Telegram asked: {:?}",
        calls[1].at - calls[0].at
    );
}

#[test]
fn a_telegram_chat_without_a_token_stops_the_start_naming_the_command() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = Env::new("tg-no-token");
    env.write("agents.yaml", TELEGRAM_AGENT);
    env.set_var("NANOCLAW_TELEGRAM_API_URL", &fake.url());
    let image = support::agent_image().tag;
    let run = env.run(&["run", "manifests", "--image", image]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("`nanoclaw auth set telegram`"),
        "{}",
        run.stderr
    );
    assert!(fake.calls().is_empty(), "no Telegram call without a token");
}

#[test]
fn issue_12_a_file_from_the_agents_outbox_reaches_the_chat() {
    let Some(()) = support::docker() else {
        return;
    };
    use agent_runner::session_db::container::{NewOutbound, write_outbound};
    use agent_runner::session_db::{self, Kind};
    let fake = Fake::start();
    let env = telegram_env("tg-file", &fake);
    let daemon = Daemon::start(&env);
    fake.dm(&ada(), "hello");
    assert_eq!(wait_for_texts(&fake, ADA_CHAT, 1, &daemon), ["echo: hello"]);
    // The runner has no file-sending tool yet, so the test writes what one writes: the file in
    // `outbound/outbox/<row id>/` and a row naming it (docs/runtime.md#the-message-path), into the live session.
    let sessions = env.data().join("sessions/echo");
    let session = std::fs::read_dir(&sessions)
        .expect("sessions")
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.join("inbound.db").exists())
        .expect("the DM's session");
    let row_id = session_db::new_id("msg");
    let folder = session.join("outbound/outbox").join(&row_id);
    std::fs::create_dir_all(&folder).expect("outbox folder");
    std::fs::write(folder.join("report.txt"), "the quarterly report").expect("outbox file");
    let inbound = session_db::open_inbound_container(&session_db::inbound_path(&session))
        .expect("inbound.db");
    let mut outbound = session_db::open_outbound_container(&session_db::outbound_path(&session))
        .expect("outbound.db");
    write_outbound(
        &inbound,
        &mut outbound,
        &NewOutbound {
            id: row_id.clone(),
            in_reply_to: None,
            kind: Kind::Chat,
            platform_id: Some(ADA_CHAT.to_string()),
            channel_type: Some("telegram".into()),
            thread_id: None,
            content: json!({"text": "here is the report", "files": ["report.txt"]}).to_string(),
        },
    )
    .expect("the row");
    support::wait_until("the document sent", Duration::from_secs(60), || {
        fake.sent(Some(ADA_CHAT))
            .iter()
            .any(|call| call.method == "sendDocument")
    });
    let sent = fake.sent(Some(ADA_CHAT));
    let document = sent
        .iter()
        .find(|call| call.method == "sendDocument")
        .expect("a document");
    assert_eq!(document.file.as_deref(), Some(&b"the quarterly report"[..]));
    assert_eq!(document.params["document"]["filename"], json!("report.txt"));
    assert_eq!(fake.texts(ADA_CHAT), ["echo: hello", "here is the report"]);
    support::wait_until("the outbox folder removed", Duration::from_secs(30), || {
        !folder.exists()
    });
}

#[test]
fn a_dm_from_an_unwired_chat_is_logged_with_its_chat_id() {
    let Some(()) = support::docker() else {
        return;
    };
    let fake = Fake::start();
    let env = telegram_env("tg-unwired", &fake);
    let daemon = Daemon::start(&env);
    let stranger = Person::new(987_654_321, "Stranger", Some("stranger"));
    let update = fake.dm(&stranger, "hi bot");
    support::wait_until("the update acknowledged", Duration::from_secs(30), || {
        daemon.log().contains("no agent answers")
    });
    let log = daemon.log();
    let line = log
        .lines()
        .find(|line| line.contains("no agent answers"))
        .expect("the line");
    assert!(line.contains("987654321"), "{line}");
    assert!(fake.texts(987_654_321).is_empty());
    assert_eq!(fake.deliveries()[&update], 1);
}
