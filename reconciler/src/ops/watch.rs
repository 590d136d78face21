//! Watching the manifest tree (`nanoclaw watch`, `nanoclaw run --watch`): file events are
//! debounced (notify-debouncer-full), editor temp files, hidden folders and `.git/` are
//! ignored, and a burst of changes (a save, twenty saves, a `git checkout`) becomes ONE
//! reconcile once the tree has been quiet for [`QUIET`] (or [`MAX_WAIT`] after the burst's first
//! change, whichever comes first).
//!
//! A reconcile validates the whole set ([`super::load`]) before anything is touched: an
//! invalid set keeps the last applied generation, its `file:line` errors are logged and
//! recorded in the central DB (`db::watch`, for `status`). A valid set is applied through
//! [`super::apply`] in [`Mode::Watch`]: changes with effect `none`, `restart` or `recreate`
//! are applied, deletions and rebuilds are held until confirmed (`nanoclaw apply`) unless the
//! watcher was started with `--allow-destroy` / `--auto-rebuild`.
//!
//! Deciding is pure ([`is_ignored`], [`Burst`]); the loop around it is [`run`].

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::OpsError;
use super::apply::{Answer, Applied, ApplyRequest, Confirm, Mode, Question};
use crate::manifest::Diagnostic;
use crate::paths::Paths;
use crate::plan::{Change, Plan};

/// How long the tree must be quiet before a burst is reconciled.
pub const QUIET: Duration = Duration::from_millis(400);
/// Longest a burst waits after its first change (a tree that never goes quiet still applies).
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// The debouncer's own window: it merges one file's event storm (write, chmod, rename).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// How the watcher applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Apply changes that rebuild an agent's image without waiting for `nanoclaw apply`.
    pub auto_rebuild: bool,
    /// Apply deletions without waiting for `nanoclaw apply`.
    pub allow_destroy: bool,
}

/// What one reconcile did.
#[derive(Clone, Debug)]
pub enum Reconciled {
    /// The set is invalid: nothing was touched (the errors are logged and recorded).
    Invalid { diagnostics: Vec<Diagnostic> },
    /// The DB already matched (`held`: changes still waiting for a confirmation).
    Unchanged { generation: i64 },
    /// Applied as `generation` (`changed` false: everything was held).
    Applied {
        generation: i64,
        changed: bool,
        held: Vec<Change>,
    },
}

/// True when a change to `relative` (a path under the watched folder) is no manifest edit:
/// anything under a hidden folder (`.git/` included) or named like a hidden file, and editor
/// temp and swap files (`*.swp`, `*.swx`, `*~`, vim's `4913` probe, Emacs' `.#*` locks and
/// `#*#` autosaves).
pub fn is_ignored(relative: &Path) -> bool {
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        let Component::Normal(name) = component else {
            continue;
        };
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            return true;
        }
        if components.peek().is_none() {
            return name.ends_with(".swp")
                || name.ends_with(".swx")
                || name.ends_with('~')
                || name == "4913"
                || (name.starts_with('#') && name.ends_with('#'));
        }
    }
    false
}

/// A burst of changes being collected (pure: the caller passes the clock).
#[derive(Clone, Debug, Default)]
pub struct Burst {
    first: Option<Instant>,
    last: Option<Instant>,
    files: BTreeSet<PathBuf>,
}

impl Burst {
    /// Adds changed files seen at `now`.
    pub fn add(&mut self, now: Instant, files: impl IntoIterator<Item = PathBuf>) {
        self.files.extend(files);
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the burst is due: quiet for `quiet` since its last change, or `max_wait` after its
    /// first; `None` when nothing changed.
    pub fn due(&self, quiet: Duration, max_wait: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + quiet).min(first + max_wait))
    }

    /// Ends the burst, returning its files.
    pub fn take(&mut self) -> BTreeSet<PathBuf> {
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.files)
    }
}

