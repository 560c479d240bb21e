//! PostgreSQL store benchmarks: batch ingest (1,000 events a call, rollups maintained)
//! against a bare `COPY` of the same rows in the same run, an aggregate over 10 million
//! events (30 days, daily, grouped by tenant and resource), and a cursor page of 50 at depth
//! one million.
//!
//! Run with `METERING_TEST_POSTGRES_URL=postgres://... cargo bench -p metering-benches --bench
//! postgres`; without the variable it prints a SKIPPED line. The 10-million-event data set is
//! seeded once (with `generate_series`, a few minutes) into the schema `bench_pg_10m` and
//! reused by later runs; the ingest benchmarks use a fresh schema `bench_pg_ingest` (set
//! `METERING_BENCH_PG_SKIP_INGEST=1` to run only the read benchmarks).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput};
use metering_core::{
    AggregateQuery, Cursor, Event, EventFilter, EventId, EventQuery, Feature, GroupBy, Metadata,
    Paging, Quantity, Resource, Store, TenantId, WindowType,
};
use metering_store_postgres::sqlx::{self, Row};
use metering_store_postgres::{PostgresConfig, PostgresStore};
use tokio::runtime::Runtime;

const SEED_SCHEMA: &str = "bench_pg_10m";
const INGEST_SCHEMA: &str = "bench_pg_ingest";
const SEED_EVENTS: i64 = 10_000_000;
const TENANTS: u64 = 100;
const RESOURCES: u64 = 4;
const FEATURES: u64 = 5;
const BATCH: u64 = 1_000;

/// 2025-09-01T00:00:00Z: the seeded 30 days start here.
fn seed_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_756_684_800, 0).expect("valid")
}

/// The shape of an ingest stream.
#[derive(Clone, Copy)]
struct Profile {
    name: &'static str,
    tenants: u64,
    resources: u64,
    features: u64,
    /// How far apart consecutive events are, in milliseconds.
    step_ms: u64,
}

/// Typical: 50 tenants x 2 resources x 2 features, a batch spans 1 minute (hot rollup rows).
const HOT: Profile = Profile {
    name: "hot_keys",
    tenants: 50,
    resources: 2,
    features: 2,
    step_ms: 60,
};

/// Worst case: 2,000 triples, a batch spans one hour, nearly every event its own rollup row.
const SPREAD: Profile = Profile {
    name: "spread_keys",
    tenants: TENANTS,
    resources: RESOURCES,
    features: FEATURES,
    step_ms: 3_600,
};

/// Event `n` of an ingest stream after 2025-11-20T10:00Z, with small metadata.
fn event(profile: Profile, run: u64, n: u64) -> Event {
    let start = DateTime::from_timestamp(1_763_632_800, 0).expect("valid");
    let at =
        start + chrono::Duration::milliseconds(i64::try_from(n * profile.step_ms).expect("fits"));
    let mut metadata = Metadata::new();
    metadata.insert(
        "region".into(),
        serde_json::Value::String("eu-west-1".into()),
    );
    metadata.insert("request".into(), serde_json::Value::from(n));
    Event {
        id: EventId::new(format!("{}-{run:x}-{n:09}", profile.name)).expect("valid"),
        tenant_id: TenantId::new(format!("tenant-{:03}", n % profile.tenants)).expect("valid"),
        resource: Resource::new(format!("res-{}", (n / 7) % profile.resources)).expect("valid"),
        feature: Feature::new(format!("feat-{}", (n / 3) % profile.features)).expect("valid"),
        quantity: Quantity::from_parts(u128::from(n % 10 + 1), u128::from(n % 1000) * 1_000_000),
        timestamp: at,
        metadata: Some(metadata),
        created_at: at,
        amends: None,
        voided_at: None,
        void_reason: None,
    }
}

