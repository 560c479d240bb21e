//! Quota checks through the Redis quota cache and the in-memory one.
//!
//! - `memory_cache/usage`: one `MemoryQuotaCache::usage` lookup (the hot path of a check with
//!   the in-memory cache), single-threaded. Target: at least 1,000,000 per second.
//! - `redis_validate/32_tasks`: `Metering::validate` (quota lookup in a `MemoryStore`, usage
//!   from Redis) from 32 concurrent tasks in one process. Target: at least 20,000 checks per
//!   second with p99 under 2 ms. Besides criterion's figures it runs a fixed 5-second load and
//!   prints checks/s and p50/p99, then runs `redis-benchmark` with a trivial `EVALSHA` (32
//!   clients, 100,000 requests) against the same server and prints the ratio.
//!
//! Run with `METERING_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo bench -p metering-benches
//! --bench redis`. Without the variable the Redis part prints `SKIPPED` and only the memory
//! part runs. `redis-benchmark` (shipped with redis-server) must be on `PATH` for the ratio.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use metering_benches::percentile;
use metering_core::{
    Clock, CounterKey, Feature, MemoryQuotaCache, MemoryStore, Metering, QuotaCache, QuotaPeriod,
    QuotaScope, QuotaSpec, TenantId, Tz, UsageScope, ValidateRequest,
};
use metering_store_redis::{RedisConfig, RedisQuotaCache, redis};
use tokio::runtime::Runtime;

const TASKS: usize = 32;

fn tenant() -> TenantId {
    TenantId::new("bench-tenant").expect("valid")
}

fn feature() -> Feature {
    Feature::new("search").expect("valid")
}

fn counter_key() -> CounterKey {
    let now = metering_core::SystemClock.now();
    CounterKey {
        scope: UsageScope {
            tenant_id: tenant(),
            resource: None,
            feature: feature(),
        },
        window: QuotaPeriod::Monthly.window(now, Tz::UTC),
    }
}

fn memory_cache(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let cache = MemoryQuotaCache::new();
    let key = counter_key();
    // A realistic cache: the counter under test among many other tenants' counters.
    rt.block_on(async {
        for t in 0..10_000 {
            let mut other = key.clone();
            other.scope.tenant_id = TenantId::new(format!("tenant-{t}")).expect("valid");
            let token = cache
                .begin_rebuild(&other)
                .await
                .expect("begin")
                .expect("token");
            cache
                .finish_rebuild(&other, token, metering_core::Quantity::from_units(t))
                .await
                .expect("finish");
        }
        let token = cache
            .begin_rebuild(&key)
            .await
            .expect("begin")
            .expect("token");
        cache
            .finish_rebuild(&key, token, metering_core::Quantity::from_units(42))
            .await
            .expect("finish");
    });
    let mut group = c.benchmark_group("memory_cache");
    group.throughput(Throughput::Elements(1));
    group.bench_function("usage", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(cache.usage(black_box(&key)).await.expect("usage"));
                }
                start.elapsed()
            })
        });
    });
    group.finish();

    // A fixed run for the report line.
    let n = 2_000_000_u32;
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            black_box(cache.usage(black_box(&key)).await.expect("usage"));
        }
        start.elapsed()
    });
    println!(
        "REPORT memory_cache usage: {:.0} lookups/s single-threaded (target >= 1,000,000)",
        f64::from(n) / elapsed.as_secs_f64()
    );
}

struct RedisSetup {
    rt: Runtime,
    engine: Metering,
    url: String,
}

fn redis_setup(url: String) -> RedisSetup {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let engine = rt.block_on(async {
        let prefix = format!("metering-bench:{:016x}:", rand_suffix());
        let cache = RedisQuotaCache::open(
            RedisConfig::default()
                .with_url(&url)
                .with_key_prefix(prefix),
        )
        .await
        .expect("a valid URL");
        cache.health().await.expect("redis answers");
        let engine = Metering::builder(MemoryStore::new())
            .quota_cache(cache)
            .build();
        engine
            .upsert_quota(QuotaSpec::new(
                QuotaScope::Tenant(tenant()),
                feature(),
                metering_core::Quantity::from_units(1_000_000),
                QuotaPeriod::Monthly,
            ))
            .await
            .expect("quota");
        // The first check rebuilds the counter; every later one reads it from Redis.
        engine.validate(request()).await.expect("validate");
        engine
    });
    RedisSetup { rt, engine, url }
}

