//! Formatter tests ported from v2's poll-loop.test.ts and formatter.test.ts
//! (docs/agent-runner.md#tests-ported-from-v2).

use super::*;
use crate::commands::Command;

fn row(id: &str, kind: &str, content: serde_json::Value) -> InboundRow {
    InboundRow {
        id: id.into(),
        seq: None,
        kind: kind.into(),
        timestamp: "2026-06-15T12:00:00.000Z".into(),
        trigger: true,
        content: content.to_string(),
        ..InboundRow::default()
    }
}

fn routed(mut r: InboundRow, ct: &str, pid: &str) -> InboundRow {
    r.channel_type = Some(ct.into());
    r.platform_id = Some(pid.into());
    r
}

fn dest(name: &str, ct: &str, pid: &str) -> DestinationRow {
    DestinationRow {
        name: name.into(),
        kind: "channel".into(),
        channel_type: Some(ct.into()),
        platform_id: Some(pid.into()),
        ..DestinationRow::default()
    }
}

fn fmt(rows: &[InboundRow]) -> String {
    format_messages(rows, &[], "UTC")
}

#[test]
fn formats_a_single_chat_message() {
    let s = fmt(&[row(
        "m1",
        "chat",
        serde_json::json!({"sender": "John", "text": "Hello"}),
    )]);
    assert!(s.contains("sender=\"John\"") && s.contains("Hello"));
    assert!(!s.contains("<messages>"));
}

