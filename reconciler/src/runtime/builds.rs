//! Per-agent image builds (docs/operating.md#per-agent-images): providing one agent's image
//! (reused or built, the outcome recorded in `db::agent_images`), pruning this install's old
//! ones, and [`Builds`], the daemon's background builder the executor drives.
//!
//! The executor asks at each of its passes which agents with packages need a build ([`need`]:
//! the tag their inputs give now differs from the one the central DB records) and starts it
//! here; a build runs as a tracked task, one at a time (the machine has few cores and a build
//! saturates them), never more than one per agent, and never blocks routing, delivery or the
//! executor. Each output line is logged (`info`, with the agent's name); the last one is kept
//! for `status` (the executor writes it at its tick). A build stops after 15 minutes
//! (`agent_image::BUILD_TIMEOUT`) and on shutdown. A failed build is not retried for the same
//! inputs until `nanoclaw restart AGENT --rebuild`: the agent keeps its previous image and
//! `status` shows the error.
//!
//! `nanoclaw run` (before it starts) and `nanoclaw image build` provide images through
//! `ops::agent_images`, which calls [`provide_one`] and [`prune`] here. Nothing here prints.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use agent_runner::session_db::ids;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::containers::agent_image::{self, BuildFailure};
use crate::containers::{AgentImages, BuildProgress, Docker, image_exists};
use crate::db::{self, agent_images::AgentImageRow};
use crate::paths::Paths;
use crate::state::Agent;

/// Builds running at once in one daemon.
pub const CONCURRENT_BUILDS: usize = 1;

/// Which image one agent runs after [`provide_one`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its per-agent image, reused (`built` false) or built now.
    Ready { tag: String, built: bool },
    /// The build failed; the agent keeps `kept` (its previous per-agent image), or its
    /// provider's image when `None`.
    Failed {
        failure: BuildFailure,
        kept: Option<String>,
    },
}

/// True when the agent lists any package.
pub fn has_packages(agent: &Agent) -> bool {
    !agent.packages.apt.is_empty() || !agent.packages.npm.is_empty()
}

/// The image a per-agent image of `agent` starts from: its own `image`, else the production
/// image of this run ([`AgentImages::package_base`]).
pub fn base_of<'a>(agent: &'a Agent, images: &'a AgentImages) -> &'a str {
    agent
        .image
        .as_deref()
        .filter(|tag| !tag.trim().is_empty())
        .unwrap_or_else(|| images.package_base())
}

/// Provides one agent's per-agent image and records the outcome. A failed build is an
/// [`Outcome::Failed`], not an error: only the central DB failing is.
pub async fn provide_one(
    paths: &Paths,
    docker: &Docker,
    images: &AgentImages,
    agent: &Agent,
    mut progress: impl FnMut(&str, BuildProgress),
) -> rusqlite::Result<Outcome> {
    let base = base_of(agent, images);
    let result = agent_image::ensure(
        docker,
        &paths.slug(),
        &agent.name,
        base,
        &agent.packages,
        |event| progress(&agent.name, event),
    )
    .await;
    let conn = db::open(&paths.db())?;
    match result {
        Ok(ensured) => {
            db::agent_images::record_built(&conn, &agent.name, &ensured.tag)?;
            Ok(Outcome::Ready {
                tag: ensured.tag,
                built: ensured.built,
            })
        }
        Err(failure) => {
            db::agent_images::record_failed(&conn, &agent.name, &failure.tag, &failure.message)?;
            let previous = db::agent_images::get(&conn, &agent.name)?.and_then(|row| row.tag);
            let kept = match previous {
                Some(tag) if image_exists(docker, &tag).await.unwrap_or(false) => Some(tag),
                _ => None,
            };
            warn!(
                agent = %agent.name,
                error = %failure.message,
                kept = kept.as_deref().unwrap_or("its provider's image"),
                "per-agent image build failed: the agent keeps its previous image"
            );
            Ok(Outcome::Failed { failure, kept })
        }
    }
}

