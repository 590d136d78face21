//! The [`Runner`]: which session has a running container, waking one (deduplicated, bounded by
//! `max_concurrent`), watching it until it exits, and stopping it.
//!
//! The in-memory `running` map is the authority for "is running" (host.md §4.1); the runtime
//! mirrors it into the central DB from [`Exited`] events. `wake` never errors or panics: a
//! failure is logged with the session id and reported as `false`, so the row stays pending and
//! the sweep retries. Every task runs on the Runner's own `TaskTracker`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio_util::task::TaskTracker;

use super::spawn::{SpawnSpec, remove_quietly, spawn};
use super::{Docker, is_not_found};

/// Capacity of the exit-event channel; a lagging receiver loses the oldest events.
const EXIT_CHANNEL: usize = 256;
/// How often, and how many times, `stop` checks that a removed container is gone.
const GONE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);
const GONE_POLLS: usize = 200;

/// A session container ended (exited, was stopped, or vanished).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exited {
    pub session_id: String,
    /// The container's exit code; `-1` when it could not be read.
    pub exit_code: i64,
    /// The kernel killed it at its memory limit (`resources.memory`).
    pub oom_killed: bool,
}

/// Tracks and drives session containers. Cheap to clone (Arc inside).
#[derive(Clone, Debug)]
pub struct Runner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    slug: String,
    max_concurrent: usize,
    /// Written by wake (spawn done), the exit watchers and stop; read by everyone.
    state: Mutex<State>,
    /// Owns the spawn and exit-watcher tasks.
    tasks: TaskTracker,
    exits: broadcast::Sender<Exited>,
}

/// Sessions with a container, and sessions whose spawn is in flight.
#[derive(Debug, Default)]
struct State {
    /// session id → container name.
    running: HashMap<String, String>,
    /// session id → the outcome of its in-flight spawn (`None` until it settles).
    waking: HashMap<String, watch::Receiver<Option<bool>>>,
    /// Set by `stop_all` while it runs: no new wakes, and a spawn that lands meanwhile is
    /// stopped at once.
    closing: bool,
}

/// What a wake does, decided under the state lock.
#[derive(Debug)]
enum Admission {
    /// A container already runs: answer true.
    Running,
    /// A spawn is in flight: wait for its outcome.
    Join(watch::Receiver<Option<bool>>),
    /// Start the spawn and publish its outcome on the sender.
    Start(watch::Sender<Option<bool>>, watch::Receiver<Option<bool>>),
    /// `max_concurrent` containers run or are starting: answer false.
    Full,
}

impl State {
    fn admit(&mut self, session_id: &str, max_concurrent: usize) -> Admission {
        if self.running.contains_key(session_id) {
            return Admission::Running;
        }
        if let Some(outcome) = self.waking.get(session_id) {
            return Admission::Join(outcome.clone());
        }
        if self.closing || self.running.len() + self.waking.len() >= max_concurrent {
            return Admission::Full;
        }
        let (sender, receiver) = watch::channel(None);
        self.waking.insert(session_id.to_string(), receiver.clone());
        Admission::Start(sender, receiver)
    }
}

impl Runner {
    pub fn new(docker: Docker, slug: String, max_concurrent: usize) -> Runner {
        let (exits, _) = broadcast::channel(EXIT_CHANNEL);
        Runner {
            inner: Arc::new(Inner {
                docker,
                slug,
                max_concurrent,
                state: Mutex::new(State::default()),
                tasks: TaskTracker::new(),
                exits,
            }),
        }
    }

