//! The waker: starts a session's container when the session has work, within
//! `--max-containers`, and reacts when containers end.
//!
//! One actor task owns every decision, so wakes of one session are serialised and the
//! container limit is counted in one place. Its inputs, each bounded:
//!
//! - a wake request (router: a message arrived; delivery: an agent message; sweep: due work),
//!   through the [`Wakes`] mailbox: a wake for a session already queued is a no-op, and when
//!   [`WAKES`] sessions are queued a further one makes the waker ask the sweep for a pass now
//!   (the sweep wakes every session with due messages, so no wake is lost);
//! - a session's `outbound.db` changed (from delivery: its turn may have ended), a [`Signal`];
//! - a container ended (from the [`Runner`]'s broadcast; when it lagged, the waker re-checks);
//! - its own tasks finishing (a start, an eviction search, an eviction, an exit check), through
//!   an inbox of [`INBOX`] reports (a task waits while it is full);
//! - a 250 ms tick while sessions wait, and the time of the next backed-off retry.
//!
//! At the limit, sessions wait in a FIFO queue; each waiter gets its own victim among running
//! containers whose sessions are idle by the sweep's rule, judged from the sessions' own DBs as
//! soon as they change, not at the next sweep, or failing that one that had its fair share and
//! is between turns ([`evict::pick_victims`], issue 8 point 9).
//! A container that ends with work left is started again at once; one that failed (exited with
//! an error nobody asked for, or could not start) is retried with [`backoff`], recorded in
//! `container_failures`, and its chat is told once per failure streak (issue 8 points 3, 10).
//! A container that calls the API is lent a placeholder before it starts and the key is voided
//! when it ends ([`Leases`]); when no credential is configured nothing is started: the chat is
//! told once, the messages stay pending, and the session starts as soon as a credential appears
//! (issue 10 point 5).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

use super::backoff::Streak;
use super::lease::Leases;
use super::mailbox::{Mail, Mailbox, Signal};
use super::notice::{self, Notice};
use super::outbox::Outboxes;
use super::typing::{Event as TypingEvent, Typing};
use super::{Settings, evict, session, sweep};
use crate::containers::{Exited, Runner, SpawnSpec, Woken};
use crate::db;

/// Wake requests: session id → the message that asked first (for the `wake` span), if known.
pub type Wakes = Mailbox<String, Option<String>>;

/// Most sessions queued in [`Wakes`] before further wakes become a sweep pass.
pub const WAKES: usize = 1024;
/// Reports of the waker's own tasks buffered before a task waits to report.
pub const INBOX: usize = 256;
/// The reason an evicted container is stopped with.
pub const EVICTED: &str = "evicted for a waiting session";
/// How often waiting sessions look for room without another trigger (only while some wait).
const TICK: Duration = Duration::from_millis(250);
/// How often sessions held for a missing credential look for one (only while some are held).
const CREDENTIAL_POLL: Duration = Duration::from_secs(1);

/// The waker's state; every field is written and read by its task only (its spawned tasks
/// get copies and report back through `inbox`).
pub struct Waker {
    /// Paths, images and limits (read only).
    settings: Settings,
    /// Which containers run; starts and stops them (shared with the sweeper and the supervisor).
    runner: Runner,
    /// Where failure notices go to the chats.
    outboxes: Outboxes,
    /// Placeholders lent to the containers that call the API.
    leases: Leases,
    /// Where the waker spawns its tasks (the runtime's tracker).
    tasks: TaskTracker,
    /// Where the waker's own tasks report back.
    inbox: mpsc::Sender<Msg>,
    /// Sessions waiting for room, oldest first (each at most once).
    queue: VecDeque<String>,
    /// Per session asked for and not started yet: the message that asked first.
    causes: HashMap<String, String>,
    /// Sessions being prepared and started (counted against the limit until they report).
    starting: HashSet<String>,
    /// Running containers being stopped to make room.
    evicting: HashSet<String>,
    /// Consecutive failures per session; removed by a clean run.
    streaks: HashMap<String, Streak>,
    /// Per backed-off session: no start before this.
    retry_at: HashMap<String, Instant>,
    /// Backed-off sessions asked for meanwhile: started when their time comes.
    deferred: HashSet<String>,
    /// Sessions whose chat was told about the current failure streak.
    told: HashSet<String>,
    /// Sessions held because no credential is configured (their chat was told); started when
    /// one appears.
    need_credential: HashSet<String>,
    /// Told when a session's container cannot start (its typing indicator stops).
    typing: Option<Typing>,
    /// An eviction search is running; `search_again` asks for another when it ends.
    searching: bool,
    search_again: bool,
}

