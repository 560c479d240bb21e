//! [`CachedLookups`]: a short-lived cache of the two reads every authenticated request and
//! every quota check makes (`api_key_by_hash`, `quota_candidates`).
//!
//! Entries live at most `ttl`. Writes made through this process (key creation and
//! revocation, quota upserts and deletes) clear the matching cache at once, so one
//! instance never serves stale keys or quotas after its own writes. Another instance
//! sharing the store sees such a write at most `ttl` later: a key revoked elsewhere keeps
//! working here for up to `ttl`, and a quota changed elsewhere applies here up to `ttl`
//! later. Key expiry is unaffected (the engine checks `expires_at` on every request).
//! Usage counts are never cached here: quota decisions stay exact.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{
    ApiKey, ApiKeyId, Feature, KeyHash, LastAdmin, Quota, QuotaId, QuotaSpec, Result, Store,
    StoredApiKey, TenantId,
};
use chrono::{DateTime, Utc};

/// Entries kept at most per map; a full map is emptied (a crude but bounded policy).
const MAX_ENTRIES: usize = 10_000;

/// The entries, and a generation bumped by every clear.
#[derive(Debug)]
struct Entries<K, V> {
    generation: u64,
    map: HashMap<K, (Instant, V)>,
}

#[derive(Debug)]
struct TtlMap<K, V> {
    entries: Mutex<Entries<K, V>>,
}

impl<K: Hash + Eq, V: Clone> TtlMap<K, V> {
    fn new() -> Self {
        TtlMap {
            entries: Mutex::new(Entries {
                generation: 0,
                map: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live entry, and the generation a miss must be stored under.
    fn get(&self, key: &K, ttl: Duration) -> std::result::Result<V, u64> {
        let guard = self.lock();
        match guard.map.get(key) {
            Some((at, value)) if at.elapsed() < ttl => Ok(value.clone()),
            _ => Err(guard.generation),
        }
    }

    /// Stores a value read from the store, unless a write cleared the map since the read
    /// began (`generation` changed), which could make the value stale.
    fn put(&self, key: K, generation: u64, value: V) {
        let mut guard = self.lock();
        if guard.generation != generation {
            return;
        }
        if guard.map.len() >= MAX_ENTRIES {
            guard.map.clear();
        }
        guard.map.insert(key, (Instant::now(), value));
    }

    fn clear(&self) {
        let mut guard = self.lock();
        guard.generation += 1;
        guard.map.clear();
    }
}

/// A [`Store`] that caches `api_key_by_hash` and `quota_candidates` for `ttl`; see the
/// [module docs](self) for the staleness bound.
#[derive(Debug)]
pub struct CachedLookups<S: ?Sized = dyn Store> {
    inner: Arc<S>,
    ttl: Duration,
    keys: TtlMap<KeyHash, Option<StoredApiKey>>,
    quotas: TtlMap<(TenantId, Feature), Vec<Quota>>,
}

impl<S: Store + ?Sized> CachedLookups<S> {
    /// Caches `inner`'s lookups for `ttl`.
    #[must_use]
    pub fn new(inner: Arc<S>, ttl: Duration) -> Self {
        CachedLookups {
            inner,
            ttl,
            keys: TtlMap::new(),
            quotas: TtlMap::new(),
        }
    }
}

crate::forward_store! {
    impl[S: Store + ?Sized] Store for CachedLookups<S> => inner;
    forward: [
        insert_events, list_events, event, replacement_of, void_event, amend_event, aggregate, sum_usage, consume,
        tally_meter,
        consume_metered, list_quotas, quota,
        list_api_keys, api_key, record_key_usage, put_meter, list_meters, meter, delete_meter,
        query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, insert_events_watched, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health,
    ];

    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        let result = self.inner.upsert_quota(spec, now).await;
        self.quotas.clear();
        result
    }

    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        let key = (tenant.clone(), feature.clone());
        let generation = match self.quotas.get(&key, self.ttl) {
            Ok(quotas) => return Ok(quotas),
            Err(generation) => generation,
        };
        let quotas = self.inner.quota_candidates(tenant, feature).await?;
        self.quotas.put(key, generation, quotas.clone());
        Ok(quotas)
    }

    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        let result = self.inner.delete_quota(id).await;
        self.quotas.clear();
        result
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        let result = self.inner.insert_api_key(key, hash).await;
        self.keys.clear();
        result
    }

    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        let generation = match self.keys.get(hash, self.ttl) {
            Ok(found) => return Ok(found),
            Err(generation) => generation,
        };
        let found = self.inner.api_key_by_hash(hash).await?;
        self.keys.put(*hash, generation, found.clone());
        Ok(found)
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()> {
        let result = self.inner.revoke_api_key(id, at, last_admin).await;
        self.keys.clear();
        result
    }
}
