//! The long-running runtime (`nanoclaw run`): the message path and its supervisor.
//!
//! ```text
//! channel adapter ──InboundEvent──▶ router (thread) ──rows──▶ sessions/<agent>/<id>/inbound.db
//!                                      │ wake(session)
//!                                      ▼
//!                                   waker ──prepare + containers::Runner::wake──▶ container
//!                                                                                │ agent-runner
//! channel adapter ◀──Outbound── delivery (thread) ◀──notify/poll── outbound.db ◀─┘
//!                                sweep (every minute): acks, due wakes, stuck/idle containers
//! ```
//!
//! [`run`] starts every part as a tracked task or thread and stops them in order on
//! cancellation: channels first (no new input), then the router drains what it has, then
//! delivery, then containers (unless kept). Nothing here talks to Docker directly. It needs the
//! data dir's [`lock::DaemonLock`]: only the one daemon of a data dir may remove leftover
//! containers and bind the socket.

pub mod a2a;
pub mod attachments;
pub mod delivery;
pub mod health;
pub mod ids;
pub mod layout;
pub mod lock;
pub mod route;
pub mod router;
pub mod session;
pub mod sweep;
pub mod watch;

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use agent_runner::session_db;
use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::channels::cli_socket::{self, CliSocket, ReaderArrived};
use crate::channels::{Adapters, Envelope};
use crate::containers::{self, Runner, SpawnSpec};
use crate::credentials::{self, Placeholders, Proxy, ProxySettings};
use crate::db;
use crate::paths::Paths;

/// Runtime settings resolved from flags at startup.
#[derive(Clone, Debug)]
pub struct Settings {
    pub paths: Paths,
    /// Images for agents without an `image` override, by the recipe their provider needs.
    pub images: crate::containers::AgentImages,
    /// Most containers running at once; further wakes wait for the sweep.
    pub max_containers: usize,
    /// Stop a container after this long with nothing to do.
    pub idle_timeout: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
    /// Leave containers running at shutdown (they are reaped at the next start).
    pub keep_containers: bool,
    /// Where the credential proxy sends API requests (`NANOCLAW_ANTHROPIC_BASE_URL`).
    pub anthropic_upstream: credentials::Upstream,
    /// The daemon's environment credential, used when none is stored (`credentials::from_env`).
    pub env_credential: Option<(credentials::Credential, credentials::Source)>,
}

/// Inbound events buffered between channels and the router.
const INBOUND_BUFFER: usize = 4096;

