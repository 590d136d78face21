//! Unit tests of the v2 → nanoclaw mapping: names, v2's defaults for NULLs, the legacy
//! engage backfill and the report notes. Rows are built here; no DB is read.

use super::*;
use crate::db::v2::{
    AgentGroupRow, ConfigRow, DestinationRow, MessagingGroupRow, RoleRow, UserRow, WiringRow,
};
use crate::mount_policy::Reason;

fn group(id: &str, name: &str, folder: &str) -> AgentGroupRow {
    AgentGroupRow {
        id: id.into(),
        name: name.into(),
        folder: folder.into(),
        agent_provider: None,
    }
}

fn chat(id: &str, name: Option<&str>) -> MessagingGroupRow {
    MessagingGroupRow {
        id: id.into(),
        channel_type: "telegram".into(),
        platform_id: format!("telegram:{id}"),
        name: name.map(str::to_string),
        ..MessagingGroupRow::default()
    }
}

fn wiring(mg: &str, ag: &str) -> WiringRow {
    WiringRow {
        id: format!("w-{mg}-{ag}"),
        messaging_group_id: mg.into(),
        agent_group_id: ag.into(),
        session_mode: Some("shared".into()),
        priority: Some(0),
        engage_mode: Some("mention".into()),
        engage_pattern: None,
        sender_scope: Some("all".into()),
        ignored_message_policy: Some("drop".into()),
        legacy: None,
    }
}

/// Maps `v2` with every mount allowed as asked, except read-write ones (refused as v2's
/// allowlist without `allowReadWrite` would).
fn run(v2: &V2) -> (State, Names, Report) {
    let groups = BTreeMap::new();
    let check = |request: &Request<'_>| {
        if request.readonly {
            Ok(Resolved {
                host: std::path::PathBuf::from(request.host_path),
                container: request.container_path.unwrap_or("extra").to_string(),
                readonly: true,
            })
        } else {
            Err(Refusal {
                host_path: request.host_path.to_string(),
                resolved: None,
                reason: Reason::ReadWriteNotAllowed {
                    root: "~/projects".into(),
                    allowlist: "mount-allowlist.json".into(),
                    all_read_only: false,
                },
            })
        }
    };
    let inputs = Inputs {
        groups: &groups,
        check_mount: &check,
        providers: &["claude", "mock"],
    };
    map(v2, &inputs)
}

fn agent<'a>(state: &'a State, name: &str) -> &'a Agent {
    match state.get(&crate::state::Address::new(crate::state::Kind::Agent, name)) {
        Some(Resource::Agent(agent)) => agent,
        other => panic!("no agent {name}: {other:?}"),
    }
}

fn wiring_of<'a>(state: &'a State, key: &str) -> &'a Wiring {
    match state.get(&crate::state::Address::new(crate::state::Kind::Wiring, key)) {
        Some(Resource::Wiring(wiring)) => wiring,
        other => panic!("no wiring {key}: {other:?}"),
    }
}

fn notes(report: &Report) -> String {
    report
        .notes
        .iter()
        .map(|note| format!("{:?} {}: {}\n", note.section, note.subject, note.text))
        .collect()
}

