//! Session files against a real daemon and real containers: links an agent plants never make
//! the host write outside the data dir (issue 7), a data dir of the previous layout keeps its
//! pending message and undelivered reply, and lost or damaged session DBs do not silence a chat
//! (issue 8 point 12).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_runner::session_db;

use crate::runtime::{CLI_AGENT, Daemon, sessions};
use crate::support::{self, Env};

/// A chat client that keeps every line the host sends (replies and notices).
struct Listener {
    writer: UnixStream,
    lines: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Listener {
    fn connect(env: &Env) -> Listener {
        let stream = UnixStream::connect(env.data().join("cli.sock")).expect("connect");
        let mut writer = stream.try_clone().expect("clone");
        writeln!(writer, r#"{{"hello": {{"platform_id": "local"}}}}"#).expect("hello");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str(&line) {
                    sink.lock().expect("lines").push(value);
                }
            }
        });
        Listener { writer, lines }
    }

    fn say(&mut self, text: &str) {
        writeln!(self.writer, "{}", serde_json::json!({ "text": text })).expect("send");
    }

    /// Texts received so far: replies and notices.
    fn texts(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter_map(|line| line.get("text")?.as_str().map(str::to_string))
            .collect()
    }

    #[track_caller]
    fn wait_for(&self, what: &str, daemon: &Daemon<'_>) {
        let deadline = Duration::from_secs(60);
        let start = std::time::Instant::now();
        while start.elapsed() < deadline {
            if self.texts().iter().any(|text| text.contains(what)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no `{what}` within {deadline:?}; got {:?}\n{}",
            self.texts(),
            daemon.log()
        );
    }
}

fn chat(env: &Env, text: &str) -> String {
    let run = env.run(&["chat", "--message", text, "--timeout", "60s"]);
    assert_eq!(run.code, 0, "chat `{text}`: {}", run.stderr);
    run.stdout.trim().to_string()
}

fn session_dir(env: &Env) -> PathBuf {
    let (session, agent) = sessions(env).pop().expect("a session");
    env.data().join("sessions").join(agent).join(session)
}

fn wait_idle(daemon: &Daemon<'_>) {
    support::wait_until(
        "the idle container to be stopped",
        Duration::from_secs(60),
        || daemon.containers().is_empty(),
    );
}

const SECRET: &str = "outside the data dir\n";

#[test]
fn issue_7_links_planted_in_the_agents_folder_never_make_the_host_overwrite_a_file() {
    let Some(()) = support::docker() else {
        return;
    };
    // The reproduced attack: the host wrote `<name>.nanoclaw-tmp-<pid>-<n>` into the agent's
    // folder with a write that follows links, then renamed it; links planted at those names
    // made it overwrite any file on the host as root.
    let env = Env::new("planted-links");
    env.write(
        "agents.yaml",
        &CLI_AGENT.replace(
            "provider: mock\n",
            "provider: mock\ninstructions: be brief\n",
        ),
    );
    let daemon = Daemon::start_with(&env, &["--idle-timeout", "2s"]);
    assert_eq!(chat(&env, "first"), "echo: first");
    wait_idle(&daemon);
    let outside = env.root.path().join("outside.txt");
    std::fs::write(&outside, SECRET).expect("outside file");
    let group = env.data().join("groups/echo");
    let session = session_dir(&env);
    let plant = |at: &Path| {
        let _ = std::fs::remove_file(at);
        std::os::unix::fs::symlink(&outside, at).expect("plant");
    };
    for name in [
        "CLAUDE.local.md",
        "container.json",
        "CLAUDE.md",
        ".claude-local.seed",
    ] {
        plant(&group.join(name));
    }
    for stem in ["container", "CLAUDE", "CLAUDE.local", ".claude-local"] {
        for n in 0..32 {
            plant(&group.join(format!("{stem}.nanoclaw-tmp-{}-{n}", daemon.pid())));
        }
    }
    plant(&session.join("outbound/.heartbeat"));
    assert_eq!(
        chat(&env, "second"),
        "echo: second",
        "a new container starts"
    );
    assert_eq!(
        std::fs::read_to_string(&outside).expect("outside"),
        SECRET,
        "the file outside the data dir is unchanged\n{}",
        daemon.log()
    );
    assert!(
        std::fs::symlink_metadata(session.join("outbound/.heartbeat")).is_err()
            || std::fs::symlink_metadata(session.join("outbound/.heartbeat"))
                .is_ok_and(|meta| meta.is_file()),
        "the planted heartbeat link was removed, not followed"
    );
}

