//! The executor (docs/operating.md#what-happens-to-running-agents): configuration changes reach
//! running containers, level-triggered.
//!
//! A pass compares every running container's `nanoclaw.config-hash` label with what its session
//! composes to now ([`session::composition`], nothing written) and [`judge`]s it: a current
//! container is left alone; a stale one is asked to stop at its next safe point (SIGTERM: the
//! runner finishes the turn in flight and writes its replies; SIGKILL after [`REPLACE_GRACE_SECS`]),
//! and the waker starts a fresh one when its session still has work (messages it claimed and
//! did not complete are retried by the sweep, and answered once by the new container); a stale
//! one whose agent `apply --no-restart` deferred keeps running until `nanoclaw restart`.
//! A pass also takes `nanoclaw restart` requests, and writes what it saw to `running_containers`
//! for `status` and `apply`.
//!
//! Per-agent images (docs/operating.md#per-agent-images): a pass also asks [`Builds`] which
//! agents with packages need a build (the tag their inputs give differs from the one
//! `agent_images` records) and starts those in the background. While an agent's build runs its
//! stale containers keep serving (verdict `deferred`): they are replaced once, when the build
//! ends, onto the new image (a composition uses the tag the central DB records). A
//! `restart --rebuild` request waits for its agent's build (forced: a failed one is retried,
//! an image with unchanged inputs is reused) and then restarts like any restart; a failed build
//! fails the request and leaves the containers alone.
//!
//! Passes run when the generation changes (checked every [`TICK`], so an apply made by another
//! process is noticed within a second), when a restart is requested, when the set of running
//! containers changes, when a build ends, and at every sweep interval: nothing depends on
//! having seen an event, so a restart or a build lost in a crash is redone (after a restart of
//! the daemon no old container survives anyway). `pending_effects` is not read.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use agent_runner::session_db::{self, Content, Kind, NewInbound, ids};
use rusqlite::Connection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::builds::{Builds, Finished};
use super::waker::Wakes;
use super::{Settings, session};
use crate::containers::Runner;
use crate::db::{self, executor as rows};
use crate::state::Agent;

/// How often the generation and the restart requests are checked.
pub const TICK: Duration = Duration::from_millis(500);
/// Seconds a replaced container gets to finish its turn after SIGTERM before SIGKILL.
pub const REPLACE_GRACE_SECS: i64 = 30;
/// The stop reason of a container replaced because its configuration changed.
pub const RECONFIGURED: &str = "configuration changed";
/// The stop reason of a container restarted by `nanoclaw restart`.
pub const RESTARTED: &str = "restart requested";
/// Why a stale container of an agent whose image is being built keeps running.
pub const AWAITS_BUILD: &str =
    "configuration changed; its image is being built, replaced once the build ends";

/// What a pass found for one running container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The hash label it was started with.
    pub running_hash: String,
    /// The hash its session composes to now, or why it could not be composed.
    pub desired: Result<String, String>,
    /// `apply --no-restart` holds its agent's restarts back.
    pub deferred: bool,
    /// Its agent's per-agent image is being built: it serves until the build ends.
    pub building: bool,
}

/// The verdict on one container and whether to stop it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: rows::Verdict,
    pub reason: Option<String>,
    /// Stop it at its next safe point (the waker starts a fresh one when work is left).
    pub replace: bool,
}

/// Decides what to do with one running container (pure).
pub fn judge(observed: &Observed) -> Judgement {
    match &observed.desired {
        Err(why) => Judgement {
            verdict: rows::Verdict::Unknown,
            reason: Some(why.clone()),
            replace: false,
        },
        Ok(desired) if *desired == observed.running_hash => Judgement {
            verdict: rows::Verdict::Current,
            reason: None,
            replace: false,
        },
        Ok(_) if observed.deferred => Judgement {
            verdict: rows::Verdict::Deferred,
            reason: Some(
                "configuration changed; restart deferred by `apply --no-restart` until `nanoclaw restart`"
                    .to_string(),
            ),
            replace: false,
        },
        Ok(_) if observed.building => Judgement {
            verdict: rows::Verdict::Deferred,
            reason: Some(AWAITS_BUILD.to_string()),
            replace: false,
        },
        Ok(_) => Judgement {
            verdict: rows::Verdict::Replacing,
            reason: Some("configuration changed; replaced at its next safe point".to_string()),
            replace: true,
        },
    }
}

