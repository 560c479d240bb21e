//! Picking a store and a quota cache from a URL at run time.
//!
//! | URL | backend | feature |
//! |---|---|---|
//! | `memory://` | [`metering_core::MemoryStore`] / [`metering_core::MemoryQuotaCache`] | always |
//! | `sqlite://path` (`sqlite://metering.db`, `sqlite::memory:`) | `metering_store_sqlite::SqliteStore` | `sqlite` (default) |
//! | `postgres://...`, `postgresql://...` | `metering_store_postgres::PostgresStore` | `postgres` |
//! | `redis://...`, `rediss://...` | `metering_store_redis::RedisQuotaCache` | `redis` |

use std::sync::Arc;

use metering_core::{Error, MemoryQuotaCache, MemoryStore, QuotaCache, Result, Store};

/// The default store URL.
pub const DEFAULT_STORE_URL: &str = "sqlite://metering.db";

/// The default quota cache URL.
pub const DEFAULT_QUOTA_CACHE_URL: &str = "memory://";

fn scheme(url: &str) -> &str {
    url.split_once(':').map_or(url, |(s, _)| s)
}

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
    match scheme(url) {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        "sqlite" => open_sqlite(url).await,
        "postgres" | "postgresql" => open_postgres(url).await,
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
        "redis" | "rediss" => open_redis(url).await,
        other => Err(Error::invalid(
            "quota_cache",
            format!("unknown quota cache URL scheme `{other}`; use memory:// or redis://..."),
        )),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str) -> Result<Arc<dyn Store>> {
    let _ = url;
    Err(no_backend("store", "sqlite"))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(_url: &str) -> Result<Arc<dyn Store>> {
    Err(no_backend("store", "sqlite"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>> {
    let _ = url;
    Err(no_backend("store", "postgres"))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_url: &str) -> Result<Arc<dyn Store>> {
    Err(no_backend("store", "postgres"))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> Result<Arc<dyn QuotaCache>> {
    let _ = url;
    Err(no_backend("quota_cache", "redis"))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_url: &str) -> Result<Arc<dyn QuotaCache>> {
    Err(no_backend("quota_cache", "redis"))
}

/// A URL with any password replaced by `***`, for logs.
#[must_use]
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/x?sslmode=require"),
            "postgres://me:***@db:5432/x?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(redact_url("sqlite://metering.db"), "sqlite://metering.db");
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
