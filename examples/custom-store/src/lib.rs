//! A custom [`Store`]: one that wraps another store and counts what it writes, to show the
//! whole trait and how a backend runs the conformance suite (see `tests/conformance.rs`).
//!
//! Run the example with `cargo run -p example-custom-store`, and its conformance suite with
//! `cargo test -p example-custom-store`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metering::{ConsumeOutcome, Event, InsertOutcome, MemoryStore, Result, Store, UsageLimit};

/// A store that delegates to `inner` and counts the events it wrote.
#[derive(Debug, Clone, Default)]
pub struct CountingStore<S = MemoryStore> {
    inner: S,
    written: Arc<AtomicUsize>,
}

impl<S: Store + Clone> CountingStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        CountingStore {
            inner,
            written: Arc::default(),
        }
    }

    /// Events written through this store (and its clones).
    #[must_use]
    pub fn written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }
}

metering::core::forward_store! {
    impl[S: Store + Clone] Store for CountingStore<S> => inner;
    forward: [
        list_events, event, replacement_of, void_event, amend_event, aggregate, tally_meter, consume_metered, sum_usage, upsert_quota, list_quotas, quota, quota_candidates,
        delete_quota, insert_api_key, api_key_by_hash, list_api_keys, api_key, revoke_api_key,
        record_key_usage, put_meter, list_meters, meter, delete_meter,
        query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health,
    ];

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[metering::core::AlertWatch],
    ) -> Result<InsertOutcome> {
        let outcome = self.inner.insert_events_watched(events, watches).await?;
        self.written
            .fetch_add(outcome.inserted_count(), Ordering::Relaxed);
        Ok(outcome)
    }

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let outcome = self.inner.insert_events(events).await?;
        self.written
            .fetch_add(outcome.inserted_count(), Ordering::Relaxed);
        Ok(outcome)
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&metering::core::AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        let outcome = self.inner.consume(event, limit, watch).await?;
        if matches!(outcome, ConsumeOutcome::Admitted { .. }) {
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
    }
}
