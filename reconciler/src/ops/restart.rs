//! `nanoclaw restart` and what an apply means for the running agents
//! (docs/operating.md#restart): the request is written to the central DB for the daemon's
//! executor, which takes it within a second; this side only checks, records and waits for the
//! outcome (with `--rebuild`, for as long as the daemon builds, passing the build's last output
//! line on as it changes). [`after_apply`] says what the daemon will do with an apply's changes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::db::executor::{self as rows, NewRestart};
use crate::lockfile::{self, Holder};
use crate::paths::Paths;
use crate::plan::{AgentEffect, Impact};

use super::OpsError;

/// How long `restart` waits for the daemon to take its request.
const WAIT: Duration = Duration::from_secs(10);
/// How long `restart --rebuild` waits for the outcome while the daemon runs: a build stops
/// after 15 minutes, and may first wait for another agent's build.
const REBUILD_WAIT: Duration = Duration::from_secs(40 * 60);
/// How often it looks.
const POLL: Duration = Duration::from_millis(100);

/// What `nanoclaw restart` asks.
#[derive(Clone, Debug, Default)]
pub struct RestartRequest<'a> {
    pub agent: &'a str,
    pub session: Option<&'a str>,
    pub rebuild: bool,
    pub message: Option<&'a str>,
}

/// What came of a restart request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restarted {
    /// No daemon runs: no container runs either; the next `run` starts fresh ones (any
    /// deferral of the agent was cleared).
    NoDaemon,
    /// The daemon took the request and says what it did.
    Done { outcome: String },
    /// The daemon did not take it within the wait; it will at its next pass.
    Queued { holder: Holder },
}

/// Records a restart of `request.agent` for the daemon and waits (bounded) for its outcome.
/// With `rebuild`, `progress` gets each new last output line of the agent's image build while
/// the daemon builds it, and the wait lasts as long as the daemon runs (up to [`REBUILD_WAIT`]).
pub fn restart(
    paths: &Paths,
    request: &RestartRequest<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<Restarted, OpsError> {
    let db_path = paths.db();
    let conn = crate::db::open(&db_path).map_err(|source| OpsError::Open {
        path: db_path.clone(),
        source,
    })?;
    if crate::db::config::agent(&conn, request.agent)?.is_none() {
        let known = crate::db::config::read(&conn)?
            .state
            .agents()
            .map(|agent| agent.name.clone())
            .collect();
        return Err(OpsError::UnknownAgent {
            agent: request.agent.to_string(),
            path: db_path,
            known,
        });
    }
    if let Some(session) = request.session {
        let owned = crate::db::sessions::get(&conn, session)?
            .is_some_and(|found| found.agent == request.agent);
        if !owned {
            return Err(OpsError::UnknownSession {
                agent: request.agent.to_string(),
                session: session.to_string(),
            });
        }
    }
    let Some(holder) = daemon(paths)? else {
        if request.message.is_some() {
            return Err(OpsError::NoDaemon {
                data: paths.data.clone(),
            });
        }
        rows::clear_deferral(&conn, request.agent)?;
        return Ok(Restarted::NoDaemon);
    };
    let id = rows::request_restart(
        &conn,
        &NewRestart {
            agent: request.agent,
            session_id: request.session,
            rebuild: request.rebuild,
            message: request.message,
        },
    )?;
    let start = Instant::now();
    let wait = if request.rebuild { REBUILD_WAIT } else { WAIT };
    let mut shown: Option<String> = None;
    while start.elapsed() < wait {
        if let Some(done) = rows::request(&conn, id)?
            && let Some(outcome) = done.outcome
        {
            return Ok(Restarted::Done { outcome });
        }
        if request.rebuild {
            let building =
                crate::db::agent_images::get(&conn, request.agent)?.and_then(|row| row.building);
            if let Some(building) = building {
                let line = match &building.last_line {
                    Some(line) => format!("building `{}`: {line}", building.tag),
                    None => format!("building `{}`", building.tag),
                };
                if shown.as_ref() != Some(&line) {
                    progress(&line);
                    shown = Some(line);
                }
            }
            // A daemon that stopped will not report: its successor takes the request.
            if start.elapsed() > WAIT && daemon(paths)?.is_none() {
                break;
            }
        }
        std::thread::sleep(POLL);
    }
    Ok(Restarted::Queued { holder })
}

/// The daemon holding the data dir's run lock, if one runs.
pub fn daemon(paths: &Paths) -> Result<Option<Holder>, OpsError> {
    lockfile::holder_of(&paths.run_lock()).map_err(OpsError::Probe)
}

/// What an apply's changes do to the running agents, for the apply's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfterApply {
    /// What happens to the running containers.
    pub containers: Containers,
    /// Agents whose image the change rebuilds (`packages` changed), by name.
    pub rebuilds: Vec<String>,
}

