//! The agent's composed instructions and skills (docs/agents.md#instructions), decided
//! without IO: what the host writes for Claude Code to read, all read-only to the agent.
//!
//! ```text
//! session folder (/workspace, read-only)      agent's folder (/workspace/agent, read-write)
//!   CLAUDE.md           the parts inlined ─┐    CLAUDE.local.md  the agent's memory, seeded
//!   .claude-shared.md   container/CLAUDE.md     from the manifest's `instructions`
//!   .claude-fragments/  module-*, skill-*, mcp-*
//!   claude-settings.json  hooks and env (Claude Code's `--settings`)
//! sessions/<agent>/skills/<name>/ (host-owned) ──read-only──▶ <Claude state>/skills/<name>/
//! ```
//!
//! Claude Code runs in `/workspace/agent` and reads `CLAUDE.md` files from its working folder
//! up, so the composed `/workspace/CLAUDE.md` is loaded with the agent's own
//! `CLAUDE.local.md`. The shared base, the runner's tool-module fragments and the bundled skills
//! are compiled into the binary from `container/` ([`SHARED_BASE`], [`MODULES`], [`SKILLS`]),
//! so an installed `nanoclaw` needs no source tree. Writing the files is `session::prepare`'s.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::state::{self, Agent, CliScope};

/// The composed fragments' folder in the session folder.
pub const FRAGMENTS_DIR: &str = ".claude-fragments";
/// The shared base's file in the session folder, imported first by `CLAUDE.md`.
pub const SHARED_FILE: &str = ".claude-shared.md";
/// Claude Code's settings (hooks, env) in the session folder, passed with `--settings`: the
/// Claude provider's file name, so both sides name one file.
pub use agent_runner::providers::claude::hooks::SETTINGS_FILE;
/// The first line of the composed `CLAUDE.md`.
const CLAUDE_MD_HEADER: &str = "<!-- Composed by nanoclaw at every container start; do not edit. Per-agent memory belongs in CLAUDE.local.md. -->\n";

/// The shared base every agent reads (`container/CLAUDE.md`).
pub const SHARED_BASE: &str = include_str!("../../../container/CLAUDE.md");

/// One runner tool module's instruction fragment (`container/modules/<name>.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: &'static str,
    pub text: &'static str,
    /// Left out when the agent's `cli_scope` is `disabled`.
    pub is_cli: bool,
}

/// The runner's tool modules with instructions. The tool modules themselves arrive with issue
/// 13; until then `messaging` covers the destinations and `cli` says what the operator does.
pub const MODULES: &[Module] = &[
    Module {
        name: "cli",
        text: include_str!("../../../container/modules/cli.md"),
        is_cli: true,
    },
    Module {
        name: "messaging",
        text: include_str!("../../../container/modules/messaging.md"),
        is_cli: false,
    },
];

/// One bundled skill (`container/skills/<name>/`): its files, and its optional `CLAUDE.md`
/// fragment (`instructions.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skill {
    pub name: &'static str,
    /// `(path inside the skill's folder, content)`; `SKILL.md` first.
    pub files: &'static [(&'static str, &'static str)],
    pub fragment: Option<&'static str>,
}

/// Every bundled skill, by name (a test checks this matches `container/skills/`).
pub const SKILLS: &[Skill] = &[Skill {
    name: "remember",
    files: &[(
        "SKILL.md",
        include_str!("../../../container/skills/remember/SKILL.md"),
    )],
    fragment: Some(include_str!(
        "../../../container/skills/remember/instructions.md"
    )),
}];

/// The contents of the agent's instruction files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instructions {
    /// `CLAUDE.md` in the session folder: the shared base, then each fragment in name order,
    /// inlined (each part after a `<!-- <file> -->` line naming its file beside it).
    pub claude_md: String,
    /// `.claude-fragments/<name>` → its content: `module-<name>.md`, `skill-<name>.md`,
    /// `mcp-<server>.md`.
    pub fragments: BTreeMap<String, String>,
    /// The seed of `CLAUDE.local.md` in the agent's folder (the manifest's `instructions`);
    /// written only under the re-seed rule (`session::prepare`).
    pub local_seed: String,
    /// The skills the agent selected that nanoclaw bundles, in name order.
    pub skills: Vec<&'static Skill>,
    /// `claude-settings.json`.
    pub settings: String,
}

