//! Tests of `validate`: each input is manifest text, each expectation a snapshot of the
//! diagnostics (`UPDATE_EXPECT=1` rewrites them).

use expect_test::{Expect, expect};

use crate::manifest::{Diagnostic, load_str, render};
use crate::state::{Address, DestinationTarget, Resource};

/// Loads `yaml` as `m.yaml` and snapshots the diagnostics (or `ok: <n> resources`).
#[track_caller]
fn check(yaml: &str, expected: Expect) {
    let actual = match load_str("m.yaml", yaml) {
        Ok(manifests) if manifests.warnings.is_empty() => {
            format!("ok: {} resources\n", manifests.state.len())
        }
        Ok(manifests) => format!(
            "ok: {} resources\n{}",
            manifests.state.len(),
            render(&manifests.warnings)
        ),
        // Warnings beside errors are shown by the CLI; these snapshots are about errors.
        Err(diagnostics) => render(&only_errors(diagnostics)),
    };
    expected.assert_eq(&actual);
}

fn only_errors(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.into_iter().filter(|d| d.is_error()).collect()
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
fn issue_7_a_huge_regex_is_refused_by_its_source_size_and_compiled_size() {
    let wiring = |pattern: &str| {
        format!(
            "{AGENT}kind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings:\n  - {{agent: andy, engage_mode: pattern, engage_pattern: '{pattern}'}}\n"
        )
    };
    check(
        &wiring(&"a".repeat(crate::manifest::limits::MAX_PATTERN_BYTES + 1)),
        expect![[r#"
            error: m.yaml:9:57: wiring.fam/andy: `engage_pattern` is 1,025 bytes long; at most 1 KiB is allowed

            hint: engage patterns are short: match a name or a command, not a list of words
        "#]],
    );
    // Short to write, but large once compiled (every `\w` is the Unicode word class).
    check(
        &wiring(r"\w{100}"),
        expect![[r#"
            error: m.yaml:9:57: wiring.fam/andy: `engage_pattern` `\w{100}` compiles to more than 1 MiB

            hint: use fewer or smaller repetitions, and ASCII classes (`[a-zA-Z0-9_]`, `(?-u:\w)`) instead of Unicode ones
        "#]],
    );
    assert!(
        regex::Regex::new(r"\w{100}").is_ok(),
        "the default limit is larger"
    );
}

#[test]
fn issue_7_a_string_longer_than_64_kib_is_refused() {
    let long = "x".repeat(crate::manifest::limits::MAX_STRING_BYTES + 1);
    check(
        &format!("kind: agent\nname: andy\ninstructions: {long}\n"),
        expect![[r#"
            error: m.yaml:3:15: agent.andy: this text is 65,537 bytes long; a manifest value may be at most 64 KiB

            hint: keep long instructions short, or put large files into a mount
        "#]],
    );
}

#[test]
fn issue_7_names_that_become_files_urls_env_keys_and_images_are_checked() {
    check(
        "kind: agent\nname: andy\nimage: 'Bad Image'\nskills: [web, ../../etc]\nmcp_servers:\n  ../../../../tmp/pwned: {command: x}\n  files: {url: 'file:///etc/passwd'}\n  js: {url: 'javascript:alert(1)'}\n  envs: {command: npx, env: {'': a, 'A=B': b, \"X\\nY\": c}}\n  nul: {command: \"np\\0x\", args: [\"a\\0\"]}\n  empty: {command: ''}\n",
        expect![[r#"
            error: m.yaml:3:8: agent.andy: `image` `Bad Image` is not a Docker image reference

            hint: for example `ghcr.io/me/agent:1.2` or `my-agent:latest` (lowercase name, optional tag)

            error: m.yaml:4:9: agent.andy: skill name `../../etc` may only hold letters, digits, `.`, `_` and `-`, starting with a letter or digit (it becomes a file name)

            error: m.yaml:6:26: agent.andy: MCP server name `../../../../tmp/pwned` may only hold letters, digits, `.`, `_` and `-`, starting with a letter or digit (it becomes a file name)

            hint: name it like `github` or `my-files`

            error: m.yaml:7:10: agent.andy: MCP server `files`: `url` `file:///etc/passwd` must start with `https://` or `http://`

            hint: remote MCP servers are reached over `https://…`

            error: m.yaml:8:7: agent.andy: MCP server `js`: `url` `javascript:alert(1)` must start with `https://` or `http://`

            hint: remote MCP servers are reached over `https://…`

            error: m.yaml:9:9: agent.andy: MCP server `envs`: `env` key `A=B` is not a variable name

            hint: variable names are letters, digits and `_`, not starting with a digit

            error: m.yaml:9:9: agent.andy: MCP server `envs`: `env` key `X\u{a}Y` is not a variable name

            hint: variable names are letters, digits and `_`, not starting with a digit

            error: m.yaml:9:9: agent.andy: MCP server `envs`: `env` key `` is not a variable name

            hint: variable names are letters, digits and `_`, not starting with a digit

            error: m.yaml:10:8: agent.andy: MCP server `nul`: `command`, `args` and `env` values must not hold a NUL character

            hint: a program's arguments and environment cannot hold `\0`

            error: m.yaml:11:10: agent.andy: MCP server `empty`: `command` must not be empty
        "#]],
    );
}

#[test]
fn issue_7_ids_and_names_reject_control_and_zero_width_characters() {
    check(
        "kind: agent\nname: andy\nassistant_name: \"An\\u200Bdy\"\n---\nkind: channel\nname: c\nchannel_type: cli\nplatform_id: \"lo\\u202Ecal\"\ndisplay_name: \"Fam\\tily\"\n---\nkind: user\nid: \"cli:al\\u200Bice\"\ndisplay_name: \"Bob\\e[31m\"\n",
        expect![[r#"
            error: m.yaml:3:17: agent.andy: `assistant_name` `An\u{200b}dy` holds a control or invisible character (U+200B)

            hint: remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal

            error: m.yaml:8:14: channel.c: `platform_id` `lo\u{202e}cal` holds a control or invisible character (U+202E)

            hint: remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal

            error: m.yaml:9:15: channel.c: `display_name` `Fam\u{9}ily` holds a control or invisible character (U+0009)

            hint: remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal

            error: m.yaml:12:5: user.cli:al\u{200b}ice: `id` `cli:al\u{200b}ice` holds a control or invisible character (U+200B)

            hint: remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal

            error: m.yaml:13:15: user.cli:al\u{200b}ice: `display_name` `Bob\u{1b}[31m` holds a control or invisible character (U+001B)

            hint: remove it: invisible characters make two different values look the same, and control characters can rewrite a terminal
        "#]],
    );
}

#[test]
fn issue_7_look_alike_user_ids_are_reported() {
    check(
        "kind: user\nid: 'telegram:alice'\n---\nkind: user\nid: 'telegram:\u{430}lice'\n---\nkind: user\nid: 'telegram:bob'\n",
        expect![[r#"
            error: m.yaml:5:5: user.telegram:аlice: user ids `telegram:alice` and `telegram:аlice` look alike (first at m.yaml:2:5)

            hint: check which one is the real handle and remove the other; they hold `а` U+0430
        "#]],
    );
}

#[test]
fn issue_8_an_agent_wired_to_nothing_is_a_warning() {
    check(
        "kind: agent\nname: lonely\n---\nkind: agent\nname: helper\n---\nkind: agent\nname: andy\ndestinations: [{name: h, agent: helper}, {name: me, agent: andy}]\n---\nkind: channel\nname: fam\nchannel_type: telegram\nplatform_id: 'telegram:1'\nwirings: [{agent: andy}]\n",
        expect![[r#"
            ok: 8 resources
            warning: m.yaml:2:7: agent.lonely: agent `lonely` is wired to no channel and no other agent sends to it: it never receives a message

            hint: wire it in a channel (`wirings: [{agent: lonely}]`) or name it in another agent's `destinations`
        "#]],
    );
}

#[test]
fn issue_8_a_cli_channel_wired_with_mention_is_a_warning() {
    check(
        "kind: agent\nname: andy\n---\nkind: agent\nname: bob\n---\nkind: agent\nname: eve\n---\nkind: channel\nname: cli\nchannel_type: cli\nplatform_id: local\nwirings:\n  - {agent: andy, engage_mode: mention}\n  - {agent: bob}\n  - {agent: eve, engage_mode: pattern, engage_pattern: '.'}\n",
        expect![[r#"
            ok: 10 resources
            warning: m.yaml:15:32: wiring.cli/andy: the CLI channel cannot mention, so `engage_mode: mention` never engages

            hint: use `engage_mode: pattern` with `engage_pattern: "."` to answer every line

            warning: m.yaml:16:13: wiring.cli/bob: the CLI channel cannot mention, so the default `engage_mode: mention` never engages

            hint: use `engage_mode: pattern` with `engage_pattern: "."` to answer every line
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

            error: m.yaml:3:18: agent.Andy_1: invalid package `Bad Name` in `packages.apt`

            hint: `Bad Name` is not a Debian package name (lower-case letters, digits, `+`, `-`, `.`; at least two characters, starting with a letter or digit)

            error: m.yaml:3:50: agent.Andy_1: invalid package `UPPER` in `packages.npm`

            hint: `UPPER` is not an npm package name (optionally `@scope/`, then lower-case letters, digits, `-._~`, not starting with `.` or `_`)

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
        &format!("{AGENT}kind: user\nid: nochannel\nroles: [{{role: owner, agent: andy}}, boss]\n"),
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

/// Loads `yaml` as this host would (`load_for_host`, no mount allowlist): the checks of this
/// build and machine included.
fn load_on_host(yaml: &str) -> Result<crate::manifest::Manifests, Vec<Diagnostic>> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), yaml).unwrap();
    let policy = crate::mount_policy::Policy::load(dir.path());
    crate::manifest::load_for_host(dir.path(), &policy)
}

fn listed_providers() -> String {
    agent_runner::providers::provider_names()
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn issue_9_an_agent_without_a_provider_is_rejected_while_the_default_is_not_in_this_build() {
    let yaml = "kind: agent\nname: andy\n";
    if agent_runner::providers::provider_names().contains(&"claude") {
        assert!(
            load_on_host(yaml).is_ok(),
            "`claude` is registered: the default runs"
        );
        return;
    }
    let diagnostics = only_errors(load_on_host(yaml).unwrap_err());
    let [diagnostic] = diagnostics.as_slice() else {
        panic!("{}", render(&diagnostics))
    };
    assert_eq!((diagnostic.line, diagnostic.col), (2, 7));
    assert_eq!(diagnostic.field.as_deref(), Some("provider"));
    assert_eq!(
        diagnostic.message,
        format!(
            "no `provider`, and the default, `claude`, is not in this build (it has {})",
            listed_providers()
        )
    );
    assert_eq!(
        diagnostic.hint.as_deref(),
        Some("set `provider: mock`, or install a build with the `claude` provider")
    );
    assert!(
        load_str("m.yaml", yaml).is_ok(),
        "export and load_str accept any provider"
    );
}

#[test]
fn issue_9_a_provider_the_runner_does_not_have_is_rejected_listing_the_available_ones() {
    let diagnostics =
        only_errors(load_on_host("kind: agent\nname: andy\nprovider: mokc\n").unwrap_err());
    let [diagnostic] = diagnostics.as_slice() else {
        panic!("{}", render(&diagnostics))
    };
    assert_eq!((diagnostic.line, diagnostic.col), (3, 11));
    assert_eq!(diagnostic.field.as_deref(), Some("provider"));
    assert_eq!(
        diagnostic.message,
        format!(
            "unknown `provider` `mokc`: this build has {}",
            listed_providers()
        )
    );
    assert_eq!(diagnostic.hint.as_deref(), Some("did you mean `mock`?"));
    assert!(load_on_host("kind: agent\nname: andy\nprovider: Mock\n").is_ok());
}
