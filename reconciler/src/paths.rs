//! Where everything lives inside the data directory, resolved once at startup.
//!
//! ```text
//! <data>/                               host-owned (0700)
//!   nanoclaw.db (+ -wal, -shm)          central DB
//!   apply.lock                          held while an apply writes (names the holder)
//!   cli.sock                            CLI chat channel (0600)
//!   groups/<agent>/                     AGENT-WRITABLE: /workspace/agent (rw): CLAUDE.local.md and
//!                                       the agent's own files
//!   sessions/<agent>/                   host-owned
//!     claude-local.seed                 the CLAUDE.local.md seed last written (re-seed rule)
//!     .claude-shared/                   AGENT-WRITABLE per-agent state (not mounted yet)
//!     <session>/                        host-owned: /workspace (READ-ONLY)
//!       inbound.db (+ -journal)         host writes, container reads
//!       container.json                  composed at every spawn
//!       CLAUDE.md, .claude-fragments/   composed at every spawn
//!       inbox/<msg>/…                   inbound attachments
//!       agent/, extra/<name>            empty mount points
//!       outbound/                       AGENT-WRITABLE: /workspace/outbound (rw)
//!         outbound.db (+ -journal)      container writes; the host only reads it
//!         .heartbeat                    container touches; host reads the mtime, deletes it
//!                                       before a spawn
//!         outbox/                       files the agent sends
//! ```
//!
//! Every agent-writable folder is a *leaf* whose parent the host owns, so a path down to it can
//! be trusted and only the entries inside it cannot (issue 7, `runtime::layout`). The host
//! writes into host-owned folders with unpredictable temp names and `renameat`
//! ([`crate::hostfs`]); into an agent-writable folder it only creates a missing file exclusively,
//! or renames a fresh temp file over `CLAUDE.local.md`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::env;

/// Resolved locations of one install (one data directory).
#[derive(Clone, Debug)]
pub struct Paths {
    pub data: PathBuf,
}

impl Paths {
    pub fn new(data: impl Into<PathBuf>) -> Paths {
        Paths { data: data.into() }
    }

    /// The data directory when neither `--data` nor `NANOCLAW_DATA_DIR` is given.
    pub fn default_data_dir() -> PathBuf {
        if let Some(state) = env::get(env::XDG_STATE_HOME) {
            return PathBuf::from(state).join("nanoclaw");
        }
        match env::get(env::HOME) {
            Some(home) => PathBuf::from(home).join(".local/state/nanoclaw"),
            None => PathBuf::from(".nanoclaw"),
        }
    }

    pub fn db(&self) -> PathBuf {
        self.data.join(crate::db::FILE_NAME)
    }

    pub fn apply_lock(&self) -> PathBuf {
        self.data.join("apply.lock")
    }

    pub fn cli_socket(&self) -> PathBuf {
        self.data.join("cli.sock")
    }

    pub fn groups(&self) -> PathBuf {
        self.data.join("groups")
    }

    pub fn group(&self, agent: &str) -> PathBuf {
        self.groups().join(agent)
    }

    pub fn sessions(&self) -> PathBuf {
        self.data.join("sessions")
    }

    /// `sessions/<agent>/`: host-owned, never mounted; holds the agent's sessions and state.
    pub fn agent_state(&self, agent: &str) -> PathBuf {
        self.sessions().join(agent)
    }

    pub fn claude_shared(&self, agent: &str) -> PathBuf {
        self.agent_state(agent).join(".claude-shared")
    }

    pub fn session(&self, agent: &str, session: &str) -> PathBuf {
        self.sessions().join(agent).join(session)
    }

    /// Creates the data directory (0700: it holds sockets and private chats).
    pub fn ensure(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.data)
    }

    /// Stable 8-hex-digit id of this install: SHA-256 of the canonical data directory.
    /// Namespaces container names, labels and image tags so installs never touch each other.
    pub fn slug(&self) -> String {
        slug_of(&self.data)
    }
}

/// The slug of a data directory (canonicalised when it exists).
pub fn slug_of(data: &Path) -> String {
    let canonical = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    digest
        .iter()
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_stable_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        assert_eq!(paths.slug().len(), 8);
        assert_eq!(paths.slug(), Paths::new(dir.path().join(".")).slug());
        let other = tempfile::tempdir().unwrap();
        assert_ne!(paths.slug(), Paths::new(other.path()).slug());
    }
}
