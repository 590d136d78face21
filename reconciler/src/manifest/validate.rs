//! Validation: parsed documents → a resolved `State`, or every problem at once.
//!
//! Owns the manifest rules (names, references, enums, packages, mounts, duplicates) and the
//! defaults (host.md §1.2, §3.10). Pure: no IO, except mounts checked through an optional
//! `mount_policy::Policy` (`validate_with`). Every diagnostic carries the file, line and
//! column of the offending value, the resource address and the field.
//!
//! This file holds the entry point, the shared checks (names, enums, references, duplicates)
//! and the cross-document rules; `agent`, `channel` and `user` check one kind each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

mod agent;
mod channel;
mod text;
mod user;

use regex::Regex;

use super::Source;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::load::{BrokenDoc, ParsedDoc};
use super::model::{Doc, Sp};
use crate::mount_policy::Policy;
use crate::state::{
    Address, Channel, Destination, DestinationTarget, Kind, Resource, State, TextEnum,
};

pub use super::limits::{MAX_NAME_LEN, MAX_PACKAGES};
static NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9][a-z0-9-]*$"));
static LOCAL_NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9]+(-[a-z0-9]+)*$"));
static CHANNEL_TYPE: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z][a-z0-9-]*$"));

fn rx(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant regex compiles")
}

/// The result of validation: the state and where each resource was declared.
pub struct Validated {
    pub state: State,
    pub sources: BTreeMap<Address, Source>,
}

/// Checks every document and builds the state. Never stops at the first error.
pub fn validate(
    docs: &[ParsedDoc],
    broken: &[BrokenDoc],
    diagnostics: &mut Vec<Diagnostic>,
) -> Validated {
    validate_with(docs, broken, diagnostics, None)
}

/// [`validate`], also checking every mount against this machine's `mount_policy` (the one
/// step that reads the file system: resolved paths and the allowlist).
pub fn validate_with(
    docs: &[ParsedDoc],
    broken: &[BrokenDoc],
    diagnostics: &mut Vec<Diagnostic>,
    mount_policy: Option<&Policy>,
) -> Validated {
    let mut checker = Checker {
        diagnostics,
        mount_policy,
        state: State::default(),
        sources: BTreeMap::new(),
        agents: BTreeSet::new(),
        channels: BTreeSet::new(),
    };
    for doc in broken {
        match doc.kind.as_str() {
            "agent" => checker.agents.insert(doc.name.clone()),
            "channel" => checker.channels.insert(doc.name.clone()),
            _ => false,
        };
    }
    // Names first, so references can be checked in any order across files.
    for parsed in docs {
        match &parsed.doc {
            Doc::Agent(agent) => checker.agents.insert(agent.name.value.clone()),
            Doc::Channel(channel) => checker.channels.insert(channel.name.value.clone()),
            Doc::User(_) => false,
        };
    }
    for parsed in docs {
        let at = At { file: &parsed.file };
        match &parsed.doc {
            Doc::Agent(agent) => checker.agent(at, agent),
            Doc::Channel(channel) => checker.channel(at, channel),
            Doc::User(user) => checker.user(at, user),
        }
    }
    checker.implied_destinations();
    checker.unique_platform_ids();
    checker.look_alike_users();
    checker.unreachable_agents();
    Validated {
        state: checker.state,
        sources: checker.sources,
    }
}

#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a Path,
}

impl At<'_> {
    fn diag<T>(&self, sp: &Sp<T>, address: &str, field: &str, message: String) -> Diagnostic {
        Diagnostic::new(self.file, sp.line, sp.col, message)
            .address(address)
            .field(field)
    }

    fn source<T>(&self, sp: &Sp<T>) -> Source {
        Source {
            file: self.file.to_path_buf(),
            line: sp.line,
            col: sp.col,
        }
    }
}

struct Checker<'d> {
    diagnostics: &'d mut Vec<Diagnostic>,
    /// Checks mounts on this machine; `None` checks only their text.
    mount_policy: Option<&'d Policy>,
    state: State,
    sources: BTreeMap<Address, Source>,
    agents: BTreeSet<String>,
    channels: BTreeSet<String>,
}

