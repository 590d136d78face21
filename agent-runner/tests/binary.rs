//! The real `agent-runner` binary against a host-created session folder: it answers a chat
//! message through the mock provider, and exits 0 on SIGTERM.

#![allow(clippy::unwrap_used)] // test binary: a failed setup step is a failed test

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_runner::session_db::{self, DestinationRow, NewInbound};

fn session(provider: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path();
    // What the host creates: the session folder, `inbound.db`, the (empty) `outbound/` and
    // `container.json`; the runner creates `outbound/outbound.db` itself.
    session_db::create_inbound(ws).unwrap();
    std::fs::create_dir_all(session_db::outbound_dir(ws)).unwrap();
    std::fs::write(
        session_db::container_config_path(ws),
        serde_json::json!({"provider": provider, "model": "mock-1", "assistantName": "Andy"})
            .to_string(),
    )
    .unwrap();
    let mut inb = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
    session_db::write_destinations(
        &mut inb,
        &[DestinationRow {
            name: "cli".into(),
            kind: "channel".into(),
            channel_type: Some("cli".into()),
            platform_id: Some("local".into()),
            ..DestinationRow::default()
        }],
    )
    .unwrap();
    session_db::write_session_routing(&inb, Some("cli"), Some("local"), None).unwrap();
    dir
}

fn insert(ws: &Path, id: &str, text: &str) {
    let mut inb = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
    session_db::insert_inbound(
        &mut inb,
        &[NewInbound {
            id: id.into(),
            kind: "chat".into(),
            timestamp: "2026-06-15T12:00:00Z".into(),
            channel_type: Some("cli".into()),
            platform_id: Some("local".into()),
            content: serde_json::json!({"sender": "me", "text": text}).to_string(),
            trigger: true,
            ..NewInbound::default()
        }],
    )
    .unwrap();
}

fn spawn(ws: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_agent-runner"))
        .arg("--workspace")
        .arg(ws)
        .env("TZ", "America/New_York")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Texts of the delivered-to-be rows, as the host's delivery sees them.
fn replies(ws: &Path) -> Vec<String> {
    let inb = session_db::open_inbound_host(&ws.join("inbound.db")).unwrap();
    // The runner creates `outbound.db` at its start.
    let Ok(out) = session_db::open_outbound_host(&session_db::outbound_path(ws)) else {
        return Vec::new();
    };
    // Nor its tables: a read between the file's creation and the schema finds none yet.
    let Ok(due) = session_db::due_outbound(&inb, &out, 0) else {
        return Vec::new();
    };
    due.into_iter()
        .map(|due| {
            let session_db::Due::Row(r) = due else {
                panic!("a bad row: {due:?}")
            };
            assert_eq!(
                (r.channel_type.as_deref(), r.platform_id.as_deref()),
                (Some("cli"), Some("local"))
            );
            let v: serde_json::Value = serde_json::from_str(&r.content).unwrap();
            v["text"].as_str().unwrap().to_string()
        })
        .collect()
}

fn wait_for(ws: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = replies(ws);
        if r.len() >= n {
            return r;
        }
        assert!(Instant::now() < deadline, "no reply; got {r:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn binary_answers_a_chat_message_and_stops_on_sigterm() {
    let dir = session("mock");
    let ws = dir.path();
    insert(ws, "m1", "hello");
    let child = spawn(ws);
    assert_eq!(wait_for(ws, 1), vec!["echo: hello"]);
    insert(ws, "m2", "/mock-config");
    let texts = wait_for(ws, 2);
    let cfg: serde_json::Value = serde_json::from_str(&texts[1]).unwrap();
    assert_eq!(
        (cfg["provider"].as_str(), cfg["model"].as_str()),
        (Some("mock"), Some("mock-1"))
    );
    assert!(
        cfg["system_prompt"]
            .as_str()
            .unwrap()
            .contains("# You are Andy")
    );

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "the runner never writes stdout");
    let turns = std::fs::read_to_string(ws.join("outbound/.mock/turns.jsonl")).unwrap();
    assert!(turns.contains(r#"timezone=\"America/New_York\""#));
    assert!(turns.contains("Jun 15, 2026, 8:00 AM"));
}

#[test]
fn unknown_provider_is_fatal_and_lists_registered() {
    let dir = session("codex");
    let out = spawn(dir.path()).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Unknown provider: codex. Registered: claude, mock"),
        "{stderr}"
    );
}

#[test]
fn idle_binary_exits_zero_on_sigint() {
    use std::io::{BufRead, BufReader, Read};
    let dir = session("mock");
    let ws = dir.path();
    let mut child = spawn(ws);
    // Signal handlers are installed before the provider starts and logs `Starting`.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Starting agent-runner") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "runner exited early"
        );
    }
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(code, Some(0), "stderr: {rest}");
    assert!(rest.contains("Stop requested, exiting"));
    assert!(replies(ws).is_empty());
}

/// Issue 9 point 1: a config from a newer, incompatible host stops the runner with the reason
/// (exit 1) instead of running on a misread config; unknown keys of a compatible one are logged.
#[test]
fn a_config_from_a_newer_incompatible_host_is_refused_and_unknown_keys_are_logged() {
    let dir = session("mock");
    let ws = dir.path();
    let config = session_db::container_config_path(ws);
    std::fs::write(&config, r#"{"version": 99, "provider": "mock"}"#).unwrap();
    let out = spawn(ws).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "is version 99 of the container contract; this runner understands up to version 1"
        ),
        "{stderr}"
    );

    std::fs::write(&config, r#"{"provider": "mock", "fromTheFuture": true}"#).unwrap();
    insert(ws, "m1", "hello");
    let child = spawn(ws);
    assert_eq!(wait_for(ws, 1), vec!["echo: hello"]);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not know are ignored") && stderr.contains("fromTheFuture"),
        "{stderr}"
    );
}
