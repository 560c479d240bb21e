//! The quota cache on a Redis Cluster of its own (3 primaries, 3 replicas, on free loopback
//! ports): the conformance suite, then a primary killed while consumes race against small
//! limits.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metering_core::{
    CounterKey, MemoryStore, Metering, NewEvent, Quantity, QuotaCache, QuotaPeriod, QuotaScope,
    QuotaSpec, Store, TenantId, Tz, UsageScope, ValidateRequest,
};
use metering_store_redis::{RedisConfig, RedisQuotaCache};
use metering_testkit::fixtures::{Namespace, engine_with_cache, feature, now, qty, resource};
use metering_testkit::private::PrivateRedisCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_conformance_suite_passes_on_a_cluster() {
    let Some(cluster) = PrivateRedisCluster::start() else {
        return;
    };
    let url = cluster.url();
    metering_testkit::cache_conformance!(
        in_sequence common::cache_at(&url, &common::unique_prefix()).await
    );
    // Streams spread over every primary: one slot per stream, not one for everything. The
    // tenant names are fixed (the prefix is outside the hash tag), so the slots are too.
    let prefix = common::unique_prefix();
    let cache = common::cache_at(&url, &prefix).await;
    let mut holders = std::collections::BTreeSet::new();
    for i in 0..30 {
        let t = TenantId::new(format!("spread-{i}")).expect("valid");
        let k = daily(&t, "f");
        let token = cache.begin_rebuild(&k).await.expect("begin").expect("idle");
        assert!(
            cache
                .finish_rebuild(&k, token, qty("1"))
                .await
                .expect("finish")
        );
        let key = format!("{prefix}{}", stream_tag(&t, "f"));
        let node = cluster.primary_of(&key).expect("a primary");
        assert_eq!(
            cluster.nodes()[node].cli(&["exists", &key]).trim(),
            "1",
            "{key} lives on its slot's primary"
        );
        holders.insert(node);
    }
    assert_eq!(holders.len(), 3, "every primary holds some streams");
}

const TENANTS: usize = 24;
const LIMIT: usize = 30;

fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig::default()
        .with_url(url)
        .with_key_prefix(prefix)
        .with_connect_timeout(Duration::from_millis(500))
        .with_response_timeout(Duration::from_millis(500))
        .with_ingest_mark_ttl(Duration::from_secs(3))
}

fn daily(t: &TenantId, f: &str) -> CounterKey {
    CounterKey {
        scope: UsageScope {
            tenant_id: t.clone(),
            resource: None,
            feature: feature(f),
        },
        window: QuotaPeriod::Daily.window(now(), Tz::UTC),
    }
}

