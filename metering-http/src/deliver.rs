//! Sending alerts: the loop that takes due deliveries from the store's outbox, POSTs them
//! signed to their endpoints, and records each attempt; and the `quota.reset` sweep.
//!
//! Delivery is at least once. A message is written to the outbox in the transaction of the
//! usage that fired it, and stays pending until its endpoint answers with a 2xx, it is too
//! old ([`WebhookConfig::max_age`]) or the endpoint answers `410 Gone` (which also disables
//! the endpoint). A claimed delivery is leased for twice the timeout and two seconds (its
//! endpoint's turn, one attempt, a margin), so a server that dies mid-attempt leaves it to
//! be sent again after the lease, by any instance.
//! Retries wait `retry_base * 2^(attempts - 1)`, at most `retry_max`, each delay drawn
//! between its half and its whole (jitter).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use metering_core::{Attempt, DueDelivery, Metering, WebhookId};
use rand::Rng as _;
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// How alerts are sent to webhook endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// How often the outbox is read when nothing was due (default 500 ms).
    pub poll_interval: Duration,
    /// How long one attempt may take, connection included (default 10 s).
    pub timeout: Duration,
    /// Attempts in flight to one endpoint at once (default 4).
    pub concurrency_per_endpoint: usize,
    /// The delay before the first retry; it doubles with each attempt (default 5 s).
    pub retry_base: Duration,
    /// The longest delay between two attempts (default 1 hour).
    pub retry_max: Duration,
    /// How long a message is retried before its delivery fails (default 24 hours).
    pub max_age: Duration,
    /// How often ended periods are checked for `quota.reset` (default 10 s).
    pub reset_interval: Duration,
    /// How long finished deliveries, and the marks of ended periods, are kept before they
    /// are deleted ([`metering_core::Store::prune_alerts`]); `None` keeps them for ever
    /// (default 30 days).
    pub retention: Option<Duration>,
    /// How often what is past the retention is deleted (default 1 hour).
    pub prune_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            poll_interval: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
            concurrency_per_endpoint: 4,
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
            reset_interval: Duration::from_secs(10),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            prune_interval: Duration::from_secs(3600),
        }
    }
}

impl WebhookConfig {
    /// Sets the timeout of one attempt.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the first retry delay and the longest one.
    #[must_use]
    pub fn with_retry(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base = base;
        self.retry_max = max.max(base);
        self
    }

    /// Sets how long a message is retried.
    #[must_use]
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Sets how long finished deliveries and the marks of ended periods are kept (`None`:
    /// for ever).
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Sets how often what is past the retention is deleted.
    #[must_use]
    pub fn with_prune_interval(mut self, interval: Duration) -> Self {
        self.prune_interval = interval;
        self
    }

    /// Sets the attempts in flight per endpoint (at least 1).
    #[must_use]
    pub fn with_concurrency_per_endpoint(mut self, n: usize) -> Self {
        self.concurrency_per_endpoint = n.max(1);
        self
    }

    /// Sets how often the outbox is read when idle.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The delay after the `attempts`-th failed attempt, before jitter.
    fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.retry_base
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
    }

    /// How long a claimed delivery stays leased: the wait for its endpoint's turn
    /// ([`WebhookConfig::turn_wait`]), one attempt, and a margin to record it.
    fn lease(&self) -> Duration {
        self.turn_wait() + self.timeout + Duration::from_secs(1)
    }

    /// How long a claimed delivery may wait for its endpoint's turn; one that waited longer
    /// is left for its lease to end and to be claimed again, so no attempt starts that
    /// could end after the lease.
    fn turn_wait(&self) -> Duration {
        self.timeout + Duration::from_secs(1)
    }
}

/// Deliveries taken from the outbox per read.
const CLAIM_BATCH: usize = 64;

/// Rows of each kind deleted per store call, and calls per pruning at most: short writes,
/// so ingest waits little; what is left goes in the next hour.
const PRUNE_BATCH: usize = 5_000;
const PRUNE_CALLS: usize = 20;

/// The loop that sends due deliveries and fires `quota.reset`; stops on [`Deliverer::shutdown`].
#[derive(Debug)]
pub struct Deliverer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Deliverer {
    /// Starts sending on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When the HTTP client cannot be built (no TLS roots can be loaded).
    #[must_use]
    pub fn spawn(engine: Metering, config: WebhookConfig, metrics: Metrics) -> Self {
        let (stop, stopped) = watch::channel(false);
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("metering/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client");
        let sender = Sender {
            engine,
            config,
            metrics,
            client,
            endpoints: Arc::default(),
        };
        let task = tokio::spawn(sender.run(stopped));
        Deliverer { stop, task }
    }

    /// Stops taking deliveries; attempts in flight finish on their own (or their lease ends
    /// and another run sends them again).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the webhook delivery loop failed");
        }
    }
}

#[derive(Clone)]
struct Sender {
    engine: Metering,
    config: WebhookConfig,
    metrics: Metrics,
    client: reqwest::Client,
    /// One semaphore per endpoint: its attempts in flight.
    endpoints: Arc<Mutex<HashMap<WebhookId, Arc<Semaphore>>>>,
}

