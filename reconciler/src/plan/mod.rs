//! Plans: what `apply` would change in the central DB and what each change does to running
//! agents.
//!
//! [`diff::diff`] compares the desired [`State`](crate::state::State) (the manifests) with the
//! [`Current`] one (read from the DB by `db::config::read` and handed in) and returns a
//! [`Plan`]; it is pure (no file, DB or clock).
//! Which agents have a running container is a runtime fact the caller reads and hands in as
//! [`Running`]: it decides whether a change means a restart now or waits for the next start.
//! [`render`] turns a plan into text, [`json`] into the versioned JSON format
//! (docs/plan-format.md), and [`saved`] writes and checks plan files for `apply --plan`. Each
//! field change is classified by [`crate::state::effect::of`], the one field → effect table. Nothing here
//! writes the DB: that is `crate::apply`.

pub mod diff;
pub mod drift;
pub mod json;
pub mod render;
pub mod saved;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::diff::{Options, diff, diff_with};
pub use crate::state::Current;
use crate::state::effect::Effect;
use crate::state::{Address, Resource};

/// Every change needed to make the DB match the manifests, in apply order (by kind, then
/// address), plus what it does to each agent group.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The DB generation the plan was computed against.
    pub generation: i64,
    pub changes: Vec<Change>,
    /// One entry per agent group created, deleted, or changed in a way its containers notice
    /// (`effect > none`).
    pub effects: Vec<AgentEffect>,
    /// Resources made at runtime (approvals, pairing, new chats) that the manifests do not
    /// list and the plan keeps: shown so they can be adopted (`nanoclaw adopt`) or pruned.
    pub unmanaged: Vec<Address>,
}

/// Agent groups that have a running container, as the caller found them (the sessions'
/// `container_status`). `plan` does no IO: this fact comes in as data. Empty means nothing
/// runs, so no change restarts anything now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Running(pub BTreeSet<String>);

impl Running {
    pub fn contains(&self, agent: &str) -> bool {
        self.0.contains(agent)
    }
}

/// One resource to create, update, adopt or delete.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub address: Address,
    pub action: Action,
    /// Changed fields only (for create: every set field; for delete: none).
    pub fields: Vec<FieldChange>,
    /// How many top-level fields did not change (shown collapsed).
    pub unchanged: usize,
    /// The strongest effect of this change.
    pub effect: Effect,
    /// Why: the field paths (or `created`/`deleted`/`adopted`) that carry `effect`.
    pub reasons: Vec<String>,
    /// The agent group whose containers this change affects, if any.
    pub agent: Option<String>,
    /// The resource as the manifests want it (`None` for a delete).
    pub desired: Option<Resource>,
}

/// A desired resource that cannot be written because a row the plan keeps already holds its
/// unique key under another name.
#[derive(Debug, thiserror::Error)]
#[error(
    "{address}: chat {channel_type}/{platform_id} is already in the DB as `{existing}` \
     (registered at runtime); name the channel `{existing_name}` to adopt it"
)]
pub struct Conflict {
    pub address: Address,
    pub channel_type: String,
    pub platform_id: String,
    pub existing: Address,
    pub existing_name: String,
}

