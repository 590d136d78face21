//! `State` → manifest YAML in the shape `load` reads (used by `nanoclaw export`).
//!
//! The inverse of validation: defaults are omitted, destinations implied by a wiring are not
//! written (loading adds them back), roles and memberships go into their user's document.
//! Must round-trip: `load(to_yaml(state)) == state`.

use std::collections::BTreeMap;

use super::model::{
    AgentDoc, ChannelDoc, DestinationDoc, McpServerDoc, MountDoc, PackagesDoc, QuantityDoc,
    ResourcesDoc, RoleDoc, ScopedRoleDoc, SkillsDoc, Sp, UserDoc, WiringDoc,
};
use crate::state::{
    Agent, Channel, CliScope, DestinationTarget, EngageMode, IgnoredMessagePolicy, Network,
    Resource, SenderScope, SessionMode, Skills, State, UnknownSenderPolicy,
};

/// The state as manifest YAML: agents, then channels, then users, one document each.
pub fn to_yaml(state: &State) -> String {
    let mut agents: BTreeMap<String, AgentDoc> = BTreeMap::new();
    let mut channels: BTreeMap<String, ChannelDoc> = BTreeMap::new();
    let mut users: BTreeMap<String, UserDoc> = BTreeMap::new();
    for resource in state.resources.values() {
        match resource {
            Resource::Agent(agent) => {
                agents.insert(agent.name.clone(), agent_doc(agent));
            }
            Resource::Channel(channel) => {
                channels.insert(channel.name.clone(), channel_doc(channel));
            }
            Resource::User(user) => {
                let doc = user_doc(&user.id, &mut users);
                doc.display_name = user.display_name.clone().map(Sp::bare);
            }
            _ => {}
        }
    }
    for resource in state.resources.values() {
        match resource {
            Resource::Wiring(wiring) => {
                if let Some(channel) = channels.get_mut(&wiring.channel) {
                    let pattern = wiring.engage_pattern.clone().map(Sp::bare);
                    channel.wirings.push(Sp::bare(WiringDoc {
                        agent: Sp::bare(wiring.agent.clone()),
                        engage_mode: non_default(wiring.engage_mode, EngageMode::as_str),
                        engage_pattern: pattern,
                        sender_scope: non_default(wiring.sender_scope, SenderScope::as_str),
                        ignored_message_policy: non_default(
                            wiring.ignored_message_policy,
                            IgnoredMessagePolicy::as_str,
                        ),
                        session_mode: non_default(wiring.session_mode, SessionMode::as_str),
                        priority: (wiring.priority != 0).then_some(wiring.priority),
                    }));
                }
            }
            Resource::Destination(destination) => {
                let implied = matches!(&destination.target, DestinationTarget::Channel(channel)
                    if *channel == destination.local_name
                        && state.resources.values().any(|other| matches!(other,
                            Resource::Wiring(wiring) if wiring.agent == destination.agent
                                && wiring.channel == *channel)));
                if implied {
                    continue;
                }
                if let Some(agent) = agents.get_mut(&destination.agent) {
                    let (to_agent, to_channel) = match &destination.target {
                        DestinationTarget::Agent(name) => (Some(Sp::bare(name.clone())), None),
                        DestinationTarget::Channel(name) => (None, Some(Sp::bare(name.clone()))),
                    };
                    agent.destinations.push(Sp::bare(DestinationDoc {
                        name: Sp::bare(destination.local_name.clone()),
                        agent: to_agent,
                        channel: to_channel,
                    }));
                }
            }
            Resource::Role(role) => {
                let doc = user_doc(&role.user, &mut users);
                let entry = match (&role.agent, role.role) {
                    (None, kind) => RoleDoc::Global(kind.as_str().to_string()),
                    (Some(agent), kind) => RoleDoc::Scoped(ScopedRoleDoc {
                        role: kind.as_str().to_string(),
                        agent: Some(agent.clone()),
                    }),
                };
                doc.roles.push(Sp::bare(entry));
            }
            Resource::Member(member) => {
                let doc = user_doc(&member.user, &mut users);
                doc.member_of.push(Sp::bare(member.agent.clone()));
            }
            _ => {}
        }
    }
    let mut documents = Vec::new();
    documents.extend(agents.values().map(serialize));
    documents.extend(channels.values().map(serialize));
    documents.extend(users.values().map(serialize));
    documents.join("---\n")
}

fn serialize<T: serde::Serialize>(doc: &T) -> String {
    let text = serde_saphyr::to_string(doc).unwrap_or_default();
    if text.ends_with('\n') {
        text
    } else {
        format!("{text}\n")
    }
}

fn non_default<T: Default + PartialEq + Copy>(
    value: T,
    as_str: fn(T) -> &'static str,
) -> Option<Sp<String>> {
    (value != T::default()).then(|| Sp::bare(as_str(value).to_string()))
}

fn user_doc<'a>(id: &str, users: &'a mut BTreeMap<String, UserDoc>) -> &'a mut UserDoc {
    users.entry(id.to_string()).or_insert_with(|| UserDoc {
        kind: Sp::bare("user".to_string()),
        id: Sp::bare(id.to_string()),
        display_name: None,
        roles: Vec::new(),
        member_of: Vec::new(),
    })
}

