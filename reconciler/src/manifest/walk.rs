//! Walking the manifest folder: which files are read, the symlink policy, the walk's limits
//! and bounded reads.
//!
//! Only regular files are ever opened. A FIFO, socket or device with a manifest name is
//! refused by name without being opened (opening a FIFO blocks; reading a device never ends).
//! Symlinks are followed only to regular files and folders inside the manifest folder; one
//! pointing elsewhere is refused with its target named. Depth, entries, files and bytes are
//! capped by `limits`. This module must not parse YAML (that is `load`).

use std::collections::BTreeSet;
use std::fs::{File, FileType};
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use super::diagnostic::Diagnostic;
use super::limits::{
    MAX_ENTRIES, MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES, MAX_WALK_DEPTH, Unit, show,
};

/// One file read from disk.
#[derive(Debug)]
pub struct SourceFile {
    /// As given: the directory joined with the path below it.
    pub path: PathBuf,
    /// Relative to the manifest directory, with `/` separators (digest input).
    pub relative: String,
    pub bytes: Vec<u8>,
}

/// The walk's limits (the documented ones, or small ones in tests).
#[derive(Clone, Copy, Debug)]
struct Bounds {
    depth: usize,
    entries: usize,
    files: usize,
    file_bytes: u64,
    total_bytes: u64,
}

const BOUNDS: Bounds = Bounds {
    depth: MAX_WALK_DEPTH,
    entries: MAX_ENTRIES,
    files: MAX_FILES,
    file_bytes: MAX_FILE_BYTES,
    total_bytes: MAX_TOTAL_BYTES,
};

/// Lists the manifest files under `dir` (sorted), reading their bytes.
pub fn read_tree(dir: &Path) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    read_tree_within(dir, BOUNDS)
}

fn read_tree_within(dir: &Path, bounds: Bounds) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let root = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => std::fs::canonicalize(dir),
        Ok(_) => {
            return Err(vec![Diagnostic::new(
                dir,
                0,
                0,
                "manifest path is not a directory",
            )]);
        }
        Err(err) => Err(err),
    };
    let root = match root {
        Ok(root) => root,
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
    };
    let mut walk = Walk {
        bounds,
        visited: BTreeSet::from([root.clone()]),
        root: root.clone(),
        files: Vec::new(),
        diagnostics: Vec::new(),
        n_entries: 0,
        total_bytes: 0,
        stopped: false,
    };
    walk.dir(dir, &root, "", 0);
    let Walk {
        mut files,
        diagnostics,
        ..
    } = walk;
    files.sort_by(|a, b| a.relative.cmp(&b.relative));
    if diagnostics.is_empty() {
        Ok(files)
    } else {
        Err(diagnostics)
    }
}

/// `*.yaml`/`*.yml`, and not an editor's temp, swap, lock or backup file.
pub fn is_manifest_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let is_yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
    let is_temp = name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".tmp")
        || name.ends_with(".bak")
        || name.ends_with(".swp");
    is_yaml && !is_temp
}

/// The walk's state: what was read, what went wrong, and the running totals the limits cap.
struct Walk {
    bounds: Bounds,
    /// The manifest folder, canonical: symlinks must resolve below it.
    root: PathBuf,
    /// Canonical folders already walked (a symlink loop leads back to one).
    visited: BTreeSet<PathBuf>,
    files: Vec<SourceFile>,
    diagnostics: Vec<Diagnostic>,
    n_entries: usize,
    total_bytes: u64,
    /// A limit of the whole walk was hit: it was reported once and nothing more is read.
    stopped: bool,
}