/// The batch as the text format of `COPY`.
fn copy_text(events: &[Event]) -> String {
    let mut out = String::with_capacity(events.len() * 160);
    for e in events {
        let meta = e.metadata.as_ref().map_or_else(
            || "\\N".to_owned(),
            |m| serde_json::to_string(m).expect("json"),
        );
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            e.id.as_str(),
            e.tenant_id.as_str(),
            e.resource.as_str(),
            e.feature.as_str(),
            e.quantity,
            e.timestamp.to_rfc3339(),
            meta.replace('\\', "\\\\"),
            e.created_at.to_rfc3339(),
        )
        .expect("write to a string");
    }
    out
}

/// Rollup deltas are compacted every this many batches, inside the store's timed part, not
/// by the store's background task: the cost of compaction counts against ingest. (In a
/// server the background task compacts once a second, about every 60 batches at these
/// rates, which costs less.)
const COMPACT_EVERY: u64 = 10;

async fn open(url: &str, schema: &str) -> PostgresStore {
    PostgresStore::open(
        PostgresConfig::new(url)
            .with_schema(schema)
            .with_max_connections(4)
            .with_compaction_interval(None),
    )
    .await
    .expect("the bench database opens")
}

async fn exec(store: &PostgresStore, sql: &'static str) {
    sqlx::query(sql).execute(store.pool()).await.expect(sql);
}

/// Seeds 10 million events over 30 days into `bench_pg_10m`, once.
async fn seeded(url: &str) -> PostgresStore {
    let store = open(url, SEED_SCHEMA).await;
    exec(
        &store,
        "CREATE TABLE IF NOT EXISTS bench_seed (events BIGINT NOT NULL)",
    )
    .await;
    let done: Option<i64> = sqlx::query_scalar("SELECT max(events) FROM bench_seed")
        .fetch_one(store.pool())
        .await
        .expect("seed marker");
    if done == Some(SEED_EVENTS) {
        return store;
    }
    println!("seeding {SEED_EVENTS} events into schema {SEED_SCHEMA} (once; a few minutes)...");
    let started = Instant::now();
    for sql in [
        "TRUNCATE events, event_ids, rollup_deltas, rollups_15m, rollups_1d, bench_seed",
        "SELECT metering_ensure_partition(TIMESTAMPTZ '2025-09-01 00:00:00+00')",
    ] {
        exec(&store, sql).await;
    }
    // 10M events 259.2 ms apart over 30 days, in ingest order.
    sqlx::query(
        "INSERT INTO events (id, tenant_id, resource, feature, quantity, ts, metadata, created_at)
         SELECT 'e' || lpad(i::text, 9, '0'),
                'tenant-' || lpad((i % 100)::text, 3, '0'),
                'res-' || ((i / 7) % 4),
                'feat-' || ((i / 3) % 5),
                (i % 10 + 1) + (i % 1000) / 1000.0,
                TIMESTAMPTZ '2025-09-01 00:00:00+00' + i * INTERVAL '259.2 milliseconds',
                CASE WHEN i % 4 = 0 THEN json_build_object('request', i) END,
                TIMESTAMPTZ '2025-09-01 00:00:00+00' + i * INTERVAL '259.2 milliseconds'
         FROM generate_series(0::bigint, $1 - 1) AS i",
    )
    .bind(SEED_EVENTS)
    .execute(store.pool())
    .await
    .expect("seed events");
    for sql in [
        "INSERT INTO event_ids (id, ts) SELECT id, ts FROM events",
        "INSERT INTO rollups_15m SELECT tenant_id, feature, resource,
             date_bin('15 minutes', ts, TIMESTAMPTZ 'epoch'), sum(quantity), count(*)
         FROM events GROUP BY 1, 2, 3, 4",
        "INSERT INTO rollups_1d SELECT tenant_id, feature, resource,
             date_bin('1 day', bucket, TIMESTAMPTZ 'epoch'), sum(quantity), sum(events)
         FROM rollups_15m GROUP BY 1, 2, 3, 4",
        "VACUUM ANALYZE events",
        "VACUUM ANALYZE event_ids",
        "VACUUM ANALYZE rollups_15m",
        "VACUUM ANALYZE rollups_1d",
        "INSERT INTO bench_seed VALUES (10000000)",
    ] {
        exec(&store, sql).await;
    }
    println!("seeded in {:.0?}", started.elapsed());
    store
}

