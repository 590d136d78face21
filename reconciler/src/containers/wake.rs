//! The [`Runner`]: which session has a running container, waking one (deduplicated, bounded by
//! `max_concurrent`), watching it until it exits, and stopping it.
//!
//! The in-memory `running` map is the authority for "is running"
//! (docs/runtime.md#waking-and-spawning-a-container); the runtime mirrors it into the central DB
//! from [`Exited`] events. `wake` never errors or panics: a failure is logged with the session id
//! and reported as [`Woken::Failed`] with the reason, so the row stays pending and the runtime
//! retries. Every task runs on the Runner's own `TaskTracker`.
//!
//! An exit the runtime did not ask for ([`Exited::requested`] is `None`) with a non-zero code
//! carries the last lines the container wrote ([`Exited::tail`], read from Docker before the
//! container is removed), so the runtime can say why it failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

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
/// Most lines of a failed container's output kept in [`Exited::tail`].
pub const TAIL_LINES: usize = 20;
/// Longest kept line, in characters (longer lines are cut).
const TAIL_LINE_CHARS: usize = 400;
/// Most bytes of output read from Docker for the tail.
const TAIL_BYTES: usize = 64 * 1024;

/// A session container ended (exited, was stopped, or vanished).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exited {
    pub session_id: String,
    /// The agent the container ran (its label).
    pub agent: String,
    /// The container's exit code; `-1` when it could not be read.
    pub exit_code: i64,
    /// The kernel killed it at its memory limit (`resources.memory`).
    pub oom_killed: bool,
    /// Why the runtime stopped it (`idle`, `evicted…`, `stuck`, `shutdown`); `None` when it
    /// ended on its own or was killed from outside (`docker kill`).
    pub requested: Option<String>,
    /// How long it ran.
    pub ran_for: Duration,
    /// For an unrequested exit with a non-zero code: its last output lines (stdout and
    /// stderr, oldest first, at most [`TAIL_LINES`]); empty otherwise.
    pub tail: Vec<String>,
}

impl Exited {
    /// Ended with an error nobody asked for: a crash, a fatal error, `docker kill`.
    pub fn is_failure(&self) -> bool {
        self.requested.is_none() && self.exit_code != 0
    }
}

/// What a wake achieved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Woken {
    /// A container runs for the session (already, or now).
    Running,
    /// `max_concurrent` containers run or are starting (or the runner is shutting down).
    Full,
    /// The container could not be started; the reason is logged and returned.
    Failed(String),
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

/// One running container.
#[derive(Clone, Debug)]
struct Container {
    name: String,
    agent: String,
    started: Instant,
    started_at: SystemTime,
    /// Its `nanoclaw.config-hash` label: what it was started with.
    config_hash: String,
    /// Set by `stop`: why the runtime is stopping it.
    stopping: Option<String>,
}

/// The settled outcome of a spawn, shared with every joined waker.
type Outcome = watch::Receiver<Option<Woken>>;

/// Sessions with a container, and sessions whose spawn is in flight.
#[derive(Debug, Default)]
struct State {
    /// session id → its container.
    running: HashMap<String, Container>,
    /// session id → the outcome of its in-flight spawn (`None` until it settles).
    waking: HashMap<String, Outcome>,
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
    Join(Outcome),
    /// Start the spawn and publish its outcome on the sender.
    Start(watch::Sender<Option<Woken>>, Outcome),
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

    /// Makes sure a container runs for the session. Concurrent wakes of one session share one
    /// spawn and its answer.
    pub async fn wake(&self, spec: SpawnSpec) -> Woken {
        let session_id = spec.session_id.clone();
        let admission = self.state().admit(&session_id, self.inner.max_concurrent);
        let mut outcome = match admission {
            Admission::Running => return Woken::Running,
            Admission::Full => {
                tracing::debug!(session = %session_id, max = self.inner.max_concurrent,
                    "container limit reached");
                return Woken::Full;
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
            Ok(answer) => answer.clone().unwrap_or(Woken::Full),
            Err(_) => Woken::Failed("the spawn was abandoned".to_string()),
        }
    }

    /// The Docker client it drives (the daemon's image builds use the same connection).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    pub fn is_running(&self, session_id: &str) -> bool {
        self.state().running.contains_key(session_id)
    }

