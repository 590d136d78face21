//! Planning: the current configuration and running facts read from the DB, the pure diff
//! against the desired state, and the guards every plan passes (`plan`, `apply` and `run`
//! alike): the empty-manifest guard and the chat-conflict guard. Saving a plan for
//! `apply --plan`.

use std::path::Path;

use super::{Loaded, OpsError, current};
use crate::plan::saved::SavedPlan;
use crate::plan::{self, Options, Plan};
use crate::state::{Current, State};

/// `plan`'s switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanRequest {
    /// Also delete configuration made at runtime that the manifests do not list.
    pub prune: bool,
    /// Allow an empty manifest set to delete every managed resource.
    pub allow_empty: bool,
}

/// A plan that passed the guards, with the DB state it was computed against.
#[derive(Clone, Debug)]
pub struct Planned {
    pub plan: Plan,
    pub current: Current,
    pub options: Options,
}

/// Plans `desired` against the DB at `paths` (read-only; an absent DB is empty and is not
/// created). Agents with a running container make their changes restarts now.
pub fn plan(
    paths: &crate::paths::Paths,
    desired: &State,
    request: PlanRequest,
) -> Result<Planned, OpsError> {
    let (current, running) = current::read_with_running(paths)?;
    let options = Options {
        prune: request.prune,
    };
    let plan = plan::diff_with(desired, &current, options, &running);
    guard_empty(desired, &plan, request.allow_empty)?;
    guard_conflicts(desired, &current, &plan)?;
    Ok(Planned {
        plan,
        current,
        options,
    })
}

/// Writes `planned` (made from `loaded`) to `path` for `apply --plan`.
pub fn save(planned: &Planned, loaded: &Loaded, path: &Path) -> Result<(), OpsError> {
    SavedPlan::new(
        &planned.plan,
        &loaded.state,
        &planned.current,
        &loaded.digest,
        planned.options,
    )
    .write(path)?;
    Ok(())
}

/// Refuses a plan that would write a chat already held by a runtime row under another name.
pub(super) fn guard_conflicts(
    desired: &State,
    current: &Current,
    plan: &Plan,
) -> Result<(), OpsError> {
    let conflicts = plan::conflicts(desired, current, plan);
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(OpsError::Conflicts(conflicts))
}

/// Refuses a plan that deletes everything because the manifest set is empty.
pub(super) fn guard_empty(desired: &State, plan: &Plan, allow_empty: bool) -> Result<(), OpsError> {
    let n_deletes = plan.deletes().len();
    if desired.is_empty() && n_deletes > 0 && !allow_empty {
        return Err(OpsError::EmptyManifests { n_deletes });
    }
    Ok(())
}
