//! Bounded, coalescing mailboxes between the runtime's tokio actors.
//!
//! The runtime's triggers are level-triggered: "look at session S" asked twice before it is
//! handled means the same as asked once. So instead of a queue of requests, a [`Mailbox`] holds
//! each key at most once (a send of a key already queued is a no-op that keeps the first value),
//! up to a fixed number of keys. When it is full, a further key is not stored; the mailbox
//! remembers that it overflowed and its receiver gets [`Mail::Overflow`], which means "some keys
//! were left out: look at everything" — a full mailbox coalesces into one catch-all request, it
//! never loses work. A [`Signal`] is the one-key case: raised any number of times, seen once.
//!
//! Senders never block and never fail (they may be threads or tasks); one task receives.
//! Nothing here knows what a key means.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// A bounded set of keys, each with the value of its first send, received in send order.
pub struct Mailbox<K, V = ()> {
    inner: Arc<Inner<K, V>>,
}

struct Inner<K, V> {
    state: Mutex<State<K, V>>,
    /// Wakes the receiver; holds one permit when nobody waits, so no send is missed.
    notify: Notify,
    capacity: usize,
}

struct State<K, V> {
    /// Keys in send order (each at most once).
    order: VecDeque<K>,
    /// The value of each queued key: the first send's.
    values: HashMap<K, V>,
    /// A key was refused because the mailbox was full; cleared when reported.
    overflowed: bool,
}

/// What a send did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// The key is queued now.
    Queued,
    /// The key was already queued: nothing changed.
    Coalesced,
    /// The mailbox is full: the receiver is told to look at everything instead.
    Overflowed,
}

/// What the receiver gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mail<K, V = ()> {
    /// One key, with the value of its first send.
    Key(K, V),
    /// Keys were left out because the mailbox was full: act on every key that may be due.
    Overflow,
}

impl<K, V> Clone for Mailbox<K, V> {
    fn clone(&self) -> Self {
        Mailbox {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Mailbox<K, V> {
    /// A mailbox holding at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Mailbox<K, V> {
        Mailbox {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    order: VecDeque::new(),
                    values: HashMap::new(),
                    overflowed: false,
                }),
                notify: Notify::new(),
                capacity: capacity.max(1),
            }),
        }
    }

    /// Queues `key` unless it is queued already; never blocks.
    pub fn send(&self, key: K, value: V) -> Sent {
        let sent = {
            let mut state = self.lock();
            if state.values.contains_key(&key) {
                return Sent::Coalesced;
            }
            if state.order.len() >= self.inner.capacity {
                state.overflowed = true;
                Sent::Overflowed
            } else {
                state.order.push_back(key.clone());
                state.values.insert(key, value);
                Sent::Queued
            }
        };
        self.inner.notify.notify_one();
        sent
    }

    /// The next mail, waiting for one. An overflow is reported before the keys still queued.
    pub async fn recv(&self) -> Mail<K, V> {
        loop {
            if let Some(mail) = self.try_recv() {
                return mail;
            }
            self.inner.notify.notified().await;
        }
    }

    /// The next mail if there is one.
    pub fn try_recv(&self) -> Option<Mail<K, V>> {
        let mut state = self.lock();
        if std::mem::take(&mut state.overflowed) {
            return Some(Mail::Overflow);
        }
        let key = state.order.pop_front()?;
        let value = state.values.remove(&key)?;
        Some(Mail::Key(key, value))
    }

    /// Keys queued now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        // The state is consistent after every statement: a panicking holder leaves it usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A flag one task waits for: raised any number of times before it looks, it is seen once.
#[derive(Clone, Default)]
pub struct Signal(Arc<Notify>);

impl Signal {
    pub fn new() -> Signal {
        Signal::default()
    }

    /// Raises the flag; never blocks.
    pub fn raise(&self) {
        self.0.notify_one();
    }

    /// Waits until the flag is raised, and lowers it.
    pub async fn raised(&self) {
        self.0.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    fn drain(mailbox: &Mailbox<&'static str, u32>) -> Vec<Mail<&'static str, u32>> {
        std::iter::from_fn(|| mailbox.try_recv()).collect()
    }

    #[test]
    fn a_wake_for_a_session_already_queued_is_a_no_op() {
        let wakes: Mailbox<&str, u32> = Mailbox::new(8);
        assert_eq!(wakes.send("s1", 1), Sent::Queued);
        assert_eq!(wakes.send("s2", 2), Sent::Queued);
        assert_eq!(wakes.send("s1", 3), Sent::Coalesced);
        assert_eq!(wakes.len(), 2);
        assert_eq!(
            drain(&wakes),
            [Mail::Key("s1", 1), Mail::Key("s2", 2)],
            "one entry per session, in order, with the first sender's value"
        );
        assert_eq!(wakes.send("s1", 4), Sent::Queued, "received: queued again");
    }

    #[test]
    fn a_full_mailbox_coalesces_into_one_overflow_and_loses_nothing() {
        let wakes: Mailbox<&str, u32> = Mailbox::new(2);
        wakes.send("s1", 0);
        wakes.send("s2", 0);
        assert_eq!(wakes.send("s3", 0), Sent::Overflowed);
        assert_eq!(wakes.send("s4", 0), Sent::Overflowed);
        assert_eq!(
            wakes.send("s1", 0),
            Sent::Coalesced,
            "a queued key still coalesces"
        );
        assert_eq!(
            drain(&wakes),
            [Mail::Overflow, Mail::Key("s1", 0), Mail::Key("s2", 0)],
            "the left-out keys become one catch-all, reported first"
        );
        assert!(wakes.is_empty());
    }

    #[tokio::test]
    async fn recv_waits_for_a_send_from_another_thread() {
        let wakes: Mailbox<String> = Mailbox::new(4);
        let mut next = Box::pin(wakes.recv());
        assert!((&mut next).now_or_never().is_none(), "nothing sent yet");
        let sender = wakes.clone();
        std::thread::spawn(move || sender.send("s1".to_string(), ()))
            .join()
            .unwrap();
        assert_eq!(next.await, Mail::Key("s1".to_string(), ()));
    }

    #[tokio::test]
    async fn a_signal_raised_twice_is_seen_once() {
        let signal = Signal::new();
        signal.raise();
        signal.raise();
        assert!(signal.raised().now_or_never().is_some());
        assert!(signal.raised().now_or_never().is_none());
    }
}
