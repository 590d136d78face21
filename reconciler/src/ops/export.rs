//! Export: the central DB's configuration (managed or made at runtime) written as manifests.
//! The files themselves are `crate::export`'s; this reads the DB without creating it.

use std::path::{Path, PathBuf};

use super::{OpsError, current};
use crate::paths::Paths;

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    /// Resources written.
    pub n_resources: usize,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

/// Writes the DB's configuration into `out` (refusing a non-empty folder unless `force`).
/// A missing DB is an error: an empty export would look like success.
pub fn export(paths: &Paths, out: &Path, force: bool) -> Result<Exported, OpsError> {
    let path = paths.db();
    let Some(conn) = current::open_readonly(&path)? else {
        return Err(OpsError::NothingToExport { path });
    };
    let state = crate::export::read(&conn)?;
    let files = crate::export::write(out, &state, force)?;
    Ok(Exported {
        n_resources: state.len(),
        files,
    })
}
