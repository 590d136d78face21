//! Operations: what the commands do, as library calls (cargo's `ops`). Load and validate the
//! manifests with this host's mount policy, read the current configuration and the running
//! facts, plan with the guards, apply (with `run`'s held deletions and saved plans), export,
//! read the history, choose a chat: each returns a typed outcome or an [`OpsError`].
//!
//! Nothing here prints, reads stdin or parses flags: a confirmation is asked through
//! [`apply::Confirm`], and the caller (`cli/`, later a watcher or `ncl`) renders the outcome.
//! Every DB access goes through `db`; deciding stays in `plan` and `manifest`.

pub mod adopt;
pub mod agent_images;
pub mod apply;
pub mod chat;
pub mod current;
pub mod doctor;
pub mod export;
pub mod history;
pub mod import;
pub mod load;
pub mod pair;
pub mod plan;
pub mod restart;
pub mod self_modify;
pub mod service;
pub mod status;
pub mod watch;

use std::path::PathBuf;

pub use self::apply::{Answer, Applied, ApplyRequest, Confirm, Mode, Question, apply};
pub use self::load::{Loaded, load, validate};
pub use self::plan::{PlanRequest, Planned, plan};
use crate::apply::ApplyError;
use crate::db::config::ReadError;
use crate::export::ExportError;
use crate::import::ImportError;
use crate::import::sessions::SessionsError;
use crate::manifest::Diagnostic;
use crate::paths::DataDirError;
use crate::plan::Conflict;
use crate::plan::saved::SavedError;
use crate::runtime::lock::DaemonLockError;
use crate::service::ServiceError;

/// Why an operation did not happen. Each refusal a caller may branch on is its own variant;
/// the messages are the ones the CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The manifests have errors (`diagnostics` holds every one, warnings too); nothing was read
    /// or written.
    #[error("the manifests are invalid")]
    Invalid { diagnostics: Vec<Diagnostic> },
    /// Desired channels whose chat a row the plan keeps already holds under another name.
    #[error("{}", lines(.0))]
    Conflicts(Vec<Conflict>),
    /// The manifest set is empty and the plan would delete everything (`--allow-empty` allows).
    #[error(
        "the manifests define no resources, so this would delete all {n_deletes} resources in \
         the DB; pass `--allow-empty` if that is what you want"
    )]
    EmptyManifests { n_deletes: usize },
    /// `run` holds deletions back, but an addition needs one of them first.
    #[error("{}", needs_held(.conflicts, .data, .dir))]
    NeedsHeld {
        conflicts: Vec<Conflict>,
        /// The data dir and manifest dir, for the commands that resolve it.
        data: PathBuf,
        dir: PathBuf,
    },
    /// A saved plan no longer matches the DB or the manifests.
    #[error("saved plan `{path}` is stale: {why}")]
    StalePlan { path: PathBuf, why: String },
    /// Another apply holds the apply lock.
    #[error("apply is locked by pid {pid} since {since}")]
    Locked { pid: String, since: String },
    /// The whole plan needed a yes and nobody could be asked.
    #[error(
        "refusing to apply without confirmation: stdin is not a terminal; pass `--yes` to apply \
         anyway"
    )]
    Unconfirmed,
    /// `export` found no central DB (most likely the wrong `--data`).
    #[error(
        "there is no central DB at `{path}`, so there is nothing to export; pass the state \
         directory with `--data DIR` (or NANOCLAW_DATA_DIR)"
    )]
    NothingToExport { path: PathBuf },
    /// `chat` needs the configuration to find a named target, and there is none yet.
    #[error("no configuration yet at {path}\n\nhint: run `nanoclaw run` or `nanoclaw apply` first")]
    NoConfiguration { path: PathBuf },
    /// `chat`: the named target is no CLI chat or agent (the message lists the chats).
    #[error("{0}")]
    ChatTarget(String),
    /// `import --sessions` into a data dir holding another configuration.
    #[error(
        "the data dir `{}` already holds another configuration ({n_resources} resources): moving \
         v2's sessions into it would mix two installs\n\nhint: import into a fresh data dir with \
         `--data DIR`",
        data.display()
    )]
    MixedInstalls { data: PathBuf, n_resources: usize },
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// `service --system` by a user who is not root.
    #[error(
        "a system service can only be installed by root\n\nhint: run it with `sudo`, or \
         install a user service (`--user`, the default)"
    )]
    SystemServiceNeedsRoot,
    /// `restart`: no agent of that name.
    #[error("no agent `{agent}` in {}\n\nhint: the agents are: {}", path.display(), if known.is_empty() { "(none)".to_string() } else { known.join(", ") })]
    UnknownAgent {
        agent: String,
        path: PathBuf,
        known: Vec<String>,
    },
    /// `restart --session`: the session is not the agent's.
    #[error(
        "agent `{agent}` has no session `{session}`\n\nhint: `nanoclaw status` lists the running sessions"
    )]
    UnknownSession { agent: String, session: String },
    /// `restart --message` with no daemon to execute it.
    #[error("no daemon running for `{}`: the message cannot reach a fresh container\n\nhint: start it with `nanoclaw --data {} run`, then restart again", data.display(), data.display())]
    NoDaemon { data: PathBuf },
    #[error("resolving `{}`", path.display())]
    Resolve {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Probe(crate::lockfile::LockError),
    #[error(transparent)]
    Sessions(#[from] SessionsError),
    #[error(transparent)]
    DaemonLock(#[from] DaemonLockError),
    #[error("writing `{}`", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("opening `{path}`")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Opening the central DB for `chat` (its message names the path without backticks).
    #[error("opening {path}")]
    OpenChats {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("reading the CLI chats from {path}")]
    ReadChats {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("reading {table}")]
    ReadTable {
        table: &'static str,
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
    #[error(transparent)]
    Apply(ApplyError),
    #[error(transparent)]
    Saved(SavedError),
    #[error(transparent)]
    Export(#[from] ExportError),
    /// Showing the plan failed (the caller's writer).
    #[error(transparent)]
    Show(std::io::Error),
    /// `adopt`: an address that cannot be adopted (the message says why).
    #[error("{0}")]
    Adopt(String),
    /// Asking a question failed (the caller's terminal).
    #[error("reading the answer")]
    Ask(#[source] std::io::Error),
}

impl From<ApplyError> for OpsError {
    fn from(err: ApplyError) -> OpsError {
        match err {
            ApplyError::Locked { pid, since } => OpsError::Locked { pid, since },
            other => OpsError::Apply(other),
        }
    }
}

impl From<SavedError> for OpsError {
    fn from(err: SavedError) -> OpsError {
        match err {
            SavedError::Stale { path, why } => OpsError::StalePlan { path, why },
            other => OpsError::Saved(other),
        }
    }
}

fn lines(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn needs_held(conflicts: &[Conflict], data: &std::path::Path, dir: &std::path::Path) -> String {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|conflict| {
            format!(
                "`{}` needs `{}` deleted first (both are chat {}/{})",
                conflict.address, conflict.existing, conflict.channel_type, conflict.platform_id
            )
        })
        .collect();
    format!(
        "{}\n\nhint: confirm the deletions with `nanoclaw run {} --yes`, or apply them first \
         with `{}`",
        lines.join("\n"),
        dir.display(),
        apply::apply_command(data, dir)
    )
}

#[cfg(test)]
mod tests;
