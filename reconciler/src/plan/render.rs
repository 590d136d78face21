//! The plan as text: the summary line first, then the agents affected (new, removed, or what
//! their containers need), then one block per change (`+` create, `~` update/adopt, `-`
//! delete) with per-field old → new, the effect and why, drift marked `!`, multi-line text as a
//! unified diff, and unchanged fields collapsed.
//!
//! Returns a `String` (printing is `cli/`'s job). Colour is optional decoration: the text reads
//! the same without it.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::{Action, Change, FieldChange, Impact, Plan};
use crate::state::effect::Effect;
use crate::style;

/// Renders `plan`; `color` adds ANSI colours to markers.
pub fn render(plan: &Plan, color: bool) -> String {
    let paint = Paint { color };
    let mut out = String::new();
    let summary = plan.summary();
    if plan.is_empty() {
        out.push_str(&summary.line());
        out.push('\n');
        render_unmanaged(&mut out, plan);
        return out;
    }
    let _ = writeln!(out, "{}", paint.bold(&summary.line()));
    if !plan.effects.is_empty() {
        out.push_str("\nAgents affected:\n");
        let width = plan
            .effects
            .iter()
            .map(|effect| effect.agent.len())
            .max()
            .unwrap_or(0);
        for effect in &plan.effects {
            let _ = writeln!(
                out,
                "  {:width$}  {:10}  {}",
                effect.agent,
                effect.impact.word(),
                effect.reasons.join(", "),
            );
        }
    }
    // One lookup table instead of a scan of the effects per change: a fleet's plan has
    // thousands of changes over as many agents.
    let impacts: HashMap<&str, Impact> = plan
        .effects
        .iter()
        .map(|effect| (effect.agent.as_str(), effect.impact))
        .collect();
    for change in &plan.changes {
        out.push('\n');
        let agent_impact = change
            .agent
            .as_deref()
            .and_then(|agent| impacts.get(agent).copied());
        render_change(&mut out, change, agent_impact, paint);
    }
    render_unmanaged(&mut out, plan);
    out
}

/// The runtime-made resources the plan keeps, so they can be adopted or pruned.
fn render_unmanaged(out: &mut String, plan: &Plan) {
    if plan.unmanaged.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nMade at runtime and not in the manifests (kept; `nanoclaw adopt ADDRESS…` manages them, `--prune` deletes them):"
    );
    for address in &plan.unmanaged {
        let _ = writeln!(out, "  {address}");
    }
}

/// `forces rebuild`, `restarts`, … as a plan comment.
pub fn effect_phrase(effect: Effect) -> &'static str {
    match effect {
        Effect::None => "takes effect on the next message",
        Effect::Restart => "restarts",
        Effect::Recreate => "forces recreate",
        Effect::Rebuild => "forces rebuild",
    }
}

/// The comment of a change or field: its effect, in the words of what happens to its agent.
/// The rows of a created or deleted agent restart nothing (no container of it runs on them),
/// and a restart or recreate of an agent with no running container waits for its next start.
fn phrase(effect: Effect, agent_impact: Option<Impact>) -> &'static str {
    match (agent_impact, effect) {
        (Some(Impact::New), _) => "new agent",
        (Some(Impact::Removed), _) => "removed agent",
        (Some(Impact::NextStart), Effect::Restart | Effect::Recreate) => "at its next start",
        _ => effect_phrase(effect),
    }
}

/// A change's own comment: a wiring, destination or membership created or deleted with its
/// agent says so (`with its new agent`), the agent itself is the `new agent`.
fn change_phrase(change: &Change, agent_impact: Option<Impact>) -> &'static str {
    let is_agent = change.address.kind == crate::state::Kind::Agent;
    match agent_impact {
        Some(Impact::New) if !is_agent => "with its new agent",
        Some(Impact::Removed) if !is_agent => "with its removed agent",
        _ => phrase(change.effect, agent_impact),
    }
}

fn render_change(out: &mut String, change: &Change, agent_impact: Option<Impact>, paint: Paint) {
    let marker = paint.action(change.action, change.action.symbol());
    let adopt = if change.action == Action::Adopt {
        " (adopt: created at runtime, now managed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "{marker} {}{adopt}  # {}: {}",
        change.address,
        change_phrase(change, agent_impact),
        change.reasons.join(", ")
    );
    for field in &change.fields {
        render_field(out, field, change.action, agent_impact, paint);
    }
    if change.unchanged > 0 && change.action != Action::Create {
        let plural = if change.unchanged == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "    # ({} unchanged field{plural} hidden)",
            change.unchanged
        );
    }
}

