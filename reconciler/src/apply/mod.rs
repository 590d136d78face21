//! Apply: make the central DB match a plan, all or nothing.
//!
//! Every write happens in ONE `BEGIN IMMEDIATE` transaction: deletes first (children before
//! parents), then creates and updates (parents before children), then the bookkeeping — the
//! last-applied spec of each resource (`managed_resources`, for drift), the generation and a
//! row of `apply_history`. An error anywhere rolls everything back. The apply lock ([`lock`])
//! keeps applies from interleaving. This module decides nothing: the plan says what to write,
//! and the rows are `db::config`'s and `db::history`'s.
//!
//! No `pending_effects` rows are written: the daemon's executor (`runtime::executor`) is
//! level-triggered, comparing running containers with a fresh composition, so it needs no
//! queue; a row nobody reads or clears would only claim work that never happens. The one thing
//! an apply tells it is `--no-restart` (`Meta::defer_restarts`), in the same transaction.

pub mod lock;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use crate::db::config::{self, ReadError};
use crate::db::history::{self, Record};
use crate::plan::{self, Action, Plan};
use crate::state::{Current, State};

pub use self::lock::{ApplyLock, acquire as lock};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("apply is locked by pid {pid} since {since}")]
    Locked { pid: String, since: String },
    #[error("cannot use the apply lock `{path}`")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the DB changed since the plan was made: {why}; run plan again")]
    Stale { why: String },
    #[error("writing `{address}`")]
    Write {
        address: String,
        source: rusqlite::Error,
    },
    #[error("reading the DB")]
    Read(#[from] ReadError),
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// What the history row records besides the plan itself.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub manifest_digest: String,
    /// `git rev-parse HEAD` of the manifest dir (`-dirty` when it has changes), if in git.
    pub git_commit: Option<String>,
    /// `apply --no-restart`: agents whose running containers keep their configuration until
    /// `nanoclaw restart` (recorded in the same transaction, so the executor never sees the
    /// new generation without them).
    pub defer_restarts: Vec<String>,
}

/// The generation an apply produced (unchanged when the plan was empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub generation: i64,
    pub changed: bool,
}

