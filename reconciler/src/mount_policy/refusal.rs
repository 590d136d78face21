//! Why a mount is refused: [`Refusal`] (the path as written, where it resolved to, the
//! [`Reason`]) and the words for each reason and its fix. Pure.

use std::fmt;
use std::path::{Path, PathBuf};

use super::{AllowlistError, SCAN_DEPTH};

/// Why a mount is refused: the path as written, where it resolved to (when that differs)
/// and the reason. Display gives the reason, a blank line and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub host_path: String,
    /// The real path, when it differs from the path as written.
    pub resolved: Option<PathBuf>,
    pub reason: Reason,
}

/// Every reason a mount is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    Empty,
    NotAbsolute,
    HomeUnknown,
    DotDot,
    Invisible {
        char: char,
    },
    LookAlike {
        reads_as: String,
        inner: Box<Reason>,
    },
    Credential {
        found: String,
        pattern: String,
    },
    RootFolder,
    SystemFolder {
        dir: &'static str,
    },
    WholeHome,
    DataDir {
        data_dir: PathBuf,
    },
    DockerSocket {
        socket: PathBuf,
    },
    HoldsAllowlist {
        file: PathBuf,
    },
    NotFolderOrFile {
        kind: &'static str,
    },
    Missing {
        expanded: PathBuf,
    },
    Unresolvable {
        error: String,
    },
    Allowlist(AllowlistError),
    NotUnderRoot {
        allowlist: PathBuf,
        roots: Vec<String>,
    },
    HoldsCredential {
        entry: PathBuf,
        pattern: String,
    },
    ReadWriteNotAllowed {
        root: String,
        allowlist: PathBuf,
        all_read_only: bool,
    },
    ContainerPath {
        name: String,
        problem: &'static str,
        /// Whether the manifest wrote it (else it is the host path's last component).
        written: bool,
    },
}

impl Refusal {
    pub(super) fn new(host_path: &str, resolved: Option<&Path>, reason: Reason) -> Refusal {
        Refusal {
            host_path: host_path.to_string(),
            resolved: resolved.map(Path::to_path_buf),
            reason,
        }
    }

    /// The reason as one sentence naming the path.
    pub fn reason(&self) -> String {
        if let Reason::ContainerPath {
            name,
            problem,
            written: true,
        } = &self.reason
        {
            return format!("`container_path` `{name}` {problem}");
        }
        let via = match &self.resolved {
            Some(real) => format!(" resolves to `{}`, which", real.display()),
            None => String::new(),
        };
        format!(
            "`host_path` `{}`{via} {}",
            super::rules::escape_invisible(&self.host_path),
            self.reason.predicate()
        )
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        self.reason.hint()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n\nhint: {}", self.reason(), self.hint())
    }
}

impl std::error::Error for Refusal {}

impl Reason {
    /// What is wrong, as the end of a sentence about the path.
    pub(super) fn predicate(&self) -> String {
        match self {
            Reason::Empty => "is empty".into(),
            Reason::NotAbsolute => "must be absolute or start with `~/`".into(),
            Reason::HomeUnknown => "starts with `~` but HOME is not set".into(),
            Reason::DotDot => "contains a `..` segment".into(),
            Reason::Invisible { char } => {
                format!("contains the invisible character U+{:04X}", *char as u32)
            }
            Reason::LookAlike { reads_as, inner } => format!(
                "uses look-alike characters: it reads as `{reads_as}`, which {}",
                inner.predicate()
            ),
            Reason::Credential { found, pattern } if found == pattern => {
                format!("is blocked: `{found}` is a credential name")
            }
            Reason::Credential { found, pattern } => {
                format!("is blocked: `{found}` matches the credential pattern `{pattern}`")
            }
            Reason::RootFolder => "is the root folder `/`".into(),
            Reason::SystemFolder { dir } => format!("is in the system folder `{dir}`"),
            Reason::WholeHome => "is a whole home directory (or holds one)".into(),
            Reason::DataDir { data_dir } => format!(
                "overlaps nanoclaw's data directory `{}`",
                data_dir.display()
            ),
            Reason::DockerSocket { socket } => {
                format!("is or holds the Docker socket `{}`", socket.display())
            }
            Reason::HoldsAllowlist { file } => {
                format!("holds the mount allowlist `{}`", file.display())
            }
            Reason::NotFolderOrFile { kind } => format!("is a {kind}, not a folder or file"),
            Reason::Missing { expanded } => {
                format!("does not exist (`{}`)", expanded.display())
            }
            Reason::Unresolvable { error } => format!("cannot be resolved: {error}"),
            Reason::Allowlist(err) => format!("cannot be mounted: {err}"),
            Reason::NotUnderRoot { allowlist, .. } => format!(
                "is not under an allowed root of `{}`",
                allowlist.display()
            ),
            Reason::HoldsCredential { entry, pattern } => format!(
                "holds `{}`, which matches the credential pattern `{pattern}`",
                entry.display()
            ),
            Reason::ReadWriteNotAllowed {
                all_read_only: true,
                ..
            } => "asks for read-write (`readonly: false`), but the allowlist makes every mount read-only".into(),
            Reason::ReadWriteNotAllowed { root, .. } => format!(
                "asks for read-write (`readonly: false`), but its allowed root `{root}` is read-only"
            ),
            Reason::ContainerPath { name, problem, .. } => format!(
                "gives the mount name `{name}`, which {problem}"
            ),
        }
    }