fn render_field(
    out: &mut String,
    field: &FieldChange,
    action: Action,
    agent_impact: Option<Impact>,
    paint: Paint,
) {
    if field.drift {
        let applied = field.applied.as_ref().map_or("null".to_string(), value);
        let _ = writeln!(
            out,
            "    {} {}: the DB has {}, the last apply wrote {applied}; apply reverts it",
            paint.drift("! drift:"),
            field.path,
            field.old.as_ref().map_or("null".to_string(), value),
        );
    }
    let comment = if action == Action::Create {
        String::new()
    } else {
        format!("  # {}: {}", phrase(field.effect, agent_impact), field.why)
    };
    if let Some(diff) = text_diff(field.old.as_ref(), field.new.as_ref()) {
        let _ = writeln!(out, "    {}:{comment}", field.path);
        for line in diff.lines() {
            let painted = match line.chars().next() {
                Some('+') if !line.starts_with("+++") => paint.action(Action::Create, line),
                Some('-') if !line.starts_with("---") => paint.action(Action::Delete, line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "      {painted}");
        }
        return;
    }
    let new = field.new.as_ref().map_or("null".to_string(), value);
    match (&field.old, action) {
        (None, Action::Create) => {
            let _ = writeln!(out, "    {}: {new}", field.path);
        }
        (old, _) => {
            let old = old.as_ref().map_or("null".to_string(), value);
            let _ = writeln!(out, "    {}: {old} → {new}{comment}", field.path);
        }
    }
}

/// A unified diff when either side is multi-line text.
fn text_diff(old: Option<&Value>, new: Option<&Value>) -> Option<String> {
    let text = |value: Option<&Value>| match value {
        Some(Value::String(text)) => Some(text.clone()),
        _ => None,
    };
    let (old_text, new_text) = (text(old), text(new));
    let is_multiline = |text: &Option<String>| text.as_ref().is_some_and(|t| t.contains('\n'));
    if !is_multiline(&old_text) && !is_multiline(&new_text) {
        return None;
    }
    let old_text = old_text.unwrap_or_default();
    let new_text = new_text.unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&old_text, &new_text);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header("old", "new")
            .to_string(),
    )
}

