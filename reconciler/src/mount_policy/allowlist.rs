//! The mount allowlist: where it lives, its two formats (ours in YAML, v2's JSON), and the
//! checks that keep it out of every agent's reach (not in the data dir, not under an allowed
//! root, not writable by others). Reading it is the only IO; a missing or refused file means
//! no additional mounts at all.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Host;
use super::rules::{self, Pattern};

/// Our allowlist file, in the config dir (`$XDG_CONFIG_HOME/nanoclaw`, else `~/.config/nanoclaw`).
pub const YAML_FILE: &str = "mount-allowlist.yaml";
/// NanoClaw v2's allowlist file, read too (docs/manifests.md#additional-mounts).
pub const JSON_FILE: &str = "mount-allowlist.json";

/// The example shown whenever there is no allowlist.
pub const EXAMPLE: &str = "allowed_roots:\n  - path: ~/projects\n    allow_read_write: false";

/// The merged content of the allowlist file(s).
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    /// The real paths of the files read.
    pub files: Vec<PathBuf>,
    pub roots: Vec<Root>,
    /// Extra credential patterns, on top of the fixed ones.
    pub blocked: Vec<Pattern>,
    /// v2's `nonMainReadOnly`: nanoclaw has no main agent, so every mount is read-only.
    pub read_only: bool,
}

/// One allowed root.
#[derive(Clone, Debug)]
pub struct Root {
    /// As written in the file.
    pub written: String,
    /// Its real path; `None` when it does not exist (then it allows nothing).
    pub path: Option<PathBuf>,
    pub read_write: bool,
    /// What it is for, as the file says.
    pub description: Option<String>,
}

/// Why there is no usable allowlist. Every additional mount is refused with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("there is no mount allowlist{}", expected_text(.expected))]
    Missing { expected: Option<PathBuf> },
    #[error("the mount allowlist `{}` is refused: {why}", path.display())]
    Unsafe {
        path: PathBuf,
        why: String,
        fix: String,
    },
    #[error("the mount allowlist `{}` is invalid: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("the mount allowlist `{}` cannot be read: {message}", path.display())]
    Unreadable { path: PathBuf, message: String },
}

fn expected_text(expected: &Option<PathBuf>) -> String {
    match expected {
        Some(path) => format!(" at `{}`", path.display()),
        None => " (neither XDG_CONFIG_HOME nor HOME is set)".to_string(),
    }
}

impl AllowlistError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            AllowlistError::Missing {
                expected: Some(path),
            } => format!(
                "additional mounts need an allowlist outside the manifests; create `{}` holding, for example:\n{EXAMPLE}",
                path.display()
            ),
            AllowlistError::Missing { expected: None } => {
                format!("set HOME (or XDG_CONFIG_HOME) and create `nanoclaw/{YAML_FILE}` there")
            }
            AllowlistError::Unsafe { fix, .. } => fix.clone(),
            AllowlistError::Invalid { .. } => format!(
                "the file holds `allowed_roots` (each `path`, `allow_read_write`, `description`), `blocked_patterns` and `non_main_read_only`; for example:\n{EXAMPLE}"
            ),
            AllowlistError::Unreadable { path, .. } => {
                format!("make `{}` readable by this user", path.display())
            }
        }
    }
}

/// The file's shape. Keys in snake_case (ours) or camelCase (v2's JSON) are both accepted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistFile {
    #[serde(default, alias = "allowedRoots")]
    allowed_roots: Vec<RootEntry>,
    #[serde(default, alias = "blockedPatterns")]
    blocked_patterns: Vec<String>,
    #[serde(default, alias = "nonMainReadOnly")]
    non_main_read_only: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RootEntry {
    path: String,
    #[serde(default, alias = "allowReadWrite")]
    allow_read_write: bool,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

/// Reads the allowlist of `host` (both files, merged when both exist).
pub fn read(host: &Host) -> Result<Allowlist, AllowlistError> {
    let Some(dir) = &host.config_dir else {
        return Err(AllowlistError::Missing { expected: None });
    };
    let mut allowlist = Allowlist::default();
    for (name, format) in [(YAML_FILE, Format::Yaml), (JSON_FILE, Format::Json)] {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(unreadable(&path, &err)),
        }
        let real = std::fs::canonicalize(&path).map_err(|err| unreadable(&path, &err))?;
        guard_ownership(&real, host.uid)?;
        let text = std::fs::read_to_string(&real).map_err(|err| unreadable(&path, &err))?;
        let file = parse(&text, format).map_err(|message| AllowlistError::Invalid {
            path: path.clone(),
            message,
        })?;
        allowlist.merge(file, format, host, &path)?;
        allowlist.files.push(real);
    }
    if allowlist.files.is_empty() {
        return Err(AllowlistError::Missing {
            expected: Some(dir.join(YAML_FILE)),
        });
    }
    guard_location(&allowlist, host)?;
    Ok(allowlist)
}

fn unreadable(path: &Path, err: &std::io::Error) -> AllowlistError {
    AllowlistError::Unreadable {
        path: path.to_path_buf(),
        message: err.to_string(),
    }
}