/// Median and 95th percentile of `runs` timed calls.
fn percentiles(
    rt: &Runtime,
    runs: usize,
    mut call: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    let _ = rt;
    let mut times: Vec<Duration> = (0..runs).map(|_| call()).collect();
    times.sort();
    (times[runs / 2], times[runs * 95 / 100])
}

/// One COPY of `batch` into the baseline table.
async fn copy_batch(store: &PostgresStore, batch: &[Event]) {
    let text = copy_text(batch);
    let mut conn = store.pool().acquire().await.expect("connection");
    let mut copy = conn
        .copy_in_raw("COPY copy_baseline FROM STDIN")
        .await
        .expect("copy");
    copy.send(text.as_bytes()).await.expect("send");
    copy.finish().await.expect("finish");
}

/// Ingests `batch` (the `round`th) and, every [`COMPACT_EVERY`] rounds, compacts the rollup
/// deltas.
async fn insert_and_compact(store: &PostgresStore, batch: &[Event], round: u64) {
    let outcome = store.insert_events(batch).await.expect("insert");
    assert_eq!(outcome.inserted_count(), batch.len());
    if round % COMPACT_EVERY == 0 {
        store.compact_rollups().await.expect("compact");
    }
}

/// The machine is shared, so load drifts between criterion's separate runs; this pairs them:
/// each round writes one batch with the store and one with COPY, back to back.
fn paired(rt: &Runtime, store: &PostgresStore, profile: Profile, rounds: u64) {
    let (mut store_time, mut copy_time) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds {
        let first = 10_000_000 + round * BATCH;
        let batch: Vec<Event> = (first..first + BATCH)
            .map(|n| event(profile, 3, n))
            .collect();
        let began = Instant::now();
        rt.block_on(insert_and_compact(store, &batch, round));
        store_time += began.elapsed();
        let batch: Vec<Event> = (first..first + BATCH)
            .map(|n| event(profile, 4, n))
            .collect();
        let began = Instant::now();
        rt.block_on(copy_batch(store, &batch));
        copy_time += began.elapsed();
    }
    let events = f64::from(u32::try_from(rounds * BATCH).expect("fits"));
    println!(
        "paired ingest {} ({rounds} x {BATCH}): store {:.0} events/s, COPY {:.0} events/s, store/COPY = {:.0} %",
        profile.name,
        events / store_time.as_secs_f64(),
        events / copy_time.as_secs_f64(),
        100.0 * copy_time.as_secs_f64() / store_time.as_secs_f64()
    );
}

