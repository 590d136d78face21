//! System actions: parsing and validation (pure), and the handlers against real temp DBs.

use super::*;
use crate::db;

fn refused(content: Value) -> String {
    match parse(&content) {
        Err(Refused(note)) => note,
        Ok(action) => panic!("expected a refusal, got {action:?}"),
    }
}

#[test]
fn unknown_and_nameless_actions_are_refused_with_a_reason() {
    assert_eq!(
        refused(json!({"action": "schedule_task"})),
        "unknown system action \"schedule_task\": this host handles create_agent, install_packages and add_mcp_server."
    );
    assert_eq!(
        refused(json!({"actio": "x"})),
        "system action without an \"action\" name was ignored."
    );
}

#[test]
fn install_packages_is_validated_like_v2() {
    assert_eq!(
        refused(json!({"action": "install_packages"})),
        "install_packages failed: at least one apt or npm package is required."
    );
    let many: Vec<String> = (0..21).map(|i| format!("p{i}")).collect();
    assert_eq!(
        refused(json!({"action": "install_packages", "apt": many})),
        "install_packages failed: max 20 packages per request."
    );
    assert_eq!(
        refused(json!({"action": "install_packages", "apt": ["ffmpeg; rm -rf /"]})),
        "install_packages failed: invalid apt package name \"ffmpeg; rm -rf /\"."
    );
    assert_eq!(
        refused(json!({"action": "install_packages", "npm": ["left-pad@1.0"]})),
        "install_packages failed: invalid npm package name \"left-pad@1.0\"."
    );
    assert_eq!(
        refused(json!({"action": "install_packages", "apt": "ffmpeg"})),
        "install_packages failed: `apt` must be a list of strings."
    );
    assert_eq!(
        parse(
            &json!({"action": "install_packages", "apt": ["ffmpeg", "g++"], "npm": ["@scope/x.y"]})
        ),
        Ok(Action::InstallPackages {
            apt: vec!["ffmpeg".into(), "g++".into()],
            npm: vec!["@scope/x.y".into()],
            reason: String::new(),
        })
    );
}

#[test]
fn add_mcp_server_refuses_newlines_and_odd_names() {
    assert_eq!(
        refused(json!({"action": "add_mcp_server", "name": "x"})),
        "add_mcp_server failed: name and command are required."
    );
    assert_eq!(
        refused(
            json!({"action": "add_mcp_server", "name": "x", "command": "c", "env": {"A": "1\nB=2"}})
        ),
        "add_mcp_server failed: env `A` must be a one-line string of at most 4096 bytes."
    );
    assert_eq!(
        refused(
            json!({"action": "add_mcp_server", "name": "x", "command": "c", "env": {"A\nB": "1"}})
        ),
        "add_mcp_server failed: env name \"A\\nB\" must be letters, digits and `_`, not starting with a digit."
    );
    assert_eq!(
        refused(json!({"action": "add_mcp_server", "name": "../x", "command": "c"})),
        "add_mcp_server failed: server name \"../x\" may only use letters, digits, `-`, `_` and `.` (at most 64)."
    );
    assert_eq!(
        refused(json!({"action": "add_mcp_server", "name": "x", "command": "a\nb"})),
        "add_mcp_server failed: the command must be one line of at most 4096 bytes."
    );
}

#[test]
fn create_agent_needs_a_sane_name() {
    assert_eq!(
        refused(json!({"action": "create_agent"})),
        "create_agent failed: name is required."
    );
    assert_eq!(
        refused(json!({"action": "create_agent", "name": "a".repeat(5000)})),
        "create_agent failed: the name must be at most 4096 bytes without control characters."
    );
}

struct World {
    _dir: tempfile::TempDir,
    paths: Paths,
    conn: Connection,
    session: String,
}

