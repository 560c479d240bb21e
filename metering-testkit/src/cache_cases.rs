//! The quota cache conformance cases: the counter protocol of [`metering_core::cache`],
//! step by step and under races. Each takes a fresh cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Duration;
use chrono_tz::Tz;
use metering_core::{
    CounterKey, Event, Ingested, MemoryStore, NewEvent, Quantity, QuotaCache, QuotaPeriod,
    QuotaScope, QuotaSpec, Store, UsageScope, UsageStream, ValidateRequest, Window,
};

use crate::fixtures::{Namespace, at, engine_with_cache, event, feature, now, qty, resource};

fn day() -> Window {
    QuotaPeriod::Daily.window(now(), Tz::UTC)
}

fn key(ns: &Namespace, res: Option<&str>) -> CounterKey {
    CounterKey {
        scope: UsageScope {
            tenant_id: ns.tenant("a"),
            resource: res.map(resource),
            feature: feature("f"),
        },
        window: day(),
    }
}

fn ev(ns: &Namespace, id: &str, res: &str, q: &str) -> Event {
    event(ns.id(id), &ns.tenant("a"), res, "f", qty(q), now())
}

async fn ingest<C: QuotaCache>(cache: &C, events: &[Event], inserted: &[bool]) {
    let streams = UsageStream::of_batch(events);
    cache.begin_ingest(&streams).await.expect("begin");
    cache
        .end_ingest(
            &streams,
            Ingested {
                events,
                inserted,
                recount: false,
            },
        )
        .await
        .expect("end");
}

async fn rebuild<C: QuotaCache>(cache: &C, key: &CounterKey, usage: Quantity) -> bool {
    let token = cache
        .begin_rebuild(key)
        .await
        .expect("begin")
        .expect("a token when idle");
    cache
        .finish_rebuild(key, token, usage)
        .await
        .expect("finish")
}

/// A correction (`Ingested::RECOUNT`) drops every counter of its stream, and a rebuild that
/// began before it is refused, so the next check recounts the store.
pub async fn corrections_drop_the_streams_counters<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let (any, one) = (key(&ns, None), key(&ns, Some("api")));
    assert!(rebuild(&cache, &any, qty("5")).await);
    assert!(rebuild(&cache, &one, qty("2")).await);
    let mut other = key(&ns, None);
    other.scope.feature = feature("g");
    assert!(rebuild(&cache, &other, qty("9")).await);
    // A rebuild of a counter the correction will drop, begun before it.
    cache.forget(&any).await.expect("forget");
    let stale = cache
        .begin_rebuild(&any)
        .await
        .expect("begin")
        .expect("idle");
    let streams = [any.stream()];
    cache.begin_ingest(&streams).await.expect("begin");
    cache
        .end_ingest(&streams, Ingested::RECOUNT)
        .await
        .expect("end");
    assert_eq!(cache.usage(&one).await.expect("usage"), None);
    assert!(
        !cache
            .finish_rebuild(&any, stale, qty("5"))
            .await
            .expect("finish"),
        "a rebuild read before the correction is refused"
    );
    assert_eq!(cache.usage(&any).await.expect("usage"), None);
    assert_eq!(
        cache.usage(&other).await.expect("usage"),
        Some(qty("9")),
        "other streams keep their counters"
    );
    assert!(rebuild(&cache, &any, qty("3")).await, "rebuilt after it");
    assert_eq!(cache.usage(&any).await.expect("usage"), Some(qty("3")));
}

/// Checks through the cache see a void and an amend made through the engine at once.
pub async fn corrections_reach_checks<C: QuotaCache + Clone>(cache: C) {
    crate::store_cases::corrections_reach_quota_usage(MemoryStore::new(), cache).await;
}

/// A counter that was never built is absent.
pub async fn missing_counter_is_absent<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    assert_eq!(cache.usage(&key(&ns, None)).await.expect("usage"), None);
    cache.health().await.expect("healthy");
}