fn agent_doc(agent: &Agent) -> AgentDoc {
    let packages =
        (!agent.packages.apt.is_empty() || !agent.packages.npm.is_empty()).then(|| PackagesDoc {
            apt: agent.packages.apt.iter().cloned().map(Sp::bare).collect(),
            npm: agent.packages.npm.iter().cloned().map(Sp::bare).collect(),
        });
    AgentDoc {
        kind: Sp::bare("agent".to_string()),
        name: Sp::bare(agent.name.clone()),
        assistant_name: agent.assistant_name.clone().map(Sp::bare),
        provider: agent.provider.clone().map(Sp::bare),
        model: agent.model.clone().map(Sp::bare),
        effort: agent.effort.clone().map(Sp::bare),
        image: agent.image.clone().map(Sp::bare),
        max_messages_per_prompt: agent.max_messages_per_prompt.map(Sp::bare),
        cli_scope: non_default(agent.cli_scope, CliScope::as_str),
        instructions: agent.instructions.clone().map(Sp::bare),
        skills: match &agent.skills {
            Skills::All => None,
            Skills::List(names) => Some(Sp::bare(SkillsDoc::List(names.clone()))),
        },
        mcp_servers: agent
            .mcp_servers
            .iter()
            .map(|(name, server)| {
                let doc = McpServerDoc {
                    command: server.command.clone(),
                    args: server.args.clone(),
                    env: server.env.clone(),
                    url: server.url.clone(),
                    instructions: server.instructions.clone(),
                };
                (name.clone(), Sp::bare(doc))
            })
            .collect(),
        packages,
        mounts: agent
            .mounts
            .iter()
            .map(|mount| {
                Sp::bare(MountDoc {
                    host_path: Sp::bare(mount.host_path.clone()),
                    container_path: Some(Sp::bare(mount.container_path.clone())),
                    readonly: (!mount.readonly).then_some(false),
                })
            })
            .collect(),
        destinations: Vec::new(),
        network: non_default(agent.network, Network::as_str),
        resources: (!agent.resources.is_default()).then(|| {
            let resources = &agent.resources;
            Sp::bare(ResourcesDoc {
                memory: resources
                    .memory
                    .map(|memory| Sp::bare(QuantityDoc::Text(memory.to_string()))),
                cpus: resources
                    .cpus
                    .map(|cpus| Sp::bare(QuantityDoc::Number(cpus.as_f64()))),
                pids: resources.pids.map(|pids| Sp::bare(i64::from(pids))),
            })
        }),
    }
}

