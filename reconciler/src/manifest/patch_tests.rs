//! Unit tests of the self-modification edit: the file as text before and after.

use expect_test::{Expect, expect};

use super::*;
use crate::state::{DestinationTarget, Resource};

fn packages(apt: &[&str], npm: &[&str]) -> Change {
    Change::Packages {
        apt: apt.iter().map(ToString::to_string).collect(),
        npm: npm.iter().map(ToString::to_string).collect(),
    }
}

fn server(name: &str, env: &[(&str, &str)]) -> Change {
    Change::McpServer {
        name: name.into(),
        command: "npx".into(),
        args: vec!["-y".into(), "@acme/mcp server".into()],
        env: env
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    }
}

/// Edits agent `andy` in `input`; the whole new file, or the error, must match `expect`. The
/// result must load as a manifest whenever the input did.
#[track_caller]
fn check(input: &str, change: Change, expect: Expect) {
    let actual = match edit(input, "andy", &change) {
        Ok(edited) => {
            if crate::manifest::load_str("m.yaml", input).is_ok() {
                crate::manifest::load_str("m.yaml", &edited.text).unwrap_or_else(|diagnostics| {
                    panic!("{}\n{}", crate::manifest::render(&diagnostics), edited.text)
                });
            }
            edited.text
        }
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&actual);
}