/// The executor actor's state (owned by its task).
pub struct Executor {
    /// Paths, the images of this run and the sweep interval (read only).
    settings: Settings,
    /// Which containers run, with their hash labels; stops go through it.
    runner: Runner,
    /// Sessions given an on-wake row without a running container are woken through it.
    wakes: Wakes,
    /// Where the stops run (the runtime's tracker).
    tasks: TaskTracker,
    /// The generation the last pass saw.
    generation: Option<i64>,
    /// The running sessions and their hashes the last pass wrote.
    seen: BTreeMap<String, String>,
    /// Per running session: the generation it was first seen current at (by hash).
    generations: HashMap<String, (String, i64)>,
    /// When the last full pass ran.
    last_pass: Option<Instant>,
    /// The connection of the cheap check, kept between ticks (opened again after an error).
    check: Option<Connection>,
    /// The per-agent image builds running in the background.
    builds: Builds,
    /// `restart --rebuild` requests taken, by id: waiting for their agent's build, or its
    /// outcome once it ended (the request is finished at the next pass).
    rebuilds: BTreeMap<i64, Rebuild>,
}

/// A `restart --rebuild` request between its agent's build and its restart.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rebuild {
    Waiting {
        agent: String,
    },
    /// The build's note ([`Finished::note`]).
    Built(Result<String, String>),
}