/// Runs until `stop` is cancelled, then shuts down cleanly. `_lock` proves this process is the
/// data dir's one daemon, so the containers and socket it finds are leftovers it may remove.
pub async fn run(
    settings: Settings,
    docker: containers::Docker,
    stop: CancellationToken,
    _lock: &lock::DaemonLock,
) -> anyhow::Result<()> {
    let paths = settings.paths.clone();
    paths
        .ensure()
        .with_context(|| format!("creating {}", paths.data.display()))?;
    let conn = db::open(&paths.db()).context("opening the central DB")?;
    let reset = db::sessions::reset_container_status(&conn)?;
    if reset > 0 {
        info!(
            sessions = reset,
            "container status reset after an unclean stop"
        );
    }
    let slug = paths.slug();
    let removed = containers::remove_orphans(&docker, &slug)
        .await
        .context("removing orphan containers")?;
    if removed > 0 {
        info!(removed, "orphan containers of this install removed");
    }
    let runner = Runner::new(docker, slug, settings.max_containers);
    let started = Started::default();
    let tasks = TaskTracker::new();

    // The credential proxy: containers reach the Anthropic API only through it. It stops
    // after the containers, so a container's last request is still answered.
    // TODO(#10): the spawn registers a placeholder per container in `placeholders` (and
    // revokes it on exit), mounts `credentials::proxy::socket_dir` and sets the runner's env.
    let placeholders = Placeholders::new();
    let proxy_settings = ProxySettings::new(
        &paths.data,
        settings.anthropic_upstream.clone(),
        settings.env_credential.clone(),
    );
    let proxy_socket = proxy_settings.socket.clone();
    let proxy = Proxy::bind(proxy_settings, placeholders.clone())
        .with_context(|| format!("binding {}", proxy_socket.display()))?;
    let proxy_stop = CancellationToken::new();
    tasks.spawn(proxy.run(proxy_stop.clone()));

    // Channels.
    let cli = Arc::new(CliSocket::new());
    let mut adapters = Adapters::default();
    adapters.register(cli.clone());
    let (inbound_tx, inbound_rx) = mpsc::channel::<Envelope>(INBOUND_BUFFER);
    let (reader_tx, mut reader_rx) = mpsc::channel::<ReaderArrived>(64);
    let socket_path = paths.cli_socket();
    let (listener, socket_file) = cli_socket::bind(&socket_path)
        .with_context(|| format!("binding {}", socket_path.display()))?;
    let channels_stop = CancellationToken::new();
    tasks.spawn(cli.serve(
        listener,
        socket_file,
        inbound_tx,
        reader_tx,
        tasks.clone(),
        channels_stop.clone(),
    ));

    // Waker: prepares sessions and starts containers; never blocks the router.
    let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<String>();
    let waker = Waker {
        settings: settings.clone(),
        runner: runner.clone(),
        tasks: tasks.clone(),
        started: started.clone(),
        notices: Notices::new(paths.clone(), adapters.clone()),
    };
    let waker_stop = stop.clone();
    tasks.spawn(async move {
        loop {
            tokio::select! {
                () = waker_stop.cancelled() => break,
                Some(session) = wake_rx.recv() => waker.wake(session),
            }
        }
    });

    // Router thread.
    let router = router::Router::new(paths.clone(), adapters.clone(), wake_tx.clone())?;
    let router_thread = std::thread::Builder::new()
        .name("router".into())
        .spawn(move || router.run(inbound_rx))
        .context("starting the router thread")?;

    // Delivery thread, fed by file events, readers, container exits and polls.
    let (work_tx, work_rx) = std_mpsc::channel::<delivery::Work>();
    let delivery =
        delivery::Delivery::new(paths.clone(), adapters.clone())?.waking(wake_tx.clone());
    let delivery_thread = std::thread::Builder::new()
        .name("delivery".into())
        .spawn(move || delivery.run(work_rx))
        .context("starting the delivery thread")?;
    let _watcher = watch::sessions(&paths, work_tx.clone()).context("watching session folders")?;
    let _ = work_tx.send(delivery::Work::All);
    {
        let work_tx = work_tx.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut poll = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    Some(reader) = reader_rx.recv() => {
                        let _ = work_tx.send(delivery::Work::Reader {
                            channel_type: reader.channel_type,
                            platform_id: reader.platform_id,
                        });
                    }
                    _ = poll.tick() => {
                        let _ = work_tx.send(delivery::Work::All);
                    }
                }
            }
        });
    }

    // Container exits: record them, and drain what the container wrote last.
    {
        let mut exits = runner.exits();
        let paths = paths.clone();
        let stop = stop.clone();
        let work_tx = work_tx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    exit = exits.recv() => match exit {
                        Ok(exit) => {
                            let paths = paths.clone();
                            let session = exit.session_id.clone();
                            let _ = tokio::task::spawn_blocking(move || mark_stopped(&paths, &session)).await;
                            let _ = work_tx.send(delivery::Work::All);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
        });
    }

    // Sweep.
    {
        let settings = settings.clone();
        let hooks = SweepHooks {
            runner: runner.clone(),
            wake: wake_tx.clone(),
            handle: tokio::runtime::Handle::current(),
            tasks: tasks.clone(),
            started: started.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(settings.sweep_interval);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {
                        let settings = settings.clone();
                        let hooks = hooks.clone();
                        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                            let conn = db::open(&settings.paths.db())?;
                            sweep::sweep_once(&conn, &settings.paths, &hooks, settings.idle_timeout);
                            Ok(())
                        }).await;
                        if let Ok(Err(err)) = result {
                            warn!(error = %format!("{err:#}"), "sweep failed");
                        }
                    }
                }
            }
        });
    }

    info!(data = %paths.data.display(), "nanoclaw running");
    stop.cancelled().await;
    info!("shutting down");
    channels_stop.cancel();
    drop(wake_tx);
    // The router ends when every inbound sender is gone (the channel tasks hold them).
    tasks.close();
    let _ = tokio::task::spawn_blocking(move || router_thread.join()).await;
    let _ = work_tx.send(delivery::Work::Stop);
    let _ = tokio::task::spawn_blocking(move || delivery_thread.join()).await;
    if settings.keep_containers {
        info!("leaving containers running (--keep-containers)");
    } else {
        runner.stop_all().await;
        // The exit watcher has stopped; record the stops so the next start does not report
        // an unclean stop.
        let db_path = paths.db();
        let _ = tokio::task::spawn_blocking(move || match db::open(&db_path) {
            Ok(conn) => {
                if let Err(err) = db::sessions::reset_container_status(&conn) {
                    warn!(error = %err, "container status not recorded at shutdown");
                }
            }
            Err(err) => {
                warn!(error = %format!("{err:#}"), "container status not recorded at shutdown")
            }
        })
        .await;
    }
    proxy_stop.cancel();
    tasks.wait().await;
    info!("stopped");
    Ok(())
}

