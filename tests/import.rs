//! `nanoclaw import` end to end (issue 14): v2 installs built from v2's documented schema (the
//! current shape and a legacy one, with the WAL left behind), imported by the real binary; the
//! manifests validate, apply to a fresh data dir with no changes left to plan, and hold every
//! modelled value; `--sessions` moves conversations into nanoclaw's layout, and one continues.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reconciler::mount_policy::{Host, Policy};
use reconciler::state::*;

use crate::runtime::{Client, Daemon};
use crate::support::v2::{OLD_INBOUND, OUTBOUND, Shape, V2Install};
use crate::support::{self, Env};

/// The v2 install of the lossless test: two agents with every config value, two chats, three
/// wirings, four users, roles (a scoped admin too), memberships and destinations.
fn rich_install(projects: &Path) -> V2Install {
    let v2 = V2Install::new(Shape::Current);
    let mounts = format!(
        r#"[{{"hostPath":"{0}/site","containerPath":"site","readonly":true}},{{"hostPath":"{0}/data","containerPath":"data","readonly":false}}]"#,
        projects.display()
    );
    v2.sql(&format!(
        r#"
INSERT INTO agent_groups VALUES ('ag-100-abc', 'Andy', 'andy', NULL, '2026-01-01T00:00:00.000Z');
INSERT INTO agent_groups VALUES ('ag-200-def', 'Researcher', 'researcher', NULL, '2026-01-01T00:00:00.000Z');
INSERT INTO container_configs (agent_group_id, provider, model, effort, image_tag, assistant_name,
  max_messages_per_prompt, skills, mcp_servers, packages_apt, packages_npm, additional_mounts,
  updated_at, cli_scope)
VALUES ('ag-100-abc', 'claude', 'claude-sonnet-4-5', 'high', 'my-agent:1.2', 'Andy', 20,
  '["web","pdf"]',
  '{{"github":{{"command":"npx","args":["-y","server-github"],"env":{{"GITHUB_TOKEN":"onecli-managed"}},"instructions":"Open issues only when asked."}}}}',
  '["ffmpeg"]', '["typescript"]', '{mounts}', '2026-01-01T00:00:00.000Z', 'global');
INSERT INTO container_configs (agent_group_id, provider, updated_at, cli_scope)
VALUES ('ag-200-def', 'mock', '2026-01-01T00:00:00.000Z', 'disabled');
INSERT INTO messaging_groups VALUES ('mg-1', 'telegram', 'telegram:-100123', 'Family Chat', 1,
  'request_approval', '2026-01-01T00:00:00.000Z', NULL);
INSERT INTO messaging_groups VALUES ('mg-2', 'cli', 'local', 'Terminal', 0, 'public',
  '2026-01-01T00:00:00.000Z', NULL);
INSERT INTO messaging_group_agents VALUES ('w1', 'mg-1', 'ag-100-abc', 'per-thread', 5,
  '2026-01-01T00:00:00.000Z', 'pattern', '(?i)^@?andy\b', 'known', 'accumulate');
INSERT INTO messaging_group_agents VALUES ('w2', 'mg-1', 'ag-200-def', 'shared', 0,
  '2026-01-01T00:00:00.000Z', 'mention-sticky', NULL, 'all', 'drop');
INSERT INTO messaging_group_agents VALUES ('w3', 'mg-2', 'ag-100-abc', 'agent-shared', 1,
  '2026-01-01T00:00:00.000Z', 'pattern', '.', 'all', 'drop');
INSERT INTO agent_destinations VALUES ('ag-100-abc', 'family-chat', 'channel', 'mg-1', 't');
INSERT INTO agent_destinations VALUES ('ag-100-abc', 'terminal', 'channel', 'mg-2', 't');
INSERT INTO agent_destinations VALUES ('ag-100-abc', 'helper', 'agent', 'ag-200-def', 't');
INSERT INTO agent_destinations VALUES ('ag-200-def', 'family-chat', 'channel', 'mg-1', 't');
INSERT INTO users VALUES ('telegram:1', 'telegram', 'Gavriel', 't');
INSERT INTO users VALUES ('telegram:2', 'telegram', 'Sam', 't');
INSERT INTO users VALUES ('telegram:3', 'telegram', NULL, 't');
INSERT INTO users VALUES ('telegram:4', 'telegram', 'Kim', 't');
INSERT INTO user_roles VALUES ('telegram:1', 'owner', NULL, NULL, 't');
INSERT INTO user_roles VALUES ('telegram:2', 'admin', 'ag-100-abc', 'telegram:1', 't');
INSERT INTO user_roles VALUES ('telegram:3', 'admin', NULL, NULL, 't');
INSERT INTO agent_group_members VALUES ('telegram:4', 'ag-200-def', NULL, 't');
INSERT INTO agent_group_members VALUES ('telegram:1', 'ag-100-abc', NULL, 't');
INSERT INTO pending_approvals (approval_id, request_id, action, payload, created_at)
  VALUES ('appr-1', 'appr-1', 'install_packages', '{{}}', 't');
INSERT INTO unregistered_senders VALUES ('telegram', 'telegram:-999', NULL, NULL, 'no_agent_wired',
  NULL, NULL, 3, 't', 't');
"#
    ));
    v2.group_file(
        "andy",
        "CLAUDE.local.md",
        "You are Andy, the family's assistant.\n",
    );
    v2.group_file("andy", "notes/todo.txt", "buy milk\n");
    v2
}