/// A rebuild on an idle stream stores the counter; a second rebuild does not overwrite it.
pub async fn rebuild_stores_the_counter<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    assert!(rebuild(&cache, &k, qty("7.25")).await);
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("7.25")));
    assert!(
        !rebuild(&cache, &k, qty("1")).await,
        "a present counter is not replaced"
    );
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("7.25")));
    let other = CounterKey {
        window: QuotaPeriod::Daily.window(now() + Duration::days(1), Tz::UTC),
        ..k.clone()
    };
    assert_eq!(
        cache.usage(&other).await.expect("usage"),
        None,
        "counters are per window"
    );
}

/// While an ingest is in flight on the stream, no rebuild may start.
pub async fn busy_stream_refuses_rebuild<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    let streams = vec![k.stream()];
    cache.begin_ingest(&streams).await.expect("begin");
    assert_eq!(cache.begin_rebuild(&k).await.expect("begin rebuild"), None);
    cache
        .end_ingest(&streams, Ingested::NONE)
        .await
        .expect("end");
    assert!(
        cache
            .begin_rebuild(&k)
            .await
            .expect("begin rebuild")
            .is_some()
    );
}

/// An ingest that begins or ends during a rebuild makes the rebuilt value be thrown away.
pub async fn ingest_during_rebuild_discards_it<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    let token = cache
        .begin_rebuild(&k)
        .await
        .expect("begin")
        .expect("token");
    ingest(&cache, &[ev(&ns, "1", "r", "1")], &[true]).await;
    assert!(
        !cache
            .finish_rebuild(&k, token, qty("0"))
            .await
            .expect("finish")
    );
    assert_eq!(cache.usage(&k).await.expect("usage"), None);
    // Another stream's ingest does not disturb this one.
    let token = cache
        .begin_rebuild(&k)
        .await
        .expect("begin")
        .expect("token");
    let other = event(ns.id("o"), &ns.tenant("b"), "r", "f", qty("1"), now());
    ingest(&cache, &[other], &[true]).await;
    assert!(
        cache
            .finish_rebuild(&k, token, qty("1"))
            .await
            .expect("finish")
    );
}

/// New events bump the counters of their stream whose window and resource they fall in.
pub async fn end_ingest_bumps_only_matching_counters<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let any = key(&ns, None);
    let billing = key(&ns, Some("billing"));
    let tomorrow = CounterKey {
        window: QuotaPeriod::Daily.window(now() + Duration::days(1), Tz::UTC),
        ..any.clone()
    };
    for k in [&any, &billing, &tomorrow] {
        assert!(rebuild(&cache, k, Quantity::ZERO).await);
    }
    let mut yesterday = ev(&ns, "y", "billing", "100");
    yesterday.timestamp = now() - Duration::days(1);
    let mut other_feature = ev(&ns, "g", "billing", "1000");
    other_feature.feature = feature("g");
    let events = [
        ev(&ns, "1", "billing", "1.5"),
        ev(&ns, "2", "reports", "2"),
        yesterday,
        other_feature,
    ];
    ingest(&cache, &events, &[true, true, true, true]).await;
    assert_eq!(cache.usage(&any).await.expect("usage"), Some(qty("3.5")));
    assert_eq!(
        cache.usage(&billing).await.expect("usage"),
        Some(qty("1.5"))
    );
    assert_eq!(
        cache.usage(&tomorrow).await.expect("usage"),
        Some(Quantity::ZERO)
    );
}

/// Events reported as not inserted (duplicates) are not counted.
pub async fn duplicates_are_not_counted<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    assert!(rebuild(&cache, &k, qty("1")).await);
    ingest(
        &cache,
        &[ev(&ns, "1", "r", "5"), ev(&ns, "2", "r", "7")],
        &[false, true],
    )
    .await;
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("8")));
}

/// `forget` drops a counter, which can then be rebuilt.
pub async fn forget_drops_the_counter<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    assert!(rebuild(&cache, &k, qty("3")).await);
    cache.forget(&k).await.expect("forget");
    assert_eq!(cache.usage(&k).await.expect("usage"), None);
    assert!(rebuild(&cache, &k, qty("4")).await);
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("4")));
}