/// Reports from the waker's own tasks.
#[derive(Debug)]
pub enum Msg {
    /// A start finished (`agent` is `None` when the session could not even be read).
    Started {
        session: String,
        agent: Option<String>,
        woken: Woken,
    },
    /// No credential to lend: nothing was started (`reason` is the chat's message).
    NoCredential {
        session: String,
        agent: Option<String>,
        reason: String,
    },
    /// An ended container was recorded; `pending` says whether its session still has work.
    ExitChecked { exit: Exited, pending: bool },
    /// An eviction search chose these victims.
    Victims(Vec<(String, evict::Why)>),
    /// An evicted container is gone.
    Evicted(String),
}

/// The waker's inputs (senders are held by the router, delivery, the sweep and the runner).
pub struct Inputs {
    /// Sessions to start (sent by the router, delivery and the sweep).
    pub wakes: Wakes,
    /// Raised by delivery when a session's `outbound.db` changed: a turn may have ended, so
    /// an idle container may make room for a waiting session.
    pub activity: Signal,
    /// Container exits (sent by the runner): re-wake, count failures, tell the chat.
    pub exits: broadcast::Receiver<Exited>,
    /// Raised when wakes overflowed: the sweep wakes every session with due messages.
    pub sweep_now: Signal,
}

/// One failure to act on.
struct Failure {
    session: String,
    agent: Option<String>,
    /// `None`: the container could not be started.
    exit_code: Option<i64>,
    /// Output tail, or the reason it could not start.
    tail: Vec<String>,
    ran_for: Duration,
    /// The session still has messages to answer.
    pending: bool,
}

impl Waker {
    pub fn new(
        settings: Settings,
        runner: Runner,
        outboxes: Outboxes,
        leases: Leases,
        tasks: TaskTracker,
    ) -> (Waker, mpsc::Receiver<Msg>) {
        let (inbox, inbox_rx) = mpsc::channel(INBOX);
        let waker = Waker {
            settings,
            runner,
            outboxes,
            leases,
            tasks,
            inbox,
            queue: VecDeque::new(),
            causes: HashMap::new(),
            starting: HashSet::new(),
            evicting: HashSet::new(),
            streaks: HashMap::new(),
            retry_at: HashMap::new(),
            deferred: HashSet::new(),
            told: HashSet::new(),
            need_credential: HashSet::new(),
            typing: None,
            searching: false,
            search_again: false,
        };
        (waker, inbox_rx)
    }

    /// Tell the typing indicator (`runtime::typing`) when a session's container cannot start.
    pub fn typing(mut self, typing: Typing) -> Waker {
        self.typing = Some(typing);
        self
    }

    /// Runs until `stop`. Every trigger is one branch here.
    pub async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Msg>,
        mut inputs: Inputs,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut credential_poll = tokio::time::interval(CREDENTIAL_POLL);
        credential_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next_retry = self.retry_at.values().min().copied();
            let retry = async move {
                match next_retry {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                mail = inputs.wakes.recv() => match mail {
                    Mail::Key(session, cause) => {
                        if let Some(cause) = cause {
                            self.causes.entry(session.clone()).or_insert(cause);
                        }
                        self.wake(session);
                    }
                    Mail::Overflow => {
                        warn!(limit = WAKES, "more sessions asked for containers at once than the wake queue holds; the sweep looks for the rest now");
                        inputs.sweep_now.raise();
                    }
                },
                () = inputs.activity.raised() => self.seek(),
                exit = inputs.exits.recv() => match exit {
                    Ok(exit) => self.exited(exit),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.admit(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(msg) = inbox.recv() => self.handle(msg),
                _ = tick.tick(), if !self.queue.is_empty() => {
                    self.admit();
                    self.seek();
                }
                () = retry => self.retry_due(),
                _ = credential_poll.tick(), if !self.need_credential.is_empty() => {
                    self.credential_check();
                }
            }
        }
    }

    /// A session has work: start its container, or queue it at the limit.
    fn wake(&mut self, session: String) {
        if self.runner.is_running(&session) || self.starting.contains(&session) {
            self.causes.remove(&session);
            return;
        }
        if self.queue.contains(&session) || self.need_credential.contains(&session) {
            return;
        }
        if self.in_backoff(&session) {
            self.deferred.insert(session);
            return;
        }
        if self.queue.is_empty() && self.has_room() {
            self.start(session);
        } else {
            self.queue.push_back(session);
            self.seek();
        }
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Started {
                session,
                agent,
                woken,
            } => {
                self.starting.remove(&session);
                if woken != Woken::Running {
                    self.leases.release(&session);
                }
                match woken {
                    Woken::Running => self.record_status(&session, true),
                    // Lost a race for the last slot: keep its place.
                    Woken::Full => self.queue.push_front(session),
                    Woken::Failed(reason) => self.failed(Failure {
                        session,
                        agent,
                        exit_code: None,
                        tail: reason
                            .lines()
                            .filter(|line| !line.trim().is_empty())
                            .map(str::to_string)
                            .collect(),
                        ran_for: Duration::ZERO,
                        pending: true,
                    }),
                }
            }
            Msg::NoCredential {
                session,
                agent,
                reason,
            } => {
                self.starting.remove(&session);
                self.no_credential(session, agent, reason);
            }
            Msg::ExitChecked { exit, pending } => self.exit_checked(exit, pending),
            Msg::Victims(victims) => self.evict(victims),
            Msg::Evicted(victim) => {
                self.evicting.remove(&victim);
            }
        }
        self.admit();
        self.seek();
    }