/// The state the rich install must import as, written from the v2 values above.
fn expected_state(projects: &Path) -> State {
    let mut state = State::default();
    state.insert(Resource::Agent(Agent {
        name: "andy".into(),
        assistant_name: Some("Andy".into()),
        provider: Some("claude".into()),
        model: Some("claude-sonnet-4-5".into()),
        effort: Some("high".into()),
        image: Some("my-agent:1.2".into()),
        max_messages_per_prompt: Some(20),
        cli_scope: CliScope::Global,
        instructions: Some("You are Andy, the family's assistant.\n".into()),
        skills: Skills::List(vec!["web".into(), "pdf".into()]),
        mcp_servers: BTreeMap::from([(
            "github".to_string(),
            McpServer {
                command: Some("npx".into()),
                args: vec!["-y".into(), "server-github".into()],
                env: BTreeMap::from([("GITHUB_TOKEN".into(), "onecli-managed".into())]),
                url: None,
                instructions: Some("Open issues only when asked.".into()),
            },
        )]),
        packages: Packages {
            apt: vec!["ffmpeg".into()],
            npm: vec!["typescript".into()],
        },
        mounts: vec![
            Mount {
                host_path: format!("{}/site", projects.display()),
                container_path: "site".into(),
                readonly: true,
            },
            Mount {
                host_path: format!("{}/data", projects.display()),
                container_path: "data".into(),
                readonly: false,
            },
        ],
        resources: Resources::default(),
        network: Network::Full,
    }));
    state.insert(Resource::Agent(Agent {
        name: "researcher".into(),
        assistant_name: Some("Researcher".into()),
        provider: Some("mock".into()),
        model: None,
        effort: None,
        image: None,
        max_messages_per_prompt: None,
        cli_scope: CliScope::Disabled,
        instructions: None,
        skills: Skills::All,
        mcp_servers: BTreeMap::new(),
        packages: Packages::default(),
        mounts: Vec::new(),
        resources: Resources::default(),
        network: Network::Full,
    }));
    for (name, channel_type, platform_id, display, is_group, policy) in [
        (
            "family-chat",
            "telegram",
            "telegram:-100123",
            "Family Chat",
            true,
            UnknownSenderPolicy::RequestApproval,
        ),
        (
            "terminal",
            "cli",
            "local",
            "Terminal",
            false,
            UnknownSenderPolicy::Public,
        ),
    ] {
        state.insert(Resource::Channel(Channel {
            name: name.into(),
            channel_type: channel_type.into(),
            platform_id: platform_id.into(),
            display_name: Some(display.into()),
            is_group,
            unknown_sender_policy: policy,
        }));
    }
    let wiring = |channel: &str, agent: &str| Wiring {
        channel: channel.into(),
        agent: agent.into(),
        engage_mode: EngageMode::Mention,
        engage_pattern: None,
        sender_scope: SenderScope::All,
        ignored_message_policy: IgnoredMessagePolicy::Drop,
        session_mode: SessionMode::Shared,
        priority: 0,
    };
    state.insert(Resource::Wiring(Wiring {
        engage_mode: EngageMode::Pattern,
        engage_pattern: Some(r"(?i)^@?andy\b".into()),
        sender_scope: SenderScope::Known,
        ignored_message_policy: IgnoredMessagePolicy::Accumulate,
        session_mode: SessionMode::PerThread,
        priority: 5,
        ..wiring("family-chat", "andy")
    }));
    state.insert(Resource::Wiring(Wiring {
        engage_mode: EngageMode::MentionSticky,
        ..wiring("family-chat", "researcher")
    }));
    state.insert(Resource::Wiring(Wiring {
        engage_mode: EngageMode::Pattern,
        engage_pattern: Some(".".into()),
        session_mode: SessionMode::AgentShared,
        priority: 1,
        ..wiring("terminal", "andy")
    }));
    for (agent, local_name, target) in [
        (
            "andy",
            "family-chat",
            DestinationTarget::Channel("family-chat".into()),
        ),
        (
            "andy",
            "terminal",
            DestinationTarget::Channel("terminal".into()),
        ),
        (
            "andy",
            "helper",
            DestinationTarget::Agent("researcher".into()),
        ),
        (
            "researcher",
            "family-chat",
            DestinationTarget::Channel("family-chat".into()),
        ),
    ] {
        state.insert(Resource::Destination(Destination {
            agent: agent.into(),
            local_name: local_name.into(),
            target,
        }));
    }
    for (id, display_name) in [
        ("telegram:1", Some("Gavriel")),
        ("telegram:2", Some("Sam")),
        ("telegram:3", None),
        ("telegram:4", Some("Kim")),
    ] {
        state.insert(Resource::User(User {
            id: id.into(),
            display_name: display_name.map(str::to_string),
        }));
    }
    for (user, role, agent) in [
        ("telegram:1", RoleKind::Owner, None),
        ("telegram:2", RoleKind::Admin, Some("andy")),
        ("telegram:3", RoleKind::Admin, None),
    ] {
        state.insert(Resource::Role(Role {
            user: user.into(),
            role,
            agent: agent.map(str::to_string),
        }));
    }
    for (user, agent) in [("telegram:4", "researcher"), ("telegram:1", "andy")] {
        state.insert(Resource::Member(Member {
            user: user.into(),
            agent: agent.into(),
        }));
    }
    state
}

