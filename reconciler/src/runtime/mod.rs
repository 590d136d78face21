//! The long-running runtime (`nanoclaw run`): the message path and its supervisor.
//!
//! ```text
//! channel adapter ──Envelope──▶ router (thread) ──rows──▶ sessions/<agent>/<id>/inbound.db
//!                                  │ Wakes                               │
//!                                  ▼                                     ▼
//!                               waker (task) ──Runner::wake──▶ container (agent-runner)
//!                                                                        │
//! outbox (task per adapter) ◀── delivery (thread) ◀──Inbox── watch ◀── outbound.db
//!        │ Adapter::deliver        ▲ Report
//!        └─────────────────────────┘
//! sweeper (task): acks, due wakes, stuck/idle containers; exits (task): exit → drain
//! approvals (task): answers to cards → decisions, outcomes, held messages back to the router;
//!                   a new reader → its chat's pending cards shown again
//!                   answers to agents' questions → the asking session (questions)
//! executor (task): stale containers replaced at a safe point, restart requests, per-agent
//!                  image builds (background tasks, `builds`)
//! ```
//!
//! This file is the index: [`run`] starts each actor (its own file, its state documented
//! there) in order and stops them in order on cancellation: channels first (no new input) and
//! the approvals actor with them, the router drains what it has, delivery drains and waits briefly for rows in flight, the
//! outboxes stop, then the containers (unless kept), then the credential proxy. Every channel
//! between actors is bounded and says what happens when it is full:
//!
//! | from → to | channel | when full |
//! |---|---|---|
//! | adapters → router | `mpsc` of [`INBOUND`] envelopes | the adapter waits (backpressure) |
//! | adapters → approvals | `mpsc` of [`approvals::ANSWERS`] answers to cards | the adapter waits |
//! | approvals → router | the same `mpsc` as the adapters (approved messages routed again) | the actor waits |
//! | adapters → approvals | `mpsc` of [`approvals::READERS`] new readers (pending cards shown again) | dropped (the next hello asks again) |
//! | router, delivery, sweep → waker | [`waker::Wakes`], [`waker::WAKES`] sessions, each once | one sweep pass wakes every session with due work |
//! | delivery → waker | activity [`mailbox::Signal`] | coalesces (one flag) |
//! | waker's tasks → waker | `mpsc` of [`waker::INBOX`] | the task waits |
//! | runner → waker, exits | `broadcast` of the runner's exit events | lagged: re-check / drain everything |
//! | watch, channels, exits, outboxes → delivery | [`work::Inbox`], [`work::SESSIONS`] sessions, each once | drain every active session |
//! | router, delivery, waker → outboxes | `mpsc` of [`outbox::CAPACITY`] per adapter | row stays queued (no attempt counted); notice dropped |
//! | router, delivery, waker → typing | `mpsc` of [`typing::BUFFER`] events | the event is dropped (the indicator is best effort) |
//!
//! Nothing here talks to Docker directly. It needs the data dir's [`lock::DaemonLock`]: only the
//! one daemon of a data dir may remove leftover containers and bind the socket.

pub mod a2a;
pub mod approvals;
pub mod attachments;
pub mod backoff;
pub mod builds;
pub mod compose;
pub mod delivery;
pub mod evict;
pub mod executor;
pub mod exits;
pub mod health;
pub mod instructions;
pub mod layout;
pub mod lease;
pub mod lock;
pub mod mailbox;
pub mod new_chat;
pub mod notice;
pub mod outbox;
pub mod outbox_files;
pub mod pairing;
pub mod questions;
pub mod reshow;
pub mod route;
pub mod router;
pub mod self_modify;
pub mod sent_log;
pub mod session;
pub mod sweep;
pub mod sweeper;
pub mod system;
pub mod typing;
pub mod waker;
pub mod watch;
pub mod work;

use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::channels::{self, Envelope, Ready, Start};
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
    /// How often the sweep runs (and due approvals expire).
    pub sweep_interval: Duration,
    /// How long an approval card may be answered.
    pub approval_ttl: Duration,
    /// Leave containers running at shutdown (they are reaped at the next start).
    pub keep_containers: bool,
    /// Where the credential proxy sends API requests (`NANOCLAW_ANTHROPIC_BASE_URL`).
    pub anthropic_upstream: credentials::Upstream,
    /// The daemon's environment credential, used when none is stored (`credentials::from_env`).
    pub env_credential: Option<(credentials::Credential, credentials::Source)>,
    /// Lands approved self-modifications in the manifests (`nanoclaw run` gives
    /// `ops::self_modify` on its manifest folder); `None`: they are refused.
    pub self_modify: Option<approvals::Lander>,
    /// The daemon's variables handed to Claude Code in agent containers
    /// (`env::PASSED_TO_CLAUDE_CODE`, those set).
    pub claude_code_env: Vec<(String, String)>,
}

