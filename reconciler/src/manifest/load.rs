//! Parsing manifest files: splitting YAML documents and deserialising each into a [`Doc`]
//! with spans.
//!
//! Owns every YAML-parser concern (budgets, duplicate keys, error → `Diagnostic` mapping).
//! It must not touch the filesystem (that is `walk`) or judge values (that is `validate`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::limits::{
    MAX_ALIASES, MAX_DEPTH, MAX_DOCUMENTS, MAX_EVENTS, MAX_NODES, MAX_REPLAYED_EVENTS, thousands,
};
use super::model::{AgentDoc, ChannelDoc, Doc, UserDoc};
use super::schema;
use super::tree::{self, Node, NodeValue};
pub use super::walk::SourceFile;

/// One document that parsed, with where it starts.
#[derive(Debug)]
pub struct ParsedDoc {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    pub doc: Doc,
}

/// A document that did not parse but whose kind and name could be read: validation treats
/// the name as declared so one typo does not cascade into "unknown agent" errors elsewhere.
#[derive(Debug)]
pub struct BrokenDoc {
    pub kind: String,
    pub name: String,
}

/// Everything the files held.
#[derive(Debug, Default)]
pub struct Parsed {
    pub docs: Vec<ParsedDoc>,
    pub broken: Vec<BrokenDoc>,
}

/// Parses every file's documents. Diagnostics are appended; good documents are returned.
pub fn parse_files(files: &[SourceFile], diagnostics: &mut Vec<Diagnostic>) -> Parsed {
    let mut parsed = Parsed::default();
    for file in files {
        match std::str::from_utf8(&file.bytes) {
            Ok(text) => parse_text(&file.path, text, &mut parsed, diagnostics),
            Err(err) => {
                let valid = &file.bytes[..err.valid_up_to()];
                let line = valid.iter().filter(|byte| **byte == b'\n').count() + 1;
                let col = valid
                    .iter()
                    .rev()
                    .take_while(|byte| **byte != b'\n')
                    .count()
                    + 1;
                diagnostics.push(
                    Diagnostic::new(
                        &file.path,
                        to_u32(line),
                        to_u32(col),
                        "file is not valid UTF-8",
                    )
                    .hint("save the file as UTF-8"),
                );
            }
        }
    }
    parsed
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocKind {
    Agent,
    Channel,
    User,
}

impl DocKind {
    fn parse(text: &str) -> Option<DocKind> {
        match text {
            "agent" => Some(DocKind::Agent),
            "channel" => Some(DocKind::Channel),
            "user" => Some(DocKind::User),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            DocKind::Agent => "agent",
            DocKind::Channel => "channel",
            DocKind::User => "user",
        }
    }

    /// The key naming a document of this kind.
    fn name_key(self) -> &'static str {
        match self {
            DocKind::User => "id",
            _ => "name",
        }
    }

    /// Its definition in the JSON Schema.
    fn definition(self) -> &'static str {
        match self {
            DocKind::Agent => "AgentDoc",
            DocKind::Channel => "ChannelDoc",
            DocKind::User => "UserDoc",
        }
    }
}

thread_local! {
    /// The kinds found by the probe pass, consumed in order by the strict pass. serde-saphyr's
    /// per-document iterator takes no seed, and an internally tagged enum would lose spans.
    static KINDS: RefCell<VecDeque<Option<DocKind>>> = const { RefCell::new(VecDeque::new()) };
}

/// A document deserialised into the struct of the kind the probe found (or skipped).
struct Strict(Option<Doc>);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        let kind = KINDS.with(|kinds| kinds.borrow_mut().pop_front()).flatten();
        Ok(Strict(match kind {
            Some(DocKind::Agent) => Some(Doc::Agent(AgentDoc::deserialize(deserializer)?)),
            Some(DocKind::Channel) => Some(Doc::Channel(ChannelDoc::deserialize(deserializer)?)),
            Some(DocKind::User) => Some(Doc::User(UserDoc::deserialize(deserializer)?)),
            None => {
                serde::de::IgnoredAny::deserialize(deserializer)?;
                None
            }
        }))
    }
}