/// An env whose mount allowlist is v2's JSON file, allowing `<root>/projects` read-write.
fn env_with_v2_allowlist(name: &str) -> (Env, PathBuf) {
    let env = Env::new(name);
    let projects = env.root.path().join("projects");
    for folder in ["site", "data"] {
        std::fs::create_dir_all(projects.join(folder)).expect("project folder");
    }
    let allowlist = env.config_home().join("nanoclaw/mount-allowlist.json");
    std::fs::create_dir_all(allowlist.parent().expect("parent")).expect("config dir");
    std::fs::write(
        &allowlist,
        format!(
            r#"{{"allowedRoots":[{{"path":"{}","allowReadWrite":true}}],"blockedPatterns":[]}}"#,
            projects.display()
        ),
    )
    .expect("allowlist");
    (env, projects)
}

fn policy_of(env: &Env) -> Policy {
    Policy::for_host(Host::new(
        None,
        Some(env.config_home().join("nanoclaw")),
        &env.data(),
        None,
    ))
}

#[test]
fn issue_14_import_keeps_every_modelled_value_and_plans_no_changes() {
    let (env, projects) = env_with_v2_allowlist("import-lossless");
    let v2 = rich_install(&projects);
    assert!(
        v2.path().join("data/v2.db-wal").exists(),
        "the fixture keeps its rows in the WAL, as v2 leaves it"
    );
    let before = v2.snapshot();
    let out = env.root.path().join("imported");
    let run = env.run(&[
        "import",
        &v2.path().display().to_string(),
        &out.display().to_string(),
    ]);
    run.success();
    assert_eq!(
        v2.snapshot(),
        before,
        "the import never writes to the v2 folder"
    );

    let loaded = reconciler::manifest::load_for_host(&out, &policy_of(&env))
        .unwrap_or_else(|diagnostics| panic!("{}", reconciler::manifest::render(&diagnostics)));
    let expected = expected_state(&projects);
    for (address, resource) in &expected.resources {
        assert_eq!(loaded.state.get(address), Some(resource), "{address}");
    }
    assert_eq!(loaded.state, expected, "no resource more or less");

    let report = std::fs::read_to_string(out.join("import-report.txt")).expect("report file");
    assert!(run.stdout.contains(&report), "printed too:\n{}", run.stdout);
    for expected in [
        "Imported 2 agents, 2 channels, 3 wirings, 4 users, 3 roles, 2 members, 4 destinations.",
        "- agent group `ag-100-abc`: folder `andy` (name `Andy`) → agent `andy`",
        "- messaging group `mg-1`: telegram chat `telegram:-100123` (`Family Chat`) → channel `family-chat`",
        "- table `pending_approvals`: 1 rows (approval requests) are not imported",
        "- table `unregistered_senders`: 1 rows (the dropped-messages audit) are not imported",
        "who granted them (`granted_by` on 1 roles, `added_by` on 0 memberships) is not kept",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in\n{report}"
        );
    }

    env.run(&["validate", &out.display().to_string()]).success();
    env.run(&["apply", &out.display().to_string(), "--yes"])
        .success();
    let plan = env.run(&["plan", &out.display().to_string(), "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 0,
        "no changes after applying:\n{}{}",
        plan.stdout, plan.stderr
    );
}