#[test]
fn a_session_of_the_previous_layout_keeps_its_pending_message_and_undelivered_reply() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("old-layout");
    env.write("agents.yaml", CLI_AGENT);
    let mut daemon = Daemon::start(&env);
    assert_eq!(chat(&env, "hello"), "echo: hello");
    assert_eq!(daemon.stop(), 0, "{}", daemon.log());
    drop(daemon);

    // Turn the session back into the previous layout: DBs and outbox at the top of the
    // session folder, the composed files in the agent's folder, everything the old root-run
    // container would have left owned by root.
    let session = session_dir(&env);
    let group = env.data().join("groups/echo");
    std::fs::rename(
        session.join("outbound/outbound.db"),
        session.join("outbound.db"),
    )
    .expect("move outbound.db back");
    std::fs::rename(session.join("outbound/outbox"), session.join("outbox")).expect("outbox");
    std::fs::remove_dir_all(session.join("outbound")).expect("outbound/");
    for composed in ["container.json", "CLAUDE.md"] {
        std::fs::rename(session.join(composed), group.join(composed)).expect("composed file");
    }
    std::fs::rename(
        session.join(".claude-fragments"),
        group.join(".claude-fragments"),
    )
    .expect("fragments");
    std::fs::remove_dir(session.join("agent")).expect("mount point");
    std::fs::rename(
        env.data().join("sessions/echo/claude-local.seed"),
        group.join(".claude-local.seed"),
    )
    .expect("seed");
    let inbound = session_db::open_inbound_host(&session.join("inbound.db")).expect("inbound");
    inbound
        .as_connection()
        .execute_batch(
            "INSERT INTO messages_in (id, seq, kind, timestamp, status, platform_id, channel_type,
               thread_id, content, trigger, series_id)
             SELECT 'old-1:echo', seq + 2, kind, timestamp, 'pending', platform_id, channel_type,
               thread_id, json_set(content, '$.text', 'pending from before'), 1, 'old-1:echo'
             FROM messages_in ORDER BY seq DESC LIMIT 1;",
        )
        .expect("pending message");
    let outbound =
        session_db::open_outbound_container(&session.join("outbound.db")).expect("outbound");
    outbound
        .as_connection()
        .execute_batch(
            "INSERT INTO messages_out (id, seq, in_reply_to, timestamp, kind, platform_id,
               channel_type, thread_id, content)
             SELECT 'old-reply', seq + 100, in_reply_to, timestamp, kind, platform_id,
               channel_type, thread_id, json_object('text', 'undelivered from before')
             FROM messages_out ORDER BY seq DESC LIMIT 1;",
        )
        .expect("undelivered reply");
    drop((inbound, outbound));
    std::process::Command::new("chown")
        .args(["-R", "0:0"])
        .arg(&session)
        .arg(&group)
        .status()
        .expect("chown");

    let daemon = Daemon::start(&env);
    let listener = Listener::connect(&env);
    listener.wait_for("undelivered from before", &daemon);
    listener.wait_for("echo: pending from before", &daemon);
    assert!(session.join("outbound/outbound.db").is_file());
    assert!(!session.join("outbound.db").exists());
    assert!(!group.join("container.json").exists());
    assert!(!group.join(".claude-local.seed").exists());
    assert!(session.join("container.json").is_file());
    let texts = listener.texts();
    assert_eq!(
        texts
            .iter()
            .filter(|text| text.contains("echo: hello"))
            .count(),
        0,
        "the reply delivered before the upgrade is not sent again: {texts:?}"
    );
}

#[test]
fn issue_8_deleting_outbound_db_under_a_running_container_keeps_the_chat_alive() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("outbound-deleted-running");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    assert_eq!(chat(&env, "one"), "echo: one");
    assert_eq!(daemon.containers().len(), 1);
    std::fs::remove_file(session_dir(&env).join("outbound/outbound.db")).expect("delete");
    // The mock answers a follow-up in its open query with the query's whole history.
    let reply = chat(&env, "two");
    assert!(
        reply.ends_with("echo: two"),
        "answered without a daemon restart: {reply:?}\n{}",
        daemon.log()
    );
}

#[test]
fn issue_8_deleting_outbound_db_between_containers_keeps_the_chat_alive() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("outbound-deleted-idle");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start_with(&env, &["--idle-timeout", "2s"]);
    assert_eq!(chat(&env, "one"), "echo: one");
    wait_idle(&daemon);
    std::fs::remove_file(session_dir(&env).join("outbound/outbound.db")).expect("delete");
    assert_eq!(chat(&env, "two"), "echo: two", "{}", daemon.log());
}

#[test]
fn issue_8_deleting_inbound_db_never_sends_an_earlier_reply_again() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("inbound-deleted");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start(&env);
    let mut listener = Listener::connect(&env);
    listener.say("one");
    listener.wait_for("echo: one", &daemon);
    std::fs::remove_file(session_dir(&env).join("inbound.db")).expect("delete");
    listener.say("two");
    listener.wait_for("echo: two", &daemon);
    let texts = listener.texts();
    assert_eq!(
        texts
            .iter()
            .filter(|text| text.contains("echo: one"))
            .count(),
        1,
        "the earlier reply is not sent again: {texts:?}"
    );
}

#[test]
fn issue_8_a_garbage_outbound_db_is_told_once_and_replaced_when_the_agent_next_runs() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("outbound-garbage");
    env.write("agents.yaml", CLI_AGENT);
    let daemon = Daemon::start_with(&env, &["--idle-timeout", "2s"]);
    let mut listener = Listener::connect(&env);
    listener.say("one");
    listener.wait_for("echo: one", &daemon);
    wait_idle(&daemon);
    let outbound = session_dir(&env).join("outbound/outbound.db");
    std::fs::write(&outbound, vec![0x5a; 8192]).expect("garbage");
    listener.wait_for("outbound.db is damaged", &daemon);
    assert!(
        daemon.log().contains("session DB damaged or missing"),
        "{}",
        daemon.log()
    );
    listener.say("two");
    listener.wait_for("echo: two", &daemon);
    let notices = listener
        .texts()
        .iter()
        .filter(|text| text.contains("outbound.db is damaged"))
        .count();
    assert_eq!(notices, 1, "told once: {:?}", listener.texts());
    let aside = std::fs::read_dir(session_dir(&env).join("outbound"))
        .expect("outbound/")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.file_name().to_string_lossy().contains(".damaged-"))
        })
        .count();
    assert_eq!(aside, 1, "the runner moved the damaged file aside");
}