impl Executor {
    /// `stop` also cancels the builds in flight (the runtime's stop token).
    pub fn new(
        settings: Settings,
        runner: Runner,
        wakes: Wakes,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> Executor {
        let builds = Builds::new(
            settings.paths.clone(),
            settings.images.clone(),
            runner.docker().clone(),
            tasks.clone(),
            stop,
        );
        Executor {
            settings,
            runner,
            wakes,
            tasks,
            generation: None,
            seen: BTreeMap::new(),
            generations: HashMap::new(),
            last_pass: None,
            check: None,
            builds,
            rebuilds: BTreeMap::new(),
        }
    }

    /// Runs until `stop`: a cheap check every [`TICK`], a pass when something changed.
    pub async fn run(mut self, stop: CancellationToken) {
        // A build a dead daemon was running is not running any more.
        let db_path = self.settings.paths.db();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(conn) = db::open(&db_path) {
                let _ = db::agent_images::clear_building(&conn);
            }
        })
        .await;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(err) = self.step().await {
                warn!(error = %format!("{err:#}"), "executor pass failed");
            }
        }
        let db_path = self.settings.paths.db();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut conn) = db::open(&db_path) {
                let _ = rows::replace_running(&mut conn, &[]);
                let _ = db::agent_images::clear_building(&conn);
            }
        })
        .await;
    }

    async fn step(&mut self) -> anyhow::Result<()> {
        let finished = self.builds.finished().await;
        for build in &finished {
            self.build_ended(build);
        }
        let db_path = self.settings.paths.db();
        let check = self.check.take();
        let lines = self.builds.unflushed_lines();
        let waiting: BTreeSet<i64> = self
            .rebuilds
            .iter()
            .filter(|(_, rebuild)| matches!(rebuild, Rebuild::Waiting { .. }))
            .map(|(id, _)| *id)
            .collect();
        let (conn, generation, n_requests) = tokio::task::spawn_blocking(move || {
            let conn = match check {
                Some(conn) => conn,
                None => db::open(&db_path)?,
            };
            for (agent, since, line) in &lines {
                db::agent_images::record_build_line(&conn, agent, since, line)?;
            }
            let generation = db::generation(&conn)?;
            let n_requests = rows::open_requests(&conn)?
                .iter()
                .filter(|request| !waiting.contains(&request.id))
                .count();
            anyhow::Ok((conn, generation, n_requests))
        })
        .await??;
        self.check = Some(conn);
        let running: BTreeMap<String, String> = self
            .runner
            .running()
            .into_iter()
            .filter_map(|session| {
                let hash = self.runner.config_hash(&session)?;
                Some((session, hash))
            })
            .collect();
        let due = self
            .last_pass
            .is_none_or(|at| at.elapsed() >= self.settings.sweep_interval);
        if self.generation == Some(generation)
            && n_requests == 0
            && running == self.seen
            && finished.is_empty()
            && !due
        {
            return Ok(());
        }
        if self.generation.is_some_and(|seen| seen != generation) {
            info!(
                generation,
                "a new generation was applied; checking running containers"
            );
        }
        self.pass(running).await?;
        // Only a pass that went through counts: a failed one is redone at the next tick.
        self.generation = Some(generation);
        self.last_pass = Some(Instant::now());
        Ok(())
    }

    /// Logs an ended build and hands its outcome to the `restart --rebuild` requests waiting
    /// for it.
    fn build_ended(&mut self, build: &Finished) {
        match build.note() {
            Ok(note) => info!(agent = %build.agent, outcome = %note, "per-agent image build ended"),
            Err(why) => warn!(agent = %build.agent, error = %why, "per-agent image build ended"),
        }
        for rebuild in self.rebuilds.values_mut() {
            if matches!(rebuild, Rebuild::Waiting { agent } if *agent == build.agent) {
                *rebuild = Rebuild::Built(build.note());
            }
        }
    }

    /// Starts the per-agent image builds the configuration needs now (and the ones new
    /// `restart --rebuild` requests ask for); forgets the images of agents without packages.
    async fn check_images(&mut self) -> anyhow::Result<()> {
        let db_path = self.settings.paths.db();
        let (agents, images, requests) = tokio::task::spawn_blocking(move || {
            let conn = db::open(&db_path)?;
            let agents: Vec<Agent> = db::config::read(&conn)?.state.agents().cloned().collect();
            let images = db::agent_images::all(&conn)?;
            // An agent without packages (or gone) goes back to its provider's image.
            for row in &images {
                let keeps = agents
                    .iter()
                    .any(|agent| agent.name == row.agent && super::builds::has_packages(agent));
                if !keeps && row.building.is_none() {
                    db::agent_images::forget(&conn, &row.agent)?;
                }
            }
            let requests: Vec<rows::RestartRequest> = rows::open_requests(&conn)?
                .into_iter()
                .filter(|request| request.rebuild)
                .collect();
            anyhow::Ok((agents, images, requests))
        })
        .await??;
        let forced = self.take_rebuilds(&agents, &requests);
        self.builds.check(&agents, &images, &forced).await;
        Ok(())
    }

    /// Registers new `restart --rebuild` requests; returns the agents whose build they force.
    /// A request for an agent without packages has nothing to build and restarts at once.
    fn take_rebuilds(
        &mut self,
        agents: &[Agent],
        requests: &[rows::RestartRequest],
    ) -> BTreeSet<String> {
        let mut forced = BTreeSet::new();
        for request in requests {
            if self.rebuilds.contains_key(&request.id) {
                continue;
            }
            let with_packages = agents
                .iter()
                .any(|agent| agent.name == request.agent && super::builds::has_packages(agent));
            let rebuild = if with_packages {
                info!(agent = %request.agent, request = request.id, "restart --rebuild: building the image first");
                forced.insert(request.agent.clone());
                Rebuild::Waiting {
                    agent: request.agent.clone(),
                }
            } else {
                Rebuild::Built(Ok(format!(
                    "`{}` lists no packages: its provider's image needs no build",
                    request.agent
                )))
            };
            self.rebuilds.insert(request.id, rebuild);
        }
        forced
    }

    /// One full pass: the image builds, restart requests, then every running container judged
    /// and recorded.
    async fn pass(&mut self, running: BTreeMap<String, String>) -> anyhow::Result<()> {
        self.check_images().await?;
        let building = self.builds.building();
        let built: HashMap<i64, Result<String, String>> = self
            .rebuilds
            .iter()
            .filter_map(|(id, rebuild)| match rebuild {
                Rebuild::Built(note) => Some((*id, note.clone())),
                Rebuild::Waiting { .. } => None,
            })
            .collect();
        let settings = self.settings.clone();
        let runner = self.runner.clone();
        let known = self.generations.clone();
        let (stops, known, seen) = tokio::task::spawn_blocking(move || {
            let mut conn = db::open(&settings.paths.db())?;
            let mut work = Work::default();
            take_requests(&conn, &settings, &runner, &built, &mut work)?;
            // One read snapshot: an `apply --no-restart` commits its generation and deferral
            // together, so no composition here sees the new generation without its deferral.
            let snapshot = conn.transaction()?;
            let generation = db::generation(&snapshot)?;
            let deferrals = rows::deferred(&snapshot)?;
            let deferred: BTreeSet<String> = deferrals
                .iter()
                .map(|deferral| deferral.agent.clone())
                .collect();
            let mut records = Vec::new();
            let mut known_now = HashMap::new();
            for (session_id, running_hash) in &running {
                let agent = runner.agent(session_id).unwrap_or_default();
                let desired = desired_hash(&snapshot, &settings, session_id);
                let judgement = judge(&Observed {
                    running_hash: running_hash.clone(),
                    desired: desired.clone(),
                    deferred: deferred.contains(&agent),
                    building: building.contains(&agent),
                });
                let seen_generation = match known.get(session_id) {
                    Some((hash, at)) if hash == running_hash => Some(*at),
                    _ if judgement.verdict == rows::Verdict::Current => Some(generation),
                    _ => None,
                };
                if let Some(at) = seen_generation {
                    known_now.insert(session_id.clone(), (running_hash.clone(), at));
                }
                if judgement.replace && !work.stops.iter().any(|(s, _)| s == session_id) {
                    if !runner.is_stopping(session_id) {
                        info!(session = %session_id, agent = %agent, generation,
                            "configuration changed: replacing the container at its next safe point");
                    }
                    work.stops.push((session_id.clone(), RECONFIGURED));
                }
                records.push(rows::RunningContainer {
                    session_id: session_id.clone(),
                    agent,
                    config_hash: running_hash.clone(),
                    generation: seen_generation,
                    started_at: runner
                        .started_at(session_id)
                        .map(iso)
                        .unwrap_or_default(),
                    verdict: judgement.verdict,
                    reason: judgement.reason,
                });
            }
            snapshot.commit()?;
            // A deferral with no stale container left holds nothing back (its containers
            // ended and came back current): it ends, so `status` does not show it forever.
            for deferral in &deferrals {
                let holds = records.iter().any(|record| {
                    record.agent == deferral.agent && record.verdict == rows::Verdict::Deferred
                });
                if !holds {
                    rows::end_deferral(&conn, &deferral.agent, deferral.generation)?;
                }
            }
            rows::replace_running(&mut conn, &records)?;
            anyhow::Ok((work, known_now, running))
        })
        .await??;
        let Work {
            stops,
            wakes,
            taken,
        } = stops;
        for id in taken {
            self.rebuilds.remove(&id);
        }
        self.generations = known;
        self.seen = seen;
        for session_id in wakes {
            self.wakes.send(session_id, None);
        }
        for (session_id, reason) in stops {
            if self.runner.is_stopping(&session_id) {
                continue;
            }
            let runner = self.runner.clone();
            self.tasks.spawn(async move {
                runner
                    .stop_within(&session_id, reason, REPLACE_GRACE_SECS)
                    .await;
            });
        }
        Ok(())
    }
}