/// Finds desired channels whose chat (`channel_type`, `platform_id`) is held by another channel
/// row that `plan` does not delete: applying them would break the DB's unique key.
pub fn conflicts(desired: &crate::state::State, current: &Current, plan: &Plan) -> Vec<Conflict> {
    let deleted = plan.deletes();
    let kept: BTreeMap<(&str, &str), &crate::state::Channel> = current
        .state
        .resources
        .iter()
        .filter(|(address, _)| !deleted.contains(address) && desired.get(address).is_none())
        .filter_map(|(_, resource)| match resource {
            Resource::Channel(channel) => Some((
                (channel.channel_type.as_str(), channel.platform_id.as_str()),
                channel,
            )),
            _ => None,
        })
        .collect();
    desired
        .resources
        .values()
        .filter_map(|resource| match resource {
            Resource::Channel(channel) => kept
                .get(&(channel.channel_type.as_str(), channel.platform_id.as_str()))
                .map(|existing| Conflict {
                    address: resource.address(),
                    channel_type: channel.channel_type.clone(),
                    platform_id: channel.platform_id.clone(),
                    existing: Resource::Channel((*existing).clone()).address(),
                    existing_name: existing.name.clone(),
                }),
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    /// The row exists but was created at runtime: apply marks it manifest-managed (and updates
    /// any differing field).
    Adopt,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Adopt => "adopt",
            Action::Delete => "delete",
        }
    }

    /// The one-character marker of plan text.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update | Action::Adopt => "~",
            Action::Delete => "-",
        }
    }
}

/// One field's old and new value (`None` = absent), its effect, and whether the old value is
/// drift (the DB differs from what the last apply wrote).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// Path without the kind: `packages.apt`, `mcp_servers.github.env.TOKEN`.
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub effect: Effect,
    pub why: &'static str,
    /// The DB value differs from the last-applied spec: someone changed it outside manifests.
    pub drift: bool,
    /// With `drift`: the value the last apply wrote.
    pub applied: Option<Value>,
}

/// What a plan does to one agent group and the changes that cause it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEffect {
    pub agent: String,
    pub impact: Impact,
    /// `<address>: <reason>` of the changes carrying the impact.
    pub reasons: Vec<String>,
}

/// What a plan does to one agent group, in the plan's words. A created or deleted agent has its
/// own word; a changed one gets the strongest effect of its changes when a container of it
/// runs, and `next_start` when none does (nothing is restarted; the next container starts with
/// the change), except `rebuild`, whose image is rebuilt either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    /// A new agent: no container to touch; its first message starts one.
    New,
    /// A deleted agent: its sessions are deleted with it.
    Removed,
    /// Changed, no container running: the change takes effect when one next starts.
    NextStart,
    /// Running containers are restarted.
    Restart,
    /// Running containers are removed and created again (new `docker run` arguments).
    Recreate,
    /// The agent's image is rebuilt, then its containers are recreated.
    Rebuild,
}

impl Impact {
    /// The word of plan text (`next start`); JSON uses the snake_case name.
    pub fn word(self) -> &'static str {
        match self {
            Impact::New => "new",
            Impact::Removed => "removed",
            Impact::NextStart => "next start",
            Impact::Restart => "restart",
            Impact::Recreate => "recreate",
            Impact::Rebuild => "rebuild",
        }
    }

    /// The impact of a change of strength `effect` on an agent that has (or has not) a running
    /// container.
    pub fn of_change(effect: Effect, is_running: bool) -> Impact {
        match (effect, is_running) {
            (Effect::Rebuild, _) => Impact::Rebuild,
            (Effect::Recreate, true) => Impact::Recreate,
            (Effect::Restart, true) => Impact::Restart,
            _ => Impact::NextStart,
        }
    }
}