/// Two engines ("processes") on one store and one cluster: consumes race for a limit of 30
/// per tenant, batches of metered events go in, and checks read the counters, while the
/// primary of the first tenant's slot is killed. Checks keep answering, the replica takes
/// over, no tenant gets past its limit, and once the dust settles every counter equals the
/// store.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_during_consumes_loses_nothing() {
    let Some(mut cluster) = PrivateRedisCluster::start() else {
        return;
    };
    let url = cluster.url();
    let prefix = common::unique_prefix();
    let caches = [
        RedisQuotaCache::open(config(&url, &prefix))
            .await
            .expect("open"),
        RedisQuotaCache::open(config(&url, &prefix))
            .await
            .expect("open"),
    ];
    for cache in &caches {
        cache.health().await.expect("the cluster answers");
    }
    let store = MemoryStore::new();
    let engines: Vec<Metering> = caches
        .iter()
        .map(|c| engine_with_cache(&store, c).0)
        .collect();
    let ns = Namespace::new();
    let tenants: Vec<TenantId> = (0..TENANTS).map(|i| ns.tenant(&format!("t{i}"))).collect();
    for t in &tenants {
        for (f, limit) in [
            ("calls", LIMIT.to_string()),
            ("tokens", "1000000000".into()),
        ] {
            engines[0]
                .upsert_quota(QuotaSpec::new(
                    QuotaScope::Tenant(t.clone()),
                    feature(f),
                    qty(&limit),
                    QuotaPeriod::Daily,
                ))
                .await
                .expect("quota");
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let allowed: Arc<Vec<AtomicUsize>> =
        Arc::new((0..TENANTS).map(|_| AtomicUsize::new(0)).collect());
    let checks_after_failover = Arc::new(AtomicUsize::new(0));
    let checks = Arc::new(AtomicUsize::new(0));
    let failed_over = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    // Consumers: each walks the tenants, one unit at a time, slowly enough that the limits
    // are reached around the kill, not long before it.
    for c in 0..8 {
        let (engine, tenants, stop, allowed) = (
            engines[c % 2].clone(),
            tenants.clone(),
            stop.clone(),
            allowed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::SeqCst) {
                let t = i % TENANTS;
                let request = ValidateRequest::new(tenants[t].clone(), feature("calls"))
                    .with_resource(resource("r"))
                    .consuming();
                if engine.validate(request).await.expect("consume").allowed {
                    allowed[t].fetch_add(1, Ordering::SeqCst);
                }
                i += 7;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // Writers: batches over several tenants (several slots per call).
    let sent = Arc::new(std::sync::Mutex::new(vec![Quantity::ZERO; TENANTS]));
    for (w, engine) in engines.iter().enumerate() {
        let (engine, tenants, stop, sent) =
            (engine.clone(), tenants.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<NewEvent> = (0..6)
                    .map(|j| {
                        let t = (round * 5 + j * 4 + w) % TENANTS;
                        let q = if j % 2 == 0 { "0.7" } else { "1.000000001" };
                        sent.lock().expect("lock")[t] += qty(q);
                        NewEvent::new(tenants[t].as_str(), "r", "tokens").with_quantity(qty(q))
                    })
                    .collect();
                engine.ingest(batch).await.expect("ingest");
                round += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    // Checkers: they must keep answering throughout.
    for (k, engine) in engines.iter().enumerate() {
        let (engine, tenants, stop, after, failed_over, checks) = (
            engine.clone(),
            tenants.clone(),
            stop.clone(),
            checks_after_failover.clone(),
            failed_over.clone(),
            checks.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while !stop.load(Ordering::SeqCst) {
                let request = ValidateRequest::new(tenants[i % TENANTS].clone(), feature("tokens"));
                engine.validate(request).await.expect("check");
                checks.fetch_add(1, Ordering::SeqCst);
                if failed_over.load(Ordering::SeqCst) {
                    after.fetch_add(1, Ordering::SeqCst);
                }
                i += 3;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let checks_before = checks.load(Ordering::SeqCst);
    let first = caches[0].config().key_prefix.clone() + &stream_tag(&tenants[0], "calls");
    let victim = cluster.primary_of(&first).expect("a primary");
    let killed_at = Instant::now();
    cluster.kill(victim);
    let (mut cluster, first) = tokio::task::spawn_blocking(move || {
        cluster.wait_for_failover(&first, victim, Duration::from_secs(30));
        (cluster, first)
    })
    .await
    .expect("wait");
    let failover = killed_at.elapsed();
    // The killed primary's slots answer through the promoted replica.
    let k0 = daily(&tenants[0], "calls");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = caches[0].usage(&k0).await {
        assert!(
            Instant::now() < deadline,
            "the new primary never answered: {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answering = killed_at.elapsed();
    failed_over.store(true, Ordering::SeqCst);
    // The old primary comes back as the new one's replica, as an operator would bring it back.
    cluster.restart(victim);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.wait_for_replicas(Duration::from_secs(30));
        cluster
    })
    .await
    .expect("wait");
    assert_ne!(
        cluster.primary_of(&first),
        Some(victim),
        "it rejoined as a replica"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.expect("task");
    }
    let checks_after = checks_after_failover.load(Ordering::SeqCst);
    assert!(checks_after > 0, "checks went on after the failover");

    // No tenant got past its limit, and the store holds exactly what was admitted.
    let mut admitted_total = 0;
    for (i, t) in tenants.iter().enumerate() {
        let admitted = allowed[i].load(Ordering::SeqCst);
        assert!(admitted <= LIMIT, "{admitted} > {LIMIT} for tenant {i}");
        let k = daily(t, "calls");
        let stored = store.sum_usage(&k.scope, k.window).await.expect("sum");
        assert_eq!(stored, qty(&admitted.to_string()), "tenant {i}");
        admitted_total += admitted;
    }

    // Let the late drops of missed ingests fall due, then rebuild: every counter is exact.
    tokio::time::sleep(Duration::from_secs(3) + Duration::from_millis(200)).await;
    for cache in &caches {
        cache.health().await.expect("healthy after the failover");
    }
    let sent = sent.lock().expect("lock").clone();
    for (i, t) in tenants.iter().enumerate() {
        for f in ["calls", "tokens"] {
            let k = daily(t, f);
            let stored = store.sum_usage(&k.scope, k.window).await.expect("sum");
            if f == "tokens" {
                assert_eq!(stored, sent[i], "every event stored once");
            }
            for (engine, cache) in engines.iter().zip(&caches) {
                let d = engine
                    .validate(ValidateRequest::new(t.clone(), feature(f)))
                    .await
                    .expect("check");
                assert_eq!(d.current_usage, stored, "tenant {i} {f}");
                assert_eq!(
                    cache.usage(&k).await.expect("usage"),
                    Some(stored),
                    "the counter of tenant {i} {f} equals the store"
                );
            }
        }
    }
    println!(
        "killed node {victim}: a replica took over after {:.2} s, its slots answered after \
         {:.2} s; {admitted_total} consumes admitted over {TENANTS} tenants (limit {LIMIT}); \
         checks: {checks_before} in the 1.5 s before the kill, {checks_after} after the \
         failover",
        failover.as_secs_f64(),
        answering.as_secs_f64(),
    );
    drop(cluster);
}

/// The hash-tagged part of a stream's keys (see the crate's key layout).
fn stream_tag(t: &TenantId, f: &str) -> String {
    format!("{{{}:{}:{f}}}:c", t.as_str().len(), t.as_str())
}
