//! Outboxes: the one place `Adapter::deliver` is called, so the router and delivery threads
//! never wait on a platform.
//!
//! Each live adapter gets one tokio task and a bounded queue of [`CAPACITY`] jobs. The threads
//! hand a message over with `try_send` and go on; the task delivers the jobs one at a time, in
//! the order they were handed over (so a session's replies keep their order), within
//! [`DELIVER_TIMEOUT`] each, and sends the outcome of a row back to delivery's inbox as a
//! [`Report`]. A slow platform delays only its own replies. Notices (the router's
//! permission-denied replies, approval cards, the "agent is not answering" and "session files
//! damaged" notices) have no row: a notice that fails for a passing reason (network, 5xx, rate
//! limit) is retried by its outbox task as delivery retries a row ([`notice_retry`]: the
//! platform's `retry_after`, else 1 s doubling, at most [`NOTICE_ATTEMPTS`] attempts); any
//! other outcome is only logged.
//!
//! When a queue is full the message is not taken ([`Handed::Full`]): a row stays queued in its
//! session without counting an attempt and goes at a later drain; a notice is dropped with a
//! warning (it is told again only if its cause repeats).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, debug, warn};

use super::work::{Inbox, Report, Work};
use crate::channels::{Adapter, Adapters, DeliveryError, Outbound};

/// Jobs queued per adapter.
pub const CAPACITY: usize = 256;
/// Longest one delivery may take; then it counts as a failed attempt.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts at a notice before it is given up (a row gets `delivery::MAX_ATTEMPTS` transient
/// failures plus any number of `retry_after`s; a notice has no row to keep that count in, so
/// every failure counts here).
pub const NOTICE_ATTEMPTS: u32 = 5;
/// Wait before the second attempt at a notice that failed without a `retry_after`; doubles.
pub const NOTICE_FIRST_RETRY: Duration = Duration::from_secs(1);

/// The outboxes of the live adapters (cheap to clone; shared by router, delivery and waker).
#[derive(Clone)]
pub struct Outboxes {
    /// The live adapters (set at start; read by the router for threads and subscriptions).
    adapters: Adapters,
    /// Per channel type: the queue of its task.
    queues: BTreeMap<String, mpsc::Sender<Job>>,
    /// Jobs handed over and not finished, across all outboxes.
    pending: Pending,
}

/// One message for an adapter.
struct Job {
    /// What to deliver (written by the thread handing it over, read by the outbox task).
    message: Outbound,
    /// Whose row it is; `None` for a notice.
    row: Option<RowOf>,
    /// The `deliver{session, row}` span the delivery runs in.
    span: Span,
    /// Failed attempts so far (notices only: a row's attempts are delivery's).
    failures: u32,
}

/// The session a row belongs to, for its report.
struct RowOf {
    /// The agent and session the report names, so delivery drains that session again.
    agent: String,
    session: String,
}

/// What handing a message over did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handed {
    /// Queued; a row's outcome comes back as a [`Report`].
    Queued,
    /// The adapter's queue is full: nothing was taken.
    Full,
    /// No adapter of that channel type is running.
    NoChannel,
}

impl Outboxes {
    /// Starts one outbox task per adapter on `tasks`; they end when `stop` is cancelled (the
    /// job in hand is finished first; queued ones are dropped: their rows stay queued).
    pub fn start(
        adapters: Adapters,
        reports: Inbox,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) -> Outboxes {
        let pending = Pending::default();
        let mut queues = BTreeMap::new();
        for adapter in adapters.iter() {
            let (tx, rx) = mpsc::channel(CAPACITY);
            queues.insert(adapter.channel_type().to_string(), tx);
            tasks.spawn(run(
                Arc::clone(adapter),
                rx,
                reports.clone(),
                pending.clone(),
                stop.clone(),
            ));
        }
        Outboxes {
            adapters,
            queues,
            pending,
        }
    }

    /// The live adapters (for their synchronous methods: threads, subscriptions).
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Hands one outbound row of `session` to its adapter.
    pub fn row(
        &self,
        channel_type: &str,
        message: Outbound,
        agent: &str,
        session: &str,
        span: Span,
    ) -> Handed {
        let row = RowOf {
            agent: agent.to_string(),
            session: session.to_string(),
        };
        self.hand(channel_type, message, Some(row), span)
    }

    /// Hands a notice (no row) to its adapter; a notice that cannot be taken is logged.
    pub fn notice(&self, channel_type: &str, message: Outbound, about: &str) -> Handed {
        let id = message.id.clone();
        let handed = self.hand(channel_type, message, None, Span::current());
        match handed {
            Handed::Queued => {}
            Handed::Full => warn!(channel = channel_type, id = %id, about,
                "notice dropped: the channel's outbox is full"),
            Handed::NoChannel => debug!(channel = channel_type, id = %id, about,
                "notice not sent: the channel is not running"),
        }
        handed
    }

    /// Jobs handed over and not finished yet.
    pub fn pending(&self) -> usize {
        *self.pending.lock()
    }