/// Validates `dir` and applies it when valid, recording the outcome for `status`.
pub fn reconcile(paths: &Paths, dir: &Path, options: WatchOptions) -> Result<Reconciled, OpsError> {
    paths.ensure()?;
    let shown_dir = dir.display().to_string();
    let loaded = match super::load(dir, &paths.data) {
        Ok(loaded) => loaded,
        Err(OpsError::Invalid { diagnostics }) => {
            let errors: Vec<String> = diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
                .map(|diagnostic| diagnostic.to_string())
                .collect();
            let conn = open(paths)?;
            crate::db::watch::record_error(&conn, &shown_dir, &errors.join("\n"))?;
            return Ok(Reconciled::Invalid { diagnostics });
        }
        Err(other) => return Err(other),
    };
    let request = ApplyRequest {
        dir,
        yes: false,
        prune: false,
        allow_empty: false,
        saved_plan: None,
        mode: Mode::Watch {
            auto_rebuild: options.auto_rebuild,
            allow_destroy: options.allow_destroy,
        },
        no_restart: false,
    };
    let applied = super::apply(paths, loaded, &request, &mut Unattended)?;
    let conn = open(paths)?;
    let (generation, reconciled) = match applied {
        Applied::Unchanged | Applied::Cancelled => {
            let generation = crate::db::generation(&conn)?;
            (generation, Reconciled::Unchanged { generation })
        }
        Applied::Written {
            generation,
            changed,
            held,
            ..
        } => (
            generation,
            Reconciled::Applied {
                generation,
                changed,
                held,
            },
        ),
    };
    crate::db::watch::record_applied(&conn, &shown_dir, generation)?;
    let held: Vec<String> = match &reconciled {
        Reconciled::Applied { held, .. } => held
            .iter()
            .map(|change| {
                let why = if change.action == crate::plan::Action::Delete {
                    "delete"
                } else {
                    "rebuild"
                };
                format!("{} ({why})", change.address)
            })
            .collect(),
        _ => Vec::new(),
    };
    crate::db::watch::record_held(&conn, &held)?;
    Ok(reconciled)
}

/// Watches `dir` until `stop`: reconciles once at the start, then once per burst of changes.
/// A failing reconcile is logged and the watch goes on.
pub async fn run(
    paths: Paths,
    dir: PathBuf,
    options: WatchOptions,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (sender, mut events) = tokio::sync::mpsc::channel::<DebounceEventResult>(256);
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        // The receiver is gone only when the watch ends.
        let _ = sender.blocking_send(result);
    })?;
    debouncer.watch(&dir, RecursiveMode::Recursive)?;
    let root = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    info!(dir = %dir.display(), "watching the manifests");
    reconcile_logged(&paths, &dir, options, None).await;
    let mut burst = Burst::default();
    loop {
        let due = burst.due(QUIET, MAX_WAIT);
        tokio::select! {
            () = stop.cancelled() => break,
            received = events.recv() => {
                let Some(result) = received else { break };
                let files = changed_files(result, &dir, &root);
                if !files.is_empty() {
                    burst.add(Instant::now(), files);
                }
            }
            () = sleep_until(due), if due.is_some() => {
                let files = burst.take();
                reconcile_logged(&paths, &dir, options, Some(&files)).await;
            }
        }
    }
    drop(debouncer);
    Ok(())
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The manifest files an event batch changed, relative to the watched folder, ignored ones
/// left out (access events are no change).
fn changed_files(result: DebounceEventResult, dir: &Path, root: &Path) -> Vec<PathBuf> {
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            for err in errors {
                warn!(error = %err, "manifest watch error");
            }
            return Vec::new();
        }
    };
    events
        .iter()
        .filter(|event| !matches!(event.kind, EventKind::Access(_)))
        .flat_map(|event| event.paths.iter())
        .filter_map(|path| {
            path.strip_prefix(root)
                .or_else(|_| path.strip_prefix(dir))
                .ok()
                .map(Path::to_path_buf)
        })
        .filter(|relative| !relative.as_os_str().is_empty() && !is_ignored(relative))
        .collect()
}

