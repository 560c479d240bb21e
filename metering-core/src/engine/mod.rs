//! [`Metering`]: the engine the REST server and embedders call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::apikey::ApiKeyId;
use crate::cache::{Ingested, QuotaCache, UsageStream};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::event::{Event, EventId, EventRules};
use crate::group_commit::{GroupCommitConfig, GroupCommitter};
use crate::store::{InsertOutcome, Store};

mod alerts;
mod api_keys;
mod corrections;

pub use corrections::Amended;
mod events;
mod meters;
mod quotas;
mod webhooks;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    alert_setup: alerts::AlertSetup,
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
                    alert_setup: alerts::AlertSetup::default(),
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
}

impl Inner {
    /// Inserts events under the counter protocol, with the alert watches they may move;
    /// returns which were new, and the events.
    async fn insert_bracketed(&self, events: Vec<Event>) -> Result<(Vec<bool>, Vec<Event>)> {
        let streams = UsageStream::of_batch(&events);
        let watches = self.watches(&events).await?;
        let ((), inserted, events) = self
            .bracket(&streams, events, |store, events| async move {
                let InsertOutcome { inserted } = if watches.is_empty() {
                    store.insert_events(&events).await?
                } else {
                    store.insert_events_watched(&events, &watches).await?
                };
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
        let began = self.begin_ingest(streams).await;
        let result = write(Arc::clone(&self.store), events).await;
        if began {
            let ingested = match &result {
                Ok((_, inserted, events)) => Ingested {
                    events,
                    inserted,
                    recount: false,
                },
                Err(_) => Ingested::NONE,
            };
            self.end_ingest(streams, ingested).await;
        }
        result
    }

    /// Runs a correction (a void or an amend) of `stream` under the counter protocol: the
    /// stream is marked busy before, and its counters are dropped after (whatever the
    /// outcome, as a failed write may still have committed), so the next check recounts.
    async fn correct<T, F, Fut>(&self, stream: UsageStream, write: F) -> Result<T>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let streams = [stream];
        let began = self.begin_ingest(&streams).await;
        let result = write(Arc::clone(&self.store)).await;
        if began {
            self.end_ingest(&streams, Ingested::RECOUNT).await;
        }
        result
    }

    /// `QuotaCache::begin_ingest`; false (and logged) when the cache is unreachable.
    async fn begin_ingest(&self, streams: &[UsageStream]) -> bool {
        match self.cache.begin_ingest(streams).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "quota cache unreachable; counters will be rebuilt");
                false
            }
        }
    }

    /// `QuotaCache::end_ingest`, logging a failure (the cache recovers by itself).
    async fn end_ingest(&self, streams: &[UsageStream], ingested: Ingested<'_>) {
        if let Err(e) = self.cache.end_ingest(streams, ingested).await {
            tracing::warn!(error = %e, "quota cache unreachable after a commit; counters will be rebuilt");
        }
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