/// Removes this install's per-agent images but those in `keep`, those the central DB records
/// (any agent's current image, or one being built) and those a container uses; never another
/// install's. Returns the tags removed; a failure is logged, not returned.
pub async fn prune(paths: &Paths, docker: &Docker, keep: &BTreeSet<String>) -> Vec<String> {
    let mut keep = keep.clone();
    let recorded = db::open(&paths.db()).and_then(|conn| db::agent_images::all(&conn));
    match recorded {
        Ok(rows) => {
            for row in rows {
                keep.extend(row.tag);
                keep.extend(row.building.map(|building| building.tag));
            }
        }
        Err(err) => {
            // Without the recorded images nothing is known to be unused.
            warn!(error = %err, "cannot read the recorded per-agent images; nothing pruned");
            return Vec::new();
        }
    }
    match agent_image::prune(docker, &paths.slug(), &keep).await {
        Ok(pruned) => pruned,
        Err(err) => {
            warn!(error = %err, "cannot prune old per-agent images");
            Vec::new()
        }
    }
}

/// What one agent with packages needs, judged from the tag its inputs give now (or why none
/// could be decided) and its row in `agent_images`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The recorded image is the one its inputs give.
    Current,
    /// Build (or reuse an image with those inputs) and record it.
    Build,
    /// The last build of these very inputs failed: wait for a change of its packages or base
    /// image, or for `nanoclaw restart AGENT --rebuild`.
    FailedBefore,
}

/// Decides whether an agent's image needs a build (pure).
pub fn need(desired: &Result<String, String>, row: Option<&AgentImageRow>) -> Need {
    let row = row.cloned().unwrap_or_default();
    match desired {
        Ok(tag) if row.tag.as_ref() == Some(tag) && row.error.is_none() => Need::Current,
        // Back to the recorded image after a failed change: recording it again clears the error.
        Ok(tag) if row.tag.as_ref() == Some(tag) => Need::Build,
        Ok(tag) if row.failed_tag.as_ref() == Some(tag) => Need::FailedBefore,
        Ok(_) => Need::Build,
        Err(why)
            if row.error.as_ref() == Some(why)
                && row.failed_tag.as_deref().unwrap_or_default().is_empty() =>
        {
            Need::FailedBefore
        }
        Err(_) => Need::Build,
    }
}

/// A build that ended.
#[derive(Debug)]
pub struct Finished {
    pub agent: String,
    /// What it made; `Err` when the central DB could not record it.
    pub outcome: Result<Outcome, String>,
}

impl Finished {
    /// One line for a `restart --rebuild` outcome: `image `tag` built`, `… is up to date`,
    /// or the failure.
    pub fn note(&self) -> Result<String, String> {
        match &self.outcome {
            Ok(Outcome::Ready { tag, built: true }) => Ok(format!("image `{tag}` built")),
            Ok(Outcome::Ready { tag, built: false }) => Ok(format!(
                "image `{tag}` is up to date (its inputs are unchanged)"
            )),
            Ok(Outcome::Failed { failure, kept }) => Err(format!(
                "image build failed: {}; it keeps running on {}",
                failure.message,
                kept.as_deref()
                    .map_or("its provider's image".to_string(), |tag| format!("`{tag}`"))
            )),
            Err(err) => Err(format!("recording the image build failed: {err}")),
        }
    }
}

/// The progress of one running build, shared between its task (writes) and the executor
/// (reads, to write it to the central DB at its tick).
#[derive(Debug, Default)]
struct Live {
    /// When the build was recorded as started (`None` until then, or when nothing is built).
    since: Option<String>,
    /// Its last output line.
    line: Option<String>,
    /// Whether `line` was written to the DB since it changed.
    flushed: bool,
}

/// One running build.
struct Running {
    handle: JoinHandle<Finished>,
    live: Arc<Mutex<Live>>,
}

