//! Timing decorators: [`InstrumentedStore`] and [`InstrumentedCache`] implement the traits
//! they wrap and record each call's latency in [`Metrics`], so the engine and the handlers
//! stay free of measuring code.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metering_core::{
    AggregateQuery, AggregateRow, AlertMark, AlertPeriod, AlertWatch, AmendOutcome, ApiKey,
    ApiKeyId, Attempt, ConsumeOutcome, CounterKey, Delivery, DeliveryCounts, DeliveryId,
    DueDelivery, Event, EventId, EventPage, EventQuery, Feature, Ingested, InsertOutcome, KeyHash,
    LastAdmin, Meter, MeterKey, MeterLimit, MeterQuery, MeterReport, MeterSpec, MeterTally,
    MeteredConsume, Quantity, Quota, QuotaCache, QuotaId, QuotaScope, QuotaSpec, RebuildToken,
    Result, Store, StoredApiKey, TenantId, UsageLimit, UsageScope, UsageStream, Webhook, WebhookId,
    WebhookSecret, Window,
};

use crate::metrics::{Metrics, result_label};

/// A [`Store`] that records the latency of every call as
/// `metering_store_duration_seconds{method, result}`, and the size of every insert as
/// `metering_commit_events` (with group commit on, one insert is one group).
#[derive(Debug, Clone)]
pub struct InstrumentedStore<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    metrics: Metrics,
}

impl<S: Store + ?Sized> InstrumentedStore<S> {
    /// Wraps `inner`, recording into `metrics`.
    #[must_use]
    pub fn new(inner: Arc<S>, metrics: Metrics) -> Self {
        InstrumentedStore { inner, metrics }
    }

    /// The wrapped store.
    #[must_use]
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }
}

/// Times `$call` and records it under `$method` with `$record`.
macro_rules! timed {
    ($self:ident, $record:ident, $method:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        $self
            .metrics
            .$record($method, result_label(&result), started.elapsed());
        result
    }};
}

#[async_trait]
impl<S: Store + ?Sized> Store for InstrumentedStore<S> {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let result = timed!(
            self,
            record_store_call,
            "insert_events",
            self.inner.insert_events(events)
        );
        if result.is_ok() {
            self.metrics.record_commit(events.len());
        }
        result
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        timed!(
            self,
            record_store_call,
            "list_events",
            self.inner.list_events(query)
        )
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>> {
        timed!(self, record_store_call, "event", self.inner.event(id))
    }

    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
        timed!(
            self,
            record_store_call,
            "replacement_of",
            self.inner.replacement_of(id)
        )
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        timed!(
            self,
            record_store_call,
            "void_event",
            self.inner.void_event(id, reason, at)
        )
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        timed!(
            self,
            record_store_call,
            "amend_event",
            self.inner.amend_event(replacement, reason, at)
        )
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        timed!(
            self,
            record_store_call,
            "aggregate",
            self.inner.aggregate(query)
        )
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        timed!(
            self,
            record_store_call,
            "sum_usage",
            self.inner.sum_usage(scope, window)
        )
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        timed!(
            self,
            record_store_call,
            "consume",
            self.inner.consume(event, limit, watch)
        )
    }

    async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally> {
        timed!(
            self,
            record_store_call,
            "tally_meter",
            self.inner.tally_meter(limit)
        )
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<MeteredConsume> {
        timed!(
            self,
            record_store_call,
            "consume_metered",
            self.inner.consume_metered(event, limit, watch)
        )
    }

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[AlertWatch],
    ) -> Result<InsertOutcome> {
        timed!(
            self,
            record_store_call,
            "insert_events_watched",
            self.inner.insert_events_watched(events, watches)
        )
    }

    async fn record_alert(
        &self,
        watch: &AlertWatch,
        mark: AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool> {
        timed!(
            self,
            record_store_call,
            "record_alert",
            self.inner.record_alert(watch, mark, usage)
        )
    }

    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertPeriod>> {
        timed!(
            self,
            record_store_call,
            "ended_alert_periods",
            self.inner.ended_alert_periods(now, limit)
        )
    }

    async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
        timed!(
            self,
            record_store_call,
            "list_deliveries",
            self.inner.list_deliveries(webhook, limit)
        )
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>> {
        timed!(
            self,
            record_store_call,
            "claim_deliveries",
            self.inner.claim_deliveries(now, lease_until, limit)
        )
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: Attempt,
        at: DateTime<Utc>,
    ) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "finish_delivery",
            self.inner.finish_delivery(id, attempt, at)
        )
    }

    async fn retry_delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        timed!(
            self,
            record_store_call,
            "retry_delivery",
            self.inner.retry_delivery(webhook, id, now)
        )
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts> {
        timed!(
            self,
            record_store_call,
            "delivery_counts",
            self.inner.delivery_counts()
        )
    }

    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        timed!(
            self,
            record_store_call,
            "prune_alerts",
            self.inner.prune_alerts(before, limit)
        )
    }

    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        timed!(
            self,
            record_store_call,
            "upsert_quota",
            self.inner.upsert_quota(spec, now)
        )
    }

    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        timed!(
            self,
            record_store_call,
            "list_quotas",
            self.inner.list_quotas(scope)
        )
    }

    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
        timed!(self, record_store_call, "quota", self.inner.quota(id))
    }

    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        timed!(
            self,
            record_store_call,
            "quota_candidates",
            self.inner.quota_candidates(tenant, feature)
        )
    }

    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "delete_quota",
            self.inner.delete_quota(id)
        )
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "insert_api_key",
            self.inner.insert_api_key(key, hash)
        )
    }

    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        timed!(
            self,
            record_store_call,
            "api_key_by_hash",
            self.inner.api_key_by_hash(hash)
        )
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        timed!(self, record_store_call, "api_key", self.inner.api_key(id))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        timed!(
            self,
            record_store_call,
            "list_api_keys",
            self.inner.list_api_keys()
        )
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "revoke_api_key",
            self.inner.revoke_api_key(id, at, last_admin)
        )
    }

    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "record_key_usage",
            self.inner.record_key_usage(uses)
        )
    }

    async fn insert_webhook(&self, webhook: &Webhook, secret: &WebhookSecret) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "insert_webhook",
            self.inner.insert_webhook(webhook, secret)
        )
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        timed!(
            self,
            record_store_call,
            "list_webhooks",
            self.inner.list_webhooks()
        )
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        timed!(self, record_store_call, "webhook", self.inner.webhook(id))
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "delete_webhook",
            self.inner.delete_webhook(id)
        )
    }

    async fn put_meter(
        &self,
        key: &MeterKey,
        spec: &MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<Meter> {
        timed!(
            self,
            record_store_call,
            "put_meter",
            self.inner.put_meter(key, spec, now)
        )
    }

    async fn list_meters(&self) -> Result<Vec<Meter>> {
        timed!(
            self,
            record_store_call,
            "list_meters",
            self.inner.list_meters()
        )
    }

    async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>> {
        timed!(self, record_store_call, "meter", self.inner.meter(key))
    }

    async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
        timed!(
            self,
            record_store_call,
            "delete_meter",
            self.inner.delete_meter(key)
        )
    }

    async fn query_meter(&self, meter: &Meter, query: &MeterQuery) -> Result<MeterReport> {
        timed!(
            self,
            record_store_call,
            "query_meter",
            self.inner.query_meter(meter, query)
        )
    }

    async fn health(&self) -> Result<()> {
        timed!(self, record_store_call, "health", self.inner.health())
    }
}

