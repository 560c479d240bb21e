//! Redis-specific parts of the counter protocol: expiring marks, deleted keys, dropping all counters,
//! key naming and counter lifetimes.

mod common;

use std::time::Duration;

use metering_core::{
    CounterKey, Event, Ingested, Quantity, QuotaCache, UsageScope, UsageStream, Window,
};
use metering_store_redis::redis::AsyncCommands;
use metering_store_redis::{RedisConfig, RedisQuotaCache};
use metering_testkit::fixtures::{Namespace, event, feature, qty, resource};

/// The real time: counter lifetimes are measured by the Redis server's clock.
fn wall_now() -> chrono::DateTime<chrono::Utc> {
    metering_core::Clock::now(&metering_core::SystemClock)
}

fn window() -> Window {
    let now = wall_now();
    Window {
        start: now - chrono::Duration::hours(1),
        end: now + chrono::Duration::days(2),
    }
}

fn key(tenant: &str, feat: &str, res: Option<&str>) -> CounterKey {
    CounterKey {
        scope: UsageScope {
            tenant_id: metering_core::TenantId::new(tenant).expect("valid"),
            resource: res.map(resource),
            feature: feature(feat),
        },
        window: window(),
    }
}

fn ev(ns: &Namespace, k: &CounterKey, id: &str, q: &str) -> Event {
    let mut e = event(
        ns.id(id),
        &k.scope.tenant_id,
        "r",
        k.scope.feature.as_str(),
        qty(q),
        wall_now(),
    );
    e.created_at = e.timestamp;
    e
}

async fn rebuild(cache: &RedisQuotaCache, k: &CounterKey, usage: Quantity) -> bool {
    let token = cache
        .begin_rebuild(k)
        .await
        .expect("begin")
        .expect("a token when idle");
    cache.finish_rebuild(k, token, usage).await.expect("finish")
}

#[tokio::test]
async fn overlapping_ingests_keep_the_stream_busy_until_the_last_ends() {
    let Some(cache) = common::cache().await else {
        return;
    };
    let k = key(Namespace::new().tenant("a").as_str(), "f", None);
    let streams = vec![k.stream()];
    cache.begin_ingest(&streams).await.expect("begin 1");
    cache.begin_ingest(&streams).await.expect("begin 2");
    cache
        .end_ingest(&streams, Ingested::NONE)
        .await
        .expect("end 1");
    assert_eq!(cache.begin_rebuild(&k).await.expect("rebuild"), None);
    cache
        .end_ingest(&streams, Ingested::NONE)
        .await
        .expect("end 2");
    assert!(cache.begin_rebuild(&k).await.expect("rebuild").is_some());
}

#[tokio::test]
async fn an_ingest_that_outlives_its_mark_drops_the_counters_instead_of_adding() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let cache = RedisQuotaCache::open(
        RedisConfig::default()
            .with_url(&url)
            .with_key_prefix(common::unique_prefix())
            .with_ingest_mark_ttl(Duration::from_millis(200)),
    )
    .await
    .expect("open");
    let ns = Namespace::new();
    let k = key(ns.tenant("a").as_str(), "f", None);
    let streams = vec![k.stream()];
    cache.begin_ingest(&streams).await.expect("begin");
    assert_eq!(cache.begin_rebuild(&k).await.expect("rebuild"), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The mark expired: a rebuild runs and (say) already sees the committed event.
    assert!(rebuild(&cache, &k, qty("5")).await);
    let events = [ev(&ns, &k, "1", "5")];
    cache
        .end_ingest(
            &streams,
            Ingested {
                events: &events,
                inserted: &[true],
                recount: false,
            },
        )
        .await
        .expect("end");
    assert_eq!(
        cache.usage(&k).await.expect("usage"),
        None,
        "never 10: the counter is dropped and rebuilt from the store"
    );
}

#[tokio::test]
async fn deleted_keys_never_revive_an_old_token() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let cache = common::cache_at(&url, &prefix).await;
    let mut raw = common::raw_connection(&url).await;
    let k = key(Namespace::new().tenant("a").as_str(), "f", None);
    let old = cache
        .begin_rebuild(&k)
        .await
        .expect("begin")
        .expect("token");
    for _ in 0..3 {
        // Delete everything and let versions be handed out again.
        for key in common::keys(&mut raw, &format!("{prefix}*")).await {
            let _: () = raw.del(key).await.expect("DEL");
        }
        let fresh = cache
            .begin_rebuild(&k)
            .await
            .expect("begin")
            .expect("token");
        assert_ne!(fresh, old);
        cache.begin_ingest(&[k.stream()]).await.expect("begin");
        cache
            .end_ingest(&[k.stream()], Ingested::NONE)
            .await
            .expect("end");
    }
    assert!(
        !cache
            .finish_rebuild(&k, old, qty("1"))
            .await
            .expect("finish")
    );
    assert_eq!(cache.usage(&k).await.expect("usage"), None);
    assert!(rebuild(&cache, &k, qty("2")).await);
    assert_eq!(cache.usage(&k).await.expect("usage"), Some(qty("2")));
}

