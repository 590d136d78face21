//! The records `nanoclaw history` lists: past applies and failed agent containers, read-only
//! (a missing DB has none).

use super::{OpsError, current};
use crate::db::failures::{self, Failure};
use crate::db::history::{self, HistoryEntry};
use crate::paths::Paths;

/// Every apply, newest first.
pub fn applies(paths: &Paths) -> Result<Vec<HistoryEntry>, OpsError> {
    let Some(conn) = current::open_readonly(&paths.db())? else {
        return Ok(Vec::new());
    };
    history::read(&conn).map_err(|source| OpsError::ReadTable {
        table: "apply_history",
        source,
    })
}

/// The newest `limit` container failures, newest first.
pub fn failures(paths: &Paths, limit: usize) -> Result<Vec<Failure>, OpsError> {
    let Some(conn) = current::open_readonly(&paths.db())? else {
        return Ok(Vec::new());
    };
    failures::recent(&conn, limit).map_err(|source| OpsError::ReadTable {
        table: "container_failures",
        source,
    })
}