/// Writes `plan` (computed from `desired` against `expected`) in one transaction. Refuses when
/// the DB no longer matches `expected` (someone wrote between plan and apply).
pub fn apply(
    conn: &mut Connection,
    desired: &State,
    plan: &Plan,
    expected: &Current,
    meta: &Meta,
) -> Result<Outcome, ApplyError> {
    if plan.is_empty() {
        return Ok(Outcome {
            generation: plan.generation,
            changed: false,
        });
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = config::read(&tx)?;
    if current.generation != expected.generation {
        return Err(ApplyError::Stale {
            why: format!(
                "generation {} → {}",
                expected.generation, current.generation
            ),
        });
    }
    if current != *expected {
        return Err(ApplyError::Stale {
            why: "the configuration rows changed".to_string(),
        });
    }
    let generation = current.generation + 1;
    let _span = tracing::info_span!("apply", generation).entered();
    let now = now();
    let writer = config::Writer::new(&tx, &now, generation);
    for change in plan.changes.iter().rev() {
        if change.action == Action::Delete
            && let Some(resource) = current.state.get(&change.address)
        {
            writer
                .delete(resource)
                .map_err(|source| ApplyError::Write {
                    address: change.address.to_string(),
                    source,
                })?;
        }
    }
    for change in &plan.changes {
        if let Some(resource) = desired.get(&change.address)
            && change.action != Action::Delete
        {
            writer
                .upsert(resource)
                .map_err(|source| ApplyError::Write {
                    address: change.address.to_string(),
                    source,
                })?;
        }
    }
    for address in current.specs.keys() {
        if desired.get(address).is_none() && current.state.get(address).is_none() {
            writer.forget(&address.to_string())?;
        }
    }
    record(&tx, plan, meta, generation, &now)?;
    tx.commit()?;
    tracing::debug!(changes = plan.changes.len(), "applied");
    Ok(Outcome {
        generation,
        changed: true,
    })
}

/// The generation and history row of an apply.
fn record(
    tx: &Connection,
    plan: &Plan,
    meta: &Meta,
    generation: i64,
    now: &str,
) -> rusqlite::Result<()> {
    let plan_json = plan::json::to_string(plan, &meta.manifest_digest);
    for agent in &meta.defer_restarts {
        crate::db::executor::defer(tx, agent, generation)?;
    }
    history::record(
        tx,
        &Record {
            generation,
            applied_at: now,
            manifest_digest: &meta.manifest_digest,
            git_commit: meta.git_commit.as_deref(),
            summary: &plan.summary().line(),
            plan_json: &plan_json,
        },
    )
}

/// The current time as ISO-8601 UTC with whole seconds (`2026-11-24T15:57:19Z`).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The manifest dir's git commit (`<sha>` or `<sha>-dirty`), or `None` outside git.
pub fn git_commit(dir: &Path) -> Option<String> {
    let head = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let sha = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "."])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if status.stdout.iter().any(|byte| !byte.is_ascii_whitespace()) {
        Some(format!("{sha}-dirty"))
    } else {
        Some(sha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{diff, fixture};

    fn open() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("nanoclaw.db")).unwrap();
        (dir, conn)
    }

    fn apply_state(conn: &mut Connection, desired: &State) -> Outcome {
        let current = config::read(conn).unwrap();
        let plan = diff(desired, &current);
        let meta = Meta {
            manifest_digest: "d1".into(),
            git_commit: None,
            defer_restarts: Vec::new(),
        };
        apply(conn, desired, &plan, &current, &meta).unwrap()
    }

    /// Every row of every config and bookkeeping table, as text.
    fn dump(conn: &Connection) -> Vec<String> {
        let tables = [
            "agent_groups",
            "container_configs",
            "messaging_groups",
            "messaging_group_agents",
            "users",
            "user_roles",
            "agent_group_members",
            "agent_destinations",
            "reconcile_state",
            "managed_resources",
            "apply_history",
            "pending_effects",
        ];
        let mut rows = Vec::new();
        for table in tables {
            let mut statement = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let n_columns = statement.column_count();
            let mut query = statement.query([]).unwrap();
            while let Some(row) = query.next().unwrap() {
                let values: Vec<String> = (0..n_columns)
                    .map(|idx| format!("{:?}", row.get_ref(idx).unwrap()))
                    .collect();
                rows.push(format!("{table}: {}", values.join(" | ")));
            }
        }
        rows
    }

    #[test]
    fn applied_rows_read_back_as_the_desired_state() {
        let (_dir, mut conn) = open();
        let desired = fixture::state();
        let outcome = apply_state(&mut conn, &desired);
        assert_eq!(
            outcome,
            Outcome {
                generation: 1,
                changed: true
            }
        );
        let current = config::read(&conn).unwrap();
        assert_eq!(current.state, desired);
        assert_eq!(current.managed.len(), desired.len());
        assert_eq!(current.specs, desired.resources);
        assert!(diff(&desired, &current).is_empty());
        let again = apply_state(&mut conn, &desired);
        assert_eq!(
            again,
            Outcome {
                generation: 1,
                changed: false
            }
        );
        let history = history::read(&conn).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(
            history[0].summary,
            "Plan: 8 to add, 0 to change, 0 to destroy · 1 new agent"
        );
    }

    #[test]
    fn a_failure_midway_leaves_the_db_unchanged() {
        let (_dir, mut conn) = open();
        // A chat made at runtime holds the platform id the manifest's channel wants, so the
        // channel insert fails after the agent rows were already written.
        conn.execute(
            "INSERT INTO messaging_groups (id, channel_type, platform_id, created_at)
             VALUES ('auto', 'cli', 'local', 'now')",
            [],
        )
        .unwrap();
        let before = dump(&conn);
        let desired = fixture::state();
        let current = config::read(&conn).unwrap();
        let plan = diff(&desired, &current);
        let err = apply(&mut conn, &desired, &plan, &current, &Meta::default()).unwrap_err();
        assert_eq!(err.to_string(), "writing `channel.main`");
        assert_eq!(dump(&conn), before);
        assert_eq!(crate::db::generation(&conn).unwrap(), 0);
    }

    #[test]
    fn runtime_rows_are_adopted_in_place() {
        let (_dir, mut conn) = open();
        conn.execute(
            "INSERT INTO users (id, kind, display_name, created_at) VALUES ('cli:me', 'cli', 'old', 'then')",
            [],
        )
        .unwrap();
        apply_state(&mut conn, &fixture::state());
        let (name, managed, created): (String, Option<String>, String) = conn
            .query_row(
                "SELECT display_name, managed_by, created_at FROM users WHERE id = 'cli:me'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (name.as_str(), managed.as_deref(), created.as_str()),
            ("Me", Some("manifest"), "then")
        );
    }

    #[test]
    fn issue_8_applies_leave_no_pending_effects_nobody_acts_on() {
        let (_dir, mut conn) = open();
        let mut desired = fixture::state();
        apply_state(&mut conn, &desired);
        fixture::agent_mut(&mut desired, "andy").packages.npm = vec!["left-pad".into()];
        apply_state(&mut conn, &desired);
        fixture::agent_mut(&mut desired, "andy").model = Some("opus".into());
        let outcome = apply_state(&mut conn, &desired);
        assert_eq!(outcome.generation, 3);
        let n_rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM pending_effects", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n_rows, 0);
    }

    #[test]
    fn removing_an_agent_takes_its_sessions_along() {
        let (_dir, mut conn) = open();
        let state = fixture::state();
        apply_state(&mut conn, &state);
        conn.execute(
            "INSERT INTO sessions (id, agent_group_id, messaging_group_id, created_at)
             VALUES ('s1', 'andy', 'main', 'now')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO pending_questions (question_id, session_id, message_out_id, title,
               options_json, created_at) VALUES ('q1', 's1', 'm1', 't', '[]', 'now')",
            [],
        )
        .unwrap();
        let mut desired = state.clone();
        desired.resources.retain(|address, _| {
            matches!(
                address.kind,
                crate::state::Kind::User | crate::state::Kind::Role
            )
        });
        let outcome = apply_state(&mut conn, &desired);
        assert_eq!(outcome.generation, 2);
        let n_sessions: i64 = conn
            .query_row("SELECT COUNT(*) FROM sessions", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n_sessions, 0);
        let current = config::read(&conn).unwrap();
        assert_eq!(current.state, desired);
        assert_eq!(current.specs, desired.resources);
    }

    #[test]
    fn a_stale_current_is_refused() {
        let (_dir, mut conn) = open();
        let desired = fixture::state();
        let current = config::read(&conn).unwrap();
        let plan = diff(&desired, &current);
        conn.execute(
            "INSERT INTO users (id, kind, created_at) VALUES ('cli:late', 'cli', 'now')",
            [],
        )
        .unwrap();
        let err = apply(&mut conn, &desired, &plan, &current, &Meta::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the DB changed since the plan was made: the configuration rows changed; run plan again"
        );
    }
}