/// What a pass asks of the runtime once its blocking part is done.
#[derive(Default)]
struct Work {
    /// Sessions whose container to stop at its next safe point, and why.
    stops: Vec<(String, &'static str)>,
    /// Sessions without a container that were given an on-wake row.
    wakes: Vec<String>,
    /// `restart --rebuild` requests finished by this pass.
    taken: Vec<i64>,
}

/// The hash `session_id`'s container would be started with now.
fn desired_hash(
    conn: &Connection,
    settings: &Settings,
    session_id: &str,
) -> Result<String, String> {
    let session = db::sessions::get(conn, session_id)
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("session `{session_id}` no longer exists"))?;
    session::composition(
        conn,
        &settings.paths,
        &session,
        &settings.images,
        &settings.claude_code_env,
    )
    .map(|composed| composed.spec.config_hash)
    .map_err(|err| format!("{err:#}"))
}

/// Takes every open restart request: clears the agent's deferral, writes the on-wake rows,
/// and lists the containers to stop. A `--rebuild` request is taken once its agent's build
/// ended (`built` holds its note): a failed build fails it and restarts nothing.
fn take_requests(
    conn: &Connection,
    settings: &Settings,
    runner: &Runner,
    built: &HashMap<i64, Result<String, String>>,
    work: &mut Work,
) -> anyhow::Result<()> {
    for request in rows::open_requests(conn)? {
        let note = if request.rebuild {
            let Some(note) = built.get(&request.id) else {
                continue;
            };
            work.taken.push(request.id);
            Some(note)
        } else {
            None
        };
        let outcome = match note {
            Some(Err(why)) => {
                if request.message.is_some() {
                    tell_build_failed(conn, settings, runner, &request, why, work)?;
                }
                format!("failed: {why}")
            }
            note => match restart(conn, settings, runner, &request, work) {
                Ok(outcome) => match note {
                    Some(Ok(note)) => format!("{note}; {outcome}"),
                    _ => outcome,
                },
                Err(err) => format!("failed: {err:#}"),
            },
        };
        info!(agent = %request.agent, request = request.id, outcome = %outcome, "restart request taken");
        rows::finish_request(conn, request.id, &outcome)?;
    }
    Ok(())
}