/// One reconcile off the async threads, logged; never fails the watch.
async fn reconcile_logged(
    paths: &Paths,
    dir: &Path,
    options: WatchOptions,
    files: Option<&BTreeSet<PathBuf>>,
) {
    if let Some(files) = files {
        let list: Vec<String> = files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        info!(files = %list.join(" "), "manifests changed");
    }
    let (paths_owned, dir_owned) = (paths.clone(), dir.to_path_buf());
    let result =
        tokio::task::spawn_blocking(move || reconcile(&paths_owned, &dir_owned, options)).await;
    match result {
        Ok(Ok(reconciled)) => log(&reconciled, paths, dir),
        Ok(Err(err)) => {
            error!(error = %format!("{:#}", anyhow::Error::from(err)), "watch: apply failed; the last applied generation stays")
        }
        Err(err) => error!(error = %err, "watch: apply task failed"),
    }
}

fn log(reconciled: &Reconciled, paths: &Paths, dir: &Path) {
    match reconciled {
        Reconciled::Invalid { diagnostics } => {
            for diagnostic in diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.is_error())
            {
                error!("{diagnostic}");
            }
            error!("watch: the manifests are invalid; the last applied generation keeps serving");
        }
        Reconciled::Unchanged { generation } => {
            info!(generation, "watch: the configuration is up to date");
        }
        Reconciled::Applied {
            generation,
            changed,
            held,
        } => {
            if *changed {
                info!(generation, "watch: applied generation {generation}");
            }
            if !held.is_empty() {
                let addresses: Vec<String> = held
                    .iter()
                    .map(|change| change.address.to_string())
                    .collect();
                warn!(
                    held = %addresses.join(" "),
                    "watch: changes held until confirmed (deletions and image rebuilds); run `{}`",
                    super::apply::apply_command(&paths.data, dir)
                );
            }
        }
    }
}

/// The watcher asks nobody: [`Mode::Watch`] never asks, and the plan is logged by [`log`].
struct Unattended;

impl Confirm for Unattended {
    fn show(&mut self, _plan: &Plan) -> std::io::Result<()> {
        Ok(())
    }

    fn ask(&mut self, _question: Question) -> std::io::Result<Answer> {
        Ok(Answer::CannotAsk)
    }
}

fn open(paths: &Paths) -> Result<rusqlite::Connection, OpsError> {
    let path = paths.db();
    crate::db::open(&path).map_err(|source| OpsError::Open { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_temp_files_hidden_folders_and_git_are_ignored() {
        for ignored in [
            ".git/index",
            ".git/refs/heads/main",
            "agents/.andy.yaml.swp",
            "agents.yaml.swp",
            "agents.yaml.swx",
            "agents.yaml~",
            "4913",
            "agents/4913",
            ".#agents.yaml",
            "#agents.yaml#",
            ".hidden/agents.yaml",
            ".agents.yaml",
        ] {
            assert!(is_ignored(Path::new(ignored)), "{ignored}");
        }
        for watched in [
            "agents.yaml",
            "agents/andy.yaml",
            "channels.yml",
            "notes/4913.yaml",
        ] {
            assert!(!is_ignored(Path::new(watched)), "{watched}");
        }
    }

    #[test]
    fn a_burst_is_due_after_the_quiet_period_or_the_maximum_wait() {
        let start = Instant::now();
        let mut burst = Burst::default();
        assert_eq!(burst.due(QUIET, MAX_WAIT), None);
        burst.add(start, [PathBuf::from("a.yaml")]);
        assert_eq!(burst.due(QUIET, MAX_WAIT), Some(start + QUIET));
        // Twenty saves 100 ms apart: one burst, due 400 ms after the last.
        for n_save in 1..=20 {
            burst.add(
                start + Duration::from_millis(100 * n_save),
                [PathBuf::from("a.yaml")],
            );
        }
        assert_eq!(
            burst.due(QUIET, MAX_WAIT),
            Some(start + Duration::from_millis(2000) + QUIET)
        );
        // A tree that never goes quiet still applies after the maximum wait.
        for n_save in 21..=100 {
            burst.add(
                start + Duration::from_millis(100 * n_save),
                [PathBuf::from("b.yaml")],
            );
        }
        assert_eq!(burst.due(QUIET, MAX_WAIT), Some(start + MAX_WAIT));
        let files = burst.take();
        assert_eq!(files.len(), 2);
        assert_eq!(burst.due(QUIET, MAX_WAIT), None);
    }
}
