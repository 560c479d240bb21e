//! Two engines, each with its own Redis cache handle on one prefix, sharing one store: 200
//! concurrent consumes against a limit of 50 admit exactly 50. Runs with a shared in-memory
//! store, and with PostgreSQL when `METERING_TEST_POSTGRES_URL` is set too.

mod common;

use metering_core::{
    CounterKey, EventFilter, EventQuery, Metering, Paging, QuotaCache, QuotaPeriod, QuotaScope,
    QuotaSpec, Store, Tz, UsageScope, ValidateRequest,
};
use metering_store_redis::RedisQuotaCache;
use metering_testkit::fixtures::{Namespace, engine_with_cache, feature, now, qty, resource};

async fn two_instances_admit_exactly_the_limit<S: Store + Clone>(
    store: S,
    caches: [RedisQuotaCache; 2],
) {
    let engines: Vec<Metering> = caches
        .iter()
        .map(|c| engine_with_cache(&store, c).0)
        .collect();
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("f");
    engines[0]
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("50"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    // Warm the counters so the consumes race against live Redis counters too.
    for engine in &engines {
        let d = engine
            .validate(ValidateRequest::new(t.clone(), f.clone()))
            .await
            .expect("validate");
        assert_eq!(d.current_usage, qty("0"));
    }
    let mut tasks = Vec::new();
    for i in 0..200 {
        let engine = engines[i % 2].clone();
        let request = ValidateRequest::new(t.clone(), f.clone())
            .with_resource(resource("r"))
            .consuming();
        tasks.push(tokio::spawn(async move {
            engine.validate(request).await.expect("consume").allowed
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.expect("task"));
    }
    assert_eq!(admitted, 50);

    let query = EventQuery::new(
        EventFilter::all().tenant(t.clone()),
        Paging::Page {
            page: 1,
            page_size: 1000,
        },
    );
    let page = store.list_events(&query).await.expect("list");
    assert_eq!(page.events.len(), 50, "the store holds exactly 50 events");

    let key = CounterKey {
        scope: UsageScope {
            tenant_id: t.clone(),
            resource: None,
            feature: f.clone(),
        },
        window: QuotaPeriod::Monthly.window(now(), Tz::UTC),
    };
    for (engine, cache) in engines.iter().zip(&caches) {
        let d = engine
            .validate(ValidateRequest::new(t.clone(), f.clone()))
            .await
            .expect("validate");
        assert_eq!(d.current_usage, qty("50"));
        assert!(!d.allowed);
        assert_eq!(cache.usage(&key).await.expect("usage"), Some(qty("50")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_sharing_a_memory_store() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let caches = [
        common::cache_at(&url, &prefix).await,
        common::cache_at(&url, &prefix).await,
    ];
    two_instances_admit_exactly_the_limit(metering_core::MemoryStore::new(), caches).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_sharing_postgres() {
    use metering_store_postgres::{PostgresConfig, PostgresStore, sqlx};
    let (Some(redis_url), Some(pg_url)) = (
        metering_testkit::redis_url(),
        metering_testkit::postgres_url(),
    ) else {
        return;
    };
    let schema = format!("mtest_redis_{:016x}", rand::random::<u64>());
    let store = PostgresStore::open(PostgresConfig::new(&pg_url).with_schema(&schema))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "postgres at {} failed: {e}",
                metering_testkit::env::redact(&pg_url)
            )
        });
    let prefix = common::unique_prefix();
    let caches = [
        common::cache_at(&redis_url, &prefix).await,
        common::cache_at(&redis_url, &prefix).await,
    ];
    two_instances_admit_exactly_the_limit(store.clone(), caches).await;
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::query(drop.as_str())
        .execute(store.pool())
        .await
        .expect("drop the test schema");
    store.close().await;
}
