//! The typing indicator (docs/runtime.md#the-message-path; v2's, with one change): "typing…" is shown in a chat while an
//! agent works on a message from it, for every adapter that can show it (`Adapter::set_typing`).
//!
//! One refresher per session, started by the router for every message that wakes the session
//! (toward the chat the message came from), fires at once and then every [`REFRESH`] (Telegram's
//! indicator lasts about five seconds). Each tick asks [`verdict`]:
//! - after a reply was delivered, it pauses for [`PAUSE_AFTER_REPLY`];
//! - before the first reply, it fires for [`GRACE`] whatever the container does (it may still
//!   be starting);
//! - otherwise it fires only while the container's heartbeat is younger than
//!   [`HEARTBEAT_FRESH`] (the runner touches it on every provider event), else it stops.
//!
//! v2 kept the grace window after a reply too, so a quick answer was followed by a stray
//! "typing…" ten seconds later; here a reply ends the grace, so a finished agent stops showing
//! it. The refresher also stops when the wake fails or the container ends ([`Event::Ended`]).
//! A new message on a live refresher fires at once and restarts the grace.
//!
//! [`verdict`] is pure; [`run`] is the actor around it. Typing errors are the adapter's to
//! swallow; nothing here waits for the platform.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::channels::Adapters;
use crate::containers::Exited;

/// How often the indicator is shown again.
pub const REFRESH: Duration = Duration::from_secs(4);
/// Fire regardless of the heartbeat this long after a message, until the first reply.
pub const GRACE: Duration = Duration::from_secs(15);
/// A heartbeat younger than this means the agent is working.
pub const HEARTBEAT_FRESH: Duration = Duration::from_secs(6);
/// No indicator this long after a reply was delivered.
pub const PAUSE_AFTER_REPLY: Duration = Duration::from_secs(10);
/// Typing events buffered; more are dropped (the indicator is best effort).
pub const BUFFER: usize = 1024;

/// What the runtime tells the refresher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message woke `session`: show typing toward the chat it came from.
    Engaged {
        session: String,
        session_dir: PathBuf,
        target: Target,
    },
    /// A user-facing reply of `session` was delivered.
    Replied { session: String },
    /// The session's wake failed or its container ended.
    Ended { session: String },
}

/// Where the indicator shows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub channel_type: String,
    pub platform_id: String,
    pub thread_id: Option<String>,
}

/// One session's refresher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refresher {
    pub target: Target,
    /// The session folder (its heartbeat is `outbound/.heartbeat`).
    pub session_dir: PathBuf,
    /// The last engaging message.
    pub started: Instant,
    /// A reply was delivered since `started`.
    pub replied: bool,
    /// No indicator before this.
    pub paused_until: Option<Instant>,
}

/// What a tick does for one refresher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Fire,
    Skip,
    Stop,
}

/// The decision of one tick: `heartbeat_age` is how long ago the container touched its
/// heartbeat (`None`: no heartbeat yet).
pub fn verdict(refresher: &Refresher, now: Instant, heartbeat_age: Option<Duration>) -> Verdict {
    if refresher.paused_until.is_some_and(|until| now < until) {
        return Verdict::Skip;
    }
    let in_grace = !refresher.replied && now.duration_since(refresher.started) < GRACE;
    let working = heartbeat_age.is_some_and(|age| age < HEARTBEAT_FRESH);
    if in_grace || working {
        Verdict::Fire
    } else {
        Verdict::Stop
    }
}

/// A sender of typing events that never blocks: a full buffer drops the event.
#[derive(Clone)]
pub struct Typing(mpsc::Sender<Event>);

impl Typing {
    pub fn new(sender: mpsc::Sender<Event>) -> Typing {
        Typing(sender)
    }

    pub fn tell(&self, event: Event) {
        if let Err(err) = self.0.try_send(event) {
            debug!(error = %err, "typing event dropped");
        }
    }
}

/// The refresher actor: keeps one [`Refresher`] per session and ticks every [`REFRESH`]; a
/// container's exit (from the runner) ends its session's refresher.
pub async fn run(
    adapters: Adapters,
    mut events: mpsc::Receiver<Event>,
    mut exits: broadcast::Receiver<Exited>,
    stop: CancellationToken,
) {
    let mut live: HashMap<String, Refresher> = HashMap::new();
    let mut exits_open = true;
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            event = events.recv() => match event {
                None => break,
                Some(event) => on_event(&adapters, &mut live, event, Instant::now()),
            },
            _ = ticks.tick() => tick(&adapters, &mut live, Instant::now()),
            exit = exits.recv(), if exits_open => match exit {
                Ok(exit) => {
                    live.remove(&exit.session_id);
                }
                // Missed exits: the next ticks stop refreshers whose heartbeat went stale.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => exits_open = false,
            },
        }
    }
}

