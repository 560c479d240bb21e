//! Shared helpers of the in-process HTTP tests: an app over the memory store, keys of every
//! role, one-shot requests and a store that can be switched off.

#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use metering_core::{
    AggregateQuery, AggregateRow, AmendOutcome, ApiKey, ApiKeyId, ConsumeOutcome, Error, Event,
    EventFilter, EventId, EventPage, EventQuery, Feature, InsertOutcome, KeyHash, MemoryQuotaCache,
    MemoryStore, Metering, NewApiKey, Paging, Quantity, Quota, QuotaCache, QuotaId, QuotaScope,
    QuotaSpec, Result, Role, Store, StoredApiKey, TenantId, UsageLimit, UsageScope, Window,
};
use metering_http::{AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt as _;

/// The admin secret every test app starts with.
pub const ADMIN: &str = "mk_test_admin_secret_0123456789";

/// A router and the engine behind it.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    pub engine: Metering,
    pub store: SwitchStore,
    pub cache: SwitchCache,
}

/// An app over the memory store with the default limits.
pub async fn app() -> App {
    app_with(ServerConfig::default()).await
}

/// An app over the memory store with `config`.
pub async fn app_with(config: ServerConfig) -> App {
    let store = SwitchStore::default();
    let cache = SwitchCache::default();
    let engine = Metering::builder(store.clone())
        .quota_cache(cache.clone())
        .rules(config.event_rules())
        .build();
    engine
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("import the admin key");
    let router = metering_http::router(AppState::new(engine.clone(), config));
    App {
        router,
        engine,
        store,
        cache,
    }
}

/// A request with an optional key and JSON body.
pub fn build(method: Method, uri: &str, key: Option<&str>, body: Option<Value>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(k) = key {
        request = request.header("x-api-key", k);
    }
    match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .expect("request")
}

/// Sends `request` to `router`; returns status, headers and the raw body.
pub async fn respond(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, bytes.to_vec())
}

impl App {
    /// A new key with `role`, scoped to `tenant` when given.
    pub async fn key(&self, role: Role, tenant: Option<&str>) -> String {
        let mut new = NewApiKey::new(format!("{role:?}"), role);
        if let Some(t) = tenant {
            new = new.for_tenant(TenantId::new(t).expect("tenant"));
        }
        self.engine
            .create_api_key(new)
            .await
            .expect("create key")
            .secret
    }

    /// Sends a request with an optional key and JSON body; returns status, headers and the
    /// body parsed as JSON (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.send(build(method, uri, key, body)).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = respond(&self.router, request).await;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, headers, json)
    }

    /// POSTs `body`, raw JSON text (number literals arrive as written), with the admin key;
    /// returns the status and the answer's text.
    pub async fn post_text(&self, uri: &str, body: &str) -> (StatusCode, String) {
        let request = Request::post(uri)
            .header("x-api-key", ADMIN)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request");
        let (status, _, bytes) = respond(&self.router, request).await;
        (status, String::from_utf8(bytes).expect("UTF-8"))
    }

    /// GET with the admin key.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::GET, uri, Some(ADMIN), None).await;
        (s, b)
    }

    /// POST JSON with the admin key.
    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::POST, uri, Some(ADMIN), Some(body)).await;
        (s, b)
    }

    /// PUT JSON with the admin key.
    pub async fn put(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, b) = self.call(Method::PUT, uri, Some(ADMIN), Some(body)).await;
        (s, b)
    }

    /// How many events the store holds.
    pub async fn event_count(&self) -> u64 {
        let page = self
            .engine
            .list_events(&EventQuery::new(
                EventFilter::all(),
                Paging::Page {
                    page: 1,
                    page_size: 1,
                },
            ))
            .await
            .expect("count");
        page.total.expect("numbered paging counts")
    }

    /// How many quotas and keys the store holds.
    pub async fn record_count(&self) -> (usize, usize) {
        (
            self.engine.list_quotas(None).await.expect("quotas").len(),
            self.engine.list_api_keys().await.expect("keys").len(),
        )
    }
}

/// Asserts the error envelope: status, code and a non-empty message.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}

/// How a [`SwitchStore`] or [`SwitchCache`] answers.
pub const UP: u8 = 0;
/// Every call fails with `Unavailable`.
pub const DOWN: u8 = 1;
/// Every call fails with `Internal` (a bug in the backend).
pub const BROKEN: u8 = 2;