/// A JSON value on one line (strings quoted).
fn value(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[derive(Clone, Copy)]
struct Paint {
    color: bool,
}

impl Paint {
    fn bold(self, text: &str) -> String {
        style::paint(style::STRONG, text, self.color)
    }

    fn drift(self, text: &str) -> String {
        style::paint(style::DRIFT, text, self.color)
    }

    fn action(self, action: Action, text: &str) -> String {
        let palette = match action {
            Action::Create => style::ADDED,
            Action::Update | Action::Adopt => style::CHANGED,
            Action::Delete => style::REMOVED,
        };
        style::paint(palette, text, self.color)
    }
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;
    use crate::plan::{Current, Options, Running, diff, diff_with, fixture};
    use crate::state::{Address, Kind, Resource, State, User};

    #[track_caller]
    fn check(desired: &State, current: &Current, expect: Expect) {
        let text = render(&diff(desired, current), false);
        expect.assert_eq(&text);
    }

    #[test]
    fn no_changes_is_one_sentence() {
        let state = fixture::state();
        check(
            &state,
            &fixture::applied(&state),
            expect![[r#"
                No changes. The database matches the manifests.
            "#]],
        );
    }

    #[test]
    fn creates_list_their_set_fields() {
        let mut state = State::default();
        state.insert(Resource::Agent(fixture::agent("andy")));
        state.insert(Resource::Wiring(fixture::wiring("main", "andy")));
        check(
            &state,
            &Current::default(),
            expect![[r#"
                Plan: 2 to add, 0 to change, 0 to destroy · 1 new agent

                Agents affected:
                  andy  new         agent.andy: created

                + agent.andy  # new agent: created
                    name: "andy"
                    provider: "mock"
                    cli_scope: "group"
                    instructions:
                      --- old
                      +++ new
                      @@ -0,0 +1,2 @@
                      +Be brief.
                      +Answer in English.
                    skills: "all"
                    packages: {"apt":["git"],"npm":[]}
                    network: "full"

                + wiring.main/andy  # with its new agent: created
                    channel: "main"
                    agent: "andy"
                    engage_mode: "pattern"
                    engage_pattern: "."
                    sender_scope: "all"
                    ignored_message_policy: "drop"
                    session_mode: "shared"
                    priority: 0
            "#]],
        );
    }

    #[test]
    fn updates_show_old_new_effects_diffs_and_drift() {
        let state = fixture::state();
        let mut current = fixture::applied(&state);
        fixture::agent_mut(&mut current.state, "andy").model = Some("edited".into());
        current.state.insert(Resource::User(User {
            id: "telegram:99".into(),
            display_name: None,
        }));
        let mut desired = state.clone();
        let andy = fixture::agent_mut(&mut desired, "andy");
        andy.packages.apt.push("curl".into());
        andy.instructions = Some("Be brief.\nAnswer in French.\n".into());
        desired
            .resources
            .retain(|address, _| address.kind != Kind::Destination);
        check(
            &desired,
            &current,
            expect![[r#"
                Plan: 0 to add, 1 to change, 2 to destroy · 1 rebuild

                Agents affected:
                  andy  rebuild     agent.andy: packages.apt

                ~ agent.andy  # forces rebuild: packages.apt
                    ! drift: model: the DB has "edited", the last apply wrote null; apply reverts it
                    model: "edited" → null  # restarts: written to container.json at spawn
                    instructions:  # restarts: seeds CLAUDE.local.md at spawn, unless the agent has edited the file since the last seed
                      --- old
                      +++ new
                      @@ -1,2 +1,2 @@
                       Be brief.
                      -Answer in English.
                      +Answer in French.
                    packages.apt: ["git"] → ["git","curl"]  # forces rebuild: apt packages are installed into the agent's own image
                    # (12 unchanged fields hidden)

                - destination.andy/home  # restarts: deleted

                - destination.andy/main  # restarts: deleted

                Made at runtime and not in the manifests (kept; `nanoclaw adopt ADDRESS…` manages them, `--prune` deletes them):
                  user.telegram:99
            "#]],
        );
    }

    #[test]
    fn issue_8_new_removed_and_idle_agents_get_their_own_words() {
        let mut state = State::default();
        for name in ["busy", "idle", "old"] {
            state.insert(Resource::Agent(fixture::agent(name)));
        }
        let current = fixture::applied(&state);
        let mut desired = state.clone();
        desired.resources.remove(&Address::new(Kind::Agent, "old"));
        desired.insert(Resource::Agent(fixture::agent("fresh")));
        for name in ["busy", "idle"] {
            fixture::agent_mut(&mut desired, name).model = Some("opus".into());
        }
        let running = Running(["busy".to_string(), "old".to_string()].into());
        let plan = diff_with(&desired, &current, Options::default(), &running);
        expect![[r#"
            Plan: 1 to add, 2 to change, 1 to destroy · 1 new agent, 1 agent removed, 1 restart

            Agents affected:
              busy   restart     agent.busy: model
              fresh  new         agent.fresh: created
              idle   next start  agent.idle: model
              old    removed     agent.old: deleted

            ~ agent.busy  # restarts: model
                model: null → "opus"  # restarts: written to container.json at spawn
                # (14 unchanged fields hidden)

            + agent.fresh  # new agent: created
                name: "fresh"
                provider: "mock"
                cli_scope: "group"
                instructions:
                  --- old
                  +++ new
                  @@ -0,0 +1,2 @@
                  +Be brief.
                  +Answer in English.
                skills: "all"
                packages: {"apt":["git"],"npm":[]}
                network: "full"

            ~ agent.idle  # at its next start: model
                model: null → "opus"  # at its next start: written to container.json at spawn
                # (14 unchanged fields hidden)

            - agent.old  # removed agent: deleted
        "#]]
        .assert_eq(&render(&plan, false));
    }

    #[test]
    fn colour_only_decorates() {
        let state = fixture::state();
        let plan = diff(&state, &Current::default());
        let plain = render(&plan, false);
        let coloured = render(&plan, true);
        assert_ne!(plain, coloured);
        let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
            .unwrap()
            .replace_all(&coloured, "");
        assert_eq!(stripped, plain);
    }
}
