//! [`ServerConfig`]: the limits and timings of the REST service.

use std::time::Duration;

use metering_core::{EventRules, GroupCommitConfig};

use crate::cors::CorsConfig;
use serde::Deserialize;

/// Limits and timings of the REST service. Every field has the REST contract's default.
///
/// # Examples
///
/// ```
/// use metering_http::ServerConfig;
/// let config = ServerConfig::default()
///     .with_body_limit(1024 * 1024)
///     .with_max_batch_events(1_000);
/// assert_eq!(config.event_rules().max_batch_events, 1_000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request body, in bytes (default 5 MiB); larger bodies get 413.
    pub body_limit: usize,
    /// The rules events are validated by (batch size, future skew, metadata limits); a
    /// batch over `max_batch_events` gets 413. Build the engine with the same rules
    /// ([`ServerConfig::event_rules`]) so both layers agree.
    pub event_rules: EventRules,
    /// How often remembered API key uses (`last_used_at`) are written to the store
    /// (default 10 s).
    pub key_usage_flush_interval: Duration,
    /// Group commit of concurrent ingests (default on: 2,000 events, 2 ms, 10,000 waiting
    /// requests); `None` writes each request in its own transaction. Used by
    /// [`crate::AppState::from_backends`], which builds the engine.
    pub group_commit: Option<GroupCommitConfig>,
    /// Per-API-key rate limit (default off).
    pub rate_limit: Option<RateLimit>,
    /// Failed authentications allowed per client address and minute before the address is
    /// answered 429 for a while, whatever key it presents (default 30; 0 turns it off).
    /// Needs the peer address: [`crate::serve`] provides it; a router served otherwise
    /// must use `into_make_service_with_connect_info::<SocketAddr>()`.
    pub auth_failures_per_minute: u32,
    /// How long [`crate::AppState::from_backends`] caches API key and quota lookups
    /// (default 1 s; zero turns it off). Writes through this process clear the cache at
    /// once; another instance sharing the store sees them at most this much later (see
    /// [`metering_core::lookup_cache`]).
    pub lookup_cache_ttl: Duration,
    /// Longest a request waits for a scarce resource (a PostgreSQL connection, a heavy-read
    /// slot) before it is answered 503 with `Retry-After` (default 30 s).
    pub request_timeout: Duration,
    /// Most heavy reads (aggregates, meter queries, and numbered pages more than 10,000
    /// events deep into a listing) served at once; more wait, up to
    /// `request_timeout`, so ingest and quota checks keep their latency while large reads
    /// run (default: half the CPU cores, at least 1).
    pub max_concurrent_reads: usize,
    /// Memory for caches, in MiB (default 32): the SQLite store's page cache (see
    /// `SqliteConfig::cache_kib`; the other backends keep no large cache in this process).
    /// Used by [`crate::open_store_with`].
    pub cache_mib: u32,
    /// Browser origins allowed to call the API (default none: no CORS headers).
    pub cors: CorsConfig,
    /// How alerts are sent to webhook endpoints (timeouts, retries, concurrency).
    pub webhooks: crate::WebhookConfig,
}

/// A per-API-key rate limit: a token bucket refilled at `per_second`, holding `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct RateLimit {
    /// Sustained requests per second per key (at least 1).
    pub per_second: u32,
    /// Requests a key may send at once after being idle (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` sustained, `burst` at once (both raised to at least 1).
    #[must_use]
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimit {
            per_second: per_second.max(1),
            burst: burst.max(1),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 5 * 1024 * 1024,
            event_rules: EventRules::default(),
            key_usage_flush_interval: Duration::from_secs(10),
            group_commit: Some(GroupCommitConfig::default()),
            rate_limit: None,
            auth_failures_per_minute: 30,
            lookup_cache_ttl: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            cache_mib: 32,
            cors: CorsConfig::default(),
            webhooks: crate::WebhookConfig::default(),
            max_concurrent_reads: std::thread::available_parallelism()
                .map_or(1, |n| n.get() / 2)
                .max(1),
        }
    }
}

impl ServerConfig {
    /// Sets how alerts are sent to webhook endpoints.
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: crate::WebhookConfig) -> Self {
        self.webhooks = webhooks;
        self
    }

    /// Sets how long a request waits for a PostgreSQL connection or a heavy-read slot.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets how many heavy reads (listings, aggregates) run at once (at least 1).
    #[must_use]
    pub fn with_max_concurrent_reads(mut self, reads: usize) -> Self {
        self.max_concurrent_reads = reads.max(1);
        self
    }

    /// Sets the browser origins allowed to call the API.
    #[must_use]
    pub fn with_cors(mut self, cors: CorsConfig) -> Self {
        self.cors = cors;
        self
    }

    /// Sets the memory for caches, in MiB.
    #[must_use]
    pub fn with_cache_mib(mut self, mib: u32) -> Self {
        self.cache_mib = mib;
        self
    }

    /// Sets the body limit in bytes.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the event rules.
    #[must_use]
    pub fn with_event_rules(mut self, rules: EventRules) -> Self {
        self.event_rules = rules;
        self
    }

    /// Sets the most events in one POST.
    #[must_use]
    pub fn with_max_batch_events(mut self, events: usize) -> Self {
        self.event_rules = self.event_rules.with_max_batch_events(events);
        self
    }

    /// Sets how far in the future a timestamp may be.
    #[must_use]
    pub fn with_max_future_skew(mut self, skew: Duration) -> Self {
        self.event_rules = self.event_rules.with_max_future_skew(
            chrono::Duration::from_std(skew).unwrap_or(chrono::Duration::MAX),
        );
        self
    }

    /// Sets the metadata size limit in bytes.
    #[must_use]
    pub fn with_max_metadata_bytes(mut self, bytes: usize) -> Self {
        self.event_rules = self.event_rules.with_max_metadata_bytes(bytes);
        self
    }

    /// Sets the metadata depth limit.
    #[must_use]
    pub fn with_max_metadata_depth(mut self, depth: usize) -> Self {
        self.event_rules = self.event_rules.with_max_metadata_depth(depth);
        self
    }

    /// Sets how often key uses are flushed to the store.
    #[must_use]
    pub fn with_key_usage_flush_interval(mut self, interval: Duration) -> Self {
        self.key_usage_flush_interval = interval;
        self
    }

    /// Sets group commit (`None` turns it off).
    #[must_use]
    pub fn with_group_commit(mut self, group_commit: Option<GroupCommitConfig>) -> Self {
        self.group_commit = group_commit;
        self
    }

    /// Sets the per-key rate limit (`None` turns it off).
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets how many failed authentications a client address may make per minute (0: no
    /// limit).
    #[must_use]
    pub fn with_auth_failures_per_minute(mut self, failures: u32) -> Self {
        self.auth_failures_per_minute = failures;
        self
    }

    /// Sets how long key and quota lookups are cached (zero turns the cache off).
    #[must_use]
    pub fn with_lookup_cache_ttl(mut self, ttl: Duration) -> Self {
        self.lookup_cache_ttl = ttl;
        self
    }

    /// The validation rules; build the engine with them
    /// (`Metering::builder(..).rules(config.event_rules())`) so both layers agree.
    #[must_use]
    pub fn event_rules(&self) -> EventRules {
        self.event_rules
    }
}
