//! Plans: what `apply` would change in the central DB and what each change does to running
//! agents.
//!
//! [`diff::diff`] compares the desired [`State`] (the manifests) with the [`Current`] one (read
//! from the DB by [`current::read`]) and returns a [`Plan`]; it is pure (no file, DB or clock).
//! [`render`] turns a plan into text, [`json`] into the versioned JSON format
//! (docs/plan-format.md), and [`saved`] writes and checks plan files for `apply --plan`. Each
//! field change is classified by [`effect::of`], the one field → effect table. Nothing here
//! writes the DB: that is `crate::apply`.

pub mod current;
pub mod diff;
pub mod drift;
pub mod effect;
pub mod json;
pub mod render;
pub mod saved;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::current::Current;
pub use self::diff::{Options, diff, diff_with};
use self::effect::Effect;
use crate::state::{Address, Resource};

/// Every change needed to make the DB match the manifests, in apply order (by kind, then
/// address), plus the strongest effect per agent group.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The DB generation the plan was computed against.
    pub generation: i64,
    pub changes: Vec<Change>,
    /// One entry per agent group whose containers need more than nothing (`effect > none`).
    pub effects: Vec<AgentEffect>,
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

/// The strongest effect of a plan on one agent group and the reasons for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEffect {
    pub agent: String,
    pub effect: Effect,
    pub reasons: Vec<String>,
}

/// Counts shown in the plan's first line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub adopt: usize,
    pub destroy: usize,
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
            match effect.effect {
                Effect::None => {}
                Effect::Restart => summary.restart += 1,
                Effect::Recreate => summary.recreate += 1,
                Effect::Rebuild => summary.rebuild += 1,
            }
        }
        summary
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
    /// `Plan: 2 to add, 1 to change, 0 to destroy · 1 restart, 1 rebuild`, or the no-changes
    /// sentence.
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
            (self.restart, "restart"),
            (self.recreate, "recreate"),
            (self.rebuild, "rebuild"),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, name)| format!("{count} {name}"))
        .collect();
        if !effects.is_empty() {
            line.push_str(" · ");
            line.push_str(&effects.join(", "));
        }
        line
    }
}

/// Merges per-change effects into one entry per agent group: the strongest effect wins and
/// the reasons of the changes carrying it are kept (in plan order, without repeats).
fn agent_effects(changes: &[Change]) -> Vec<AgentEffect> {
    let mut by_agent: BTreeMap<&str, AgentEffect> = BTreeMap::new();
    for change in changes {
        let Some(agent) = change.agent.as_deref() else {
            continue;
        };
        if change.effect == Effect::None {
            continue;
        }
        let entry = by_agent.entry(agent).or_insert_with(|| AgentEffect {
            agent: agent.to_string(),
            effect: change.effect,
            reasons: Vec::new(),
        });
        if change.effect > entry.effect {
            entry.effect = change.effect;
            entry.reasons.clear();
        }
        if change.effect == entry.effect {
            for reason in &change.reasons {
                let reason = format!("{}: {reason}", change.address);
                if !entry.reasons.contains(&reason) {
                    entry.reasons.push(reason);
                }
            }
        }
    }
    by_agent.into_values().collect()
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
