//! Reading manifests from disk: walking the tree, reading bytes, splitting YAML documents and
//! deserialising each into a [`Doc`] with spans.
//!
//! Owns every YAML-parser concern (budgets, duplicate keys, error → `Diagnostic` mapping) and
//! the file selection rules. It must not judge values (that is `validate`).

use std::cell::RefCell;
use std::collections::{BTreeSet, VecDeque};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use super::diagnostic::{Diagnostic, did_you_mean};
use super::model::{AGENT_KEYS, AgentDoc, CHANNEL_KEYS, ChannelDoc, Doc, Sp, USER_KEYS, UserDoc};

/// Files larger than this are rejected before parsing.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;
/// Most alias (`*name`) uses in one document.
pub const MAX_ALIASES: usize = 1_000;
/// Most events an alias expansion may replay in one file (stops "billion laughs").
pub const MAX_REPLAYED_EVENTS: usize = 10_000;

/// One file read from disk.
#[derive(Debug)]
pub struct SourceFile {
    /// As given: the directory joined with the path below it.
    pub path: PathBuf,
    /// Relative to the manifest directory, with `/` separators (digest input).
    pub relative: String,
    pub bytes: Vec<u8>,
}

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

/// Lists the manifest files under `dir` (sorted), reading their bytes.
pub fn read_tree(dir: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(vec![Diagnostic::new(
                dir,
                0,
                0,
                "manifest path is not a directory",
            )]);
        }
        Err(err) => {
            return Err(vec![
                Diagnostic::new(
                    dir,
                    0,
                    0,
                    format!("cannot read the manifest directory: {err}"),
                )
                .hint("pass the directory holding your manifests: `nanoclaw validate <DIR>`"),
            ]);
        }
    }
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    let mut visited = BTreeSet::new();
    walk(dir, "", &mut visited, &mut files, &mut diagnostics);
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    if diagnostics.is_empty() {
        Ok(files)
    } else {
        Err(diagnostics)
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    visited: &mut BTreeSet<PathBuf>,
    files: &mut Vec<SourceFile>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    // Symlinked folders are followed once: a loop leads back to a canonical dir already seen.
    match std::fs::canonicalize(dir) {
        Ok(canonical) => {
            if !visited.insert(canonical) {
                return;
            }
        }
        Err(err) => {
            diagnostics.push(Diagnostic::new(dir, 0, 0, format!("cannot read: {err}")));
            return;
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            diagnostics.push(Diagnostic::new(dir, 0, 0, format!("cannot read: {err}")));
            return;
        }
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            (
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
            )
        })
        .collect();
    names.sort();
    for (name, path) in names {
        let relative = format!("{prefix}{name}");
        if path.is_dir() {
            if !name.starts_with('.') {
                walk(&path, &format!("{relative}/"), visited, files, diagnostics);
            }
            continue;
        }
        if !is_manifest_file(&name) || !path.is_file() {
            continue;
        }
        match read_file(&path) {
            Ok(bytes) => files.push(SourceFile {
                path,
                relative,
                bytes,
            }),
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
}

/// `*.yaml`/`*.yml`, and not an editor's temp, swap, lock or backup file.
pub fn is_manifest_file(name: &str) -> bool {
    let is_yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let is_temp = name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".bak")
        || name.ends_with(".swp");
    is_yaml && !is_temp
}

fn read_file(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    let too_big = std::fs::metadata(path).map(|meta| meta.len() > MAX_FILE_BYTES);
    if let Ok(true) = too_big {
        return Err(Diagnostic::new(
            path,
            0,
            0,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    std::fs::read(path).map_err(|err| Diagnostic::new(path, 0, 0, format!("cannot read: {err}")))
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
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_documents = 1_000;
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
        serde_saphyr::read_with_options(&mut reader, options()).collect();
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
    let probe_kinds: Vec<Option<DocKind>> = kinds.iter().copied().collect();
    KINDS.with(|cell| *cell.borrow_mut() = kinds);

    // Pass 2 (strict): each document into its kind's struct, unknown keys rejected.
    let mut reader = Cursor::new(text.as_bytes());
    let strict: Vec<Result<Strict, serde_saphyr::Error>> =
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
            Ok(Strict(Some(doc))) => parsed.docs.push(ParsedDoc {
                file: file.to_path_buf(),
                line: line_of(probe),
                col: col_of(probe),
                doc,
            }),
            Ok(Strict(None)) => {}
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
    let mut diagnostic = Diagnostic::new(
        file,
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
        message.clone(),
    );
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

/// The key named by serde's "unknown field `x`" message.
fn unknown_key(message: &str) -> Option<String> {
    let rest = message.split_once("unknown field `")?.1;
    Some(rest.split_once('`')?.0.to_string())
}

/// The keys listed after "expected one of" / "expected" in serde's unknown-field message.
fn expected_keys(message: &str) -> Vec<String> {
    let Some((_, rest)) = message.split_once(", expected ") else {
        return Vec::new();
    };
    rest.split('`')
        .enumerate()
        .filter(|(index, _)| index % 2 == 1)
        .map(|(_, key)| key.to_string())
        .collect()
}
