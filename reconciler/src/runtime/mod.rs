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
pub mod backoff;
pub mod compose;
pub mod delivery;
pub mod evict;
pub mod health;
pub mod layout;
pub mod lock;
pub mod notice;
pub mod outbox_files;
pub mod route;
pub mod router;
pub mod sent_log;
pub mod session;
pub mod sweep;
pub mod typing;
pub mod waker;
pub mod watch;

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::channels::cli_socket::{self, CliSocket, ReaderArrived};
use crate::channels::{Adapters, Envelope};
use crate::containers::{self, Runner};
use crate::credentials::{self, Placeholders, Proxy, ProxySettings};
use crate::db;
use crate::paths::Paths;

/// Runtime settings resolved from flags at startup.
#[derive(Clone, Debug)]
pub struct Settings {
    pub paths: Paths,
    /// Images for agents without an `image` override, by the recipe their provider needs.
    pub images: crate::containers::AgentImages,
    /// Most containers running at once; further wakes wait in the waker's queue.
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
/// How often the delivery backstop looks for `outbound.db` changes it was not told about.
const DELIVERY_BACKSTOP: Duration = Duration::from_secs(1);

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

    // Waker: prepares sessions and starts containers (queue, eviction, backoff); never blocks
    // the router.
    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<String>();
    let (activity_tx, activity_rx) = mpsc::unbounded_channel::<String>();
    let (waker, waker_inbox) = waker::Waker::new(
        settings.clone(),
        runner.clone(),
        adapters.clone(),
        tasks.clone(),
    );
    let waker_inputs = waker::Inputs {
        wakes: wake_rx,
        activity: activity_rx,
        exits: runner.exits(),
    };
    tasks.spawn(waker.run(waker_inbox, waker_inputs, stop.clone()));

    // Router thread.
    let router = router::Router::new(paths.clone(), adapters.clone(), wake_tx.clone())?;
    let router_thread = std::thread::Builder::new()
        .name("router".into())
        .spawn(move || router.run(inbound_rx))
        .context("starting the router thread")?;

    // Delivery thread, fed by file events, readers, container exits and polls.
    let (work_tx, work_rx) = std_mpsc::channel::<delivery::Work>();
    let delivery = delivery::Delivery::new(paths.clone(), adapters.clone())?
        .waking(wake_tx.clone(), activity_tx);
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
            let mut poll = tokio::time::interval(DELIVERY_BACKSTOP);
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
                        let _ = work_tx.send(delivery::Work::Backstop);
                    }
                }
            }
        });
    }

    // Container exits: drain what the container wrote last (the waker handles the rest).
    {
        let mut exits = runner.exits();
        let stop = stop.clone();
        let work_tx = work_tx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    exit = exits.recv() => match exit {
                        Ok(exit) => {
                            let _ = work_tx.send(delivery::Work::Session {
                                agent: exit.agent,
                                session: exit.session_id,
                            });
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            let _ = work_tx.send(delivery::Work::All);
                        }
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

/// The sweep's view of containers: the runner, plus the waker for wakes.
#[derive(Clone)]
struct SweepHooks {
    runner: Runner,
    wake: mpsc::UnboundedSender<String>,
    handle: tokio::runtime::Handle,
    tasks: TaskTracker,
}

impl sweep::Containers for SweepHooks {
    fn is_running(&self, session: &str) -> bool {
        self.runner.is_running(session)
    }

    fn started(&self, session: &str) -> Option<SystemTime> {
        self.runner.started_at(session)
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