fn mark_stopped(paths: &Paths, session: &str) {
    match db::open(&paths.db()) {
        Ok(conn) => {
            if let Err(err) = db::sessions::set_container_status(&conn, session, false) {
                warn!(session, error = %err, "container status not recorded");
            }
        }
        Err(err) => warn!(session, error = %err, "container status not recorded"),
    }
}

/// Tells a chat, once until its agent's container next starts, that the agent could not be
/// started: otherwise the person waits for a reply that is not coming. The messages stay
/// pending and the sweep keeps retrying; the details are in the log.
#[derive(Clone)]
struct Notices {
    paths: Paths,
    adapters: Adapters,
    /// Sessions already told; cleared when their container starts.
    told: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl Notices {
    fn new(paths: Paths, adapters: Adapters) -> Notices {
        Notices {
            paths,
            adapters,
            told: Arc::default(),
        }
    }

    async fn cannot_start(&self, session: &str) {
        let first = self
            .told
            .lock()
            .map(|mut told| told.insert(session.to_string()))
            .unwrap_or(false);
        if !first {
            return;
        }
        let notices = self.clone();
        let session = session.to_string();
        let _ = tokio::task::spawn_blocking(move || notices.tell(&session)).await;
    }

    fn started(&self, session: &str) {
        if let Ok(mut told) = self.told.lock() {
            told.remove(session);
        }
    }

    fn tell(&self, session: &str) {
        let address = db::open(&self.paths.db()).and_then(|conn| {
            conn.query_row(
                "SELECT s.agent_group_id, m.channel_type, m.platform_id, s.thread_id
                 FROM sessions s JOIN messaging_groups m ON m.id = s.messaging_group_id WHERE s.id = ?1",
                [session],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get(2)?, row.get(3)?)),
            )
        });
        let Ok((agent, channel_type, platform_id, thread_id)) = address else {
            return;
        };
        let Some(adapter) = self.adapters.get(&channel_type) else {
            return;
        };
        let text = format!(
            "⚠️ The agent `{agent}` could not be started, so it cannot answer yet. Your message is kept and will be retried; the nanoclaw log says why."
        );
        let notice = crate::channels::Outbound {
            id: ids::generate("notice"),
            agent: Some(agent.clone()),
            platform_id,
            thread_id,
            kind: "chat".to_string(),
            content: serde_json::json!({ "text": text }),
            in_reply_to: None,
        };
        if let Err(err) = adapter.deliver(&notice) {
            warn!(session, error = %err, "could not tell the chat that the agent cannot start");
        }
    }
}

/// When each running container started (for idle teardown before its first heartbeat).
#[derive(Clone, Default)]
struct Started(Arc<Mutex<HashMap<String, SystemTime>>>);

impl Started {
    fn set(&self, session: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(session.to_string(), SystemTime::now());
        }
    }

    fn get(&self, session: &str) -> Option<SystemTime> {
        self.0.lock().ok()?.get(session).copied()
    }
}

/// Starts containers for sessions, one tracked task per wake. `Runner::wake` de-duplicates
/// concurrent wakes of one session and never fails; a `false` leaves the messages pending.
#[derive(Clone)]
struct Waker {
    settings: Settings,
    runner: Runner,
    tasks: TaskTracker,
    started: Started,
    notices: Notices,
}

