//! [`AppState`]: what every handler shares.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, RateLimiter};
use metering_core::CachedLookups;
use metering_core::api::ErrorCode;
use metering_core::{ApiKeyId, Metering, QuotaCache, Store};
use tokio::sync::SemaphorePermit;

use crate::config::{RateLimit, ServerConfig};
use crate::error::ApiError;
use crate::guard::AuthGuard;
use crate::instrument::{InstrumentedCache, InstrumentedStore};
use crate::metrics::Metrics;

/// The state behind the router: the engine, the limits, the metrics registry and the
/// rate limiter. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Metering,
    config: ServerConfig,
    metrics: Metrics,
    limiter: Option<KeyLimiter>,
    guard: Option<AuthGuard>,
    /// Slots for heavy reads (listings, aggregates).
    reads: tokio::sync::Semaphore,
}

/// The per-key token buckets.
pub(crate) struct KeyLimiter {
    limiter: DefaultKeyedRateLimiter<ApiKeyId>,
}

impl fmt::Debug for KeyLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLimiter")
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl KeyLimiter {
    fn new(limit: RateLimit) -> Self {
        let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::per_second(per_second).allow_burst(burst);
        KeyLimiter {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// `Ok` when `key` may send a request now, else how many whole seconds to wait.
    pub(crate) fn check(&self, key: &ApiKeyId) -> Result<(), u64> {
        use governor::clock::{Clock as _, DefaultClock};
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            // Round up: a client that waits Retry-After seconds gets a token.
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

impl AppState {
    /// State over `engine` with `config`.
    ///
    /// Build the engine with `config.event_rules()` so the engine and the HTTP layer enforce
    /// the same limits. The metrics then cover requests, ingests and quota decisions; use
    /// [`AppState::from_backends`] (or [`AppState::with_metrics`] with an engine over
    /// [`InstrumentedStore`] and [`InstrumentedCache`]) to also time store and cache calls.
    #[must_use]
    pub fn new(engine: Metering, config: ServerConfig) -> Self {
        Self::with_metrics(engine, config, Metrics::new())
    }

    /// State over `engine`, recording into `metrics`.
    #[must_use]
    pub fn with_metrics(engine: Metering, config: ServerConfig, metrics: Metrics) -> Self {
        let limiter = config.rate_limit.map(KeyLimiter::new);
        let guard = NonZeroU32::new(config.auth_failures_per_minute).map(AuthGuard::new);
        let reads = tokio::sync::Semaphore::new(config.max_concurrent_reads.max(1));
        AppState {
            inner: Arc::new(Inner {
                engine,
                config,
                metrics,
                limiter,
                guard,
                reads,
            }),
        }
    }

    /// The server's own wiring: wraps `store` and `cache` in timing decorators, caches key
    /// and quota lookups for `config.lookup_cache_ttl` ([`CachedLookups`]), builds the
    /// engine with `config`'s validation rules and group commit, and the state over it.
    ///
    /// # Panics
    ///
    /// With group commit on, when called outside a tokio runtime (its worker starts here).
    #[must_use]
    pub fn from_backends(
        store: Arc<dyn Store>,
        cache: Arc<dyn QuotaCache>,
        config: ServerConfig,
    ) -> Self {
        let metrics = Metrics::new();
        let timed: Arc<dyn Store> = Arc::new(InstrumentedStore::new(store, metrics.clone()));
        let store: Arc<dyn Store> = if config.lookup_cache_ttl.is_zero() {
            timed
        } else {
            Arc::new(CachedLookups::new(timed, config.lookup_cache_ttl))
        };
        let mut builder = Metering::builder_arc(store)
            .quota_cache(InstrumentedCache::new(cache, metrics.clone()))
            .rules(config.event_rules());
        if let Some(group) = config.group_commit {
            builder = builder.group_commit(group);
        }
        Self::with_metrics(builder.build(), config, metrics)
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Metering {
        &self.inner.engine
    }

    /// The limits.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The metrics registry rendered at `GET /metrics`.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// A slot for one heavy read (an aggregate, or a numbered page deep into a listing),
    /// waiting up to the request timeout; beyond it, 503 with `Retry-After`, counted in
    /// `metering_overload_total{reason="heavy_reads"}`. Bounding them keeps a core for ingest
    /// and quota checks however many large reads arrive.
    pub(crate) async fn heavy_read(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        let wait = self.inner.config.request_timeout;
        match tokio::time::timeout(wait, self.inner.reads.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.inner.metrics.record_overload("heavy_reads");
                Err(ApiError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "too many aggregates and deep listings at once; no slot freed within {} s",
                        wait.as_secs()
                    ),
                )
                .with_retry_after(1))
            }
        }
    }

    pub(crate) fn limiter(&self) -> Option<&KeyLimiter> {
        self.inner.limiter.as_ref()
    }

    /// The failed-authentication limit per client address, when on.
    pub(crate) fn guard(&self) -> Option<&AuthGuard> {
        self.inner.guard.as_ref()
    }
}