/// The parser options: duplicate keys are errors; aliases, depth and size are bounded.
fn options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = MAX_ALIASES;
    budget.max_events = MAX_EVENTS;
    budget.max_nodes = MAX_NODES;
    budget.max_documents = MAX_DOCUMENTS;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    alias_limits.max_replay_stack_depth = 16;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits = alias_limits;
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::Error;
    options.with_snippet = false;
    options
}

fn parse_text(file: &Path, text: &str, parsed: &mut Parsed, diagnostics: &mut Vec<Diagnostic>) {
    // Pass 1 (lenient): each document as a tree of positioned nodes: its kind, name and start,
    // every unknown key and every oversized string.
    let mut reader = Cursor::new(text.as_bytes());
    let probes: Vec<Result<Node, serde_saphyr::Error>> =
        serde_saphyr::read_with_options(&mut reader, options())
            .take(MAX_DOCUMENTS + 1)
            .collect();
    if let Some(Ok(extra)) = probes.get(MAX_DOCUMENTS) {
        let message = format!(
            "the file holds more than {} documents",
            thousands(MAX_DOCUMENTS)
        );
        diagnostics.push(
            Diagnostic::new(file, extra.line, extra.col, message)
                .hint("split it into several files"),
        );
        parsed.broken.extend(names_by_line(text));
        return;
    }
    let mut kinds = VecDeque::new();
    for probe in &probes {
        let kind = match probe {
            Ok(node) => probe_document(file, node, diagnostics),
            Err(err) => {
                diagnostics.push(from_yaml_error(file, err, false));
                None
            }
        };
        kinds.push_back(kind);
    }
    if probes.iter().any(Result::is_err) {
        // The parser stops at a syntax error: read the names of the file's documents from
        // their text so references to them elsewhere do not fail as well.
        parsed.broken.extend(names_by_line(text));
    }
    let probe_kinds: Vec<Option<DocKind>> = kinds.iter().copied().collect();
    KINDS.with(|cell| *cell.borrow_mut() = kinds);

    // Pass 2 (strict): each document into its kind's struct (unknown keys were reported above
    // and are ignored here, so a document's other errors are reported too).
    let mut reader = Cursor::new(text.as_bytes());
    let strict: Vec<Result<serde_saphyr::Spanned<Strict>, serde_saphyr::Error>> =
        serde_saphyr::read_with_options(&mut reader, options())
            .take(probes.len())
            .collect();
    KINDS.with(|cell| cell.borrow_mut().clear());

    for (index, (probe, result)) in probes.iter().zip(strict).enumerate() {
        let Ok(probe) = probe else { continue };
        let Some(kind) = probe_kinds.get(index).copied().flatten() else {
            continue;
        };
        let name = probe
            .get(kind.name_key())
            .and_then(Node::as_text)
            .map(str::to_string);
        match result {
            // The passes pair documents by order; after a parse error that a pass recovered
            // from differently they could drift. A pair that starts elsewhere is dropped (the
            // file already has an error, so nothing is accepted silently).
            Ok(strict) if (line_of(&strict), col_of(&strict)) != (probe.line, probe.col) => {}
            Ok(serde_saphyr::Spanned {
                value: Strict(Some(doc)),
                ..
            }) => parsed.docs.push(ParsedDoc {
                file: file.to_path_buf(),
                line: probe.line,
                col: probe.col,
                doc,
            }),
            Ok(_) => {}
            Err(err) => {
                let address = name
                    .as_ref()
                    .map(|name| format!("{}.{name}", kind.as_str()));
                let mut diagnostic = from_yaml_error(file, &err, true);
                if let Some(address) = address {
                    diagnostic = diagnostic.address(address);
                }
                diagnostics.push(diagnostic);
                if let Some(name) = name {
                    parsed.broken.push(BrokenDoc {
                        kind: kind.as_str().to_string(),
                        name,
                    });
                }
            }
        }
    }
}

