//! What delivery does with the outcome of one row: the reports of rows in flight, and the
//! outcomes of rows handled on the worker itself. Part of the delivery worker (`delivery.rs`);
//! its state is the worker's.
//!
//! | outcome | the row |
//! |---|---|
//! | `Sent` | recorded delivered (sent log first) |
//! | `NoReader`, `AwaitingAck` | stays queued, no attempt counted |
//! | `RetryAfter(d)` | stays queued, not attempted again for `d`, no attempt counted |
//! | `Permanent` | recorded failed at once |
//! | `Transient` (and refusals found here: unknown destination, no such channel) | an attempt; failed after [`MAX_ATTEMPTS`] |

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use tracing::{debug, info_span, warn};

use super::{Delivery, FAILED, InboundFile, MAX_ATTEMPTS};
use crate::channels::{Delivered, DeliveryError};
use crate::db::delivered::Outcome;
use crate::runtime::work::Report;

impl Delivery {
    /// Acts on the reports of rows in flight and records their final outcomes, one
    /// transaction per session. Returns the sessions to drain again: a row that stays queued
    /// and was asked for again while in flight (a reader may have arrived meanwhile).
    pub(super) fn take_reports(&mut self, reports: Vec<Report>) -> BTreeSet<(String, String)> {
        let mut again = BTreeSet::new();
        let mut outcomes: BTreeMap<(String, String), Vec<(String, Outcome)>> = BTreeMap::new();
        for report in reports {
            let flight = self.in_flight.remove(&report.row);
            let span = info_span!("deliver", session = %report.session, row = %report.row);
            let _entered = span.enter();
            let key = (report.agent.clone(), report.session.clone());
            if matches!(report.result, Ok(Delivered::Sent(_))) {
                // A channel send reached its chat: its outbox files are done with, and the
                // typing indicator pauses.
                let dir = self.paths.session(&report.agent, &report.session);
                crate::runtime::outbox_files::clear(&dir, &report.row);
                if let Some(typing) = &self.typing {
                    typing.tell(crate::runtime::typing::Event::Replied {
                        session: report.session.clone(),
                    });
                }
            }
            match self.outcome_of(&report.agent, &report.session, &report.row, report.result) {
                Some(outcome) => outcomes.entry(key).or_default().push((report.row, outcome)),
                None => {
                    self.settling.remove(&report.session);
                    if flight.is_some_and(|flight| flight.asked_again) {
                        again.insert(key);
                    }
                }
            }
        }
        for ((agent, session), outcomes) in outcomes {
            let dir = self.paths.session(&agent, &session);
            let inbound = InboundFile::now(agent_runner::session_db::inbound_path(&dir));
            if !self.record(&inbound, &agent, &session, &outcomes) {
                self.settling.remove(&session);
            }
        }
        let done: Vec<String> = self
            .settling
            .keys()
            .filter(|session| {
                !self
                    .in_flight
                    .values()
                    .any(|flight| &&flight.session == session)
            })
            .cloned()
            .collect();
        for session in done {
            if let Some(stamp) = self.settling.remove(&session) {
                self.settled.insert(session, stamp);
            }
        }
        again
    }

    /// What a delivery result means for its row: `Some` is its final outcome (to record),
    /// `None` keeps it queued (see the module comment).
    pub(super) fn outcome_of(
        &mut self,
        agent: &str,
        session: &str,
        row: &str,
        result: Result<Delivered, DeliveryError>,
    ) -> Option<Outcome> {
        match result {
            Ok(Delivered::Sent(platform_message_id)) => {
                self.attempts.remove(row);
                self.retry_at.remove(row);
                debug!(session, id = %row, "delivered");
                self.log_sent(agent, session, row, platform_message_id.as_deref());
                Some(Outcome {
                    failed: false,
                    platform_message_id,
                })
            }
            Ok(Delivered::NoReader) => {
                debug!(session, id = %row, "no reader connected; reply stays queued");
                None
            }
            Ok(Delivered::AwaitingAck) => {
                debug!(session, id = %row, "not shown yet; reply stays queued");
                None
            }
            Err(DeliveryError::RetryAfter(delay)) => {
                debug!(session, id = %row, retry_in_ms = delay.as_millis(),
                    "the channel asks to retry later; reply stays queued");
                self.retry_at
                    .insert(row.to_string(), Instant::now() + delay);
                None
            }
            Err(DeliveryError::Permanent(reason)) => {
                self.attempts.remove(row);
                self.retry_at.remove(row);
                warn!(session, id = %row, %reason, "the channel refused the reply for good; marked failed");
                Some(FAILED)
            }
            Err(DeliveryError::Transient(reason)) => self.failed_attempt(session, row, &reason),
        }
    }

    /// Counts a failed attempt; the row is marked failed at the [`MAX_ATTEMPTS`]th.
    pub(super) fn failed_attempt(
        &mut self,
        session: &str,
        row: &str,
        reason: &str,
    ) -> Option<Outcome> {
        let tries = self.attempts.entry(row.to_string()).or_insert(0);
        *tries += 1;
        if *tries >= MAX_ATTEMPTS {
            self.attempts.remove(row);
            self.retry_at.remove(row);
            warn!(session, id = %row, %reason, "delivery failed {MAX_ATTEMPTS} times; marked failed");
            Some(FAILED)
        } else {
            warn!(session, id = %row, %reason, attempt = *tries, "delivery failed; will retry");
            None
        }
    }
}