    /// Waits until every job handed over is finished, at most `timeout`; whether they are.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let (lock, idle) = &*self.pending.0;
        let count = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, _) = idle
            .wait_timeout_while(count, timeout, |count| *count > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *count == 0
    }

    fn hand(
        &self,
        channel_type: &str,
        message: Outbound,
        row: Option<RowOf>,
        span: Span,
    ) -> Handed {
        let Some(queue) = self.queues.get(channel_type) else {
            return Handed::NoChannel;
        };
        self.pending.add();
        let job = Job {
            message,
            row,
            span,
            failures: 0,
        };
        match queue.try_send(job) {
            Ok(()) => Handed::Queued,
            Err(err) => {
                self.pending.done();
                match err {
                    mpsc::error::TrySendError::Full(_) => Handed::Full,
                    mpsc::error::TrySendError::Closed(_) => Handed::NoChannel,
                }
            }
        }
    }
}

/// One adapter's outbox task: jobs in the order handed over, and notices due for a retry.
async fn run(
    adapter: Arc<dyn Adapter>,
    mut jobs: mpsc::Receiver<Job>,
    reports: Inbox,
    pending: Pending,
    stop: CancellationToken,
) {
    // Notices waiting for their next attempt, with when it is due. Not counted as pending.
    let mut retrying: Vec<(tokio::time::Instant, Job)> = Vec::new();
    loop {
        let next_retry = retrying.iter().map(|(due, _)| *due).min();
        let job = tokio::select! {
            () = stop.cancelled() => break,
            () = sleep_until(next_retry) => {
                let now = tokio::time::Instant::now();
                let Some(index) = retrying.iter().position(|(due, _)| *due <= now) else {
                    continue;
                };
                pending.add();
                retrying.swap_remove(index).1
            }
            job = jobs.recv() => match job {
                Some(job) => job,
                None => break,
            },
        };
        let Job {
            message,
            row,
            span,
            failures,
        } = job;
        let result = deliver(adapter.as_ref(), &message)
            .instrument(span.clone())
            .await;
        span.in_scope(
            || debug!(channel = adapter.channel_type(), outcome = ?result, "channel answered"),
        );
        match row {
            Some(RowOf { agent, session }) => reports.send(Work::Reported(Report {
                agent,
                session,
                row: message.id,
                result,
            })),
            None => {
                if let Err(err) = result {
                    let failures = failures.saturating_add(1);
                    match notice_retry(&err, failures) {
                        Some(delay) => {
                            debug!(channel = adapter.channel_type(), id = %message.id, error = %err,
                                failures, retry_in = ?delay, "notice not delivered yet; retrying");
                            let due = tokio::time::Instant::now() + delay;
                            let job = Job {
                                message,
                                row: None,
                                span,
                                failures,
                            };
                            retrying.push((due, job));
                        }
                        None => {
                            warn!(channel = adapter.channel_type(), id = %message.id, error = %err,
                            failures, "notice not delivered")
                        }
                    }
                }
            }
        }
        pending.done();
    }
    // Jobs still queued are dropped: their rows stay queued in their sessions.
    while jobs.try_recv().is_ok() {
        pending.done();
    }
}

/// When to try a notice again after its `failures`-th failure with `error`; `None`: give up.
/// A `retry_after` is honoured; other passing failures wait [`NOTICE_FIRST_RETRY`], doubling.
pub fn notice_retry(error: &DeliveryError, failures: u32) -> Option<Duration> {
    if failures >= NOTICE_ATTEMPTS {
        return None;
    }
    match error {
        DeliveryError::Permanent(_) => None,
        DeliveryError::RetryAfter(after) => Some(*after),
        DeliveryError::Transient(_) => {
            Some(NOTICE_FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(16)))
        }
    }
}

/// Sleeps until `due`, or for ever when there is nothing due.
async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn deliver(
    adapter: &dyn Adapter,
    message: &Outbound,
) -> Result<crate::channels::Delivered, DeliveryError> {
    match tokio::time::timeout(DELIVER_TIMEOUT, adapter.deliver(message)).await {
        Ok(result) => result,
        Err(_) => Err(DeliveryError::Transient(format!(
            "the `{}` channel did not answer within {} s",
            adapter.channel_type(),
            DELIVER_TIMEOUT.as_secs()
        ))),
    }
}

