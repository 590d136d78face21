//! The pure diff: desired [`State`] vs. [`Current`] → [`Plan`]. No IO.
//!
//! Rules: a desired resource missing from the DB is created; one present but unmanaged (made at
//! runtime) is adopted; a managed one with differing fields is updated (fields compared as
//! JSON, nested objects field by field, so `packages.apt` is its own path). A current resource
//! not in the manifests is deleted only when managed, or with `prune`; deleting an agent,
//! channel or user also deletes the rows that point at it. Drift is computed per field by
//! [`super::drift`].

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::{Action, Change, Current, FieldChange, Plan, Running, agent_effects, drift};
use crate::state::effect::{self, Effect};
use crate::state::{Address, DestinationTarget, Kind, Resource, State};

/// Diff switches (`--prune`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Also delete unmanaged (runtime-created) resources that are not in the manifests.
    pub prune: bool,
}

/// The plan without pruning, with no container running.
pub fn diff(desired: &State, current: &Current) -> Plan {
    diff_with(desired, current, Options::default(), &Running::default())
}

/// The plan that makes `current` equal to `desired`; `running` (the agents with a running
/// container) decides which changes restart something now.
pub fn diff_with(desired: &State, current: &Current, options: Options, running: &Running) -> Plan {
    let mut changes = Vec::new();
    for (address, resource) in &desired.resources {
        if let Some(change) = change_for(address, resource, current) {
            changes.push(change);
        }
    }
    for address in deleted(desired, current, options) {
        if let Some(existing) = current.state.get(address) {
            changes.push(delete(address, existing));
        }
    }
    changes.sort_by(|a, b| a.address.cmp(&b.address));
    let unmanaged = current
        .state
        .resources
        .keys()
        .filter(|address| {
            !desired.resources.contains_key(*address) && !current.managed.contains(*address)
        })
        .filter(|address| !changes.iter().any(|change| &change.address == *address))
        .cloned()
        .collect();
    Plan {
        generation: current.generation,
        effects: agent_effects(&changes, running),
        changes,
        unmanaged,
    }
}

fn change_for(address: &Address, resource: &Resource, current: &Current) -> Option<Change> {
    let Some(existing) = current.state.get(address) else {
        let mut change = create(address, resource);
        if current.specs.contains_key(address) {
            change.reasons = vec!["drift: deleted outside manifests, created again".to_string()];
        }
        return Some(change);
    };
    let is_managed = current.managed.contains(address);
    let applied = current.specs.get(address).map(Resource::fields);
    let (fields, unchanged) = compare(address.kind, existing, resource, applied.as_ref());
    if is_managed && fields.is_empty() {
        return None;
    }
    let action = if is_managed {
        Action::Update
    } else {
        Action::Adopt
    };
    let (effect, reasons) = strongest(&fields);
    let reasons = if fields.is_empty() {
        vec!["adopted".to_string()]
    } else {
        reasons
    };
    Some(Change {
        address: address.clone(),
        action,
        fields,
        unchanged,
        effect,
        reasons,
        agent: resource.agent().map(str::to_string),
        desired: Some(resource.clone()),
    })
}

fn create(address: &Address, resource: &Resource) -> Change {
    let fields = resource
        .fields()
        .into_iter()
        .filter(|(_, value)| !is_blank(value))
        .map(|(name, value)| {
            let (effect, why) = effect::of(&format!("{}.{name}", address.kind.as_str()));
            FieldChange {
                path: name,
                old: None,
                new: Some(value),
                effect,
                why,
                drift: false,
                applied: None,
            }
        })
        .collect();
    let (effect, _) = effect::of(address.kind.as_str());
    Change {
        address: address.clone(),
        action: Action::Create,
        fields,
        unchanged: 0,
        effect,
        reasons: vec!["created".to_string()],
        agent: resource.agent().map(str::to_string),
        desired: Some(resource.clone()),
    }
}

fn delete(address: &Address, existing: &Resource) -> Change {
    let (effect, _) = effect::of(address.kind.as_str());
    Change {
        address: address.clone(),
        action: Action::Delete,
        fields: Vec::new(),
        unchanged: 0,
        effect,
        reasons: vec!["deleted".to_string()],
        agent: existing.agent().map(str::to_string),
        desired: None,
    }
}

