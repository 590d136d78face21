//! `nanoclaw status`: what the install runs and whether it runs the current configuration
//! (docs/operating.md#status). Read-only: the daemon's lock holder, the last apply, the
//! executor's `running_containers`, deferred restarts, per-agent images (the one each agent
//! runs, a build in progress with its last output line, the last failed build with its error)
//! and the watcher's last error, judged per agent by [`agent_state`] (pure).

use serde::Serialize;

use crate::db::agent_images::AgentImageRow;
use crate::db::executor::{Deferred, RunningContainer, Verdict};
use crate::db::history::HistoryEntry;
use crate::db::watch::WatchState;
use crate::lockfile::Holder;
use crate::paths::Paths;

use super::OpsError;

/// The JSON form's version (`status --json`).
pub const VERSION: u32 = 1;

/// An agent's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum AgentState {
    /// Every running container runs the current configuration.
    Ready,
    /// Its image is being built, or a running container is being replaced (or its
    /// configuration could not be composed).
    Reconciling(String),
    /// A change waits: a restart deferred by `apply --no-restart`.
    Pending(String),
    /// The agent's last image build failed; it keeps its previous image.
    Failed(String),
}

impl AgentState {
    /// `Ready`, `Reconciling (…)`, `Pending (…)`, `Failed (…)`.
    pub fn text(&self) -> String {
        match self {
            AgentState::Ready => "Ready".to_string(),
            AgentState::Reconciling(why) => format!("Reconciling ({why})"),
            AgentState::Pending(why) => format!("Pending ({why})"),
            AgentState::Failed(why) => format!("Failed ({why})"),
        }
    }
}

/// One agent in the report.
#[derive(Clone, Debug, Serialize)]
pub struct AgentStatus {
    pub name: String,
    #[serde(flatten)]
    pub state: AgentState,
    pub containers: Vec<RunningContainer>,
    pub image: Option<AgentImageRow>,
}

/// The daemon, if one runs.
#[derive(Clone, Debug, Serialize)]
pub struct Daemon {
    pub pid: String,
    pub since: String,
}

/// Everything `status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub daemon: Option<Daemon>,
    pub generation: i64,
    pub last_apply: Option<HistoryEntry>,
    pub agents: Vec<AgentStatus>,
    pub deferred: Vec<Deferred>,
    pub watch: Option<WatchState>,
}

/// Decides an agent's state from its facts (pure).
pub fn agent_state(
    containers: &[RunningContainer],
    deferred: Option<&Deferred>,
    image: Option<&AgentImageRow>,
) -> AgentState {
    if let Some(building) = image.and_then(|image| image.building.as_ref()) {
        return AgentState::Reconciling(format!(
            "building image `{}` since {}",
            building.tag, building.since
        ));
    }
    if let Some(error) = image.and_then(|image| image.error.as_deref()) {
        let first = error.lines().next().unwrap_or_default();
        return AgentState::Failed(format!("image build failed: {first}"));
    }
    if let Some(deferred) = deferred {
        return AgentState::Pending(format!(
            "generation {} not restarted (--no-restart); run `nanoclaw restart {}`",
            deferred.generation, deferred.agent
        ));
    }
    let stale: Vec<&RunningContainer> = containers
        .iter()
        .filter(|container| container.verdict != Verdict::Current)
        .collect();
    match stale.first() {
        None => AgentState::Ready,
        Some(container) => AgentState::Reconciling(
            container
                .reason
                .clone()
                .unwrap_or_else(|| container.verdict.as_str().to_string()),
        ),
    }
}

/// Reads the install's status.
pub fn status(paths: &Paths) -> Result<Report, OpsError> {
    let daemon = super::restart::daemon(paths)?.map(|Holder { pid, since }| Daemon { pid, since });
    let db_path = paths.db();
    if !db_path.exists() {
        return Ok(Report {
            version: VERSION,
            daemon,
            generation: 0,
            last_apply: None,
            agents: Vec::new(),
            deferred: Vec::new(),
            watch: None,
        });
    }
    let conn = crate::db::open_readonly(&db_path).map_err(|source| OpsError::Open {
        path: db_path.clone(),
        source,
    })?;
    let current = crate::db::config::read(&conn)?;
    // Only a running daemon's containers run; a dead one's rows are leftovers.
    let running = if daemon.is_some() {
        crate::db::executor::running(&conn)?
    } else {
        Vec::new()
    };
    let deferred = crate::db::executor::deferred(&conn)?;
    let images = crate::db::agent_images::all(&conn)?;
    let agents = current
        .state
        .agents()
        .map(|agent| {
            let containers: Vec<RunningContainer> = running
                .iter()
                .filter(|container| container.agent == agent.name)
                .cloned()
                .collect();
            let deferral = deferred.iter().find(|row| row.agent == agent.name);
            let image = images.iter().find(|row| row.agent == agent.name).cloned();
            AgentStatus {
                name: agent.name.clone(),
                state: agent_state(&containers, deferral, image.as_ref()),
                containers,
                image,
            }
        })
        .collect();
    Ok(Report {
        version: VERSION,
        daemon,
        generation: current.generation,
        last_apply: crate::db::history::read(&conn)?.into_iter().next(),
        agents,
        deferred,
        watch: crate::db::watch::get(&conn)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(verdict: Verdict, reason: Option<&str>) -> RunningContainer {
        RunningContainer {
            session_id: "s1".to_string(),
            agent: "andy".to_string(),
            config_hash: "h1".to_string(),
            generation: Some(1),
            started_at: String::new(),
            verdict,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn an_agent_is_ready_reconciling_pending_or_failed() {
        assert_eq!(agent_state(&[], None, None), AgentState::Ready);
        assert_eq!(
            agent_state(&[container(Verdict::Current, None)], None, None),
            AgentState::Ready
        );
        assert_eq!(
            agent_state(
                &[container(Verdict::Replacing, Some("configuration changed"))],
                None,
                None
            )
            .text(),
            "Reconciling (configuration changed)"
        );
        let deferral = Deferred {
            agent: "andy".to_string(),
            generation: 4,
            since: String::new(),
        };
        assert_eq!(
            agent_state(&[container(Verdict::Deferred, None)], Some(&deferral), None).text(),
            "Pending (generation 4 not restarted (--no-restart); run `nanoclaw restart andy`)"
        );
        let failed = AgentImageRow {
            error: Some("apt-get failed\nmore".to_string()),
            ..AgentImageRow::default()
        };
        assert_eq!(
            agent_state(&[], Some(&deferral), Some(&failed)).text(),
            "Failed (image build failed: apt-get failed)"
        );
        let retrying = AgentImageRow {
            building: Some(crate::db::agent_images::Building {
                tag: "img:2".to_string(),
                since: "2026-01-01T00:00:00.000Z".to_string(),
                last_line: Some("Step 2/4".to_string()),
            }),
            ..failed
        };
        assert_eq!(
            agent_state(&[container(Verdict::Deferred, None)], None, Some(&retrying)).text(),
            "Reconciling (building image `img:2` since 2026-01-01T00:00:00.000Z)"
        );
    }
}