/// Reads a document's kind and checks its keys and string sizes against the schema; the kind
/// is `None` when the document has none or an unknown one (then it is not read further).
fn probe_document(file: &Path, node: &Node, diagnostics: &mut Vec<Diagnostic>) -> Option<DocKind> {
    let definitions = schema::definitions();
    if !matches!(node.value, NodeValue::Map(_)) {
        let message = "a manifest document must be a mapping of fields";
        diagnostics.push(Diagnostic::new(file, node.line, node.col, message).hint(KIND_HINT));
        return None;
    }
    let kind = match node.get("kind") {
        None => {
            diagnostics.push(
                Diagnostic::new(file, node.line, node.col, "document has no `kind`")
                    .hint(KIND_HINT),
            );
            None
        }
        Some(kind_node) => {
            let text = kind_node.as_text().unwrap_or_default();
            let kind = DocKind::parse(text);
            if kind.is_none() {
                let message = match kind_node.as_text() {
                    Some(text) => format!("unknown kind `{text}`"),
                    None => "`kind` must be text".to_string(),
                };
                diagnostics.push(
                    Diagnostic::new(file, kind_node.line, kind_node.col, message)
                        .field("kind")
                        .hint_opt(did_you_mean(text, KINDS_ALLOWED.iter().copied()).or_else(
                            || Some("`kind` is one of `agent`, `channel`, `user`".to_string()),
                        )),
                );
            }
            kind
        }
    };
    let Some(kind) = kind else {
        // Without a kind the keys cannot be judged per kind: name those no kind has (a typo
        // of `kind` itself among them).
        let known = schema::document_keys();
        let mut context = tree::Context {
            file,
            address: None,
            diagnostics,
        };
        if let NodeValue::Map(entries) = &node.value {
            for (key, _) in entries {
                let name = key.as_text().unwrap_or_default();
                if !known.contains(&name) {
                    tree::unknown_key(key, name, &known, &mut context);
                }
            }
        }
        return None;
    };
    let name = node.get(kind.name_key()).and_then(Node::as_text);
    let address = name.map(|name| format!("{}.{name}", kind.as_str()));
    let mut context = tree::Context {
        file,
        address: address.as_deref(),
        diagnostics,
    };
    let definition = &definitions[kind.definition()];
    tree::check(node, definition, definitions, &mut context);
    Some(kind)
}

const KIND_HINT: &str = "start each document with `kind: agent`, `kind: channel` or `kind: user`";
const KINDS_ALLOWED: &[&str] = &["agent", "channel", "user"];

/// The `kind` and `name` (or `id`) of each document, read from top-level `key: value` lines
/// without parsing: a best effort for files that do not parse.
fn names_by_line(text: &str) -> Vec<BrokenDoc> {
    let value = |line: &str, key: &str| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let rest = rest.split(" #").next().unwrap_or_default().trim();
        let rest = rest.trim_matches(|c| c == '"' || c == '\'');
        (!rest.is_empty()).then(|| rest.to_string())
    };
    let mut found = Vec::new();
    for document in text.split("\n---") {
        let lines: Vec<&str> = document.lines().collect();
        let kind = lines.iter().find_map(|line| value(line, "kind"));
        let key = if kind.as_deref() == Some("user") {
            "id"
        } else {
            "name"
        };
        let name = lines.iter().find_map(|line| value(line, key));
        if let (Some(kind), Some(name)) = (kind, name) {
            found.push(BrokenDoc { kind, name });
        }
    }
    found
}

fn line_of<T>(spanned: &serde_saphyr::Spanned<T>) -> u32 {
    u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX)
}