impl Sender {
    /// Deletes finished deliveries and marks older than the retention, and forgets the
    /// turns of endpoints that were deleted.
    async fn prune(&self) {
        if let Some(retention) = self.config.retention {
            let keep = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
            let cutoff = self
                .engine
                .now()
                .checked_sub_signed(keep)
                .unwrap_or(DateTime::<Utc>::MIN_UTC);
            let mut deleted = 0;
            for _ in 0..PRUNE_CALLS {
                match self.engine.store().prune_alerts(cutoff, PRUNE_BATCH).await {
                    Ok(0) => break,
                    Ok(n) => deleted += n,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not delete old webhook deliveries");
                        break;
                    }
                }
            }
            if deleted > 0 {
                tracing::info!(rows = deleted, %cutoff, "deleted old webhook deliveries and alert marks");
            }
        }
        if let Ok(hooks) = self.engine.store().list_webhooks().await {
            let live: std::collections::HashSet<WebhookId> = hooks.iter().map(|w| w.id).collect();
            self.endpoints
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|id, _| live.contains(id));
        }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut last_reset: Option<Instant> = None;
        let mut last_prune: Option<Instant> = None;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() >= self.config.prune_interval) {
                last_prune = Some(Instant::now());
                self.prune().await;
            }
            if last_reset.is_none_or(|t| t.elapsed() >= self.config.reset_interval) {
                last_reset = Some(Instant::now());
                if let Err(e) = self.engine.fire_resets().await {
                    tracing::warn!(error = %e, "could not check ended quota periods for quota.reset");
                }
                if let Ok(counts) = self.engine.store().delivery_counts().await {
                    self.metrics.record_webhook_deliveries(counts);
                }
            }
            let claimed = self.claim_and_send().await;
            if claimed == CLAIM_BATCH {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.poll_interval) => {}
                _ = stopped.changed() => break,
            }
        }
    }

    /// Takes the due deliveries and starts sending each; how many were taken.
    async fn claim_and_send(&self) -> usize {
        let now = self.engine.now();
        let lease =
            chrono::Duration::from_std(self.config.lease()).unwrap_or(chrono::Duration::MAX);
        let store = self.engine.store();
        let due = match store.claim_deliveries(now, now + lease, CLAIM_BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the webhook outbox; will retry");
                return 0;
            }
        };
        let n = due.len();
        for delivery in due {
            let semaphore = Arc::clone(
                self.endpoints
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(delivery.delivery.webhook_id)
                    .or_insert_with(|| {
                        Arc::new(Semaphore::new(self.config.concurrency_per_endpoint.max(1)))
                    }),
            );
            let sender = self.clone();
            let turn_wait = self.config.turn_wait();
            tokio::spawn(async move {
                let Ok(Ok(_permit)) =
                    tokio::time::timeout(turn_wait, semaphore.acquire_owned()).await
                else {
                    return;
                };
                sender.send(delivery).await;
            });
        }
        n
    }

    /// One attempt at a delivery, recorded in the store.
    async fn send(&self, due: DueDelivery) {
        let started = Instant::now();
        let sent_at = self.engine.now();
        let d = &due.delivery;
        let timestamp = sent_at.timestamp();
        let signature = due
            .secret
            .sign(&d.message_id, timestamp, d.payload.as_bytes());
        let answer = self
            .client
            .post(&due.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        let status = match &answer {
            Ok(response) => Some(response.status().as_u16()),
            Err(e) => {
                tracing::info!(delivery = %d.id, error = %e, "a webhook endpoint did not answer");
                None
            }
        };
        let attempt = self.judge(d.created_at, d.attempts + 1, status);
        let outcome = match attempt {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::GaveUp { .. } => "failed",
            Attempt::Gone => "gone",
        };
        self.metrics
            .record_webhook_attempt(outcome, started.elapsed());
        if let Err(e) = self
            .engine
            .store()
            .finish_delivery(d.id, attempt, self.engine.now())
            .await
        {
            // The lease ends and the delivery is sent again: at least once.
            tracing::warn!(delivery = %d.id, error = %e, "could not record a webhook attempt");
        }
    }

    /// What an answer (`status`, none for no answer) to the `attempts`-th attempt means.
    fn judge(&self, created_at: DateTime<Utc>, attempts: u32, status: Option<u16>) -> Attempt {
        match status {
            Some(code) if (200..300).contains(&code) => {
                return Attempt::Delivered { status_code: code };
            }
            Some(410) => return Attempt::Gone,
            _ => {}
        }
        let delay = self.config.backoff(attempts);
        let jittered = delay.mul_f64(rand::rng().random_range(0.5..=1.0));
        let now = self.engine.now();
        let next = now + chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX);
        let max_age =
            chrono::Duration::from_std(self.config.max_age).unwrap_or(chrono::Duration::MAX);
        if next - created_at > max_age {
            Attempt::GaveUp {
                status_code: status,
            }
        } else {
            Attempt::Retry {
                status_code: status,
                next_attempt_at: next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_the_maximum() {
        let config =
            WebhookConfig::default().with_retry(Duration::from_secs(5), Duration::from_secs(60));
        let delays: Vec<u64> = (1..=6).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
        assert_eq!(config.backoff(u32::MAX), Duration::from_secs(60));
    }
}