    fn hint(&self) -> String {
        match self {
            Reason::Empty | Reason::NotAbsolute => {
                "write an absolute path such as `/srv/site` or `~/projects/site`".into()
            }
            Reason::HomeUnknown => "set HOME, or write the absolute path".into(),
            Reason::DotDot => "write the path without `..`: after a symlink, `..` climbs from the link's target, not from where it is written".into(),
            Reason::Invisible { .. } => "retype the path: invisible characters make it read as another".into(),
            Reason::LookAlike { .. } => "retype the path with plain characters".into(),
            Reason::Credential { .. } | Reason::HoldsCredential { .. } => format!(
                "credential folders and files are never mounted; mount a folder that holds none (names are checked {SCAN_DEPTH} levels deep)"
            ),
            Reason::RootFolder | Reason::SystemFolder { .. } => {
                "system folders (`/`, `/proc`, `/sys`, `/dev`, `/etc`, `/boot`, `/root`) are never mounted".into()
            }
            Reason::WholeHome => {
                "mount a folder inside it, for example `~/projects/site`".into()
            }
            Reason::DataDir { .. } => "the data directory holds every agent's sessions and the central DB: mount a folder outside it".into(),
            Reason::DockerSocket { .. } => "the Docker socket gives root on the host: it is never mounted".into(),
            Reason::HoldsAllowlist { .. } => "mount a narrower folder: an agent must not see or change the allowlist".into(),
            Reason::NotFolderOrFile { .. } => "only folders and regular files are mounted".into(),
            Reason::Missing { .. } => "create it on this machine first, or fix the path (mounts are checked where `validate` runs)".into(),
            Reason::Unresolvable { .. } => "make the path readable by this user, or fix it".into(),
            Reason::Allowlist(err) => err.hint(),
            Reason::NotUnderRoot { allowlist, roots } => {
                let roots = if roots.is_empty() {
                    "none".to_string()
                } else {
                    roots.iter().map(|root| format!("`{root}`")).collect::<Vec<_>>().join(", ")
                };
                format!(
                    "allowed roots: {roots}; add a root holding it to `{}`",
                    allowlist.display()
                )
            }
            Reason::ReadWriteNotAllowed {
                all_read_only: true,
                allowlist,
                ..
            } => format!(
                "drop `readonly: false`, or remove `non_main_read_only` from `{}`",
                allowlist.display()
            ),
            Reason::ReadWriteNotAllowed { allowlist, .. } => format!(
                "drop `readonly: false`, or set `allow_read_write: true` on that root in `{}`",
                allowlist.display()
            ),
            Reason::ContainerPath { written: true, .. } => {
                "for example `container_path: data` mounts it at `/workspace/extra/data`".into()
            }
            Reason::ContainerPath { .. } => {
                "set `container_path`, for example `container_path: data` mounts it at `/workspace/extra/data`".into()
            }
        }
    }
}