    /// Starts waiting sessions while there is room, oldest first.
    fn admit(&mut self) {
        while self.has_room() {
            let Some(session) = self.queue.pop_front() else {
                break;
            };
            if self.runner.is_running(&session) || self.starting.contains(&session) {
                continue;
            }
            if self.in_backoff(&session) {
                self.deferred.insert(session);
                continue;
            }
            self.start(session);
        }
    }

    /// Containers running or starting, against `--max-containers`.
    fn has_room(&self) -> bool {
        let running = self.runner.running();
        let starting = self
            .starting
            .iter()
            .filter(|session| !running.contains(session))
            .count();
        running.len() + starting < self.settings.max_containers
    }

    fn in_backoff(&self, session: &str) -> bool {
        self.retry_at
            .get(session)
            .is_some_and(|at| *at > Instant::now())
    }

    /// Prepares the session and starts its container in a tracked task.
    fn start(&mut self, session: String) {
        self.starting.insert(session.clone());
        let cause = self.causes.remove(&session);
        let span = tracing::info_span!("wake", session = %session, msg = cause.as_deref());
        let settings = self.settings.clone();
        let runner = self.runner.clone();
        let leases = self.leases.clone();
        let inbox = self.inbox.clone();
        self.tasks.spawn(
            async move {
                let id = session.clone();
                let span = tracing::Span::current();
                let prepared =
                    tokio::task::spawn_blocking(move || span.in_scope(|| prepare(&settings, &id)))
                        .await;
                let (agent, woken) = match prepared {
                    Ok((agent, Ok(mut spec))) => match leases.lend(&mut spec) {
                        Ok(()) => (agent, runner.wake(spec).await),
                        Err(err) => {
                            let _ = inbox
                                .send(Msg::NoCredential {
                                    session,
                                    agent,
                                    reason: err.to_string(),
                                })
                                .await;
                            return;
                        }
                    },
                    Ok((agent, Err(err))) => (agent, Woken::Failed(format!("{err:#}"))),
                    Err(err) => (None, Woken::Failed(err.to_string())),
                };
                tracing::debug!(?woken, "wake answered");
                let _ = inbox
                    .send(Msg::Started {
                        session,
                        agent,
                        woken,
                    })
                    .await;
            }
            .instrument(span),
        );
    }

