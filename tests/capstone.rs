//! Issue 13's "Done when" as one end-to-end test: an agent on Claude (the real Claude Code in
//! the production test image, against the fake Anthropic API), asked in Telegram (the fake Bot
//! API) to install a package and convert a file, asks the owner; the owner taps Approve; the
//! manifests gain the package in a git commit; the daemon builds the per-agent image and
//! restarts the agent, whose fresh container runs the package, converts the file and sends it
//! back to the chat. Every piece is real except the two services we cannot reach.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::agent_env::auth_set;
use crate::runtime::Daemon;
use crate::self_modify::{
    containers, docker, git, manifests_in_git, plan_shows_no_changes, session_of, taken,
};
use crate::support::fake_anthropic::{FakeAnthropic, Reply, Script, When};
use crate::support::fake_telegram::{Call, Fake, Person, TOKEN};
use crate::support::{self, Env};

/// The key `nanoclaw auth set anthropic` stores; the fake accepts only it.
const KEY: &str = "sk-ant-api03-e2e-capstone-key-0123456789";
/// Ada's Telegram user id, which is also her DM's chat id.
const ADA: i64 = 111_222_333;
/// The file Ada sends, and what the agent makes of it.
const NOTES: &[u8] = b"buy milk\ncall grace\n";
const CONVERTED: &[u8] = b"BUY MILK\nCALL GRACE\n";
/// The on-wake note the fresh container's first prompt carries (docs/runtime.md).
const ON_WAKE: &str = "Packages installed (apt: tree) and container rebuilt.";

/// The agent `claude` on the production test image (with comments a re-serialisation would
/// lose), Ada's DM wired to it, Ada the owner.
fn manifest() -> String {
    format!(
        "\
# Ada's assistant: nanoclaw edits this file when she approves a change.
kind: agent
name: claude # the agent on Claude
provider: claude
network: none
image: {image}

# packages land below
---
kind: channel
name: ada-dm
channel_type: telegram
platform_id: \"111222333\"
unknown_sender_policy: public
wirings:
  - agent: claude
    engage_mode: pattern
    engage_pattern: \".\"
---
kind: user
id: \"telegram:111222333\"
display_name: Ada
roles: [owner]
",
        image = support::production_test_image()
    )
}

/// A model answer the runner sends to Ada's DM (the destination is the channel's name).
fn to_ada(text: &str) -> Reply {
    Reply::text(&format!("<message to=\"ada-dm\">{text}</message>"))
}

fn tool(name: &str, input: Value) -> Reply {
    Reply::Tool {
        text: "On it.".into(),
        name: format!("mcp__nanoclaw__{name}"),
        input,
    }
}

/// The model's side of the conversation, turn by turn.
fn script() -> Script {
    // Turn 2 runs the package and converts the file the inbox holds (the prompt names it).
    let convert = "tree --version && tr a-z A-Z < /workspace/inbox/*/notes.txt > /workspace/agent/notes-upper.txt && echo CONVERTED";
    Script::new()
        .require_key(KEY)
        // Turn 1: ask for the package, then say so.
        .once(
            When::LastUserContains("install tree and convert this file".into()),
            tool(
                "install_packages",
                json!({"apt": ["tree"], "reason": "to convert the file Ada sent"}),
            ),
        )
        .once(
            When::ToolResultContains("Package install request submitted".into()),
            to_ada("asked the admin"),
        )
        // Turn 2, in the fresh container on the per-agent image.
        .once(When::LastUserContains(ON_WAKE.into()), Reply::bash(convert))
        .once(
            When::ToolResultContains("CONVERTED".into()),
            tool(
                "send_file",
                json!({"path": "notes-upper.txt", "text": "here is your file in capitals"}),
            ),
        )
        .once(
            When::ToolResultContains("File sent to".into()),
            to_ada("done: tree works and the file is converted"),
        )
        // Anything else (the host's notes about the request) gets thinking only: nothing sent.
        .fallback(Reply::text("<internal>nothing to tell Ada</internal>"))
}

