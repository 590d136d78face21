//! The MCP server against real session DBs in a temp folder: the JSON-RPC surface, each tool's
//! checks and rows, and the seq allocation shared with the poll loop.

use std::path::Path;

use serde_json::{Value, json};

use super::*;
use crate::session_db::container::NewOutbound;
use crate::session_db::{
    DestinationRow, Kind, NewInbound, write_destinations, write_session_routing,
};

struct World {
    dir: tempfile::TempDir,
    tools: Tools,
}

/// A session with destinations `family` (telegram/t:1, the session's own chat, thread th-1)
/// and `helper` (an agent).
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    session_db::create(dir.path()).unwrap();
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(dir.path())).unwrap();
    write_destinations(
        &mut inbound,
        &[
            DestinationRow {
                name: "family".into(),
                display_name: None,
                kind: "channel".into(),
                channel_type: Some("telegram".into()),
                platform_id: Some("t:1".into()),
                agent_group_id: None,
            },
            DestinationRow {
                name: "helper".into(),
                display_name: None,
                kind: "agent".into(),
                channel_type: None,
                platform_id: None,
                agent_group_id: Some("helper".into()),
            },
        ],
    )
    .unwrap();
    write_session_routing(&inbound, Some("telegram"), Some("t:1"), Some("th-1")).unwrap();
    std::fs::create_dir_all(dir.path().join("agent")).unwrap();
    let mut tools = Tools::new(dir.path());
    tools.question_poll = Duration::from_millis(10);
    World { dir, tools }
}

impl World {
    fn call(&self, name: &str, args: Value) -> (String, bool) {
        call(&self.tools, name, &args)
    }