/// What happens to the running containers after an apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Containers {
    /// No daemon runs: the changes take effect at the next `nanoclaw run`.
    NoDaemon,
    /// Nothing running is affected: the changes take effect at the next message.
    NextMessage,
    /// This many running containers are replaced at their next safe point.
    Restarting { containers: usize },
    /// `--no-restart`: these agents' running containers keep the old configuration.
    Deferred {
        containers: usize,
        agents: Vec<String>,
    },
}

/// Agents whose changes restart, recreate or rebuild their running containers.
pub fn restarting_agents(effects: &[AgentEffect]) -> Vec<String> {
    effects
        .iter()
        .filter(|effect| {
            matches!(
                effect.impact,
                Impact::Restart | Impact::Recreate | Impact::Rebuild
            )
        })
        .map(|effect| effect.agent.clone())
        .collect()
}

/// What the daemon does with an applied plan's `effects` (`no_restart`: deferred).
pub fn after_apply(
    paths: &Paths,
    effects: &[AgentEffect],
    no_restart: bool,
) -> Result<AfterApply, OpsError> {
    let rebuilds: Vec<String> = effects
        .iter()
        .filter(|effect| effect.impact == Impact::Rebuild)
        .map(|effect| effect.agent.clone())
        .collect();
    if daemon(paths)?.is_none() {
        return Ok(AfterApply {
            containers: Containers::NoDaemon,
            rebuilds,
        });
    }
    let agents = restarting_agents(effects);
    let conn = crate::db::open_readonly(&paths.db()).map_err(|source| OpsError::Open {
        path: paths.db(),
        source,
    })?;
    // The sessions' container status: recorded as soon as a container starts (the executor's
    // table follows within its tick).
    let containers = crate::db::sessions::running_sessions(&conn)?
        .iter()
        .filter(|(_, agent)| agents.contains(agent))
        .count();
    let containers = match (containers, no_restart) {
        (0, _) => Containers::NextMessage,
        (containers, true) => Containers::Deferred { containers, agents },
        (containers, false) => Containers::Restarting { containers },
    };
    Ok(AfterApply {
        containers,
        rebuilds,
    })
}

impl AfterApply {
    /// The lines the apply prints: one per image rebuild, then what happens to the containers.
    pub fn text(&self, data: &Path) -> String {
        let daemon = self.containers != Containers::NoDaemon;
        let mut lines: Vec<String> = self
            .rebuilds
            .iter()
            .map(|agent| {
                if daemon {
                    format!(
                        "agent {agent}: image rebuild (packages changed) — the daemon builds it now; see `nanoclaw status`"
                    )
                } else {
                    format!(
                        "agent {agent}: image rebuild (packages changed) — built by the next `nanoclaw run` (or `nanoclaw image build DIR`)"
                    )
                }
            })
            .collect();
        lines.push(self.containers.text(data));
        lines.join("\n")
    }
}

impl Containers {
    /// The sentence the apply prints.
    pub fn text(&self, data: &Path) -> String {
        let containers = |n: usize| match n {
            1 => "1 container".to_string(),
            n => format!("{n} containers"),
        };
        match self {
            Containers::NoDaemon => format!(
                "No daemon running for {}: the changes take effect at the next `nanoclaw run`.",
                data.display()
            ),
            Containers::NextMessage => {
                "No container running is affected: the changes take effect at the next message."
                    .to_string()
            }
            Containers::Restarting { containers: 1 } => {
                "1 container will restart at its next safe point.".to_string()
            }
            Containers::Restarting { containers: n } => {
                format!("{n} containers will restart at their next safe point.")
            }
            Containers::Deferred {
                containers: n,
                agents,
            } => format!(
                "{} keep the old configuration (--no-restart) until {}.",
                containers(*n),
                agents
                    .iter()
                    .map(|agent| format!("`nanoclaw restart {agent}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}
