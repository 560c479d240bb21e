//! The shared `QuotaCache` conformance suite against the Redis in `METERING_TEST_REDIS_URL`.

mod common;

async fn setup() -> Option<metering_store_redis::RedisQuotaCache> {
    common::cache().await
}

metering_testkit::cache_conformance!(setup);