    /// The agent whose container runs for the session.
    pub fn agent(&self, session_id: &str) -> Option<String> {
        Some(self.state().running.get(session_id)?.agent.clone())
    }

    /// When the session's running container started.
    pub fn started_at(&self, session_id: &str) -> Option<SystemTime> {
        Some(self.state().running.get(session_id)?.started_at)
    }

    /// The configuration hash the session's running container was started with.
    pub fn config_hash(&self, session_id: &str) -> Option<String> {
        Some(self.state().running.get(session_id)?.config_hash.clone())
    }

    /// Whether the runtime already asked the session's running container to stop.
    pub fn is_stopping(&self, session_id: &str) -> bool {
        self.state()
            .running
            .get(session_id)
            .is_some_and(|container| container.stopping.is_some())
    }

    /// Containers running or starting (what counts against `max_concurrent`).
    pub fn occupied(&self) -> usize {
        let state = self.state();
        state.running.len() + state.waking.len()
    }

    /// Session ids with a running container, sorted.
    pub fn running(&self) -> Vec<String> {
        let mut sessions: Vec<String> = self.state().running.keys().cloned().collect();
        sessions.sort();
        sessions
    }

    /// Stops and removes the session's container; no-op when none is tracked.
    pub async fn stop(&self, session_id: &str, reason: &str) {
        self.stop_within(session_id, reason, super::spawn::STOP_TIMEOUT_SECS)
            .await;
    }