/// A `--rebuild` request that carried a message for the agent (an approved `install_packages`
/// writes one) and whose build failed: the agent is told instead, in a system note in each
/// session the request names (its running ones when it names none), so it can say so in the
/// chat that asked. Nothing restarts; it keeps its previous image.
fn tell_build_failed(
    conn: &Connection,
    settings: &Settings,
    runner: &Runner,
    request: &rows::RestartRequest,
    why: &str,
    work: &mut Work,
) -> anyhow::Result<()> {
    let sessions: Vec<db::sessions::Session> = db::sessions::active(conn)?
        .into_iter()
        .filter(|session| session.agent == request.agent)
        .filter(|session| match &request.session_id {
            Some(id) => &session.id == id,
            None => runner.is_running(&session.id),
        })
        .collect();
    let text = format!(
        "The image rebuild for your agent failed, so the change you asked for is not installed ({why}). Tell the person who asked; an admin can see the build's error in `nanoclaw status` and retry with `nanoclaw restart {} --rebuild`.",
        request.agent
    );
    for session in sessions {
        let dir = settings.paths.session(&session.agent, &session.id);
        super::system::write_note(&dir, &session.agent, &text)?;
        work.wakes.push(session.id.clone());
    }
    Ok(())
}

/// One restart request; returns the outcome recorded for `nanoclaw restart`.
fn restart(
    conn: &Connection,
    settings: &Settings,
    runner: &Runner,
    request: &rows::RestartRequest,
    work: &mut Work,
) -> anyhow::Result<String> {
    rows::clear_deferral(conn, &request.agent)?;
    let targets: Vec<db::sessions::Session> = match &request.session_id {
        Some(id) => {
            let session = db::sessions::get(conn, id)?
                .filter(|session| session.agent == request.agent)
                .ok_or_else(|| {
                    anyhow::anyhow!("agent `{}` has no session `{id}`", request.agent)
                })?;
            vec![session]
        }
        None => db::sessions::active(conn)?
            .into_iter()
            .filter(|session| session.agent == request.agent && runner.is_running(&session.id))
            .collect(),
    };
    let mut n_restarted = 0;
    for session in &targets {
        if let Some(text) = &request.message {
            write_on_wake(conn, settings, session, text)?;
        }
        if runner.is_running(&session.id) {
            work.stops.push((session.id.clone(), RESTARTED));
            n_restarted += 1;
        } else if request.message.is_some() {
            work.wakes.push(session.id.clone());
        }
    }
    let mut outcome = match n_restarted {
        0 => "no container running: the next message starts a fresh one".to_string(),
        1 => "restarting 1 container at its next safe point".to_string(),
        n => format!("restarting {n} containers at their next safe point"),
    };
    if request.message.is_some() && !targets.is_empty() {
        outcome.push_str(&format!(
            "; the message waits for the fresh container of {} session(s)",
            targets.len()
        ));
    }
    Ok(outcome)
}

