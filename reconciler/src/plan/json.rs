//! The plan as versioned JSON (`plan --json`, saved plans, `apply_history.plan_json`).
//! The format is an API: documented in docs/plan-format.md, changed only with
//! [`FORMAT_VERSION`].

use serde_json::{Value, json};

use super::Plan;

/// Bumped on any incompatible change of the JSON shape. 2: `effects[].impact` replaced
/// `effects[].effect`, and `summary` counts new and removed agents on their own and restarts
/// only of running agents.
pub const FORMAT_VERSION: u32 = 2;

/// `{"format_version", "generation", "manifest_digest", "summary", "changes", "effects"}`.
pub fn to_json(plan: &Plan, manifest_digest: &str) -> Value {
    let summary = plan.summary();
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|change| {
            let fields: Vec<Value> = change
                .fields
                .iter()
                .map(|field| {
                    json!({
                        "path": field.path,
                        "old": field.old,
                        "new": field.new,
                        "effect": field.effect,
                        "drift": field.drift,
                    })
                })
                .collect();
            json!({
                "address": change.address,
                "action": change.action,
                "fields": fields,
                "effect": change.effect,
                "reasons": change.reasons,
            })
        })
        .collect();
    let effects: Vec<Value> = plan
        .effects
        .iter()
        .map(|effect| {
            json!({"agent": effect.agent, "impact": effect.impact, "reasons": effect.reasons})
        })
        .collect();
    json!({
        "format_version": FORMAT_VERSION,
        "generation": plan.generation,
        "manifest_digest": manifest_digest,
        "summary": summary,
        "changes": changes,
        "effects": effects,
    })
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
