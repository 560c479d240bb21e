//! Picking a store and a quota cache from a URL at run time.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory://` | [`metering_core::MemoryStore`] / [`metering_core::MemoryQuotaCache`] | always |
//! | `sqlite://path` (`sqlite://metering.db`, `sqlite::memory:`) | `metering_store_sqlite::SqliteStore` | `sqlite` (default) |
//! | `postgres://...`, `postgresql://...` | `metering_store_postgres::PostgresStore` | `postgres` |
//! | `redis://...`, `rediss://...` | `metering_store_redis::RedisQuotaCache` | `redis` |
//!
//! Two URL parameters are ours rather than the driver's: `schema=NAME` on a PostgreSQL URL
//! keeps every table in that schema (created when missing), and `key_prefix=PREFIX` on a
//! Redis URL namespaces the counters (default `metering:`), so several deployments or test
//! runs can share one server. `max_connections=N` sizes the PostgreSQL pool and
//! `acquire_timeout_secs=N` sets how long a request waits for a pooled connection before
//! answering 503 (default 3 s; raise it for bursts of consumes on one quota, which
//! serialise).

use std::sync::Arc;

use metering_core::{Error, MemoryQuotaCache, MemoryStore, QuotaCache, Result, Store};

use crate::config::ServerConfig;

/// The default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite://metering.db";

/// The default quota cache URL.
pub const DEFAULT_QUOTA_CACHE_URL: &str = "memory://";

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}

#[cfg_attr(
    all(feature = "sqlite", feature = "postgres", feature = "redis"),
    allow(dead_code)
)]
fn no_backend(what: &str, feature: &str) -> Error {
    Error::invalid(
        what,
        format!(
            "this build has no {feature} backend (enable the `{feature}` feature of metering-http)"
        ),
    )
}

/// Connects to the store a URL names and brings its schema up to date (runs migrations).
///
/// # Errors
///
/// [`Error::Validation`] for an unknown scheme or one this build lacks;
/// [`Error::Unavailable`] when the database cannot be reached; the backend's error when
/// migrating fails.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>> {
    open_store_with(url, &ServerConfig::default()).await
}

/// [`open_store`] for a server running with `config`: a PostgreSQL pool waits for a free
/// connection up to `config.request_timeout` (unless the URL sets `acquire_timeout_secs`),
/// so a request under load waits as long as it may, then gets 503 with `Retry-After`.
///
/// # Errors
///
/// As [`open_store`].
pub async fn open_store_with(url: &str, config: &ServerConfig) -> Result<Arc<dyn Store>> {
    match scheme(url) {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "sqlite" => open_sqlite(url, config).await,
        "postgres" | "postgresql" => open_postgres(url, config).await,
        other => Err(Error::invalid(
            "store",
            format!(
                "unknown store URL scheme `{other}`; use memory://, sqlite://path or postgres://..."
            ),
        )),
    }
}

/// Connects to the quota cache a URL names.
///
/// # Errors
///
/// [`Error::Validation`] for an unknown scheme or one this build lacks;
/// [`Error::Unavailable`] when the cache cannot be reached.
pub async fn open_quota_cache(url: &str) -> Result<Arc<dyn QuotaCache>> {
    match scheme(url) {
        "memory" => Ok(Arc::new(MemoryQuotaCache::new())),
        "redis" | "rediss" | "redis+cluster" => open_redis(url).await,
        other => Err(Error::invalid(
            "quota_cache",
            format!(
                "unknown quota cache URL scheme `{other}`; use memory://, redis://... or \
                 redis+cluster://host:port,host:port,..."
            ),
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, server: &ServerConfig) -> Result<Arc<dyn Store>> {
    let config = metering_store_sqlite::SqliteConfig::from_url(url)?
        .with_cache_kib(server.cache_mib.saturating_mul(1024));
    // Opening applies any pending migrations.
    Ok(Arc::new(
        metering_store_sqlite::SqliteStore::open(config).await?,
    ))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str, _server: &ServerConfig) -> Result<Arc<dyn Store>> {
    Err(no_backend("store", "sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, server: &ServerConfig) -> Result<Arc<dyn Store>> {
    let (url, mut extra) = take_params(url, &["schema", "max_connections", "acquire_timeout_secs"]);
    let mut config = metering_store_postgres::PostgresConfig::new(url)
        .with_acquire_timeout(server.request_timeout);
    if let Some(schema) = extra.remove("schema") {
        config = config.with_schema(schema);
    }
    if let Some(max) = extra.remove("max_connections") {
        let max = max
            .parse()
            .map_err(|_| Error::invalid("store", "max_connections must be a whole number"))?;
        config = config.with_max_connections(max);
    }
    if let Some(secs) = extra.remove("acquire_timeout_secs") {
        let secs = secs
            .parse()
            .map_err(|_| Error::invalid("store", "acquire_timeout_secs must be a whole number"))?;
        config = config.with_acquire_timeout(std::time::Duration::from_secs(secs));
    }
    // Opening creates the schema when asked and applies any pending migrations.
    Ok(Arc::new(
        metering_store_postgres::PostgresStore::open(config).await?,
    ))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str, _server: &ServerConfig) -> Result<Arc<dyn Store>> {
    Err(no_backend("store", "postgres"))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> Result<Arc<dyn QuotaCache>> {
    let (url, mut extra) = take_params(url, &["key_prefix", "wait_replicas"]);
    let mut config = metering_store_redis::RedisConfig::default().with_url(url);
    if let Some(prefix) = extra.remove("key_prefix") {
        config = config.with_key_prefix(prefix);
    }
    if let Some(replicas) = extra.remove("wait_replicas") {
        let replicas = replicas
            .parse()
            .map_err(|_| Error::invalid("quota_cache", "wait_replicas must be a whole number"))?;
        config = config.with_wait_replicas(replicas);
    }
    Ok(Arc::new(
        metering_store_redis::RedisQuotaCache::open(config).await?,
    ))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_url: &str) -> Result<Arc<dyn QuotaCache>> {
    Err(no_backend("quota_cache", "redis"))
}

/// Splits our own query parameters (`names`) off a URL, leaving the driver's in place.
#[cfg_attr(not(any(feature = "postgres", feature = "redis")), allow(dead_code))]
fn take_params(url: &str, names: &[&str]) -> (String, std::collections::HashMap<String, String>) {
    let mut taken = std::collections::HashMap::new();
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), taken);
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if names.contains(&name) {
            taken.insert(name.to_owned(), value.to_owned());
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, taken)
}

/// A URL with its secrets replaced by `***`, for logs (the one rule of the workspace).
pub use metering_core::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_parameters_are_split_off() {
        let (url, taken) = take_params("postgres://h/db?sslmode=disable&schema=t1", &["schema"]);
        assert_eq!(url, "postgres://h/db?sslmode=disable");
        assert_eq!(taken.get("schema").map(String::as_str), Some("t1"));
        let (url, taken) = take_params("redis://h:6379?key_prefix=x:", &["key_prefix"]);
        assert_eq!(url, "redis://h:6379");
        assert_eq!(taken.get("key_prefix").map(String::as_str), Some("x:"));
    }

    #[tokio::test]
    async fn schemes_pick_backends() {
        assert!(open_store("memory://").await.is_ok());
        assert!(open_quota_cache("memory://").await.is_ok());
        assert!(matches!(
            open_store("mysql://x").await,
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            open_quota_cache("memcached://x").await,
            Err(Error::Validation(_))
        ));
    }
}
