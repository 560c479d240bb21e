//! [`RedisConfig`]: where the Redis server is and how long to wait for it.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// How to reach Redis and how to lay out the keys.
///
/// Built with [`RedisConfig::default`] and the `with_*` setters, or deserialized (durations
/// in milliseconds). `Debug` hides the password in the URL.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use metering_store_redis::RedisConfig;
///
/// let config = RedisConfig::default()
///     .with_url("redis://:secret@cache.internal:6379/0")
///     .with_key_prefix("metering:prod:")
///     .with_response_timeout(Duration::from_millis(250));
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The server, as a `redis://` (or `rediss://`) URL. Default `redis://127.0.0.1:6379`.
    pub url: String,
    /// Prepended to every key, so several deployments (or test runs) can share one server.
    /// Default `metering:`.
    pub key_prefix: String,
    /// How long to wait for a connection before treating Redis as unreachable. Default 1 s.
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// How long to wait for an answer before treating Redis as unreachable. Default 1 s.
    #[serde(rename = "response_timeout_ms", with = "millis")]
    pub response_timeout: Duration,
    /// How long an ingest may take at most: the lifetime of the mark that keeps a stream from
    /// being rebuilt while its events are being committed, so a crashed process blocks rebuilds
    /// of its streams no longer than this. Default 60 s.
    #[serde(rename = "ingest_mark_ttl_ms", with = "millis")]
    pub ingest_mark_ttl: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "metering:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            ingest_mark_ttl: Duration::from_secs(60),
        }
    }
}

impl RedisConfig {
    /// Sets the server URL.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets the key prefix (include a separator, e.g. `metering:prod:`).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the response timeout.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets the longest time an ingest may take (see [`RedisConfig::ingest_mark_ttl`]).
    #[must_use]
    pub fn with_ingest_mark_ttl(mut self, ttl: Duration) -> Self {
        self.ingest_mark_ttl = ttl;
        self
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &metering_core::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("ingest_mark_ttl", &self.ingest_mark_ttl)
            .finish()
    }
}

/// Durations as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let config = RedisConfig::default().with_url("redis://u:hunter2@h");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("metering:"), "{debug}");
    }

    #[test]
    fn defaults_and_setters() {
        let config = RedisConfig::default()
            .with_key_prefix("p:")
            .with_connect_timeout(Duration::from_millis(5))
            .with_response_timeout(Duration::from_millis(6))
            .with_ingest_mark_ttl(Duration::from_secs(7));
        assert_eq!(config.url, "redis://127.0.0.1:6379");
        assert_eq!(config.key_prefix, "p:");
        assert_eq!(config.connect_timeout, Duration::from_millis(5));
        assert_eq!(config.response_timeout, Duration::from_millis(6));
        assert_eq!(config.ingest_mark_ttl, Duration::from_secs(7));
        assert_eq!(RedisConfig::default().key_prefix, "metering:");
    }
}
