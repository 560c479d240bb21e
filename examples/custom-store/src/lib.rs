//! A custom [`Store`]: one that wraps another store and counts what it writes, to show the
//! whole trait and how a backend runs the conformance suite (see `tests/conformance.rs`).
//!
//! Run the example with `cargo run -p example-custom-store`, and its conformance suite with
//! `cargo test -p example-custom-store`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metering::{
    AggregateQuery, AggregateRow, ApiKey, ApiKeyId, ConsumeOutcome, Event, EventPage, EventQuery,
    Feature, InsertOutcome, KeyHash, MemoryStore, Quantity, Quota, QuotaId, QuotaScope, QuotaSpec,
    Result, Store, StoredApiKey, TenantId, UsageLimit, UsageScope, Window,
};

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

#[async_trait]
impl<S: Store + Clone> Store for CountingStore<S> {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let outcome = self.inner.insert_events(events).await?;
        self.written
            .fetch_add(outcome.inserted_count(), Ordering::Relaxed);
        Ok(outcome)
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        self.inner.list_events(query).await
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        self.inner.aggregate(query).await
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        self.inner.sum_usage(scope, window).await
    }

    async fn consume(&self, event: &Event, limit: &UsageLimit) -> Result<ConsumeOutcome> {
        let outcome = self.inner.consume(event, limit).await?;
        if matches!(outcome, ConsumeOutcome::Admitted { .. }) {
            self.written.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcome)
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
