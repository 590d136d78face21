//! Manifests: YAML files in a directory tree → a validated [`State`], or every problem at once.
//!
//! `walk` finds and reads the files (bounded), `load` parses their YAML (with `tree`, the
//! lenient pass that finds every unknown key), `model` is the YAML's shape, `validate` applies the rules and defaults, `limits` declares every size and count
//! limit, `diagnostic` formats problems, `schema` derives the JSON Schema and the docs table,
//! `export` writes a `State` back as manifests, `patch` edits an agent's document in
//! place (self-modification). Nothing here prints or touches the DB.

pub mod diagnostic;
pub mod export;
pub mod limits;
pub mod load;
pub mod model;
pub mod patch;
pub mod schema;
pub mod tree;
pub mod validate;
pub mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use self::diagnostic::{Diagnostic, Severity, render, summary};
pub use self::export::to_yaml;
pub use self::schema::json_schema;
use crate::mount_policy::Policy;
use crate::state::{Address, State};

/// The loaded, validated manifests.
#[derive(Clone, Debug)]
pub struct Manifests {
    pub state: State,
    /// sha256 (hex) over the sorted (relative path, bytes) of every loaded file.
    pub digest: String,
    /// Every file read, as given (the directory joined with the path below it).
    pub files: Vec<PathBuf>,
    /// Where each resource is declared (implied destinations point at their wiring).
    pub sources: BTreeMap<Address, Source>,
    /// Problems that do not stop anything (an agent wired to nothing, …), sorted by place.
    pub warnings: Vec<Diagnostic>,
}

/// A place in a manifest file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    /// As given, relative to the current directory when the directory was.
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
}

/// Loads and validates every manifest under `dir`. `Err` holds all diagnostics (warnings
/// too), sorted by file and position, when any is an error; nothing partial is returned.
pub fn load(dir: &Path) -> Result<Manifests, Vec<Diagnostic>> {
    load_with(dir, None)
}

/// [`load`], also checking every mount on this machine (resolved paths against the mount
/// allowlist, `mount_policy`): what `validate`, `plan`, `apply` and `run` use.
pub fn load_for_host(dir: &Path, policy: &Policy) -> Result<Manifests, Vec<Diagnostic>> {
    load_with(dir, Some(policy))
}

/// [`load_for_host`] as if `file` (one of the files under `dir`, as the loader names it in
/// [`Source::file`]) held `bytes`: self-modification validates the whole edited set before it
/// writes anything.
pub fn load_for_host_edited(
    dir: &Path,
    policy: &Policy,
    file: &Path,
    bytes: &[u8],
) -> Result<Manifests, Vec<Diagnostic>> {
    let mut files = walk::read_tree(dir)?;
    let Some(edited) = files.iter_mut().find(|source| source.path == file) else {
        return Err(vec![Diagnostic::new(
            file,
            0,
            0,
            "the edited file is no longer among the manifests",
        )]);
    };
    edited.bytes = bytes.to_vec();
    load_files(files, Some(policy))
}