/// The daemon's background builder (owned by the executor).
pub struct Builds {
    /// Paths and the images of this run (read only).
    paths: Paths,
    images: AgentImages,
    docker: Docker,
    /// Where the builds run (the runtime's tracker).
    tasks: TaskTracker,
    /// Cancels running builds at shutdown.
    stop: CancellationToken,
    /// Agent → its running build; written when one starts and when the executor reaps it.
    running: HashMap<String, Running>,
    /// At most [`CONCURRENT_BUILDS`] builds run; the others wait here.
    permits: Arc<Semaphore>,
}

impl Builds {
    pub fn new(
        paths: Paths,
        images: AgentImages,
        docker: Docker,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Builds {
        Builds {
            paths,
            images,
            docker,
            tasks,
            stop,
            running: HashMap::new(),
            permits: Arc::new(Semaphore::new(CONCURRENT_BUILDS)),
        }
    }

    /// Agents with a build running or waiting for its turn.
    pub fn building(&self) -> BTreeSet<String> {
        self.running.keys().cloned().collect()
    }

    /// Starts the builds `agents` need (`forced`: these build whatever [`need`] says, as
    /// `restart --rebuild` asks); an agent whose build runs is left to it.
    pub async fn check(
        &mut self,
        agents: &[Agent],
        rows: &[AgentImageRow],
        forced: &BTreeSet<String>,
    ) {
        let slug = self.paths.slug();
        for agent in agents.iter().filter(|agent| has_packages(agent)) {
            if self.running.contains_key(&agent.name) {
                continue;
            }
            let desired = agent_image::desired(
                &self.docker,
                &slug,
                &agent.name,
                base_of(agent, &self.images),
                &agent.packages,
            )
            .await
            .map(|(_, image)| image.tag)
            .map_err(|failure| failure.message);
            let row = rows.iter().find(|row| row.agent == agent.name);
            let need = need(&desired, row);
            if need == Need::Build || forced.contains(&agent.name) {
                self.start(agent.clone(), desired.ok());
            }
        }
    }

    /// Starts a build of `agent` (making `tag`, when known) unless one runs.
    fn start(&mut self, agent: Agent, tag: Option<String>) {
        if self.running.contains_key(&agent.name) {
            return;
        }
        let live = Arc::new(Mutex::new(Live::default()));
        let job = Job {
            paths: self.paths.clone(),
            images: self.images.clone(),
            docker: self.docker.clone(),
            permits: self.permits.clone(),
            live: live.clone(),
        };
        let name = agent.name.clone();
        let stop = self.stop.clone();
        let handle = self.tasks.spawn(async move {
            let agent_name = agent.name.clone();
            tokio::select! {
                finished = job.run(agent, tag) => finished,
                () = stop.cancelled() => Finished {
                    agent: agent_name,
                    outcome: Err("the daemon stopped during the build".to_string()),
                },
            }
        });
        self.running.insert(name, Running { handle, live });
    }

    /// The builds that ended since the last call.
    pub async fn finished(&mut self) -> Vec<Finished> {
        let done: Vec<String> = self
            .running
            .iter()
            .filter(|(_, running)| running.handle.is_finished())
            .map(|(agent, _)| agent.clone())
            .collect();
        let mut finished = Vec::new();
        for agent in done {
            let Some(running) = self.running.remove(&agent) else {
                continue;
            };
            finished.push(match running.handle.await {
                Ok(finished) => finished,
                Err(err) => Finished {
                    agent,
                    outcome: Err(format!("the build task failed: {err}")),
                },
            });
        }
        finished
    }

    /// The last output lines not written to the central DB yet: `(agent, since, line)`.
    pub fn unflushed_lines(&self) -> Vec<(String, String, String)> {
        let mut lines = Vec::new();
        for (agent, running) in &self.running {
            let Ok(mut live) = running.live.lock() else {
                continue;
            };
            if live.flushed {
                continue;
            }
            if let (Some(since), Some(line)) = (live.since.clone(), live.line.clone()) {
                live.flushed = true;
                lines.push((agent.clone(), since, line));
            }
        }
        lines
    }
}

/// What one build task needs.
struct Job {
    paths: Paths,
    images: AgentImages,
    docker: Docker,
    permits: Arc<Semaphore>,
    live: Arc<Mutex<Live>>,
}

impl Job {
    /// Waits for its turn, records the build in progress, builds (or reuses), records the
    /// outcome, and prunes this install's old per-agent images after a build.
    async fn run(self, agent: Agent, tag: Option<String>) -> Finished {
        let name = agent.name.clone();
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Finished {
                agent: name,
                outcome: Err("the builder stopped".to_string()),
            };
        };
        if let Some(tag) = &tag {
            let since = ids::now_iso();
            let (db_path, agent_name, tag_text, since_text) =
                (self.paths.db(), name.clone(), tag.clone(), since.clone());
            let recorded = tokio::task::spawn_blocking(move || {
                let conn = db::open(&db_path)?;
                db::agent_images::record_building(&conn, &agent_name, &tag_text, &since_text)
            })
            .await;
            if matches!(recorded, Ok(Ok(())))
                && let Ok(mut live) = self.live.lock()
            {
                live.since = Some(since);
            }
            info!(agent = %name, image = %tag, "per-agent image: providing it in the background");
        }
        let live = self.live.clone();
        let progress = |agent: &str, event: BuildProgress| {
            let line = match event {
                BuildProgress::Step(line) | BuildProgress::Output(line) => line,
            };
            info!(agent, line = %line, "image build");
            if let Ok(mut live) = live.lock() {
                live.line = Some(line);
                live.flushed = false;
            }
        };
        let outcome = provide_one(&self.paths, &self.docker, &self.images, &agent, progress)
            .await
            .map_err(|err| err.to_string());
        if let Ok(Outcome::Ready { built: true, .. }) = &outcome {
            for tag in prune(&self.paths, &self.docker, &BTreeSet::new()).await {
                info!(agent = %name, image = %tag, "pruned an old per-agent image");
            }
        }
        Finished {
            agent: name,
            outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tag: Option<&str>, failed_tag: Option<&str>, error: Option<&str>) -> AgentImageRow {
        AgentImageRow {
            agent: "andy".into(),
            tag: tag.map(str::to_string),
            failed_tag: failed_tag.map(str::to_string),
            error: error.map(str::to_string),
            ..AgentImageRow::default()
        }
    }

