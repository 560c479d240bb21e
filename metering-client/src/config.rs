//! [`ClientConfig`]: how the client delivers events, from code or the environment.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use metering_core::redact_url;
use serde::Deserialize;

use crate::error::ClientError;

/// How [`MeteringClient`](crate::MeteringClient) delivers events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TransportMode {
    /// [`MeteringClient::send`](crate::MeteringClient::send) awaits the write (with
    /// retries) and returns its outcome. `record()` cannot wait, so it delivers in a spawned
    /// task as [`TransportMode::FireAndForget`] does.
    Sync,
    /// Every event is delivered in its own spawned task; failures are logged and counted.
    FireAndForget,
    /// Events go through a bounded channel to one background task that sends them in
    /// batches, every `batch_size` events or `batch_interval`, whichever comes first.
    #[default]
    Batching,
}

impl FromStr for TransportMode {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "sync" => Ok(TransportMode::Sync),
            "fire_and_forget" | "async" => Ok(TransportMode::FireAndForget),
            "batching" | "batch" => Ok(TransportMode::Batching),
            other => Err(ClientError::Config(format!(
                "unknown transport mode {other:?}; expected sync, fire_and_forget or batching"
            ))),
        }
    }
}

/// What `record()` does when the in-memory buffer holds `max_buffered` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the new event and count it in [`ClientStats::dropped`](crate::ClientStats).
    /// The host application never waits.
    #[default]
    DropNewest,
    /// Wait for room. [`MeteringClient::send`](crate::MeteringClient::send) awaits; the
    /// synchronous `record()` blocks the thread (with `block_in_place` on a multi-threaded
    /// tokio runtime). On a current-thread runtime blocking would deadlock the sender
    /// task, so `record()` drops and counts there instead.
    Block,
}

/// Client settings. Build from [`ClientConfig::default`] with the `with_*` setters, or read
/// them with [`ClientConfig::from_env`].
///
/// Durations deserialize from milliseconds (`batch_interval_ms`, ...).
#[derive(Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL of a `metering-server`, e.g. `http://localhost:8080`; `None` for an
    /// embedded engine.
    pub api_url: Option<String>,
    /// The `X-API-Key` sent to the server (role `ingest` or `admin`).
    pub api_key: Option<String>,
    /// How events are delivered (default batching).
    pub mode: TransportMode,
    /// Events per batch, at most (default 500; the server takes up to 10,000).
    pub batch_size: usize,
    /// Longest time an event waits in a partial batch (default 1 s).
    #[serde(rename = "batch_interval_ms", with = "millis")]
    pub batch_interval: Duration,
    /// Events held in memory, at most, waiting for the background task (default 100,000).
    pub max_buffered: usize,
    /// What happens when `max_buffered` is reached (default: drop and count).
    pub overflow: OverflowPolicy,
    /// Retries after the first attempt, on connection errors, timeouts, 5xx and 429
    /// (default 3).
    pub max_retries: u32,
    /// The first retry delay; each next one doubles, with full jitter (default 100 ms).
    #[serde(rename = "retry_base_delay_ms", with = "millis")]
    pub retry_base_delay: Duration,
    /// The longest wait before a retry, also caps a server's `Retry-After` (default 10 s).
    #[serde(rename = "retry_max_delay_ms", with = "millis")]
    pub retry_max_delay: Duration,
    /// Timeout of one HTTP request (default 10 s).
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    /// Timeout of opening a connection (default 2 s).
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    /// Where undeliverable batches are kept (a SQLite file); `None` drops them (counted).
    pub spill_path: Option<PathBuf>,
    /// How often spilled events are retried while the sink stays down (default 1 s).
    #[serde(rename = "replay_interval_ms", with = "millis")]
    pub replay_interval: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_url: None,
            api_key: None,
            mode: TransportMode::Batching,
            batch_size: 500,
            batch_interval: Duration::from_secs(1),
            max_buffered: 100_000,
            overflow: OverflowPolicy::DropNewest,
            max_retries: 3,
            retry_base_delay: Duration::from_millis(100),
            retry_max_delay: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            spill_path: None,
            replay_interval: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_url", &self.api_url.as_deref().map(redact_url))
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("mode", &self.mode)
            .field("batch_size", &self.batch_size)
            .field("batch_interval", &self.batch_interval)
            .field("max_buffered", &self.max_buffered)
            .field("overflow", &self.overflow)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("spill_path", &self.spill_path)
            .field("replay_interval", &self.replay_interval)
            .finish()
    }
}

