//! Two engines, each with its own Redis cache handle on one prefix, sharing one store: 200
//! concurrent consumes against a limit of 50 admit exactly 50. Runs with a shared in-memory
//! store, and with PostgreSQL when `METERING_TEST_POSTGRES_URL` is set too; and for meter
//! quotas, two PostgreSQL stores (each its own pool, as two servers) on one schema.

mod common;

use metering_core::{
    Aggregation, CounterKey, EventFilter, EventQuery, MeterCheck, MeterKey, MeterSpec, Metering,
    NewEvent, Paging, QuotaCache, QuotaPeriod, QuotaScope, QuotaSpec, Store, Tz, UsageScope,
    ValidateRequest,
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

/// Consumes `events` (each with the check's meter) concurrently, alternating engines; the
/// ids of the admitted ones.
async fn race_meter_consumes(
    engines: &[Metering],
    tenant: &metering_core::TenantId,
    meter: &MeterKey,
    events: Vec<NewEvent>,
) -> Vec<String> {
    let mut tasks = Vec::new();
    for (i, event) in events.into_iter().enumerate() {
        let engine = engines[i % engines.len()].clone();
        let check = MeterCheck::new(tenant.clone(), meter.clone())
            .with_event(event)
            .consuming();
        tasks.push(tokio::spawn(async move {
            let d = engine.check_meter(check).await.expect("consume");
            d.event_id
                .filter(|_| d.allowed)
                .map(|id| id.as_str().to_owned())
        }));
    }
    let mut admitted = Vec::new();
    for task in tasks {
        admitted.extend(task.await.expect("task"));
    }
    admitted.sort();
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_postgres_admit_exactly_a_meter_quota() {
    use metering_store_postgres::{PostgresConfig, PostgresStore, sqlx};
    let (Some(redis_url), Some(pg_url)) = (
        metering_testkit::redis_url(),
        metering_testkit::postgres_url(),
    ) else {
        return;
    };
    let schema = format!("mtest_meterq_{:016x}", rand::random::<u64>());
    let open = || async {
        PostgresStore::open(PostgresConfig::new(&pg_url).with_schema(&schema))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "postgres at {} failed: {e}",
                    metering_testkit::env::redact(&pg_url)
                )
            })
    };
    let stores = [open().await, open().await];
    let prefix = common::unique_prefix();
    let caches = [
        common::cache_at(&redis_url, &prefix).await,
        common::cache_at(&redis_url, &prefix).await,
    ];
    let engines: Vec<Metering> = stores
        .iter()
        .zip(&caches)
        .map(|(s, c)| engine_with_cache(s, c).0)
        .collect();
    let t = Namespace::new().tenant("a");
    let event = |id: String, user: String| {
        let mut metadata = metering_core::Metadata::new();
        metadata.insert("user".into(), user.into());
        NewEvent::new(t.as_str(), "app", "call")
            .with_id(id)
            .with_timestamp(now())
            .with_metadata(metadata)
    };

    // A count meter with a limit of 50: 200 racing consumes admit exactly 50.
    let calls = MeterKey::new("calls").expect("key");
    engines[0]
        .define_meter(&calls, &MeterSpec::new(Aggregation::Count))
        .await
        .expect("meter");
    engines[1]
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::Tenant(t.clone()),
            calls.clone(),
            qty("50"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    let events = (0..200)
        .map(|i| event(format!("call-{i:03}"), format!("u{i}")))
        .collect();
    let admitted = race_meter_consumes(&engines, &t, &calls, events).await;
    assert_eq!(admitted.len(), 50);
    let query = EventQuery::new(
        EventFilter::all().tenant(t.clone()),
        Paging::Page {
            page: 1,
            page_size: 1000,
        },
    );
    let page = stores[1].list_events(&query).await.expect("list");
    let mut stored: Vec<String> = page
        .events
        .iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    stored.sort();
    assert_eq!(
        stored, admitted,
        "the store holds exactly the admitted events"
    );

    // A unique_count meter with a limit of 5 over another tenant: 20 users, three calls
    // each, racing. Exactly 5 users get in, and every call of theirs is admitted.
    let t2 = Namespace::new().tenant("b");
    let users = MeterKey::new("users").expect("key");
    engines[1]
        .define_meter(
            &users,
            &MeterSpec::new(Aggregation::UniqueCount).value("metadata.user".parse().expect("path")),
        )
        .await
        .expect("meter");
    engines[0]
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::Tenant(t2.clone()),
            users.clone(),
            qty("5"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    let events: Vec<NewEvent> = (0..60)
        .map(|i| {
            let mut e = event(format!("login-{i:03}"), format!("user-{:02}", i % 20));
            e.tenant_id = t2.as_str().to_owned();
            e
        })
        .collect();
    let admitted = race_meter_consumes(&engines, &t2, &users, events).await;
    let mut admitted_users: Vec<u32> = admitted
        .iter()
        .map(|id| id[6..].parse::<u32>().expect("number") % 20)
        .collect();
    admitted_users.dedup();
    admitted_users.sort_unstable();
    admitted_users.dedup();
    assert_eq!(admitted_users.len(), 5, "exactly five users: {admitted:?}");
    for user in &admitted_users {
        for call in 0..3 {
            let id = format!("login-{:03}", user + call * 20);
            assert!(
                admitted.contains(&id),
                "{id}: a counted user is always admitted ({admitted:?})"
            );
        }
    }
    assert_eq!(admitted.len(), 15);

    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    sqlx::query(drop.as_str())
        .execute(stores[0].pool())
        .await
        .expect("drop the test schema");
    for store in stores {
        store.close().await;
    }
}