fn fail(mode: &AtomicU8) -> Result<()> {
    match mode.load(Ordering::SeqCst) {
        DOWN => Err(Error::unavailable(
            "the store is unreachable",
            "connection refused",
        )),
        BROKEN => Err(Error::internal(
            "SELECT secret FROM keys failed",
            "syntax error at or near",
        )),
        _ => Ok(()),
    }
}

/// The memory store behind a switch that makes every call fail.
#[derive(Debug, Clone, Default)]
pub struct SwitchStore {
    inner: MemoryStore,
    mode: Arc<AtomicU8>,
}

impl SwitchStore {
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for SwitchStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        fail(&self.mode)?;
        self.inner.insert_events(events).await
    }
    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        fail(&self.mode)?;
        self.inner.list_events(query).await
    }
    async fn event(&self, id: &EventId) -> Result<Option<Event>> {
        fail(&self.mode)?;
        self.inner.event(id).await
    }
    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
        fail(&self.mode)?;
        self.inner.replacement_of(id).await
    }
    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        fail(&self.mode)?;
        self.inner.void_event(id, reason, at).await
    }
    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        fail(&self.mode)?;
        self.inner.amend_event(replacement, reason, at).await
    }
    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        fail(&self.mode)?;
        self.inner.aggregate(query).await
    }
    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        fail(&self.mode)?;
        self.inner.sum_usage(scope, window).await
    }
    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        fail(&self.mode)?;
        self.inner.consume(event, limit, watch).await
    }
    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[metering_core::AlertWatch],
    ) -> Result<InsertOutcome> {
        fail(&self.mode)?;
        self.inner.insert_events_watched(events, watches).await
    }
    async fn record_alert(
        &self,
        watch: &metering_core::AlertWatch,
        mark: metering_core::AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool> {
        fail(&self.mode)?;
        self.inner.record_alert(watch, mark, usage).await
    }
    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<metering_core::AlertPeriod>> {
        fail(&self.mode)?;
        self.inner.ended_alert_periods(now, limit).await
    }
    async fn list_deliveries(
        &self,
        webhook: metering_core::WebhookId,
        limit: usize,
    ) -> Result<Vec<metering_core::Delivery>> {
        fail(&self.mode)?;
        self.inner.list_deliveries(webhook, limit).await
    }
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<metering_core::DueDelivery>> {
        fail(&self.mode)?;
        self.inner.claim_deliveries(now, lease_until, limit).await
    }
    async fn finish_delivery(
        &self,
        id: metering_core::DeliveryId,
        attempt: metering_core::Attempt,
        at: DateTime<Utc>,
    ) -> Result<()> {
        fail(&self.mode)?;
        self.inner.finish_delivery(id, attempt, at).await
    }
    async fn retry_delivery(
        &self,
        webhook: metering_core::WebhookId,
        id: metering_core::DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<metering_core::Delivery> {
        fail(&self.mode)?;
        self.inner.retry_delivery(webhook, id, now).await
    }
    async fn delivery_counts(&self) -> Result<metering_core::DeliveryCounts> {
        fail(&self.mode)?;
        self.inner.delivery_counts().await
    }
    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        fail(&self.mode)?;
        self.inner.prune_alerts(before, limit).await
    }
    async fn tally_meter(
        &self,
        limit: &metering_core::MeterLimit,
    ) -> Result<metering_core::MeterTally> {
        fail(&self.mode)?;
        self.inner.tally_meter(limit).await
    }
    async fn consume_metered(
        &self,
        event: &Event,
        limit: &metering_core::MeterLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<metering_core::MeteredConsume> {
        fail(&self.mode)?;
        self.inner.consume_metered(event, limit, watch).await
    }
    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        fail(&self.mode)?;
        self.inner.upsert_quota(spec, now).await
    }
    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        fail(&self.mode)?;
        self.inner.list_quotas(scope).await
    }
    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
        fail(&self.mode)?;
        self.inner.quota(id).await
    }
    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        fail(&self.mode)?;
        self.inner.quota_candidates(tenant, feature).await
    }
    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        fail(&self.mode)?;
        self.inner.delete_quota(id).await
    }
    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        fail(&self.mode)?;
        self.inner.insert_api_key(key, hash).await
    }
    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        // Keys still authenticate, so the failure shows on the endpoint itself.
        self.inner.api_key_by_hash(hash).await
    }
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        fail(&self.mode)?;
        self.inner.list_api_keys().await
    }
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        fail(&self.mode)?;
        self.inner.api_key(id).await
    }
    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: metering_core::LastAdmin,
    ) -> Result<()> {
        fail(&self.mode)?;
        self.inner.revoke_api_key(id, at, last_admin).await
    }
    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        fail(&self.mode)?;
        self.inner.record_key_usage(uses).await
    }
    async fn put_meter(
        &self,
        key: &metering_core::MeterKey,
        spec: &metering_core::MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<metering_core::Meter> {
        fail(&self.mode)?;
        self.inner.put_meter(key, spec, now).await
    }
    async fn list_meters(&self) -> Result<Vec<metering_core::Meter>> {
        fail(&self.mode)?;
        self.inner.list_meters().await
    }
    async fn meter(&self, key: &metering_core::MeterKey) -> Result<Option<metering_core::Meter>> {
        fail(&self.mode)?;
        self.inner.meter(key).await
    }
    async fn delete_meter(&self, key: &metering_core::MeterKey) -> Result<()> {
        fail(&self.mode)?;
        self.inner.delete_meter(key).await
    }
    async fn query_meter(
        &self,
        meter: &metering_core::Meter,
        query: &metering_core::MeterQuery,
    ) -> Result<metering_core::MeterReport> {
        fail(&self.mode)?;
        self.inner.query_meter(meter, query).await
    }
    async fn insert_webhook(
        &self,
        webhook: &metering_core::Webhook,
        secret: &metering_core::WebhookSecret,
    ) -> Result<()> {
        fail(&self.mode)?;
        self.inner.insert_webhook(webhook, secret).await
    }
    async fn list_webhooks(&self) -> Result<Vec<metering_core::Webhook>> {
        fail(&self.mode)?;
        self.inner.list_webhooks().await
    }
    async fn webhook(
        &self,
        id: metering_core::WebhookId,
    ) -> Result<Option<metering_core::Webhook>> {
        fail(&self.mode)?;
        self.inner.webhook(id).await
    }
    async fn delete_webhook(&self, id: metering_core::WebhookId) -> Result<()> {
        fail(&self.mode)?;
        self.inner.delete_webhook(id).await
    }
    async fn health(&self) -> Result<()> {
        fail(&self.mode)?;
        self.inner.health().await
    }
}

