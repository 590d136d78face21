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
pub use super::walk::SourceFile;
use super::model::{AGENT_KEYS, AgentDoc, CHANNEL_KEYS, ChannelDoc, Doc, Sp, USER_KEYS, UserDoc};

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

/// What a first, lenient pass reads from each document: its kind, name and position.
#[derive(Deserialize)]
struct Probe {
    kind: Option<Sp<String>>,
    #[serde(default)]
    name: Option<serde_saphyr::Spanned<ProbeScalar>>,
    #[serde(default)]
    id: Option<serde_saphyr::Spanned<ProbeScalar>>,
}

/// Any scalar as text (so a wrong type is reported by the strict pass, not here).
struct ProbeScalar(Option<String>);

impl<'de> Deserialize<'de> for ProbeScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProbeScalar, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(ProbeScalar(match value {
            serde_json::Value::String(text) => Some(text),
            _ => None,
        }))
    }
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

    fn keys(self) -> &'static [&'static str] {
        match self {
            DocKind::Agent => AGENT_KEYS,
            DocKind::Channel => CHANNEL_KEYS,
            DocKind::User => USER_KEYS,
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
    // Pass 1 (lenient): each document's kind, name and start.
    let mut reader = Cursor::new(text.as_bytes());
    let probes: Vec<Result<serde_saphyr::Spanned<Probe>, serde_saphyr::Error>> =
        serde_saphyr::read_with_options(&mut reader, options())
            .take(MAX_DOCUMENTS + 1)
            .collect();
    if let Some(Ok(extra)) = probes.get(MAX_DOCUMENTS) {
        let message = format!(
            "the file holds more than {} documents",
            thousands(MAX_DOCUMENTS)
        );
        diagnostics.push(
            Diagnostic::new(file, line_of(extra), col_of(extra), message)
                .hint("split it into several files"),
        );
        parsed.broken.extend(names_by_line(text));
        return;
    }
    let mut kinds = VecDeque::new();
    for probe in &probes {
        let kind = match probe {
            Ok(probe) => match &probe.value.kind {
                Some(kind) => match DocKind::parse(&kind.value) {
                    Some(doc_kind) => Some(doc_kind),
                    None => {
                        diagnostics.push(
                            Diagnostic::new(
                                file,
                                kind.line,
                                kind.col,
                                format!("unknown kind `{}`", kind.value),
                            )
                            .field("kind")
                            .hint("`kind` is one of `agent`, `channel`, `user`"),
                        );
                        None
                    }
                },
                None => {
                    diagnostics.push(
                        Diagnostic::new(file, line_of(probe), col_of(probe), "document has no `kind`")
                            .hint("start each document with `kind: agent`, `kind: channel` or `kind: user`"),
                    );
                    None
                }
            },
            Err(err) => {
                diagnostics.push(from_yaml_error(file, err, None, None));
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

    // Pass 2 (strict): each document into its kind's struct, unknown keys rejected.
    let mut reader = Cursor::new(text.as_bytes());
    let strict: Vec<Result<serde_saphyr::Spanned<Strict>, serde_saphyr::Error>> =
        serde_saphyr::read_with_options(&mut reader, options()).collect();
    KINDS.with(|cell| cell.borrow_mut().clear());

    for (index, (probe, result)) in probes.iter().zip(strict).enumerate() {
        let Ok(probe) = probe else { continue };
        let Some(kind) = probe_kinds.get(index).copied().flatten() else {
            continue;
        };
        let name = match kind {
            DocKind::User => probe.value.id.as_ref(),
            _ => probe.value.name.as_ref(),
        }
        .and_then(|name| name.value.0.clone());
        let kind_text = match kind {
            DocKind::Agent => "agent",
            DocKind::Channel => "channel",
            DocKind::User => "user",
        };
        match result {
            // The passes pair documents by order; after a parse error that a pass recovered
            // from differently they could drift. A pair that starts elsewhere is dropped (the
            // file already has an error, so nothing is accepted silently).
            Ok(strict) if strict.referenced != probe.referenced => {}
            Ok(serde_saphyr::Spanned {
                value: Strict(Some(doc)),
                ..
            }) => parsed.docs.push(ParsedDoc {
                file: file.to_path_buf(),
                line: line_of(probe),
                col: col_of(probe),
                doc,
            }),
            Ok(_) => {}
            Err(err) => {
                let address = name.as_ref().map(|name| format!("{kind_text}.{name}"));
                diagnostics.push(from_yaml_error(file, &err, address, Some(kind.keys())));
                if let Some(name) = name {
                    parsed.broken.push(BrokenDoc {
                        kind: kind_text.to_string(),
                        name,
                    });
                }
            }
        }
    }
}

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
/// parser's own location suffix, unknown keys with a "did you mean" hint.
fn from_yaml_error(
    file: &Path,
    err: &serde_saphyr::Error,
    address: Option<String>,
    keys: Option<&[&str]>,
) -> Diagnostic {
    let (line, col) = err
        .location()
        .map(|location| (location.line(), location.column()))
        .unwrap_or((0, 0));
    let mut message = err.to_string();
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    let message = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let (message, hint) = explain_limit(message);
    let hint = hint.or_else(|| {
        (message.contains("found a tab") || message.starts_with("tabs disallowed"))
            .then(|| "YAML indents with spaces; replace the tab characters with spaces".to_string())
    });
    let (message, hint) = match explain_shape(&message, keys.is_none()) {
        Some((message, shape_hint)) => (message, shape_hint.or(hint)),
        None => (message, hint),
    };
    let mut diagnostic = Diagnostic::new(
        file,
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
        message.clone(),
    )
    .hint_opt(hint);
    if let Some(address) = address {
        diagnostic = diagnostic.address(address);
    }
    if let Some(key) = unknown_key(&message) {
        let expected = expected_keys(&message);
        let candidates: Vec<&str> = if expected.is_empty() {
            keys.unwrap_or_default().to_vec()
        } else {
            expected.iter().map(String::as_str).collect()
        };
        let hint = did_you_mean(&key, candidates.iter().copied()).or_else(|| {
            (!candidates.is_empty()).then(|| {
                format!(
                    "allowed keys here: {}",
                    candidates
                        .iter()
                        .map(|key| format!("`{key}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        });
        diagnostic.message = format!("unknown key `{key}`");
        diagnostic = diagnostic.field(key).hint_opt(hint);
    }
    diagnostic
}

/// Duplicate keys and wrong scalar types in words.
/// `document`: the error is about a whole document (the lenient pass), not a nested value.
fn explain_shape(message: &str, document: bool) -> Option<(String, Option<String>)> {
    if message == "expected mapping start" && document {
        let text = "a manifest document must be a mapping of fields".to_string();
        let hint = "start each document with `kind: agent`, `kind: channel` or `kind: user`";
        return Some((text, Some(hint.to_string())));
    }
    if message == "expected mapping start" {
        let hint = "write `key: value` lines below it, or `{key: value}`";
        return Some(("expected a mapping".to_string(), Some(hint.to_string())));
    }
    if message == "expected sequence start" {
        let hint = "write `- item` lines below it, or `[a, b]`; an empty list is `[]`";
        return Some(("expected a list".to_string(), Some(hint.to_string())));
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        let hint = "a key may appear once per mapping; keep one of the two".to_string();
        return Some((format!("duplicate key `{key}`"), Some(hint)));
    }
    if message == "data did not match any variant of untagged enum RoleDoc" {
        let shape = "`owner`, `admin` or `{role: admin, agent: <name>}`";
        let text = format!("a role is {shape}");
        let hint = format!("write each entry as {shape} (keys: `role`, `agent`)");
        return Some((text, Some(hint)));
    }
    if message == "data did not match any variant of untagged enum SkillsDoc" {
        let text = "`skills` must be `all` or a list of skill names".to_string();
        let hint = "write `skills: all` or `skills: [name, other]`".to_string();
        return Some((text, Some(hint)));
    }
    if message.starts_with("cannot deserialize null into") {
        let hint = "write a value after the `:` (quote it, `\"~\"` or `\"\"`, to mean that text)";
        let text = "expected a value, found an empty one (null)".to_string();
        return Some((text, Some(hint.to_string())));
    }
    let expected = match message {
        "invalid u8" | "invalid u16" | "invalid u32" | "invalid u64" => "a whole number, 0 or more",
        "invalid i8" | "invalid i16" | "invalid i32" | "invalid i64" => "a whole number",
        "invalid bool" | "invalid boolean" => "`true` or `false`",
        _ => return None,
    };
    Some((format!("expected {expected}"), None))
}

/// Parser budget breaches in words, with the limit that was hit.
fn explain_limit(message: String) -> (String, Option<String>) {
    let why = "manifests are small: the parser stops inputs that expand or nest without bound";
    if message.starts_with("alias replay limit exceeded") {
        let text = format!(
            "aliases expand to more than {MAX_REPLAYED_EVENTS} YAML events (a \"billion laughs\" input?)"
        );
        (
            text,
            Some(format!(
                "{why}; write the values out instead of nesting aliases"
            )),
        )
    } else if message.starts_with("budget breached: Depth") {
        let text = format!("mappings and lists nest deeper than {MAX_DEPTH} levels");
        (text, Some(why.to_string()))
    } else if let Some(rest) = message.strip_prefix("budget breached: ") {
        (
            format!("the document exceeds a parser limit ({rest})"),
            Some(why.to_string()),
        )
    } else {
        (message, None)
    }
}

/// The key named by serde's "unknown field `x`" message.
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.split_once("unknown field `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

/// The keys listed after "expected one of" / "expected" in the unknown-field message
/// (serde-saphyr lists them bare, serde with backticks).
fn expected_keys(message: &str) -> Vec<String> {
    let Some((_, rest)) = message.split_once(", expected ") else {
        return Vec::new();
    };
    let rest = rest.strip_prefix("one of ").unwrap_or(rest);
    rest.split(", ")
        .map(|key| key.trim().trim_matches('`').to_string())
        .filter(|key| !key.is_empty() && !key.contains(' '))
        .collect()
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use proptest::prelude::*;

    use super::*;
    use crate::manifest::{load, load_str, render};

    fn errors(yaml: &str) -> String {
        match load_str("m.yaml", yaml) {
            Ok(manifests) => format!("ok: {} resources", manifests.state.len()),
            Err(diagnostics) => render(&diagnostics),
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
            "kind: user\nid: cli:x\nroles: [{role: admin, agnt: a}]\n---\nkind: agent\nname: b\nskills: {x: 1}\n",
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
        let fits: String = yaml.lines().take(3 * MAX_DOCUMENTS).map(|line| format!("{line}\n")).collect();
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
        let text = render(&load(dir.path()).unwrap_err())
            .replace(&dir.path().display().to_string(), "DIR");
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
