//! Additional mounts: which host paths an agent's container may see, decided on the *resolved*
//! path (symlinks followed) against an allowlist kept outside the manifests (issue 7;
//! docs/manifests.md#additional-mounts). Validation calls [`Policy::check`] for every mount; the
//! session prepare path calls it again right before the container is created ([`at_spawn`]), and
//! binds the resolved path.
//!
//! Owns the rules and the allowlist; it reads the file system (the allowlist, `realpath`, a
//! bounded scan below a mount) but never writes, never talks to Docker, never prints.

pub mod allowlist;
mod refusal;
pub mod rules;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

pub use self::allowlist::{Allowlist, AllowlistError};
pub use self::refusal::{Reason, Refusal};
use self::rules::Pattern;
use crate::env;

/// How many folder levels below a mount are scanned for credential names.
pub const SCAN_DEPTH: usize = 3;
/// How many entries below a mount are looked at, at most.
pub const SCAN_ENTRIES: usize = 10_000;

/// One mount as the manifest (or the DB) asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// As written: absolute or `~/…`.
    pub host_path: &'a str,
    /// Under `/workspace/extra/`; `None` means the host path's last component.
    pub container_path: Option<&'a str>,
    pub readonly: bool,
}

/// A mount that passed every check: bind exactly `host` (the real path, no symlinks left).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub host: PathBuf,
    /// The name under `/workspace/extra/`.
    pub container: String,
    pub readonly: bool,
}

/// Facts about this machine the rules depend on, read once per check run.
#[derive(Clone, Debug)]
pub struct Host {
    /// `$HOME`, real path when it exists.
    pub home: Option<PathBuf>,
    /// nanoclaw's data dir, real path (of its longest existing ancestor when it does not exist).
    pub data_dir: PathBuf,
    /// Where the allowlist lives: `$XDG_CONFIG_HOME/nanoclaw`, else `~/.config/nanoclaw`.
    pub config_dir: Option<PathBuf>,
    /// Docker socket paths (the usual ones and `DOCKER_HOST`'s), real paths added when they exist.
    pub docker_sockets: Vec<PathBuf>,
    /// Our user id (the allowlist must belong to it or to root).
    pub uid: u32,
}

impl Host {
    /// Reads HOME, XDG_CONFIG_HOME and DOCKER_HOST.
    pub fn from_env(data_dir: &Path) -> Host {
        let home = env::get(env::HOME).map(PathBuf::from);
        let config_dir = env::get(env::XDG_CONFIG_HOME)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".config")))
            .map(|dir| dir.join("nanoclaw"));
        let docker_host = env::get(env::DOCKER_HOST)
            .and_then(|host| host.strip_prefix("unix://").map(PathBuf::from));
        Host::new(home, config_dir, data_dir, docker_host)
    }

    /// A host from explicit parts (tests).
    pub fn new(
        home: Option<PathBuf>,
        config_dir: Option<PathBuf>,
        data_dir: &Path,
        docker_host: Option<PathBuf>,
    ) -> Host {
        let mut docker_sockets: Vec<PathBuf> = rules::DOCKER_SOCKETS
            .iter()
            .map(PathBuf::from)
            .chain(docker_host)
            .collect();
        let real: Vec<PathBuf> = docker_sockets
            .iter()
            .filter_map(|socket| std::fs::canonicalize(socket).ok())
            .collect();
        docker_sockets.extend(real);
        Host {
            home: home.map(|home| std::fs::canonicalize(&home).unwrap_or(home)),
            data_dir: real_or_lexical(data_dir),
            config_dir,
            docker_sockets,
            uid: rustix::process::getuid().as_raw(),
        }
    }
}

/// The allowlist and the host facts: everything [`Policy::check`] needs.
#[derive(Clone, Debug)]
pub struct Policy {
    pub host: Host,
    pub allowlist: Result<Allowlist, AllowlistError>,
}

impl Policy {
    /// The policy of this machine for the install at `data_dir` (environment + allowlist file).
    pub fn load(data_dir: &Path) -> Policy {
        Policy::for_host(Host::from_env(data_dir))
    }