/// [`load_for_host`] as if every `(file, bytes)` of `changed` were written first: a file the
/// loader reads (named as in [`Source::file`]) takes the new bytes, any other is a new file
/// below `dir`. `nanoclaw adopt` validates every file it edits or adds before it writes one.
pub fn load_for_host_changed(
    dir: &Path,
    policy: &Policy,
    changed: &[(PathBuf, Vec<u8>)],
) -> Result<Manifests, Vec<Diagnostic>> {
    let mut files = walk::read_tree(dir)?;
    for (path, bytes) in changed {
        match files.iter_mut().find(|source| source.path == *path) {
            Some(source) => source.bytes = bytes.clone(),
            None => {
                let relative = path.strip_prefix(dir).unwrap_or(path);
                files.push(load::SourceFile {
                    path: path.clone(),
                    relative: relative.to_string_lossy().replace('\\', "/"),
                    bytes: bytes.clone(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    load_files(files, Some(policy))
}

fn load_with(dir: &Path, policy: Option<&Policy>) -> Result<Manifests, Vec<Diagnostic>> {
    load_files(walk::read_tree(dir)?, policy)
}

/// Parses and validates manifest text as if it were one file named `name` (tests, export):
/// the same path as [`load`] from the parse on.
pub fn load_str(name: &str, text: &str) -> Result<Manifests, Vec<Diagnostic>> {
    let files = vec![load::SourceFile {
        path: PathBuf::from(name),
        relative: name.to_string(),
        bytes: text.as_bytes().to_vec(),
    }];
    load_files(files, None)
}

/// The one pipeline behind [`load`], [`load_for_host`] and [`load_str`]: parse, validate,
/// order the diagnostics, and return the state only when none is an error.
fn load_files(
    files: Vec<load::SourceFile>,
    policy: Option<&Policy>,
) -> Result<Manifests, Vec<Diagnostic>> {
    let digest = digest(&files);
    let mut diagnostics = Vec::new();
    let parsed = load::parse_files(&files, &mut diagnostics);
    // The bytes are parsed: only the paths are kept (the bytes are up to 32 MiB).
    let files: Vec<PathBuf> = files.into_iter().map(|file| file.path).collect();
    let validated = validate::validate_with(&parsed.docs, &parsed.broken, &mut diagnostics, policy);
    sort_and_dedup(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(Manifests {
        state: validated.state,
        digest,
        files,
        sources: validated.sources,
        warnings: diagnostics,
    })
}

/// Orders diagnostics by place, then message, then the rest of their fields, and drops exact
/// repeats (a total order, so no repeat survives apart from its twin).
fn sort_and_dedup(diagnostics: &mut Vec<Diagnostic>) {
    let key = |d: &Diagnostic| {
        let place = (d.file.clone(), d.line, d.col, d.message.clone());
        (
            place,
            d.severity,
            d.address.clone(),
            d.field.clone(),
            d.hint.clone(),
        )
    };
    diagnostics.sort_by_cached_key(key);
    diagnostics.dedup();
}

fn digest(files: &[load::SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.relative.as_bytes());
        hasher.update([0]);
        hasher.update((file.bytes.len() as u64).to_le_bytes());
        hasher.update(&file.bytes);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = include_str!("../../../docs/examples/family.yaml");

    #[test]
    fn issue_9_repeated_diagnostics_are_dropped_even_when_not_adjacent() {
        let first = Diagnostic::new(Path::new("m.yaml"), 3, 1, "bad").hint("one");
        let second = Diagnostic::new(Path::new("m.yaml"), 3, 1, "bad").hint("two");
        let mut diagnostics = vec![first.clone(), second.clone(), first.clone()];
        sort_and_dedup(&mut diagnostics);
        assert_eq!(diagnostics, vec![first, second]);
    }

    #[test]
    fn issue_9_load_and_load_str_give_the_same_diagnostics() {
        let text = "kind: agent\nname: Andy\nnmae: x\ncli_scope: everything\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{agent: nobody}, {agent: nobody}]\n";
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), text).unwrap();
        let from_dir = load(dir.path()).unwrap_err();
        let from_str = load_str(&dir.path().join("m.yaml").to_string_lossy(), text).unwrap_err();
        assert!(from_dir.len() > 3, "{}", render(&from_dir));
        assert_eq!(render(&from_dir), render(&from_str));
    }

    #[test]
    fn to_yaml_round_trips_the_family_example() {
        let first = load_str("family.yaml", FAMILY).unwrap();
        assert!(first.state.len() > 15);
        let yaml = to_yaml(&first.state);
        let second = load_str("export.yaml", &yaml)
            .unwrap_or_else(|diagnostics| panic!("{}\n{yaml}", render(&diagnostics)));
        assert_eq!(second.state, first.state, "{yaml}");
    }

    #[test]
    fn to_yaml_keeps_a_declared_destination_that_shadows_a_channel() {
        let yaml = "kind: agent\nname: a\ndestinations: [{name: fam, agent: a}]\n---\nkind: channel\nname: fam\nchannel_type: cli\nplatform_id: x\nwirings: [{agent: a}]\n";
        let first = load_str("m.yaml", yaml).unwrap();
        let second = load_str("e.yaml", &to_yaml(&first.state)).unwrap();
        assert_eq!(second.state, first.state);
    }

    #[test]
    fn the_bundled_default_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests");
        let manifests = load(&dir).unwrap_or_else(|diagnostics| panic!("{}", render(&diagnostics)));
        let addresses: Vec<String> = manifests
            .state
            .resources
            .keys()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            addresses,
            [
                "agent.assistant",
                "channel.cli",
                "wiring.cli/assistant",
                "destination.assistant/cli"
            ]
        );
    }
}