/// Counts shown in the plan's first line: resources per action, agent groups per impact
/// (`next start` is not counted: nothing happens to a container).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub adopt: usize,
    pub destroy: usize,
    pub new_agents: usize,
    pub removed_agents: usize,
    pub restart: usize,
    pub recreate: usize,
    pub rebuild: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for change in &self.changes {
            match change.action {
                Action::Create => summary.add += 1,
                Action::Update => summary.change += 1,
                Action::Adopt => summary.adopt += 1,
                Action::Delete => summary.destroy += 1,
            }
        }
        for effect in &self.effects {
            match effect.impact {
                Impact::New => summary.new_agents += 1,
                Impact::Removed => summary.removed_agents += 1,
                Impact::NextStart => {}
                Impact::Restart => summary.restart += 1,
                Impact::Recreate => summary.recreate += 1,
                Impact::Rebuild => summary.rebuild += 1,
            }
        }
        summary
    }

    /// The impact of this plan on `agent`, if it has one.
    pub fn impact_on(&self, agent: &str) -> Option<Impact> {
        self.effects
            .iter()
            .find(|effect| effect.agent == agent)
            .map(|effect| effect.impact)
    }

    /// Splits off the deletions: the plan of the additions and changes alone (what `run`
    /// applies without asking) and the deletions it holds back.
    pub fn hold_deletions(&self, running: &Running) -> (Plan, Vec<Change>) {
        self.hold(running, |change| change.action == Action::Delete)
    }

    /// Splits off the changes `held` selects (the watcher holds deletions and rebuilds until
    /// confirmed): the plan of the others and the held changes.
    pub fn hold(&self, running: &Running, held: impl Fn(&Change) -> bool) -> (Plan, Vec<Change>) {
        let (held, kept): (Vec<Change>, Vec<Change>) = self
            .changes
            .iter()
            .cloned()
            .partition(|change| held(change));
        let plan = Plan {
            generation: self.generation,
            effects: agent_effects(&kept, running),
            changes: kept,
            unmanaged: self.unmanaged.clone(),
        };
        (plan, held)
    }

    /// Addresses the plan deletes.
    pub fn deletes(&self) -> BTreeSet<&Address> {
        self.changes
            .iter()
            .filter(|change| change.action == Action::Delete)
            .map(|change| &change.address)
            .collect()
    }
}

impl Summary {
    /// `Plan: 2 to add, 1 to change, 0 to destroy · 1 new agent, 2 restarts`, or the
    /// no-changes sentence.
    pub fn line(&self) -> String {
        if self.add + self.change + self.adopt + self.destroy == 0 {
            return "No changes. The database matches the manifests.".to_string();
        }
        let mut line = format!(
            "Plan: {} to add, {} to change, {} to destroy",
            self.add, self.change, self.destroy
        );
        if self.adopt > 0 {
            line.push_str(&format!(", {} to adopt", self.adopt));
        }
        let effects: Vec<String> = [
            (self.new_agents, "new agent", "new agents"),
            (self.removed_agents, "agent removed", "agents removed"),
            (self.restart, "restart", "restarts"),
            (self.recreate, "recreate", "recreates"),
            (self.rebuild, "rebuild", "rebuilds"),
        ]
        .into_iter()
        .filter(|(count, _, _)| *count > 0)
        .map(|(count, one, many)| format!("{count} {}", if count == 1 { one } else { many }))
        .collect();
        if !effects.is_empty() {
            line.push_str(" · ");
            line.push_str(&effects.join(", "));
        }
        line
    }
}

/// One entry per agent group: `new`/`removed` when the plan creates or deletes the agent
/// itself; otherwise the strongest effect of its changes (the reasons of the changes carrying
/// it, in plan order, without repeats) turned into an [`Impact`] by whether it runs.
fn agent_effects(changes: &[Change], running: &Running) -> Vec<AgentEffect> {
    let mut lifecycle: BTreeMap<&str, AgentEffect> = BTreeMap::new();
    let mut strongest: BTreeMap<&str, (Effect, Vec<String>)> = BTreeMap::new();
    for change in changes {
        let Some(agent) = change.agent.as_deref() else {
            continue;
        };
        let reason = |reason: &str| format!("{}: {reason}", change.address);
        if change.address.kind == crate::state::Kind::Agent
            && matches!(change.action, Action::Create | Action::Delete)
        {
            let impact = if change.action == Action::Create {
                Impact::New
            } else {
                Impact::Removed
            };
            let reasons = change.reasons.iter().map(|r| reason(r)).collect();
            lifecycle.insert(
                agent,
                AgentEffect {
                    agent: agent.to_string(),
                    impact,
                    reasons,
                },
            );
            continue;
        }
        if change.effect == Effect::None {
            continue;
        }
        let entry = strongest
            .entry(agent)
            .or_insert_with(|| (change.effect, Vec::new()));
        if change.effect > entry.0 {
            *entry = (change.effect, Vec::new());
        }
        if change.effect == entry.0 {
            for reason in change.reasons.iter().map(|r| reason(r)) {
                if !entry.1.contains(&reason) {
                    entry.1.push(reason);
                }
            }
        }
    }
    for (agent, (effect, reasons)) in strongest {
        lifecycle.entry(agent).or_insert_with(|| AgentEffect {
            agent: agent.to_string(),
            impact: Impact::of_change(effect, running.contains(agent)),
            reasons,
        });
    }
    lifecycle.into_values().collect()
}