/// A count of unfinished jobs that can be waited on.
#[derive(Clone, Default)]
struct Pending(Arc<(Mutex<usize>, Condvar)>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self) {
        *self.lock() += 1;
    }

    fn done(&self) {
        let mut count = self.lock();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.0.1.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::FutureExt;
    use futures_util::future::BoxFuture;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::channels::{Delivered, Start};

    /// A `slow` channel whose deliveries wait until the test lets them through.
    struct Gate {
        open: Arc<Semaphore>,
    }

    impl Adapter for Gate {
        fn channel_type(&self) -> &str {
            "slow"
        }
        fn supports_threads(&self) -> bool {
            false
        }
        fn start(self: Arc<Self>, _start: Start) -> BoxFuture<'static, anyhow::Result<()>> {
            std::future::ready(Ok(())).boxed()
        }
        fn stop(&self) -> BoxFuture<'_, ()> {
            std::future::ready(()).boxed()
        }
        fn deliver<'a>(
            &'a self,
            _message: &'a Outbound,
        ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
            async move {
                let _permit = self.open.acquire().await;
                Ok(Delivered::Sent(None))
            }
            .boxed()
        }
    }

    fn message(id: &str) -> Outbound {
        Outbound {
            id: id.into(),
            agent: None,
            platform_id: "chat".into(),
            thread_id: None,
            kind: "chat".into(),
            content: serde_json::json!({"text": id}),
            in_reply_to: None,
            files: Vec::new(),
        }
    }

    #[test]
    fn a_notice_is_retried_like_a_row_then_given_up() {
        let transient = DeliveryError::Transient("connection reset".into());
        let delays: Vec<Option<Duration>> = (1..=NOTICE_ATTEMPTS)
            .map(|failures| notice_retry(&transient, failures))
            .collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                Some(Duration::from_secs(8)),
                None
            ]
        );
        let later = DeliveryError::RetryAfter(Duration::from_secs(7));
        assert_eq!(notice_retry(&later, 1), Some(Duration::from_secs(7)));
        assert_eq!(
            notice_retry(&DeliveryError::Permanent("blocked".into()), 1),
            None
        );
    }

    /// A `flaky` channel that fails each message's first delivery, reporting every attempt.
    struct Flaky {
        attempts: mpsc::UnboundedSender<(String, tokio::time::Instant)>,
        seen: std::sync::Mutex<std::collections::HashSet<String>>,
    }

    impl Adapter for Flaky {
        fn channel_type(&self) -> &str {
            "flaky"
        }
        fn supports_threads(&self) -> bool {
            false
        }
        fn start(self: Arc<Self>, _start: Start) -> BoxFuture<'static, anyhow::Result<()>> {
            std::future::ready(Ok(())).boxed()
        }
        fn stop(&self) -> BoxFuture<'_, ()> {
            std::future::ready(()).boxed()
        }
        fn deliver<'a>(
            &'a self,
            message: &'a Outbound,
        ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
            let _ = self
                .attempts
                .send((message.id.clone(), tokio::time::Instant::now()));
            let first = self.seen.lock().unwrap().insert(message.id.clone());
            std::future::ready(if first {
                Err(DeliveryError::Transient("connection reset".into()))
            } else {
                Ok(Delivered::Sent(None))
            })
            .boxed()
        }
    }

    #[tokio::test]
    async fn issue_12_a_notice_that_failed_is_delivered_on_a_retry() {
        let (attempts_tx, mut attempts) = mpsc::unbounded_channel();
        let mut adapters = Adapters::default();
        adapters.register(Arc::new(Flaky {
            attempts: attempts_tx,
            seen: Default::default(),
        }));
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let outboxes = Outboxes::start(adapters, Inbox::new(), &tasks, stop.clone());
        assert_eq!(
            outboxes.notice("flaky", message("card"), "test"),
            Handed::Queued
        );
        let (first, at) = attempts.recv().await.unwrap();
        let (second, again) = attempts.recv().await.unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("card", "card"));
        assert!(again - at >= NOTICE_FIRST_RETRY);
        stop.cancel();
        tasks.close();
        tasks.wait().await;
        assert!(attempts.try_recv().is_err(), "delivered: no third attempt");
    }

    #[test]
    fn handing_over_never_waits_for_the_platform_and_a_full_outbox_takes_nothing() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let open = Arc::new(Semaphore::new(0));
        let mut adapters = Adapters::default();
        adapters.register(Arc::new(Gate {
            open: Arc::clone(&open),
        }));
        let inbox = Inbox::new();
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        let outboxes = {
            let _entered = runtime.enter();
            Outboxes::start(adapters, inbox.clone(), &tasks, stop.clone())
        };
        // The task holds one job at the gate; CAPACITY more fill the queue.
        let mut handed = Vec::new();
        for n in 0..=CAPACITY + 1 {
            handed.push(outboxes.row("slow", message(&format!("r{n}")), "a", "s", Span::none()));
        }
        assert!(handed[..CAPACITY].iter().all(|h| *h == Handed::Queued));
        assert_eq!(handed.last(), Some(&Handed::Full), "{handed:?}");
        assert_eq!(
            outboxes.row("nope", message("x"), "a", "s", Span::none()),
            Handed::NoChannel
        );
        open.add_permits(CAPACITY + 2);
        assert!(outboxes.wait_idle(Duration::from_secs(60)));
        let batch = inbox
            .recv(Instant::now(), Duration::from_millis(1))
            .unwrap();
        let rows: Vec<&str> = batch.reports.iter().map(|r| r.row.as_str()).collect();
        assert_eq!(rows.first(), Some(&"r0"), "in the order handed over");
        assert!(rows.windows(2).all(|pair| {
            let number = |row: &str| row[1..].parse::<usize>().unwrap();
            number(pair[0]) < number(pair[1])
        }));
        stop.cancel();
        tasks.close();
        runtime.block_on(tasks.wait());
    }
}
