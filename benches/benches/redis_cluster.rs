//! The quota cache on one Redis server against a private Redis Cluster (3 primaries and 3
//! replicas on loopback ports of this machine), on a realistic shape: 2,000 tenants and 2
//! features under a monthly `*` quota each, so 4,000 streams whose counters spread over every
//! hash slot.
//!
//! Per cache, two fixed runs of 8 seconds through `Metering` on a `MemoryStore`:
//!
//! - **checks**: `validate` from 32 tasks, each on a random tenant and feature, after a pass
//!   that rebuilds every counter, so each check is one script call;
//! - **ingest**: batches of 100 events (random tenants and features, timestamps over the last
//!   3 days, metadata on every event) from 4 tasks: each batch brackets its streams with
//!   `begin_ingest` and `end_ingest` (one script per stream on the cluster, and a `WAIT` for
//!   the replica on each `end_ingest` by default).
//!
//! Caches: the standalone server in `METERING_TEST_REDIS_URL`; the cluster with
//! `wait_replicas` 1 (its default); the cluster with `wait_replicas` 0. Each run prints a
//! `REPORT` line (rate, p50, p99) and its ratio to the standalone server.
//!
//! Run with `METERING_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p metering-benches
//! --bench redis_cluster` (`redis-server` and `redis-cli` on `PATH` for the cluster).

#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metering_benches::percentile;
use metering_core::{
    Clock, MemoryStore, Metering, NewEvent, Quantity, QuotaPeriod, QuotaScope, QuotaSpec,
    SystemClock, ValidateRequest,
};
use metering_store_redis::{RedisConfig, RedisQuotaCache};
use metering_testkit::private::PrivateRedisCluster;

const TENANTS: u64 = 2_000;
const FEATURES: [&str; 2] = ["search", "export"];
const CHECK_TASKS: u64 = 32;
const INGEST_TASKS: u64 = 4;
const BATCH: u64 = 100;
const RUN: Duration = Duration::from_secs(8);

/// A small deterministic generator (xorshift), one per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn tenant(i: u64) -> String {
    format!("org_{i:05}")
}

async fn engine(config: RedisConfig) -> Metering {
    let cache = RedisQuotaCache::open(config).await.expect("a valid URL");
    metering_core::QuotaCache::health(&cache)
        .await
        .expect("redis answers");
    let engine = Metering::builder(MemoryStore::new())
        .quota_cache(cache)
        .build();
    for f in FEATURES {
        engine
            .upsert_quota(QuotaSpec::new(
                QuotaScope::AllTenants,
                metering_core::Feature::new(f).expect("valid"),
                Quantity::from_units(1_000_000_000),
                QuotaPeriod::Monthly,
            ))
            .await
            .expect("quota");
    }
    // Rebuild every counter, so checks read them and ingests add to them.
    for t in 0..TENANTS {
        for f in FEATURES {
            engine.validate(request(t, f)).await.expect("validate");
        }
    }
    engine
}

fn request(t: u64, f: &str) -> ValidateRequest {
    ValidateRequest::new(
        metering_core::TenantId::new(tenant(t)).expect("valid"),
        metering_core::Feature::new(f).expect("valid"),
    )
}