    /// Makes sure a container runs for the session. True if one runs (already, or now).
    /// Concurrent wakes of one session share one spawn and its answer.
    pub async fn wake(&self, spec: SpawnSpec) -> bool {
        let session_id = spec.session_id.clone();
        let admission = self.state().admit(&session_id, self.inner.max_concurrent);
        let mut outcome = match admission {
            Admission::Running => return true,
            Admission::Full => {
                tracing::info!(session = %session_id, max = self.inner.max_concurrent,
                    "container limit reached; wake deferred to the sweep");
                return false;
            }
            Admission::Join(outcome) => outcome,
            Admission::Start(sender, outcome) => {
                let runner = self.clone();
                // A tracked task, so a cancelled waker cannot abandon a half-made container.
                self.inner
                    .tasks
                    .spawn(async move { runner.start(spec, sender).await });
                outcome
            }
        };
        match outcome.wait_for(Option::is_some).await {
            Ok(answer) => *answer == Some(true),
            Err(_) => false,
        }
    }

    pub fn is_running(&self, session_id: &str) -> bool {
        self.state().running.contains_key(session_id)
    }

    /// Session ids with a running container, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut sessions: Vec<String> = self.state().running.keys().cloned().collect();
        sessions.sort();
        sessions
    }

    /// Stops and removes the session's container; no-op when none is tracked.
    pub async fn stop(&self, session_id: &str, reason: &str) {
        let Some(name) = self.state().running.get(session_id).cloned() else {
            return;
        };
        tracing::info!(session = %session_id, reason, container = %name, "stopping container");
        self.stop_container(&name).await;
        let mut state = self.state();
        if state.running.get(session_id) == Some(&name) {
            state.running.remove(session_id);
        }
    }

    /// Stops every tracked container and waits for the exit watchers (clean shutdown).
    pub async fn stop_all(&self) {
        self.state().closing = true;
        let sessions = self.running();
        let stops = sessions
            .iter()
            .map(|session| self.stop(session, "shutdown"));
        futures_util::future::join_all(stops).await;
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.tasks.reopen();
        self.state().closing = false;
    }

    /// One event per container end.
    pub fn exits(&self) -> broadcast::Receiver<Exited> {
        self.inner.exits.subscribe()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it; the maps are still consistent
        // (every critical section is a single insert/remove).
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Spawns the container and publishes the outcome to every waker.
    async fn start(&self, spec: SpawnSpec, outcome: watch::Sender<Option<bool>>) {
        let session_id = spec.session_id.clone();
        // A stale heartbeat from the previous container would trip the sweep (host.md §4.2.8).
        // `outbound/` is agent-writable but the host owns its parent, so the path is trusted up
        // to the last name; unlink(2) removes whatever sits there (a link, not its target).
        let heartbeat = agent_runner::session_db::heartbeat_path(&spec.session_dir);
        if let Err(err) = std::fs::remove_file(&heartbeat)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(session = %session_id, error = %err, "cannot delete stale heartbeat");
        }
        let result = spawn(&self.inner.docker, &self.inner.slug, &spec).await;
        let mut stop_now = None;
        let answer = {
            let mut state = self.state();
            state.waking.remove(&session_id);
            match result {
                Ok(name) => {
                    tracing::info!(session = %session_id, container = %name, "container started");
                    state.running.insert(session_id.clone(), name.clone());
                    if state.closing {
                        stop_now = Some(name.clone());
                    }
                    let runner = self.clone();
                    let session = session_id.clone();
                    self.inner
                        .tasks
                        .spawn(async move { runner.watch_exit(session, name).await });
                    true
                }
                Err(err) => {
                    tracing::warn!(session = %session_id, error = %err,
                        "container spawn failed; the sweep will retry");
                    false
                }
            }
        };
        outcome.send_replace(Some(answer));
        if let Some(name) = stop_now {
            tracing::info!(session = %session_id, "shutting down: stopping the container just started");
            self.stop_container(&name).await;
        }
    }

    /// Waits for the container to end, removes it, untracks it and emits [`Exited`].
    async fn watch_exit(&self, session_id: String, name: String) {
        let exit_code = self.wait_exit(&name).await;
        let oom_killed = self.was_oom_killed(&name).await;
        if let Err(err) = remove_quietly(&self.inner.docker, &name).await {
            tracing::warn!(session = %session_id, error = %err, "cannot remove exited container");
        }
        {
            let mut state = self.state();
            if state.running.get(&session_id) == Some(&name) {
                state.running.remove(&session_id);
            }
        }
        if oom_killed {
            // The agent hit its own limit: contained, but the user should know why it stopped.
            tracing::warn!(session = %session_id, exit_code,
                "container exited: out of memory (the kernel killed the agent at its `resources.memory` limit)");
        } else {
            tracing::info!(session = %session_id, exit_code, "container exited");
        }
        // No receiver is fine: nobody listens yet.
        let _ = self.inner.exits.send(Exited {
            session_id,
            exit_code,
            oom_killed,
        });
    }

    /// Whether Docker saw the container's memory cgroup kill it (read before removal).
    async fn was_oom_killed(&self, name: &str) -> bool {
        match self.inner.docker.client.inspect_container(name, None).await {
            Ok(container) => container
                .state
                .and_then(|state| state.oom_killed)
                .unwrap_or(false),
            Err(err) => {
                tracing::debug!(container = %name, error = %err, "cannot inspect exited container");
                false
            }
        }
    }

    async fn wait_exit(&self, name: &str) -> i64 {
        loop {
            let mut stream = self.inner.docker.client.wait_container(name, None);
            match stream.next().await {
                Some(Ok(response)) => return response.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    return code;
                }
                // The daemon holds the response open while the container runs; a client
                // timeout only means "still running".
                Some(Err(bollard::errors::Error::RequestTimeoutError)) => continue,
                Some(Err(err)) if is_not_found(&err) => return -1,
                Some(Err(err)) => {
                    tracing::warn!(container = %name, error = %err, "waiting for container failed");
                    return -1;
                }
                None => return -1,
            }
        }
    }

    async fn stop_container(&self, name: &str) {
        let options = bollard::query_parameters::StopContainerOptions {
            t: Some(super::spawn::STOP_TIMEOUT_SECS as i32),
            ..Default::default()
        };
        match self
            .inner
            .docker
            .client
            .stop_container(name, Some(options))
            .await
        {
            Ok(()) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => tracing::warn!(container = %name, error = %err, "docker stop failed"),
        }
        if let Err(err) = remove_quietly(&self.inner.docker, name).await {
            tracing::warn!(container = %name, error = %err, "docker rm failed");
        }
        self.wait_gone(name).await;
    }

    /// Waits (bounded) until the daemon no longer knows the container: a removal started by
    /// the exit watcher may still be in progress when ours returns 409.
    async fn wait_gone(&self, name: &str) {
        for _ in 0..GONE_POLLS {
            match self.inner.docker.client.inspect_container(name, None).await {
                Err(err) if is_not_found(&err) => return,
                Err(err) => {
                    tracing::warn!(container = %name, error = %err, "docker inspect failed");
                    return;
                }
                Ok(_) => tokio::time::sleep(GONE_POLL_INTERVAL).await,
            }
        }
        tracing::warn!(container = %name, "container still present after removal");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_dedups_and_bounds() {
        let mut state = State::default();
        let Admission::Start(sender, _) = state.admit("a", 2) else {
            panic!("first wake starts a spawn");
        };
        assert!(matches!(state.admit("a", 2), Admission::Join(_)));
        let Admission::Start(_other, _) = state.admit("b", 2) else {
            panic!("second session fits");
        };
        assert!(matches!(state.admit("c", 2), Admission::Full));
        // a's spawn settles: it is now running, and joiners see the outcome.
        state.waking.remove("a");
        state.running.insert("a".into(), "nanoclaw-x-a".into());
        sender.send_replace(Some(true));
        assert!(matches!(state.admit("a", 2), Admission::Running));
        assert!(matches!(state.admit("c", 2), Admission::Full));
        state.running.remove("a");
        state.closing = true;
        assert!(
            matches!(state.admit("c", 2), Admission::Full),
            "no wakes during stop_all"
        );
        state.closing = false;
        assert!(matches!(state.admit("c", 2), Admission::Start(..)));
    }
}
