//! Unit tests of the self-modification edit: the file as text before and after.

use expect_test::{Expect, expect};

use super::*;

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
