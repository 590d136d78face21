//! Self-modification lands in the manifests (docs/runtime.md#self-modification): an approved
//! `install_packages` or `add_mcp_server` is written into the manifest file that declares the
//! agent (`manifest::patch`, comments and layout kept), committed when that file is in a git
//! work tree, then applied under the apply lock like `nanoclaw apply`, so the manifests never
//! lie and the next apply does not revert it.
//!
//! Nothing is half done: the whole edited set is validated before the file is written (a temp
//! file renamed over it); a tree nanoclaw may not write (`NANOCLAW_MANIFESTS_READONLY=1`, a
//! file or folder that is not writable) gets nothing written and the patch to apply by hand;
//! the DB is never changed without the file. Only a failed apply after the write is left as it
//! is (the file, and its commit, stay; the next `apply` or the watcher applies them), and said.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::OpsError;
use crate::apply::Meta;
use crate::manifest::patch::{self, Change};
use crate::mount_policy::Policy;
use crate::paths::Paths;
use crate::plan::{self, Running};
use crate::state::{Address, Kind};

/// How long an apply waits for the apply lock another apply holds.
const LOCK_WAIT: Duration = Duration::from_secs(15);

/// An approved change to write and apply.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// The daemon's manifest folder (`nanoclaw run DIR`).
    pub dir: &'a Path,
    pub agent: &'a str,
    pub change: &'a Change,
    /// Who approved it (a user id) and the approval's id: both go into the commit message.
    pub approver: &'a str,
    pub approval: &'a str,
    /// Whether the tree may be written (false with `NANOCLAW_MANIFESTS_READONLY=1`).
    pub writable: bool,
}

/// What came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    /// The manifest file changed (or already holding everything asked).
    pub file: PathBuf,
    /// Whether the file was written (false when it already held the change).
    pub written: bool,
    /// The commit, when the file is in a git work tree; or why it was not committed.
    pub commit: Result<String, String>,
    /// The generation the apply produced.
    pub generation: i64,
}

/// Why the change did not land. Each message names the file and, where the approver can
/// finish it by hand, the patch.
#[derive(Debug, thiserror::Error)]
pub enum NotLanded {
    #[error(
        "agent `{agent}` is not declared in the manifests in `{}` (it was made at runtime), so there is no file to write the change into\n\nhint: adopt it first (`nanoclaw adopt agent.{agent}`), then ask again",
        dir.display()
    )]
    NotDeclared { agent: String, dir: PathBuf },
    #[error("the manifests in `{}` do not validate now, so nothing was written:\n{rendered}", dir.display())]
    Invalid { dir: PathBuf, rendered: String },
    #[error(
        "`{}` is not written by nanoclaw ({why}): nothing was written or applied\n\nhint: apply this patch by hand, then `nanoclaw apply`:\n{patch}",
        file.display()
    )]
    ReadOnly {
        file: PathBuf,
        why: String,
        patch: String,
    },
    #[error(
        "`{}` could not be edited automatically ({why}): nothing was written or applied\n\nhint: add {wanted} to agent `{agent}` by hand, then `nanoclaw apply`",
        file.display()
    )]
    Unpatchable {
        file: PathBuf,
        agent: String,
        why: String,
        wanted: String,
    },
    #[error(
        "the manifests with `{}` edited do not validate, so nothing was written:\n{rendered}\n\nhint: the edit was:\n{patch}",
        file.display()
    )]
    EditedInvalid {
        file: PathBuf,
        rendered: String,
        patch: String,
    },
    #[error("writing `{}`: {source}: nothing was applied", file.display())]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "`{}` was written{} but applying it failed: {error}\n\nhint: the next `nanoclaw apply` (or the watcher) applies it",
        file.display(),
        match commit { Some(sha) => format!(" and committed ({sha})"), None => String::new() }
    )]
    ApplyFailed {
        file: PathBuf,
        commit: Option<String>,
        error: String,
    },
}