impl Waker {
    fn wake(&self, session: String) {
        if self.runner.is_running(&session) {
            return;
        }
        let waker = self.clone();
        self.tasks.spawn(async move {
            let settings = waker.settings.clone();
            let id = session.clone();
            let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<session::Prepared> {
                let conn = db::open(&settings.paths.db())?;
                let row = db::sessions::get(&conn, &id)?.with_context(|| format!("session {id} not found"))?;
                session::prepare(&conn, &settings.paths, &row, &settings.images)
            })
            .await;
            let prepared = match prepared {
                Ok(Ok(prepared)) => prepared,
                Ok(Err(err)) => {
                    warn!(session = %session, error = %format!("{err:#}"), "wake failed; the sweep will retry");
                    waker.notices.cannot_start(&session).await;
                    return;
                }
                Err(err) => {
                    warn!(session = %session, error = %err, "wake failed; the sweep will retry");
                    return;
                }
            };
            let spec = SpawnSpec {
                session_id: prepared.session_id.clone(),
                agent: prepared.agent.clone(),
                session_dir: prepared.session_dir.clone(),
                group_dir: prepared.group_dir.clone(),
                image: prepared.image.clone(),
                extra_mounts: prepared
                    .extra_mounts
                    .iter()
                    .map(|mount| containers::MountSpec {
                        host: mount.host.clone(),
                        container: mount.container.clone(),
                        readonly: mount.readonly,
                    })
                    .collect(),
                env: Vec::new(),
                config_hash: prepared.config_hash.clone(),
                resources: prepared.resources,
                network: prepared.network,
            };
            let mut running = waker.runner.wake(spec.clone()).await;
            if !running && waker.runner.running().len() >= waker.settings.max_containers {
                // At the limit: make room by stopping the least recently active idle container,
                // so a new conversation never waits behind containers with nothing to do.
                if let Some(victim) = waker.idle_victim().await {
                    info!(session = %victim, for_session = %session, "container limit reached: stopping the least recently active idle container");
                    waker.runner.stop(&victim, "evicted for a new session").await;
                    running = waker.runner.wake(spec).await;
                }
            }
            if !running && waker.runner.running().len() < waker.settings.max_containers {
                // Not a capacity wait: the container could not be started (logged by the runner).
                waker.notices.cannot_start(&session).await;
            }
            if running {
                waker.notices.started(&session);
                waker.started.set(&session);
                let paths = waker.settings.paths.clone();
                let _ = tokio::task::spawn_blocking(move || match db::open(&paths.db()) {
                    Ok(conn) => {
                        let _ = db::sessions::set_container_status(&conn, &session, true);
                    }
                    Err(err) => warn!(error = %err, "container status not recorded"),
                })
                .await;
            }
        });
    }
}

impl Waker {
    /// The running session with nothing due and nothing in flight whose last sign of life
    /// (heartbeat, else container start) is oldest.
    async fn idle_victim(&self) -> Option<String> {
        let running = self.runner.running();
        let paths = self.settings.paths.clone();
        let started = self.started.clone();
        tokio::task::spawn_blocking(move || {
            let conn = db::open(&paths.db()).ok()?;
            running
                .into_iter()
                .filter_map(|id| {
                    let row = db::sessions::get(&conn, &id).ok()??;
                    let dir = paths.session(&row.agent, &id);
                    let inbound =
                        session_db::open_inbound_host(&dir.join(session_db::INBOUND_FILE)).ok()?;
                    let outbound =
                        session_db::open_outbound_host(&session_db::outbound_path(&dir)).ok()?;
                    let idle = session_db::count_due(&inbound).ok()? == 0
                        && session_db::processing_claims(&inbound, &outbound)
                            .ok()?
                            .is_empty();
                    let last = session_db::heartbeat_mtime(&dir).or_else(|| started.get(&id))?;
                    idle.then_some((last, id))
                })
                .min()
                .map(|(_, id)| id)
        })
        .await
        .ok()
        .flatten()
    }
}

/// The sweep's view of containers: the runner, plus the waker for wakes.
#[derive(Clone)]
struct SweepHooks {
    runner: Runner,
    wake: mpsc::UnboundedSender<String>,
    handle: tokio::runtime::Handle,
    tasks: TaskTracker,
    started: Started,
}

impl sweep::Containers for SweepHooks {
    fn is_running(&self, session: &str) -> bool {
        self.runner.is_running(session)
    }

    fn started(&self, session: &str) -> Option<SystemTime> {
        self.started.get(session)
    }

    fn wake(&self, session: &str) {
        let _ = self.wake.send(session.to_string());
    }

    fn stop(&self, session: &str, reason: &str) {
        let runner = self.runner.clone();
        let session = session.to_string();
        let reason = reason.to_string();
        self.tasks.spawn_on(
            async move { runner.stop(&session, &reason).await },
            &self.handle,
        );
    }
}
