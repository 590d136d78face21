//! Where everything lives inside the data directory, resolved once at startup.
//!
//! ```text
//! <data>/                               host-owned (0700)
//!   nanoclaw.db (+ -wal, -shm)          central DB
//!   apply.lock                          held while an apply writes (names the holder)
//!   run.lock                            held by the one `nanoclaw run` of this data dir (names it)
//!   cli.sock                            CLI chat channel (0600)
//!   channels/telegram/offset.json       the next Telegram update to read (per bot)
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
//!
//! The data dir is created 0700 and its central DB and lock files 0600. An existing data dir
//! that another user could write (group/other write bits, or another owner) is refused: whoever
//! can write it can swap the DB, the socket or a session folder under the daemon.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
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

    /// Where the CLI channel saves the files agents send (`<data>/downloads/<message id>/`).
    pub fn downloads(&self) -> PathBuf {
        self.data.join("downloads")
    }

    pub fn apply_lock(&self) -> PathBuf {
        self.data.join("apply.lock")
    }

    /// Held by the running daemon (`runtime::lock`).
    pub fn run_lock(&self) -> PathBuf {
        self.data.join("run.lock")
    }

    pub fn cli_socket(&self) -> PathBuf {
        self.data.join("cli.sock")
    }

    /// `channels/<channel type>/`: a channel adapter's own state (Telegram's update offset).
    pub fn channel_state(&self, channel_type: &str) -> PathBuf {
        self.data.join("channels").join(channel_type)
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

    /// Creates the data directory (0700: it holds sockets and private chats), or checks that an
    /// existing one is a directory only its owner, this user, can write.
    pub fn ensure(&self) -> Result<(), DataDirError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = &self.data;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|source| DataDirError::Create {
                path: path.clone(),
                source,
            })?;
        let meta = std::fs::metadata(path).map_err(|source| DataDirError::Create {
            path: path.clone(),
            source,
        })?;
        check_data_dir(
            path,
            meta.permissions().mode(),
            meta.uid(),
            rustix::process::geteuid().as_raw(),
        )
    }

    /// [`Paths::ensure`]'s checks without creating anything: `false` when the data dir does
    /// not exist yet (`nanoclaw doctor`).
    pub fn check(&self) -> Result<bool, DataDirError> {
        let meta = match std::fs::metadata(&self.data) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(DataDirError::Create {
                    path: self.data.clone(),
                    source,
                });
            }
        };
        check_data_dir(
            &self.data,
            meta.permissions().mode(),
            meta.uid(),
            rustix::process::geteuid().as_raw(),
        )?;
        Ok(true)
    }

    /// Stable 8-hex-digit id of this install: SHA-256 of the canonical data directory.
    /// Namespaces container names, labels and image tags so installs never touch each other.
    pub fn slug(&self) -> String {
        slug_of(&self.data)
    }
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create the data dir `{path}`")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the data dir `{path}` can be written by {who} (mode {mode:03o}): they could replace its \
         database, socket or session files\n\nhint: run `chmod 700 {path}`"
    )]
    Writable {
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },
    #[error(
        "the data dir `{path}` belongs to uid {owner}, not to this user (uid {me}): its owner \
         could replace its database, socket or session files\n\nhint: run nanoclaw as uid \
         {owner}, or give the directory to this user with `chown -R {me} {path}`"
    )]
    Owner { path: PathBuf, owner: u32, me: u32 },
}

/// The decision of [`Paths::ensure`] on an existing directory (pure): only its owner may
/// write it, and its owner must be us.
fn check_data_dir(path: &Path, mode: u32, owner: u32, me: u32) -> Result<(), DataDirError> {
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    };
    if let Some(who) = who {
        return Err(DataDirError::Writable {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
            who,
        });
    }
    if owner != me {
        return Err(DataDirError::Owner {
            path: path.to_path_buf(),
            owner,
            me,
        });
    }
    Ok(())
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

    #[test]
    fn issue_7_a_data_dir_others_can_write_or_own_is_refused_with_the_fix() {
        let path = Path::new("/srv/nanoclaw");
        let refusal = |mode, owner| {
            check_data_dir(path, mode, owner, 1000)
                .map_err(|err| err.to_string())
                .err()
        };
        assert_eq!(refusal(0o40700, 1000), None);
        assert_eq!(refusal(0o40755, 1000), None);
        expect_test::expect![[r#"
            the data dir `/srv/nanoclaw` can be written by its group and others (mode 777): they could replace its database, socket or session files

            hint: run `chmod 700 /srv/nanoclaw`"#]]
        .assert_eq(&refusal(0o40777, 1000).unwrap());
        assert!(
            refusal(0o40770, 1000)
                .unwrap()
                .contains("by its group (mode 770)")
        );
        assert!(
            refusal(0o41702, 1000)
                .unwrap()
                .contains("by others (mode 1702)")
        );
        expect_test::expect![[r#"
            the data dir `/srv/nanoclaw` belongs to uid 0, not to this user (uid 1000): its owner could replace its database, socket or session files

            hint: run nanoclaw as uid 0, or give the directory to this user with `chown -R 1000 /srv/nanoclaw`"#]]
        .assert_eq(&refusal(0o40700, 0).unwrap());
    }

    #[test]
    fn a_new_data_dir_is_private_and_passes_its_own_check() {
        let root = tempfile::tempdir().unwrap();
        let paths = Paths::new(root.path().join("a/data"));
        paths.ensure().unwrap();
        let mode = std::fs::metadata(&paths.data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        paths.ensure().unwrap();
    }
}
