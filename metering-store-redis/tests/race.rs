//! The race: ingest, consume and validate hammer the same keys through two engines
//! (two "processes": separate cache handles on one prefix, one store) while another task
//! deletes the Redis counter hashes again and again. Nothing may be lost or counted twice.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use chrono::Duration;
use metering_core::{
    CounterKey, MemoryStore, Metering, NewEvent, Quantity, QuotaCache, QuotaPeriod, QuotaScope,
    QuotaSpec, Store, Tz, UsageScope, ValidateRequest,
};
use metering_store_redis::RedisQuotaCache;
use metering_store_redis::redis::AsyncCommands;
use metering_testkit::fixtures::{Namespace, engine_with_cache, feature, now, qty, resource};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_equal_a_recount_after_ingest_races_with_deleted_keys() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let caches = [
        common::cache_at(&url, &prefix).await,
        common::cache_at(&url, &prefix).await,
    ];
    // Stretch the windows between commit and `end_ingest`, and between reading the usage
    // and `finish_rebuild`, so a broken protocol shows up.
    let store = common::SlowStore {
        inner: MemoryStore::new(),
        max_pause: std::time::Duration::from_millis(3),
    };
    for _ in 0..4 {
        round(&url, &prefix, &caches, &store).await;
    }
}

/// One round with fresh tenants. Deleting stops two thirds of the way through, so the
/// counters rebuilt while ingest goes on survive to the final comparison.
async fn round(
    url: &str,
    prefix: &str,
    caches: &[RedisQuotaCache; 2],
    store: &common::SlowStore<MemoryStore>,
) {
    let engines: Vec<Metering> = caches
        .iter()
        .map(|c| engine_with_cache(store, c).0)
        .collect();
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("f");
    // Any resource, daily; and resource r1, monthly (so yesterday's events count for it).
    engines[0]
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("1000000"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    engines[0]
        .upsert_quota(
            QuotaSpec::new(
                QuotaScope::Tenant(t.clone()),
                f.clone(),
                qty("1000000"),
                QuotaPeriod::Monthly,
            )
            .with_resource(resource("r1")),
        )
        .await
        .expect("quota");
    let day = CounterKey {
        scope: UsageScope {
            tenant_id: t.clone(),
            resource: None,
            feature: f.clone(),
        },
        window: QuotaPeriod::Daily.window(now(), Tz::UTC),
    };
    let month = CounterKey {
        scope: UsageScope {
            resource: Some(resource("r1")),
            ..day.scope.clone()
        },
        window: QuotaPeriod::Monthly.window(now(), Tz::UTC),
    };
    // The most usage any check may ever report: everything that will be written.
    let mut ceiling = [Quantity::ZERO; 2];

    let done = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let engine = engines[w % 2].clone();
        let (t, ns, progress) = (t.clone(), ns.clone(), progress.clone());
        let mut batches = Vec::new();
        for b in 0..30 {
            let batch: Vec<NewEvent> = (0..5)
                .map(|i| {
                    let res = if i % 2 == 0 { "r1" } else { "r2" };
                    let q = if i % 3 == 0 { "0.3" } else { "1.7" };
                    // Every fifth batch is late (yesterday): it counts for the month only.
                    let at = if b % 5 == 4 {
                        now() - Duration::days(1)
                    } else {
                        now() - Duration::minutes(1)
                    };
                    // Every seventh batch re-sends the previous batch's ids (duplicates).
                    let id_batch = if b % 7 == 6 { b - 1 } else { b };
                    if id_batch == b {
                        if b % 5 != 4 {
                            ceiling[0] += qty(q);
                        }
                        if res == "r1" {
                            ceiling[1] += qty(q);
                        }
                    }
                    NewEvent::new(t.as_str(), res, "f")
                        .with_id(ns.id(&format!("w{w}-{id_batch}-{i}")).as_str())
                        .with_quantity(qty(q))
                        .with_timestamp(at)
                })
                .collect();
            batches.push(batch);
        }
        writers.push(tokio::spawn(async move {
            for batch in batches {
                engine.ingest(batch).await.expect("ingest");
                progress.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for (c, engine) in engines.iter().enumerate() {
        let (engine, ns) = (engine.clone(), ns.clone());
        let r = ValidateRequest::new(t.clone(), f.clone())
            .with_resource(resource("r1"))
            .with_quantity(qty("0.5"))
            .consuming();
        ceiling[0] += qty("5");
        ceiling[1] += qty("5");
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                let r = r.clone().with_id(ns.id(&format!("consume-{c}-{i}")));
                assert!(engine.validate(r).await.expect("consume").allowed);
            }
        }));
    }
    let mut checkers = Vec::new();
    for engine in &engines {
        for res in [None, Some("r1")] {
            let engine = engine.clone();
            let mut request = ValidateRequest::new(t.clone(), f.clone());
            if let Some(res) = res {
                request = request.with_resource(resource(res));
            }
            let ceiling = ceiling[usize::from(res.is_some())];
            let done = done.clone();
            checkers.push(tokio::spawn(async move {
                let mut checks = 0_u32;
                while !done.load(Ordering::SeqCst) {
                    let d = engine.validate(request.clone()).await.expect("validate");
                    assert!(
                        d.current_usage <= ceiling,
                        "{} > {ceiling}: counted twice",
                        d.current_usage
                    );
                    checks += 1;
                }
                checks
            }));
        }
    }
    let deleter = {
        let (url, prefix, progress) = (url.to_owned(), prefix.to_owned(), progress.clone());
        tokio::spawn(async move {
            let mut raw = common::raw_connection(&url).await;
            let mut deletions = 0_u32;
            while progress.load(Ordering::SeqCst) < 80 {
                for key in common::keys(&mut raw, &format!("{prefix}{{*}}:c")).await {
                    let n: u32 = raw.del(key).await.expect("DEL");
                    deletions += n;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            deletions
        })
    };
    for w in writers {
        w.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let mut checks = 0;
    for c in checkers {
        checks += c.await.expect("checker");
    }
    let deletions = deleter.await.expect("deleter");
    assert!(
        checks > 0 && deletions > 0,
        "{checks} checks, {deletions} deletions"
    );

    for (i, key) in [&day, &month].into_iter().enumerate() {
        let recount = store
            .inner
            .sum_usage(&key.scope, key.window)
            .await
            .expect("sum");
        assert_eq!(recount, ceiling[i], "the store holds every event once");
        for (engine, cache) in engines.iter().zip(caches) {
            let mut request = ValidateRequest::new(t.clone(), f.clone());
            if let Some(res) = &key.scope.resource {
                request = request.with_resource(res.clone());
            }
            let d = engine.validate(request).await.expect("validate");
            assert_eq!(d.current_usage, recount);
            assert_eq!(
                cache.usage(key).await.expect("usage"),
                Some(recount),
                "the rebuilt counter equals the recount"
            );
        }
    }
}