/// The button labelled `label` on the card `call`: its callback data.
fn button(call: &Call, label: &str) -> String {
    let markup = match &call.params["reply_markup"] {
        Value::String(text) => serde_json::from_str(text).expect("markup"),
        value => value.clone(),
    };
    markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|button| button["text"] == json!(label))
        .and_then(|button| button["callback_data"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no `{label}` button on {call:?}"))
}

/// What the bot sent Ada, one key per message: the method and its text, caption or file.
fn sent_to_ada(fake: &Fake) -> Vec<String> {
    fake.sent(Some(ADA))
        .iter()
        .map(|call| {
            let body = call
                .text()
                .or(call.params.get("caption").and_then(Value::as_str))
                .map(str::to_string)
                .unwrap_or_default();
            let file = call
                .file
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .unwrap_or_default();
            format!("{} {body} {file}", call.method)
        })
        .collect()
}

/// Removes this install's per-agent images when dropped (unless `NANOCLAW_TEST_KEEP=1`),
/// whether or not the test got as far as seeing them; their layers stay cached.
struct AgentImages(String);

impl Drop for AgentImages {
    fn drop(&mut self) {
        if support::keep_docker_objects() {
            return;
        }
        let reference = format!("reference=nanoclaw-agent-{}-*", self.0);
        let listed = docker(&[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            &reference,
        ]);
        for tag in listed.unwrap_or_default().lines() {
            let _ = docker(&["image", "rm", "--force", "--no-prune", tag]);
        }
    }
}

/// [`support::wait_until`], and on a timeout what Ada got and the daemon's log.
#[track_caller]
fn eventually(
    what: &str,
    deadline: Duration,
    (telegram, daemon): (&Fake, &Daemon),
    cond: impl FnMut() -> bool,
) {
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        support::wait_until(what, deadline, cond)
    }));
    if waited.is_err() {
        panic!(
            "timed out waiting for: {what}\nsent to Ada: {:#?}\n{}",
            sent_to_ada(telegram),
            daemon.log()
        );
    }
}