/// Writes, commits and applies `request` (see the module comment).
pub fn land(paths: &Paths, request: &Request<'_>) -> Result<Landed, NotLanded> {
    let policy = Policy::load(&paths.data);
    let dir = request.dir;
    let before =
        crate::manifest::load_for_host(dir, &policy).map_err(|diagnostics| NotLanded::Invalid {
            dir: dir.to_path_buf(),
            rendered: crate::manifest::render(&diagnostics),
        })?;
    let address = Address::new(Kind::Agent, request.agent);
    let Some(source) = before.sources.get(&address) else {
        return Err(NotLanded::NotDeclared {
            agent: request.agent.to_string(),
            dir: dir.to_path_buf(),
        });
    };
    let shown = source.file.clone();
    let unpatchable = |why: String| NotLanded::Unpatchable {
        file: shown.clone(),
        agent: request.agent.to_string(),
        why,
        wanted: describe(request.change),
    };
    let text = std::fs::read_to_string(&source.file).map_err(|err| unpatchable(err.to_string()))?;
    let edited = patch::edit(&text, request.agent, request.change)
        .map_err(|err| unpatchable(err.to_string()))?;
    let diff = patch::unified_diff(&shown.display().to_string(), &text, &edited.text);
    crate::manifest::load_for_host_edited(dir, &policy, &source.file, edited.text.as_bytes())
        .map_err(|diagnostics| NotLanded::EditedInvalid {
            file: shown.clone(),
            rendered: crate::manifest::render(&diagnostics),
            patch: diff.clone(),
        })?;
    // Write through links to the real file (the loader only follows links inside the folder).
    let real = std::fs::canonicalize(&source.file).map_err(|source| NotLanded::Write {
        file: shown.clone(),
        source,
    })?;
    let commit = if edited.changed {
        if let Some(why) = read_only(request.writable, &real) {
            return Err(NotLanded::ReadOnly {
                file: shown,
                why,
                patch: diff,
            });
        }
        let dirty = git_dirty(&real);
        write_replacing(&real, edited.text.as_bytes()).map_err(|source| NotLanded::Write {
            file: shown.clone(),
            source,
        })?;
        info!(file = %shown.display(), agent = request.agent, "manifest edited for an approved self-modification");
        match dirty {
            Some(Ok(false)) => git_commit(&real, &message(request)),
            Some(Ok(true)) => Err(
                "it had uncommitted changes before, so nanoclaw left the commit to you".to_string(),
            ),
            Some(Err(why)) => Err(why),
            None => Err("not in a git work tree".to_string()),
        }
    } else {
        Err("nothing to commit: the file already held the change".to_string())
    };
    let sha = commit.as_ref().ok().cloned();
    let generation =
        apply_agent(paths, dir, request.agent).map_err(|error| NotLanded::ApplyFailed {
            file: shown.clone(),
            commit: sha,
            error,
        })?;
    Ok(Landed {
        file: shown,
        written: edited.changed,
        commit,
        generation,
    })
}

/// What the approver reads once it landed: the file, the commit, the apply.
pub fn summary(agent: &str, change: &Change, landed: &Landed) -> String {
    let file = landed.file.display();
    let mut text = if landed.written {
        format!("agent `{agent}`: {} written to `{file}`", describe(change))
    } else {
        format!(
            "agent `{agent}`: `{file}` already held {}",
            describe(change)
        )
    };
    match &landed.commit {
        Ok(sha) => text.push_str(&format!(", committed {sha}")),
        Err(why) => text.push_str(&format!(" (not committed: {why})")),
    }
    text.push_str(&format!(
        ", applied (generation {}); the agent restarts with it",
        landed.generation
    ));
    text
}

/// The change in words, for a hand edit: `packages.apt: jq` or `mcp_servers.search`.
pub fn describe(change: &Change) -> String {
    match change {
        Change::Packages { apt, npm } => {
            let mut parts = Vec::new();
            if !apt.is_empty() {
                parts.push(format!("`packages.apt: {}`", apt.join(", ")));
            }
            if !npm.is_empty() {
                parts.push(format!("`packages.npm: {}`", npm.join(", ")));
            }
            parts.join(" and ")
        }
        Change::McpServer { name, .. } => format!("`mcp_servers.{name}`"),
    }
}

/// The commit message: the agent, the change, the approver and the request.
fn message(request: &Request<'_>) -> String {
    let what = match request.change {
        Change::Packages { apt, npm } => {
            let mut list: Vec<String> = apt.iter().map(|p| format!("apt: {p}")).collect();
            list.extend(npm.iter().map(|p| format!("npm: {p}")));
            format!("install packages ({})", list.join(", "))
        }
        Change::McpServer { name, command, .. } => {
            format!("add MCP server `{name}` ({command})")
        }
    };
    format!(
        "agent {}: {what}\n\nRequested by agent `{}`, approved by `{}` (approval {}).\nWritten by nanoclaw.\n",
        request.agent, request.agent, request.approver, request.approval
    )
}

/// Why nanoclaw may not write `file`, if it may not.
pub(super) fn read_only(writable: bool, file: &Path) -> Option<String> {
    use rustix::fs::{Access, access};
    if !writable {
        return Some(format!("{}=1", crate::env::NANOCLAW_MANIFESTS_READONLY));
    }
    if let Err(err) = access(file, Access::WRITE_OK) {
        return Some(format!("the file is not writable: {err}"));
    }
    let folder = file.parent().unwrap_or(Path::new("."));
    if let Err(err) = access(folder, Access::WRITE_OK) {
        return Some(format!("its folder is not writable: {err}"));
    }
    None
}

/// Writes `bytes` to a temp file beside `file` (same permissions) and renames it over `file`.
pub(super) fn write_replacing(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = file.parent().unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let permissions = std::fs::metadata(file)?.permissions();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".nanoclaw-tmp")
        .tempfile_in(folder)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.as_file().set_permissions(permissions)?;
    temp.persist(file).map_err(|err| err.error)?;
    Ok(())
}

fn git(folder: &Path, args: &[&str]) -> Option<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()
}