/// Runs `tasks` tasks calling `op` until the run ends; (operations, elapsed, latencies).
async fn run<F, Fut>(tasks: u64, op: F) -> (u64, Duration, Vec<Duration>)
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let until = Instant::now() + RUN;
    let start = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (op, latencies) = (op.clone(), latencies.clone());
        handles.push(tokio::spawn(async move {
            let mut own = Vec::new();
            let mut done = 0;
            let mut round = 0;
            while Instant::now() < until {
                let t = Instant::now();
                done += op(task, round).await;
                own.push(t.elapsed());
                round += 1;
            }
            latencies.lock().expect("not poisoned").extend(own);
            done
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.expect("task");
    }
    let elapsed = start.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    latencies.sort();
    (total, elapsed, latencies)
}

/// Both workloads on one cache; (checks/s, events/s).
async fn measure(name: &str, config: RedisConfig, baseline: Option<(f64, f64)>) -> (f64, f64) {
    let engine = engine(config).await;
    let checks = {
        let engine = engine.clone();
        run(CHECK_TASKS, move |task, round| {
            let engine = engine.clone();
            async move {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (task << 32) ^ round);
                let (t, f) = (rng.next(TENANTS), FEATURES[usize::from(rng.next(2) == 1)]);
                engine.validate(request(t, f)).await.expect("validate");
                1
            }
        })
        .await
    };
    let ids = Arc::new(AtomicU64::new(0));
    let ingest = {
        let engine = engine.clone();
        run(INGEST_TASKS, move |task, round| {
            let (engine, ids) = (engine.clone(), ids.clone());
            async move {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (task << 40) ^ round);
                let now = SystemClock.now();
                let batch: Vec<NewEvent> = (0..BATCH)
                    .map(|_| {
                        let id = ids.fetch_add(1, Ordering::Relaxed);
                        let t = rng.next(TENANTS);
                        let f = FEATURES[usize::from(rng.next(2) == 1)];
                        let ago = i64::try_from(rng.next(3 * 86_400)).unwrap_or(0);
                        let mut metadata = serde_json::Map::new();
                        metadata.insert("request_id".into(), format!("req-{id}").into());
                        metadata.insert(
                            "region".into(),
                            ["eu", "us", "ap"][usize::try_from(id % 3).unwrap_or(0)].into(),
                        );
                        NewEvent::new(tenant(t), "api", f)
                            .with_id(format!("ev-{task}-{id}"))
                            .with_quantity(Quantity::from_units(1 + id % 5))
                            .with_timestamp(now - chrono::Duration::seconds(ago))
                            .with_metadata(metadata)
                    })
                    .collect();
                engine.ingest(batch).await.expect("ingest");
                BATCH
            }
        })
        .await
    };
    #[allow(clippy::cast_precision_loss)]
    let rate = |(n, elapsed, _): &(u64, Duration, Vec<Duration>)| *n as f64 / elapsed.as_secs_f64();
    let (check_rate, ingest_rate) = (rate(&checks), rate(&ingest));
    let ratio = |value: f64, base: Option<f64>| {
        base.map_or(String::new(), |b| {
            format!(" ({:.2}x the standalone server)", value / b)
        })
    };
    println!(
        "REPORT {name}: checks {check_rate:.0}/s, p50 {:?}, p99 {:?}{}",
        percentile(&checks.2, 0.5),
        percentile(&checks.2, 0.99),
        ratio(check_rate, baseline.map(|b| b.0)),
    );
    println!(
        "REPORT {name}: ingest {ingest_rate:.0} events/s in batches of {BATCH}, batch p50 {:?}, p99 {:?}{}",
        percentile(&ingest.2, 0.5),
        percentile(&ingest.2, 0.99),
        ratio(ingest_rate, baseline.map(|b| b.1)),
    );
    (check_rate, ingest_rate)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let Some(url) = metering_testkit::redis_url() else {
        println!("SKIPPED redis cluster bench: METERING_TEST_REDIS_URL not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = || {
        format!(
            "metering-bench:{:016x}:",
            SystemClock.now().timestamp_micros()
        )
    };
    let standalone = rt.block_on(measure(
        "standalone",
        RedisConfig::default()
            .with_url(&url)
            .with_key_prefix(prefix()),
        None,
    ));
    let Some(cluster) = PrivateRedisCluster::start() else {
        return;
    };
    for (name, wait) in [
        ("cluster, wait_replicas 1", 1),
        ("cluster, wait_replicas 0", 0),
    ] {
        rt.block_on(measure(
            name,
            RedisConfig::default()
                .with_url(cluster.url())
                .with_key_prefix(prefix())
                .with_wait_replicas(wait),
            Some(standalone),
        ));
    }
}