#[test]
fn issue_14_a_legacy_install_imports_through_v2s_own_backfills() {
    let env = Env::new("import-legacy");
    let v2 = V2Install::new(Shape::Legacy);
    v2.sql(
        r#"
INSERT INTO agent_groups VALUES ('ag-1', 'Main', 'Main', 'mock', 't');
INSERT INTO messaging_groups VALUES ('mg-a', 'telegram', 'telegram:1', 'Alpha', 1, 'strict', 't');
INSERT INTO messaging_groups VALUES ('mg-b', 'telegram', 'telegram:2', 'Beta', 1, 'strict', 't');
INSERT INTO messaging_groups VALUES ('mg-c', 'telegram', 'telegram:3', 'Gamma', 1, 'strict', 't');
INSERT INTO messaging_group_agents VALUES ('w1', 'mg-a', 'ag-1', '{"pattern":"^!bot"}', 'allowlisted', 'shared', 0, 't');
INSERT INTO messaging_group_agents VALUES ('w2', 'mg-b', 'ag-1', '{"requiresTrigger":false}', 'trigger', 'shared', 0, 't');
INSERT INTO messaging_group_agents VALUES ('w3', 'mg-c', 'ag-1', NULL, 'trigger', 'shared', 0, 't');
INSERT INTO sessions (id, agent_group_id, messaging_group_id, agent_provider, created_at)
  VALUES ('sess-1', 'ag-1', 'mg-a', 'opencode', 't');
"#,
    );
    v2.group_file(
        "Main",
        "container.json",
        r#"{"provider":"claude","assistantName":"Bob","maxMessagesPerPrompt":5,"skills":["notes"],
            "packages":{"apt":["jq"],"npm":[]},"mcpServers":{}}"#,
    );
    let before = v2.snapshot();
    let out = env.root.path().join("imported");
    let run = env.run(&[
        "import",
        &v2.path().display().to_string(),
        &out.display().to_string(),
    ]);
    run.success();
    assert_eq!(
        v2.snapshot(),
        before,
        "the import never writes to the v2 folder"
    );
    assert!(
        !v2.path().join("data/v2.db-shm").exists(),
        "no shared-memory file appears in v2's folder"
    );

    let loaded = reconciler::manifest::load(&out)
        .unwrap_or_else(|diagnostics| panic!("{}", reconciler::manifest::render(&diagnostics)));
    let agent = loaded
        .state
        .agents()
        .find(|agent| agent.name == "main")
        .expect("agent `main`");
    assert_eq!(
        agent.provider.as_deref(),
        Some("mock"),
        "agent_groups.agent_provider wins, as in v2's backfill"
    );
    assert_eq!(agent.assistant_name.as_deref(), Some("Bob"));
    assert_eq!(agent.max_messages_per_prompt, Some(5));
    assert_eq!(agent.skills, Skills::List(vec!["notes".into()]));
    assert_eq!(agent.packages.apt, ["jq"]);
    let wiring = |channel: &str| match loaded
        .state
        .get(&Address::new(Kind::Wiring, format!("{channel}/main")))
    {
        Some(Resource::Wiring(wiring)) => (
            wiring.engage_mode,
            wiring.engage_pattern.clone(),
            wiring.sender_scope,
        ),
        other => panic!("wiring {channel}/main: {other:?}"),
    };
    assert_eq!(
        wiring("alpha"),
        (
            EngageMode::Pattern,
            Some("^!bot".into()),
            SenderScope::Known
        )
    );
    assert_eq!(
        wiring("beta"),
        (EngageMode::Pattern, Some(".".into()), SenderScope::All)
    );
    assert_eq!(
        wiring("gamma"),
        (EngageMode::Mention, None, SenderScope::All)
    );
    for expected in [
        "configuration read from `groups/Main/container.json`",
        "a wiring from before engage modes",
        "per-session provider overrides (`opencode`) are not kept",
        "1 sessions (their messages, agent memory in `groups/`, Claude state) are moved only with `--sessions`",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            run.stdout
        );
    }
}

