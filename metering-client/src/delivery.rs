//! Delivery: retries with backoff, splitting, rejection, spilling and replay. Every transport
//! ends here; the sinks make single attempts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use metering_core::FieldError;
use rand::Rng;
use tokio::sync::{Mutex, Notify};

use crate::config::ClientConfig;
use crate::error::SendFailure;
use crate::sink::Sink;
use crate::spill::SpillQueue;
use crate::stats::Counters;
use crate::wire::Pending;

/// What became of one batch.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) sent: usize,
    pub(crate) spilled: usize,
    pub(crate) dropped: usize,
    /// Every rule broken by a rejected event.
    pub(crate) rejected: Vec<FieldError>,
    pub(crate) rejected_events: usize,
    /// The last failure, when events could not be delivered.
    pub(crate) failure: Option<String>,
}

/// The backoff schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first): `base * 2^retry`, capped,
    /// with "equal jitter" (a random point in the upper half) so clients that failed
    /// together do not come back together. A server's `Retry-After` wins (capped too).
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max);
        let half = exp / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::rng().random_range(0..=jitter_nanos))
    }
}

/// State shared by the client handle and its background tasks.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) counters: Counters,
    pub(crate) spill: Option<SpillQueue>,
    pub(crate) retry: RetryPolicy,
    pub(crate) batch_size: usize,
    /// One replay at a time, so spilled events go out in order.
    replay_lock: Mutex<()>,
    /// Wakes the replay task when something was spilled.
    pub(crate) replay_wake: Notify,
}

/// Why a chunk is being sent again.
enum Next {
    Done,
    Retry(Option<Duration>, String),
}

impl Core {
    pub(crate) fn new(
        sink: Arc<dyn Sink>,
        spill: Option<SpillQueue>,
        config: &ClientConfig,
    ) -> Self {
        Core {
            sink,
            counters: Counters::default(),
            spill,
            retry: RetryPolicy {
                max_retries: config.max_retries,
                base: config.retry_base_delay,
                max: config.retry_max_delay,
            },
            batch_size: config.batch_size,
            replay_lock: Mutex::new(()),
            replay_wake: Notify::new(),
        }
    }

    /// Events waiting in the spill queue.
    pub(crate) fn pending_spill(&self) -> u64 {
        self.spill.as_ref().map_or(0, SpillQueue::len)
    }

    /// Delivers one batch (ids and timestamps already stamped): sent with retries, or
    /// spilled when the sink stays down. While older events wait in the spill queue, new
    /// ones queue behind them, so the sink sees events in the order they were recorded.
    pub(crate) async fn deliver(&self, events: Vec<Pending>) -> Report {
        if self.pending_spill() > 0 {
            let mut report = Report::default();
            self.spill_or_drop(events, &mut report, "older events are still spilled")
                .await;
            return report;
        }
        let (mut report, undelivered) = self.send_all(events, self.retry.max_retries).await;
        if !undelivered.is_empty() {
            let reason = report.failure.clone().unwrap_or_default();
            self.spill_or_drop(undelivered, &mut report, &reason).await;
        }
        report
    }

    async fn spill_or_drop(&self, events: Vec<Pending>, report: &mut Report, reason: &str) {
        let n = events.len();
        match &self.spill {
            Some(spill) => match spill.append(&events).await {
                Ok(()) => {
                    tracing::debug!(events = n, reason, "spilled events to disk");
                    Counters::add(&self.counters.spilled, n);
                    report.spilled += n;
                    self.replay_wake.notify_one();
                }
                Err(error) => {
                    tracing::error!(events = n, %error, reason, "cannot spill events; dropping them");
                    Counters::add(&self.counters.dropped, n);
                    report.dropped += n;
                }
            },
            None => {
                tracing::error!(
                    events = n,
                    reason,
                    "metering sink unreachable and no spill queue configured; dropping events"
                );
                Counters::add(&self.counters.dropped, n);
                report.dropped += n;
            }
        }
    }

