//! Degraded mode: Redis unreachable (for everyone, or for one process only).

mod common;

use std::time::{Duration, Instant};

use metering_core::{
    HealthStatus, MemoryStore, NewEvent, QuotaCache, QuotaPeriod, QuotaScope, QuotaSpec,
    ValidateRequest,
};
use metering_store_redis::redis::AsyncCommands;
use metering_store_redis::{RedisConfig, RedisQuotaCache, redis};
use metering_testkit::fixtures::{Namespace, engine_with_cache, feature, qty, resource};

/// Nothing listens on port 1: every check is served exactly by the store, nothing errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_falls_back_to_the_store_exactly() {
    let started = Instant::now();
    let cache = RedisQuotaCache::open(
        RedisConfig::default()
            .with_url("redis://127.0.0.1:1")
            .with_key_prefix(common::unique_prefix()),
    )
    .await
    .expect("opening never needs the server");
    let error = cache.health().await.expect_err("nothing answers");
    assert!(error.is_unavailable(), "{error:?}");

    let store = MemoryStore::new();
    let (engine, _) = engine_with_cache(&store, &cache);
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("f");
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("10"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    engine
        .ingest(vec![
            NewEvent::new(t.as_str(), "r", "f").with_quantity(qty("2.5")),
            NewEvent::new(t.as_str(), "r", "f").with_quantity(qty("4")),
        ])
        .await
        .expect("ingest works without redis");
    let check = engine
        .validate(ValidateRequest::new(t.clone(), f.clone()))
        .await
        .expect("validate");
    assert_eq!(check.current_usage, qty("6.5"));
    let consume = ValidateRequest::new(t.clone(), f.clone())
        .with_resource(resource("r"))
        .with_quantity(qty("3"))
        .consuming();
    assert!(
        engine
            .validate(consume.clone())
            .await
            .expect("consume")
            .allowed
    );
    assert!(
        !engine.validate(consume).await.expect("consume").allowed,
        "9.5 + 3 > 10: never over-admits"
    );
    let check = engine
        .validate(ValidateRequest::new(t, f))
        .await
        .expect("validate");
    assert_eq!(check.current_usage, qty("9.5"));

    let health = engine.health().await;
    assert_eq!(health.status, HealthStatus::Degraded);
    assert!(health.store_connected && !health.cache_connected);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "every call fails fast"
    );
}

/// One process loses Redis while it ingests; another keeps a counter that misses those
/// events. When the first process reaches Redis again it deletes the counters of the streams
/// it missed, so the stale counter is rebuilt from the store; one mark lifetime later it
/// deletes them again (for an ingest that may still have been committing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_missed_an_ingest_drops_stale_counters_when_redis_returns() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let proxy = common::Proxy::start(common::host_port(&url)).await;
    let mark_ttl = Duration::from_millis(500);
    let config = |url: &str| {
        RedisConfig::default()
            .with_url(url)
            .with_key_prefix(&prefix)
            .with_ingest_mark_ttl(mark_ttl)
            .with_connect_timeout(Duration::from_millis(300))
            .with_response_timeout(Duration::from_millis(300))
    };
    let flaky = RedisQuotaCache::open(config(&proxy.url))
        .await
        .expect("open");
    let steady = RedisQuotaCache::open(config(&url)).await.expect("open");
    flaky.health().await.expect("the proxy forwards");

    let store = MemoryStore::new();
    let (one, _) = engine_with_cache(&store, &flaky);
    let (two, _) = engine_with_cache(&store, &steady);
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("f");
    one.upsert_quota(QuotaSpec::new(
        QuotaScope::Tenant(t.clone()),
        f.clone(),
        qty("100"),
        QuotaPeriod::Daily,
    ))
    .await
    .expect("quota");
    let check = ValidateRequest::new(t.clone(), f.clone());
    let event = || NewEvent::new(t.as_str(), "r", "f");
    one.ingest(vec![event()]).await.expect("ingest");
    assert_eq!(
        two.validate(check.clone()).await.expect("v").current_usage,
        qty("1")
    );

    proxy.cut();
    one.ingest(vec![event(), event()])
        .await
        .expect("ingest without redis");
    assert_eq!(
        one.validate(check.clone()).await.expect("v").current_usage,
        qty("3"),
        "the process without redis reads the store"
    );
    assert_eq!(one.health().await.status, HealthStatus::Degraded);
    assert_eq!(
        two.validate(check.clone()).await.expect("v").current_usage,
        qty("1"),
        "the other process's counter missed the events (what the drop is for)"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    while one.health().await.status != HealthStatus::Healthy {
        assert!(Instant::now() < deadline, "the connection is remade");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        two.validate(check.clone()).await.expect("v").current_usage,
        qty("3"),
        "the drop of the missed streams' counters reached the other process"
    );
    let mut raw = common::raw_connection(&url).await;
    let counters = format!("{prefix}{{{}:{}:f}}:c", t.as_str().len(), t.as_str());
    let exists = |raw: &mut redis::aio::MultiplexedConnection| {
        let mut raw = raw.clone();
        let key = counters.clone();
        async move { raw.exists::<_, bool>(key).await.expect("EXISTS") }
    };
    assert!(exists(&mut raw).await, "rebuilt by the check");
    tokio::time::sleep(mark_ttl + Duration::from_millis(100)).await;
    flaky.health().await.expect("healthy");
    assert!(
        !exists(&mut raw).await,
        "dropped again, for ingests still committing"
    );
    assert_eq!(
        two.validate(check.clone()).await.expect("v").current_usage,
        qty("3")
    );
    flaky.health().await.expect("healthy");
    assert!(exists(&mut raw).await, "no more drops");
    assert_eq!(
        one.validate(check.clone()).await.expect("v").current_usage,
        qty("3")
    );
    assert_eq!(
        two.validate(check).await.expect("v").current_usage,
        qty("3")
    );
}
