//! Import: a NanoClaw v2 install read and written as manifests with its report; with
//! `sessions`, the manifests applied to the data dir and v2's conversations moved into it,
//! under the daemon lock so no daemon runs on the data dir meanwhile.
//!
//! Reading and mapping are `crate::import`'s, the manifest files `crate::export`'s, the apply
//! the one pipeline of [`super::apply`]. The v2 folder is only read.

use std::path::{Path, PathBuf};

use super::{ApplyRequest, Confirm, Mode, OpsError, current};
use crate::import::report::Section;
use crate::import::sessions::Moved;
use crate::import::{self, Imported, REPORT_FILE};
use crate::mount_policy::Policy;
use crate::paths::Paths;

/// One import's inputs.
#[derive(Clone, Copy, Debug)]
pub struct ImportRequest<'a> {
    /// The v2 install folder (holding `data/v2.db` and `groups/`).
    pub v2: &'a Path,
    /// Where the manifests and the report go.
    pub out: &'a Path,
    /// Overwrite files in a non-empty `out`.
    pub force: bool,
    /// Also apply the manifests to the data dir and move the sessions there.
    pub sessions: bool,
}

/// What an import did.
#[derive(Clone, Debug)]
pub struct ImportOutcome {
    pub imported: Imported,
    /// The report as written to `report_path`.
    pub report: String,
    pub report_path: PathBuf,
    /// What `sessions` moved.
    pub moved: Option<Moved>,
}

/// Imports the v2 install of `request` (mounts checked against this host's policy for
/// `paths`); with `sessions`, applies it to `paths` (the plan shown through `confirm`, never
/// asked: the data dir must be fresh or hold exactly this configuration) and moves the sessions.
pub fn import(
    paths: &Paths,
    request: &ImportRequest<'_>,
    confirm: &mut dyn Confirm,
) -> Result<ImportOutcome, OpsError> {
    let policy = Policy::load(&paths.data);
    let mut imported = import::read(request.v2, &policy)?;
    let daemon_lock = if request.sessions {
        paths.ensure()?;
        let lock = crate::runtime::lock::acquire(paths)?;
        guard_fresh(paths, &imported)?;
        Some(lock)
    } else {
        None
    };
    crate::export::write(request.out, &imported.state, request.force)?;
    let mut moved = None;
    if daemon_lock.is_some() {
        let loaded = super::load(request.out, &paths.data)?;
        let apply = ApplyRequest {
            dir: request.out,
            yes: true,
            prune: false,
            allow_empty: true,
            saved_plan: None,
            mode: Mode::Apply,
            no_restart: false,
        };
        super::apply(paths, loaded, &apply, confirm)?;
        let path = paths.db();
        let mut conn = crate::db::open(&path).map_err(|source| OpsError::Open { path, source })?;
        let mut report = std::mem::take(&mut imported.report);
        let done = import::sessions::move_all(&imported, paths, &mut conn, &mut report)?;
        imported.report = report;
        imported.report.note(
            Section::Files,
            "moved",
            format!(
                "{} sessions ({} replies already delivered by v2 recorded, never sent again) and the folders of {} agents into `{}`",
                done.sessions,
                done.delivered,
                done.agents,
                paths.data.display()
            ),
        );
        moved = Some(done);
    }
    let report = imported
        .report
        .render(&request.v2.display().to_string(), &imported.summary());
    let report_path = request.out.join(REPORT_FILE);
    std::fs::write(&report_path, &report).map_err(|source| OpsError::Write {
        path: report_path.clone(),
        source,
    })?;
    Ok(ImportOutcome {
        imported,
        report,
        report_path,
        moved,
    })
}

/// `sessions` needs a data dir without configuration, or one already holding exactly the
/// imported configuration (a second import of the same install after a failed move).
fn guard_fresh(paths: &Paths, imported: &Imported) -> Result<(), OpsError> {
    let current = current::read(paths)?;
    if current.state.is_empty() || current.state == imported.state {
        return Ok(());
    }
    Err(OpsError::MixedInstalls {
        data: paths.data.clone(),
        n_resources: current.state.len(),
    })
}