fn col_of<T>(spanned: &serde_saphyr::Spanned<T>) -> u32 {
    u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX)
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A parser or shape error as a diagnostic: location from the parser, message without the
/// parser's own location suffix. `in_document`: from the strict pass, inside a typed document.
/// The rewording reads serde-saphyr's typed error variants, never its English text; only the
/// scanner's tab complaint (which arrives as free text) is recognised by its words.
fn from_yaml_error(file: &Path, err: &serde_saphyr::Error, in_document: bool) -> Diagnostic {
    let (line, col) = err
        .location()
        .map(|location| (location.line(), location.column()))
        .unwrap_or((0, 0));
    let (message, hint) = explain(original(err), !in_document).unwrap_or_else(|| {
        let message = plain_message(err);
        let hint = (message.contains("found a tab") || message.starts_with("tabs disallowed"))
            .then(|| {
                "YAML indents with spaces; replace the tab characters with spaces".to_string()
            });
        (message, hint)
    });
    Diagnostic::new(
        file,
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
        message,
    )
    .hint_opt(hint)
}

/// The error itself, without the snippet and alias-location wrappers around it.
fn original(mut err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = err
    {
        err = error;
    }
    err
}

/// The parser's own message: its first line, without its location suffix.
fn plain_message(err: &serde_saphyr::Error) -> String {
    let mut message = err.to_string();
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Wrong shapes, duplicate keys, wrong scalar types and parser budget breaches in words, with a
/// hint, told apart by the error's variant. `document`: the error is about a whole document
/// (the lenient pass), not a nested value. `None`: the parser's own message says it best.
fn explain(err: &serde_saphyr::Error, document: bool) -> Option<(String, Option<String>)> {
    use serde_saphyr::Error;
    use serde_saphyr::budget::BudgetBreach;
    let found = |text: String, hint: &str| Some((text, Some(hint.to_string())));
    let limit_why =
        "manifests are small: the parser stops inputs that expand or nest without bound";
    match err {
        Error::Unexpected {
            expected: "mapping start",
            ..
        } if document => found(
            "a manifest document must be a mapping of fields".to_string(),
            "start each document with `kind: agent`, `kind: channel` or `kind: user`",
        ),
        Error::Unexpected {
            expected: "mapping start",
            ..
        } => found(
            "expected a mapping".to_string(),
            "write `key: value` lines below it, or `{key: value}`",
        ),
        Error::Unexpected {
            expected: "sequence start",
            ..
        } => found(
            "expected a list".to_string(),
            "write `- item` lines below it, or `[a, b]`; an empty list is `[]`",
        ),
        Error::DuplicateMappingKey { key: Some(key), .. } => found(
            format!("duplicate key `{key}`"),
            "a key may appear once per mapping; keep one of the two",
        ),
        // serde's own message for an untagged enum no variant of which fits.
        Error::Message { msg, .. } if untagged_enum(msg) == Some("RoleDoc") => {
            let shape = "`owner`, `admin` or `{role: admin, agent: <name>}`";
            found(
                format!("a role is {shape}"),
                &format!("write each entry as {shape} (keys: `role`, `agent`)"),
            )
        }
        Error::Message { msg, .. } if untagged_enum(msg) == Some("SkillsDoc") => found(
            "`skills` must be `all` or a list of skill names".to_string(),
            "write `skills: all` or `skills: [name, other]`",
        ),
        Error::NullIntoString { .. } | Error::InvalidCharNull { .. } => found(
            "expected a value, found an empty one (null)".to_string(),
            "write a value after the `:` (quote it, `\"~\"` or `\"\"`, to mean that text)",
        ),
        Error::InvalidScalar { ty, .. } => {
            let expected = match *ty {
                "u8" | "u16" | "u32" | "u64" => "a whole number, 0 or more",
                "i8" | "i16" | "i32" | "i64" => "a whole number",
                "bool" | "boolean" => "`true` or `false`",
                _ => return None,
            };
            Some((format!("expected {expected}"), None))
        }
        Error::AliasReplayLimitExceeded { .. } => found(
            format!(
                "aliases expand to more than {MAX_REPLAYED_EVENTS} YAML events (a \"billion laughs\" input?)"
            ),
            &format!("{limit_why}; write the values out instead of nesting aliases"),
        ),
        Error::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => found(
            format!("mappings and lists nest deeper than {MAX_DEPTH} levels"),
            limit_why,
        ),
        Error::Budget { breach, .. } => found(
            format!("the document exceeds a parser limit ({breach:?})"),
            limit_why,
        ),
        _ => None,
    }
}

/// The enum named by serde's "data did not match any variant of untagged enum X".
fn untagged_enum(message: &str) -> Option<&str> {
    message.strip_prefix("data did not match any variant of untagged enum ")
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{load, load_str, render};

    /// The errors of loading `yaml` (warnings are the CLI's and `validate`'s tests' concern).
    fn errors(yaml: &str) -> String {
        match load_str("m.yaml", yaml) {
            Ok(manifests) => format!("ok: {} resources", manifests.state.len()),
            Err(diagnostics) => {
                let errors: Vec<_> = diagnostics.into_iter().filter(|d| d.is_error()).collect();
                render(&errors)
            }
        }
    }

    #[test]
    fn unknown_keys_get_a_hint_from_their_own_kind() {
        expect![[r#"
            error: m.yaml:3:1: agent.andy: unknown key `nmae`

            hint: did you mean `name`?

            error: m.yaml:11:5: channel.fam: unknown key `engage_mod`

            hint: did you mean `engage_mode`?
        "#]]
        .assert_eq(&errors(
            "kind: agent\nname: andy\nnmae: x\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings:\n  - agent: andy\n    engage_mod: pattern\n",
        ));
    }

    #[test]
    fn issue_8_an_unknown_key_does_not_hide_the_document_s_other_errors() {
        expect![[r#"
            error: m.yaml:3:1: agent.andy: unknown key `nmae`

            hint: did you mean `name`?

            error: m.yaml:4:1: agent.andy: unknown key `modle`

            hint: did you mean `model`?

            error: m.yaml:5:12: agent.andy: invalid `cli_scope` `everything`: expected one of `disabled`, `group`, `global`

            error: m.yaml:13:5: channel.fam: unknown key `engage_mod`

            hint: did you mean `engage_mode`?

            error: m.yaml:14:19: wiring.fam/andy: invalid `sender_scope` `nobody`: expected one of `all`, `known`
        "#]]
        .assert_eq(&errors(
            "kind: agent\nname: andy\nnmae: x\nmodle: y\ncli_scope: everything\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings:\n  - agent: andy\n    engage_mod: pattern\n    sender_scope: nobody\n",
        ));
    }

    #[test]
    fn unknown_keys_are_found_at_every_level() {
        expect![[r#"
            error: m.yaml:3:19: agent.a: unknown key `comand`

            hint: did you mean `command`?

            error: m.yaml:4:12: agent.a: unknown key `pip`

            hint: allowed keys here: `apt`, `npm`

            error: m.yaml:5:30: agent.a: unknown key `read_only`

            hint: did you mean `readonly`?

            error: m.yaml:6:36: agent.a: unknown key `agnt`

            hint: did you mean `agent`?

            error: m.yaml:10:30: user.cli:x: unknown key `agnt`

            hint: did you mean `agent`?
        "#]]
        .assert_eq(&errors(
            "kind: agent\nname: a\nmcp_servers: {s: {comand: x, url: 'https://x'}}\npackages: {pip: [x]}\nmounts: [{host_path: /srv/x, read_only: true}]\ndestinations: [{name: b, agent: a, agnt: a}]\n---\nkind: user\nid: cli:x\nroles: [owner, {role: admin, agnt: a}]\n",
        ));
    }

    #[test]
    fn a_list_where_a_mapping_belongs_is_refused_not_read_as_fields_in_order() {
        expect![[r#"
            error: m.yaml:3:9: user.cli:x: expected a mapping

            hint: write `key: value` lines below it, or `{key: value}`

            error: m.yaml:7:11: agent.a: expected a mapping

            hint: write `key: value` lines below it, or `{key: value}`
        "#]]
        .assert_eq(&errors(
            "kind: user\nid: cli:x\nroles: [[admin]]\n---\nkind: agent\nname: a\npackages: [[git]]\n",
        ));
    }

    #[test]
    fn issue_8_a_document_without_kind_names_its_unknown_keys() {
        expect![[r#"
            error: m.yaml:1:1: document has no `kind`

            hint: start each document with `kind: agent`, `kind: channel` or `kind: user`

            error: m.yaml:1:1: unknown key `zzunknownkey`

            hint: allowed keys here: `kind`, `name`, `assistant_name`, `provider`, `model`, `effort`, `image`, `max_messages_per_prompt`, `cli_scope`, `instructions`, `skills`, `mcp_servers`, `packages`, `mounts`, `destinations`, `resources`, `network`, `channel_type`, `platform_id`, `display_name`, `is_group`, `unknown_sender_policy`, `wirings`, `id`, `roles`, `member_of`

            error: m.yaml:3:1: document has no `kind`

            hint: start each document with `kind: agent`, `kind: channel` or `kind: user`

            error: m.yaml:3:1: unknown key `knid`

            hint: did you mean `kind`?
        "#]]
        .assert_eq(&errors("zzunknownkey: 1\n---\nknid: agent\nname: andy\n"));
    }

    #[test]
    fn an_empty_value_where_text_is_required_says_so_in_words() {
        expect![[r#"
            error: m.yaml:5:16: agent.andy: expected a value, found an empty one (null)

            hint: write a value after the `:` (quote it, `"~"` or `""`, to mean that text)
        "#]]
        .assert_eq(&errors(
            "kind: agent\nname: andy\nprovider: mock\nmounts:\n  - host_path: ~\n",
        ));
    }

    #[test]
    fn a_role_or_skills_of_the_wrong_shape_is_explained_without_rust_type_names() {
        expect![[r#"
            error: m.yaml:3:9: user.cli:x: a role is `owner`, `admin` or `{role: admin, agent: <name>}`

            hint: write each entry as `owner`, `admin` or `{role: admin, agent: <name>}` (keys: `role`, `agent`)

            error: m.yaml:7:9: agent.b: `skills` must be `all` or a list of skill names

            hint: write `skills: all` or `skills: [name, other]`
        "#]]
        .assert_eq(&errors(
            "kind: user\nid: cli:x\nroles: [{role: admin, agent: [a]}]\n---\nkind: agent\nname: b\nskills: {x: 1}\n",
        ));
    }

    #[test]
    fn a_tab_in_the_indentation_gets_a_hint() {
        let text = errors("kind: agent\nname: andy\n\tprovider: mock\n");
        assert!(text.contains("found a tab"), "{text}");
        assert!(
            text.contains("hint: YAML indents with spaces; replace the tab characters with spaces"),
            "{text}"
        );
        let text = errors("kind: agent\nname: x\nskills:\n\t- a\n");
        assert!(text.contains("tabs disallowed"), "{text}");
        assert!(text.contains("hint: YAML indents with spaces"), "{text}");
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let text = errors("kind: agent\nname: andy\nname: bob\n");
        assert!(text.contains("m.yaml:3:"), "{text}");
        assert!(text.to_lowercase().contains("duplicate"), "{text}");
    }

    #[test]
    fn missing_and_unknown_kinds_are_reported() {
        expect![[r#"
            error: m.yaml:1:1: document has no `kind`

            hint: start each document with `kind: agent`, `kind: channel` or `kind: user`

            error: m.yaml:4:7: unknown kind `robot`

            hint: `kind` is one of `agent`, `channel`, `user`
        "#]]
        .assert_eq(&errors("name: andy\n---\n# comment\nkind: robot\n"));
    }

    #[test]
    fn empty_documents_are_skipped() {
        assert_eq!(
            errors("---\n---\nkind: agent\nname: a\n---\n# only a comment\n"),
            "ok: 1 resources"
        );
        assert_eq!(errors(""), "ok: 0 resources");
    }

    #[test]
    fn billion_laughs_fails_fast_with_a_clear_error() {
        let mut yaml = String::from(
            "kind: agent\nname: lol\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        );
        for level in 1..=9 {
            let previous = format!("*a{}", level - 1);
            let list = [previous.as_str(); 9].join(", ");
            yaml.push_str(&format!("x{level}: &a{level} [{list}]\n"));
        }
        let text = errors(&yaml);
        assert!(text.starts_with("error: m.yaml:"), "{text}");
        assert!(text.contains("billion laughs"), "{text}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let yaml = format!(
            "kind: agent\nname: deep\nskills: {}{}\n",
            "[".repeat(200),
            "]".repeat(200)
        );
        let text = errors(&yaml);
        assert!(text.starts_with("error: m.yaml:"), "{text}");
        assert!(text.contains("deeper than 32 levels"), "{text}");
    }

    #[test]
    fn issue_7_more_than_1000_documents_in_one_file_are_refused() {
        let mut yaml = String::new();
        for index in 0..=MAX_DOCUMENTS {
            yaml.push_str(&format!("---\nkind: agent\nname: a-{index}\n"));
        }
        expect![[r#"
            error: m.yaml:3002:1: the file holds more than 1,000 documents

            hint: split it into several files
        "#]]
        .assert_eq(&errors(&yaml));
        let fits: String = yaml
            .lines()
            .take(3 * MAX_DOCUMENTS)
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(errors(&fits), "ok: 1000 resources");
    }

    #[test]
    fn non_utf8_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yaml"),
            b"kind: agent\nname: \xff\xfe\n",
        )
        .unwrap();
        let diagnostics = load(dir.path()).unwrap_err();
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].file, dir.path().join("bad.yaml"));
        assert_eq!((diagnostics[0].line, diagnostics[0].col), (2, 7));
        assert!(diagnostics[0].message.contains("UTF-8"));
    }

    #[test]
    fn a_syntax_error_does_not_make_the_file_s_other_names_unknown_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "kind: agent\nname: zed\nmodel: [unclosed\n---\nkind: agent\nname: andy\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "kind: channel\nname: c\nchannel_type: cli\nplatform_id: x\nwirings: [{agent: andy}, {agent: zed}, {agent: nobody}]\n",
        )
        .unwrap();
        let errors: Vec<_> = load(dir.path())
            .unwrap_err()
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        let text = render(&errors).replace(&dir.path().display().to_string(), "DIR");
        expect![[r#"
            error: DIR/a.yaml:3:8: unclosed bracket '['

            error: DIR/b.yaml:5:48: wiring.c/nobody: unknown agent `nobody`

            hint: declare it with `kind: agent` and `name: nobody`
        "#]]
        .assert_eq(&text);
    }

    fn parse_bytes(bytes: Vec<u8>) {
        let files = vec![SourceFile {
            path: "fuzz.yaml".into(),
            relative: "fuzz.yaml".into(),
            bytes,
        }];
        let mut diagnostics = Vec::new();
        let parsed = parse_files(&files, &mut diagnostics);
        let _ = crate::manifest::validate::validate(&parsed.docs, &parsed.broken, &mut diagnostics);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_loader_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            parse_bytes(bytes);
        }

        #[test]
        fn the_loader_never_panics_on_yaml_like_text(text in "(kind: (agent|channel|user)\n|name: [a-z&*!]{0,6}\n|  - [a-z{}\\[\\]:,&*]{0,8}\n|wirings:\n|roles: \\[owner\\]\n|---\n|[a-z_]{1,8}: [^\n]{0,10}\n){0,20}") {
            parse_bytes(text.into_bytes());
        }
    }
}
