//! The sweep's actor: a tokio task that runs [`sweep::sweep_once`] every `--sweep-interval`
//! (the first at startup) and whenever it is asked to (a [`Signal`], raised by the waker when
//! its wake mailbox overflowed). A pass is blocking SQLite work: it runs in `spawn_blocking`,
//! inside a `sweep` span, one pass at a time; requests during a pass coalesce into one more.

use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info_span, warn};

use super::mailbox::Signal;
use super::waker::Wakes;
use super::{Settings, sweep};
use crate::containers::Runner;
use crate::db;

/// The sweep actor's state (owned by its task; each pass gets a copy).
pub struct Sweeper {
    /// Paths, the interval and the idle timeout (read only).
    settings: Settings,
    /// What the sweep may do to containers.
    hooks: Hooks,
}

impl Sweeper {
    /// A sweeper that wakes sessions through `wakes` and stops containers through `runner`,
    /// spawning the stops on `tasks`.
    pub fn new(settings: Settings, runner: Runner, wakes: Wakes, tasks: TaskTracker) -> Sweeper {
        Sweeper {
            settings,
            hooks: Hooks {
                runner,
                wakes,
                handle: tokio::runtime::Handle::current(),
                tasks,
            },
        }
    }

    /// Sweeps until `stop`: at every tick of the interval and whenever `now` is raised.
    pub async fn run(self, now: Signal, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.sweep_interval);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
                () = now.raised() => {}
            }
            self.pass().await;
        }
    }

    async fn pass(&self) {
        let settings = self.settings.clone();
        let hooks = self.hooks.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let _span = info_span!("sweep").entered();
            let conn = db::open(&settings.paths.db())?;
            sweep::sweep_once(&conn, &settings.paths, &hooks, settings.idle_timeout);
            Ok(())
        })
        .await;
        if let Ok(Err(err)) = result {
            warn!(error = %format!("{err:#}"), "sweep failed");
        }
    }
}

/// The sweep's view of containers: the runner, plus the waker for wakes.
#[derive(Clone)]
struct Hooks {
    /// Which containers run and since when (read); stops go through it (shared with the
    /// waker and the supervisor).
    runner: Runner,
    /// Where the sweep's wakes go (the waker reads them).
    wakes: Wakes,
    /// The runtime, for stops requested from the blocking pass.
    handle: tokio::runtime::Handle,
    /// Where the stops run (the runtime's tracker, waited for at shutdown).
    tasks: TaskTracker,
}

impl sweep::Containers for Hooks {
    fn is_running(&self, session: &str) -> bool {
        self.runner.is_running(session)
    }

    fn started(&self, session: &str) -> Option<SystemTime> {
        self.runner.started_at(session)
    }

    fn wake(&self, session: &str) {
        self.wakes.send(session.to_string(), None);
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
