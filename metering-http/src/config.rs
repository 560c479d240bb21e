//! [`ServerConfig`]: the limits and timings of the REST service.

use std::time::Duration;

use metering_core::{EventRules, GroupCommitConfig};
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
    /// Most events in one POST (default 10,000); more get 413.
    pub max_batch_events: usize,
    /// How far in the future an event timestamp may be (default 1 hour).
    pub max_future_skew: Duration,
    /// Largest serialized event metadata, in bytes (default 16 KiB).
    pub max_metadata_bytes: usize,
    /// Deepest event metadata nesting (default 16).
    pub max_metadata_depth: usize,
    /// How often remembered API key uses (`last_used_at`) are written to the store
    /// (default 10 s).
    pub key_usage_flush_interval: Duration,
    /// Group commit of concurrent ingests (default on: 2,000 events, 2 ms, 10,000 waiting
    /// requests); `None` writes each request in its own transaction. Used by
    /// [`crate::AppState::from_backends`], which builds the engine.
    pub group_commit: Option<GroupCommit>,
    /// Per-API-key rate limit (default off).
    pub rate_limit: Option<RateLimit>,
    /// How long [`crate::AppState::from_backends`] caches API key and quota lookups
    /// (default 1 s; zero turns it off). Writes through this process clear the cache at
    /// once; another instance sharing the store sees them at most this much later (see
    /// [`crate::lookup_cache`]).
    pub lookup_cache_ttl: Duration,
}

/// Group commit settings: concurrent small ingests share one store transaction (see
/// [`metering_core::group_commit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GroupCommit {
    /// Commit a group once it holds this many events; larger requests commit alone.
    pub max_events: usize,
    /// Gather a group at most this long while requests keep arriving.
    pub max_delay: Duration,
    /// Requests waiting at most; beyond that ingests get 503 with `Retry-After`.
    pub queue_capacity: usize,
}

impl Default for GroupCommit {
    fn default() -> Self {
        let core = GroupCommitConfig::default();
        GroupCommit {
            max_events: core.max_events,
            max_delay: core.max_delay,
            queue_capacity: core.queue_capacity,
        }
    }
}

impl GroupCommit {
    /// Settings with these bounds.
    #[must_use]
    pub fn new(max_events: usize, max_delay: Duration, queue_capacity: usize) -> Self {
        GroupCommit {
            max_events,
            max_delay,
            queue_capacity,
        }
    }

    /// The engine's form of these settings.
    #[must_use]
    pub fn to_core(&self) -> GroupCommitConfig {
        GroupCommitConfig::default()
            .with_max_events(self.max_events)
            .with_max_delay(self.max_delay)
            .with_queue_capacity(self.queue_capacity)
    }
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
        let rules = EventRules::default();
        ServerConfig {
            body_limit: 5 * 1024 * 1024,
            max_batch_events: rules.max_batch_events,
            max_future_skew: rules
                .max_future_skew
                .to_std()
                .unwrap_or(Duration::from_secs(3600)),
            max_metadata_bytes: rules.max_metadata_bytes,
            max_metadata_depth: rules.max_metadata_depth,
            key_usage_flush_interval: Duration::from_secs(10),
            group_commit: Some(GroupCommit::default()),
            rate_limit: None,
            lookup_cache_ttl: Duration::from_secs(1),
        }
    }
}

impl ServerConfig {
    /// Sets the body limit in bytes.
    #[must_use]
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets the most events in one POST.
    #[must_use]
    pub fn with_max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events;
        self
    }

    /// Sets how far in the future a timestamp may be.
    #[must_use]
    pub fn with_max_future_skew(mut self, skew: Duration) -> Self {
        self.max_future_skew = skew;
        self
    }

    /// Sets the metadata size limit in bytes.
    #[must_use]
    pub fn with_max_metadata_bytes(mut self, bytes: usize) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// Sets the metadata depth limit.
    #[must_use]
    pub fn with_max_metadata_depth(mut self, depth: usize) -> Self {
        self.max_metadata_depth = depth;
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
    pub fn with_group_commit(mut self, group_commit: Option<GroupCommit>) -> Self {
        self.group_commit = group_commit;
        self
    }

    /// Sets the per-key rate limit (`None` turns it off).
    #[must_use]
    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Sets how long key and quota lookups are cached (zero turns the cache off).
    #[must_use]
    pub fn with_lookup_cache_ttl(mut self, ttl: Duration) -> Self {
        self.lookup_cache_ttl = ttl;
        self
    }

    /// The validation rules these limits imply; build the engine with them
    /// (`Metering::builder(..).rules(config.event_rules())`) so both layers agree.
    #[must_use]
    pub fn event_rules(&self) -> EventRules {
        EventRules::default()
            .with_max_batch_events(self.max_batch_events)
            .with_max_future_skew(
                chrono::Duration::from_std(self.max_future_skew).unwrap_or(chrono::Duration::MAX),
            )
            .with_max_metadata_bytes(self.max_metadata_bytes)
            .with_max_metadata_depth(self.max_metadata_depth)
    }
}