    #[test]
    fn an_image_is_built_when_its_inputs_give_another_tag_than_the_recorded_one() {
        let desired = Ok("img:2".to_string());
        assert_eq!(need(&desired, None), Need::Build, "never built");
        assert_eq!(
            need(&desired, Some(&row(Some("img:1"), None, None))),
            Need::Build
        );
        assert_eq!(
            need(&desired, Some(&row(Some("img:2"), None, None))),
            Need::Current
        );
    }

    #[test]
    fn a_failed_build_is_not_retried_for_the_same_inputs() {
        let desired = Ok("img:2".to_string());
        let failed = row(Some("img:1"), Some("img:2"), Some("apt failed"));
        assert_eq!(need(&desired, Some(&failed)), Need::FailedBefore);
        // Other inputs (the list changed again): build.
        assert_eq!(need(&Ok("img:3".to_string()), Some(&failed)), Need::Build);
        // Back to the recorded image: recorded again, which clears the error.
        assert_eq!(need(&Ok("img:1".to_string()), Some(&failed)), Need::Build);
        // No tag could be decided (the base image is missing): the same reason waits.
        let no_base = row(None, Some(""), Some("its base image `x` is not here"));
        assert_eq!(
            need(
                &Err("its base image `x` is not here".to_string()),
                Some(&no_base)
            ),
            Need::FailedBefore
        );
        assert_eq!(
            need(&Err("another reason".to_string()), Some(&no_base)),
            Need::Build
        );
    }
}
