//! Hook mode: stdin JSON in → stdout out, `container_state` written, archives written.

use expect_test::expect;
use serde_json::json;

use super::*;
use crate::session_db::ContainerState;

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(session_db::outbound_dir(dir.path())).unwrap();
    dir
}

fn state(workspace: &Path) -> Option<ContainerState> {
    let db = session_db::open_outbound_host(&session_db::outbound_path(workspace)).unwrap();
    session_db::container_state(&db).unwrap()
}

fn pre(tool: &str, input: Value) -> String {
    json!({"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": input, "tool_use_id": "toolu_01"}).to_string()
}

#[test]
fn a_blocked_tool_is_refused_with_the_v2_message_and_nothing_recorded() {
    let ws = workspace();
    for tool in BLOCKED_TOOLS {
        let out = run(
            HookEvent::PreToolUse,
            &pre(tool, json!({})),
            ws.path(),
            "UTC",
        );
        let answer: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(answer["decision"], "block");
        assert_eq!(
            answer["reason"],
            format!(
                "Tool '{tool}' is not available in this environment — use the nanoclaw equivalent."
            )
        );
    }
    assert!(!session_db::outbound_path(ws.path()).exists());
}

#[test]
fn a_bash_call_records_the_tool_and_its_declared_timeout_until_it_ends() {
    let ws = workspace();
    let out = run(
        HookEvent::PreToolUse,
        &pre("Bash", json!({"command": "sleep 600", "timeout": 900000})),
        ws.path(),
        "UTC",
    );
    assert_eq!(out, "", "an allowed call prints nothing");
    let during = state(ws.path()).unwrap();
    assert_eq!(during.current_tool.as_deref(), Some("Bash"));
    assert_eq!(during.tool_declared_timeout_ms, Some(900_000));
    assert!(during.tool_started_at.is_some());

    let post = json!({"session_id": "s1", "hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {}, "tool_response": {"stdout": ""}}).to_string();
    assert_eq!(run(HookEvent::PostToolUse, &post, ws.path(), "UTC"), "");
    let after = state(ws.path()).unwrap();
    assert_eq!(after.current_tool, None);
    assert_eq!(after.tool_declared_timeout_ms, None);

    run(
        HookEvent::PreToolUse,
        &pre("Read", json!({"file_path": "/x", "timeout": 5})),
        ws.path(),
        "UTC",
    );
    let read = state(ws.path()).unwrap();
    assert_eq!(read.current_tool.as_deref(), Some("Read"));
    assert_eq!(
        read.tool_declared_timeout_ms, None,
        "only Bash declares one"
    );
    run(HookEvent::PostToolUseFailure, &post, ws.path(), "UTC");
    assert_eq!(state(ws.path()).unwrap().current_tool, None);
}

#[test]
fn bad_input_is_ignored_without_blocking() {
    let ws = workspace();
    assert_eq!(run(HookEvent::PreToolUse, "not json", ws.path(), "UTC"), "");
    assert!(!session_db::outbound_path(ws.path()).exists());
}

#[test]
fn precompact_archives_the_transcript_into_the_agent_folder() {
    let ws = workspace();
    let transcript = ws.path().join("s1.jsonl");
    std::fs::write(
        &transcript,
        "{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"hello\"}}\n",
    )
    .unwrap();
    std::fs::write(
        session_db::container_config_path(ws.path()),
        r#"{"assistantName":"Andy"}"#,
    )
    .unwrap();
    let input = json!({"session_id": "s1", "hook_event_name": "PreCompact", "transcript_path": transcript, "trigger": "manual", "custom_instructions": ""});
    assert_eq!(
        run(HookEvent::PreCompact, &input.to_string(), ws.path(), "UTC"),
        ""
    );
    let archived: Vec<_> = std::fs::read_dir(ws.path().join("agent/conversations"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(archived.len(), 1);
    assert!(
        archived[0].ends_with(".md") && archived[0].contains("-conversation-"),
        "{archived:?}"
    );
}

#[test]
fn the_settings_register_every_hook_on_the_runner_binary() {
    expect![[r#"
        {
          "hooks": {
            "PreToolUse": [
              {
                "hooks": [
                  {
                    "type": "command",
                    "command": "/agent-runner hook pre-tool-use"
                  }
                ]
              }
            ],
            "PostToolUse": [
              {
                "hooks": [
                  {
                    "type": "command",
                    "command": "/agent-runner hook post-tool-use"
                  }
                ]
              }
            ],
            "PostToolUseFailure": [
              {
                "hooks": [
                  {
                    "type": "command",
                    "command": "/agent-runner hook post-tool-use-failure"
                  }
                ]
              }
            ],
            "PreCompact": [
              {
                "hooks": [
                  {
                    "type": "command",
                    "command": "/agent-runner hook pre-compact"
                  }
                ]
              }
            ]
          },
          "env": {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1"
          }
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&settings_json(RUNNER_IN_IMAGE)).unwrap());
    for event in HookEvent::ALL {
        assert_eq!(HookEvent::from_arg(event.arg()), Some(event));
    }
    assert_eq!(HookEvent::from_arg("PreToolUse"), None);
}

#[test]
fn the_host_settings_file_is_preferred() {
    let ws = workspace();
    std::fs::write(ws.path().join(SETTINGS_FILE), "{}").unwrap();
    assert_eq!(
        settings_file(ws.path()),
        Some(ws.path().join(SETTINGS_FILE))
    );
}
