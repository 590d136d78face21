//! Tests of the pure composition: the host's side of the container contract (snapshots of
//! `container.json`), the instruction files, and "is this container current?" without IO.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::resources::{Cpus, Memory, Resources};
use crate::state::{CliScope, Mount, Network};

fn minimal(name: &str) -> Agent {
    Agent {
        name: name.into(),
        assistant_name: None,
        provider: None,
        model: None,
        effort: None,
        image: None,
        max_messages_per_prompt: None,
        cli_scope: CliScope::default(),
        instructions: None,
        skills: state::Skills::All,
        mcp_servers: BTreeMap::new(),
        packages: state::Packages::default(),
        mounts: Vec::new(),
        resources: Resources::default(),
        network: Network::default(),
    }
}

fn populated() -> Agent {
    Agent {
        name: "andy".into(),
        assistant_name: Some("Andy".into()),
        provider: Some("Mock".into()),
        model: Some("opus".into()),
        effort: Some("high".into()),
        image: Some("mine:1".into()),
        max_messages_per_prompt: Some(4),
        cli_scope: CliScope::Global,
        instructions: Some("Be kind.\n\n".into()),
        skills: state::Skills::List(vec!["pdf".into(), "xlsx".into()]),
        mcp_servers: BTreeMap::from([
            (
                "notes".to_string(),
                state::McpServer {
                    command: Some("notes-mcp".into()),
                    args: vec!["--stdio".into()],
                    env: BTreeMap::from([("NOTES_DIR".to_string(), "/workspace/agent".into())]),
                    url: None,
                    instructions: Some("Use the notes tools.  \n".into()),
                },
            ),
            (
                "web".to_string(),
                state::McpServer {
                    command: None,
                    args: Vec::new(),
                    env: BTreeMap::new(),
                    url: Some("https://mcp.example.com/sse".into()),
                    instructions: None,
                },
            ),
        ]),
        packages: state::Packages {
            apt: vec!["ripgrep".into()],
            npm: vec!["prettier".into()],
        },
        mounts: vec![Mount {
            host_path: "~/notes".into(),
            container_path: "notes".into(),
            readonly: false,
        }],
        resources: Resources {
            memory: Some(Memory::parse("1g").unwrap()),
            cpus: Some(Cpus::parse("1.5").unwrap()),
            pids: Some(256),
        },
        network: Network::None,
    }
}

fn session() -> Session {
    Session {
        id: "sess-1".into(),
        agent: "andy".into(),
        chat_id: Some("chat".into()),
        thread_id: None,
    }
}

/// Composes with an install under a folder that does not exist: composing must not need it.
fn composed(agent: &Agent, mounts: &[Resolved]) -> Composed {
    let paths = Paths::new(PathBuf::from("/nonexistent/nanoclaw-data"));
    let images = AgentImages {
        minimal: "small:1".into(),
        production: "big:1".into(),
        ..AgentImages::default()
    };
    compose(
        &session(),
        agent,
        &Inputs {
            paths: &paths,
            images: &images,
            mounts,
            env: &[],
        },
    )
}

