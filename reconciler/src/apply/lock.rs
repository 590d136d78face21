//! The apply lock: `<data>/apply.lock`, held with an OS file lock for the whole apply so two
//! applies never interleave. The file names its holder (pid and start time) so a refused apply
//! can say who holds it. The OS releases the lock when the holder exits, even on a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use super::ApplyError;

/// Held while an apply writes; dropping it releases the lock.
#[derive(Debug)]
pub struct ApplyLock {
    _file: File,
}

/// Takes the lock or says who holds it.
pub fn acquire(path: &Path) -> Result<ApplyLock, ApplyError> {
    let io = |source| ApplyError::Lock {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let (pid, since) = holder(&text);
            return Err(ApplyError::Locked { pid, since });
        }
        Err(TryLockError::Error(source)) => return Err(io(source)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    let since = super::now();
    writeln!(file, "pid {}\nsince {since}", std::process::id()).map_err(io)?;
    file.flush().map_err(io)?;
    Ok(ApplyLock { _file: file })
}

/// Parses `pid N` / `since T` lines; unknown parts become `?`.
fn holder(text: &str) -> (String, String) {
    let mut pid = "?".to_string();
    let mut since = "?".to_string();
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("pid ") {
            pid = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("since ") {
            since = value.trim().to_string();
        }
    }
    (pid, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apply.lock");
        let first = acquire(&path).unwrap();
        let err = acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "apply is locked by pid {} since ",
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
        acquire(&path).unwrap();
    }
}