    /// No credential to lend the session's container: hold the session (its messages stay
    /// pending) and tell its chat once; [`Waker::credential_check`] starts it later.
    fn no_credential(&mut self, session: String, agent: Option<String>, reason: String) {
        if !self.need_credential.insert(session.clone()) {
            return;
        }
        warn!(session = %session, reason = %reason, "no credential for the agent's container; holding its messages");
        let notice = Notice::NoCredential {
            agent: agent.unwrap_or_else(|| "(unknown)".to_string()),
            reason,
        };
        let paths = self.settings.paths.clone();
        let outboxes = self.outboxes.clone();
        self.tasks.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || {
                notice::tell(&paths, &outboxes, &session, &notice);
            })
            .await;
        });
    }

    /// Starts the sessions held for a credential once one is configured.
    fn credential_check(&mut self) {
        let leases = self.leases.clone();
        if !leases.has_credential() {
            return;
        }
        info!(
            sessions = self.need_credential.len(),
            "a credential is configured: starting the sessions that waited for it"
        );
        for session in std::mem::take(&mut self.need_credential) {
            self.wake(session);
        }
    }

    /// A container ended: free its slot, record it, and find out whether work is left.
    fn exited(&mut self, exit: Exited) {
        self.evicting.remove(&exit.session_id);
        if !self.runner.is_running(&exit.session_id) && !self.starting.contains(&exit.session_id) {
            // Its key dies with it (a successor that is starting already has its own).
            self.leases.release(&exit.session_id);
        }
        match &exit.requested {
            _ if exit.is_failure() => warn!(
                session = %exit.session_id,
                agent = %exit.agent,
                exit_code = exit.exit_code,
                reason = notice::last_line(&exit.tail).unwrap_or_default(),
                tail = %exit.tail.join(" | "),
                "container exited unexpectedly"
            ),
            None => {
                info!(session = %exit.session_id, exit_code = exit.exit_code, "container ended on its own")
            }
            Some(reason) => {
                info!(session = %exit.session_id, exit_code = exit.exit_code, reason, "container stopped")
            }
        }
        let paths = self.settings.paths.clone();
        let inbox = self.inbox.clone();
        self.tasks.spawn(async move {
            let checked = exit.clone();
            let pending = tokio::task::spawn_blocking(move || {
                set_status(&paths, &checked.session_id, false);
                let dir = paths.session(&checked.agent, &checked.session_id);
                match sweep::read_activity(&dir) {
                    Ok(activity) => !activity.is_idle(),
                    Err(err) => {
                        warn!(session = %checked.session_id, error = %format!("{err:#}"), "cannot read the session's work after its container ended");
                        false
                    }
                }
            })
            .await
            .unwrap_or(false);
            let _ = inbox.send(Msg::ExitChecked { exit, pending }).await;
        });
        self.admit();
    }

    fn exit_checked(&mut self, exit: Exited, pending: bool) {
        if exit.is_failure() {
            self.failed(Failure {
                session: exit.session_id,
                agent: Some(exit.agent),
                exit_code: Some(exit.exit_code),
                tail: exit.tail,
                ran_for: exit.ran_for,
                pending,
            });
            return;
        }
        let clean = match exit.requested.as_deref() {
            None => true,
            Some(reason) => [
                sweep::IDLE_REASON,
                EVICTED,
                super::executor::RECONFIGURED,
                super::executor::RESTARTED,
            ]
            .contains(&reason),
        };
        if clean {
            self.streaks.remove(&exit.session_id);
            self.retry_at.remove(&exit.session_id);
            self.told.remove(&exit.session_id);
        }
        if pending {
            // Messages arrived while it was stopping, or it ended mid-turn: start it again.
            self.wake(exit.session_id);
        }
    }

    /// A container failed: back off, record it, tell the chat once per streak, and retry
    /// when the session still has work.
    fn failed(&mut self, failure: Failure) {
        let session = failure.session.clone();
        if let Some(typing) = &self.typing {
            typing.tell(TypingEvent::Ended {
                session: session.clone(),
            });
        }
        let streak = self
            .streaks
            .get(&session)
            .copied()
            .unwrap_or_default()
            .failed(failure.ran_for);
        self.streaks.insert(session.clone(), streak);
        let delay = streak.delay();
        self.retry_at
            .insert(session.clone(), Instant::now() + delay);
        let reason = match failure.exit_code {
            Some(_) => notice::last_line(&failure.tail),
            None => failure.tail.first().cloned(),
        };
        warn!(session = %session, failures = streak.failures, retry_in_secs = delay.as_secs(),
            reason = reason.as_deref().unwrap_or_default(), "agent container failed; backing off");
        let tell = failure.pending && self.told.insert(session.clone());
        let agent = failure
            .agent
            .clone()
            .unwrap_or_else(|| "(unknown)".to_string());
        let notice = match failure.exit_code {
            Some(exit_code) => Notice::Failed {
                agent: agent.clone(),
                exit_code,
                last_line: reason,
                retry_in: delay,
            },
            None => Notice::CannotStart {
                agent: agent.clone(),
                reason: reason.unwrap_or_default(),
                retry_in: delay,
            },
        };
        let paths = self.settings.paths.clone();
        let outboxes = self.outboxes.clone();
        let recorded_session = session.clone();
        self.tasks.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || {
                match db::open(&paths.db()) {
                    Ok(conn) => {
                        if let Err(err) = db::failures::record(
                            &conn,
                            &recorded_session,
                            &agent,
                            failure.exit_code,
                            &failure.tail,
                        ) {
                            warn!(session = %recorded_session, error = %err, "container failure not recorded");
                        }
                    }
                    Err(err) => warn!(error = %err, "container failure not recorded"),
                }
                if tell {
                    notice::tell(&paths, &outboxes, &recorded_session, &notice);
                }
            })
            .await;
        });
        if failure.pending {
            self.deferred.insert(session.clone());
            if delay.is_zero() {
                self.retry_due();
            }
        }
    }

    /// Starts the backed-off sessions whose time has come and that were asked for.
    fn retry_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .retry_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(session, _)| session.clone())
            .collect();
        for session in due {
            self.retry_at.remove(&session);
            if self.deferred.remove(&session) {
                self.wake(session);
            }
        }
    }

    /// Looks for idle containers to stop for the waiting sessions (one search at a time).
    fn seek(&mut self) {
        self.admit();
        let wanted = self.queue.len().saturating_sub(self.evicting.len());
        if wanted == 0 {
            return;
        }
        if self.searching {
            self.search_again = true;
            return;
        }
        self.searching = true;
        let running: Vec<String> = self
            .runner
            .running()
            .into_iter()
            .filter(|session| !self.evicting.contains(session))
            .collect();
        let paths = self.settings.paths.clone();
        let runner = self.runner.clone();
        let inbox = self.inbox.clone();
        self.tasks.spawn(async move {
            let victims = tokio::task::spawn_blocking(move || {
                let candidates: Vec<evict::Candidate> = running
                    .into_iter()
                    .filter_map(|session| {
                        let agent = runner.agent(&session)?;
                        let dir = paths.session(&agent, &session);
                        let activity = sweep::read_activity(&dir).ok()?;
                        let started = runner.started_at(&session);
                        let last_sign =
                            agent_runner::session_db::heartbeat_mtime(&dir).max(started);
                        let ran_for = started
                            .and_then(|started| SystemTime::now().duration_since(started).ok())
                            .unwrap_or_default();
                        Some(evict::Candidate {
                            session,
                            activity,
                            last_sign,
                            ran_for,
                        })
                    })
                    .collect();
                evict::pick_victims(&candidates, wanted, SystemTime::now())
            })
            .await
            .unwrap_or_default();
            let _ = inbox.send(Msg::Victims(victims)).await;
        });
    }

    /// Stops the chosen victims (each frees one slot for one waiter).
    fn evict(&mut self, victims: Vec<(String, evict::Why)>) {
        self.searching = false;
        for (victim, why) in victims {
            if self.evicting.contains(&victim) || !self.runner.is_running(&victim) {
                continue;
            }
            let waiter = self
                .queue
                .get(self.evicting.len())
                .cloned()
                .unwrap_or_default();
            match why {
                evict::Why::Idle => info!(session = %victim, for_session = %waiter,
                    "container limit reached: stopping the least recently active idle container"),
                evict::Why::FairShare => info!(session = %victim, for_session = %waiter,
                    "container limit reached: stopping a container that had its fair share, between two turns"),
            }
            self.evicting.insert(victim.clone());
            let runner = self.runner.clone();
            let inbox = self.inbox.clone();
            self.tasks.spawn(async move {
                runner.stop(&victim, EVICTED).await;
                let _ = inbox.send(Msg::Evicted(victim)).await;
            });
        }
        if std::mem::take(&mut self.search_again) {
            self.seek();
        }
    }

    /// Mirrors "a container runs" into the central DB.
    fn record_status(&self, session: &str, running: bool) {
        let paths = self.settings.paths.clone();
        let session = session.to_string();
        self.tasks.spawn(async move {
            let _ =
                tokio::task::spawn_blocking(move || set_status(&paths, &session, running)).await;
        });
    }
}

fn set_status(paths: &crate::paths::Paths, session: &str, running: bool) {
    let result = db::open(&paths.db())
        .and_then(|conn| db::sessions::set_container_status(&conn, session, running));
    if let Err(err) = result {
        warn!(session, error = %err, "container status not recorded");
    }
}

/// Reads the session and prepares its folder; returns its agent (when known) and the spec.
fn prepare(settings: &Settings, id: &str) -> (Option<String>, anyhow::Result<SpawnSpec>) {
    let row = db::open(&settings.paths.db())
        .context("opening the central DB")
        .and_then(|conn| {
            let row =
                db::sessions::get(&conn, id)?.with_context(|| format!("session {id} not found"))?;
            Ok((conn, row))
        });
    let (conn, row) = match row {
        Ok(found) => found,
        Err(err) => return (None, Err(err)),
    };
    let agent = Some(row.agent.clone());
    let spec = session::prepare(
        &conn,
        &settings.paths,
        &row,
        &settings.images,
        &settings.claude_code_env,
    );
    (agent, spec)
}