#[test]
fn issue_13_on_telegram_claude_installs_a_package_after_the_owners_tap_and_sends_the_converted_file_back()
 {
    let Some(()) = support::docker() else { return };
    support::production_image();
    let anthropic = FakeAnthropic::start(script());
    let telegram = Fake::start();
    let env = Env::new("capstone");
    let _images = AgentImages(reconciler::paths::slug_of(&env.data()));
    let manifest = manifest();
    let file = manifests_in_git(&env, &manifest);
    env.set_var("NANOCLAW_ANTHROPIC_BASE_URL", &anthropic.url());
    env.set_var("NANOCLAW_TELEGRAM_API_URL", &telegram.url());
    env.set_var("TELEGRAM_BOT_TOKEN", TOKEN);
    auth_set(&env, KEY);
    let daemon = Daemon::start(&env);
    let ada = Person::new(ADA, "Ada", Some("ada"));

    // Ada sends the file and the request.
    telegram.document(
        &ada,
        "notes.txt",
        "text/plain",
        NOTES,
        "install tree and convert this file",
    );

    // Turn 1: Claude asks for the package; Ada gets the card in her DM.
    let card = || {
        telegram
            .sent(Some(ADA))
            .into_iter()
            .find(|call| call.method == "sendMessage" && call.params.contains_key("reply_markup"))
    };
    eventually(
        "the approval card in Ada's DM",
        Duration::from_secs(180),
        (&telegram, &daemon),
        || card().is_some(),
    );
    let card = card().expect("the card");
    let text = card.text().unwrap_or_default();
    assert!(
        text.contains("Install Packages Request")
            && text.contains("Agent \"claude\" is attempting to install a package")
            && text.contains("apt: tree")
            && text.contains("Reason: to convert the file Ada sent"),
        "{text}"
    );
    // The file is in the session's inbox, where the prompt said it was.
    let session = session_of(&env, "claude").expect("the agent's session");
    let inbox = env
        .data()
        .join("sessions/claude")
        .join(&session)
        .join("inbox");
    let saved: Vec<_> = std::fs::read_dir(&inbox)
        .expect("the inbox")
        .flatten()
        .map(|entry| entry.path().join("notes.txt"))
        .filter(|path| path.is_file())
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(std::fs::read(&saved[0]).expect("the saved file"), NOTES);
    let first = anthropic
        .messages_requests()
        .first()
        .map(|exchange| exchange.body.to_string())
        .unwrap_or_default();
    assert!(
        first.contains("[document: notes.txt — saved to /workspace/inbox/"),
        "the prompt names the file: {first}"
    );
    eventually(
        "the agent's answer to turn 1",
        Duration::from_secs(60),
        (&telegram, &daemon),
        || {
            telegram
                .texts(ADA)
                .iter()
                .any(|text| text == "asked the admin")
        },
    );

    // Ada taps Approve.
    let message_id = card.answer["result"]["message_id"]
        .as_i64()
        .expect("the card's message id");
    telegram.click(&ada, ADA, message_id, &button(&card, "Approve"));
    eventually(
        "the approver to be told the change landed",
        Duration::from_secs(120),
        (&telegram, &daemon),
        || {
            telegram
                .texts(ADA)
                .iter()
                .any(|text| text.starts_with("✅ agent claude: "))
        },
    );
    let landed = telegram
        .texts(ADA)
        .into_iter()
        .find(|text| text.starts_with("✅ agent claude: "))
        .expect("the landing message");
    assert!(
        landed.contains("packages.apt: tree written to")
            && landed.contains(", committed ")
            && landed.contains("applied (generation 2)"),
        "{landed}"
    );

    // The manifest gained the package, comments and blank lines intact, in a commit by
    // nanoclaw naming the agent, the change and the approver.
    let image_line = format!("image: {}\n", support::production_test_image());
    assert_eq!(
        std::fs::read_to_string(&file).expect("the manifest"),
        manifest.replace(
            &image_line,
            &format!("{image_line}packages: {{apt: [tree]}}\n")
        ),
        "only the packages line is new"
    );
    let dir = env.manifests();
    let newest = git(&dir, &["log", "-n", "1", "--format=%an <%ae>|%s|%b"]);
    assert!(
        newest.starts_with(
            "nanoclaw <nanoclaw@localhost>|agent claude: install packages (apt: tree)|Requested by agent `claude`, approved by `telegram:111222333` (approval "
        ),
        "{newest}"
    );
    assert_eq!(git(&dir, &["rev-list", "--count", "HEAD"]).trim(), "2");
    assert_eq!(git(&dir, &["status", "--porcelain"]), "", "nothing dirty");
    plan_shows_no_changes(&env);

    // The daemon built the per-agent image and a fresh container on it took the on-wake note.
    let mut running = Vec::new();
    // (`docker ps` is asked again until it lists the one container: on a busy daemon a
    // listing can fail while other containers are removed.)
    eventually(
        "the per-agent image built and a fresh container taking the on-wake note",
        Duration::from_secs(600),
        (&telegram, &daemon),
        || {
            // Taken first: then the old container (same name) is gone.
            taken(&env, "claude", ON_WAKE) && {
                running = containers(&env);
                running.len() == 1
            }
        },
    );
    let (id, image) = &running[0];
    let recorded: (Option<String>, Option<String>) = reconciler::db::open_readonly(&env.db())
        .expect("the central DB")
        .query_row(
            "SELECT tag, error FROM agent_images WHERE agent_group_id = 'claude'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the agent's image is recorded");
    assert_eq!(
        recorded,
        (Some(image.clone()), None),
        "the container runs the per-agent image the daemon built"
    );
    assert!(
        image.starts_with("nanoclaw-agent-"),
        "the per-agent image: {image}"
    );
    let version = docker(&["exec", id, "tree", "--version"])
        .unwrap_or_else(|| panic!("tree runs in the agent's container\n{}", daemon.log()));
    assert!(version.starts_with("tree v"), "{version}");

    // Turn 2: the converted file comes back to Ada's DM, then the agent's last word.
    eventually(
        "the agent's last answer",
        Duration::from_secs(180),
        (&telegram, &daemon),
        || {
            telegram
                .texts(ADA)
                .iter()
                .any(|text| text == "done: tree works and the file is converted")
        },
    );
    let bash = anthropic
        .messages_requests()
        .into_iter()
        .map(|exchange| exchange.body.to_string())
        .find(|body| body.contains("CONVERTED") && body.contains("tree v"))
        .is_some();
    assert!(bash, "the fake saw `tree --version` run in turn 2");
    let documents: Vec<Call> = telegram
        .sent(Some(ADA))
        .into_iter()
        .filter(|call| call.method == "sendDocument")
        .collect();
    assert_eq!(documents.len(), 1, "{documents:#?}");
    assert_eq!(documents[0].file.as_deref(), Some(CONVERTED));
    assert_eq!(
        documents[0].params["document"]["filename"],
        json!("notes-upper.txt")
    );

    // Every message reached Ada once: the card, the answers, the landing note, the file.
    let mut seen = BTreeMap::<String, usize>::new();
    for message in sent_to_ada(&telegram) {
        *seen.entry(message).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "sent twice: {twice:#?}\n{seen:#?}");
    for text in [
        "asked the admin",
        "done: tree works and the file is converted",
    ] {
        assert_eq!(
            telegram
                .texts(ADA)
                .iter()
                .filter(|sent| *sent == text)
                .count(),
            1,
            "{text}: {:#?}",
            telegram.texts(ADA)
        );
    }
}