/// A [`QuotaCache`] that records the latency of every call as
/// `metering_cache_duration_seconds{method, result}`.
#[derive(Debug, Clone)]
pub struct InstrumentedCache<C: ?Sized = dyn QuotaCache> {
    inner: Arc<C>,
    metrics: Metrics,
}

impl<C: QuotaCache + ?Sized> InstrumentedCache<C> {
    /// Wraps `inner`, recording into `metrics`.
    #[must_use]
    pub fn new(inner: Arc<C>, metrics: Metrics) -> Self {
        InstrumentedCache { inner, metrics }
    }
}

#[async_trait]
impl<C: QuotaCache + ?Sized> QuotaCache for InstrumentedCache<C> {
    async fn usage(&self, key: &CounterKey) -> Result<Option<Quantity>> {
        timed!(self, record_cache_call, "usage", self.inner.usage(key))
    }

    async fn begin_rebuild(&self, key: &CounterKey) -> Result<Option<RebuildToken>> {
        timed!(
            self,
            record_cache_call,
            "begin_rebuild",
            self.inner.begin_rebuild(key)
        )
    }

    async fn finish_rebuild(
        &self,
        key: &CounterKey,
        token: RebuildToken,
        usage: Quantity,
    ) -> Result<bool> {
        timed!(
            self,
            record_cache_call,
            "finish_rebuild",
            self.inner.finish_rebuild(key, token, usage)
        )
    }

    async fn begin_ingest(&self, streams: &[UsageStream]) -> Result<()> {
        timed!(
            self,
            record_cache_call,
            "begin_ingest",
            self.inner.begin_ingest(streams)
        )
    }

    async fn end_ingest(&self, streams: &[UsageStream], ingested: Ingested<'_>) -> Result<()> {
        timed!(
            self,
            record_cache_call,
            "end_ingest",
            self.inner.end_ingest(streams, ingested)
        )
    }

    async fn forget(&self, key: &CounterKey) -> Result<()> {
        timed!(self, record_cache_call, "forget", self.inner.forget(key))
    }

    async fn health(&self) -> Result<()> {
        timed!(self, record_cache_call, "health", self.inner.health())
    }
}