#[tokio::test]
async fn dropping_all_counters_reaches_every_handle() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let one = common::cache_at(&url, &prefix).await;
    let two = common::cache_at(&url, &prefix).await;
    let k = key(Namespace::new().tenant("a").as_str(), "f", Some("r"));
    assert!(rebuild(&one, &k, qty("3")).await);
    assert_eq!(two.usage(&k).await.expect("usage"), Some(qty("3")));
    // Other prefixes keep theirs.
    let other = common::cache_at(&url, &common::unique_prefix()).await;
    assert!(rebuild(&other, &k, qty("4")).await);
    one.drop_all_counters().await.expect("drop");
    assert_eq!(two.usage(&k).await.expect("usage"), None);
    assert_eq!(one.usage(&k).await.expect("usage"), None);
    assert_eq!(other.usage(&k).await.expect("usage"), Some(qty("4")));
    // A token issued before the drop is stale after it.
    let token = two.begin_rebuild(&k).await.expect("begin").expect("token");
    one.drop_all_counters().await.expect("drop");
    assert!(
        !two.finish_rebuild(&k, token, qty("3"))
            .await
            .expect("finish")
    );
}

#[tokio::test]
async fn names_with_separators_and_unicode_do_not_collide() {
    let Some(cache) = common::cache().await else {
        return;
    };
    let ns = Namespace::new();
    let base = ns.tenant("x");
    let keys = [
        key(&format!("{base}:a:b"), "c", None),
        key(&format!("{base}:a"), "b:c", None),
        key(&format!("{base}:a"), "b:c", Some("*")),
        key(&format!("{base}:a"), "b:c", Some("|1|2|*")),
        key(&format!("{base}:ü🚀"), "ß|x", Some("r")),
    ];
    for (i, k) in keys.iter().enumerate() {
        let units = u64::try_from(i).expect("small") + 1;
        assert!(rebuild(&cache, k, Quantity::from_units(units)).await);
    }
    for (i, k) in keys.iter().enumerate() {
        let units = u64::try_from(i).expect("small") + 1;
        assert_eq!(
            cache.usage(k).await.expect("usage"),
            Some(Quantity::from_units(units)),
            "{k:?}"
        );
    }
    // An event of resource "*" counts for the `Some("*")` counter and the any-resource one.
    let k = &keys[1];
    let mut e = ev(&ns, k, "star", "1");
    e.resource = resource("*");
    let streams = UsageStream::of_batch(std::slice::from_ref(&e));
    cache.begin_ingest(&streams).await.expect("begin");
    cache
        .end_ingest(
            &streams,
            Ingested {
                events: &[e],
                inserted: &[true],
                recount: false,
            },
        )
        .await
        .expect("end");
    assert_eq!(cache.usage(&keys[1]).await.expect("u"), Some(qty("3")));
    assert_eq!(cache.usage(&keys[2]).await.expect("u"), Some(qty("4")));
    assert_eq!(cache.usage(&keys[3]).await.expect("u"), Some(qty("4")));
    assert_eq!(cache.usage(&keys[0]).await.expect("u"), Some(qty("1")));
}

#[tokio::test]
async fn counters_live_as_long_as_their_window() {
    let Some(url) = metering_testkit::redis_url() else {
        return;
    };
    let prefix = common::unique_prefix();
    let cache = common::cache_at(&url, &prefix).await;
    let mut raw = common::raw_connection(&url).await;
    let k = key(Namespace::new().tenant("a").as_str(), "f", None);
    assert!(rebuild(&cache, &k, qty("1")).await);
    let hashes = common::keys(&mut raw, &format!("{prefix}{{*}}:c")).await;
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    let ttl_ms: i64 = raw.pttl(&hashes[0]).await.expect("PTTL");
    let until_end = (k.window.end - wall_now()).num_milliseconds();
    assert!(
        (until_end - 60_000..=until_end + 5_000).contains(&ttl_ms),
        "ttl {ttl_ms} ms, window ends in {until_end} ms"
    );
}

#[tokio::test]
async fn oversized_counters_are_not_cached() {
    let Some(cache) = common::cache().await else {
        return;
    };
    let k = key(Namespace::new().tenant("a").as_str(), "f", None);
    let huge = Quantity::from_units(u64::MAX);
    assert!(!rebuild(&cache, &k, huge).await);
    assert_eq!(cache.usage(&k).await.expect("usage"), None);
}
