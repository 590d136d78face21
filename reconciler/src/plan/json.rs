//! The plan as versioned JSON (`plan --json`, saved plans, `apply_history.plan_json`).
//! The format is an API: documented in docs/plan-format.md, changed only with
//! [`FORMAT_VERSION`].

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::{AgentEffect, Change, FieldChange, Impact, Plan, Summary};
use crate::plan::Action;
use crate::state::Address;
use crate::state::effect::Effect;

/// Bumped on any incompatible change of the JSON shape. 2: `effects[].impact` replaced
/// `effects[].effect`, and `summary` counts new and removed agents on their own and restarts
/// only of running agents.
pub const FORMAT_VERSION: u32 = 2;

/// `{"format_version", "generation", "manifest_digest", "summary", "changes", "effects"}`.
pub fn to_json(plan: &Plan, manifest_digest: &str) -> Value {
    serde_json::to_value(view(plan, manifest_digest))
        .expect("a plan serialises: string keys and JSON values only")
}

/// [`to_json`] as compact text, serialised straight from the plan: no `Value` tree is built
/// (for a 50,000-agent plan the tree took several GB; the text is ~20× smaller).
pub fn to_string(plan: &Plan, manifest_digest: &str) -> String {
    serde_json::to_string(&view(plan, manifest_digest))
        .expect("a plan serialises: string keys and JSON values only")
}

/// [`to_string`], indented (`plan --json`).
pub fn to_string_pretty(plan: &Plan, manifest_digest: &str) -> String {
    serde_json::to_string_pretty(&view(plan, manifest_digest))
        .expect("a plan serialises: string keys and JSON values only")
}

fn view<'a>(plan: &'a Plan, manifest_digest: &'a str) -> PlanJson<'a> {
    PlanJson {
        format_version: FORMAT_VERSION,
        generation: plan.generation,
        manifest_digest,
        summary: plan.summary(),
        changes: Changes(&plan.changes),
        effects: Effects(&plan.effects),
    }
}

/// The JSON document, borrowed from the plan (field order is the format's key order).
#[derive(Serialize)]
struct PlanJson<'a> {
    format_version: u32,
    generation: i64,
    manifest_digest: &'a str,
    summary: Summary,
    changes: Changes<'a>,
    effects: Effects<'a>,
}

struct Changes<'a>(&'a [Change]);

impl Serialize for Changes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|change| ChangeJson {
            address: &change.address,
            action: change.action,
            fields: Fields(&change.fields),
            effect: change.effect,
            reasons: &change.reasons,
        }))
    }
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    address: &'a Address,
    action: Action,
    fields: Fields<'a>,
    effect: Effect,
    reasons: &'a [String],
}

struct Fields<'a>(&'a [FieldChange]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|field| FieldJson {
            path: &field.path,
            old: field.old.as_ref(),
            new: field.new.as_ref(),
            effect: field.effect,
            drift: field.drift,
        }))
    }
}

#[derive(Serialize)]
struct FieldJson<'a> {
    path: &'a str,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    effect: Effect,
    drift: bool,
}

struct Effects<'a>(&'a [AgentEffect]);

impl Serialize for Effects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|effect| EffectJson {
            agent: &effect.agent,
            impact: effect.impact,
            reasons: &effect.reasons,
        }))
    }
}

#[derive(Serialize)]
struct EffectJson<'a> {
    agent: &'a str,
    impact: Impact,
    reasons: &'a [String],
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;
    use crate::plan::{diff, fixture};

    #[test]
    fn json_lists_changes_fields_and_effects() {
        let state = fixture::state();
        let mut desired = state.clone();
        fixture::agent_mut(&mut desired, "andy").packages.npm = vec!["left-pad".into()];
        let plan = diff(&desired, &fixture::applied(&state));
        let text = serde_json::to_string_pretty(&to_json(&plan, "abc123")).unwrap();
        assert_eq!(to_string_pretty(&plan, "abc123"), text);
        assert_eq!(
            to_string(&plan, "abc123"),
            to_json(&plan, "abc123").to_string()
        );
        expect![[r#"
            {
              "format_version": 2,
              "generation": 1,
              "manifest_digest": "abc123",
              "summary": {
                "add": 0,
                "change": 1,
                "adopt": 0,
                "destroy": 0,
                "new_agents": 0,
                "removed_agents": 0,
                "restart": 0,
                "recreate": 0,
                "rebuild": 1
              },
              "changes": [
                {
                  "address": "agent.andy",
                  "action": "update",
                  "fields": [
                    {
                      "path": "packages.npm",
                      "old": [],
                      "new": [
                        "left-pad"
                      ],
                      "effect": "rebuild",
                      "drift": false
                    }
                  ],
                  "effect": "rebuild",
                  "reasons": [
                    "packages.npm"
                  ]
                }
              ],
              "effects": [
                {
                  "agent": "andy",
                  "impact": "rebuild",
                  "reasons": [
                    "agent.andy: packages.npm"
                  ]
                }
              ]
            }"#]]
        .assert_eq(&text);
    }
}