/// A short stable digest of any serialisable value (hex SHA-256), used to pin saved plans.
pub fn digest_of<T: Serialize>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Hand-built states shared by the unit tests of `plan` and `apply`.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::state::*;

    pub fn agent(name: &str) -> Agent {
        Agent {
            name: name.into(),
            assistant_name: None,
            provider: Some("mock".into()),
            model: None,
            effort: None,
            image: None,
            max_messages_per_prompt: None,
            cli_scope: CliScope::Group,
            instructions: Some("Be brief.\nAnswer in English.\n".into()),
            skills: Skills::All,
            mcp_servers: Default::default(),
            packages: Packages {
                apt: vec!["git".into()],
                npm: vec![],
            },
            mounts: vec![],
            resources: Resources::default(),
            network: Network::default(),
        }
    }

    pub fn channel(name: &str, platform_id: &str) -> Channel {
        Channel {
            name: name.into(),
            channel_type: "cli".into(),
            platform_id: platform_id.into(),
            display_name: None,
            is_group: false,
            unknown_sender_policy: UnknownSenderPolicy::Strict,
        }
    }

    pub fn wiring(channel: &str, agent: &str) -> Wiring {
        Wiring {
            channel: channel.into(),
            agent: agent.into(),
            engage_mode: EngageMode::Pattern,
            engage_pattern: Some(".".into()),
            sender_scope: SenderScope::All,
            ignored_message_policy: IgnoredMessagePolicy::Drop,
            session_mode: SessionMode::Shared,
            priority: 0,
        }
    }

    /// andy on the `main` CLI chat, one owner who is a member, two destinations (as loaded).
    pub fn state() -> State {
        let mut state = State::default();
        state.insert(Resource::Agent(agent("andy")));
        state.insert(Resource::Channel(channel("main", "local")));
        state.insert(Resource::Wiring(wiring("main", "andy")));
        state.insert(Resource::User(User {
            id: "cli:me".into(),
            display_name: Some("Me".into()),
        }));
        state.insert(Resource::Role(Role {
            user: "cli:me".into(),
            role: RoleKind::Owner,
            agent: None,
        }));
        state.insert(Resource::Member(Member {
            user: "cli:me".into(),
            agent: "andy".into(),
        }));
        state.insert(Resource::Destination(Destination {
            agent: "andy".into(),
            local_name: "home".into(),
            target: DestinationTarget::Channel("main".into()),
        }));
        // Implied by the wiring, as the manifest loader adds it.
        state.insert(Resource::Destination(Destination {
            agent: "andy".into(),
            local_name: "main".into(),
            target: DestinationTarget::Channel("main".into()),
        }));
        state
    }

    /// `state` as it reads back after an apply: all managed, specs equal.
    pub fn applied(state: &State) -> super::Current {
        super::Current {
            state: state.clone(),
            managed: state.resources.keys().cloned().collect(),
            specs: state.resources.clone(),
            generation: 1,
        }
    }

    pub fn agent_mut<'a>(state: &'a mut State, name: &str) -> &'a mut Agent {
        match state
            .resources
            .get_mut(&Address::new(Kind::Agent, name))
            .expect("agent exists")
        {
            Resource::Agent(agent) => agent,
            _ => unreachable!("agent address holds an agent"),
        }
    }
}