    /// Sends `events` in order, retrying each request up to `max_retries` times. Returns
    /// the report and what could not be delivered (the failed chunk and everything after
    /// it, in order).
    pub(crate) async fn send_all(
        &self,
        events: Vec<Pending>,
        max_retries: u32,
    ) -> (Report, Vec<Pending>) {
        let mut report = Report::default();
        let mut chunks: VecDeque<Vec<Pending>> = VecDeque::new();
        chunks.push_back(events);
        while let Some(mut chunk) = chunks.pop_front() {
            let mut retries = 0;
            loop {
                if chunk.is_empty() {
                    break;
                }
                let next = match self.sink.send(&chunk).await {
                    Ok(()) => {
                        Counters::add(&self.counters.sent, chunk.len());
                        report.sent += chunk.len();
                        Next::Done
                    }
                    Err(SendFailure::Invalid { message, errors }) => {
                        match self.reject(&mut chunk, errors, &mut report) {
                            // The bad events are out; send the rest (not a retry).
                            Some(()) => continue,
                            None => {
                                // Rejected without saying which event: halve until the bad
                                // ones stand alone.
                                if chunk.len() > 1 {
                                    let right = chunk.split_off(chunk.len() / 2);
                                    chunks.push_front(right);
                                    chunks.push_front(chunk);
                                    break;
                                }
                                self.reject_all(&chunk, &message, &mut report);
                                Next::Done
                            }
                        }
                    }
                    Err(SendFailure::TooLarge { message }) => {
                        if chunk.len() > 1 {
                            let right = chunk.split_off(chunk.len() / 2);
                            chunks.push_front(right);
                            chunks.push_front(chunk);
                            break;
                        }
                        self.reject_all(&chunk, &message, &mut report);
                        Next::Done
                    }
                    Err(SendFailure::Retryable {
                        message,
                        retry_after,
                        source,
                    }) => {
                        tracing::debug!(%message, ?source, retries, "metering request failed");
                        Next::Retry(retry_after, message)
                    }
                };
                match next {
                    Next::Done => break,
                    Next::Retry(retry_after, message) => {
                        if retries >= max_retries {
                            tracing::warn!(
                                events = chunk.len(),
                                attempts = retries + 1,
                                %message,
                                "metering sink unreachable"
                            );
                            report.failure = Some(message);
                            let mut undelivered = chunk;
                            undelivered.extend(chunks.into_iter().flatten());
                            return (report, undelivered);
                        }
                        tokio::time::sleep(self.retry.delay(retries, retry_after)).await;
                        retries += 1;
                        Counters::add(&self.counters.retried, chunk.len());
                    }
                }
            }
        }
        (report, Vec::new())
    }

    /// Removes the events `errors` point at from `chunk`, logging each with its event.
    /// `None` when no error names an event of the chunk.
    fn reject(
        &self,
        chunk: &mut Vec<Pending>,
        errors: Vec<FieldError>,
        report: &mut Report,
    ) -> Option<()> {
        let mut by_index: BTreeMap<usize, Vec<FieldError>> = BTreeMap::new();
        for error in errors {
            if let Some(i) = error.index.filter(|i| *i < chunk.len()) {
                by_index.entry(i).or_default().push(error);
            }
        }
        if by_index.is_empty() {
            return None;
        }
        // Remove from the back so earlier indices stay valid.
        for (i, errors) in by_index.into_iter().rev() {
            let event = chunk.remove(i);
            tracing::warn!(
                event = %event.to_json(),
                errors = ?errors,
                "metering event rejected as invalid; not retried"
            );
            Counters::add(&self.counters.rejected, 1);
            report.rejected_events += 1;
            report.rejected.extend(errors);
        }
        Some(())
    }

    fn reject_all(&self, chunk: &[Pending], message: &str, report: &mut Report) {
        for event in chunk {
            tracing::warn!(
                event = %event.to_json(),
                %message,
                "metering event rejected; not retried"
            );
        }
        Counters::add(&self.counters.rejected, chunk.len());
        report.rejected_events += chunk.len();
        report.rejected.push(FieldError {
            index: None,
            field: "events".into(),
            message: message.to_owned(),
        });
    }

    /// Sends the spill queue, oldest first, in batches, until it is empty (`true`) or the
    /// sink fails (`false`; the events stay queued). Each batch leaves the queue only after
    /// the sink acknowledged it; a resend after a lost acknowledgement is a duplicate by id,
    /// which the sink does not count twice.
    pub(crate) async fn replay(&self, max_retries: u32) -> bool {
        let Some(spill) = &self.spill else {
            return true;
        };
        let _one_at_a_time = self.replay_lock.lock().await;
        loop {
            let head = match spill.peek(self.batch_size).await {
                Ok(head) => head,
                Err(error) => {
                    tracing::error!(%error, "cannot read the spill queue");
                    return false;
                }
            };
            let Some(&(last, _)) = head.last() else {
                return true;
            };
            let events: Vec<Pending> = head.into_iter().map(|(_, e)| Pending::Event(e)).collect();
            let (report, undelivered) = self.send_all(events, max_retries).await;
            if !undelivered.is_empty() {
                return false;
            }
            if let Err(error) = spill.remove_through(last).await {
                tracing::error!(%error, "cannot remove replayed events from the spill queue");
                return false;
            }
            Counters::add(&self.counters.replayed, report.sent);
            tracing::info!(events = report.sent, "replayed spilled metering events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for retry in 0..3 {
            let d = policy.delay(retry, None);
            let full = Duration::from_millis(100 * 2u64.pow(retry));
            assert!(d >= full / 2 && d <= full, "{retry}: {d:?}");
        }
        assert_eq!(
            policy.delay(10, None).max(Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_millis(700))),
            Duration::from_millis(700)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(60))),
            Duration::from_secs(1)
        );
    }
}