fn parse(text: &str, format: Format) -> Result<AllowlistFile, String> {
    if text.trim().is_empty() {
        return Ok(AllowlistFile::default());
    }
    match format {
        Format::Yaml => serde_saphyr::from_str(text).map_err(|err| {
            // The first line holds `line N column M: what`; the rest is a source snippet.
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_string()
        }),
        Format::Json => serde_json::from_str(text).map_err(|err| err.to_string()),
    }
}

impl Allowlist {
    fn merge(
        &mut self,
        file: AllowlistFile,
        format: Format,
        host: &Host,
        path: &Path,
    ) -> Result<(), AllowlistError> {
        let invalid = |message: String| AllowlistError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        for entry in file.allowed_roots {
            let written = entry.path.trim().to_string();
            let expanded = expand_root(&written, host.home.as_deref()).map_err(invalid)?;
            self.roots.push(Root {
                path: std::fs::canonicalize(&expanded).ok(),
                written,
                read_write: entry.allow_read_write,
                description: entry.description,
            });
        }
        for text in file.blocked_patterns {
            if text.trim_matches(['*', '/']).is_empty() {
                return Err(invalid(format!(
                    "blocked pattern `{text}` would block every path"
                )));
            }
            self.blocked.push(match format {
                Format::Yaml => Pattern::new(&text),
                Format::Json => Pattern::containing(&text),
            });
        }
        self.read_only |= file.non_main_read_only;
        Ok(())
    }

    /// The root `real` lies under (the deepest one when several do).
    pub fn root_of(&self, real: &Path) -> Option<&Root> {
        self.roots
            .iter()
            .filter(|root| {
                root.path
                    .as_deref()
                    .is_some_and(|path| real.starts_with(path))
            })
            .max_by_key(|root| {
                root.path
                    .as_ref()
                    .map_or(0, |path| path.components().count())
            })
    }

    /// The file named in messages (the first one read).
    pub fn file(&self) -> &Path {
        self.files
            .first()
            .map_or(Path::new(YAML_FILE), PathBuf::as_path)
    }
}

/// A root's path: absolute or `~/…`, without `..`.
fn expand_root(written: &str, home: Option<&Path>) -> Result<PathBuf, String> {
    if written.split('/').any(|part| part == "..") {
        return Err(format!("allowed root `{written}` contains `..`"));
    }
    if written == "~" || written.starts_with("~/") {
        let home =
            home.ok_or_else(|| format!("allowed root `{written}` uses `~` but HOME is not set"))?;
        return Ok(home.join(written.trim_start_matches('~').trim_start_matches('/')));
    }
    if !written.starts_with('/') {
        return Err(format!(
            "allowed root `{written}` must be absolute or start with `~/`"
        ));
    }
    Ok(PathBuf::from(rules::lexical(written)))
}

/// Only its owner (you or root) may change the allowlist: the file and its folder are not
/// writable by group or others and belong to this user or root.
fn guard_ownership(real: &Path, uid: u32) -> Result<(), AllowlistError> {
    let folder = real.parent().unwrap_or(real);
    for (what, path) in [("the file", real), ("its folder", folder)] {
        let meta = std::fs::metadata(path).map_err(|err| unreadable(path, &err))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(AllowlistError::Unsafe {
                path: real.to_path_buf(),
                why: format!(
                    "{what} `{}` is writable by group or others (mode {mode:o})",
                    path.display()
                ),
                fix: format!("run `chmod go-w {}`", path.display()),
            });
        }
        if meta.uid() != uid && meta.uid() != 0 {
            return Err(AllowlistError::Unsafe {
                path: real.to_path_buf(),
                why: format!(
                    "{what} `{}` belongs to uid {}, not to you (uid {uid}) or root",
                    path.display(),
                    meta.uid()
                ),
                fix: format!("run `chown {uid} {}` as root", path.display()),
            });
        }
    }
    Ok(())
}

/// The allowlist must not be reachable through a mount: not inside the data dir (every agent's
/// sessions) and not under an allowed root.
fn guard_location(allowlist: &Allowlist, host: &Host) -> Result<(), AllowlistError> {
    for file in &allowlist.files {
        if file.starts_with(&host.data_dir) {
            return Err(AllowlistError::Unsafe {
                path: file.clone(),
                why: format!(
                    "it is inside nanoclaw's data directory `{}`",
                    host.data_dir.display()
                ),
                fix: format!(
                    "keep it in `~/.config/nanoclaw/` (or `$XDG_CONFIG_HOME/nanoclaw/`), outside `{}`",
                    host.data_dir.display()
                ),
            });
        }
        let inside = allowlist.roots.iter().find(|root| {
            root.path
                .as_deref()
                .is_some_and(|path| file.starts_with(path))
        });
        if let Some(root) = inside {
            return Err(AllowlistError::Unsafe {
                path: file.clone(),
                why: format!(
                    "it is under the allowed root `{}`, so a mount could expose or rewrite it",
                    root.written
                ),
                fix:
                    "allow narrower roots (for example `~/projects`) that do not hold the allowlist"
                        .to_string(),
            });
        }
    }
    Ok(())
}