/// Counters add decimals exactly, and carry values up to the largest event quantities.
pub async fn counters_are_exact_decimals<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let k = key(&ns, None);
    assert!(rebuild(&cache, &k, qty("0.9")).await);
    let tenths: Vec<_> = (0..100)
        .map(|i| ev(&ns, &format!("t{i}"), "r", "0.1"))
        .collect();
    ingest(&cache, &tenths, &[true; 100]).await;
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("10.9")));
    let big: Vec<_> = (0..3)
        .map(|i| ev(&ns, &format!("b{i}"), "r", "999999999999999.999999999"))
        .collect();
    ingest(&cache, &big, &[true; 3]).await;
    assert_eq!(
        cache.usage(&k).await.expect("usage"),
        Some(qty("3000000000000010.899999997"))
    );
}

/// Ingest and checks hammer one key while its counter is dropped again and again; at the
/// end the counter equals a recount from the store.
pub async fn engine_counters_equal_recount_under_races<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let store = MemoryStore::new();
    let (engine, _) = engine_with_cache(&store, &cache);
    let t = ns.tenant("a");
    let f = feature("f");
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("1000000"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    let k = CounterKey {
        scope: UsageScope {
            tenant_id: t.clone(),
            resource: None,
            feature: f.clone(),
        },
        window: day(),
    };
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let engine = engine.clone();
        let t = t.clone();
        let ns = ns.clone();
        workers.push(tokio::spawn(async move {
            for b in 0..40 {
                let batch = (0..5)
                    .map(|i| {
                        NewEvent::new(t.as_str(), "r", "f")
                            .with_id(ns.id(&format!("w{w}-{b}-{i}")).as_str())
                            .with_quantity(qty("0.3"))
                            .with_timestamp(at("2025-11-20T01:00:00Z"))
                    })
                    .collect();
                engine.ingest(batch).await.expect("ingest");
            }
        }));
    }
    let checker = {
        let engine = engine.clone();
        let (t, f, done) = (t.clone(), f.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                engine
                    .validate(ValidateRequest::new(t.clone(), f.clone()))
                    .await
                    .expect("validate");
                tokio::task::yield_now().await;
            }
        })
    };
    let forgetter = {
        let (cache, k, done) = (cache.clone(), k.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                cache.forget(&k).await.expect("forget");
                tokio::task::yield_now().await;
            }
        })
    };
    for w in workers {
        w.await.expect("worker");
    }
    done.store(true, Ordering::SeqCst);
    checker.await.expect("checker");
    forgetter.await.expect("forgetter");
    let recount = store.sum_usage(&k.scope, k.window).await.expect("sum");
    assert_eq!(recount, qty("240"));
    let d = engine
        .validate(ValidateRequest::new(t, f))
        .await
        .expect("validate");
    assert_eq!(d.current_usage, recount);
    if let Some(cached) = cache.usage(&k).await.expect("usage") {
        assert_eq!(cached, recount);
    }
}

/// 64 consumes racing for a limit of 10 through an engine with this cache admit exactly 10.
pub async fn consume_through_cache_is_atomic<C: QuotaCache + Clone>(cache: C) {
    let ns = Namespace::new();
    let store = MemoryStore::new();
    let (engine, _) = engine_with_cache(&store, &cache);
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
    let mut handles = Vec::new();
    for _ in 0..64 {
        let engine = engine.clone();
        let r = ValidateRequest::new(t.clone(), f.clone())
            .with_resource(resource("r"))
            .consuming();
        handles.push(tokio::spawn(async move {
            engine.validate(r).await.expect("consume").allowed
        }));
    }
    let mut admitted = 0;
    for h in handles {
        admitted += usize::from(h.await.expect("task"));
    }
    assert_eq!(admitted, 10);
    let d = engine
        .validate(ValidateRequest::new(t, f))
        .await
        .expect("validate");
    assert_eq!(d.current_usage, qty("10"));
}