/// The memory quota cache behind a switch.
#[derive(Debug, Clone, Default)]
pub struct SwitchCache {
    inner: MemoryQuotaCache,
    mode: Arc<AtomicU8>,
}

impl SwitchCache {
    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        if mode == UP {
            // Counters may have missed events while down: start over, as the protocol asks.
            self.inner.clear();
        }
    }
}

#[async_trait]
impl QuotaCache for SwitchCache {
    async fn usage(&self, key: &metering_core::CounterKey) -> Result<Option<Quantity>> {
        fail(&self.mode)?;
        self.inner.usage(key).await
    }
    async fn begin_rebuild(
        &self,
        key: &metering_core::CounterKey,
    ) -> Result<Option<metering_core::RebuildToken>> {
        fail(&self.mode)?;
        self.inner.begin_rebuild(key).await
    }
    async fn finish_rebuild(
        &self,
        key: &metering_core::CounterKey,
        token: metering_core::RebuildToken,
        usage: Quantity,
    ) -> Result<bool> {
        fail(&self.mode)?;
        self.inner.finish_rebuild(key, token, usage).await
    }
    async fn begin_ingest(&self, streams: &[metering_core::UsageStream]) -> Result<()> {
        fail(&self.mode)?;
        self.inner.begin_ingest(streams).await
    }
    async fn end_ingest(
        &self,
        streams: &[metering_core::UsageStream],
        ingested: metering_core::Ingested<'_>,
    ) -> Result<()> {
        fail(&self.mode)?;
        self.inner.end_ingest(streams, ingested).await
    }
    async fn forget(&self, key: &metering_core::CounterKey) -> Result<()> {
        fail(&self.mode)?;
        self.inner.forget(key).await
    }
    async fn health(&self) -> Result<()> {
        fail(&self.mode)?;
        self.inner.health().await
    }
}

/// A valid event body for `tenant`.
pub fn event(tenant: &str) -> Value {
    serde_json::json!({"tenant_id": tenant, "resource": "billing", "feature": "invoice_generate"})
}