fn ingest(c: &mut Criterion, rt: &Runtime, url: &str) {
    let store = rt.block_on(async {
        let admin = open(url, INGEST_SCHEMA).await;
        exec(&admin, "DROP SCHEMA IF EXISTS bench_pg_ingest CASCADE").await;
        admin.close().await;
        let store = open(url, INGEST_SCHEMA).await;
        for sql in [
            "CREATE TABLE copy_baseline (id TEXT COLLATE \"C\" NOT NULL, tenant_id TEXT COLLATE \"C\" NOT NULL,
                 resource TEXT COLLATE \"C\" NOT NULL, feature TEXT COLLATE \"C\" NOT NULL,
                 quantity NUMERIC(39, 9) NOT NULL, ts TIMESTAMPTZ NOT NULL, metadata JSONB,
                 created_at TIMESTAMPTZ NOT NULL)",
            "CREATE INDEX ON copy_baseline (ts DESC, id DESC)",
            "CREATE INDEX ON copy_baseline (tenant_id, ts DESC, id DESC)",
        ] {
            exec(&store, sql).await;
        }
        store
    });
    let mut group = c.benchmark_group("postgres_ingest");
    group.throughput(Throughput::Elements(BATCH));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(15));
    for profile in [HOT, SPREAD] {
        let mut next = 0u64;
        group.bench_function(format!("store_insert_events_1000/{}", profile.name), |b| {
            b.to_async(rt).iter_batched(
                || {
                    let batch: Vec<Event> =
                        (next..next + BATCH).map(|n| event(profile, 1, n)).collect();
                    next += BATCH;
                    (batch, next / BATCH)
                },
                |(batch, round)| {
                    let store = store.clone();
                    async move { insert_and_compact(&store, &batch, round).await }
                },
                BatchSize::PerIteration,
            );
        });
        let mut next = 0u64;
        group.bench_function(format!("bare_copy_1000/{}", profile.name), |b| {
            b.to_async(rt).iter_batched(
                || {
                    let batch: Vec<Event> =
                        (next..next + BATCH).map(|n| event(profile, 2, n)).collect();
                    next += BATCH;
                    batch
                },
                |batch| {
                    let store = store.clone();
                    async move { copy_batch(&store, &batch).await }
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
    for profile in [HOT, SPREAD] {
        paired(rt, &store, profile, 100);
    }
}

fn reads(c: &mut Criterion, rt: &Runtime, url: &str) {
    let store = rt.block_on(seeded(url));
    let query = AggregateQuery::new(
        WindowType::Daily,
        seed_start(),
        seed_start() + chrono::Duration::days(30),
    )
    .group_by(GroupBy {
        tenant_id: true,
        resource: true,
        feature: false,
    });
    let rows = rt.block_on(store.aggregate(&query)).expect("aggregate");
    let total: u64 = rows.iter().map(|r| r.event_count).sum();
    assert_eq!(total, 10_000_000, "every seeded event is counted once");
    let (p50, p95) = percentiles(rt, 40, || {
        let started = Instant::now();
        rt.block_on(store.aggregate(&query)).expect("aggregate");
        started.elapsed()
    });
    println!(
        "aggregate 10M events, 30 days daily by tenant_id,resource ({} rows): p50 {p50:.2?}, p95 {p95:.2?}",
        rows.len()
    );

    let deep: Cursor = rt.block_on(async {
        let row = sqlx::query(
            "SELECT ts, id FROM events ORDER BY ts DESC, id DESC OFFSET 999999 LIMIT 1",
        )
        .fetch_one(store.pool())
        .await
        .expect("the millionth event");
        Cursor {
            timestamp: row.get("ts"),
            id: EventId::new(row.get::<String, _>("id")).expect("valid"),
        }
    });
    let page = EventQuery::new(
        EventFilter::all(),
        Paging::Cursor {
            after: Some(deep),
            page_size: 50,
        },
    );
    let (p50, p95) = percentiles(rt, 200, || {
        let started = Instant::now();
        let got = rt.block_on(store.list_events(&page)).expect("page");
        assert_eq!(got.events.len(), 50);
        started.elapsed()
    });
    println!("cursor page of 50 at depth 1,000,000: p50 {p50:.2?}, p95 {p95:.2?}");

    let mut group = c.benchmark_group("postgres_read");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("aggregate_10m_30d_daily_by_tenant_resource", |b| {
        b.to_async(rt).iter(|| store.aggregate(&query));
    });
    group.bench_function("cursor_page_50_at_depth_1m", |b| {
        b.to_async(rt).iter(|| store.list_events(&page));
    });
    group.finish();
}

fn main() {
    let Ok(url) = std::env::var("METERING_TEST_POSTGRES_URL") else {
        println!("SKIPPED postgres benches: METERING_TEST_POSTGRES_URL not set");
        return;
    };
    let rt = Runtime::new().expect("a runtime");
    let mut c = Criterion::default().configure_from_args();
    if std::env::var("METERING_BENCH_PG_SKIP_INGEST").is_err() {
        ingest(&mut c, &rt, &url);
    }
    reads(&mut c, &rt, &url);
    c.final_summary();
}
