//! The last guard of an import: the manifests it writes must validate on this machine. The
//! state is written out and loaded back exactly as `nanoclaw validate` would; each error names
//! a resource and a field, and the offending value is left out (or the resource, when the
//! field says nothing narrower) with a report note quoting the error. Repeated until clean.
//!
//! `map` already fits the values it knows nanoclaw refuses; this catches the rest (an MCP
//! server's environment key, a look-alike user id, …) so an import never writes manifests that
//! do not load.

use std::path::Path;

use super::report::{Report, Section};
use crate::manifest::{self, Diagnostic};
use crate::mount_policy::Policy;
use crate::state::{Address, EngageMode, Kind, Resource, State};

/// Most rounds: each one removes at least one value, so this only bounds a bug.
const MAX_ROUNDS: usize = 10_000;

/// Why the guard gave up: an error it cannot attribute to a value (a bug in the import).
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(
        "the imported manifests do not validate, and the import cannot tell which value is wrong:\n{0}"
    )]
    Stuck(String),
    #[error("writing the manifests to check them")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Export(#[from] crate::export::ExportError),
}

/// Validates `state` as manifests under `policy`, leaving out what is refused; returns the state
/// the written manifests load as.
pub fn until_valid(
    mut state: State,
    report: &mut Report,
    policy: &Policy,
) -> Result<State, RepairError> {
    for _ in 0..MAX_ROUNDS {
        let dir = tempfile::Builder::new()
            .prefix("nanoclaw-import-check-")
            .tempdir()?;
        crate::export::write(dir.path(), &state, true)?;
        let diagnostics = match manifest::load_for_host(dir.path(), policy) {
            Ok(loaded) => return Ok(loaded.state),
            Err(diagnostics) => diagnostics,
        };
        let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
        let mut repaired = false;
        for diagnostic in &errors {
            repaired |= repair(&mut state, diagnostic, report);
        }
        if !repaired {
            let text = manifest::render(&diagnostics);
            return Err(RepairError::Stuck(strip(&text, dir.path())));
        }
    }
    Err(RepairError::Stuck(format!(
        "still invalid after {MAX_ROUNDS} rounds"
    )))
}

fn strip(text: &str, dir: &Path) -> String {
    text.replace(&format!("{}/", dir.display()), "")
}

/// Leaves out what `diagnostic` refuses; false when it names nothing in `state`.
fn repair(state: &mut State, diagnostic: &Diagnostic, report: &mut Report) -> bool {
    let Some(address) = diagnostic
        .address
        .clone()
        .and_then(|text| Address::try_from(text).ok())
    else {
        return false;
    };
    let field = diagnostic.field.clone().unwrap_or_default();
    let why = match &diagnostic.hint {
        Some(hint) => format!("{} ({hint})", diagnostic.message),
        None => diagnostic.message.clone(),
    };
    let subject = format!("{} `{}`", address.kind.as_str(), address.key);
    let Some(resource) = state.resources.get_mut(&address) else {
        return false;
    };
    let narrowed = match resource {
        Resource::Agent(agent) => repair_agent(agent, &field, &diagnostic.message),
        Resource::Wiring(wiring) if field.contains("engage_pattern") => {
            wiring.engage_mode = EngageMode::Mention;
            wiring.engage_pattern = None;
            Some("engage_mode `mention` used instead".to_string())
        }
        Resource::Channel(channel) if field == "display_name" => {
            channel.display_name = None;
            Some("display_name left out".to_string())
        }
        Resource::User(user) if field == "display_name" => {
            user.display_name = None;
            Some("display_name left out".to_string())
        }
        _ => None,
    };
    match narrowed {
        Some(what) => report.note(Section::Dropped, subject, format!("{why}: {what}")),
        None => {
            state.resources.remove(&address);
            let cascade = if address.kind == Kind::Agent || address.kind == Kind::Channel {
                "; what refers to it is left out as well"
            } else {
                ""
            };
            report.note(
                Section::Dropped,
                subject,
                format!("{why}: left out{cascade}"),
            );
        }
    }
    true
}

/// Leaves out the agent field a diagnostic names; `None` when only the whole agent can go.
fn repair_agent(agent: &mut crate::state::Agent, field: &str, message: &str) -> Option<String> {
    let quoted = first_quoted(message);
    if let Some(name) = field.strip_prefix("mcp_servers.") {
        let name = name.split(['.', '[']).next().unwrap_or(name);
        agent.mcp_servers.remove(name)?;
        return Some(format!("MCP server `{name}` left out"));
    }
    if let Some(rest) = field.strip_prefix("mounts[") {
        let index: usize = rest.split(']').next()?.parse().ok()?;
        if index >= agent.mounts.len() {
            return None;
        }
        let mount = agent.mounts.remove(index);
        return Some(format!("mount `{}` left out", mount.host_path));
    }
    if field == "packages" {
        let mut kept = 0;
        agent.packages.apt.retain(|_| {
            kept += 1;
            kept <= crate::manifest::limits::MAX_PACKAGES
        });
        agent.packages.npm.retain(|_| {
            kept += 1;
            kept <= crate::manifest::limits::MAX_PACKAGES
        });
        return Some("packages past the limit left out".to_string());
    }
    if let Some(manager) = field.strip_prefix("packages.") {
        let list = match manager {
            "apt" => &mut agent.packages.apt,
            "npm" => &mut agent.packages.npm,
            _ => return None,
        };
        let name = quoted?;
        let index = list.iter().rposition(|package| *package == name)?;
        list.remove(index);
        return Some(format!("{manager} package `{name}` left out"));
    }
    if field == "skills" {
        if let crate::state::Skills::List(names) = &mut agent.skills {
            let name = quoted?;
            let before = names.len();
            names.retain(|skill| crate::manifest::diagnostic::shown(skill) != name);
            if names.len() < before {
                return Some(format!("skill `{name}` left out"));
            }
        }
        return None;
    }
    let cleared = match field {
        "assistant_name" => agent.assistant_name.take().is_some(),
        "provider" => agent.provider.take().is_some(),
        "model" => agent.model.take().is_some(),
        "effort" => agent.effort.take().is_some(),
        "image" => agent.image.take().is_some(),
        "max_messages_per_prompt" => agent.max_messages_per_prompt.take().is_some(),
        "instructions" => agent.instructions.take().is_some(),
        _ => false,
    };
    cleared.then(|| format!("`{field}` left out"))
}

/// The text between the first pair of backticks.
fn first_quoted(message: &str) -> Option<String> {
    let (_, rest) = message.split_once('`')?;
    let (quoted, _) = rest.split_once('`')?;
    Some(quoted.to_string())
}