fn rand_suffix() -> u64 {
    let nanos = metering_core::SystemClock
        .now()
        .timestamp_nanos_opt()
        .unwrap_or(0);
    u64::try_from(nanos).unwrap_or(0) ^ u64::from(std::process::id())
}

fn request() -> ValidateRequest {
    ValidateRequest::new(tenant(), feature())
}

/// Runs `TASKS` tasks, each checking `per_task` times (or until `until`); returns the number
/// of checks, the elapsed time and every latency.
async fn load(
    engine: &Metering,
    per_task: u64,
    until: Option<Instant>,
) -> (u64, Duration, Vec<Duration>) {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let engine = engine.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            let mut own = Vec::new();
            let mut done = 0;
            while done < per_task && until.is_none_or(|u| Instant::now() < u) {
                let t = Instant::now();
                let d = engine.validate(request()).await.expect("validate");
                own.push(t.elapsed());
                black_box(d);
                done += 1;
            }
            latencies.lock().expect("not poisoned").extend(own);
            done
        }));
    }
    let mut checks = 0;
    for task in tasks {
        checks += task.await.expect("task");
    }
    let elapsed = start.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    (checks, elapsed, latencies)
}

fn redis_validate(c: &mut Criterion) {
    let Some(url) = metering_testkit::redis_url() else {
        println!("SKIPPED redis bench: METERING_TEST_REDIS_URL not set");
        return;
    };
    let setup = redis_setup(url);
    let mut group = c.benchmark_group("redis_validate");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("32_tasks", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS as u64).max(1);
            let (checks, elapsed, _) = setup.rt.block_on(load(&setup.engine, per_task, None));
            // Scale to the time `iters` checks took at the measured rate.
            elapsed.mul_f64(iters as f64 / checks as f64)
        });
    });
    group.finish();

    // The report: a fixed 5-second load.
    let (checks, elapsed, mut latencies) = setup.rt.block_on(load(
        &setup.engine,
        u64::MAX,
        Some(Instant::now() + Duration::from_secs(5)),
    ));
    latencies.sort();
    #[allow(clippy::cast_precision_loss)]
    let rate = checks as f64 / elapsed.as_secs_f64();
    println!(
        "REPORT redis validate, {TASKS} tasks: {rate:.0} checks/s, p50 {:?}, p99 {:?}, max {:?} \
         ({checks} checks; target >= 20,000 checks/s, p99 < 2 ms)",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    match redis_benchmark_evalsha(&setup) {
        Some(baseline) => println!(
            "REPORT redis-benchmark EVALSHA (trivial script, -c 32 -n 100000): {baseline:.0} req/s; \
             validate / EVALSHA = {:.2}",
            rate / baseline
        ),
        None => {
            println!("SKIPPED redis-benchmark comparison: redis-benchmark not on PATH or failed")
        }
    }
}

/// Loads a trivial script and runs `redis-benchmark` on it; requests per second.
fn redis_benchmark_evalsha(setup: &RedisSetup) -> Option<f64> {
    let info = redis::Client::open(setup.url.as_str()).ok()?;
    let sha: String = setup.rt.block_on(async {
        let mut conn = info.get_multiplexed_async_connection().await.ok()?;
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg("return 1")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(sha)
    })?;
    let addr = info.get_connection_info().addr().to_string();
    let (host, port) = addr.rsplit_once(':')?;
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-n", "100000", "-c", "32", "-q"])
        .args(["EVALSHA", &sha, "0"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // "EVALSHA ...: 98039.22 requests per second, p50=0.175 msec"; progress lines end in \r.
    let line = text
        .split(['\r', '\n'])
        .rfind(|l| l.contains("requests per second"))?;
    let rate = line
        .split(": ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    println!("redis-benchmark: {}", line.trim());
    Some(rate)
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = memory_cache, redis_validate
}
criterion_main!(benches);