/// Issue 9 point 1: the host's `container.json` for an agent with every field set.
#[test]
fn the_hosts_container_json_for_a_fully_populated_agent() {
    expect_test::expect![[r#"
        {
          "version": 1,
          "provider": "mock",
          "groupName": "andy",
          "agentGroupId": "andy",
          "assistantName": "Andy",
          "maxMessagesPerPrompt": 4,
          "model": "opus",
          "effort": "high",
          "mcpServers": {
            "notes": {
              "command": "notes-mcp",
              "args": [
                "--stdio"
              ],
              "env": {
                "NOTES_DIR": "/workspace/agent"
              },
              "instructions": "Use the notes tools.  \n"
            },
            "web": {
              "url": "https://mcp.example.com/sse"
            }
          },
          "packages": {
            "apt": [
              "ripgrep"
            ],
            "npm": [
              "prettier"
            ]
          },
          "imageTag": "mine:1",
          "additionalMounts": [
            {
              "hostPath": "~/notes",
              "containerPath": "notes",
              "readonly": false
            }
          ],
          "skills": [
            "pdf",
            "xlsx"
          ]
        }
    "#]]
    .assert_eq(&container_config(&populated()).to_json());
}

/// An agent that sets nothing: the contract's defaults, spelled out for the runner.
#[test]
fn an_agent_without_optional_fields_gets_the_contracts_defaults() {
    expect_test::expect![[r#"
        {
          "version": 1,
          "provider": "claude",
          "groupName": "echo",
          "agentGroupId": "echo",
          "assistantName": "echo",
          "maxMessagesPerPrompt": 10,
          "mcpServers": {},
          "packages": {
            "apt": [],
            "npm": []
          },
          "additionalMounts": [],
          "skills": "all"
        }
    "#]]
    .assert_eq(&container_config(&minimal("echo")).to_json());
}

/// What the host writes, the runner reads back unchanged.
#[test]
fn the_runner_reads_what_the_host_writes() {
    for agent in [populated(), minimal("echo")] {
        let config = container_config(&agent);
        let read = ContainerConfig::parse(&config.to_json(), Path::new("container.json")).unwrap();
        assert_eq!(read, config);
        assert!(read.unknown.is_empty());
    }
}

#[test]
fn the_instruction_files_are_imports_and_fragments() {
    let full = composed(&populated(), &[]);
    expect_test::expect![[r#"
        <!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->
        @./.claude-shared.md
        @./.claude-fragments/mcp-notes.md
    "#]]
    .assert_eq(&full.instructions.claude_md);
    assert_eq!(
        full.instructions.fragments,
        BTreeMap::from([(
            "mcp-notes.md".to_string(),
            "Use the notes tools.\n".to_string()
        )])
    );
    assert_eq!(full.instructions.local_seed, "Be kind.\n");
    assert_eq!(composed(&minimal("andy"), &[]).instructions.local_seed, "");
}

#[test]
fn the_spec_carries_image_mounts_limits_and_network() {
    let mounts = [Resolved {
        host: PathBuf::from("/home/me/notes"),
        container: "notes".into(),
        readonly: false,
    }];
    let spec = composed(&populated(), &mounts).spec;
    assert_eq!(spec.image, "mine:1", "the agent's own image");
    assert_eq!(
        spec.session_dir,
        Path::new("/nonexistent/nanoclaw-data/sessions/andy/sess-1")
    );
    assert_eq!(
        spec.extra_mounts,
        [MountSpec {
            host: PathBuf::from("/home/me/notes"),
            container: "notes".into(),
            readonly: false,
        }]
    );
    assert_eq!(spec.network, Network::None);
    assert_eq!(spec.resources.pids, Some(256));
    let mut mock = minimal("andy");
    mock.provider = Some("mock".into());
    assert_eq!(composed(&mock, &[]).spec.image, "small:1");
    assert_eq!(composed(&minimal("andy"), &[]).spec.image, "big:1");
}

/// Issue 9 point 4: "is this running container current?" compares the container's hash label
/// with a composition: no file (the data dir does not even exist), no DB, no Docker.
#[test]
fn whether_a_container_is_current_needs_no_file_or_db() {
    let running = composed(&populated(), &[]);
    let label = running.spec.config_hash.clone();
    assert_eq!(label.len(), 16);
    assert!(!Path::new("/nonexistent/nanoclaw-data").exists());
    assert!(is_current(Some(&label), &composed(&populated(), &[])));
    assert!(!is_current(None, &running), "an unlabelled container");

    let mut edited = populated();
    edited.model = Some("sonnet".into());
    assert!(!is_current(Some(&label), &composed(&edited, &[])), "model");
    let mut edited = populated();
    edited.mcp_servers.remove("notes");
    assert!(!is_current(Some(&label), &composed(&edited, &[])), "MCP");
    let mut edited = populated();
    edited.network = Network::Full;
    assert!(
        !is_current(Some(&label), &composed(&edited, &[])),
        "network"
    );
    let moved = [Resolved {
        host: PathBuf::from("/home/me/elsewhere"),
        container: "notes".into(),
        readonly: false,
    }];
    assert!(
        !is_current(Some(&label), &composed(&populated(), &moved)),
        "a mount resolved elsewhere"
    );
    // The seed of the agent's memory file is the agent's business once written.
    let mut edited = populated();
    edited.instructions = Some("Be brief.".into());
    assert!(is_current(Some(&label), &composed(&edited, &[])));
}
