//! Delivery's inbox: what the delivery thread should look at, coalesced.
//!
//! Its senders are the file watcher's thread (a container wrote `outbound.db`), the channels (a
//! chat gained a reader or a reply was acknowledged), the exit forwarder (a container ended),
//! the outboxes (what an adapter did with a row) and the supervisor (startup, stop). None of
//! them may block or lose work, and delivery is blocking SQLite work on its own thread, so the
//! inbox is not a queue of requests but the next [`Batch`] itself, behind a mutex and a
//! condition variable: a session asked for twice is drained once.
//!
//! Bounds: at most [`SESSIONS`] distinct sessions are held; one more turns the batch into "drain
//! every active session" (the same work, found by listing the sessions: nothing is lost).
//! Reports are bounded by the rows in flight, which the outboxes bound ([`super::outbox`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::channels::{Delivered, DeliveryError};

/// Most distinct sessions one batch names before it becomes "drain everything".
pub const SESSIONS: usize = 1024;
/// A batch gathers arriving work at most this many more times (each within the coalescing
/// window of the last).
pub const GATHER: usize = 20;

/// What the delivery worker should look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// A container wrote this session's `outbound.db`, or ended: drain it now.
    Session { agent: String, session: String },
    /// A chat gained a reader or one acknowledged a reply (queued replies for it can go
    /// now): drain every active session.
    Reader {
        channel_type: String,
        platform_id: String,
    },
    /// Drain every active session (startup, lost file events).
    All,
    /// Run the backstop now (the worker also runs it on its own, see `delivery.rs`).
    Backstop,
    /// An adapter finished with a row delivery handed to its outbox.
    Reported(Report),
    /// Stop after the current batch (rows in flight are waited for, briefly).
    Stop,
}

/// What an adapter did with one row (sent back by its outbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub agent: String,
    pub session: String,
    /// The outbound row id.
    pub row: String,
    pub result: Result<Delivered, DeliveryError>,
}

/// Everything asked for since the worker last looked.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// `(agent, session)` to drain; at most [`SESSIONS`].
    pub sessions: BTreeSet<(String, String)>,
    /// Drain every active session.
    pub everything: bool,
    /// Run the backstop poll.
    pub backstop: bool,
    /// Outcomes of rows in flight, in the order they came.
    pub reports: Vec<Report>,
    pub stop: bool,
}

impl Batch {
    pub fn add(&mut self, work: Work) {
        match work {
            Work::Session { agent, session } => {
                if self.everything {
                    return;
                }
                self.sessions.insert((agent, session));
                if self.sessions.len() > SESSIONS {
                    // Full: listing the active sessions finds every one of them again.
                    self.sessions.clear();
                    self.everything = true;
                }
            }
            Work::Reader { .. } | Work::All => {
                self.sessions.clear();
                self.everything = true;
            }
            Work::Backstop => self.backstop = true,
            Work::Reported(report) => self.reports.push(report),
            Work::Stop => self.stop = true,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Batch::default()
    }

    fn merge(&mut self, other: Batch) {
        let Batch {
            sessions,
            everything,
            backstop,
            reports,
            stop,
        } = other;
        for (agent, session) in sessions {
            self.add(Work::Session { agent, session });
        }
        if everything {
            self.add(Work::All);
        }
        self.backstop |= backstop;
        self.reports.extend(reports);
        self.stop |= stop;
    }
}

/// The delivery thread's inbox (clone it for each sender).
#[derive(Clone, Default)]
pub struct Inbox {
    inner: Arc<(Mutex<Batch>, Condvar)>,
}

impl Inbox {
    pub fn new() -> Inbox {
        Inbox::default()
    }

    /// Adds work to the next batch; never blocks for longer than the worker takes a batch.
    pub fn send(&self, work: Work) {
        self.lock().add(work);
        self.inner.1.notify_one();
    }