/// What a directory entry is, after following a symlink that stays inside the root.
enum Entry {
    Folder { canonical: PathBuf },
    File { open_at: PathBuf },
    Other(&'static str),
    Skip,
}

impl Walk {
    /// Walks `dir` (as given; `canonical` is where it really is), `depth` levels below the root.
    fn dir(&mut self, dir: &Path, canonical: &Path, prefix: &str, depth: usize) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                self.error(dir, format!("cannot read: {err}"), None);
                return;
            }
        };
        let mut names: Vec<(String, PathBuf, Option<FileType>)> = Vec::new();
        for entry in entries {
            self.n_entries += 1;
            if self.n_entries > self.bounds.entries {
                let message = format!(
                    "the manifest folder holds more than {} files and folders",
                    show(self.bounds.entries, Unit::Count)
                );
                self.stop(dir, message, "keep only manifests in the manifest folder");
                return;
            }
            let Ok(entry) = entry else { continue };
            names.push((
                entry.file_name().to_string_lossy().into_owned(),
                entry.path(),
                entry.file_type().ok(),
            ));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, path, file_type) in names {
            if self.stopped {
                return;
            }
            let relative = format!("{prefix}{name}");
            match self.classify(&name, &path, canonical, file_type) {
                Entry::Skip => {}
                Entry::Folder { canonical } => {
                    if !self.visited.insert(canonical.clone()) {
                        continue;
                    }
                    if depth + 1 > self.bounds.depth {
                        let message = format!(
                            "folders nest deeper than {} levels below the manifest folder",
                            self.bounds.depth
                        );
                        let hint = "keep manifests in a shallow tree; this folder is not read";
                        self.error(&path, message, Some(hint));
                        continue;
                    }
                    self.dir(&path, &canonical, &format!("{relative}/"), depth + 1);
                }
                Entry::File { open_at } => self.file(path, &open_at, relative),
                Entry::Other(what) => {
                    let message = format!("`{name}` is {what}, not a regular file");
                    let hint = "only regular files are read; remove it or rename it so it does not end in `.yaml`";
                    self.error(&path, message, Some(hint));
                }
            }
        }
    }

    /// Decides what an entry is without opening it; symlinks are resolved and checked.
    fn classify(
        &mut self,
        name: &str,
        path: &Path,
        parent: &Path,
        file_type: Option<FileType>,
    ) -> Entry {
        let hidden = name.starts_with('.');
        let is_manifest = is_manifest_file(name);
        let Some(file_type) = file_type else {
            return Entry::Skip;
        };
        if !file_type.is_symlink() {
            return match kind_of(file_type) {
                Kind::Folder if !hidden => Entry::Folder {
                    canonical: parent.join(name),
                },
                Kind::File if is_manifest => Entry::File {
                    open_at: path.to_path_buf(),
                },
                Kind::Other(what) if is_manifest => Entry::Other(what),
                _ => Entry::Skip,
            };
        }
        if hidden || !(is_manifest || path.is_dir()) {
            // Not something we would read, wherever it points: never resolved further.
            return Entry::Skip;
        }
        let target = match std::fs::canonicalize(path) {
            Ok(target) => target,
            Err(err) => {
                let message = format!("symlink `{name}` cannot be followed: {err}");
                self.error(path, message, Some("remove the broken symlink"));
                return Entry::Skip;
            }
        };
        if !target.starts_with(&self.root) {
            let message = format!(
                "symlink `{name}` points outside the manifest folder, to `{}`",
                target.display()
            );
            let hint = "symlinks are followed only to files and folders inside the manifest folder; copy the file in instead";
            self.error(path, message, Some(hint));
            return Entry::Skip;
        }
        // `metadata` stats the target; it never opens it.
        match std::fs::metadata(&target).map(|meta| kind_of(meta.file_type())) {
            Ok(Kind::Folder) => Entry::Folder { canonical: target },
            Ok(Kind::File) if is_manifest => Entry::File { open_at: target },
            Ok(Kind::Other(what)) if is_manifest => Entry::Other(what),
            Ok(_) => Entry::Skip,
            Err(err) => {
                self.error(path, format!("cannot read: {err}"), None);
                Entry::Skip
            }
        }
    }

    fn file(&mut self, path: PathBuf, open_at: &Path, relative: String) {
        if self.files.len() >= self.bounds.files {
            let message = format!(
                "the manifest folder holds more than {} manifest files",
                show(self.bounds.files, Unit::Count)
            );
            self.stop(
                &path,
                message,
                "put several documents in one file, separated by `---`",
            );
            return;
        }
        let budget = self.bounds.total_bytes - self.total_bytes;
        match read_bounded(open_at, self.bounds.file_bytes, budget) {
            Ok(bytes) => {
                self.total_bytes += bytes.len() as u64;
                self.files.push(SourceFile {
                    path,
                    relative,
                    bytes,
                });
            }
            Err(ReadError::Total) => {
                let message = format!(
                    "the manifest files are larger than {} together",
                    show(self.bounds.total_bytes as usize, Unit::Bytes)
                );
                self.stop(
                    &path,
                    message,
                    "manifests are small: remove generated or data files from the manifest folder",
                );
            }
            Err(ReadError::File) => {
                let message = format!(
                    "file is larger than {}",
                    show(self.bounds.file_bytes as usize, Unit::Bytes)
                );
                self.error(&path, message, Some("split it into several files"));
            }
            Err(ReadError::NotRegular(what)) => {
                let message = format!("`{relative}` is {what}, not a regular file");
                self.error(&path, message, None);
            }
            Err(ReadError::Io(err)) => self.error(&path, format!("cannot read: {err}"), None),
        }
    }

    fn error(&mut self, path: &Path, message: String, hint: Option<&str>) {
        self.diagnostics
            .push(Diagnostic::new(path, 0, 0, message).hint_opt(hint.map(str::to_string)));
    }

    /// Reports a limit of the whole walk once and stops reading.
    fn stop(&mut self, path: &Path, message: String, hint: &str) {
        self.error(path, message, Some(hint));
        self.stopped = true;
    }
}

enum Kind {
    Folder,
    File,
    Other(&'static str),
}

fn kind_of(file_type: FileType) -> Kind {
    if file_type.is_dir() {
        Kind::Folder
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_fifo() {
        Kind::Other("a FIFO")
    } else if file_type.is_socket() {
        Kind::Other("a socket")
    } else if file_type.is_block_device() || file_type.is_char_device() {
        Kind::Other("a device")
    } else {
        Kind::Other("not a file or folder")
    }
}

enum ReadError {
    /// Larger than the per-file limit.
    File,
    /// Would take the load past the total limit.
    Total,
    NotRegular(&'static str),
    Io(std::io::Error),
}

/// Reads a regular file of at most `max` bytes (and at most `budget`). Opens without
/// following a symlink and without blocking, then checks the open file's type, so a file
/// swapped for a FIFO or a link after the walk looked at it is refused, not waited on.
fn read_bounded(path: &Path, max: u64, budget: u64) -> Result<Vec<u8>, ReadError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())
        .map_err(|err| ReadError::Io(err.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(ReadError::Io)?;
    match kind_of(meta.file_type()) {
        Kind::File => {}
        Kind::Folder => return Err(ReadError::NotRegular("a folder")),
        Kind::Other(what) => return Err(ReadError::NotRegular(what)),
    }
    let limit = max.min(budget);
    if meta.len() > max {
        return Err(ReadError::File);
    }
    if meta.len() > budget {
        return Err(ReadError::Total);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow while it is read: read one byte past the limit to notice.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::File);
    }
    if bytes.len() as u64 > budget {
        return Err(ReadError::Total);
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