/// Agent `boss` with a session on cli/local; the newest message came from `sender`.
fn world(sender: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::new(dir.path().join("data"));
    paths.ensure().unwrap();
    let conn = db::open(&paths.db()).unwrap();
    conn.execute_batch(
        "INSERT INTO agent_groups (id, name, folder, agent_provider, created_at) VALUES ('boss', 'boss', 'boss', 'mock', 't');
         INSERT INTO messaging_groups (id, channel_type, platform_id, name, is_group, unknown_sender_policy, created_at)
           VALUES ('mg-1', 'cli', 'local', 'cli', 0, 'public', 't');
         INSERT INTO users (id, kind, created_at) VALUES ('cli:local', 'cli', 't'), ('cli:guest', 'cli', 't');
         INSERT INTO user_roles (user_id, role, granted_at) VALUES ('cli:local', 'owner', 't');",
    )
    .unwrap();
    let session = sessions::create(&conn, "boss", Some("mg-1"), None)
        .unwrap()
        .id;
    let session_dir = paths.session("boss", &session);
    session_db::create(&session_dir).unwrap();
    let mut inbound =
        session_db::open_inbound_host(&session_db::inbound_path(&session_dir)).unwrap();
    let row = NewInbound {
        id: "m1".into(),
        kind: Kind::Chat,
        timestamp: ids::now_iso(),
        platform_id: Some("local".into()),
        channel_type: Some("cli".into()),
        content: json!({"text": "make a helper", "senderId": sender}).to_string(),
        trigger: true,
        ..NewInbound::default()
    };
    session_db::insert_inbound(&mut inbound, &[row]).unwrap();
    World {
        _dir: dir,
        paths,
        conn,
        session,
    }
}

impl World {
    fn handle(&self, content: Value) -> Handled {
        self.handle_carding(content).0
    }

    /// [`World::handle`] and the cards it asked to send.
    fn handle_carding(
        &self,
        content: Value,
    ) -> (Handled, Vec<(String, crate::channels::Outbound)>) {
        let cards = std::cell::RefCell::new(Vec::new());
        let host = Host {
            conn: &self.conn,
            paths: &self.paths,
            agent: "boss",
            adapters: &crate::channels::Adapters::default(),
            approval_ttl: std::time::Duration::from_secs(60),
            cards: &cards,
        };
        let handled = handle(&host, &self.session, "msg-req", &content).unwrap();
        (handled, cards.into_inner())
    }