fn on_event(
    adapters: &Adapters,
    live: &mut HashMap<String, Refresher>,
    event: Event,
    now: Instant,
) {
    match event {
        Event::Engaged {
            session,
            session_dir,
            target,
        } => {
            show(adapters, &target);
            live.insert(
                session,
                Refresher {
                    target,
                    session_dir,
                    started: now,
                    replied: false,
                    paused_until: None,
                },
            );
        }
        Event::Replied { session } => {
            if let Some(refresher) = live.get_mut(&session) {
                refresher.replied = true;
                refresher.paused_until = Some(now + PAUSE_AFTER_REPLY);
            }
        }
        Event::Ended { session } => {
            live.remove(&session);
        }
    }
}

fn tick(adapters: &Adapters, live: &mut HashMap<String, Refresher>, now: Instant) {
    let wall = SystemTime::now();
    live.retain(|session, refresher| {
        let heartbeat_age = agent_runner::session_db::heartbeat_mtime(&refresher.session_dir)
            .map(|touched| wall.duration_since(touched).unwrap_or_default());
        match verdict(refresher, now, heartbeat_age) {
            Verdict::Fire => {
                show(adapters, &refresher.target);
                true
            }
            Verdict::Skip => true,
            Verdict::Stop => {
                debug!(session = %session, "typing stopped");
                false
            }
        }
    });
}

fn show(adapters: &Adapters, target: &Target) {
    if let Some(adapter) = adapters.get(&target.channel_type) {
        adapter.set_typing(&target.platform_id, target.thread_id.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refresher(started: Instant) -> Refresher {
        Refresher {
            target: Target {
                channel_type: "telegram".into(),
                platform_id: "42".into(),
                thread_id: None,
            },
            session_dir: PathBuf::from("/nonexistent"),
            started,
            replied: false,
            paused_until: None,
        }
    }

    #[test]
    fn typing_fires_through_the_grace_then_only_while_the_agent_works() {
        let start = Instant::now();
        let fresh = Some(Duration::from_secs(1));
        let stale = Some(Duration::from_secs(30));
        let working = refresher(start);
        assert_eq!(verdict(&working, start + REFRESH, None), Verdict::Fire);
        assert_eq!(verdict(&working, start + GRACE, fresh), Verdict::Fire);
        assert_eq!(verdict(&working, start + GRACE, stale), Verdict::Stop);
        assert_eq!(verdict(&working, start + GRACE, None), Verdict::Stop);
    }

    #[test]
    fn issue_12_a_reply_pauses_typing_and_a_finished_agent_does_not_show_it_again() {
        let start = Instant::now();
        let mut replied = refresher(start);
        replied.replied = true;
        replied.paused_until = Some(start + Duration::from_secs(2) + PAUSE_AFTER_REPLY);
        assert_eq!(
            verdict(&replied, start + Duration::from_secs(8), None),
            Verdict::Skip
        );
        // Still inside v2's 15 s grace, but the agent answered and its heartbeat is old.
        assert_eq!(
            verdict(
                &replied,
                start + Duration::from_secs(13),
                Some(Duration::from_secs(9))
            ),
            Verdict::Stop
        );
        assert_eq!(
            verdict(
                &replied,
                start + Duration::from_secs(13),
                Some(Duration::from_secs(1))
            ),
            Verdict::Fire,
            "an agent still working after a reply shows typing again"
        );
    }

    #[test]
    fn a_new_message_restarts_the_grace_and_an_end_removes_the_refresher() {
        let adapters = Adapters::default();
        let mut live = HashMap::new();
        let start = Instant::now();
        let engaged = |session: &str| Event::Engaged {
            session: session.into(),
            session_dir: PathBuf::from("/nonexistent"),
            target: refresher(start).target,
        };
        on_event(&adapters, &mut live, engaged("s1"), start);
        on_event(
            &adapters,
            &mut live,
            Event::Replied {
                session: "s1".into(),
            },
            start,
        );
        assert!(live["s1"].replied);
        let later = start + Duration::from_secs(20);
        on_event(&adapters, &mut live, engaged("s1"), later);
        assert_eq!(live["s1"].started, later);
        assert!(!live["s1"].replied);
        assert_eq!(live["s1"].paused_until, None);
        tick(&adapters, &mut live, later + REFRESH);
        assert!(live.contains_key("s1"), "inside the new grace");
        tick(&adapters, &mut live, later + GRACE);
        assert!(
            !live.contains_key("s1"),
            "no heartbeat after the grace: stopped"
        );
        on_event(&adapters, &mut live, engaged("s2"), later);
        on_event(
            &adapters,
            &mut live,
            Event::Ended {
                session: "s2".into(),
            },
            later,
        );
        assert!(live.is_empty());
    }
}