impl Checker<'_> {
    pub(super) fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// Records a resource unless its address is taken; reports a duplicate with both places.
    fn add<T>(&mut self, at: At, sp: &Sp<T>, resource: Resource, what: &str) {
        let address = resource.address();
        // Until `implied_destinations` runs, `sources` holds exactly the declared resources.
        if let Some(first) = self.sources.get(&address) {
            let message = format!(
                "{what} is declared twice (first at {}:{}:{})",
                first.file.display(),
                first.line,
                first.col
            );
            self.push(
                Diagnostic::new(at.file, sp.line, sp.col, message)
                    .address(address.to_string())
                    .hint("remove one of the two declarations or rename one"),
            );
            return;
        }
        self.sources.insert(address, at.source(sp));
        self.state.insert(resource);
    }

    fn name_rule(&mut self, at: At, sp: &Sp<String>, address: &str, field: &str) {
        let name = &sp.value;
        let problem = if name.is_empty() {
            Some("must not be empty".to_string())
        } else if name.len() > MAX_NAME_LEN {
            Some(format!("is longer than {MAX_NAME_LEN} characters"))
        } else if name == "global" {
            Some("is reserved".to_string())
        } else if !NAME.is_match(name) {
            Some(
                "may only hold lowercase letters, digits and `-`, starting with a letter or digit"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            let suggestion = normalise(name);
            let diagnostic = at.diag(sp, address, field, format!("`{field}` `{name}` {problem}"));
            let diagnostic = if suggestion != *name && suggestion != "global" {
                diagnostic.hint(format!("try `{suggestion}`"))
            } else {
                diagnostic
            };
            self.push(diagnostic);
        }
    }

    /// Reports a control or invisible character in an id or a name shown to people.
    fn visible(&mut self, at: At, sp: &Sp<String>, address: &str, field: &str) {
        let Some(c) = text::invisible(&sp.value) else {
            return;
        };
        let message = format!(
            "`{field}` `{}` holds a control or invisible character (U+{:04X})",
            text::shown(&sp.value),
            c as u32
        );
        let hint = "remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal";
        self.push(at.diag(sp, address, field, message).hint(hint));
    }

    /// Parses an enum-valued string (`None` when unset), reporting the allowed values (the
    /// enum's declared texts) when it is not one of them.
    fn choice<T: TextEnum>(
        &mut self,
        at: At,
        sp: Option<&Sp<String>>,
        address: &str,
        field: &str,
    ) -> Option<T> {
        let sp = sp?;
        if let Some(value) = T::parse(&sp.value) {
            return Some(value);
        }
        let message = format!(
            "invalid `{field}` `{}`: expected one of {}",
            sp.value,
            T::listed()
        );
        let diagnostic = at
            .diag(sp, address, field, message)
            .hint_opt(did_you_mean(&sp.value, T::NAMES.iter().copied()));
        self.push(diagnostic);
        None
    }

    fn reference(&mut self, at: At, sp: &Sp<String>, address: &str, field: &str, kind: Kind) {
        let known = match kind {
            Kind::Agent => &self.agents,
            _ => &self.channels,
        };
        if known.contains(&sp.value) {
            return;
        }
        let hint = did_you_mean(&sp.value, known.iter().map(String::as_str)).unwrap_or_else(|| {
            format!(
                "declare it with `kind: {}` and `name: {}`",
                kind.as_str(),
                sp.value
            )
        });
        let message = format!("unknown {} `{}`", kind.as_str(), sp.value);
        self.push(at.diag(sp, address, field, message).hint(hint));
    }

    /// v2 gives every wired agent a destination for the channel (host.md §1.2): the channel's
    /// name, normalised like every local name, unless the agent already declares a destination
    /// with that local name. Two channels whose names normalise alike get `-2`, `-3`, … as in
    /// v2 (channels already in normal form choose first).
    fn implied_destinations(&mut self) {
        let mut implied: BTreeSet<Address> = BTreeSet::new();
        let mut wirings: Vec<(String, String, Source)> = self
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::Wiring(wiring) => Some((
                    wiring.agent.clone(),
                    wiring.channel.clone(),
                    self.sources.get(address).cloned()?,
                )),
                _ => None,
            })
            .collect();
        wirings.sort_by_key(|(agent, channel, _)| {
            (
                normalise(channel) != *channel,
                agent.clone(),
                channel.clone(),
            )
        });
        for (agent, channel, source) in wirings {
            let base = normalise(&channel);
            let mut local_name = base.clone();
            let mut suffix = 1;
            loop {
                let address = Address::new(Kind::Destination, format!("{agent}/{local_name}"));
                if !implied.contains(&address) {
                    break;
                }
                suffix += 1;
                local_name = format!("{base}-{suffix}");
            }
            let destination = Destination {
                agent,
                local_name,
                target: DestinationTarget::Channel(channel),
            };
            let resource = Resource::Destination(destination);
            let address = resource.address();
            if self.state.get(&address).is_none() {
                implied.insert(address.clone());
                self.sources.insert(address, source);
                self.state.insert(resource);
            }
        }
    }

    /// Two channels must not claim the same chat.
    fn unique_platform_ids(&mut self) {
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        let channels: Vec<(Address, Channel)> = self
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::Channel(channel) => Some((address.clone(), channel.clone())),
                _ => None,
            })
            .collect();
        for (address, channel) in channels {
            let key = (channel.channel_type.clone(), channel.platform_id.clone());
            if let Some(first) = seen.get(&key) {
                let first_source = self
                    .sources
                    .get(&Address::new(Kind::Channel, first.clone()))
                    .cloned();
                let Some(source) = self.sources.get(&address).cloned() else {
                    continue;
                };
                let place = first_source
                    .map(|s| format!(" (at {}:{}:{})", s.file.display(), s.line, s.col))
                    .unwrap_or_default();
                let message = format!(
                    "channels `{first}` and `{}` both use {} chat `{}`{place}",
                    channel.name, channel.channel_type, channel.platform_id
                );
                self.push(
                    Diagnostic::new(&source.file, source.line, source.col, message)
                        .address(address.to_string())
                        .field("platform_id")
                        .hint("one chat is one channel: wire several agents in one channel's `wirings`"),
                );
            } else {
                seen.insert(key, channel.name.clone());
            }
        }
    }
}

