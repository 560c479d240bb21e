//! # Implementing a Store
//!
//! A backend implements [`Store`](crate::Store) (and optionally
//! [`QuotaCache`](crate::QuotaCache)) with methods that take `&self`: the type is a cheap
//! `Clone` handle around a pool or connection. Each method is a unit of atomicity, and each
//! `# Behavior` bullet in the trait docs is checked by the conformance suite in
//! `metering-testkit`, which a backend runs from its `tests/conformance.rs`:
//!
//! ```text
//! async fn setup() -> Option<MyStore> { Some(MyStore::open(...).await.expect("store")) }
//! metering_testkit::store_conformance!(setup);
//! ```
//!
//! Rules of thumb:
//!
//! - Map driver errors to [`Error`](crate::Error) in one place: refused connections and
//!   timeouts become `Unavailable`, unique violations `Conflict`; keep the cause as `source`.
//! - Keep quantities exact: store nano-units as integers (or `NUMERIC`), never floats.
//!   [`Quantity::units`](crate::Quantity::units) and
//!   [`Quantity::fraction_nanos`](crate::Quantity::fraction_nanos) split one into two integer
//!   columns; [`Quantity::from_parts`](crate::Quantity::from_parts) joins sums back.
//! - Build aggregate rows with [`AggregateBuilder`](crate::AggregateBuilder), feeding it
//!   events or pre-summed buckets that each lie inside one window, so windowing and row order
//!   are the same in every backend.
//! - Make [`Store::consume`](crate::Store::consume) atomic across processes: a transaction
//!   that holds a lock on the usage scope while it sums and inserts.
//! - Make a void take the event out of whatever the backend keeps pre-summed (rollups), in
//!   the same transaction that marks it, and skip voided rows in every raw read.
//! - Answer [`Store::query_meter`](crate::Store::query_meter) by feeding the events that
//!   [`MeterQuery::event_filter`](crate::MeterQuery::event_filter) selects to a
//!   [`MeterAggregator`](crate::MeterAggregator), in any order (see [`crate::meter`]).
//!
//! A complete, compiled example: a store that wraps another and counts the events written,
//! delegating everything else.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//!
//! use async_trait::async_trait;
//! use chrono::{DateTime, Utc};
//! use metering_core::{
//!     AlertMark, AlertPeriod, AlertWatch, Attempt, Delivery, DeliveryCounts, DeliveryId,
//!     DueDelivery, AggregateQuery, AggregateRow, AmendOutcome, ApiKey, ApiKeyId, ConsumeOutcome, Event,
//!     EventId, EventPage,
//!     EventQuery, Feature, InsertOutcome, KeyHash, LastAdmin, MemoryStore, Meter, MeterKey,
//!     MeterLimit, MeterQuery, MeterReport, MeterSpec, MeterTally, MeteredConsume, Quantity,
//!     Quota, QuotaId, QuotaScope, QuotaSpec, Result, Store, StoredApiKey, TenantId, UsageLimit,
//!     UsageScope, Webhook, WebhookId, WebhookSecret, Window,
//! };
//!
//! #[derive(Debug, Clone, Default)]
//! struct CountingStore {
//!     inner: MemoryStore,
//!     written: Arc<AtomicUsize>,
//! }
//!
//! #[async_trait]
//! impl Store for CountingStore {
//!     async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
//!         let outcome = self.inner.insert_events(events).await?;
//!         self.written.fetch_add(outcome.inserted_count(), Ordering::Relaxed);
//!         Ok(outcome)
//!     }
//!     async fn list_events(&self, q: &EventQuery) -> Result<EventPage> {
//!         self.inner.list_events(q).await
//!     }
//!     async fn event(&self, id: &EventId) -> Result<Option<Event>> {
//!         self.inner.event(id).await
//!     }
//!     async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
//!         self.inner.replacement_of(id).await
//!     }
//!     async fn void_event(&self, id: &EventId, reason: Option<&str>, at: DateTime<Utc>)
//!     -> Result<Option<Event>> {
//!         self.inner.void_event(id, reason, at).await
//!     }
//!     async fn amend_event(&self, new: &Event, reason: Option<&str>, at: DateTime<Utc>)
//!     -> Result<AmendOutcome> {
//!         let outcome = self.inner.amend_event(new, reason, at).await?;
//!         if matches!(outcome, AmendOutcome::Amended(_)) {
//!             self.written.fetch_add(1, Ordering::Relaxed);
//!         }
//!         Ok(outcome)
//!     }
//!     async fn aggregate(&self, q: &AggregateQuery) -> Result<Vec<AggregateRow>> {
//!         self.inner.aggregate(q).await
//!     }
//!     async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
//!         self.inner.sum_usage(scope, window).await
//!     }
//!     async fn insert_events_watched(&self, events: &[Event], watches: &[AlertWatch])
//!     -> Result<InsertOutcome> {
//!         let outcome = self.inner.insert_events_watched(events, watches).await?;
//!         self.written.fetch_add(outcome.inserted_count(), Ordering::Relaxed);
//!         Ok(outcome)
//!     }
//!     async fn consume(&self, event: &Event, limit: &UsageLimit, watch: Option<&AlertWatch>)
//!     -> Result<ConsumeOutcome> {
//!         let outcome = self.inner.consume(event, limit, watch).await?;
//!         if matches!(outcome, ConsumeOutcome::Admitted { .. }) {
//!             self.written.fetch_add(1, Ordering::Relaxed);
//!         }
//!         Ok(outcome)
//!     }
//!     async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally> {
//!         self.inner.tally_meter(limit).await
//!     }
//!     async fn consume_metered(&self, event: &Event, limit: &MeterLimit,
//!         watch: Option<&AlertWatch>) -> Result<MeteredConsume> {
//!         let consumed = self.inner.consume_metered(event, limit, watch).await?;
//!         if matches!(consumed.outcome, ConsumeOutcome::Admitted { .. }) {
//!             self.written.fetch_add(1, Ordering::Relaxed);
//!         }
//!         Ok(consumed)
//!     }
//!     async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
//!         self.inner.upsert_quota(spec, now).await
//!     }
//!     async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
//!         self.inner.list_quotas(scope).await
//!     }
//!     async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
//!         self.inner.quota(id).await
//!     }
//!     async fn quota_candidates(&self, t: &TenantId, f: &Feature) -> Result<Vec<Quota>> {
//!         self.inner.quota_candidates(t, f).await
//!     }
//!     async fn delete_quota(&self, id: QuotaId) -> Result<()> {
//!         self.inner.delete_quota(id).await
//!     }
//!     async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
//!         self.inner.insert_api_key(key, hash).await
//!     }
//!     async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
//!         self.inner.api_key_by_hash(hash).await
//!     }
//!     async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
//!         self.inner.list_api_keys().await
//!     }
//!     async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
//!         self.inner.api_key(id).await
//!     }
//!     async fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>, last: LastAdmin)
//!     -> Result<()> {
//!         self.inner.revoke_api_key(id, at, last).await
//!     }
//!     async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
//!         self.inner.record_key_usage(uses).await
//!     }
//!     async fn put_meter(&self, k: &MeterKey, s: &MeterSpec, now: DateTime<Utc>) -> Result<Meter> {
//!         self.inner.put_meter(k, s, now).await
//!     }
//!     async fn list_meters(&self) -> Result<Vec<Meter>> {
//!         self.inner.list_meters().await
//!     }
//!     async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>> {
//!         self.inner.meter(key).await
//!     }
//!     async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
//!         self.inner.delete_meter(key).await
//!     }
//!     async fn query_meter(&self, m: &Meter, q: &MeterQuery) -> Result<MeterReport> {
//!         self.inner.query_meter(m, q).await
//!     }
//!     async fn insert_webhook(&self, w: &Webhook, secret: &WebhookSecret) -> Result<()> {
//!         self.inner.insert_webhook(w, secret).await
//!     }
//!     async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
//!         self.inner.list_webhooks().await
//!     }
//!     async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
//!         self.inner.webhook(id).await
//!     }
//!     async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
//!         self.inner.delete_webhook(id).await
//!     }
//!     async fn record_alert(&self, w: &AlertWatch, mark: AlertMark, usage: Option<Quantity>)
//!     -> Result<bool> {
//!         self.inner.record_alert(w, mark, usage).await
//!     }
//!     async fn ended_alert_periods(&self, now: DateTime<Utc>, limit: usize)
//!     -> Result<Vec<AlertPeriod>> {
//!         self.inner.ended_alert_periods(now, limit).await
//!     }
//!     async fn list_deliveries(&self, id: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
//!         self.inner.list_deliveries(id, limit).await
//!     }
//!     async fn claim_deliveries(&self, now: DateTime<Utc>, until: DateTime<Utc>, limit: usize)
//!     -> Result<Vec<DueDelivery>> {
//!         self.inner.claim_deliveries(now, until, limit).await
//!     }
//!     async fn finish_delivery(&self, id: DeliveryId, a: Attempt, at: DateTime<Utc>)
//!     -> Result<()> {
//!         self.inner.finish_delivery(id, a, at).await
//!     }
//!     async fn retry_delivery(&self, w: WebhookId, id: DeliveryId, now: DateTime<Utc>)
//!     -> Result<Delivery> {
//!         self.inner.retry_delivery(w, id, now).await
//!     }
//!     async fn delivery_counts(&self) -> Result<DeliveryCounts> {
//!         self.inner.delivery_counts().await
//!     }
//!     async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
//!         self.inner.prune_alerts(before, limit).await
//!     }
//!     async fn health(&self) -> Result<()> {
//!         self.inner.health().await
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<()> {
//! let store = CountingStore::default();
//! let engine = metering_core::Metering::builder(store.clone()).build();
//! engine.ingest(vec![metering_core::NewEvent::new("t", "r", "f")]).await?;
//! assert_eq!(store.written.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```
//!
//! The same store then runs the whole conformance suite unchanged; see
//! `examples/custom-store` in the repository, which writes the same decorator with
//! [`forward_store!`](crate::forward_store): only the methods it changes, and the names of
//! those it passes on.
