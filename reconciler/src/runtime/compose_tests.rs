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
        agent_provider: None,
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
            provider: &provider_of(agent),
        },
    )
}

/// The agent's provider as the spawn resolves it without a session override.
fn provider_of(agent: &Agent) -> String {
    crate::provider::resolve(crate::provider::Sources::config(agent.provider.as_deref()))
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
    .assert_eq(&container_config(&populated(), &provider_of(&populated())).to_json());
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
    .assert_eq(&container_config(&minimal("echo"), "claude").to_json());
}

/// What the host writes, the runner reads back unchanged.
#[test]
fn the_runner_reads_what_the_host_writes() {
    for agent in [populated(), minimal("echo")] {
        let config = container_config(&agent, &provider_of(&agent));
        let read = ContainerConfig::parse(&config.to_json(), Path::new("container.json")).unwrap();
        assert_eq!(read, config);
        assert!(read.unknown.is_empty());
    }
}

#[test]
fn the_instruction_file_inlines_the_base_and_the_fragments() {
    let full = composed(&populated(), &[]);
    let claude_md = &full.instructions.claude_md;
    let parts: Vec<&str> = claude_md
        .lines()
        .filter(|line| line.starts_with("<!-- "))
        .collect();
    expect_test::expect![[r#"
        [
            "<!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->",
            "<!-- .claude-shared.md -->",
            "<!-- .claude-fragments/mcp-notes.md -->",
            "<!-- .claude-fragments/module-cli.md -->",
            "<!-- .claude-fragments/module-messaging.md -->",
            "<!-- .claude-fragments/tools-agents.md -->",
            "<!-- .claude-fragments/tools-core.md -->",
            "<!-- .claude-fragments/tools-interactive.md -->",
            "<!-- .claude-fragments/tools-self-mod.md -->",
        ]
    "#]]
    .assert_debug_eq(&parts);
    assert!(claude_md.contains(crate::runtime::instructions::SHARED_BASE.trim_end()));
    for fragment in full.instructions.fragments.values() {
        assert!(claude_md.contains(fragment.as_str()), "{fragment}");
    }
    assert!(!claude_md.contains("\n@"), "no imports: {claude_md}");
    assert_eq!(
        full.instructions.fragments["mcp-notes.md"],
        "Use the notes tools.\n"
    );
    assert_eq!(
        full.instructions.fragments["module-messaging.md"],
        format!(
            "{}\n",
            include_str!("../../../container/modules/messaging.md").trim_end()
        )
    );
    assert_eq!(full.instructions.local_seed, "Be kind.\n");
    assert!(
        full.instructions.skills.is_empty(),
        "`pdf` and `xlsx` are not bundled"
    );
    assert_eq!(composed(&minimal("andy"), &[]).instructions.local_seed, "");
}

/// Issue 10 point 6: one fragment per runner tool module (the CLI module's left out when
/// `cli_scope` is `disabled`), one per selected skill with instructions, one per MCP server
/// with instructions; the selected skills travel with the composition.
#[test]
fn issue_10_fragments_follow_cli_scope_and_the_skill_selection() {
    let names = |agent: &Agent| -> (Vec<String>, Vec<&str>) {
        let instructions = composed(agent, &[]).instructions;
        (
            instructions.fragments.keys().cloned().collect(),
            instructions.skills.iter().map(|skill| skill.name).collect(),
        )
    };
    // Every agent also gets one fragment per tool module of the runner's MCP server.
    let tools: Vec<String> = agent_runner::mcp::MODULES
        .iter()
        .map(|module| format!("tools-{}.md", module.name))
        .collect();
    let with_tools = |names: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        all.extend(tools.iter().cloned());
        all.sort();
        all
    };
    let all = minimal("andy");
    assert_eq!(
        names(&all),
        (
            with_tools(&["module-cli.md", "module-messaging.md", "skill-remember.md"]),
            vec!["remember"]
        )
    );
    let mut quiet = minimal("andy");
    quiet.cli_scope = CliScope::Disabled;
    quiet.skills = state::Skills::List(Vec::new());
    assert_eq!(
        names(&quiet),
        (with_tools(&["module-messaging.md"]), Vec::new())
    );
    let claude_md = composed(&all, &[]).instructions.claude_md;
    assert!(claude_md.contains("<!-- .claude-fragments/skill-remember.md -->\n"));
    assert!(claude_md.contains("<!-- .claude-fragments/tools-core.md -->\n"));
}

/// Issue 10 points 5 and 6: a Claude agent gets its state folder (read-write) and its skills
/// (read-only) in Claude Code's folder and the credential proxy's socket folder (read-only);
/// a mock agent none of them.
#[test]
fn issue_10_a_claude_agent_gets_its_state_skills_and_the_proxy_a_mock_agent_none() {
    let shown = |agent: &Agent| -> Vec<String> {
        let spec = composed(agent, &[]).spec;
        let mut lines: Vec<String> = spec
            .system_mounts
            .iter()
            .map(|mount| {
                format!(
                    "{} -> {} {}",
                    mount.host.display(),
                    mount.container,
                    if mount.readonly { "ro" } else { "rw" }
                )
            })
            .collect();
        lines.push(format!("credentials: {}", spec.credentials));
        lines
    };
    expect_test::expect![[r#"
        [
            "/nonexistent/nanoclaw-data/sessions/andy/.claude-shared -> /home/agent/.claude rw",
            "/nonexistent/nanoclaw-data/sessions/andy/skills -> /home/agent/.claude/skills ro",
            "/nonexistent/nanoclaw-data/proxy -> /run/nanoclaw-proxy ro",
            "credentials: true",
        ]
    "#]]
    .assert_debug_eq(&shown(&minimal("andy")));
    let mut mock = minimal("andy");
    mock.provider = Some("mock".into());
    expect_test::expect![[r#"
        [
            "credentials: false",
        ]
    "#]]
    .assert_debug_eq(&shown(&mock));
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