    /// Reads the allowlist of `host`.
    pub fn for_host(host: Host) -> Policy {
        let allowlist = allowlist::read(&host);
        Policy { host, allowlist }
    }

    /// Decides one mount: the text rules, then the resolved path against the fixed blocks, the
    /// allowlist's roots and a bounded scan below it.
    pub fn check(&self, request: &Request<'_>) -> Result<Resolved, Refusal> {
        let allowlist = self.allowlist.as_ref().ok();
        let extra = allowlist.map_or(&[][..], |allowlist| &allowlist.blocked[..]);
        check_text(request.host_path, extra)?;
        let container = container_path(request)?;
        let refuse = |resolved: Option<&Path>, reason: Reason| {
            Err(Refusal::new(request.host_path, resolved, reason))
        };
        let allowlist = match &self.allowlist {
            Ok(allowlist) => allowlist,
            Err(err) => return refuse(None, Reason::Allowlist(err.clone())),
        };
        let expanded = match expand(request.host_path, self.host.home.as_deref()) {
            Some(path) => path,
            None => return refuse(None, Reason::HomeUnknown),
        };
        let real = match std::fs::canonicalize(&expanded) {
            Ok(real) => real,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return refuse(None, Reason::Missing { expanded });
            }
            Err(err) => {
                return refuse(
                    None,
                    Reason::Unresolvable {
                        error: err.to_string(),
                    },
                );
            }
        };
        let shown = (real != expanded).then_some(real.as_path());
        if let Some(reason) = self.blocked(&real, allowlist) {
            return refuse(shown, reason);
        }
        let Some(root) = allowlist.root_of(&real) else {
            return refuse(
                shown,
                Reason::NotUnderRoot {
                    allowlist: allowlist.file().to_path_buf(),
                    roots: allowlist
                        .roots
                        .iter()
                        .map(|root| root.written.clone())
                        .collect(),
                },
            );
        };
        if let Some((entry, pattern)) = scan_below(&real, &allowlist.blocked) {
            return refuse(shown, Reason::HoldsCredential { entry, pattern });
        }
        if !request.readonly && (allowlist.read_only || !root.read_write) {
            return refuse(
                shown,
                Reason::ReadWriteNotAllowed {
                    root: root.written.clone(),
                    allowlist: allowlist.file().to_path_buf(),
                    all_read_only: allowlist.read_only,
                },
            );
        }
        Ok(Resolved {
            host: real,
            container,
            readonly: request.readonly,
        })
    }

    /// The fixed blocks on a real path: system folders, homes, the data dir, the Docker
    /// socket, the allowlist itself, credential names, and anything but folders and files.
    fn blocked(&self, real: &Path, allowlist: &Allowlist) -> Option<Reason> {
        let host = &self.host;
        if rules::is_root(real) {
            return Some(Reason::RootFolder);
        }
        if let Some(dir) = rules::system_dir(real) {
            return Some(Reason::SystemFolder { dir });
        }
        if rules::is_home_or_home_parent(real)
            || host
                .home
                .as_deref()
                .is_some_and(|home| home.starts_with(real))
        {
            return Some(Reason::WholeHome);
        }
        if real.starts_with(&host.data_dir) || host.data_dir.starts_with(real) {
            return Some(Reason::DataDir {
                data_dir: host.data_dir.clone(),
            });
        }
        if let Some(socket) = host
            .docker_sockets
            .iter()
            .find(|socket| socket.starts_with(real))
        {
            return Some(Reason::DockerSocket {
                socket: socket.clone(),
            });
        }
        if let Some(file) = allowlist.files.iter().find(|file| file.starts_with(real)) {
            return Some(Reason::HoldsAllowlist { file: file.clone() });
        }
        let components = rules::match_components(&real.to_string_lossy());
        if let Some((pattern, found)) = credential_match(&allowlist.blocked, &components) {
            return Some(Reason::Credential { found, pattern });
        }
        match std::fs::metadata(real) {
            Ok(meta) if meta.is_dir() || meta.is_file() => None,
            Ok(meta) => Some(Reason::NotFolderOrFile {
                kind: kind_of(&meta),
            }),
            Err(err) => Some(Reason::Unresolvable {
                error: err.to_string(),
            }),
        }
    }
}

