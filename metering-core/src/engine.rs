//! [`Metering`]: the engine the REST server and embedders call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::apikey::{
    Action, ApiKey, ApiKeyId, CreatedApiKey, KeyHash, NewApiKey, Principal, generate_secret,
    secret_prefix,
};
use crate::cache::{CounterKey, Ingested, QuotaCache, UsageStream};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{Event, EventId, EventRules, NewEvent, TenantId, validate_batch};
use crate::group_commit::{GroupCommitConfig, GroupCommitter};
use crate::quantity::Quantity;
use crate::query::{AggregateQuery, AggregateReport, EventPage, EventQuery, MAX_PAGE_SIZE, Paging};
use crate::quota::{
    Quota, QuotaDecision, QuotaId, QuotaScope, QuotaSpec, UsageLimit, UsageScope, ValidateRequest,
    select_quota,
};
use crate::store::{ConsumeOutcome, InsertOutcome, Store};

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReceipt {
    /// Events newly written.
    pub events_processed: usize,
    /// Events whose id was already stored (not written again).
    pub duplicates: usize,
    /// The id of every event, in request order.
    pub event_ids: Vec<EventId>,
}

/// Whether each backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Everything answers.
    Healthy,
    /// The store answers; the quota cache does not (checks fall back to the store).
    Degraded,
    /// The store does not answer.
    Unhealthy,
}

/// The health of the engine's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// Overall status.
    pub status: HealthStatus,
    /// Whether the store answered.
    pub store_connected: bool,
    /// Whether the quota cache answered.
    pub cache_connected: bool,
}

/// The metering engine: validation, ingest, queries, quotas and keys over a [`Store`] and a
/// [`QuotaCache`]. Cheap to clone; clones share everything.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> metering_core::Result<()> {
/// use metering_core::{Metering, MemoryStore, NewEvent, Quantity, ValidateRequest, QuotaSpec,
///     QuotaScope, QuotaPeriod, TenantId, Feature};
///
/// let engine = Metering::builder(MemoryStore::new()).build();
/// engine.ingest(vec![NewEvent::new("org_1", "billing", "invoice_generate")]).await?;
/// let tenant = TenantId::new("org_1").expect("valid");
/// let feature = Feature::new("invoice_generate").expect("valid");
/// engine.upsert_quota(QuotaSpec::new(QuotaScope::Tenant(tenant.clone()), feature.clone(),
///     Quantity::from_units(10), QuotaPeriod::Monthly)).await?;
/// let decision = engine.validate(ValidateRequest::new(tenant, feature)).await?;
/// assert!(decision.allowed);
/// assert_eq!(decision.current_usage, Quantity::ONE);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Metering {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    cache: Arc<dyn QuotaCache>,
    clock: Arc<dyn Clock>,
    rules: EventRules,
    key_uses: Mutex<HashMap<ApiKeyId, DateTime<Utc>>>,
    group: Option<GroupCommitter>,
}