/// Whether `file` has changes git does not have: `None` outside a work tree (or without git).
fn git_dirty(file: &Path) -> Option<Result<bool, String>> {
    let folder = file.parent()?;
    let inside = git(folder, &["rev-parse", "--is-inside-work-tree"])?;
    if !inside.status.success() || String::from_utf8_lossy(&inside.stdout).trim() != "true" {
        return None;
    }
    let path = file.to_string_lossy();
    let status = git(folder, &["status", "--porcelain", "--", &path])?;
    if !status.status.success() {
        return Some(Err(format!(
            "`git status` failed: {}",
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&status.stdout);
    if text.starts_with("??") {
        return Some(Err(
            "the file is not tracked by git, so nanoclaw left adding it to you".to_string(),
        ));
    }
    Some(Ok(!text.trim().is_empty()))
}

/// Commits only `file` as nanoclaw (whatever else is staged or dirty stays so); the new
/// commit's id, or why there is none. Works with no `user.name` configured; hooks and signing
/// are skipped (the daemon cannot answer a prompt).
fn git_commit(file: &Path, message: &str) -> Result<String, String> {
    let folder = file.parent().unwrap_or(Path::new("."));
    let path = file.to_string_lossy();
    let committed = git(
        folder,
        &[
            "-c",
            "user.name=nanoclaw",
            "-c",
            "user.email=nanoclaw@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "--no-verify",
            "--only",
            "-m",
            message,
            "--",
            &path,
        ],
    )
    .ok_or_else(|| "git could not be run".to_string())?;
    if !committed.status.success() {
        let why = String::from_utf8_lossy(&committed.stderr)
            .trim()
            .to_string();
        warn!(file = %file.display(), error = %why, "self-modification not committed");
        return Err(format!("`git commit` failed: {why}"));
    }
    let head = git(folder, &["rev-parse", "--short=12", "HEAD"])
        .filter(|output| output.status.success())
        .ok_or_else(|| "the new commit could not be read".to_string())?;
    Ok(String::from_utf8_lossy(&head.stdout).trim().to_string())
}

/// Applies the manifests' changes to `agent` alone (others wait for `nanoclaw apply`), under
/// the apply lock; the generation.
fn apply_agent(paths: &Paths, dir: &Path, agent: &str) -> Result<i64, String> {
    let after = super::load(dir, &paths.data).map_err(|err| describe_ops(&err))?;
    let started = Instant::now();
    let (_lock, mut conn) = loop {
        match super::current::open_for_apply(paths) {
            Ok(opened) => break opened,
            Err(OpsError::Locked { .. }) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(err) => return Err(describe_ops(&err)),
        }
    };
    let current = crate::db::config::read(&conn).map_err(|err| err.to_string())?;
    let address = Address::new(Kind::Agent, agent);
    let full = plan::diff(&after.state, &current);
    let (plan, _others) = full.hold(&Running::default(), |change| change.address != address);
    let meta = Meta {
        manifest_digest: after.digest,
        git_commit: crate::apply::git_commit(dir),
        defer_restarts: Vec::new(),
    };
    crate::apply::apply(&mut conn, &after.state, &plan, &current, &meta)
        .map(|outcome| outcome.generation)
        .map_err(|err| err.to_string())
}

fn describe_ops(err: &OpsError) -> String {
    match err {
        OpsError::Invalid { diagnostics } => crate::manifest::render(diagnostics),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git_in(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    #[test]
    fn a_commit_takes_only_the_edited_file_and_needs_no_configured_user() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        git_in(dir, &["init", "-q"]);
        std::fs::write(dir.join("a.yaml"), "a: 1\n").unwrap();
        std::fs::write(dir.join("b.yaml"), "b: 1\n").unwrap();
        git_in(
            dir,
            &["-c", "user.name=t", "-c", "user.email=t@t", "add", "."],
        );
        git_in(
            dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ],
        );
        std::fs::write(dir.join("b.yaml"), "b: 2\n").unwrap();
        git_in(dir, &["add", "b.yaml"]);
        let file = dir.join("a.yaml");
        assert_eq!(git_dirty(&file), Some(Ok(false)));
        write_replacing(&file, b"a: 2\n").unwrap();
        assert_eq!(git_dirty(&file), Some(Ok(true)));
        let sha = git_commit(&file, "agent a: x\n").unwrap();
        assert_eq!(sha.len(), 12);
        let shown = git_in(
            dir,
            &["show", "--name-only", "--format=%an <%ae>|%s", "HEAD"],
        );
        assert_eq!(
            shown.trim(),
            "nanoclaw <nanoclaw@localhost>|agent a: x\n\na.yaml"
        );
        let status = git_in(dir, &["status", "--porcelain"]);
        assert_eq!(
            status, "M  b.yaml\n",
            "the staged change of another file stays staged"
        );
    }

    #[test]
    fn outside_git_there_is_no_commit() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("a.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        assert_eq!(git_dirty(&file), None);
    }
}