/// Composes the agent's instruction files (pure).
pub fn compose(agent: &Agent) -> Instructions {
    let skills = selected_skills(&agent.skills);
    let mut fragments: BTreeMap<String, String> = BTreeMap::new();
    for module in MODULES {
        if module.is_cli && agent.cli_scope == CliScope::Disabled {
            continue;
        }
        fragments.insert(format!("module-{}.md", module.name), text(module.text));
    }
    // The runner's `nanoclaw` MCP server: one fragment per tool module, from the runner's own
    // definition, so the instructions name exactly the tools the server offers.
    for module in agent_runner::mcp::MODULES {
        fragments.insert(format!("tools-{}.md", module.name), text(module.fragment));
    }
    for skill in &skills {
        if let Some(fragment) = skill.fragment {
            fragments.insert(format!("skill-{}.md", skill.name), text(fragment));
        }
    }
    for (name, server) in &agent.mcp_servers {
        if let Some(instructions) = server.instructions.as_deref() {
            fragments.insert(format!("mcp-{name}.md"), text(instructions));
        }
    }
    // The parts are inlined, not imported: Claude Code runs in `/workspace/agent`, and a
    // headless Claude Code leaves `@` imports of files outside its working folder unresolved
    // (the model saw the `@./…` lines verbatim; tests/claude_agent.rs).
    let mut claude_md = String::from(CLAUDE_MD_HEADER);
    claude_md.push_str(&format!("\n<!-- {SHARED_FILE} -->\n"));
    claude_md.push_str(&text(SHARED_BASE));
    for (name, content) in &fragments {
        claude_md.push_str(&format!("\n<!-- {FRAGMENTS_DIR}/{name} -->\n"));
        claude_md.push_str(content);
    }
    let local_seed = agent.instructions.as_deref().map(text).unwrap_or_default();
    Instructions {
        claude_md,
        fragments,
        local_seed,
        skills,
        settings: format!("{:#}\n", settings()),
    }
}

/// The bundled skills an agent's `skills` selects: all of them, or the listed ones nanoclaw
/// has (a name it does not bundle is left out; `validate` may warn about it).
pub fn selected_skills(selection: &state::Skills) -> Vec<&'static Skill> {
    let mut skills: Vec<&'static Skill> = match selection {
        state::Skills::All => SKILLS.iter().collect(),
        state::Skills::List(names) => SKILLS
            .iter()
            .filter(|skill| names.iter().any(|name| name == skill.name))
            .collect(),
    };
    skills.sort_by_key(|skill| skill.name);
    skills
}

/// Claude Code's settings as the Claude provider defines them (docs/agent-runner.md#providers):
/// the runner's hooks (tool tracking in `container_state`, the blocklist, the transcript archive)
/// on the runner of the production image, and the environment that keeps Claude Code to its job.
fn settings() -> Value {
    use agent_runner::providers::claude::hooks;
    hooks::settings_json(hooks::RUNNER_IN_IMAGE)
}

/// A text as a file: trailing blanks trimmed, one final newline.
fn text(raw: &str) -> String {
    format!("{}\n", raw.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_skills_are_the_folders_of_container_skills() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../container/skills");
        let mut on_disk: Vec<(String, Vec<String>)> = std::fs::read_dir(&root)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let mut files: Vec<String> = std::fs::read_dir(entry.path())
                    .unwrap()
                    .map(|file| file.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                files.sort();
                (entry.file_name().to_string_lossy().into_owned(), files)
            })
            .collect();
        on_disk.sort();
        let mut bundled: Vec<(String, Vec<String>)> = SKILLS
            .iter()
            .map(|skill| {
                let mut files: Vec<String> = skill
                    .files
                    .iter()
                    .map(|(path, _)| path.to_string())
                    .collect();
                if skill.fragment.is_some() {
                    files.push("instructions.md".to_string());
                }
                files.sort();
                (skill.name.to_string(), files)
            })
            .collect();
        bundled.sort();
        assert_eq!(bundled, on_disk, "add the new files to `SKILLS`");
        for skill in SKILLS {
            let (first, text) = skill.files[0];
            assert_eq!(first, "SKILL.md");
            assert!(
                text.starts_with(&format!("---\nname: {}\n", skill.name)),
                "{}: a Claude Code skill starts with its name",
                skill.name
            );
        }
    }

    #[test]
    fn the_bundled_modules_are_the_files_of_container_modules() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../container/modules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let bundled: Vec<String> = MODULES
            .iter()
            .map(|module| format!("{}.md", module.name))
            .collect();
        assert_eq!(bundled, on_disk);
    }

    #[test]
    fn a_skill_selection_picks_bundled_skills_by_name() {
        let names = |selection: &state::Skills| -> Vec<&str> {
            selected_skills(selection)
                .iter()
                .map(|skill| skill.name)
                .collect()
        };
        assert_eq!(names(&state::Skills::All), ["remember"]);
        assert_eq!(
            names(&state::Skills::List(vec!["remember".into(), "nope".into()])),
            ["remember"]
        );
        assert!(names(&state::Skills::List(Vec::new())).is_empty());
    }

    /// The settings are the Claude provider's own definition (its tests pin the hooks and env),
    /// written for the runner's path in the image.
    #[test]
    fn the_settings_are_the_claude_providers_definition_for_the_image() {
        let written = format!("{:#}", settings());
        for event in [
            "pre-tool-use",
            "post-tool-use",
            "post-tool-use-failure",
            "pre-compact",
        ] {
            let command = format!(
                "\"{} hook {event}\"",
                agent_runner::providers::claude::hooks::RUNNER_IN_IMAGE
            );
            assert!(written.contains(&command), "{command} in {written}");
        }
    }
}