/// Addresses to delete: managed ones not desired (all undesired ones with `prune`), plus every
/// current resource that points at a deleted agent, channel or user.
fn deleted<'a>(desired: &State, current: &'a Current, options: Options) -> BTreeSet<&'a Address> {
    let mut gone: BTreeSet<&Address> = current
        .state
        .resources
        .keys()
        .filter(|address| !desired.resources.contains_key(*address))
        .filter(|address| options.prune || current.managed.contains(*address))
        .collect();
    let parents: Vec<&Address> = gone
        .iter()
        .copied()
        .filter(|address| matches!(address.kind, Kind::Agent | Kind::Channel | Kind::User))
        .collect();
    for parent in parents {
        for (address, resource) in &current.state.resources {
            if !desired.resources.contains_key(address) && points_at(resource, parent) {
                gone.insert(address);
            }
        }
    }
    gone
}

/// Whether `resource` references the agent, channel or user at `parent`.
fn points_at(resource: &Resource, parent: &Address) -> bool {
    let key = parent.key.as_str();
    match (parent.kind, resource) {
        (Kind::Agent, Resource::Destination(destination)) => {
            destination.agent == key || destination.target == DestinationTarget::Agent(key.into())
        }
        (Kind::Agent, other) => other.agent() == Some(key),
        (Kind::Channel, Resource::Wiring(wiring)) => wiring.channel == key,
        (Kind::Channel, Resource::Destination(destination)) => {
            destination.target == DestinationTarget::Channel(key.into())
        }
        (Kind::User, Resource::Role(role)) => role.user == key,
        (Kind::User, Resource::Member(member)) => member.user == key,
        _ => false,
    }
}

/// Changed fields (nested objects compared key by key) and the count of unchanged top-level
/// fields. `applied` is the last-applied spec, for drift.
fn compare(
    kind: Kind,
    existing: &Resource,
    resource: &Resource,
    applied: Option<&Map<String, Value>>,
) -> (Vec<FieldChange>, usize) {
    let old = existing.fields();
    let new = resource.fields();
    let mut fields = Vec::new();
    let mut unchanged = 0;
    for name in keys(&old, &new) {
        let (old_value, new_value) = (old.get(&name), new.get(&name));
        if old_value == new_value {
            unchanged += 1;
            continue;
        }
        let applied_value = applied.map(|spec| spec.get(&name));
        compare_value(kind, name, old_value, new_value, applied_value, &mut fields);
    }
    (fields, unchanged)
}

fn compare_value(
    kind: Kind,
    path: String,
    old: Option<&Value>,
    new: Option<&Value>,
    applied: Option<Option<&Value>>,
    out: &mut Vec<FieldChange>,
) {
    if old == new {
        return;
    }
    if let (Some(Value::Object(old_map)), Some(Value::Object(new_map))) = (old, new) {
        let applied_map = applied.map(|value| match value {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        });
        for key in keys(old_map, new_map) {
            let nested_applied = applied_map.map(|map| map.and_then(|map| map.get(&key)));
            compare_value(
                kind,
                format!("{path}.{key}"),
                old_map.get(&key),
                new_map.get(&key),
                nested_applied,
                out,
            );
        }
        return;
    }
    let (effect, why) = effect::of(&format!("{}.{path}", kind.as_str()));
    let drift = drift::is_drift(old, applied);
    out.push(FieldChange {
        path,
        old: old.cloned(),
        new: new.cloned(),
        effect,
        why,
        drift,
        applied: if drift {
            applied.flatten().cloned()
        } else {
            None
        },
    });
}

/// The union of two maps' keys, in first-seen order (struct field order).
fn keys(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = old.keys().cloned().collect();
    for key in new.keys() {
        if !old.contains_key(key) {
            keys.push(key.clone());
        }
    }
    keys
}

/// The strongest effect among `fields` and the paths carrying it.
fn strongest(fields: &[FieldChange]) -> (Effect, Vec<String>) {
    let effect = fields
        .iter()
        .map(|field| field.effect)
        .max()
        .unwrap_or(Effect::None);
    let reasons = fields
        .iter()
        .filter(|field| field.effect == effect)
        .map(|field| field.path.clone())
        .collect();
    (effect, reasons)
}