/// The rules that need only the text (validation without a machine, and the first step of
/// [`Policy::check`]): shape, `~`, `..`, invisible and look-alike characters, credential
/// names, system folders. `extra` are the allowlist's own patterns.
pub fn check_text(host_path: &str, extra: &[Pattern]) -> Result<(), Refusal> {
    let refuse = |reason: Reason| Err(Refusal::new(host_path, None, reason));
    if host_path.trim().is_empty() {
        return refuse(Reason::Empty);
    }
    if let Some(char) = rules::invisible_char(host_path) {
        return refuse(Reason::Invisible { char });
    }
    let folded = rules::fold(host_path);
    if folded != host_path
        && let Err(inner) = check_plain_text(&folded, extra)
    {
        return refuse(Reason::LookAlike {
            reads_as: folded,
            inner: Box::new(inner),
        });
    }
    check_plain_text(host_path, extra).map_err(|reason| Refusal::new(host_path, None, reason))
}

fn check_plain_text(text: &str, extra: &[Pattern]) -> Result<(), Reason> {
    if text.split('/').any(|part| part == "..") {
        return Err(Reason::DotDot);
    }
    let lexical = rules::lexical(text);
    if lexical == "~" {
        return Err(Reason::WholeHome);
    }
    if !(lexical.starts_with('/') || lexical.starts_with("~/")) {
        return Err(Reason::NotAbsolute);
    }
    let components = rules::match_components(&lexical);
    if let Some((pattern, found)) = credential_match(extra, &components) {
        return Err(Reason::Credential { found, pattern });
    }
    let path = Path::new(&lexical);
    if rules::is_root(path) {
        return Err(Reason::RootFolder);
    }
    if let Some(dir) = rules::system_dir(path) {
        return Err(Reason::SystemFolder { dir });
    }
    if rules::is_home_or_home_parent(path) {
        return Err(Reason::WholeHome);
    }
    if let Some(socket) = rules::DOCKER_SOCKETS
        .iter()
        .find(|socket| Path::new(socket).starts_with(path))
    {
        return Err(Reason::DockerSocket {
            socket: PathBuf::from(socket),
        });
    }
    Ok(())
}

/// The mount's name under `/workspace/extra/`: `container_path` (trailing `/` dropped), else
/// the host path's last component; refused unless it is in the safe alphabet.
pub fn container_path(request: &Request<'_>) -> Result<String, Refusal> {
    let (name, written) = match request.container_path {
        Some(path) => (path.trim_end_matches('/').to_string(), true),
        None => {
            let lexical = rules::lexical(request.host_path);
            let last = lexical.rsplit('/').next().unwrap_or_default().to_string();
            (last, false)
        }
    };
    match rules::container_path_problem(&name) {
        None => Ok(name),
        Some(problem) => Err(Refusal::new(
            request.host_path,
            None,
            Reason::ContainerPath {
                name,
                problem,
                written,
            },
        )),
    }
}

/// The additional mounts of `agent` (its typed configuration), checked again right before its
/// container is created. A refused mount is logged with its reason and left out; the agent
/// still starts.
pub fn at_spawn(agent: &str, mounts: &[crate::state::Mount], data_dir: &Path) -> Vec<Resolved> {
    if mounts.is_empty() {
        return Vec::new();
    }
    let policy = Policy::load(data_dir);
    mounts
        .iter()
        .filter_map(|mount| {
            let request = Request {
                host_path: &mount.host_path,
                container_path: Some(&mount.container_path),
                readonly: mount.readonly,
            };
            policy.check_at_spawn(agent, &request)
        })
        .collect()
}