impl ClientConfig {
    /// Reads the settings from the environment, starting from the defaults:
    ///
    /// | variable | field |
    /// |---|---|
    /// | `METERING_API_URL` | `api_url` |
    /// | `METERING_API_KEY` | `api_key` |
    /// | `METERING_TRANSPORT_MODE` | `mode`: `sync`, `fire_and_forget` or `batching` |
    /// | `METERING_BATCH_SIZE` | `batch_size` |
    /// | `METERING_BATCH_INTERVAL_MS` | `batch_interval` |
    /// | `METERING_MAX_BUFFERED` | `max_buffered` |
    /// | `METERING_SPILL_PATH` | `spill_path` |
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] naming the variable whose value does not parse.
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`ClientConfig::from_env`] over any lookup (a map in tests).
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] naming the variable whose value does not parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        fn number<T: FromStr>(name: &str, raw: &str) -> Result<T, ClientError> {
            raw.trim().parse().map_err(|_| {
                ClientError::Config(format!(
                    "{name} must be a non-negative integer, got {raw:?}"
                ))
            })
        }
        let mut config = ClientConfig::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        config.api_url = get("METERING_API_URL");
        config.api_key = get("METERING_API_KEY");
        if let Some(mode) = get("METERING_TRANSPORT_MODE") {
            config.mode = mode.parse()?;
        }
        if let Some(size) = get("METERING_BATCH_SIZE") {
            config.batch_size = number("METERING_BATCH_SIZE", &size)?;
        }
        if let Some(ms) = get("METERING_BATCH_INTERVAL_MS") {
            config.batch_interval =
                Duration::from_millis(number("METERING_BATCH_INTERVAL_MS", &ms)?);
        }
        if let Some(max) = get("METERING_MAX_BUFFERED") {
            config.max_buffered = number("METERING_MAX_BUFFERED", &max)?;
        }
        if let Some(path) = get("METERING_SPILL_PATH") {
            config.spill_path = Some(PathBuf::from(path));
        }
        config.check()?;
        Ok(config)
    }

    /// Checks the values are usable.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for a zero batch size, buffer or interval.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.batch_size == 0 {
            return Err(ClientError::Config("batch_size must be at least 1".into()));
        }
        if self.max_buffered == 0 {
            return Err(ClientError::Config(
                "max_buffered must be at least 1".into(),
            ));
        }
        if self.batch_interval.is_zero() {
            return Err(ClientError::Config(
                "batch_interval must be positive".into(),
            ));
        }
        if self.replay_interval.is_zero() {
            return Err(ClientError::Config(
                "replay_interval must be positive".into(),
            ));
        }
        Ok(())
    }

    /// Sets the server URL.
    #[must_use]
    pub fn with_api_url(mut self, url: impl Into<String>) -> Self {
        self.api_url = Some(url.into());
        self
    }

    /// Sets the API key.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the transport mode.
    #[must_use]
    pub fn with_mode(mut self, mode: TransportMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn with_batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// Sets the batch interval.
    #[must_use]
    pub fn with_batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }

    /// Sets the in-memory cap.
    #[must_use]
    pub fn with_max_buffered(mut self, events: usize) -> Self {
        self.max_buffered = events;
        self
    }

    /// Sets the overflow policy.
    #[must_use]
    pub fn with_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Sets the number of retries.
    #[must_use]
    pub fn with_max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the first retry delay and the longest one.
    #[must_use]
    pub fn with_retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.retry_base_delay = base;
        self.retry_max_delay = max;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Keeps undeliverable batches in a SQLite file at `path`.
    #[must_use]
    pub fn with_spill_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.spill_path = Some(path.into());
        self
    }

    /// Sets how often spilled events are retried.
    #[must_use]
    pub fn with_replay_interval(mut self, interval: Duration) -> Self {
        self.replay_interval = interval;
        self
    }
}

/// Durations as integer milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn reads_the_environment() {
        let config = ClientConfig::from_lookup(lookup(&[
            ("METERING_API_URL", "http://localhost:9000"),
            ("METERING_API_KEY", "secret"),
            ("METERING_TRANSPORT_MODE", "fire-and-forget"),
            ("METERING_BATCH_SIZE", "42"),
            ("METERING_BATCH_INTERVAL_MS", "250"),
        ]))
        .expect("valid");
        assert_eq!(config.api_url.as_deref(), Some("http://localhost:9000"));
        assert_eq!(config.mode, TransportMode::FireAndForget);
        assert_eq!(config.batch_size, 42);
        assert_eq!(config.batch_interval, Duration::from_millis(250));
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret"), "{debug}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = ClientConfig::from_lookup(lookup(&[("METERING_BATCH_SIZE", "many")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("METERING_BATCH_SIZE"), "{err}");
        let err = ClientConfig::from_lookup(lookup(&[("METERING_TRANSPORT_MODE", "carrier")]))
            .expect_err("unknown mode");
        assert!(err.to_string().contains("carrier"), "{err}");
        assert!(ClientConfig::from_lookup(lookup(&[("METERING_BATCH_SIZE", "0")])).is_err());
    }

    #[test]
    fn urls_lose_their_credentials_in_debug() {
        let config = ClientConfig {
            api_url: Some("http://user:pw@host:1/x".to_owned()),
            ..ClientConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("http://user:***@host:1/x"), "{shown}");
        assert!(!shown.contains("pw@"), "{shown}");
    }

    #[test]
    fn deserializes_milliseconds() {
        let config: ClientConfig =
            serde_json::from_str(r#"{"batch_interval_ms": 20, "mode": "sync"}"#).expect("valid");
        assert_eq!(config.batch_interval, Duration::from_millis(20));
        assert_eq!(config.mode, TransportMode::Sync);
        assert_eq!(config.batch_size, 500);
    }
}
