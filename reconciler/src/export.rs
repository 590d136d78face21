//! Export: the DB's configuration (every config row, managed or made at runtime) written back
//! as manifests, one file per kind group: `agents.yaml` (agents and their destinations),
//! `channels.yaml` (channels and their wirings), `users.yaml` (users, roles, memberships).
//!
//! The YAML itself comes from `manifest::to_yaml` (the inverse of loading); this module only
//! reads the DB, splits the documents into files and refuses to overwrite a non-empty
//! directory unless forced. Exporting then planning the exported set shows no changes.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::db::config::{self, ReadError};
use crate::manifest::limits::{MAX_DOCUMENTS, MAX_FILE_BYTES};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("`{path}` is not empty; pass `--force` to overwrite its files")]
    NotEmpty { path: PathBuf },
    #[error("writing `{path}`")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// The whole configuration in the DB as a [`State`].
pub fn read(conn: &Connection) -> Result<State, ExportError> {
    Ok(config::read(conn)?.state)
}

/// File name → manifest text, in the order written. Kinds with no documents get no file; a
/// kind with more documents or bytes than one file may hold (`manifest::limits`) continues
/// in `agents-2.yaml`, `agents-3.yaml`, …, so what is exported always loads back.
pub fn files(state: &State) -> Vec<(String, String)> {
    let yaml = crate::manifest::to_yaml(state);
    let mut by_kind: [Vec<String>; 3] = Default::default();
    for document in documents(&yaml) {
        let index = match kind_of(&document) {
            Some("channel") => 1,
            Some("user") => 2,
            _ => 0,
        };
        by_kind[index].push(document);
    }
    let mut out = Vec::new();
    for (stem, documents) in ["agents", "channels", "users"].iter().zip(by_kind) {
        let mut chunks: Vec<(usize, String)> = Vec::new();
        for document in documents {
            let fits = chunks.last().is_some_and(|(n_docs, text)| {
                *n_docs < MAX_DOCUMENTS
                    && (text.len() + document.len() + 4) as u64 <= MAX_FILE_BYTES
            });
            if !fits {
                chunks.push((0, String::new()));
            }
            let (n_docs, text) = chunks.last_mut().expect("a chunk was just pushed");
            if *n_docs > 0 {
                text.push_str("---\n");
            }
            text.push_str(&document);
            *n_docs += 1;
        }
        for (index, (_, text)) in chunks.into_iter().enumerate() {
            let name = match index {
                0 => format!("{stem}.yaml"),
                _ => format!("{stem}-{}.yaml", index + 1),
            };
            out.push((name, text));
        }
    }
    out
}

/// Writes [`files`] into `dir` (created if missing). Refuses a non-empty `dir` unless `force`.
pub fn write(dir: &Path, state: &State, force: bool) -> Result<Vec<PathBuf>, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Write { path, source }
    };
    let is_empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if !is_empty && !force {
        return Err(ExportError::NotEmpty {
            path: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, text) in files(state) {
        let path = dir.join(&name);
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// Splits multi-document YAML at `---` lines (a block scalar's lines are indented, so a bare
/// `---` is always a separator).
fn documents(yaml: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in yaml.lines() {
        if line == "---" {
            documents.push(String::new());
            continue;
        }
        if let Some(current) = documents.last_mut() {
            current.push_str(line);
            current.push('\n');
        }
    }
    documents.retain(|document| !document.trim().is_empty());
    documents
}

/// The value of a document's top-level `kind:` key.
fn kind_of(document: &str) -> Option<&str> {
    document
        .lines()
        .find_map(|line| line.strip_prefix("kind:"))
        .map(|kind| kind.trim().trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixture;

    #[test]
    fn exported_files_load_back_as_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let state = fixture::state();
        let written = write(&out, &state, false).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["agents.yaml", "channels.yaml", "users.yaml"]);
        let loaded = crate::manifest::load(&out)
            .unwrap_or_else(|diagnostics| panic!("{}", crate::manifest::render(&diagnostics)));
        assert_eq!(loaded.state, state);
        let err = write(&out, &state, false).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is not empty; pass `--force` to overwrite its files")
        );
        write(&out, &state, true).unwrap();
    }

    #[test]
    fn more_documents_than_one_file_may_hold_continue_in_numbered_files() {
        let mut state = State::default();
        for index in 0..=MAX_DOCUMENTS {
            state.insert(crate::state::Resource::User(crate::state::User {
                id: format!("cli:{index}"),
                display_name: None,
            }));
        }
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), &state, false).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["users.yaml", "users-2.yaml"]);
        let loaded = crate::manifest::load(dir.path())
            .unwrap_or_else(|diagnostics| panic!("{}", crate::manifest::render(&diagnostics)));
        assert_eq!(loaded.state, state);
    }
}
