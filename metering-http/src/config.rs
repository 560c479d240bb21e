//! [`ServerConfig`]: the limits and timings of the REST service.

use std::time::Duration;

use metering_core::EventRules;
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
