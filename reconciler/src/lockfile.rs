//! Lock files that name their holder: an OS file lock (std's `File::try_lock`, an `flock`) on a
//! file whose text says which process holds it and since when.
//!
//! The kernel releases the lock when the holder exits, even on SIGKILL, so a leftover file never
//! blocks anyone: its text only serves the refusal message. The file is created owner-only
//! (0600). Used by the apply lock (`apply.lock`) and the daemon lock (`run.lock`); this module
//! knows nothing about either.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held while the lock is; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
}

/// Who holds a lock, as its file says (`?` for what it does not say).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: String,
    /// When the holder took the lock (ISO-8601 UTC).
    pub since: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("`{path}` is locked by pid {}, since {}", holder.pid, holder.since)]
    Held { path: PathBuf, holder: Holder },
    #[error("cannot use the lock file `{path}`")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the lock without waiting, or says who holds it. On success the file names this
/// process and the current time.
pub fn acquire(path: &Path) -> Result<LockFile, LockError> {
    let io = |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(LockError::Held {
                path: path.to_path_buf(),
                holder: holder(&text),
            });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    let since = crate::apply::now();
    writeln!(file, "pid {}\nsince {since}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(LockFile { _file: file })
}

/// Who holds the lock at `path` now, without taking it or writing anything: `None` when the
/// file is absent or nobody holds it (a shared lock is taken and released at once).
pub fn holder_of(path: &Path) -> Result<Option<Holder>, LockError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LockError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Ok(Some(holder(&text)))
        }
        Err(TryLockError::Error(source)) => Err(LockError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses `pid N` / `since T` lines; unknown parts become `?`.
fn holder(text: &str) -> Holder {
    let mut holder = Holder {
        pid: "?".to_string(),
        since: "?".to_string(),
    };
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("pid ") {
            holder.pid = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("since ") {
            holder.since = value.trim().to_string();
        }
    }
    holder
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn holder_of_names_the_holder_without_taking_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("some.lock");
        assert_eq!(holder_of(&path).unwrap(), None, "absent file: nobody");
        let lock = acquire(&path).unwrap();
        let held = holder_of(&path).unwrap().expect("held");
        assert_eq!(held.pid, std::process::id().to_string());
        drop(lock);
        assert_eq!(holder_of(&path).unwrap(), None, "released: nobody");
        acquire(&path).expect("probing never keeps the lock");
    }

    #[test]
    fn a_second_taker_is_refused_with_the_first_ones_pid_until_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("some.lock");
        let first = acquire(&path).unwrap();
        let Err(LockError::Held { holder, .. }) = acquire(&path) else {
            panic!("a held lock must refuse");
        };
        assert_eq!(holder.pid, std::process::id().to_string());
        assert!(holder.since.ends_with('Z'), "{holder:?}");
        drop(first);
        acquire(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_unreadable_holder_is_named_with_question_marks() {
        assert_eq!(
            holder("garbage"),
            Holder {
                pid: "?".into(),
                since: "?".into()
            }
        );
    }
}
