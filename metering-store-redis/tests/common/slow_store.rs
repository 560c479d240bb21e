//! A store wrapper that stretches the windows the counter protocol guards: the time between a
//! commit and `end_ingest`, and between reading the usage and `finish_rebuild`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metering_core::{
    AggregateQuery, AggregateRow, ApiKey, ApiKeyId, ConsumeOutcome, Event, EventPage, EventQuery,
    Feature, InsertOutcome, KeyHash, Quantity, Quota, QuotaId, QuotaScope, QuotaSpec, Result,
    Store, StoredApiKey, TenantId, UsageLimit, UsageScope, Window,
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

#[async_trait]
impl<S: Store> Store for SlowStore<S> {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        self.pause().await;
        let outcome = self.inner.insert_events(events).await;
        self.pause().await;
        outcome
    }
    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        self.inner.list_events(query).await
    }
    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.inner.aggregate(query).await
    }
    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        self.pause().await;
        let usage = self.inner.sum_usage(scope, window).await;
        self.pause().await;
        usage
    }
    async fn consume(&self, event: &Event, limit: &UsageLimit) -> Result<ConsumeOutcome> {
        let outcome = self.inner.consume(event, limit).await;
        self.pause().await;
        outcome
    }
    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        self.inner.upsert_quota(spec, now).await
    }
    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        self.inner.list_quotas(scope).await
    }
    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        self.inner.quota_candidates(tenant, feature).await
    }
    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        self.inner.delete_quota(id).await
    }
    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        self.inner.insert_api_key(key, hash).await
    }
    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        self.inner.api_key_by_hash(hash).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
        self.inner.revoke_api_key(id, at).await
    }
    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        self.inner.record_key_usage(uses).await
    }
    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }
}