/// Writes `text` into the session's `inbound.db` as an on-wake row: only a container's first
/// poll sees it, so a container in its stop grace cannot take it; it answers to the session's
/// chat. Its sender is `operator` (whoever ran `nanoclaw restart --message`): it is a message
/// for the agent to act on, unlike the host's `system` notes, which agents read but do not answer.
fn write_on_wake(
    conn: &Connection,
    settings: &Settings,
    session: &db::sessions::Session,
    text: &str,
) -> anyhow::Result<()> {
    let dir = settings.paths.session(&session.agent, &session.id);
    let routing = session::default_routing(conn, session)?;
    let mut content = Content::text(text);
    content.sender = Some("operator".to_string());
    content.sender_id = Some("operator".to_string());
    let row = NewInbound {
        id: ids::new_id("restart"),
        kind: Kind::Chat,
        timestamp: ids::now_iso(),
        channel_type: routing
            .as_ref()
            .map(|(channel_type, _)| channel_type.clone()),
        platform_id: routing.map(|(_, platform_id)| platform_id),
        thread_id: session.thread_id.clone(),
        content: content.to_json(),
        trigger: true,
        on_wake: true,
        process_after: None,
        recurrence: None,
        source_session_id: None,
    };
    let mut inbound = session_db::open_inbound_host(&session_db::inbound_path(&dir))?;
    session_db::insert_inbound(&mut inbound, &[row])?;
    Ok(())
}

/// `at` as ISO-8601 UTC with milliseconds, like `ids::now_iso`.
fn iso(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .map(|at| at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(running: &str, desired: Result<&str, &str>, deferred: bool) -> Observed {
        Observed {
            running_hash: running.to_string(),
            desired: desired.map(str::to_string).map_err(str::to_string),
            deferred,
            building: false,
        }
    }

    #[test]
    fn a_current_container_is_left_alone() {
        let judgement = judge(&observed("h1", Ok("h1"), false));
        assert_eq!(judgement.verdict, rows::Verdict::Current);
        assert!(!judgement.replace);
        // A deferral does not matter while nothing changed.
        assert!(!judge(&observed("h1", Ok("h1"), true)).replace);
    }

    #[test]
    fn a_stale_container_is_replaced_unless_deferred() {
        let judgement = judge(&observed("h1", Ok("h2"), false));
        assert_eq!(judgement.verdict, rows::Verdict::Replacing);
        assert!(judgement.replace);
        let deferred = judge(&observed("h1", Ok("h2"), true));
        assert_eq!(deferred.verdict, rows::Verdict::Deferred);
        assert!(!deferred.replace);
    }

    #[test]
    fn a_stale_container_serves_until_its_agents_image_build_ends() {
        let building = Observed {
            building: true,
            ..observed("h1", Ok("h2"), false)
        };
        let judgement = judge(&building);
        assert_eq!(judgement.verdict, rows::Verdict::Deferred);
        assert_eq!(judgement.reason.as_deref(), Some(AWAITS_BUILD));
        assert!(!judgement.replace);
        // Once the build ended (or when nothing changed) the usual rules apply.
        assert!(judge(&observed("h1", Ok("h2"), false)).replace);
        let current = Observed {
            building: true,
            ..observed("h1", Ok("h1"), false)
        };
        assert_eq!(judge(&current).verdict, rows::Verdict::Current);
    }

    #[test]
    fn a_container_whose_configuration_cannot_be_composed_keeps_running() {
        let judgement = judge(&observed("h1", Err("agent `andy` no longer exists"), false));
        assert_eq!(judgement.verdict, rows::Verdict::Unknown);
        assert!(!judgement.replace);
        assert_eq!(
            judgement.reason.as_deref(),
            Some("agent `andy` no longer exists")
        );
    }
}
