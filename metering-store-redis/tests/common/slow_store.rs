//! A store wrapper that stretches the windows the counter protocol guards: the time between a
//! commit and `end_ingest`, and between reading the usage and `finish_rebuild`.

use std::time::Duration;

use metering_core::{
    ConsumeOutcome, Event, InsertOutcome, Quantity, Result, Store, UsageLimit, UsageScope, Window,
};

/// Delegates to `S`, pausing up to `max_pause` after each write and each usage read.
#[derive(Debug, Clone)]
pub struct SlowStore<S> {
    pub inner: S,
    pub max_pause: Duration,
}

impl<S> SlowStore<S> {
    async fn pause(&self) {
        let micros = u64::try_from(self.max_pause.as_micros()).unwrap_or(u64::MAX);
        let pause = rand::random_range(0..=micros);
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
}

metering_core::forward_store! {
    impl[S: Store] Store for SlowStore<S> => inner;
    forward: [
        list_events, event, replacement_of, void_event, amend_event, aggregate, tally_meter, consume_metered, upsert_quota, list_quotas, quota, quota_candidates,
        delete_quota, insert_api_key, api_key_by_hash, list_api_keys, api_key, revoke_api_key,
        record_key_usage, put_meter, list_meters, meter, delete_meter,
        query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health,
    ];

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[metering_core::AlertWatch],
    ) -> Result<InsertOutcome> {
        self.pause().await;
        let outcome = self.inner.insert_events_watched(events, watches).await;
        self.pause().await;
        outcome
    }

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        self.pause().await;
        let outcome = self.inner.insert_events(events).await;
        self.pause().await;
        outcome
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        self.pause().await;
        let usage = self.inner.sum_usage(scope, window).await;
        self.pause().await;
        usage
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        let outcome = self.inner.consume(event, limit, watch).await;
        self.pause().await;
        outcome
    }
}