/// Inbound envelopes buffered between the channels and the router.
pub const INBOUND: usize = 4096;

/// Runs until `stop` is cancelled, then shuts down cleanly. `_lock` proves this process is the
/// data dir's one daemon, so the containers and socket it finds are leftovers it may remove.
pub async fn run(
    settings: Settings,
    docker: containers::Docker,
    stop: CancellationToken,
    _lock: &lock::DaemonLock,
) -> anyhow::Result<()> {
    let in_use = startup(&settings.paths)?;
    let slug = settings.paths.slug();
    let removed = containers::remove_orphans(&docker, &slug)
        .await
        .context("removing orphan containers")?;
    if removed > 0 {
        info!(removed, "orphan containers of this install removed");
    }
    let runner = Runner::new(docker, slug, settings.max_containers);
    let actors = Actors::start(&settings, runner, &in_use, &stop).await?;
    info!(data = %settings.paths.data.display(), "nanoclaw running");
    stop.cancelled().await;
    info!("shutting down");
    actors.stop(&settings).await;
    info!("stopped");
    Ok(())
}

/// The running actors, and what stops each of them, in the order they stop.
struct Actors {
    channels_stop: CancellationToken,
    adapters: channels::Adapters,
    /// The approvals actor; ends on `channels_stop`, dropping its router sender.
    approvals: TaskTracker,
    router: std::thread::JoinHandle<()>,
    work: work::Inbox,
    delivery: std::thread::JoinHandle<()>,
    /// Stops watching when dropped.
    _watcher: notify::RecommendedWatcher,
    outboxes_stop: CancellationToken,
    runner: Runner,
    /// Stopped last, after the containers, so a container's last request is still answered.
    proxy_stop: CancellationToken,
    /// Every task (waker, exits, executor, sweeper, outboxes, proxy, and what they spawn).
    tasks: TaskTracker,
}