#[test]
fn a_block_list_gains_the_package_and_keeps_its_comments_and_blank_lines() {
    check(
        "# my agent\nkind: agent\nname: andy # the helper\n\n# what it needs\npackages:\n  apt:\n    - curl # for fetching\n    - git\n\n  npm: []\n# end\n",
        packages(&["jq"], &[]),
        expect![[r#"
            # my agent
            kind: agent
            name: andy # the helper

            # what it needs
            packages:
              apt:
                - curl # for fetching
                - git
                - jq

              npm: []
            # end
        "#]],
    );
}

#[test]
fn a_flow_list_gains_the_package_in_flow_style() {
    check(
        "kind: agent\nname: andy\npackages:\n  apt: [curl, git] # tools\n  npm: []\n",
        packages(&["jq"], &["@acme/tool"]),
        expect![[r#"
            kind: agent
            name: andy
            packages:
              apt: [curl, git, jq] # tools
              npm: ["@acme/tool"]
        "#]],
    );
}

#[test]
fn a_multiline_flow_list_with_a_trailing_comma() {
    check(
        "kind: agent\nname: andy\npackages:\n  apt: [\n    curl,\n  ]\n",
        packages(&["jq"], &[]),
        expect![[r#"
            kind: agent
            name: andy
            packages:
              apt: [
                curl, jq,
              ]
        "#]],
    );
}

#[test]
fn missing_keys_are_created() {
    check(
        "kind: agent\nname: andy # n\n\n# trailing comment\n",
        packages(&["jq"], &["typescript"]),
        expect![[r#"
            kind: agent
            name: andy # n
            packages: { apt: [jq], npm: [typescript] }

            # trailing comment
        "#]],
    );
    check(
        "kind: agent\nname: andy\npackages:\n  npm: [typescript]\n",
        packages(&["jq"], &[]),
        expect![[r#"
            kind: agent
            name: andy
            packages:
              npm: [typescript]
              apt: [jq]
        "#]],
    );
}

#[test]
fn listed_packages_are_not_added_twice() {
    check(
        "kind: agent\nname: andy\npackages:\n  apt: [jq=1.6-2, curl]\n",
        packages(&["jq", "curl", "git", "git"], &[]),
        expect![[r#"
            kind: agent
            name: andy
            packages:
              apt: [jq=1.6-2, curl, git]
        "#]],
    );
    let text = "kind: agent\nname: andy\npackages:\n  apt:\n    - jq\n";
    let edited = edit(text, "andy", &packages(&["jq"], &[])).unwrap();
    assert!(!edited.changed);
    assert_eq!(edited.text, text);
}

#[test]
fn only_the_agents_document_of_a_multi_document_file_changes() {
    check(
        "# team\nkind: agent\nname: bob\n---\n# andy\nkind: agent\nname: andy\n--- # chat\nkind: channel\nname: cli\nchannel_type: cli\nplatform_id: local\nwirings: [{agent: andy}]\n",
        packages(&["jq"], &[]),
        expect![[r#"
            # team
            kind: agent
            name: bob
            ---
            # andy
            kind: agent
            name: andy
            packages: {apt: [jq]}
            --- # chat
            kind: channel
            name: cli
            channel_type: cli
            platform_id: local
            wirings: [{agent: andy}]
        "#]],
    );
}

#[test]
fn an_agent_not_in_the_file_is_an_error() {
    check(
        "kind: agent\nname: bob\n",
        packages(&["jq"], &[]),
        expect!["error: no `kind: agent` document with `name: andy` in the file"],
    );
}

#[test]
fn an_mcp_server_is_added_with_quoted_arguments_and_env() {
    check(
        "kind: agent\nname: andy\n# servers\nmcp_servers:\n  files:\n    command: mcp-files # local\n",
        server(
            "search",
            &[("API_KEY", "a \"quoted\": value"), ("MODE", "fast")],
        ),
        expect![[r#"
            kind: agent
            name: andy
            # servers
            mcp_servers:
              files:
                command: mcp-files # local
              search: {command: npx, args: ["-y", "@acme/mcp server"], env: {API_KEY: "a \"quoted\": value", MODE: fast}}
        "#]],
    );
    check(
        "kind: agent\nname: andy\n",
        server("search", &[]),
        expect![[r#"
            kind: agent
            name: andy
            mcp_servers: {search: {command: npx, args: ["-y", "@acme/mcp server"]}}
        "#]],
    );
}

#[test]
fn an_mcp_server_of_the_same_name_is_replaced_and_an_identical_one_is_unchanged() {
    check(
        "kind: agent\nname: andy\nmcp_servers:\n  search:\n    command: old\n  other: {command: x}\n",
        server("search", &[]),
        expect![[r#"
            kind: agent
            name: andy
            mcp_servers:
              search: {command: npx, args: ["-y", "@acme/mcp server"]}
              other: {command: x}
        "#]],
    );
    let text = "kind: agent\nname: andy\nmcp_servers:\n  search:\n    command: npx\n    args: [-y, \"@acme/mcp server\"]\n";
    let edited = edit(text, "andy", &server("search", &[])).unwrap();
    assert!(!edited.changed, "{}", edited.text);
}

#[test]
fn the_hand_patch_is_a_unified_diff() {
    let before = "kind: agent\nname: andy\n";
    let after = edit(before, "andy", &packages(&["jq"], &[])).unwrap().text;
    expect![[r#"
        --- a/agents/andy.yaml
        +++ b/agents/andy.yaml
        @@ -1,2 +1,3 @@
         kind: agent
         name: andy
        +packages: {apt: [jq]}
    "#]]
    .assert_eq(&unified_diff("agents/andy.yaml", before, &after));
}

#[test]
fn a_server_added_after_a_trailing_comment_and_before_the_next_document() {
    check(
        "# agent\nkind: agent\nname: andy # keep\nprovider: mock\n\n# below\n---\nkind: user\nid: \"cli:local\"\nroles: [owner]\n",
        Change::McpServer {
            name: "search".into(),
            command: "search-mcp".into(),
            args: vec!["--fast".into()],
            env: [("SEARCH_TOKEN".to_string(), "s3cret-value".to_string())].into(),
        },
        expect![[r##"
            # agent
            kind: agent
            name: andy # keep
            provider: mock
            mcp_servers: {search: {command: search-mcp, args: ["--fast"], env: {SEARCH_TOKEN: s3cret-value}}}

            # below
            ---
            kind: user
            id: "cli:local"
            roles: [owner]
        "##]],
    );
}

// `add_entry`: the edit of `nanoclaw adopt`.

fn destination(agent: &str, name: &str, target: DestinationTarget) -> Resource {
    Resource::Destination(crate::state::Destination {
        agent: agent.into(),
        local_name: name.into(),
        target,
    })
}

fn to_agent(agent: &str) -> DestinationTarget {
    DestinationTarget::Agent(agent.into())
}

fn role(user: &str, agent: Option<&str>) -> Resource {
    Resource::Role(crate::state::Role {
        user: user.into(),
        role: match agent {
            None => crate::state::RoleKind::Owner,
            Some(_) => crate::state::RoleKind::Admin,
        },
        agent: agent.map(Into::into),
    })
}

fn member(user: &str, agent: &str) -> Resource {
    Resource::Member(crate::state::Member {
        user: user.into(),
        agent: agent.into(),
    })
}

/// Adds `row` to `input`; the whole new file (`unchanged` when it already held the entry), or
/// the error, must match `expect`. The result must load whenever the input did.
#[track_caller]
fn check_entry(input: &str, row: Resource, expect: Expect) {
    let actual = match add_entry(input, &row) {
        Ok(edited) if !edited.changed => {
            assert_eq!(edited.text, input);
            "unchanged".to_string()
        }
        Ok(edited) => {
            if crate::manifest::load_str("m.yaml", input).is_ok() {
                let loaded = crate::manifest::load_str("m.yaml", &edited.text).unwrap_or_else(
                    |diagnostics| {
                        panic!("{}\n{}", crate::manifest::render(&diagnostics), edited.text)
                    },
                );
                assert_eq!(
                    loaded.state.get(&row.address()),
                    Some(&row),
                    "{}",
                    edited.text
                );
            }
            edited.text
        }
        Err(err) => format!("error: {err}"),
    };
    expect.assert_eq(&actual);
}

#[test]
fn a_destination_joins_a_block_list_and_the_comments_and_blank_lines_stay() {
    check_entry(
        "# the front desk\nkind: agent\nname: andy # main\n\n# who andy talks to\ndestinations:\n  - name: bob # the researcher\n    agent: bob\n\n# end of andy\n---\nkind: agent\nname: bob\n---\nkind: agent\nname: helper\n",
        destination("andy", "helper", to_agent("helper")),
        expect![[r#"
            # the front desk
            kind: agent
            name: andy # main

            # who andy talks to
            destinations:
              - name: bob # the researcher
                agent: bob
              - { name: helper, agent: helper }

            # end of andy
            ---
            kind: agent
            name: bob
            ---
            kind: agent
            name: helper
        "#]],
    );
}

#[test]
fn a_destination_joins_a_flow_list_or_makes_the_missing_key() {
    check_entry(
        "kind: agent\nname: andy\ndestinations: [{ name: bob, agent: bob }] # peers\n---\nkind: agent\nname: bob\n---\nkind: channel\nname: family\nchannel_type: cli\nplatform_id: fam\nwirings: [{agent: bob}]\n",
        destination("andy", "fam", DestinationTarget::Channel("family".into())),
        expect![[r#"
            kind: agent
            name: andy
            destinations: [{ name: bob, agent: bob }, { name: fam, channel: family }] # peers
            ---
            kind: agent
            name: bob
            ---
            kind: channel
            name: family
            channel_type: cli
            platform_id: fam
            wirings: [{agent: bob}]
        "#]],
    );
    check_entry(
        "# andy\nkind: agent\nname: andy\nprovider: mock # for now\n---\nkind: agent\nname: helper\n",
        destination("andy", "helper", to_agent("helper")),
        expect![[r#"
            # andy
            kind: agent
            name: andy
            provider: mock # for now
            destinations: [{ name: helper, agent: helper }]
            ---
            kind: agent
            name: helper
        "#]],
    );
}

#[test]
fn a_destination_already_listed_is_not_added_twice_and_a_clash_of_names_is_an_error() {
    let text = "kind: agent\nname: andy\ndestinations:\n  - name: helper\n    agent: helper\n---\nkind: agent\nname: helper\n---\nkind: agent\nname: bob\n";
    check_entry(
        text,
        destination("andy", "helper", to_agent("helper")),
        expect!["unchanged"],
    );
    check_entry(
        text,
        destination("andy", "helper", to_agent("bob")),
        expect![
            "error: the document cannot be edited automatically: `destinations` already has an entry `helper` that differs from `{ name: helper, agent: bob }`"
        ],
    );
}

#[test]
fn roles_and_memberships_go_into_the_users_document_of_a_multi_document_file() {
    let text = "kind: agent\nname: andy\n---\n# gavriel\nkind: user\nid: \"telegram:42\" # dad\nroles:\n  - admin # of everything\n\n---\nkind: user\nid: \"telegram:7\"\n";
    check_entry(
        text,
        role("telegram:42", Some("andy")),
        expect![[r#"
            kind: agent
            name: andy
            ---
            # gavriel
            kind: user
            id: "telegram:42" # dad
            roles:
              - admin # of everything
              - { role: admin, agent: andy }

            ---
            kind: user
            id: "telegram:7"
        "#]],
    );
    check_entry(
        text,
        member("telegram:7", "andy"),
        expect![[r#"
            kind: agent
            name: andy
            ---
            # gavriel
            kind: user
            id: "telegram:42" # dad
            roles:
              - admin # of everything

            ---
            kind: user
            id: "telegram:7"
            member_of: [andy]
        "#]],
    );
    check_entry(
        "kind: user\nid: \"telegram:7\"\nroles: [admin]\nmember_of: [bob] # for now\n",
        role("telegram:7", None),
        expect![[r#"
            kind: user
            id: "telegram:7"
            roles: [admin, owner]
            member_of: [bob] # for now
        "#]],
    );
}

#[test]
fn a_role_or_membership_already_listed_in_any_form_is_not_added_twice() {
    check_entry(
        "kind: user\nid: \"cli:local\"\nroles: [{role: owner}]\n",
        role("cli:local", None),
        expect!["unchanged"],
    );
    check_entry(
        "kind: user\nid: \"cli:local\"\nroles:\n  - role: admin\n    agent: andy\n",
        role("cli:local", Some("andy")),
        expect!["unchanged"],
    );
    check_entry(
        "kind: user\nid: \"cli:local\"\nmember_of:\n  - andy\n",
        member("cli:local", "andy"),
        expect!["unchanged"],
    );
}

#[test]
fn an_entry_whose_document_is_not_in_the_file_or_is_not_a_list_is_an_error() {
    check_entry(
        "kind: user\nid: \"cli:other\"\n",
        member("cli:local", "andy"),
        expect!["error: no `kind: user` document with `id: cli:local` in the file"],
    );
    check_entry(
        "kind: agent\nname: bob\n",
        destination("andy", "helper", to_agent("helper")),
        expect!["error: no `kind: agent` document with `name: andy` in the file"],
    );
    check_entry(
        "kind: user\nid: \"cli:local\"\nmember_of: andy\n",
        member("cli:local", "bob"),
        expect!["error: the document cannot be edited automatically: `member_of` is not a list"],
    );
    check_entry(
        "kind: user\nid: \"cli:local\"\nmember_of:\n",
        member("cli:local", "bob"),
        expect![
            "error: the document cannot be edited automatically: `member_of` is present but empty; give it a value"
        ],
    );
}

#[test]
fn a_block_list_unindented_or_at_the_end_of_a_file_without_a_newline_gains_the_entry() {
    check_entry(
        "kind: user\nid: \"cli:local\"\nmember_of:\n- bob\n  # more to come\nroles: [admin]\n",
        member("cli:local", "andy"),
        expect![[r#"
            kind: user
            id: "cli:local"
            member_of:
            - bob
            - andy
              # more to come
            roles: [admin]
        "#]],
    );
    check_entry(
        "kind: user\nid: \"cli:local\"\nmember_of:\n  - bob # first",
        member("cli:local", "andy"),
        expect![[r#"
            kind: user
            id: "cli:local"
            member_of:
              - bob # first
              - andy
        "#]],
    );
}
