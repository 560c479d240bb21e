//! Redis killed mid-run and started again empty, on a private server: two engines sharing
//! one store keep consuming against a limit throughout. While Redis is down every check is
//! served by the store; after it is back, counters are rebuilt. The limit is admitted
//! exactly, never exceeded, and the rebuilt counters equal the store.

mod common;

use std::time::Duration;

use metering_core::{
    CounterKey, MemoryStore, Metering, QuotaCache, QuotaPeriod, QuotaScope, QuotaSpec, Tz,
    UsageScope, ValidateRequest,
};
use metering_store_redis::{RedisConfig, RedisQuotaCache};
use metering_testkit::fixtures::{Namespace, engine_with_cache, feature, now, qty, resource};

async fn wave(engines: &[Metering], request: &ValidateRequest, tasks: usize) -> usize {
    let mut handles = Vec::new();
    for i in 0..tasks {
        let engine = engines[i % engines.len()].clone();
        let request = request.clone();
        handles.push(tokio::spawn(async move {
            engine
                .validate(request)
                .await
                .expect("a consume is answered")
                .allowed
        }));
    }
    let mut admitted = 0;
    for handle in handles {
        admitted += usize::from(handle.await.expect("task"));
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_and_restarted_empty_keeps_quotas_exact() {
    let Some(mut redis) = metering_testkit::private::PrivateRedis::start() else {
        return;
    };
    let prefix = common::unique_prefix();
    let config = RedisConfig::default()
        .with_url(redis.url())
        .with_key_prefix(&prefix)
        .with_connect_timeout(Duration::from_millis(200))
        .with_response_timeout(Duration::from_millis(200));
    let caches = [
        RedisQuotaCache::open(config.clone()).await.expect("cache"),
        RedisQuotaCache::open(config).await.expect("cache"),
    ];
    let store = MemoryStore::new();
    let engines: Vec<Metering> = caches
        .iter()
        .map(|c| engine_with_cache(&store, c).0)
        .collect();
    let t = Namespace::new().tenant("a");
    let f = feature("f");
    engines[0]
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("90"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    let consume = ValidateRequest::new(t.clone(), f.clone())
        .with_resource(resource("r"))
        .consuming();
    let check = ValidateRequest::new(t.clone(), f.clone());
    let key = CounterKey {
        scope: UsageScope {
            tenant_id: t.clone(),
            resource: None,
            feature: f.clone(),
        },
        window: QuotaPeriod::Monthly.window(now(), Tz::UTC),
    };

    // Redis up: counters are built and used.
    let mut admitted = wave(&engines, &consume, 40).await;
    assert_eq!(admitted, 40);
    engines[1].validate(check.clone()).await.expect("check");
    assert_eq!(caches[1].usage(&key).await.expect("usage"), Some(qty("40")));

    // Redis killed: every check falls back to the store, exactly, and nothing fails.
    redis.kill();
    admitted += wave(&engines, &consume, 40).await;
    assert_eq!(admitted, 80);
    let d = engines[0].validate(check.clone()).await.expect("check");
    assert_eq!(d.current_usage, qty("80"));

    // Started again, empty: counters are rebuilt from the store; the limit holds exactly.
    redis.start_again();
    admitted += wave(&engines, &consume, 40).await;
    assert_eq!(
        admitted, 90,
        "the limit is admitted exactly, never exceeded"
    );
    for (engine, cache) in engines.iter().zip(&caches) {
        let d = engine.validate(check.clone()).await.expect("check");
        assert_eq!(d.current_usage, qty("90"));
        assert!(!d.allowed);
        assert_eq!(
            cache.usage(&key).await.expect("Redis answers again"),
            Some(qty("90")),
            "the rebuilt counter equals the store"
        );
    }
}