#[test]
fn legacy_wirings_get_v2s_migration_10_engage_settings() {
    let cases = [
        (
            Some(r#"{"pattern":"^@bot"}"#),
            Some("all"),
            "pattern",
            Some("^@bot"),
            "all",
        ),
        (
            Some(r#"{"requiresTrigger":false}"#),
            None,
            "pattern",
            Some("."),
            "all",
        ),
        (None, Some("all"), "pattern", Some("."), "all"),
        (
            Some("not json"),
            Some("allowlisted"),
            "mention",
            None,
            "known",
        ),
        (
            Some(r#"{"pattern":""}"#),
            Some("trigger"),
            "mention",
            None,
            "all",
        ),
    ];
    for (rules, scope, mode, pattern, sender) in cases {
        let engage = legacy_engage(rules, scope);
        assert_eq!(
            (
                engage.mode.as_str(),
                engage.pattern.as_deref(),
                engage.sender_scope.as_str()
            ),
            (mode, pattern, sender),
            "{rules:?} {scope:?}"
        );
        assert_eq!(engage.ignored, "drop");
    }
}

#[test]
fn agents_are_named_by_folder_and_chats_by_the_name_their_agents_use() {
    let mut v2 = V2 {
        agent_groups: vec![
            group("ag-1", "Andy", "main"),
            group("ag-2", "Helper", "Team_Helper"),
        ],
        messaging_groups: vec![
            chat("mg-aaaaaaaa11", Some("Family Chat")),
            chat("mg-bbbbbbbb22", None),
        ],
        wirings: vec![
            wiring("mg-aaaaaaaa11", "ag-1"),
            wiring("mg-bbbbbbbb22", "ag-2"),
        ],
        ..V2::default()
    };
    v2.destinations = Some(vec![DestinationRow {
        agent_group_id: "ag-1".into(),
        local_name: "home".into(),
        target_type: "channel".into(),
        target_id: "mg-aaaaaaaa11".into(),
    }]);
    let (state, names, report) = run(&v2);
    assert_eq!(names.agents["ag-1"], "main");
    assert_eq!(names.agents["ag-2"], "team-helper");
    assert_eq!(
        names.channels["mg-aaaaaaaa11"], "home",
        "the name agent `main` uses for it"
    );
    assert_eq!(
        names.channels["mg-bbbbbbbb22"], "telegram-mg-bbbbb",
        "v2's destination base name"
    );
    assert_eq!(
        agent(&state, "main").assistant_name.as_deref(),
        Some("Andy"),
        "v2 answers as the group's name"
    );
    let text = notes(&report);
    assert!(
        text.contains("folder `Team_Helper` (name `Helper`) → agent `team-helper`"),
        "{text}"
    );
    assert!(
        text.contains(
            "Added agent `team-helper`: destination `telegram-mg-bbbbb` for its wired channel"
        ),
        "{text}"
    );
    assert!(!text.contains("Added agent `main`"), "{text}");
}

#[test]
fn nulls_and_unknown_values_take_v2s_behaviour_and_are_reported() {
    let mut null_wiring = wiring("mg-1", "ag-1");
    null_wiring.engage_mode = None;
    null_wiring.sender_scope = None;
    null_wiring.ignored_message_policy = None;
    let mut js = wiring("mg-2", "ag-1");
    js.engage_mode = Some("pattern".into());
    js.engage_pattern = Some("^(?!bot)x".into());
    let v2 = V2 {
        agent_groups: vec![group("ag-1", "a", "a")],
        configs: Some(vec![ConfigRow {
            agent_group_id: "ag-1".into(),
            provider: Some("Codex".into()),
            effort: Some("huge".into()),
            max_messages_per_prompt: Some(500),
            image_tag: Some("nanoclaw-agent-v2-1234abcd:ag-1".into()),
            additional_mounts: Some(
                r#"[{"hostPath":"~/projects/site","containerPath":"site","readonly":false}]"#
                    .into(),
            ),
            cli_scope: Some("global".into()),
            ..ConfigRow::default()
        }]),
        messaging_groups: vec![chat("mg-1", Some("one")), chat("mg-2", Some("two"))],
        wirings: vec![null_wiring, js],
        users: vec![UserRow {
            id: "telegram:1".into(),
            kind: "tg".into(),
            display_name: None,
        }],
        roles: vec![
            RoleRow {
                user_id: "telegram:1".into(),
                role: "owner".into(),
                agent_group_id: Some("ag-1".into()),
                granted_by: None,
            },
            RoleRow {
                user_id: "telegram:1".into(),
                role: "admin".into(),
                agent_group_id: Some("ag-1".into()),
                granted_by: Some("telegram:1".into()),
            },
        ],
        ..V2::default()
    };
    let (state, _, report) = run(&v2);
    let a = agent(&state, "a");
    assert_eq!(
        a.provider.as_deref(),
        Some("codex"),
        "kept, lowercased like v2's resolution"
    );
    assert_eq!(
        (
            a.effort.as_deref(),
            a.max_messages_per_prompt,
            a.image.as_deref()
        ),
        (None, None, None)
    );
    assert_eq!(a.cli_scope, CliScope::Global);
    assert_eq!(
        a.mounts,
        vec![Mount {
            host_path: "~/projects/site".into(),
            container_path: "site".into(),
            readonly: true
        }]
    );
    let null = wiring_of(&state, "one/a");
    assert_eq!(
        (
            null.engage_mode,
            null.sender_scope,
            null.ignored_message_policy
        ),
        (
            EngageMode::Mention,
            SenderScope::Known,
            IgnoredMessagePolicy::Drop
        )
    );
    let js = wiring_of(&state, "two/a");
    assert_eq!(
        (js.engage_mode, js.engage_pattern.as_deref()),
        (EngageMode::Mention, None)
    );
    let text = notes(&report);
    for expected in [
        "NotModelled agent `a`: provider `codex` is not one nanoclaw has (`claude`, `mock`)",
        "Dropped agent `a`: effort `huge` is not one of",
        "Dropped agent `a`: max_messages_per_prompt 500 is outside 1 to 100",
        "Dropped agent `a`: image `nanoclaw-agent-v2-1234abcd:ag-1` is v2's own build",
        "Changed agent `a`: mount `~/projects/site` is read-only",
        "Changed wiring `one/a`: engage_mode NULL is not a mode",
        "Changed wiring `one/a`: sender_scope is NULL, which v2 treats like `known`",
        "Changed wiring `two/a`: engage_pattern `^(?!bot)x` (a JavaScript regex) does not compile here",
        "NotModelled user `telegram:1`: kind `tg`",
        "Dropped role `owner` of user `telegram:1`: an owner scoped to one agent group",
        "NotModelled roles and memberships: who granted them (`granted_by` on 1 roles",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}

#[test]
fn names_stay_valid_and_unique() {
    assert_eq!(name_of("Main"), "main");
    assert_eq!(name_of("global"), "global-agent");
    assert_eq!(name_of("???"), "unnamed");
    assert_eq!(name_of(&"x".repeat(100)).len(), MAX_NAME_LEN);
    let mut taken = BTreeSet::new();
    assert_eq!(unique("a".into(), &mut taken), "a");
    assert_eq!(unique("a".into(), &mut taken), "a-2");
    assert_eq!(unique("a".into(), &mut taken), "a-3");
    let long = "y".repeat(MAX_NAME_LEN);
    assert_eq!(unique(long.clone(), &mut taken), long);
    assert!(unique(long, &mut taken).ends_with("-2"));
}
