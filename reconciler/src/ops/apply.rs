//! The one apply pipeline of `apply` and `run`: take the apply lock, read the DB, check a
//! saved plan, plan, pass the guards, show the plan and ask what needs asking (through the
//! caller's [`Confirm`]), hold back `run`'s unconfirmed deletions, and write in one
//! transaction.
//!
//! The callers differ only in [`Mode`]. Nothing here prints or reads stdin: the plan is handed
//! to [`Confirm::show`] and every question to [`Confirm::ask`].

use std::path::Path;

use super::plan::{guard_conflicts, guard_empty};
use super::{Loaded, OpsError, current};
use crate::apply::Meta;
use crate::paths::Paths;
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Action, Change, Options, Plan, Running, Summary};
use crate::state::effect::Effect;
use crate::state::{Current, State};

/// Who applies, which decides what needs asking and which containers count as running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `nanoclaw apply`: the whole plan is confirmed (`yes`, a saved plan, or a yes to
    /// [`Question::Apply`]; refused when nobody can answer). A daemon may be running, so
    /// running containers are read from the sessions.
    Apply,
    /// `nanoclaw run`, holding the daemon lock: additions and changes are applied unasked;
    /// deletions (and prunes) need `yes` or a yes to [`Question::Deletions`], else they are
    /// held back. No container of this install survives its startup, so none is restarted.
    Run,
    /// The manifest watcher (`nanoclaw watch`, `run --watch`): nobody is asked; changes whose
    /// effect is `none`, `restart` or `recreate` are applied, deletions (and prunes) are held
    /// unless `allow_destroy`, changes that rebuild an image unless `auto_rebuild` (until
    /// confirmed with `nanoclaw apply`). A daemon may be running, as for [`Mode::Apply`].
    Watch {
        auto_rebuild: bool,
        allow_destroy: bool,
    },
}

/// One apply's inputs besides the loaded manifests.
#[derive(Clone, Copy, Debug)]
pub struct ApplyRequest<'a> {
    /// The manifest folder (its git commit goes into the history).
    pub dir: &'a Path,
    /// Confirmed in advance (`--yes`).
    pub yes: bool,
    pub prune: bool,
    pub allow_empty: bool,
    /// Apply exactly this saved plan, refused when stale.
    pub saved_plan: Option<&'a Path>,
    pub mode: Mode,
    /// `--no-restart`: running containers of the changed agents keep their configuration
    /// until `nanoclaw restart` (the deferral is written with the apply).
    pub no_restart: bool,
}

/// What an apply asks before writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Question {
    /// Apply the whole plan shown?
    Apply,
    /// `run`: write the plan's deletions now (else they are held back)?
    Deletions { n_deletes: usize },
}

/// The answer to a [`Question`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    /// Nobody can answer (no terminal): `apply` refuses, `run` holds the deletions back.
    CannotAsk,
}

/// The caller's side of an apply: showing the plan and answering questions.
pub trait Confirm {
    /// The full plan, past the guards, before anything is asked or written.
    fn show(&mut self, plan: &Plan) -> std::io::Result<()>;
    /// Asks `question` of whoever applies.
    fn ask(&mut self, question: Question) -> std::io::Result<Answer>;
}

/// What an apply did.
#[derive(Clone, Debug)]
pub enum Applied {
    /// The DB already matched.
    Unchanged,
    /// Declined at the question; nothing was written.
    Cancelled,
    /// Applied: written as generation `generation`, or nothing written (`changed` false) when
    /// every change was a held deletion; `held` lists the deletions that were not written,
    /// `summary` counts what was.
    Written {
        generation: i64,
        changed: bool,
        held: Vec<Change>,
        summary: Summary,
        /// What the written changes do to each agent (restart, recreate, …).
        effects: Vec<plan::AgentEffect>,
    },
}

/// Applies `loaded` (or the saved plan of `request`) to the DB at `paths`.
pub fn apply(
    paths: &Paths,
    loaded: Loaded,
    request: &ApplyRequest<'_>,
    confirm: &mut dyn Confirm,
) -> Result<Applied, OpsError> {
    let (_lock, mut conn) = current::open_for_apply(paths)?;
    let current = crate::db::config::read(&conn)?;
    let running = match request.mode {
        Mode::Apply | Mode::Watch { .. } => Running(crate::db::sessions::running_agents(&conn)?),
        Mode::Run => Running::default(),
    };
    let (desired, options) = match request.saved_plan {
        Some(path) => {
            let saved = SavedPlan::read(path)?;
            saved.check(path, &current, &loaded.digest, &loaded.state)?;
            (saved.desired, saved.options)
        }
        None => (
            loaded.state,
            Options {
                prune: request.prune,
            },
        ),
    };
    let full = plan::diff_with(&desired, &current, options, &running);
    guard_empty(&desired, &full, request.allow_empty)?;
    guard_conflicts(&desired, &current, &full)?;
    confirm.show(&full).map_err(OpsError::Show)?;
    if full.is_empty() {
        return Ok(Applied::Unchanged);
    }
    let (plan, held) = match request.mode {
        Mode::Apply => {
            if !request.yes && request.saved_plan.is_none() {
                match confirm.ask(Question::Apply).map_err(OpsError::Ask)? {
                    Answer::Yes => {}
                    Answer::No => return Ok(Applied::Cancelled),
                    Answer::CannotAsk => return Err(OpsError::Unconfirmed),
                }
            }
            (full, Vec::new())
        }
        Mode::Watch {
            auto_rebuild,
            allow_destroy,
        } => {
            let (plan, held) = full.hold(&running, |change| {
                (change.action == Action::Delete && !allow_destroy)
                    || (change.effect == Effect::Rebuild && !auto_rebuild)
            });
            if !held.is_empty() {
                guard_needs_held(&desired, &current, &plan, paths, request.dir)?;
            }
            (plan, held)
        }
        Mode::Run => {
            let n_deletes = full.deletes().len();
            let confirmed = n_deletes == 0
                || request.yes
                || confirm
                    .ask(Question::Deletions { n_deletes })
                    .map_err(OpsError::Ask)?
                    == Answer::Yes;
            if confirmed {
                (full, Vec::new())
            } else {
                let (plan, held) = full.hold_deletions(&running);
                guard_needs_held(&desired, &current, &plan, paths, request.dir)?;
                (plan, held)
            }
        }
    };
    let meta = Meta {
        manifest_digest: loaded.digest,
        git_commit: crate::apply::git_commit(request.dir),
        defer_restarts: if request.no_restart {
            super::restart::restarting_agents(&plan.effects)
        } else {
            Vec::new()
        },
    };
    let outcome = crate::apply::apply(&mut conn, &desired, &plan, &current, &meta)?;
    Ok(Applied::Written {
        generation: outcome.generation,
        changed: outcome.changed,
        held,
        summary: plan.summary(),
        effects: plan.effects,
    })
}

/// `nanoclaw --data <data> apply <dir>`: the command that applies `dir` to this data dir.
pub fn apply_command(data: &Path, dir: &Path) -> String {
    format!("nanoclaw --data {} apply {}", data.display(), dir.display())
}

/// Refuses to apply additions that need a held deletion first (a renamed channel whose chat the
/// old name still holds): applying them alone would break the DB's unique key.
fn guard_needs_held(
    desired: &State,
    current: &Current,
    plan: &Plan,
    paths: &Paths,
    dir: &Path,
) -> Result<(), OpsError> {
    let conflicts = plan::conflicts(desired, current, plan);
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(OpsError::NeedsHeld {
        conflicts,
        data: paths.data.clone(),
        dir: dir.to_path_buf(),
    })
}