impl Actors {
    /// Starts the actors in order: the proxy, the channels and their outboxes, the waker, the
    /// router, delivery with its file watcher, the exit forwarder, the executor, the sweeper.
    /// The waker, the exit forwarder, the executor and the sweeper stop with `stop`; the others
    /// through [`Actors::stop`].
    async fn start(
        settings: &Settings,
        runner: Runner,
        in_use: &std::collections::BTreeSet<String>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Actors> {
        let paths = &settings.paths;
        let tasks = TaskTracker::new();
        let (proxy_stop, leases) = start_proxy(settings, &tasks)?;
        let wakes = waker::Wakes::new(waker::WAKES);
        let activity = mailbox::Signal::new();
        let sweep_now = mailbox::Signal::new();
        let work = work::Inbox::new();

        let (inbound_tx, inbound_rx) = mpsc::channel::<Envelope>(INBOUND);
        let (answers_tx, answers_rx) = mpsc::channel(approvals::ANSWERS);
        let (readers_tx, readers_rx) = mpsc::channel(approvals::READERS);
        let channels_stop = CancellationToken::new();
        let start = Start {
            inbound: inbound_tx.clone(),
            answers: answers_tx,
            ready: ready(&work, readers_tx),
            stop: channels_stop.clone(),
        };
        let adapters = channels::registry::start(paths, in_use, start).await?;
        let outboxes_stop = CancellationToken::new();
        let outboxes = outbox::Outboxes::start(
            adapters.clone(),
            work.clone(),
            &tasks,
            outboxes_stop.clone(),
        );

        let (typing_tx, typing_rx) = mpsc::channel(typing::BUFFER);
        let typing = typing::Typing::new(typing_tx);
        tasks.spawn(typing::run(
            adapters.clone(),
            typing_rx,
            runner.exits(),
            stop.clone(),
        ));

        let (waker, waker_inbox) = waker::Waker::new(
            settings.clone(),
            runner.clone(),
            outboxes.clone(),
            leases,
            tasks.clone(),
        );
        let waker = waker.typing(typing.clone());
        let inputs = waker::Inputs {
            wakes: wakes.clone(),
            activity: activity.clone(),
            exits: runner.exits(),
            sweep_now: sweep_now.clone(),
        };
        tasks.spawn(waker.run(waker_inbox, inputs, stop.clone()));

        // The approvals actor routes approved messages again through the router's queue; it
        // stops with the channels, so the router still ends once every sender is gone.
        let approvals = approvals::Approvals::new(
            paths,
            outboxes.clone(),
            inbound_tx,
            settings.sweep_interval,
        )?
        .self_modifying(settings.self_modify.clone(), wakes.clone())
        .with_questions(questions::Questions::new(
            paths,
            Some(runner.clone()),
            Some(wakes.clone()),
        )?);
        let approvals_tasks = TaskTracker::new();
        approvals_tasks.spawn(approvals.run(answers_rx, readers_rx, channels_stop.clone()));
        approvals_tasks.close();
        let router = router::Router::new(paths.clone(), outboxes.clone(), wakes.clone())?
            .with_approval_ttl(settings.approval_ttl)
            .typing(typing.clone())
            .spawn(inbound_rx)
            .context("starting the router thread")?;
        let delivery = delivery::Delivery::new(paths.clone(), outboxes)?
            .with_approval_ttl(settings.approval_ttl)
            .waking(wakes.clone(), activity)
            .typing(typing)
            .spawn(work.clone())
            .context("starting the delivery thread")?;
        let watcher = watch::sessions(paths, work.clone()).context("watching session folders")?;
        work.send(work::Work::All);
        tasks.spawn(exits::forward(runner.exits(), work.clone(), stop.clone()));
        let executor = executor::Executor::new(
            settings.clone(),
            runner.clone(),
            wakes.clone(),
            tasks.clone(),
            stop.clone(),
        );
        tasks.spawn(executor.run(stop.clone()));
        let sweeper = sweeper::Sweeper::new(settings.clone(), runner.clone(), wakes, tasks.clone());
        tasks.spawn(sweeper.run(sweep_now, stop.clone()));
        Ok(Actors {
            channels_stop,
            adapters,
            approvals: approvals_tasks,
            router,
            work,
            delivery,
            _watcher: watcher,
            outboxes_stop,
            runner,
            proxy_stop,
            tasks,
        })
    }

    /// Stops in order: channels (no new input), the router (it stores what it has), delivery
    /// (it drains, and waits briefly for rows in flight), the outboxes, the containers unless
    /// kept, the proxy; then waits for every task.
    async fn stop(self, settings: &Settings) {
        self.channels_stop.cancel();
        self.adapters.stop_all().await;
        self.approvals.wait().await;
        // The router ends once the adapters dropped their inbound senders.
        self.tasks.close();
        let router = self.router;
        let _ = tokio::task::spawn_blocking(move || router.join()).await;
        self.work.send(work::Work::Stop);
        let delivery = self.delivery;
        let _ = tokio::task::spawn_blocking(move || delivery.join()).await;
        self.outboxes_stop.cancel();
        if settings.keep_containers {
            info!("leaving containers running (--keep-containers)");
        } else {
            self.runner.stop_all().await;
            // The exit watcher has stopped; record the stops so the next start does not
            // report an unclean stop.
            let db_path = settings.paths.db();
            let _ = tokio::task::spawn_blocking(move || record_all_stopped(&db_path)).await;
        }
        self.proxy_stop.cancel();
        self.tasks.wait().await;
    }
}

/// Marks every session's container stopped in the central DB.
fn record_all_stopped(db_path: &std::path::Path) {
    let reset = db::open(db_path).and_then(|conn| db::sessions::reset_container_status(&conn));
    if let Err(err) = reset {
        warn!(error = %err, "container status not recorded at shutdown");
    }
}

/// Delivery's half of [`Ready`]: a chat whose replies may go now drains every session. A new
/// reader is also told to the approvals actor, which shows it the chat's pending cards.
fn ready(work: &work::Inbox, readers: mpsc::Sender<channels::ReaderArrived>) -> Ready {
    let work = work.clone();
    Ready::new(move |chat: channels::ReaderArrived| {
        if chat.new_reader && readers.try_send(chat.clone()).is_err() {
            tracing::debug!(chat = %chat.platform_id, "pending cards not shown: the approvals actor is busy or stopped");
        }
        work.send(work::Work::Reader {
            channel_type: chat.channel_type,
            platform_id: chat.platform_id,
        })
    })
}

/// Creates the data dir's folders, resets the container status an unclean stop left, and
/// returns the channel types the chats use.
fn startup(paths: &Paths) -> anyhow::Result<std::collections::BTreeSet<String>> {
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
    Ok(db::routing::channel_types(&conn)?)
}

/// Starts the credential proxy: containers reach the Anthropic API only through it. Returns
/// the token that stops it (after the containers, so a container's last request is still
/// answered) and the [`lease::Leases`] through which the waker lends each container that calls
/// the API a placeholder and voids it at exit.
fn start_proxy(
    settings: &Settings,
    tasks: &TaskTracker,
) -> anyhow::Result<(CancellationToken, lease::Leases)> {
    let placeholders = Placeholders::new();
    let proxy_settings = ProxySettings::new(
        &settings.paths.data,
        settings.anthropic_upstream.clone(),
        settings.env_credential.clone(),
    );
    let proxy_socket = proxy_settings.socket.clone();
    let leases = lease::Leases::new(
        placeholders.clone(),
        proxy_settings.store.clone(),
        settings.env_credential.clone(),
        settings.paths.slug(),
    );
    let proxy = Proxy::bind(proxy_settings, placeholders)
        .with_context(|| format!("binding {}", proxy_socket.display()))?;
    let stop = CancellationToken::new();
    tasks.spawn(proxy.run(stop.clone()));
    Ok((stop, leases))
}
