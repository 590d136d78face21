//! Tests of the container contract: the runner's side of version skew (unknown keys, missing
//! keys, a newer version), v2's falsy defaults, and round trips.

use super::*;

fn parse(value: serde_json::Value) -> Result<ContainerConfig, ConfigError> {
    ContainerConfig::parse(&value.to_string(), Path::new("/workspace/container.json"))
}

#[test]
fn falsy_fields_take_defaults() {
    let c = parse(serde_json::json!({
        "provider": "", "assistantName": "", "maxMessagesPerPrompt": 0, "model": null
    }))
    .unwrap();
    assert_eq!(c, ContainerConfig::default());
}

#[test]
fn reads_fields_and_lowercases_provider() {
    let c = parse(serde_json::json!({
        "provider": "Mock", "assistantName": "Andy", "maxMessagesPerPrompt": 3,
        "model": "opus", "effort": "high", "packages": {"apt": ["ignored"]}
    }))
    .unwrap();
    assert_eq!(c.provider, "mock");
    assert_eq!(c.assistant_name.as_deref(), Some("Andy"));
    assert_eq!(c.max_messages_per_prompt, 3);
    assert_eq!(
        (c.model.as_deref(), c.effort.as_deref()),
        (Some("opus"), Some("high"))
    );
}

#[test]
fn unreadable_or_broken_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ContainerConfig::load(&dir.path().join("missing.json")).unwrap_err();
    assert!(missing.is_missing(), "{missing}");
    let p = dir.path().join("c.json");
    std::fs::write(&p, "{not json").unwrap();
    assert!(matches!(
        ContainerConfig::load(&p),
        Err(ConfigError::Parse { .. })
    ));
}

/// A newer host added a key: an older runner reads the rest, keeps the key for the log.
#[test]
fn a_runner_reads_a_config_with_an_extra_key() {
    let c = parse(serde_json::json!({
        "provider": "mock", "model": "m-1", "toolPolicy": {"bash": "ask"}, "zeta": 1
    }))
    .unwrap();
    assert_eq!(
        (c.provider.as_str(), c.model.as_deref()),
        ("mock", Some("m-1"))
    );
    assert_eq!(c.unknown_keys(), ["toolPolicy", "zeta"]);
    assert_eq!(c.unknown["toolPolicy"]["bash"], "ask");
}

/// An older host wrote fewer keys (v2's hosts wrote no `version`): each takes its default.
#[test]
fn a_config_missing_optional_keys_takes_the_defaults() {
    let c = parse(serde_json::json!({"provider": "mock"})).unwrap();
    assert_eq!(
        c,
        ContainerConfig {
            provider: "mock".into(),
            ..ContainerConfig::default()
        }
    );
    assert_eq!(c.version, 1);
    assert_eq!(c.max_messages_per_prompt, DEFAULT_MAX_MESSAGES);
    assert_eq!(c.skills, Skills::All);
    assert!(c.mcp_servers.is_empty() && c.unknown.is_empty());
    assert_eq!(
        parse(serde_json::json!({})).unwrap().provider,
        DEFAULT_PROVIDER
    );
}

#[test]
fn a_config_of_a_newer_incompatible_host_is_refused_with_a_clear_error() {
    let err = parse(serde_json::json!({"version": VERSION + 1, "provider": "mock"})).unwrap_err();
    expect_test::expect![[r#"
        `/workspace/container.json` is version 2 of the container contract; this runner understands up to version 1

        hint: the host is newer than the runner in the agent image: rebuild the agent images (`nanoclaw image build`)"#]]
    .assert_eq(&err.to_string());
    assert!(parse(serde_json::json!({"version": VERSION})).is_ok());
}

#[test]
fn a_field_of_the_wrong_shape_names_the_file_and_the_field() {
    let err = parse(serde_json::json!({"skills": "some"})).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "`/workspace/container.json` is not a container config: `skills` is `some`"
        ),
        "{text}"
    );
}

#[test]
fn a_full_config_round_trips() {
    let config = ContainerConfig {
        version: VERSION,
        provider: "mock".into(),
        group_name: "andy".into(),
        agent_group_id: "andy".into(),
        assistant_name: Some("Andy".into()),
        max_messages_per_prompt: 4,
        model: Some("m-1".into()),
        effort: Some("high".into()),
        mcp_servers: BTreeMap::from([
            (
                "notes".to_string(),
                McpServer {
                    command: Some("notes-mcp".into()),
                    args: vec!["--stdio".into()],
                    env: BTreeMap::from([(
                        "NOTES_DIR".to_string(),
                        "/workspace/agent".to_string(),
                    )]),
                    url: None,
                    instructions: Some("Use notes.".into()),
                },
            ),
            (
                "web".to_string(),
                McpServer {
                    url: Some("https://mcp.example.com".into()),
                    ..McpServer::default()
                },
            ),
        ]),
        packages: Packages {
            apt: vec!["ripgrep".into()],
            npm: vec!["prettier".into()],
        },
        image_tag: Some("mine:1".into()),
        additional_mounts: vec![AdditionalMount {
            host_path: "~/notes".into(),
            container_path: "notes".into(),
            readonly: false,
        }],
        skills: Skills::List(vec!["pdf".into()]),
        unknown: BTreeMap::from([("fromTheFuture".to_string(), serde_json::json!(true))]),
    };
    let text = config.to_json();
    assert!(text.ends_with("}\n"));
    assert_eq!(
        ContainerConfig::parse(&text, Path::new("c.json")).unwrap(),
        config
    );
    let defaults = ContainerConfig::default();
    assert_eq!(
        ContainerConfig::parse(&defaults.to_json(), Path::new("c.json")).unwrap(),
        defaults
    );
}