fn channel_doc(channel: &Channel) -> ChannelDoc {
    ChannelDoc {
        kind: Sp::bare("channel".to_string()),
        name: Sp::bare(channel.name.clone()),
        channel_type: Sp::bare(channel.channel_type.clone()),
        platform_id: Sp::bare(channel.platform_id.clone()),
        display_name: channel.display_name.clone().map(Sp::bare),
        is_group: channel.is_group.then_some(true),
        unknown_sender_policy: non_default(
            channel.unknown_sender_policy,
            UnknownSenderPolicy::as_str,
        ),
        wirings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::manifest::{load_str, render, to_yaml};
    use crate::state::*;

    /// Text that YAML likes to reinterpret: booleans, nulls, numbers, indicators, whitespace.
    fn tricky_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,24}",
            Just("yes".to_string()),
            Just("null".to_string()),
            Just("~".to_string()),
            Just("0x1F".to_string()),
            Just("1e3".to_string()),
            Just("- item".to_string()),
            Just("key: value".to_string()),
            Just("#not a comment".to_string()),
            Just(" leading and trailing ".to_string()),
            Just("line one\nline two\n".to_string()),
            Just("no final newline\nsecond".to_string()),
            Just("*alias &anchor !tag".to_string()),
            Just("\"quoted\" and 'single'".to_string()),
        ]
    }

    /// Tricky text without line breaks or invisible characters: names shown to people refuse
    /// them.
    fn tricky_line() -> impl Strategy<Value = String> {
        tricky_text().prop_filter("one visible line", |text| {
            !text.chars().any(crate::manifest::diagnostic::is_invisible)
        })
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,4})?"
    }

    fn agent(name: String) -> impl Strategy<Value = Agent> {
        (
            proptest::option::of(tricky_line()),
            proptest::option::of(tricky_text()),
            proptest::option::of(1u32..=100),
            prop_oneof![
                Just(CliScope::Disabled),
                Just(CliScope::Group),
                Just(CliScope::Global)
            ],
            proptest::option::of(tricky_text()),
            proptest::option::of(proptest::collection::vec("[a-z]{1,8}", 0..3)),
            // A set: validation refuses a package listed twice; Debian names have two characters
            // at least.
            proptest::collection::btree_set("[a-z][a-z0-9.+-]{1,8}", 0..3)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>()),
            proptest::collection::vec(tricky_text(), 0..3),
            any::<bool>(),
            resources(),
            prop_oneof![Just(Network::Full), Just(Network::None)],
        )
            .prop_map(
                move |(
                    assistant_name,
                    model,
                    max,
                    cli_scope,
                    instructions,
                    skills,
                    apt,
                    args,
                    readonly,
                    resources,
                    network,
                )| {
                    let mut mcp_servers = BTreeMap::new();
                    mcp_servers.insert(
                        "tool".to_string(),
                        McpServer {
                            command: Some("npx".into()),
                            args,
                            env: BTreeMap::from([("TOKEN".to_string(), "x".to_string())]),
                            url: None,
                            instructions: None,
                        },
                    );
                    Agent {
                        name: name.clone(),
                        assistant_name,
                        provider: Some("mock".into()),
                        model,
                        effort: Some("high".into()),
                        image: None,
                        max_messages_per_prompt: max,
                        cli_scope,
                        instructions,
                        skills: skills.map_or(Skills::All, Skills::List),
                        mcp_servers,
                        packages: Packages {
                            apt: apt.into_iter().collect(),
                            npm: vec!["@scope/pkg".into()],
                        },
                        mounts: vec![Mount {
                            host_path: "~/projects/site".into(),
                            container_path: "site".into(),
                            readonly,
                        }],
                        resources,
                        network,
                    }
                },
            )
    }

    /// Limits as a manifest can state them (each absent, or in bounds).
    fn resources() -> impl Strategy<Value = Resources> {
        use crate::resources::{Cpus, Memory};
        (
            proptest::option::of(
                ((32u64 << 10)..=(1 << 24)).prop_map(|kib| Memory::from_bytes(kib << 10)),
            ),
            proptest::option::of((10u32..=64_000).prop_map(Cpus::from_millis)),
            proptest::option::of(16u32..=100_000),
        )
            .prop_map(|(memory, cpus, pids)| Resources { memory, cpus, pids })
    }

    fn state() -> impl Strategy<Value = State> {
        (
            proptest::collection::btree_set(name(), 1..4),
            proptest::collection::btree_set(name(), 1..3),
            tricky_line(),
            any::<bool>(),
            0usize..3,
            -5i64..5,
        )
            .prop_flat_map(|(agents, channels, display, is_group, mode, priority)| {
                let agent_names: Vec<String> = agents.into_iter().collect();
                let strategies: Vec<_> = agent_names.iter().cloned().map(agent).collect();
                (
                    strategies,
                    Just(agent_names),
                    Just(channels),
                    Just(display),
                    Just(is_group),
                    Just(mode),
                    Just(priority),
                )
            })
            .prop_map(
                |(agents, agent_names, channels, display, is_group, mode, priority)| {
                    let mut state = State::default();
                    for agent in agents {
                        state.insert(Resource::Agent(agent));
                    }
                    for (index, channel) in channels.iter().enumerate() {
                        state.insert(Resource::Channel(Channel {
                            name: channel.clone(),
                            channel_type: "telegram".into(),
                            platform_id: format!("telegram:-100{index}"),
                            display_name: Some(display.clone()),
                            is_group,
                            unknown_sender_policy: UnknownSenderPolicy::RequestApproval,
                        }));
                        let agent = &agent_names[index % agent_names.len()];
                        let (engage_mode, engage_pattern) = match mode {
                            0 => (EngageMode::Pattern, Some("^@?bot\\b".to_string())),
                            1 => (EngageMode::Mention, None),
                            _ => (EngageMode::MentionSticky, None),
                        };
                        state.insert(Resource::Wiring(Wiring {
                            channel: channel.clone(),
                            agent: agent.clone(),
                            engage_mode,
                            engage_pattern,
                            sender_scope: SenderScope::Known,
                            ignored_message_policy: IgnoredMessagePolicy::Accumulate,
                            session_mode: SessionMode::PerThread,
                            priority,
                        }));
                        state.insert(Resource::Destination(Destination {
                            agent: agent.clone(),
                            local_name: channel.clone(),
                            target: DestinationTarget::Channel(channel.clone()),
                        }));
                    }
                    let first = agent_names[0].clone();
                    state.insert(Resource::Destination(Destination {
                        agent: first.clone(),
                        local_name: "self-link".into(),
                        target: DestinationTarget::Agent(first.clone()),
                    }));
                    state.insert(Resource::User(User {
                        id: "telegram:42".into(),
                        display_name: Some(display),
                    }));
                    state.insert(Resource::Role(Role {
                        user: "telegram:42".into(),
                        role: RoleKind::Owner,
                        agent: None,
                    }));
                    state.insert(Resource::Role(Role {
                        user: "telegram:42".into(),
                        role: RoleKind::Admin,
                        agent: Some(first.clone()),
                    }));
                    state.insert(Resource::Member(Member {
                        user: "telegram:42".into(),
                        agent: first,
                    }));
                    state
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn load_of_to_yaml_is_the_identity(state in state()) {
            let yaml = to_yaml(&state);
            let loaded = load_str("export.yaml", &yaml)
                .unwrap_or_else(|diagnostics| panic!("{}\n{yaml}", render(&diagnostics)));
            prop_assert_eq!(loaded.state, state, "{}", yaml);
        }
    }
}