#[test]
fn issue_14_import_refuses_a_folder_without_a_v2_db_and_a_non_empty_outdir() {
    let env = Env::new("import-refusals");
    let run = env.run(&["import", &env.root.path().display().to_string()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("there is no NanoClaw v2 database at"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hint: pass the folder of the v2 install"),
        "{}",
        run.stderr
    );
    let v2 = V2Install::new(Shape::Current);
    env.write("agents.yaml", "kind: agent\nname: a\n");
    let run = env.run(&["import", &v2.path().display().to_string(), "manifests"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("is not empty; pass `--force`"),
        "{}",
        run.stderr
    );
}

/// A v2 install with one CLI conversation: a reply v2 delivered, one it did not yet, files on
/// both sides, agent memory and Claude state.
fn conversation_install() -> V2Install {
    let v2 = V2Install::new(Shape::Current);
    v2.sql(
        r#"
INSERT INTO agent_groups VALUES ('ag-1', 'Echo', 'echo', NULL, 't');
INSERT INTO container_configs (agent_group_id, provider, updated_at) VALUES ('ag-1', 'mock', 't');
INSERT INTO messaging_groups VALUES ('mg-cli', 'cli', 'local', 'terminal', 0, 'public', 't', NULL);
INSERT INTO messaging_group_agents VALUES ('w1', 'mg-cli', 'ag-1', 'shared', 0, 't', 'pattern', '.', 'all', 'drop');
INSERT INTO sessions (id, agent_group_id, messaging_group_id, status, last_active, created_at)
  VALUES ('sess-1', 'ag-1', 'mg-cli', 'active', '2026-01-02T00:00:00.000Z', '2026-01-01T00:00:00.000Z');
"#,
    );
    v2.session_db(
        "ag-1",
        "sess-1",
        "inbound.db",
        &format!(
            "{OLD_INBOUND}
INSERT INTO messages_in VALUES ('m1:ag-1', 2, 'chat', '2026-01-01T00:00:00.000Z', 'completed', NULL, NULL, 0,
  'local', 'cli', NULL, '{{\"text\":\"hello\",\"sender\":\"me\"}}');
INSERT INTO delivered VALUES ('out-1', '2026-01-01 00:00:01');"
        ),
    );
    v2.session_db(
        "ag-1",
        "sess-1",
        "outbound.db",
        &format!(
            r#"{OUTBOUND}
INSERT INTO messages_out VALUES ('out-1', 3, 'm1:ag-1', '2026-01-01T00:00:01.000Z', NULL, NULL, 'chat',
  'local', 'cli', NULL, '{{"text":"v2 delivered this"}}');
INSERT INTO messages_out VALUES ('out-2', 5, 'm1:ag-1', '2026-01-01T00:00:02.000Z', NULL, NULL, 'chat',
  'local', 'cli', NULL, '{{"text":"v2 had not sent this yet"}}');
INSERT INTO processing_ack VALUES ('m1:ag-1', 'completed', '2026-01-01 00:00:02');"#
        ),
    );
    let session = v2.session_dir("ag-1", "sess-1");
    for (relative, text) in [
        ("inbox/m1/photo.txt", "a photo"),
        ("outbox/out-1/report.txt", "a report"),
        (".heartbeat", ""),
        ("scratch.md", "the agent wrote here in v2"),
    ] {
        let path = session.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("session file");
    }
    let shared = v2.path().join("data/v2-sessions/ag-1/.claude-shared");
    std::fs::create_dir_all(shared.join("skills")).expect("claude state");
    std::fs::write(shared.join("settings.json"), "{}").expect("settings");
    std::os::unix::fs::symlink("/app/skills/web", shared.join("skills/web")).expect("skill link");
    v2.group_file(
        "echo",
        "CLAUDE.local.md",
        "Remember: the user likes short answers.\n",
    );
    v2.group_file("echo", "work/draft.txt", "draft");
    v2.group_file("echo", "container.json", "{}");
    v2.group_file("echo", "CLAUDE.md", "composed by v2");
    v2
}

fn columns(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut statement = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .expect("columns");
    statement
        .query_map([table], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("names")
}

#[test]
fn issue_14_sessions_move_into_nanoclaws_layout_with_their_delivered_state() {
    let env = Env::new("import-sessions");
    let v2 = conversation_install();
    let before = v2.snapshot();
    let run = env.run(&[
        "import",
        &v2.path().display().to_string(),
        "manifests",
        "--sessions",
    ]);
    run.success();
    assert_eq!(
        v2.snapshot(),
        before,
        "the import never writes to the v2 folder"
    );

    let data = env.data();
    let session = data.join("sessions/echo/sess-1");
    for present in [
        "inbound.db",
        "inbox/m1/photo.txt",
        "outbound/outbound.db",
        "outbound/outbox/out-1/report.txt",
    ] {
        assert!(session.join(present).is_file(), "{present} is moved");
    }
    for absent in [
        ".heartbeat",
        "outbound/.heartbeat",
        "scratch.md",
        "outbound.db",
    ] {
        assert!(!session.join(absent).exists(), "{absent} is not moved");
    }
    let inbound = agent_runner::session_db::open_inbound_reader(&session.join("inbound.db"))
        .expect("inbound");
    let migrated = columns(inbound.as_connection(), "messages_in");
    for column in ["series_id", "trigger", "source_session_id", "on_wake"] {
        assert!(
            migrated.contains(&column.to_string()),
            "lazy migration added {column}"
        );
    }
    assert!(columns(inbound.as_connection(), "delivered").contains(&"status".to_string()));

    let group = data.join("groups/echo");
    assert_eq!(
        std::fs::read_to_string(group.join("CLAUDE.local.md")).expect("memory"),
        "Remember: the user likes short answers.\n"
    );
    assert!(group.join("work/draft.txt").is_file());
    assert!(
        !group.join("container.json").exists() && !group.join("CLAUDE.md").exists(),
        "v2's composed files stay behind"
    );
    let shared = data.join("sessions/echo/.claude-shared");
    assert!(shared.join("settings.json").is_file());
    assert!(
        std::fs::symlink_metadata(shared.join("skills/web")).is_err(),
        "links are not copied"
    );

    let conn = reconciler::db::open_readonly(&env.db()).expect("central db");
    let row: (String, Option<String>, String, Option<String>) = conn
        .query_row(
            "SELECT agent_group_id, messaging_group_id, status, last_active FROM sessions WHERE id = 'sess-1'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .expect("session row");
    assert_eq!(
        row,
        (
            "echo".into(),
            Some("terminal".into()),
            "active".into(),
            Some("2026-01-02T00:00:00.000Z".into())
        )
    );
    let delivered: Vec<String> = conn
        .prepare("SELECT message_out_id FROM delivered_outbound WHERE session_id = 'sess-1'")
        .expect("query")
        .query_map([], |row| row.get(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("delivered");
    assert_eq!(delivered, ["out-1"]);
    for expected in [
        "`scratch.md`",
        "not copied: 1 symlinks",
        "1 sessions (1 replies already delivered by v2 recorded, never sent again)",
    ] {
        assert!(
            run.stdout.contains(expected),
            "missing {expected:?} in\n{}",
            run.stdout
        );
    }
    let plan = env.run(&["plan", "manifests", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);

    let again = env.run(&[
        "import",
        &v2.path().display().to_string(),
        "second",
        "--sessions",
    ]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("session `sess-1` is already in"),
        "{}",
        again.stderr
    );
}

#[test]
fn issue_14_an_imported_conversation_continues_where_it_stopped() {
    let Some(()) = support::docker() else {
        return;
    };
    let env = Env::new("import-continues");
    let v2 = conversation_install();
    env.run(&[
        "import",
        &v2.path().display().to_string(),
        "manifests",
        "--sessions",
    ])
    .success();
    let daemon = Daemon::start(&env);
    let mut client = Client::connect(&env);
    let (text, _) = client.reply();
    // Delivery goes oldest first: a re-sent `out-1` would arrive before `out-2`.
    assert_eq!(
        text,
        "v2 had not sent this yet",
        "the reply v2 left undelivered arrives, and the one it delivered is not sent again\n{}",
        daemon.log()
    );
    client.say("m2", "hello again");
    let (text, _) = client.reply();
    assert_eq!(text, "echo: hello again", "{}", daemon.log());
    let conn = reconciler::db::open_readonly(&env.db()).expect("central db");
    let sessions: i64 = conn
        .query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
        .expect("count");
    assert_eq!(
        sessions, 1,
        "the conversation continues in the imported session"
    );
}
