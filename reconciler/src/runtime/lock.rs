//! The daemon lock: one `nanoclaw run` per data dir.
//!
//! `run` takes `<data>/run.lock` (an OS file lock naming the holder, see [`crate::lockfile`])
//! before it applies, removes leftover containers or binds the socket, and holds it until it
//! exits; the kernel releases it if the process dies, even on SIGKILL. A second `run` on the
//! same data dir refuses at once and names the holder. Holding the lock is what makes startup
//! cleanup safe: every container labelled with this install and any socket file left in the
//! data dir belong to a daemon that is gone.

use std::path::PathBuf;

use crate::lockfile::{self, Holder, LockError, LockFile};
use crate::paths::Paths;

/// Proof that this process is the data dir's one daemon; held for the process's life.
#[derive(Debug)]
pub struct DaemonLock {
    _file: LockFile,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonLockError {
    #[error(
        "another `nanoclaw run` is using the data dir `{data}` (pid {}, started {})\n\nhint: stop \
         it first (`kill {}`), or give this one its own data dir with `--data DIR`",
        holder.pid, holder.since, holder.pid
    )]
    Held { data: PathBuf, holder: Holder },
    #[error(transparent)]
    Lock(LockError),
}

/// Takes the daemon lock of `paths`' data dir (which must exist) or says who holds it.
pub fn acquire(paths: &Paths) -> Result<DaemonLock, DaemonLockError> {
    match lockfile::acquire(&paths.run_lock()) {
        Ok(file) => Ok(DaemonLock { _file: file }),
        Err(LockError::Held { holder, .. }) => Err(DaemonLockError::Held {
            data: paths.data.clone(),
            holder,
        }),
        Err(err) => Err(DaemonLockError::Lock(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_7_a_second_daemon_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let first = acquire(&paths).unwrap();
        let text = acquire(&paths).unwrap_err().to_string();
        let pid = std::process::id();
        let expected = regex::Regex::new(&format!(
            "^another `nanoclaw run` is using the data dir `[^`]+` \\(pid {pid}, started \
             [0-9T:-]+Z\\)\n\nhint: stop it first \\(`kill {pid}`\\), or give this one its own \
             data dir with `--data DIR`$"
        ))
        .unwrap();
        assert!(expected.is_match(&text), "{text}");
        drop(first);
        acquire(&paths).unwrap();
    }
}
