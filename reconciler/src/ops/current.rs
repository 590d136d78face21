//! The current configuration and the running facts, read from the central DB: read-only for
//! `plan`, `run`'s image choice and `export` (an absent DB is empty: reading never creates it),
//! or locked and read-write for an apply.

use std::path::Path;

use rusqlite::Connection;

use super::OpsError;
use crate::apply::{self, ApplyLock};
use crate::paths::Paths;
use crate::plan::Running;
use crate::state::Current;

/// The DB's configuration; empty when there is no DB yet.
pub fn read(paths: &Paths) -> Result<Current, OpsError> {
    match open_readonly(&paths.db())? {
        Some(conn) => Ok(crate::db::config::read(&conn)?),
        None => Ok(Current::default()),
    }
}

/// The DB's configuration and the agents with a running container (the sessions'
/// `container_status`); both empty when there is no DB yet.
pub fn read_with_running(paths: &Paths) -> Result<(Current, Running), OpsError> {
    let Some(conn) = open_readonly(&paths.db())? else {
        return Ok((Current::default(), Running::default()));
    };
    let running = Running(crate::db::sessions::running_agents(&conn)?);
    Ok((crate::db::config::read(&conn)?, running))
}

/// Opens an existing central DB read-only; `None` when there is none.
pub(super) fn open_readonly(path: &Path) -> Result<Option<Connection>, OpsError> {
    if !path.exists() {
        return Ok(None);
    }
    crate::db::open_readonly(path)
        .map(Some)
        .map_err(|source| OpsError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Creates (or checks) the data dir, takes the apply lock and opens the central DB read-write:
/// the start of every operation that writes the configuration.
pub(super) fn open_for_apply(paths: &Paths) -> Result<(ApplyLock, Connection), OpsError> {
    paths.ensure()?;
    let lock = apply::lock(&paths.apply_lock())?;
    let path = paths.db();
    let conn = crate::db::open(&path).map_err(|source| OpsError::Open { path, source })?;
    Ok((lock, conn))
}
