//! `nanoclaw pair <channel>`: a one-time pairing code (docs/runtime.md#pairing), stored
//! hashed in the central DB, which the running daemon reads per message.

use std::time::Duration;

use super::OpsError;
use crate::db::pairing;
use crate::paths::Paths;

/// A code issued: what to show, and until when it works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub code: String,
    pub channel_type: String,
    pub ttl: Duration,
    /// Whether an owner exists already (the pairing will need their approval).
    pub needs_approval: bool,
}

/// Issues a code for `channel_type`, valid for `ttl`.
pub fn issue(paths: &Paths, channel_type: &str, ttl: Duration) -> Result<Issued, OpsError> {
    paths.ensure()?;
    let path = paths.db();
    let conn = crate::db::open(&path).map_err(|source| OpsError::Open { path, source })?;
    let code = pairing::new_code().map_err(|source| OpsError::Write {
        path: "/dev/urandom".into(),
        source,
    })?;
    let now = crate::runtime::approvals::now_ms();
    let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
    pairing::store(&conn, &code, channel_type, now, now.saturating_add(ttl_ms))?;
    Ok(Issued {
        code,
        channel_type: channel_type.to_string(),
        ttl,
        needs_approval: pairing::has_owner(&conn)?,
    })
}
