//! Translation of the stream-json transcripts recorded from Claude Code 2.1.332
//! (`tests/fixtures/claude-code/`), and of the lines those runs did not print.

use std::path::PathBuf;

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;

fn fixture(name: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/claude-code")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    fixture["printed"].as_array().unwrap().clone()
}

/// One line per output line: its type, then the events it became (activity left out: every
/// line has it first, checked below).
fn render(lines: &[Value]) -> String {
    let mut out = String::new();
    for line in lines {
        let translation = translate(line);
        assert_eq!(translation.events[0], ProviderEvent::Activity);
        let kind = format!(
            "{}{}",
            line["type"].as_str().unwrap_or("?"),
            line["subtype"]
                .as_str()
                .map(|s| format!("/{s}"))
                .unwrap_or_default()
        );
        let mut events: Vec<String> = translation.events[1..]
            .iter()
            .map(|event| match event {
                ProviderEvent::Init { .. } => "Init(<session>)".to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        if translation.ends_turn {
            events.push("<end of turn>".into());
        }
        if let Some(failure) = translation.failure {
            events.push(format!("failure: {failure}"));
        }
        out.push_str(&format!("{kind}: {}\n", events.join(", ")));
    }
    out
}

#[track_caller]
fn check(lines: &[Value], expect: Expect) {
    expect.assert_eq(&render(lines));
}

#[test]
fn a_text_round_trip_is_init_then_the_result() {
    let lines = fixture("text-round-trip");
    check(
        &lines,
        expect![[r#"
            system/init: Init(<session>)
            assistant: 
            result/success: Result { text: Some("Hello from the fake API.") }, <end of turn>
        "#]],
    );
    let Some(ProviderEvent::Init { continuation }) = translate(&lines[0]).events.pop() else {
        panic!("no init")
    };
    assert_eq!(Some(continuation.as_str()), lines[0]["session_id"].as_str());
}

#[test]
fn a_tool_call_is_activity_until_the_result() {
    check(
        &fixture("bash-tool-call"),
        expect![[r#"
            system/init: Init(<session>)
            assistant: 
            assistant: 
            user: 
            assistant: 
            result/success: Result { text: Some("The answer is 42.") }, <end of turn>
        "#]],
    );
}

#[test]
fn a_rejected_key_becomes_the_operator_message() {
    check(
        &fixture("rejected-key"),
        expect![[r#"
            system/init: Init(<session>)
            assistant: 
            result/success: TurnError { reply: "I can't reach Claude: the Anthropic credential of this nanoclaw install is missing or was rejected. The operator must set a valid one on the host with `nanoclaw auth set anthropic`; then send your message again." }, <end of turn>
        "#]],
    );
}

#[test]
fn compaction_is_a_notice_and_its_empty_result_ends_the_turn() {
    check(
        &fixture("compact"),
        expect![[r#"
            system/init: Init(<session>)
            assistant: 
            result/success: Result { text: Some("Hello there.") }, <end of turn>
            system/status: 
            system/status: 
            system/init: Init(<session>)
            system/compact_boundary: Progress { message: "Context compacted (21 tokens compacted)." }
            user: 
            user: 
            result/success: Result { text: Some("") }, <end of turn>
        "#]],
    );
}

#[test]
fn retries_errors_and_notifications_translate_as_in_v2() {
    check(
        &[
            json!({"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":1022,"error_status":529,"error":"overloaded","session_id":"d09662ba"}),
            json!({"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger":"auto","pre_tokens":165432}}),
            json!({"type":"system","subtype":"compact_boundary","compact_metadata":{"trigger":"auto"}}),
            json!({"type":"system","subtype":"task_notification","summary":"subagent done"}),
            json!({"type":"result","subtype":"success","is_error":true,"result":"API Error: Repeated 529 Overloaded errors.","session_id":"x"}),
            json!({"type":"result","subtype":"error_max_turns","is_error":true,"session_id":"x"}),
            json!({"type":"rate_limit_event"}),
            json!("not an object"),
        ],
        expect![[r#"
            system/api_retry: Error { message: "API retry 1/10 after status 529 (overloaded), next in 1022 ms", retryable: true }
            system/compact_boundary: Progress { message: "Context compacted (165,432 tokens compacted)." }
            system/compact_boundary: Progress { message: "Context compacted." }
            system/task_notification: Progress { message: "subagent done" }
            result/success: TurnError { reply: "Error: API Error: Repeated 529 Overloaded errors." }, <end of turn>
            result/error_max_turns: Result { text: None }, <end of turn>, failure: Claude Code could not run the turn: error_max_turns
            rate_limit_event: 
            ?: 
        "#]],
    );
}

/// What Claude Code 2.1.332 printed for `--resume` of an unknown id and of a non-id.
#[test]
fn a_lost_conversation_is_session_invalid_and_other_failures_are_not() {
    let unknown = json!({"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"0b5b3a2e-1111-2222-3333-444455556666","errors":["No conversation found with session ID: 0b5b3a2e-1111-2222-3333-444455556666"]});
    let malformed = json!({"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"9248f425","errors":["Error: --resume requires a valid session ID or session title when used with --print. Usage: claude -p --resume <session-id|title>. Provided value \"not-a-uuid\" is not a UUID and does not match any session title."]});
    let other = json!({"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"x","errors":["something else broke"]});
    let failure = |line: &Value| translate(line).failure.unwrap();
    assert!(failure(&unknown).is_session_invalid());
    assert_eq!(
        failure(&unknown).to_string(),
        "no conversation found with session id `0b5b3a2e-1111-2222-3333-444455556666`"
    );
    assert!(failure(&malformed).is_session_invalid());
    assert!(!failure(&other).is_session_invalid());
    assert_eq!(
        failure(&other).to_string(),
        "Claude Code could not run the turn: something else broke"
    );
}

#[test]
fn a_result_quoting_the_banner_mid_text_is_delivered_as_is() {
    let line = json!({"type":"result","subtype":"success","is_error":false,"result":"<message to=\"cli\">It said Not logged in · Please run /login</message>"});
    check(
        &[line],
        expect![[r#"
            result/success: Result { text: Some("<message to=\"cli\">It said Not logged in · Please run /login</message>") }, <end of turn>
        "#]],
    );
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(1234567), "1,234,567");
}

/// The `result` of a turn Claude Code 2.1.332 gave up after its retries (trimmed from runs
/// against a closed port, a server that resets connections, one that never answers, and one
/// answering each status).
fn api_error_result(api_error: Value, status: Value, text: &str) -> Value {
    json!({"type":"result","subtype":"success","is_error":true,"terminal_reason":"api_error",
        "api_error":api_error,"api_error_status":status,"result":text,"session_id":"x"})
}

#[test]
fn issue_10_only_a_result_that_could_not_reach_the_api_is_unreachable() {
    let refused = api_error_result(
        json!("connection_failed"),
        Value::Null,
        "API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)",
    );
    let reset = api_error_result(
        json!("connection_failed"),
        Value::Null,
        "API Error: Connection dropped (ECONNRESET). Check the gateway set in ANTHROPIC_BASE_URL, then try again.",
    );
    let timed_out = api_error_result(Value::Null, Value::Null, "Request timed out.");
    let gateway = |status: u64| {
        api_error_result(
            Value::Null,
            json!(status),
            &format!("API Error: {status} upstream says {status}. This is a server-side issue"),
        )
    };
    for line in [
        &refused,
        &reset,
        &timed_out,
        &gateway(502),
        &gateway(503),
        &gateway(504),
    ] {
        assert!(is_unreachable_result(line), "{line}");
    }
    let answered = [
        gateway(400),
        gateway(401),
        gateway(429),
        gateway(500),
        gateway(529),
        // Not an API error, or no error at all.
        json!({"type":"result","subtype":"success","is_error":true,"api_error_status":null,"result":"API Error: Repeated 529 Overloaded errors."}),
        json!({"type":"result","subtype":"success","is_error":false,"terminal_reason":"completed","api_error_status":null,"result":"Hi"}),
    ];
    for line in &answered {
        assert!(!is_unreachable_result(line), "{line}");
    }
    check(
        &[refused, gateway(502), gateway(400)],
        expect![[r#"
            result/success: TurnUnreachable { error: "Anthropic could not be reached (API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED))", notice: "⏳ I can't reach Anthropic right now, so I can't answer yet. I keep retrying; your message is kept and answered once Anthropic is reachable again." }, <end of turn>
            result/success: TurnUnreachable { error: "Anthropic could not be reached (API Error: 502 upstream says 502. This is a server-side issue)", notice: "⏳ I can't reach Anthropic right now, so I can't answer yet. I keep retrying; your message is kept and answered once Anthropic is reachable again." }, <end of turn>
            result/success: TurnError { reply: "Error: API Error: 400 upstream says 400. This is a server-side issue" }, <end of turn>
        "#]],
    );
}