/// Null, empty list or empty map: not worth a line when creating.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_blank),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{AgentEffect, Impact, fixture};
    use crate::state::{User, Wiring};

    fn actions(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(|change| format!("{} {}", change.action.as_str(), change.address))
            .collect()
    }

    fn runtime_user() -> Resource {
        Resource::User(User {
            id: "telegram:99".into(),
            display_name: Some("paired from chat".into()),
        })
    }

    #[test]
    fn an_applied_state_has_no_changes() {
        let state = fixture::state();
        let plan = diff(&state, &fixture::applied(&state));
        assert!(plan.is_empty(), "{:?}", actions(&plan));
    }

    #[test]
    fn everything_is_created_on_an_empty_db() {
        let plan = diff(&fixture::state(), &Current::default());
        assert_eq!(plan.changes.len(), 8);
        assert!(plan.changes.iter().all(|c| c.action == Action::Create));
        assert_eq!(
            plan.summary().line(),
            "Plan: 8 to add, 0 to change, 0 to destroy · 1 new agent"
        );
    }

    #[test]
    fn nested_fields_are_their_own_paths_with_their_own_effect() {
        let state = fixture::state();
        let mut desired = state.clone();
        fixture::agent_mut(&mut desired, "andy")
            .packages
            .apt
            .push("curl".into());
        fixture::agent_mut(&mut desired, "andy").model = Some("opus".into());
        let plan = diff(&desired, &fixture::applied(&state));
        let change = &plan.changes[0];
        let paths: Vec<(&str, Effect)> = change
            .fields
            .iter()
            .map(|field| (field.path.as_str(), field.effect))
            .collect();
        assert_eq!(
            paths,
            [
                ("model", Effect::Restart),
                ("packages.apt", Effect::Rebuild)
            ]
        );
        assert_eq!(change.effect, Effect::Rebuild);
        assert_eq!(change.reasons, ["packages.apt"]);
        assert_eq!(plan.effects[0].impact, Impact::Rebuild);
    }

    #[test]
    fn runtime_rows_are_kept_unless_pruned() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        current.state.insert(runtime_user());
        assert!(diff(&state, &current).is_empty());
        let pruned = diff_with(
            &state,
            &current,
            Options { prune: true },
            &Running::default(),
        );
        assert_eq!(actions(&pruned), ["delete user.telegram:99"]);
    }

    #[test]
    fn a_desired_runtime_row_is_adopted() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        let address = Address::new(Kind::User, "cli:me");
        current.managed.remove(&address);
        current.specs.remove(&address);
        let plan = diff(&state, &current);
        assert_eq!(actions(&plan), ["adopt user.cli:me"]);
        assert_eq!(plan.changes[0].reasons, ["adopted"]);
    }

    #[test]
    fn deleting_an_agent_deletes_what_points_at_it() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        let mut runtime_wiring = fixture::wiring("main", "andy");
        runtime_wiring.channel = "auto-dm".into();
        current
            .state
            .insert(Resource::Channel(fixture::channel("auto-dm", "dm")));
        current
            .state
            .insert(Resource::Wiring(Wiring { ..runtime_wiring }));
        let mut desired = state.clone();
        desired.resources.retain(|address, _| {
            address.kind == Kind::Channel
                || address.kind == Kind::User
                || address.kind == Kind::Role
        });
        let plan = diff(&desired, &current);
        assert_eq!(
            actions(&plan),
            [
                "delete agent.andy",
                "delete wiring.auto-dm/andy",
                "delete wiring.main/andy",
                "delete member.cli:me/andy",
                "delete destination.andy/home",
                "delete destination.andy/main",
            ]
        );
    }

    #[test]
    fn a_managed_row_deleted_outside_manifests_is_created_again_as_drift() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        current
            .state
            .resources
            .remove(&Address::new(Kind::User, "cli:me"));
        let plan = diff(&state, &current);
        assert_eq!(actions(&plan), ["create user.cli:me"]);
        assert_eq!(
            plan.changes[0].reasons,
            ["drift: deleted outside manifests, created again"]
        );
    }

    #[test]
    fn drift_is_flagged_when_the_db_differs_from_the_last_apply() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        fixture::agent_mut(&mut current.state, "andy").model = Some("edited-by-hand".into());
        let plan = diff(&state, &current);
        let field = &plan.changes[0].fields[0];
        assert_eq!(field.path, "model");
        assert!(field.drift);
        assert_eq!(field.new, Some(Value::Null));
    }

    fn running(agents: &[&str]) -> Running {
        Running(agents.iter().map(|agent| agent.to_string()).collect())
    }

    #[test]
    fn issue_8_a_created_agent_is_new_not_a_restart() {
        let plan = diff(&fixture::state(), &Current::default());
        assert_eq!(
            plan.effects,
            [AgentEffect {
                agent: "andy".into(),
                impact: Impact::New,
                reasons: vec!["agent.andy: created".into()],
            }]
        );
        let summary = plan.summary();
        assert_eq!((summary.new_agents, summary.restart), (1, 0));
    }

    #[test]
    fn issue_8_deleted_agents_are_removed_not_restarts() {
        let mut state = fixture::state();
        state.insert(Resource::Agent(fixture::agent("bob")));
        let current = fixture::applied(&state);
        let mut desired = state.clone();
        desired.resources.retain(|address, resource| {
            address.kind == Kind::Channel
                || address.kind == Kind::User
                || resource.agent().is_none()
        });
        let plan = diff_with(
            &desired,
            &current,
            Options::default(),
            &running(&["andy", "bob"]),
        );
        let impacts: Vec<(&str, Impact)> = plan
            .effects
            .iter()
            .map(|effect| (effect.agent.as_str(), effect.impact))
            .collect();
        assert_eq!(
            impacts,
            [("andy", Impact::Removed), ("bob", Impact::Removed)]
        );
        assert_eq!(
            plan.summary().line(),
            "Plan: 0 to add, 0 to change, 6 to destroy · 2 agents removed"
        );
    }

    #[test]
    fn issue_8_an_agent_without_a_running_container_is_not_counted_as_a_restart() {
        let state = fixture::state();
        let mut desired = state.clone();
        fixture::agent_mut(&mut desired, "andy").model = Some("opus".into());
        let current = fixture::applied(&state);
        let idle = diff_with(&desired, &current, Options::default(), &running(&[]));
        assert_eq!(idle.effects[0].impact, Impact::NextStart);
        assert_eq!(idle.effects[0].reasons, ["agent.andy: model"]);
        assert_eq!(
            idle.summary().line(),
            "Plan: 0 to add, 1 to change, 0 to destroy"
        );
        let busy = diff_with(&desired, &current, Options::default(), &running(&["andy"]));
        assert_eq!(busy.effects[0].impact, Impact::Restart);
        assert_eq!(
            busy.summary().line(),
            "Plan: 0 to add, 1 to change, 0 to destroy · 1 restart"
        );
    }

    #[test]
    fn a_rebuild_counts_whether_or_not_a_container_runs() {
        let state = fixture::state();
        let mut desired = state.clone();
        fixture::agent_mut(&mut desired, "andy").packages.npm = vec!["left-pad".into()];
        let plan = diff(&desired, &fixture::applied(&state));
        assert_eq!(plan.effects[0].impact, Impact::Rebuild);
        assert_eq!(plan.summary().rebuild, 1);
    }

    #[test]
    fn held_deletions_leave_the_additions_and_changes() {
        let state = fixture::state();
        let current = fixture::applied(&state);
        let mut desired = state.clone();
        desired
            .resources
            .retain(|address, _| address.kind != Kind::Destination);
        fixture::agent_mut(&mut desired, "andy").model = Some("opus".into());
        desired.insert(Resource::User(User {
            id: "cli:new".into(),
            display_name: None,
        }));
        let plan = diff(&desired, &current);
        let (applied, held) = plan.hold_deletions(&Running::default());
        assert_eq!(
            actions(&applied),
            ["update agent.andy", "create user.cli:new"]
        );
        let held: Vec<String> = held
            .iter()
            .map(|change| change.address.to_string())
            .collect();
        assert_eq!(held, ["destination.andy/home", "destination.andy/main"]);
        assert_eq!(applied.effects[0].impact, Impact::NextStart);
        assert_eq!(applied.effects[0].reasons, ["agent.andy: model"]);
    }
}