    /// Waits until there is work or `deadline` passes; then gathers what keeps arriving less
    /// than `coalesce` apart (one burst becomes one batch), at most [`GATHER`] more times, so a
    /// flood is still handed over in batches. `None` at the deadline.
    pub fn recv(&self, deadline: Instant, coalesce: Duration) -> Option<Batch> {
        let mut batch = self.take_until(deadline)?;
        for _ in 0..GATHER {
            match self.take_until(Instant::now() + coalesce) {
                Some(more) => batch.merge(more),
                None => break,
            }
        }
        Some(batch)
    }

    /// Takes what is pending, waiting for something until `deadline`.
    fn take_until(&self, deadline: Instant) -> Option<Batch> {
        let mut pending = self.lock();
        while pending.is_empty() {
            let left = deadline.checked_duration_since(Instant::now())?;
            pending = self
                .inner
                .1
                .wait_timeout(pending, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(std::mem::take(&mut *pending))
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        // A batch is consistent after every statement: a panicking holder leaves it usable.
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(n: usize) -> Work {
        Work::Session {
            agent: "andy".into(),
            session: format!("s{n}"),
        }
    }

    const SOON: Duration = Duration::from_millis(1);

    #[test]
    fn a_session_asked_for_twice_is_drained_once() {
        let inbox = Inbox::new();
        inbox.send(session(1));
        inbox.send(session(1));
        inbox.send(session(2));
        let batch = inbox.recv(Instant::now(), SOON).unwrap();
        assert_eq!(batch.sessions.len(), 2);
        assert!(!batch.everything);
    }

    #[test]
    fn a_full_inbox_becomes_drain_everything_and_loses_no_session() {
        let inbox = Inbox::new();
        for n in 0..=SESSIONS {
            inbox.send(session(n));
        }
        inbox.send(session(0));
        let batch = inbox.recv(Instant::now(), SOON).unwrap();
        assert!(batch.everything, "every active session is listed instead");
        assert!(batch.sessions.is_empty());
    }

    #[test]
    fn reports_and_stop_are_kept_beside_the_drains() {
        let inbox = Inbox::new();
        let report = Report {
            agent: "andy".into(),
            session: "s1".into(),
            row: "out-1".into(),
            result: Ok(Delivered::NoReader),
        };
        inbox.send(Work::Reported(report.clone()));
        inbox.send(Work::All);
        inbox.send(Work::Stop);
        let batch = inbox.recv(Instant::now(), SOON).unwrap();
        assert_eq!(batch.reports, [report]);
        assert!(batch.everything && batch.stop);
    }

    #[test]
    fn a_flood_is_still_handed_over_in_batches() {
        let inbox = Inbox::new();
        let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sender = {
            let inbox = inbox.clone();
            let flooding = std::sync::Arc::clone(&flooding);
            std::thread::spawn(move || {
                let mut n = 0;
                while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                    inbox.send(session(n % 8));
                    n += 1;
                }
            })
        };
        // A window no flood leaves a gap in: only the bound on gathering ends the batch.
        let window = Duration::from_secs(3600);
        let batch = inbox.recv(Instant::now() + window, window);
        flooding.store(false, std::sync::atomic::Ordering::Relaxed);
        sender.join().unwrap();
        assert!(batch.is_some_and(|batch| !batch.sessions.is_empty()));
    }

    #[test]
    fn nothing_sent_means_none_at_the_deadline() {
        let inbox = Inbox::new();
        assert_eq!(inbox.recv(Instant::now() + SOON, SOON), None);
    }

    #[test]
    fn recv_wakes_for_work_sent_from_another_thread() {
        let inbox = Inbox::new();
        let sender = inbox.clone();
        let thread = std::thread::spawn(move || sender.send(Work::All));
        let batch = inbox.recv(Instant::now() + Duration::from_secs(60), SOON);
        thread.join().unwrap();
        assert!(batch.is_some_and(|batch| batch.everything));
    }
}
