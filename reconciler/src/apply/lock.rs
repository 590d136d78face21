//! The apply lock: `<data>/apply.lock`, held for the whole apply so two applies never
//! interleave. A refused apply names the holder (pid and start time); the OS releases the lock
//! when the holder exits, even on a crash (see [`crate::lockfile`]).

use std::path::Path;

use super::ApplyError;
use crate::lockfile::{self, LockError, LockFile};

/// Held while an apply writes; dropping it releases the lock.
#[derive(Debug)]
pub struct ApplyLock {
    _file: LockFile,
}

/// Takes the lock or says who holds it.
pub fn acquire(path: &Path) -> Result<ApplyLock, ApplyError> {
    match lockfile::acquire(path) {
        Ok(file) => Ok(ApplyLock { _file: file }),
        Err(LockError::Held { holder, .. }) => Err(ApplyError::Locked {
            pid: holder.pid,
            since: holder.since,
        }),
        Err(LockError::Io { path, source }) => Err(ApplyError::Lock { path, source }),
    }
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