#[test]
fn formats_multiple_chat_messages_as_xml_block() {
    let s = fmt(&[
        row(
            "m1",
            "chat",
            serde_json::json!({"sender": "John", "text": "a"}),
        ),
        row(
            "m2",
            "chat-sdk",
            serde_json::json!({"author": {"fullName": "Jane"}, "text": "b"}),
        ),
    ]);
    expect_test::expect![[r#"
        <context timezone="UTC" />
        <messages>
        <message sender="John" time="Jun 15, 2026, 12:00 PM">a</message>
        <message sender="Jane" time="Jun 15, 2026, 12:00 PM">b</message>
        </messages>"#]]
    .assert_eq(&s);
}

#[test]
fn formats_task_messages() {
    let s = fmt(&[row(
        "t1",
        "task",
        serde_json::json!({"prompt": "Check <the> weather"}),
    )]);
    assert!(s.contains("<task") && s.contains("Instructions:\nCheck <the> weather</task>"));
}

#[test]
fn formats_task_script_output() {
    let s = fmt(&[row(
        "t1",
        "task",
        serde_json::json!({"prompt": "p", "scriptOutput": {"n": 1}}),
    )]);
    assert!(s.contains("Script output:\n{\n  \"n\": 1\n}\n\nInstructions:\np"));
    let s = fmt(&[row(
        "t1",
        "task",
        serde_json::json!({"prompt": "p", "scriptOutput": 0}),
    )]);
    assert!(!s.contains("Script output"));
}

#[test]
fn formats_webhook_messages() {
    let s = fmt(&[row(
        "w1",
        "webhook",
        serde_json::json!({"source": "github", "event": "push", "payload": {"ref": "main"}}),
    )]);
    assert!(
        s.contains("<webhook") && s.contains("source=\"github\"") && s.contains("event=\"push\"")
    );
}

#[test]
fn formats_system_messages() {
    let s = fmt(&[row(
        "s1",
        "system",
        serde_json::json!({"action": "register_group", "status": "ok", "result": {"a": 1}}),
    )]);
    assert!(s.contains("<system_response") && s.contains("action=\"register_group\""));
    assert!(s.contains(">{\"a\":1}</system_response>"));
}

#[test]
fn handles_mixed_kinds_grouped_in_fixed_order() {
    let s = fmt(&[
        row("s1", "system", serde_json::json!({"action": "x"})),
        row(
            "m1",
            "chat",
            serde_json::json!({"sender": "John", "text": "hi"}),
        ),
        row("u1", "weird", serde_json::json!({"text": "dropped"})),
    ]);
    assert!(s.contains("sender=\"John\"") && s.contains("<system_response"));
    assert!(s.find("<message").unwrap() < s.find("<system_response").unwrap());
    assert!(!s.contains("dropped"));
}

#[test]
fn escapes_xml_in_content_and_sender() {
    let s = fmt(&[row(
        "m1",
        "chat",
        serde_json::json!({"sender": "A<B \"x\"", "text": "A<B x > y && z 'q'"}),
    )]);
    assert!(s.contains("sender=\"A&lt;B &quot;x&quot;\""));
    assert!(s.contains("A&lt;B x &gt; y &amp;&amp; z 'q'"));
}

#[test]
fn origin_from_matching_destination_or_raw_routing() {
    let dests = [
        dest("discord-main", "discord", "chan-1"),
        dest("slack-ops", "slack", "C1"),
    ];
    let chat = routed(
        row("m1", "chat", serde_json::json!({"text": "x"})),
        "discord",
        "chan-1",
    );
    assert!(format_messages(&[chat], &dests, "UTC").contains("from=\"discord-main\""));
    let other = routed(
        row("m2", "chat", serde_json::json!({"text": "x"})),
        "telegram",
        "chat-999",
    );
    assert!(
        format_messages(&[other], &dests, "UTC").contains("from=\"unknown:telegram:chat-999\"")
    );
    let bare = row("m3", "chat", serde_json::json!({"text": "x"}));
    assert!(!format_messages(&[bare], &dests, "UTC").contains("from="));
    let task = routed(
        row("t1", "task", serde_json::json!({"prompt": "p"})),
        "slack",
        "C1",
    );
    assert!(format_messages(&[task], &dests, "UTC").contains("<task from=\"slack-ops\""));
    let task = row("t2", "task", serde_json::json!({"prompt": "p"}));
    assert!(!format_messages(&[task], &dests, "UTC").contains("from="));
    let hook = routed(row("w1", "webhook", serde_json::json!({})), "slack", "C1");
    assert!(format_messages(&[hook], &dests, "UTC").contains("<webhook from=\"slack-ops\""));
    let sys = routed(row("s1", "system", serde_json::json!({})), "slack", "C1");
    assert!(format_messages(&[sys], &dests, "UTC").contains("<system_response from=\"slack-ops\""));
}

#[test]
fn timezone_header_is_first_even_when_empty() {
    assert_eq!(
        format_messages(&[], &[], "America/New_York"),
        "<context timezone=\"America/New_York\" />\n"
    );
    let s = format_messages(
        &[
            row("m1", "chat", serde_json::json!({"text": "a"})),
            row("m2", "chat", serde_json::json!({"text": "b"})),
        ],
        &[],
        "Asia/Tokyo",
    );
    assert!(s.starts_with("<context timezone=\"Asia/Tokyo\" />\n<messages>"));
}

#[test]
fn renders_time_in_user_zone_12_hour() {
    let mut r = row("m1", "chat", serde_json::json!({"text": "a"}));
    r.timestamp = "2026-06-15T19:30:00Z".into();
    let s = format_messages(&[r], &[], "America/New_York");
    assert!(s.contains("time=\"Jun 15, 2026, 3:30 PM\""));
}

#[test]
fn renders_reply_context() {
    let mut r = row(
        "m1",
        "chat",
        serde_json::json!({"sender": "Al", "text": "Yes!", "replyTo": {"id": 42, "sender": "Bob", "text": "Are you coming tonight?"}}),
    );
    r.seq = Some(2);
    let s = fmt(&[r]);
    expect_test::expect![[r#"
        <context timezone="UTC" />
        <message id="2" sender="Al" time="Jun 15, 2026, 12:00 PM" reply_to="42">
          <quoted_message from="Bob">Are you coming tonight?</quoted_message>
        Yes!</message>"#]]
    .assert_eq(&s);
}

#[test]
fn omits_reply_context_when_absent_or_partial() {
    let s = fmt(&[row("m1", "chat", serde_json::json!({"text": "x"}))]);
    assert!(!s.contains("reply_to") && !s.contains("quoted_message"));
    let s = fmt(&[row(
        "m1",
        "chat",
        serde_json::json!({"text": "x", "replyTo": {"id": "7"}}),
    )]);
    assert!(s.contains("reply_to=\"7\"") && !s.contains("quoted_message"));
}

#[test]
fn escapes_reply_context() {
    let s = fmt(&[row(
        "m1",
        "chat",
        serde_json::json!({"text": "x", "replyTo": {"id": "1", "sender": "A & B", "text": "<script>\"xss\""}}),
    )]);
    assert!(
        s.contains("A &amp; B") && s.contains("&lt;script&gt;") && s.contains("&quot;xss&quot;")
    );
}

#[test]
fn renders_attachments() {
    let s = fmt(&[row(
        "m1",
        "chat",
        serde_json::json!({"text": "see", "attachments": [
            {"type": "image", "name": "a.png", "localPath": "inbox/m1/a.png"},
            {"filename": "b.pdf", "url": "https://x/b.pdf"},
            {}
        ]}),
    )]);
    assert!(s.contains(
        "see\n[image: a.png — saved to /workspace/inbox/m1/a.png]\n[file: b.pdf (https://x/b.pdf)]\n[file: attachment]</message>"
    ));
}

#[test]
fn non_json_content_is_text() {
    let mut r = row("m1", "chat", serde_json::json!({}));
    r.content = "plain <b>".into();
    let s = fmt(&[r]);
    assert!(s.contains("sender=\"Unknown\"") && s.contains("plain &lt;b&gt;"));
}

#[test]
fn command_categories_and_clear() {
    assert_eq!(commands::category("hello"), Command::None);
    assert_eq!(commands::category(" /Compact now"), Command::Admin);
    assert_eq!(commands::category("/help"), Command::Filtered);
    assert_eq!(commands::category("/tmp/file.txt"), Command::Passthrough);
    let clear = |t: &str| is_clear_command(&row("c", "chat", serde_json::json!({"text": t})));
    assert!(clear(" /CLEAR "));
    assert!(!clear("/clearance"));
    assert!(!clear("/clear now"));
    assert!(!is_clear_command(&row(
        "c",
        "task",
        serde_json::json!({"text": "/clear"})
    )));
    assert!(is_runner_command(&row(
        "c",
        "chat",
        serde_json::json!({"text": "/shrug"})
    )));
    assert!(!is_runner_command(&row(
        "c",
        "chat",
        serde_json::json!({"text": "/start"})
    )));
}

#[test]
fn command_passthrough_for_native_providers_only() {
    let rows = [
        row("m1", "chat", serde_json::json!({"text": "a"})),
        row("c1", "chat", serde_json::json!({"text": " /compact "})),
        row("m2", "chat", serde_json::json!({"text": "b"})),
    ];
    let s = format_with_commands(&rows, &[], "UTC", true);
    assert_eq!(s.matches("<context").count(), 2);
    assert!(s.contains("</message>\n\n/compact\n\n<context"));
    let s = format_with_commands(&rows, &[], "UTC", false);
    assert_eq!(s.matches("<context").count(), 1);
}