    fn notes(&self) -> Vec<String> {
        let dir = self.paths.session("boss", &self.session);
        let inbound = session_db::open_inbound_reader(&session_db::inbound_path(&dir)).unwrap();
        let mut statement = inbound
            .as_connection()
            .prepare("SELECT content FROM messages_in WHERE id LIKE 'sys-%' ORDER BY seq")
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|content| {
                let value: Value = serde_json::from_str(&content.unwrap()).unwrap();
                value["text"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn destinations(&self) -> Vec<String> {
        let dir = self.paths.session("boss", &self.session);
        let inbound = session_db::open_inbound_reader(&session_db::inbound_path(&dir)).unwrap();
        session_db::container::destinations(&inbound)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect()
    }
}

#[test]
fn create_agent_by_the_owner_makes_an_agent_with_destinations_both_ways_seen_at_once() {
    let world = world("cli:local");
    let handled = world.handle(
        json!({"action": "create_agent", "name": "Research Helper", "instructions": "be brief"}),
    );
    let note = "Agent \"research-helper\" created. You can now message it with <message to=\"research-helper\">...</message>.";
    assert_eq!(handled, Handled::Done { note: note.into() });
    assert_eq!(world.notes(), vec![note.to_string()]);
    assert_eq!(world.destinations(), vec!["research-helper".to_string()]);
    let back: (String, String) = world
        .conn
        .query_row(
            "SELECT local_name, target_id FROM agent_destinations WHERE agent_group_id = 'research-helper'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(back, ("parent".into(), "boss".into()));
    let child = crate::db::config::agent(&world.conn, "research-helper")
        .unwrap()
        .unwrap();
    assert_eq!(child.provider.as_deref(), Some("mock"));
    assert_eq!(
        std::fs::read_to_string(world.paths.group("research-helper").join("CLAUDE.local.md"))
            .unwrap(),
        "be brief"
    );
    // A second one with the same name is refused: the destination name is taken.
    let again = world.handle(json!({"action": "create_agent", "name": "research helper"}));
    assert_eq!(
        again,
        Handled::Refused {
            note: "Cannot create agent \"research helper\": you already have a destination named \"research-helper\".".into()
        }
    );
}

#[test]
fn create_agent_is_refused_host_side_when_no_admin_asked() {
    let world = world("cli:guest");
    let handled = world.handle(json!({"action": "create_agent", "name": "helper"}));
    assert!(
        matches!(&handled, Handled::Refused { note } if note.starts_with("create_agent failed: only an owner or admin"))
    );
    let agents: i64 = world
        .conn
        .query_row("SELECT COUNT(*) FROM agent_groups", [], |row| row.get(0))
        .unwrap();
    assert_eq!(agents, 1);
    assert_eq!(world.notes().len(), 1);
}

#[test]
fn install_packages_asks_the_owner_on_a_card_and_the_agent_is_told() {
    let world = world("cli:guest");
    db::approvals::remember_dm(&world.conn, "cli:local", "cli", "local").unwrap();
    let (handled, cards) = world.handle_carding(
        json!({"action": "install_packages", "apt": ["ffmpeg"], "npm": ["@acme/x"], "reason": "to convert a file"}),
    );
    let note = "Your install_packages request (apt: ffmpeg, npm: @acme/x) was sent to an admin for approval; you will be told the outcome.";
    assert_eq!(handled, Handled::Done { note: note.into() });
    assert_eq!(world.notes(), vec![note.to_string()]);
    assert_eq!(cards.len(), 1);
    let (channel_type, card) = &cards[0];
    assert_eq!(
        (channel_type.as_str(), card.platform_id.as_str()),
        ("cli", "local")
    );
    let card = crate::channels::card::Card::from_content(&card.content).unwrap();
    assert_eq!(card.title, "Install Packages Request");
    assert_eq!(
        card.body,
        "Agent \"boss\" is attempting to install a package + rebuild container:\napt: ffmpeg, npm: @acme/x\nReason: to convert a file"
    );
    let options: Vec<&str> = card.options.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(options, ["approve", "reject"]);
    // The same row delivered again asks nothing more.
    let (again, cards) = world.handle_carding(
        json!({"action": "install_packages", "apt": ["ffmpeg"], "npm": ["@acme/x"]}),
    );
    assert!(cards.is_empty());
    assert!(matches!(again, Handled::Done { note } if note.contains("already awaits")));
    let (kind, payload): (String, String) = world
        .conn
        .query_row("SELECT kind, payload FROM approvals", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(kind, "install_packages");
    let request: ChangeRequest = serde_json::from_str(&payload).unwrap();
    assert_eq!(request.agent, "boss");
    assert_eq!(
        request.change,
        Change::Packages {
            apt: vec!["ffmpeg".into()],
            npm: vec!["@acme/x".into()]
        }
    );
}

#[test]
fn add_mcp_server_cards_name_the_env_keys_but_never_their_values() {
    let world = world("cli:guest");
    db::approvals::remember_dm(&world.conn, "cli:local", "cli", "local").unwrap();
    let (_, cards) = world.handle_carding(json!({
        "action": "add_mcp_server", "name": "search", "command": "npx",
        "args": ["-y", "@acme/search"], "env": {"API_KEY": "sk-secret-value", "MODE": "fast"}
    }));
    let card = crate::channels::card::Card::from_content(&cards[0].1.content).unwrap();
    assert_eq!(card.title, "Add MCP Request");
    assert_eq!(
        card.body,
        "Agent \"boss\" is attempting to add a new MCP server:\nsearch (npx -y @acme/search)\nenv: API_KEY, MODE (values not shown)"
    );
    assert!(!cards[0].1.content.to_string().contains("sk-secret-value"));
}

#[test]
fn a_self_modification_with_nobody_to_approve_is_refused_at_once() {
    let world = world("cli:guest");
    world.conn.execute("DELETE FROM user_roles", []).unwrap();
    let (handled, cards) =
        world.handle_carding(json!({"action": "install_packages", "apt": ["jq"]}));
    let note = "install_packages failed: no owner or admin configured to approve.";
    assert_eq!(handled, Handled::Refused { note: note.into() });
    assert!(cards.is_empty());
    assert_eq!(world.notes(), vec![note.to_string()]);
}

#[test]
fn an_unknown_action_is_told_to_the_agent() {
    let world = world("cli:local");
    let handled = world.handle(json!({"action": "format_disk"}));
    assert!(matches!(handled, Handled::Refused { .. }));
    assert_eq!(
        world.notes(),
        vec![
            "unknown system action \"format_disk\": this host handles create_agent, install_packages and add_mcp_server."
                .to_string()
        ]
    );
}
