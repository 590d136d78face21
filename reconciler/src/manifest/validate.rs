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
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

mod agent;
mod channel;
mod user;

use regex::Regex;

use super::Source;
use super::diagnostic::{Diagnostic, did_you_mean};
use super::load::{BrokenDoc, ParsedDoc};
use super::model::{Doc, Sp};
use crate::mount_policy::Policy;
use crate::state::{Address, Channel, Destination, DestinationTarget, Kind, Resource, State};

/// Most packages (apt + npm) one agent may list.
pub const MAX_PACKAGES: usize = 20;
/// Longest agent or channel name.
pub const MAX_NAME_LEN: usize = 64;
pub const EFFORTS: &[&str] = &["low", "medium", "high", "xhigh", "max"];

static NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9][a-z0-9-]*$"));
static LOCAL_NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9]+(-[a-z0-9]+)*$"));
static CHANNEL_TYPE: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z][a-z0-9-]*$"));
static APT: LazyLock<Regex> = LazyLock::new(|| rx(r"^[a-z0-9][a-z0-9._+-]*$"));
static NPM: LazyLock<Regex> =
    LazyLock::new(|| rx(r"^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$"));

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
        declared: BTreeMap::new(),
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
    /// Where each address was first declared, for duplicate errors.
    declared: BTreeMap<Address, (PathBuf, u32, u32)>,
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
        if let Some((file, line, col)) = self.declared.get(&address) {
            let message = format!(
                "{what} is declared twice (first at {}:{line}:{col})",
                file.display()
            );
            self.push(
                Diagnostic::new(at.file, sp.line, sp.col, message)
                    .address(address.to_string())
                    .hint("remove one of the two declarations or rename one"),
            );
            return;
        }
        self.declared
            .insert(address.clone(), (at.file.to_path_buf(), sp.line, sp.col));
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

    /// Parses an enum-valued string, reporting the allowed values when it is not one.
    fn choice<T: Copy>(
        &mut self,
        at: At,
        sp: Option<&Sp<String>>,
        address: &str,
        field: &str,
        allowed: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(sp) = sp else { return default };
        if let Some((_, value)) = allowed.iter().find(|(text, _)| *text == sp.value) {
            return *value;
        }
        let names: Vec<&str> = allowed.iter().map(|(text, _)| *text).collect();
        let listed = names
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let diagnostic = at
            .diag(
                sp,
                address,
                field,
                format!("invalid `{field}` `{}`: expected one of {listed}", sp.value),
            )
            .hint_opt(did_you_mean(&sp.value, names.iter().copied()));
        self.push(diagnostic);
        default
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
mod tests {
    use expect_test::{Expect, expect};

    use crate::manifest::{load_str, render};
    use crate::state::{Address, DestinationTarget, Resource};

    /// Loads `yaml` as `m.yaml` and snapshots the diagnostics (or `ok: <n> resources`).
    #[track_caller]
    fn check(yaml: &str, expected: Expect) {
        let actual = match load_str("m.yaml", yaml) {
            Ok(manifests) => format!("ok: {} resources\n", manifests.state.len()),
            Err(diagnostics) => render(&diagnostics),
        };
        expected.assert_eq(&actual);
    }

    const AGENT: &str = "kind: agent\nname: andy\n---\n";

    #[test]
    fn defaults_fill_a_minimal_setup() {
        let yaml = format!(
            "{AGENT}kind: channel\nname: fam\nchannel_type: telegram\nplatform_id: 'telegram:1'\nwirings: [{{agent: andy}}]\n"
        );
        let manifests = load_str("m.yaml", &yaml).unwrap();
        let wiring = manifests
            .state
            .get(&Address::try_from("wiring.fam/andy".to_string()).unwrap())
            .unwrap();
        let Resource::Wiring(wiring) = wiring else {
            panic!("not a wiring")
        };
        assert_eq!(wiring.engage_mode, crate::state::EngageMode::Mention);
        assert_eq!(wiring.priority, 0);
        let implied = manifests
            .state
            .get(&Address::try_from("destination.andy/fam".to_string()).unwrap());
        assert!(
            matches!(implied, Some(Resource::Destination(d)) if d.target == DestinationTarget::Channel("fam".into()))
        );
        let source = &manifests.sources[&Address::try_from("channel.fam".to_string()).unwrap()];
        assert_eq!((source.line, source.col), (5, 7));
    }

    #[test]
    fn resources_take_numbers_or_text_in_canonical_form() {
        let yaml = "kind: agent\nname: andy\nresources:\n  memory: 1.5GiB\n  cpus: '0.5'\n  pids: 64\n---\nkind: agent\nname: bob\nresources: {memory: 536870912, cpus: 2}\n---\nkind: agent\nname: cleo\n";
        let manifests = load_str("m.yaml", yaml).unwrap();
        let resources = |name: &str| {
            let address = Address::try_from(format!("agent.{name}")).unwrap();
            let Some(Resource::Agent(agent)) = manifests.state.get(&address) else {
                panic!("no agent {name}")
            };
            serde_json::to_string(&agent.resources).unwrap()
        };
        assert_eq!(
            resources("andy"),
            r#"{"memory":"1536MiB","cpus":0.5,"pids":64}"#
        );
        assert_eq!(
            resources("bob"),
            r#"{"memory":"512MiB","cpus":2.0,"pids":null}"#
        );
        assert_eq!(
            resources("cleo"),
            r#"{"memory":null,"cpus":null,"pids":null}"#
        );
    }

    #[test]
    fn resource_nonsense_is_refused_where_it_is_written() {
        check(
            "kind: agent\nname: andy\nresources:\n  memory: 512\n  cpus: -1\n  pids: 4\n---\nkind: agent\nname: bob\nresources: {memory: lots, cpus: 0}\n---\nkind: agent\nname: cleo\nresources: {swap: 1g}\n",
            expect![[r#"
                error: m.yaml:4:11: agent.andy: `resources.memory` `512` is below the minimum of 32MiB

                hint: a number without a unit is bytes: write `512m` for 512 MiB (at least `32MiB`)

                error: m.yaml:5:9: agent.andy: `resources.cpus` `-1` is not a number of CPUs

                hint: write a positive number of CPUs, `0.5` for half a core, at least `0.01`; the default is `1`

                error: m.yaml:6:9: agent.andy: `resources.pids` must be 16 to 4194304, not 4

                hint: it counts the container's processes and threads; the default is 512

                error: m.yaml:10:21: agent.bob: `resources.memory` `lots` is not a size

                hint: write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)

                error: m.yaml:10:33: agent.bob: `resources.cpus` `0` is below the minimum of 0.01 CPUs

                hint: write a positive number of CPUs, `0.5` for half a core, at least `0.01`; the default is `1`

                error: m.yaml:14:13: agent.cleo: unknown key `swap`

                hint: allowed keys here: `memory`, `cpus`, `pids`
            "#]],
        );
    }

    #[test]
    fn pattern_wiring_needs_a_regex() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{{agent: andy, engage_mode: pattern}}]\n"
            ),
            expect![[r#"
                error: m.yaml:8:38: wiring.fam/andy: `engage_pattern` is required for `engage_mode: pattern`

                hint: use `engage_pattern: "."` to engage on every message
            "#]],
        );
    }

    #[test]
    fn pattern_must_compile_and_is_only_for_pattern_mode() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings:\n  - {{agent: andy, engage_mode: pattern, engage_pattern: '(a'}}\n---\nkind: channel\nname: two\nchannel_type: cli\nplatform_id: y\nwirings:\n  - {{agent: andy, engage_pattern: 'x'}}\n"
            ),
            expect![[r#"
                error: m.yaml:9:57: wiring.fam/andy: `engage_pattern` `(a` is not a valid regex: unclosed group

                hint: the syntax is Rust's `regex` crate (no look-around or backreferences)

                error: m.yaml:16:35: wiring.two/andy: `engage_pattern` is only allowed with `engage_mode: pattern` (this wiring uses `mention`)

                hint: add `engage_mode: pattern` or remove `engage_pattern`
            "#]],
        );
    }

    #[test]
    fn dangling_references_name_the_closest_agent() {
        check(
            &format!(
                "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{{agent: andi}}]\n---\nkind: user\nid: 'cli:me'\nroles: [{{role: admin, agent: bob}}]\nmember_of: [andyy]\n"
            ),
            expect![[r#"
                error: m.yaml:8:19: wiring.fam/andi: unknown agent `andi`

                hint: did you mean `andy`?

                error: m.yaml:12:9: user.cli:me: unknown agent `bob`

                hint: declare it with `kind: agent` and `name: bob`

                error: m.yaml:13:13: user.cli:me: unknown agent `andyy`

                hint: did you mean `andy`?
            "#]],
        );
    }

    #[test]
    fn duplicates_name_the_first_place() {
        check(
            &format!("{AGENT}kind: agent\nname: andy\n"),
            expect![[r#"
                error: m.yaml:5:7: agent.andy: agent `andy` is declared twice (first at m.yaml:2:7)

                hint: remove one of the two declarations or rename one
            "#]],
        );
    }

    #[test]
    fn enums_list_allowed_values() {
        check(
            "kind: agent\nname: andy\ncli_scope: everything\neffort: huge\n",
            expect![[r#"
                error: m.yaml:3:12: agent.andy: invalid `cli_scope` `everything`: expected one of `disabled`, `group`, `global`

                error: m.yaml:4:9: agent.andy: invalid `effort` `huge`: expected one of `low`, `medium`, `high`, `xhigh`, `max`

                hint: did you mean `high`?
            "#]],
        );
    }

    #[test]
    fn network_is_full_or_none() {
        check(
            "kind: agent\nname: andy\nnetwork: offline\n",
            expect![[r#"
                error: m.yaml:3:10: agent.andy: invalid `network` `offline`: expected one of `full`, `none`
            "#]],
        );
        let yaml = "kind: agent\nname: andy\nnetwork: none\n---\nkind: agent\nname: bob\n";
        let manifests = load_str("m.yaml", yaml).unwrap();
        let network = |name: &str| {
            let address = Address::try_from(format!("agent.{name}")).unwrap();
            let Some(Resource::Agent(agent)) = manifests.state.get(&address) else {
                panic!("no agent {name}")
            };
            agent.network
        };
        assert_eq!(network("andy"), crate::state::Network::None);
        assert_eq!(network("bob"), crate::state::Network::Full);
    }

    #[test]
    fn names_packages_and_mounts_follow_the_rules() {
        check(
            "kind: agent\nname: Andy_1\npackages: {apt: ['Bad Name'], npm: ['@scope/ok', 'UPPER']}\nmounts:\n  - {host_path: ~/.ssh}\n  - {host_path: relative/dir}\n  - {host_path: /srv/data, container_path: ../up}\n",
            expect![[r#"
                error: m.yaml:2:7: agent.Andy_1: `name` `Andy_1` may only hold lowercase letters, digits and `-`, starting with a letter or digit

                hint: try `andy-1`

                error: m.yaml:3:18: agent.Andy_1: invalid apt package name `Bad Name`

                hint: apt names match `^[a-z0-9][a-z0-9._+-]*$`

                error: m.yaml:3:50: agent.Andy_1: invalid npm package name `UPPER`

                hint: npm names match `^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`

                error: m.yaml:5:17: agent.Andy_1: `host_path` `~/.ssh` is blocked: `.ssh` is a credential name

                hint: credential folders and files are never mounted; mount a folder that holds none (names are checked 3 levels deep)

                error: m.yaml:6:17: agent.Andy_1: `host_path` `relative/dir` must be absolute or start with `~/`

                hint: write an absolute path such as `/srv/site` or `~/projects/site`

                error: m.yaml:7:44: agent.Andy_1: `container_path` `../up` must not contain `..`

                hint: for example `container_path: data` mounts it at `/workspace/extra/data`
            "#]],
        );
    }

    /// `address → target` of every destination the manifests declare or imply.
    fn destinations_of(yaml: &str) -> Vec<String> {
        let manifests = load_str("m.yaml", yaml).unwrap();
        manifests
            .state
            .resources
            .iter()
            .filter_map(|(address, resource)| match resource {
                Resource::Destination(d) => Some(format!("{address} → {:?}", d.target)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_wiring_gives_its_agent_a_destination_under_the_normalised_channel_name() {
        let yaml = format!(
            "{AGENT}kind: channel\nname: team--x-\nchannel_type: cli\nplatform_id: a\nwirings: [{{agent: andy}}]\n"
        );
        let destinations = destinations_of(&yaml);
        assert_eq!(
            destinations,
            vec![r#"destination.andy/team-x → Channel("team--x-")"#]
        );
    }

    #[test]
    fn two_channels_whose_names_normalise_alike_both_get_a_destination() {
        let yaml = format!(
            "{AGENT}kind: channel\nname: a-b\nchannel_type: cli\nplatform_id: a\nwirings: [{{agent: andy}}]\n---\nkind: channel\nname: a--b\nchannel_type: cli\nplatform_id: b\nwirings: [{{agent: andy}}]\n"
        );
        let destinations = destinations_of(&yaml);
        assert_eq!(
            destinations,
            vec![
                r#"destination.andy/a-b → Channel("a-b")"#,
                r#"destination.andy/a-b-2 → Channel("a--b")"#
            ]
        );
    }

    #[test]
    fn a_package_listed_twice_is_reported() {
        check(
            "kind: agent\nname: andy\npackages: {apt: [git, curl, git]}\n",
            expect![[r#"
                error: m.yaml:3:29: agent.andy: apt package `git` is listed twice

                hint: remove one of the two entries
            "#]],
        );
    }

    #[test]
    fn a_host_path_without_a_usable_folder_name_is_refused_or_asks_for_container_path() {
        check(
            "kind: agent\nname: andy\nmounts:\n  - {host_path: /}\n  - {host_path: ~/work/..}\n  - {host_path: /srv/Документы}\n",
            expect![[r#"
                error: m.yaml:4:17: agent.andy: `host_path` `/` is the root folder `/`

                hint: system folders (`/`, `/proc`, `/sys`, `/dev`, `/etc`, `/boot`, `/root`) are never mounted

                error: m.yaml:5:17: agent.andy: `host_path` `~/work/..` contains a `..` segment

                hint: write the path without `..`: after a symlink, `..` climbs from the link's target, not from where it is written

                error: m.yaml:6:17: agent.andy: `host_path` `/srv/Документы` gives the mount name `Документы`, which may only hold letters, digits, `.`, `_`, `-` and `/`

                hint: set `container_path`, for example `container_path: data` mounts it at `/workspace/extra/data`
            "#]],
        );
    }

    #[test]
    fn ids_with_surrounding_spaces_never_match_a_message_and_are_refused() {
        check(
            "kind: user\nid: ' cli:x'\n---\nkind: channel\nname: c\nchannel_type: cli\nplatform_id: '123 '\n",
            expect![[r#"
                error: m.yaml:2:5: user. cli:x: user id ` cli:x` starts or ends with a space

                hint: ids are matched exactly: write `cli:x`

                error: m.yaml:7:14: channel.c: `platform_id` `123 ` starts or ends with a space

                hint: ids are matched exactly: write `123`
            "#]],
        );
    }

    #[test]
    fn owner_cannot_be_scoped_and_user_ids_have_a_channel() {
        check(
            &format!(
                "{AGENT}kind: user\nid: nochannel\nroles: [{{role: owner, agent: andy}}, boss]\n"
            ),
            expect![[r#"
                error: m.yaml:5:5: user.nochannel: user id `nochannel` must be `<channel>:<handle>`

                hint: for example `telegram:6037840640`

                error: m.yaml:6:9: user.nochannel: `owner` is always global: it cannot be scoped to an agent

                hint: use `{role: admin, agent: andy}` for one agent

                error: m.yaml:6:37: user.nochannel: invalid role `boss`: expected one of `owner`, `admin`
            "#]],
        );
    }

    #[test]
    fn mcp_servers_need_exactly_one_transport() {
        check(
            "kind: agent\nname: andy\nmcp_servers:\n  both: {command: npx, url: 'https://x'}\n  none: {instructions: hi}\n",
            expect![[r#"
                error: m.yaml:4:9: agent.andy: MCP server `both` has both `command` and `url`

                hint: keep `command` for a stdio server or `url` for a remote one

                error: m.yaml:5:9: agent.andy: MCP server `none` needs `command` or `url`

                hint: add `command: <program>` (stdio) or `url: https://…`
            "#]],
        );
    }

    #[test]
    fn same_chat_twice_is_an_error() {
        check(
            "kind: channel\nname: a\nchannel_type: cli\nplatform_id: local\n---\nkind: channel\nname: b\nchannel_type: cli\nplatform_id: local\n",
            expect![[r#"
                error: m.yaml:7:7: channel.b: channels `a` and `b` both use cli chat `local` (at m.yaml:2:7)

                hint: one chat is one channel: wire several agents in one channel's `wirings`
            "#]],
        );
    }

    #[test]
    fn duplicate_destination_names_and_wirings() {
        check(
            "kind: agent\nname: andy\ndestinations: [{name: x, agent: andy}, {name: x, channel: fam}, {name: Bad Name, agent: andy}]\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: p\nwirings: [{agent: andy}, {agent: andy}]\n",
            expect![[r#"
                error: m.yaml:3:47: destination.andy/x: destination `x` of agent `andy` is declared twice (first at m.yaml:3:23)

                hint: remove one of the two declarations or rename one

                error: m.yaml:3:72: destination.andy/Bad Name: destination name `Bad Name` may only hold lowercase letters and digits, with single `-` between them

                hint: try `bad-name`

                error: m.yaml:9:26: wiring.fam/andy: wiring of agent `andy` on channel `fam` is declared twice (first at m.yaml:9:11)

                hint: remove one of the two declarations or rename one
            "#]],
        );
    }
}