impl Policy {
    /// Mounts in v2's stored shape (`[{hostPath, containerPath?, readonly?}]`) checked like
    /// [`at_spawn`] over this policy; entries without `hostPath` are skipped.
    pub fn check_stored(&self, agent: &str, entries: &[serde_json::Value]) -> Vec<Resolved> {
        let mut out = Vec::new();
        for entry in entries {
            let Some(host_path) = entry.get("hostPath").and_then(serde_json::Value::as_str) else {
                tracing::warn!(agent, entry = %entry, "additional mount without `hostPath` skipped");
                continue;
            };
            let request = Request {
                host_path,
                container_path: entry
                    .get("containerPath")
                    .and_then(serde_json::Value::as_str),
                readonly: entry
                    .get("readonly")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(true),
            };
            out.extend(self.check_at_spawn(agent, &request));
        }
        out
    }

    /// One mount at spawn: resolved, or `None` with the refusal logged.
    fn check_at_spawn(&self, agent: &str, request: &Request<'_>) -> Option<Resolved> {
        match self.check(request) {
            Ok(resolved) => Some(resolved),
            Err(refusal) => {
                tracing::warn!(
                    agent,
                    host_path = request.host_path,
                    reason = %refusal.reason(),
                    hint = %refusal.hint(),
                    "additional mount refused; the container starts without it"
                );
                None
            }
        }
    }
}

/// `~/…` expanded with `home`; `None` when it needs a home that is unknown.
fn expand(host_path: &str, home: Option<&Path>) -> Option<PathBuf> {
    let lexical = rules::lexical(host_path);
    match lexical.strip_prefix("~/") {
        Some(rest) => home.map(|home| home.join(rest)),
        None if lexical == "~" => home.map(Path::to_path_buf),
        None => Some(PathBuf::from(lexical)),
    }
}

/// The first fixed or allowlist pattern found in `components`: (pattern, matched text).
fn credential_match(extra: &[Pattern], components: &[String]) -> Option<(String, String)> {
    rules::first_match(&rules::credential_patterns(), components)
        .or_else(|| rules::first_match(extra, components))
}

/// Breadth-first over at most [`SCAN_DEPTH`] levels and [`SCAN_ENTRIES`] entries below `real`
/// (symlinks not followed: they resolve inside the container): the first entry whose path
/// matches a credential pattern, relative to `real`, with the pattern.
fn scan_below(real: &Path, extra: &[Pattern]) -> Option<(PathBuf, String)> {
    let base = rules::match_components(&real.to_string_lossy());
    let patterns: Vec<Pattern> = rules::credential_patterns()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect();
    let mut queue: VecDeque<(PathBuf, usize)> = VecDeque::from([(PathBuf::new(), 0)]);
    let mut seen = 0;
    while let Some((relative, depth)) = queue.pop_front() {
        let Ok(entries) = std::fs::read_dir(real.join(&relative)) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > SCAN_ENTRIES {
                return None;
            }
            let child = relative.join(entry.file_name());
            let mut components = base.clone();
            components.extend(rules::match_components(&child.to_string_lossy()));
            if let Some(pattern) = patterns
                .iter()
                .find(|pattern| pattern.matches_tail(&components))
            {
                return Some((child, pattern.text.clone()));
            }
            let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
            if is_dir && depth + 1 < SCAN_DEPTH {
                queue.push_back((child, depth + 1));
            }
        }
    }
    None
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_socket() {
        "socket"
    } else if kind.is_fifo() {
        "named pipe"
    } else if kind.is_block_device() || kind.is_char_device() {
        "device"
    } else {
        "special file"
    }
}

/// The real path of `path`; when it does not exist, the real path of its longest existing
/// ancestor joined with the rest (made absolute against the current directory first).
fn real_or_lexical(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut rest = Vec::new();
    let mut cursor = absolute.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cursor) {
            return rest.iter().rev().fold(real, |acc, part| acc.join(part));
        }
        match (cursor.parent(), cursor.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cursor = parent;
            }
            _ => return absolute,
        }
    }
}

#[cfg(test)]
mod tests;