    /// `(id, seq, kind, channel_type, platform_id, thread_id, in_reply_to, content)` of every
    /// outbound row, by seq.
    fn rows(&self) -> Vec<Value> {
        let outbound = self.tools.outbound().unwrap();
        let mut statement = outbound
            .as_connection()
            .prepare(
                "SELECT id, seq, kind, channel_type, platform_id, thread_id, in_reply_to, content
                 FROM messages_out ORDER BY seq",
            )
            .unwrap();
        statement
            .query_map([], |r| {
                Ok(json!({
                    "id": r.get::<_, String>(0)?, "seq": r.get::<_, i64>(1)?,
                    "kind": r.get::<_, String>(2)?, "channel_type": r.get::<_, Option<String>>(3)?,
                    "platform_id": r.get::<_, Option<String>>(4)?, "thread_id": r.get::<_, Option<String>>(5)?,
                    "in_reply_to": r.get::<_, Option<String>>(6)?,
                    "content": serde_json::from_str::<Value>(&r.get::<_, String>(7)?).unwrap(),
                }))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn inbound_row(&self, row: NewInbound) {
        let mut inbound =
            session_db::open_inbound_host(&session_db::inbound_path(self.dir.path())).unwrap();
        session_db::insert_inbound(&mut inbound, &[row]).unwrap();
    }
}

#[test]
fn initialize_list_and_call_speak_json_rpc() {
    let world = world();
    let answer = rpc::handle(
        &world.tools,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}"#,
    )
    .unwrap();
    assert_eq!(answer["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(answer["result"]["serverInfo"]["name"], "nanoclaw");
    assert_eq!(answer["result"]["capabilities"], json!({"tools": {}}));
    assert_eq!(
        rpc::handle(
            &world.tools,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        ),
        None
    );
    let list = rpc::handle(
        &world.tools,
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#,
    )
    .unwrap();
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "send_message",
            "send_file",
            "edit_message",
            "add_reaction",
            "ask_user_question",
            "send_card",
            "create_agent",
            "install_packages",
            "add_mcp_server"
        ]
    );
    assert_eq!(list["id"], "a");
    let unknown = rpc::handle(
        &world.tools,
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/list"}"#,
    )
    .unwrap();
    assert_eq!(unknown["error"]["code"], -32601);
    let garbage = rpc::handle(&world.tools, "{not json").unwrap();
    assert_eq!(garbage["error"]["code"], -32700);
    assert_eq!(garbage["id"], Value::Null);
    let call = rpc::handle(
        &world.tools,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#,
    )
    .unwrap();
    assert_eq!(
        call["result"],
        json!({"content": [{"type": "text", "text": "Unknown tool: nope"}], "isError": true})
    );
}

#[test]
fn serve_answers_each_request_on_its_own_line() {
    let world = world();
    let input = concat!(
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        "\n\n",
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "\n",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_message","arguments":{"text":"hi"}}}"#,
        "\n"
    );
    let mut output = Vec::new();
    rpc::serve(&world.tools, input.as_bytes(), &mut output).unwrap();
    let lines: Vec<Value> = String::from_utf8(output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
    assert_eq!(
        lines[1]["result"]["content"][0]["text"],
        "Message sent to (current conversation) (id: 1)"
    );
}

#[test]
fn send_message_routes_like_v2_and_answers_the_turn() {
    let world = world();
    assert_eq!(
        world.call("send_message", json!({})),
        ("Error: text is required".to_string(), true)
    );
    assert_eq!(
        world.call("send_message", json!({"to": "nobody", "text": "x"})),
        (
            "Error: Unknown destination \"nobody\". Known: family, helper".to_string(),
            true
        )
    );
    // The poll loop records the batch being answered; the tools read it (v2 lost it).
    session_db::container::set_turn_reply(&world.tools.outbound().unwrap(), Some("m-7")).unwrap();
    assert_eq!(
        world.call("send_message", json!({"text": "on it"})),
        (
            "Message sent to (current conversation) (id: 1)".to_string(),
            false
        )
    );
    assert_eq!(
        world.call("send_message", json!({"to": "helper", "text": "ping"})),
        ("Message sent to helper (id: 3)".to_string(), false)
    );
    assert_eq!(
        world
            .call("send_message", json!({"to": "family", "text": "hi"}))
            .0,
        "Message sent to family (id: 5)"
    );
    let rows = world.rows();
    assert_eq!(rows[0]["channel_type"], "telegram");
    assert_eq!(rows[0]["thread_id"], "th-1");
    assert_eq!(rows[0]["in_reply_to"], "m-7");
    assert_eq!(rows[0]["content"], json!({"text": "on it"}));
    assert_eq!(rows[1]["channel_type"], "agent");
    assert_eq!(rows[1]["platform_id"], "helper");
    assert_eq!(rows[1]["thread_id"], Value::Null);
    assert_eq!(
        rows[2]["thread_id"], "th-1",
        "the session's own chat keeps its thread"
    );
}

#[test]
fn route_without_session_routing_needs_one_destination() {
    let one = [DestinationRow {
        name: "a".into(),
        display_name: None,
        kind: "agent".into(),
        channel_type: None,
        platform_id: None,
        agent_group_id: Some("a".into()),
    }];
    let none = session_db::container::Routing::default();
    assert_eq!(route::decide(&one, &none, None).unwrap().name, "a");
    assert_eq!(
        route::decide(&[], &none, None),
        Err("No destinations configured.".to_string())
    );
    let two = [
        one[0].clone(),
        DestinationRow {
            name: "b".into(),
            ..one[0].clone()
        },
    ];
    assert_eq!(
        route::decide(&two, &none, None),
        Err("You have multiple destinations — specify \"to\". Options: a, b".to_string())
    );
    assert_eq!(
        route::decide(&[], &none, Some("x")),
        Err("Unknown destination \"x\". Known: (none)".to_string())
    );
}

#[test]
fn a_ten_megabyte_text_is_refused_naming_the_limit_and_nothing_is_written() {
    let world = world();
    let (text, is_error) = world.call("send_message", json!({"text": "x".repeat(10 << 20)}));
    assert!(is_error);
    assert!(
        text.starts_with("Error: text is too long: 10485771 bytes once encoded, at most 262144"),
        "{text}"
    );
    assert!(world.rows().is_empty());
}

#[test]
fn send_file_copies_into_the_outbox_and_names_the_file() {
    let world = world();
    std::fs::write(world.dir.path().join("agent/report.txt"), "data").unwrap();
    let (text, is_error) = world.call("send_file", json!({"path": "report.txt", "text": "here"}));
    assert!(!is_error, "{text}");
    let rows = world.rows();
    let id = rows[0]["id"].as_str().unwrap();
    assert_eq!(
        text,
        format!("File sent to (current conversation) (id: {id}, filename: report.txt)")
    );
    assert_eq!(
        rows[0]["content"],
        json!({"text": "here", "files": ["report.txt"]})
    );
    let copied = session_db::outbound_dir(world.dir.path()).join(format!("outbox/{id}/report.txt"));
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "data");
}

#[test]
fn send_file_refuses_traversal_in_the_name_and_missing_files() {
    let world = world();
    std::fs::write(world.dir.path().join("agent/a.txt"), "data").unwrap();
    assert_eq!(
        world.call("send_file", json!({"path": "nope.txt"})),
        ("Error: File not found: nope.txt".to_string(), true)
    );
    let (text, is_error) = world.call(
        "send_file",
        json!({"path": "a.txt", "filename": "../../escape.txt"}),
    );
    assert!(is_error);
    assert!(
        text.starts_with("Error: filename \"../../escape.txt\" must be a plain file name"),
        "{text}"
    );
    assert_eq!(
        world
            .call("send_file", json!({"path": "a.txt", "to": "x"}))
            .0,
        "Error: Unknown destination \"x\". Known: family, helper"
    );
    assert!(world.rows().is_empty());
    assert!(!world.dir.path().join("escape.txt").exists());
    let outbox = session_db::outbound_dir(world.dir.path()).join("outbox");
    assert_eq!(std::fs::read_dir(outbox).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn edit_and_reaction_address_the_referenced_message() {
    let world = world();
    world.inbound_row(NewInbound {
        id: "tg-5:ag".into(),
        kind: Kind::Chat,
        platform_id: Some("t:1".into()),
        channel_type: Some("telegram".into()),
        thread_id: Some("th-9".into()),
        content: "{}".into(),
        ..NewInbound::default()
    });
    assert_eq!(
        world.call(
            "add_reaction",
            json!({"messageId": 2, "emoji": "thumbs_up"})
        ),
        ("Reaction queued for #2".to_string(), false)
    );
    assert_eq!(
        world.call("edit_message", json!({"messageId": "2", "text": "new"})),
        ("Message edit queued for #2".to_string(), false)
    );
    assert_eq!(
        world
            .call("edit_message", json!({"messageId": 0, "text": "x"}))
            .0,
        "Error: messageId and text are required"
    );
    assert_eq!(
        world
            .call("edit_message", json!({"messageId": 40, "text": "x"}))
            .0,
        "Error: Message #40 not found"
    );
    let rows = world.rows();
    assert_eq!(
        rows[0]["content"],
        json!({"operation": "reaction", "emoji": "thumbs_up", "messageId": "tg-5:ag"})
    );
    assert_eq!(rows[0]["thread_id"], "th-9");
    assert_eq!(rows[1]["content"]["operation"], "edit");
}

#[test]
fn ask_user_question_returns_the_chosen_value_or_times_out() {
    let world = world();
    assert_eq!(
        world
            .call(
                "ask_user_question",
                json!({"title": "t", "question": "q", "options": []})
            )
            .0,
        "Error: title, question, and options are required"
    );
    session_db::container::set_turn_reply(&world.tools.outbound().unwrap(), Some("m-7")).unwrap();
    let workspace = world.dir.path().to_path_buf();
    // The host's answer arrives while the tool waits.
    let answerer = std::thread::spawn(move || {
        let tools = Tools::new(&workspace);
        let question_id = loop {
            let outbound = tools.outbound().unwrap();
            let id: Option<String> = outbound
                .as_connection()
                .query_row("SELECT id FROM messages_out LIMIT 1", [], |r| r.get(0))
                .ok();
            if let Some(id) = id {
                break id;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut inbound =
            session_db::open_inbound_host(&session_db::inbound_path(&workspace)).unwrap();
        session_db::insert_inbound(
            &mut inbound,
            &[NewInbound {
                id: "qr-1".into(),
                kind: Kind::System,
                content: json!({"type": "question_response", "questionId": question_id,
                    "selectedOption": "yes-value", "userId": "u"})
                .to_string(),
                ..NewInbound::default()
            }],
        )
        .unwrap();
    });
    let asked = world.call(
        "ask_user_question",
        json!({"title": "Deploy", "question": "Now?", "options": ["no", {"label": "Yes", "value": "yes-value"}]}),
    );
    answerer.join().unwrap();
    assert_eq!(asked, ("yes-value".to_string(), false));
    let rows = world.rows();
    assert_eq!(rows[0]["kind"], "chat-sdk");
    assert_eq!(
        rows[0]["content"]["options"][1],
        json!({"label": "Yes", "selectedLabel": "Yes", "value": "yes-value"})
    );
    assert_eq!(rows[0]["channel_type"], "telegram");
    assert_eq!(
        rows[0]["in_reply_to"], "m-7",
        "the card answers the turn's message"
    );
    assert_eq!(
        rows[0]["content"]["timeout"], 300,
        "the host learns when it expires"
    );
    let heartbeat = session_db::heartbeat_path(world.dir.path());
    let _ = std::fs::remove_file(&heartbeat);
    assert_eq!(
        world.call(
            "ask_user_question",
            json!({"title": "t", "question": "q", "options": ["a"], "timeout": 1})
        ),
        ("Error: Question timed out after 1s".to_string(), true)
    );
    assert_eq!(world.rows()[1]["content"]["timeout"], 1);
    assert!(
        heartbeat.exists(),
        "a question being thought about is no stuck container: the heartbeat is touched"
    );
}

#[test]
fn system_tools_write_rows_without_routing_and_check_names() {
    let world = world();
    assert_eq!(
        world
            .call(
                "create_agent",
                json!({"name": "Helper", "instructions": "be kind"})
            )
            .0,
        "Creating agent \"Helper\". You will be notified when it is ready."
    );
    assert_eq!(
        world
            .call("install_packages", json!({"apt": ["ffmpeg; rm -rf /"]}))
            .0,
        "Error: Invalid apt package name: \"ffmpeg; rm -rf /\". Only lowercase letters, digits, and ._+- allowed."
    );
    assert_eq!(
        world
            .call(
                "install_packages",
                json!({"apt": ["ffmpeg"], "reason": "video"})
            )
            .0,
        "Package install request submitted. You will be notified when admin approves or rejects."
    );
    assert_eq!(
        world.call("add_mcp_server", json!({"name": "x"})).0,
        "Error: name and command are required"
    );
    let rows = world.rows();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["kind"], "system");
    assert_eq!(rows[0]["channel_type"], Value::Null);
    assert_eq!(rows[0]["content"]["action"], "create_agent");
    assert_eq!(rows[0]["content"]["requestId"], rows[0]["id"]);
    assert_eq!(
        rows[1]["content"],
        json!({"action": "install_packages", "apt": ["ffmpeg"], "npm": [], "reason": "video"})
    );
}

/// The documented safe scheme: the tools process and the poll loop both write `messages_out`
/// through one `BEGIN IMMEDIATE` transaction that reads the max seq under the write lock, so
/// concurrent writers on separate connections never share a seq.
#[test]
fn concurrent_writers_never_share_a_seq() {
    let world = world();
    let workspace: &Path = world.dir.path();
    std::thread::scope(|scope| {
        for writer in 0..4 {
            scope.spawn(move || {
                let tools = Tools::new(workspace);
                for n in 0..50 {
                    tools
                        .write(&NewOutbound {
                            id: format!("w{writer}-{n}"),
                            content: "{}".into(),
                            ..NewOutbound::default()
                        })
                        .unwrap();
                }
            });
        }
    });
    let seqs: Vec<i64> = world
        .rows()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 200);
    let expected: Vec<i64> = (0..200).map(|n| 2 * n + 1).collect();
    assert_eq!(seqs, expected);
}