    /// [`Runner::stop`] with `grace_secs` between SIGTERM (the runner stops at its next safe
    /// point: the turn in flight finishes and its replies are written) and SIGKILL.
    pub async fn stop_within(&self, session_id: &str, reason: &str, grace_secs: i64) {
        let name = {
            let mut state = self.state();
            let Some(container) = state.running.get_mut(session_id) else {
                return;
            };
            container.stopping.get_or_insert_with(|| reason.to_string());
            container.name.clone()
        };
        tracing::info!(session = %session_id, reason, container = %name, "stopping container");
        self.stop_container(&name, grace_secs).await;
        let mut state = self.state();
        if state
            .running
            .get(session_id)
            .is_some_and(|container| container.name == name)
        {
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
    async fn start(&self, spec: SpawnSpec, outcome: watch::Sender<Option<Woken>>) {
        let session_id = spec.session_id.clone();
        let result = spawn(&self.inner.docker, &self.inner.slug, &spec).await;
        let mut stop_now = None;
        let answer = {
            let mut state = self.state();
            state.waking.remove(&session_id);
            match result {
                Ok(name) => {
                    tracing::info!(session = %session_id, container = %name, "container started");
                    let container = Container {
                        name: name.clone(),
                        agent: spec.agent.clone(),
                        started: Instant::now(),
                        started_at: SystemTime::now(),
                        config_hash: spec.config_hash.clone(),
                        stopping: state.closing.then(|| "shutdown".to_string()),
                    };
                    state.running.insert(session_id.clone(), container);
                    if state.closing {
                        stop_now = Some(name.clone());
                    }
                    let runner = self.clone();
                    let session = session_id.clone();
                    self.inner
                        .tasks
                        .spawn(async move { runner.watch_exit(session, name).await });
                    Woken::Running
                }
                Err(err) => {
                    tracing::warn!(session = %session_id, error = %err, "container spawn failed");
                    Woken::Failed(err.to_string())
                }
            }
        };
        outcome.send_replace(Some(answer));
        if let Some(name) = stop_now {
            tracing::info!(session = %session_id, "shutting down: stopping the container just started");
            self.stop_container(&name, super::spawn::STOP_TIMEOUT_SECS)
                .await;
        }
    }

    /// Waits for the container to end, keeps the output of a failure, removes the container,
    /// untracks it and emits [`Exited`].
    async fn watch_exit(&self, session_id: String, name: String) {
        let exit_code = self.wait_exit(&name).await;
        let oom_killed = self.was_oom_killed(&name).await;
        let container = self
            .state()
            .running
            .get(&session_id)
            .filter(|container| container.name == name)
            .cloned();
        let requested = container
            .as_ref()
            .map_or(Some("stopped".to_string()), |container| {
                container.stopping.clone()
            });
        // Read before removing: a removed container's output is gone.
        let tail = if requested.is_none() && exit_code != 0 {
            self.tail(&name).await
        } else {
            Vec::new()
        };
        if let Err(err) = remove_quietly(&self.inner.docker, &name).await {
            tracing::warn!(session = %session_id, error = %err, "cannot remove exited container");
        }
        // A `stop` may be removing it at the same time: the exit is told only once the name is
        // free, so a session re-woken on this event can create its container again.
        self.wait_gone(&name).await;
        {
            let mut state = self.state();
            if state
                .running
                .get(&session_id)
                .is_some_and(|tracked| tracked.name == name)
            {
                state.running.remove(&session_id);
            }
        }
        if oom_killed {
            // The agent hit its own limit: contained, but the user should know why it stopped.
            tracing::warn!(session = %session_id, exit_code,
                "container exited: out of memory (the kernel killed the agent at its `resources.memory` limit)");
        } else {
            tracing::debug!(session = %session_id, exit_code, ?requested, "container exited");
        }
        // No receiver is fine: nobody listens yet.
        let _ = self.inner.exits.send(Exited {
            session_id,
            agent: container
                .as_ref()
                .map(|container| container.agent.clone())
                .unwrap_or_default(),
            exit_code,
            oom_killed,
            requested,
            ran_for: container.map_or(Duration::ZERO, |container| container.started.elapsed()),
            tail,
        });
    }

    /// The container's last output lines (bounded), oldest first; empty when unreadable.
    async fn tail(&self, name: &str) -> Vec<String> {
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: TAIL_LINES.to_string(),
            ..Default::default()
        };
        let mut stream = self.inner.docker.client.logs(name, Some(options));
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(output) => {
                    let room = TAIL_BYTES.saturating_sub(bytes.len());
                    let part = output.as_ref();
                    bytes.extend_from_slice(&part[..part.len().min(room)]);
                    if room <= part.len() {
                        break;
                    }
                }
                Err(err) => {
                    tracing::debug!(container = %name, error = %err, "cannot read container output");
                    break;
                }
            }
        }
        tail_lines(&bytes, TAIL_LINES, TAIL_LINE_CHARS)
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

    async fn stop_container(&self, name: &str, grace_secs: i64) {
        let options = bollard::query_parameters::StopContainerOptions {
            t: Some(i32::try_from(grace_secs).unwrap_or(i32::MAX)),
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

/// The last `max_lines` non-empty lines of `output`, each cut to `max_chars` characters.
pub fn tail_lines(output: &[u8], max_lines: usize, max_chars: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .map(|line| match line.char_indices().nth(max_chars) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line.to_string(),
        })
        .collect();
    let skip = lines.len().saturating_sub(max_lines);
    lines.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_cut_to_length() {
        let output = b"one\n\ntwo\r\nthree is long\nfour";
        assert_eq!(tail_lines(output, 3, 5), ["two", "three…", "four"]);
        assert_eq!(tail_lines(b"", 3, 5), Vec::<String>::new());
        assert_eq!(
            tail_lines("\u{e9}\u{e9}\u{e9}".as_bytes(), 1, 2),
            ["\u{e9}\u{e9}…"]
        );
    }

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
        state.running.insert(
            "a".into(),
            Container {
                name: "nanoclaw-x-a".into(),
                agent: "andy".into(),
                started: Instant::now(),
                started_at: SystemTime::now(),
                config_hash: "h1".into(),
                stopping: None,
            },
        );
        sender.send_replace(Some(Woken::Running));
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