impl Checker<'_> {
    /// Warns about an agent that no channel is wired to and no other agent sends to: it can
    /// never receive a message (usually a forgotten wiring or a typo in one).
    fn unreachable_agents(&mut self) {
        let mut reachable: BTreeSet<&str> = BTreeSet::new();
        let mut agents: Vec<&str> = Vec::new();
        for resource in self.state.resources.values() {
            match resource {
                Resource::Wiring(wiring) => {
                    reachable.insert(&wiring.agent);
                }
                Resource::Destination(Destination {
                    agent,
                    target: DestinationTarget::Agent(target),
                    ..
                }) if agent != target => {
                    reachable.insert(target);
                }
                Resource::Agent(agent) => agents.push(&agent.name),
                _ => {}
            }
        }
        let mut warnings = Vec::new();
        for agent in agents
            .into_iter()
            .filter(|agent| !reachable.contains(agent))
        {
            let address = Address::new(Kind::Agent, agent.to_string());
            let Some(source) = self.sources.get(&address) else {
                continue;
            };
            let message = format!(
                "agent `{agent}` is wired to no channel and no other agent sends to it: it never receives a message"
            );
            let hint = format!(
                "wire it in a channel (`wirings: [{{agent: {agent}}}]`) or name it in another agent's `destinations`"
            );
            warnings.push(
                Diagnostic::new(&source.file, source.line, source.col, message)
                    .address(address.to_string())
                    .hint(hint)
                    .warning(),
            );
        }
        self.diagnostics.extend(warnings);
    }
}

/// v2's name normalisation (host.md §1.2): lowercase, runs of other characters → `-`, trimmed.
pub fn normalise(name: &str) -> String {
    let mut out = String::new();
    for char in name.to_lowercase().chars() {
        if char.is_ascii_lowercase() || char.is_ascii_digit() {
            out.push(char);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-').to_string();
    if trimmed.is_empty() {
        "unnamed".to_string()
    } else {
        trimmed
    }
}

#[cfg(test)]
mod tests;
