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
    /// The server, as a `redis://` URL, or a Redis Cluster as
    /// `redis+cluster://[user:password@]host:port,host:port,...` (any reachable nodes; the
    /// rest are discovered). Default `redis://127.0.0.1:6379`.
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
    /// How many replicas must confirm (`WAIT`) an ingest's counter update before it counts;
    /// an update they do not confirm in half the response timeout is treated like a failed
    /// call (the stream's counters are dropped and rebuilt). With one replica per primary,
    /// 1 means a failover never loses a counted event. Default: 1 on a cluster, 0 on a
    /// standalone server.
    pub wait_replicas: Option<u32>,
}

/// Where the URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One server, by its URL.
    Standalone(String),
    /// A cluster, by the `redis://` URLs of its seed nodes.
    Cluster(Vec<String>),
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: "metering:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            ingest_mark_ttl: Duration::from_secs(60),
            wait_replicas: None,
        }
    }
}

impl RedisConfig {
    /// Whether the URL names a Redis Cluster (`redis+cluster://`).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.url.starts_with(CLUSTER_SCHEME)
    }

    /// The server or the cluster's seed nodes.
    pub(crate) fn topology(&self) -> redis::RedisResult<Topology> {
        let Some(rest) = self.url.strip_prefix(CLUSTER_SCHEME) else {
            return Ok(Topology::Standalone(self.url.clone()));
        };
        let invalid = |what: &str| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid cluster URL",
                what.to_owned(),
            ))
        };
        let (credentials, hosts) = match rest.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), rest),
        };
        if hosts.contains(['/', '?']) {
            return Err(invalid(
                "a cluster has no database number or parameters (`host:port,host:port`)",
            ));
        }
        let nodes: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| format!("redis://{credentials}{h}"))
            .collect();
        if nodes.is_empty() {
            return Err(invalid("list at least one node (`host:port`)"));
        }
        Ok(Topology::Cluster(nodes))
    }

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

    /// Sets how many replicas must confirm an ingest's counter update (see
    /// [`RedisConfig::wait_replicas`]).
    #[must_use]
    pub fn with_wait_replicas(mut self, replicas: u32) -> Self {
        self.wait_replicas = Some(replicas);
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
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

/// The scheme of a cluster URL.
const CLUSTER_SCHEME: &str = "redis+cluster://";

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
        assert_eq!(RedisConfig::default().wait_replicas, None);
        assert_eq!(
            RedisConfig::default().with_wait_replicas(2).wait_replicas,
            Some(2)
        );
    }

    #[test]
    fn cluster_urls_list_their_nodes() {
        let config = RedisConfig::default();
        assert!(!config.is_cluster());
        assert_eq!(
            config.topology().expect("valid"),
            Topology::Standalone("redis://127.0.0.1:6379".to_owned())
        );
        let config = config.with_url("redis+cluster://:pw@10.0.0.1:7000, 10.0.0.2:7001,");
        assert!(config.is_cluster());
        assert_eq!(
            config.topology().expect("valid"),
            Topology::Cluster(vec![
                "redis://:pw@10.0.0.1:7000".to_owned(),
                "redis://:pw@10.0.0.2:7001".to_owned()
            ])
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h:1/0",
            "redis+cluster://h:1?x=1",
        ] {
            let e = RedisConfig::default()
                .with_url(bad)
                .topology()
                .expect_err(bad);
            assert!(e.to_string().contains("cluster"), "{e}");
        }
        assert!(!format!("{config:?}").contains("pw"));
    }
}