impl fmt::Debug for Metering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metering")
            .field("store", &self.inner.store)
            .field("cache", &self.inner.cache)
            .field("rules", &self.inner.rules)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Metering`] engine.
#[derive(Debug)]
#[must_use]
pub struct MeteringBuilder {
    store: Arc<dyn Store>,
    cache: Option<Arc<dyn QuotaCache>>,
    clock: Arc<dyn Clock>,
    rules: EventRules,
    group_commit: Option<GroupCommitConfig>,
}

impl MeteringBuilder {
    /// Coalesces concurrent small ingests into shared store transactions (see
    /// [`crate::group_commit`]). Off by default; the REST server turns it on.
    pub fn group_commit(mut self, config: GroupCommitConfig) -> Self {
        self.group_commit = Some(config);
        self
    }

    /// Uses `cache` for live counters (default: an in-process cache when the `memory`
    /// feature is on).
    pub fn quota_cache(mut self, cache: impl QuotaCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Uses a shared cache handle.
    pub fn quota_cache_arc(mut self, cache: Arc<dyn QuotaCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Takes the current time from `clock` (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the validation limits.
    pub fn rules(mut self, rules: EventRules) -> Self {
        self.rules = rules;
        self
    }

    /// Builds the engine.
    ///
    /// # Panics
    ///
    /// Without the `memory` feature, when no quota cache was given; with group commit, when
    /// called outside a tokio runtime (its worker is spawned here).
    #[must_use]
    pub fn build(self) -> Metering {
        let cache = match self.cache {
            Some(c) => c,
            #[cfg(feature = "memory")]
            None => Arc::new(crate::memory::MemoryQuotaCache::new()),
            #[cfg(not(feature = "memory"))]
            None => panic!("a quota cache is required without the `memory` feature"),
        };
        let group_commit = self.group_commit;
        Metering {
            inner: Arc::new_cyclic(|weak: &Weak<Inner>| {
                let group = group_commit.map(|config| {
                    let weak = weak.clone();
                    GroupCommitter::start(
                        config,
                        Box::new(move |events| {
                            let weak = weak.clone();
                            Box::pin(async move {
                                let inner = weak.upgrade().ok_or_else(|| Error::Unavailable {
                                    message: "the engine is shutting down".into(),
                                    source: None,
                                })?;
                                inner.insert_bracketed(events).await
                            })
                        }),
                    )
                });
                Inner {
                    store: self.store,
                    cache,
                    clock: self.clock,
                    rules: self.rules,
                    key_uses: Mutex::new(HashMap::new()),
                    group,
                }
            }),
        }
    }
}

impl Metering {
    /// Starts configuring an engine over `store`.
    pub fn builder(store: impl Store) -> MeteringBuilder {
        Self::builder_arc(Arc::new(store))
    }

    /// Starts configuring an engine over a shared store handle (picked at run time).
    pub fn builder_arc(store: Arc<dyn Store>) -> MeteringBuilder {
        MeteringBuilder {
            store,
            cache: None,
            clock: Arc::new(SystemClock),
            rules: EventRules::default(),
            group_commit: None,
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The quota cache.
    #[must_use]
    pub fn quota_cache(&self) -> &Arc<dyn QuotaCache> {
        &self.inner.cache
    }

    /// The clock.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The validation limits.
    #[must_use]
    pub fn rules(&self) -> &EventRules {
        &self.inner.rules
    }

    /// The current time by the engine's clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Validates a batch whole and stores it, idempotently by event id.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] listing every bad event (nothing is written),
    /// [`Error::TooLarge`] for an oversized batch, or the store's error.
    pub async fn ingest(&self, events: Vec<NewEvent>) -> Result<IngestReceipt> {
        let events = validate_batch(events, &self.inner.rules, self.now())?;
        self.ingest_validated(events).await
    }

    /// Stores events that were already validated (see [`crate::validate_batch`]), in one
    /// transaction. Runs to completion even if the caller stops waiting, so a dropped
    /// request never leaves counters half-updated.
    ///
    /// # Errors
    ///
    /// The store's error; nothing was written then.
    pub async fn ingest_validated(&self, events: Vec<Event>) -> Result<IngestReceipt> {
        let (inserted, events) = match &self.inner.group {
            // Queued jobs run to completion in the worker even if this caller goes away.
            Some(group) if group.takes(events.len()) => group.submit(events).await?,
            _ => {
                let inner = Arc::clone(&self.inner);
                spawn_to_completion(async move { inner.insert_bracketed(events).await }).await?
            }
        };
        let processed = inserted.iter().filter(|i| **i).count();
        Ok(IngestReceipt {
            events_processed: processed,
            duplicates: inserted.len() - processed,
            event_ids: events.into_iter().map(|e| e.id).collect(),
        })
    }

    /// Lists events.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a page size outside 1 to 1000 or page 0; the store's error.
    pub async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        let size = query.paging.page_size();
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(Error::invalid("page_size", "must be between 1 and 1000"));
        }
        if let Paging::Page { page: 0, .. } = query.paging {
            return Err(Error::invalid("page", "must be 1 or more"));
        }
        if let (Some(s), Some(e)) = (query.filter.start, query.filter.end) {
            if e < s {
                return Err(Error::invalid("end_date", "must not be before start_date"));
            }
        }
        self.inner.store.list_events(query).await
    }

    /// Sums usage per window and group.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `end <= start`; the store's error.
    pub async fn aggregate(&self, query: &AggregateQuery) -> Result<AggregateReport> {
        if query.end <= query.start {
            return Err(Error::invalid("end_date", "must be after start_date"));
        }
        let rows = self.inner.store.aggregate(query).await?;
        Ok(AggregateReport::from_rows(rows))
    }

    /// Checks a quota, and with `consume` records the usage when allowed, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a consume without a resource (the event needs one);
    /// the store's error.
    pub async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision> {
        let now = self.now();
        let candidates = self
            .inner
            .store
            .quota_candidates(&request.tenant_id, &request.feature)
            .await?;
        let quota = select_quota(
            &candidates,
            &request.tenant_id,
            request.resource.as_ref(),
            &request.feature,
        )
        .cloned();
        let event = if request.consume {
            Some(self.consume_event(&request, now)?)
        } else {
            None
        };
        let Some(quota) = quota else {
            let event_id = match event {
                Some(event) => Some(self.ingest_validated(vec![event]).await?.event_ids[0].clone()),
                None => None,
            };
            let period = request
                .period
                .map(|p| (p, p.window(now, chrono_tz::Tz::UTC)));
            let usage = match (&period, &request.resource) {
                (Some((_, window)), resource) => {
                    let scope = UsageScope {
                        tenant_id: request.tenant_id.clone(),
                        resource: resource.clone(),
                        feature: request.feature.clone(),
                    };
                    self.inner.store.sum_usage(&scope, *window).await?
                }
                _ => Quantity::ZERO,
            };
            let mut decision = QuotaDecision::unlimited(period, usage);
            decision.event_id = event_id;
            return Ok(decision);
        };
        let window = quota.spec.period.window(now, quota.spec.tz);
        let key = CounterKey {
            scope: UsageScope::of(&quota.spec, &request.tenant_id),
            window,
        };
        match event {
            None => {
                let usage = self.usage(&key).await?;
                let allowed = usage
                    .checked_add(request.quantity)
                    .is_some_and(|total| total <= quota.spec.limit);
                Ok(QuotaDecision::under_quota(
                    &quota,
                    window,
                    usage,
                    request.quantity,
                    allowed,
                ))
            }
            Some(event) => self.consume(quota, key, event, request.quantity).await,
        }
    }

    fn consume_event(&self, request: &ValidateRequest, now: DateTime<Utc>) -> Result<Event> {
        let Some(resource) = request.resource.clone() else {
            return Err(Error::invalid(
                "resource",
                "is required when consume is true (the recorded event needs one)",
            ));
        };
        let mut new = NewEvent::new(
            request.tenant_id.as_str(),
            resource.as_str(),
            request.feature.as_str(),
        )
        .with_quantity(request.quantity);
        new.id = request.id.as_ref().map(|id| id.as_str().to_owned());
        new.metadata.clone_from(&request.metadata);
        let mut errors = crate::error::ValidationErrors::new();
        match new.validate(&self.inner.rules, now, None, "", &mut errors) {
            Some(event) => Ok(event),
            None => Err(Error::Validation(errors)),
        }
    }

    async fn consume(
        &self,
        quota: Quota,
        key: CounterKey,
        event: Event,
        requested: Quantity,
    ) -> Result<QuotaDecision> {
        let inner = Arc::clone(&self.inner);
        let limit = UsageLimit {
            scope: key.scope.clone(),
            window: key.window,
            limit: quota.spec.limit,
        };
        let event_id = event.id.clone();
        let streams = vec![UsageStream::of(&event)];
        let outcome = spawn_to_completion(async move {
            inner
                .bracket(&streams, vec![event], |store, events| async move {
                    let outcome = store.consume(&events[0], &limit).await?;
                    let admitted = matches!(outcome, ConsumeOutcome::Admitted { .. });
                    Ok((outcome, vec![admitted], events))
                })
                .await
        })
        .await?;
        let mut decision = match outcome.0 {
            ConsumeOutcome::Admitted { usage_before } => QuotaDecision::under_quota(
                &quota,
                key.window,
                usage_before + requested,
                requested,
                true,
            ),
            ConsumeOutcome::Duplicate { usage } => {
                QuotaDecision::under_quota(&quota, key.window, usage, requested, true)
            }
            ConsumeOutcome::Denied { usage } => {
                return Ok(QuotaDecision::under_quota(
                    &quota, key.window, usage, requested, false,
                ));
            }
        };
        decision.event_id = Some(event_id);
        Ok(decision)
    }

    /// The exact usage behind a counter: from the cache when present, else from the store
    /// (rebuilding the counter when no ingest is in flight).
    async fn usage(&self, key: &CounterKey) -> Result<Quantity> {
        let cache = &self.inner.cache;
        match cache.usage(key).await {
            Ok(Some(usage)) => return Ok(usage),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "quota cache unreachable; reading usage from the store");
                return self.inner.store.sum_usage(&key.scope, key.window).await;
            }
        }
        let token = cache.begin_rebuild(key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "quota cache unreachable; not rebuilding the counter");
            None
        });
        let usage = self.inner.store.sum_usage(&key.scope, key.window).await?;
        if let Some(token) = token {
            if let Err(e) = cache.finish_rebuild(key, token, usage).await {
                tracing::warn!(error = %e, "quota cache unreachable; counter not stored");
            }
        }
        Ok(usage)
    }

    /// Inserts or replaces a quota.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a zero limit or a threshold over 100; the store's error.
    pub async fn upsert_quota(&self, spec: QuotaSpec) -> Result<Quota> {
        let spec = spec.validate()?;
        self.inner.store.upsert_quota(&spec, self.now()).await
    }

    /// Lists quotas, all or one tenant's (`*` lists the defaults).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        self.inner.store.list_quotas(scope).await
    }

    /// Deletes a quota.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; the store's error.
    pub async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        self.inner.store.delete_quota(id).await
    }

    /// Deletes a quota on behalf of `caller`: an admin key; a tenant-scoped one only for its
    /// own tenant's quotas, never the defaults (`*`).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; [`Error::NotFound`] for an unknown id; the
    /// store's error.
    pub async fn delete_quota_as(&self, caller: &Principal, id: QuotaId) -> Result<()> {
        caller.authorize(Action::Admin)?;
        if caller.key.tenant_id.is_some() {
            let quota = self
                .inner
                .store
                .quota(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("quota `{id}`")))?;
            match &quota.spec.tenant_id {
                QuotaScope::Tenant(t) => caller.authorize_tenant(t)?,
                QuotaScope::AllTenants => {
                    return Err(Error::Forbidden(
                        "a tenant-scoped key may not delete default quotas".into(),
                    ));
                }
            }
        }
        self.delete_quota(id).await
    }

    /// Makes a new API key; the secret in the result is never available again.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an empty name or an expiry in the past; the store's error.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey> {
        let (secret, hash) = generate_secret();
        self.store_api_key(new, secret, hash).await
    }

    /// Stores a key whose secret the operator chose (e.g. from `METERING_ADMIN_KEY`).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a secret shorter than 24 characters; see
    /// [`Metering::create_api_key`].
    pub async fn import_api_key(&self, new: NewApiKey, secret: &str) -> Result<CreatedApiKey> {
        if secret.chars().count() < 24 || secret.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "key",
                "must be at least 24 characters without white space",
            ));
        }
        let hash = KeyHash::of(secret);
        self.store_api_key(new, secret.to_owned(), hash).await
    }

    async fn store_api_key(
        &self,
        new: NewApiKey,
        secret: String,
        hash: KeyHash,
    ) -> Result<CreatedApiKey> {
        let now = crate::time::truncate_micros(self.now());
        if new.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if new.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let key = ApiKey {
            id: ApiKeyId::generate(),
            name: new.name.trim().to_owned(),
            role: new.role,
            tenant_id: new.tenant_id,
            prefix: secret_prefix(&secret),
            created_at: now,
            expires_at: new.expires_at.map(crate::time::truncate_micros),
            last_used_at: None,
            revoked_at: None,
        };
        self.inner.store.insert_api_key(&key, &hash).await?;
        Ok(CreatedApiKey { key, secret })
    }

    /// Lists keys without secrets, with `last_used_at` including uses not yet flushed.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut keys = self.inner.store.list_api_keys().await?;
        let pending = self.lock_key_uses().clone();
        for key in &mut keys {
            if let Some(at) = pending.get(&key.id) {
                key.last_used_at = Some(key.last_used_at.map_or(*at, |l| l.max(*at)));
            }
        }
        Ok(keys)
    }

    /// Revokes a key; it stops working at once.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; the store's error.
    pub async fn revoke_api_key(&self, id: ApiKeyId) -> Result<()> {
        self.inner.store.revoke_api_key(id, self.now()).await
    }

    /// Revokes a key on behalf of `caller`: an admin key; a tenant-scoped one only for keys
    /// of its own tenant, never unscoped keys.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; [`Error::NotFound`] for an unknown id; the
    /// store's error.
    pub async fn revoke_api_key_as(&self, caller: &Principal, id: ApiKeyId) -> Result<()> {
        caller.authorize(Action::Admin)?;
        if caller.key.tenant_id.is_some() {
            let key = self
                .inner
                .store
                .api_key(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("API key `{id}`")))?;
            match &key.tenant_id {
                Some(t) => caller.authorize_tenant(t)?,
                None => {
                    return Err(Error::Forbidden(
                        "a tenant-scoped key may not revoke unscoped keys".into(),
                    ));
                }
            }
        }
        self.revoke_api_key(id).await
    }

    /// Authenticates a presented secret.
    ///
    /// The use is remembered in memory and written by [`Metering::flush_key_usage`], so a
    /// request costs no database write.
    ///
    /// # Errors
    ///
    /// [`Error::Unauthenticated`] for an unknown, revoked or expired key; the store's error.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = KeyHash::of(secret.trim());
        let stored = self
            .inner
            .store
            .api_key_by_hash(&hash)
            .await?
            .filter(|s| s.hash.matches(&hash))
            .ok_or_else(|| Error::Unauthenticated("unknown API key".into()))?;
        let now = self.now();
        if stored.key.revoked_at.is_some() {
            return Err(Error::Unauthenticated("API key revoked".into()));
        }
        if !stored.key.is_active(now) {
            return Err(Error::Unauthenticated("API key expired".into()));
        }
        self.lock_key_uses().insert(stored.key.id, now);
        Ok(Principal { key: stored.key })
    }

    /// Authenticates and checks the role in one call.
    ///
    /// # Errors
    ///
    /// See [`Metering::authenticate`] and [`Principal::authorize`].
    pub async fn authorize(&self, secret: &str, action: Action) -> Result<Principal> {
        let principal = self.authenticate(secret).await?;
        principal.authorize(action)?;
        Ok(principal)
    }

    /// Writes remembered key uses to the store. Call it every few seconds.
    ///
    /// # Errors
    ///
    /// The store's error; the uses are kept for the next call.
    pub async fn flush_key_usage(&self) -> Result<()> {
        let uses: Vec<_> = self.lock_key_uses().drain().collect();
        if uses.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.inner.store.record_key_usage(&uses).await {
            let mut pending = self.lock_key_uses();
            for (id, at) in uses {
                pending.entry(id).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether any key exists (the server makes an admin key on first start otherwise).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn has_api_keys(&self) -> Result<bool> {
        Ok(!self.inner.store.list_api_keys().await?.is_empty())
    }

    /// Checks the store and the cache.
    pub async fn health(&self) -> Health {
        let (store, cache) = tokio::join!(self.inner.store.health(), self.inner.cache.health());
        let status = match (&store, &cache) {
            (Err(_), _) => HealthStatus::Unhealthy,
            (Ok(()), Err(_)) => HealthStatus::Degraded,
            (Ok(()), Ok(())) => HealthStatus::Healthy,
        };
        Health {
            status,
            store_connected: store.is_ok(),
            cache_connected: cache.is_ok(),
        }
    }

    /// The tenant filter a principal's read should use (see [`Principal::scope_read`]).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for a scoped key asking about another tenant.
    pub fn scope_read(
        &self,
        principal: &Principal,
        requested: Option<TenantId>,
    ) -> Result<Option<TenantId>> {
        principal.scope_read(requested)
    }

    fn lock_key_uses(&self) -> std::sync::MutexGuard<'_, HashMap<ApiKeyId, DateTime<Utc>>> {
        self.inner
            .key_uses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// Inserts events under the counter protocol; returns which were new, and the events.
    async fn insert_bracketed(&self, events: Vec<Event>) -> Result<(Vec<bool>, Vec<Event>)> {
        let streams = UsageStream::of_batch(&events);
        let ((), inserted, events) = self
            .bracket(&streams, events, |store, events| async move {
                let InsertOutcome { inserted } = store.insert_events(&events).await?;
                Ok(((), inserted, events))
            })
            .await?;
        Ok((inserted, events))
    }

    /// Runs a store write bracketed by the counter protocol (see [`crate::cache`]): streams
    /// marked busy before, new events added to counters after. `write` returns its result,
    /// which events it wrote (by index) and the events back.
    async fn bracket<T, F, Fut>(
        &self,
        streams: &[UsageStream],
        events: Vec<Event>,
        write: F,
    ) -> Result<(T, Vec<bool>, Vec<Event>)>
    where
        F: FnOnce(Arc<dyn Store>, Vec<Event>) -> Fut,
        Fut: Future<Output = Result<(T, Vec<bool>, Vec<Event>)>>,
    {
        let began = match self.cache.begin_ingest(streams).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "quota cache unreachable; counters will be rebuilt");
                false
            }
        };
        let result = write(Arc::clone(&self.store), events).await;
        if began {
            let ingested = match &result {
                Ok((_, inserted, events)) => Ingested { events, inserted },
                Err(_) => Ingested::NONE,
            };
            if let Err(e) = self.cache.end_ingest(streams, ingested).await {
                tracing::warn!(error = %e, "quota cache unreachable after a commit; counters will be rebuilt");
            }
        }
        result
    }
}

/// Runs `fut` on its own task so it completes even when the caller is dropped (a client that
/// disconnects must not leave a commit half-done), and waits for it.
async fn spawn_to_completion<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(fut)
        .await
        .map_err(|e| Error::internal("an ingest task failed", e))?
}
