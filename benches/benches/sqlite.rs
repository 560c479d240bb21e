//! SQLite store benchmarks: batch ingest against a bare rusqlite loop, aggregates over 10
//! million events, cursor pages at depth one million, and bytes per stored event.
//!
//! Run with `cargo bench -p metering-benches --bench sqlite`. The 10-million-event database
//! is seeded once into the target directory (a few minutes) and reused by later runs; set
//! `METERING_BENCH_SQLITE_EVENTS` to seed a smaller one (e.g. `1000000`) for a quick run.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use metering_core::{
    AggregateQuery, Cursor, Event, EventFilter, EventId, EventQuery, Feature, Metadata, Paging,
    Quantity, Resource, Store, TenantId, Tz, WindowType,
};
use metering_store_sqlite::rusqlite::{Connection, params};
use metering_store_sqlite::{SCHEMA_VERSION, SqliteConfig, SqliteStore, Synchronous};
use tokio::runtime::Runtime;

const TENANTS: u64 = 50;
const RESOURCES: [&str; 2] = ["api", "storage"];
const FEATURES: [&str; 2] = ["read", "write"];
const BATCH: u64 = 1_000;
const DAYS: i64 = 30;

/// 2025-10-01T00:00:00Z: the seeded month starts here.
fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_759_276_800, 0).expect("valid")
}

fn names() -> (Vec<TenantId>, Vec<Resource>, Vec<Feature>) {
    (
        (0..TENANTS)
            .map(|t| TenantId::new(format!("tenant-{t:03}")).expect("valid"))
            .collect(),
        RESOURCES
            .iter()
            .map(|r| Resource::new(r).expect("valid"))
            .collect(),
        FEATURES
            .iter()
            .map(|f| Feature::new(f).expect("valid"))
            .collect(),
    )
}

/// Event `n` of a deterministic stream: time-ordered ids, `step_micros` apart from `start`,
/// cycling through tenants, resources and features, with small metadata.
fn event(
    n: u64,
    start: DateTime<Utc>,
    step_micros: i64,
    names: &(Vec<TenantId>, Vec<Resource>, Vec<Feature>),
) -> Event {
    let at = start + chrono::Duration::microseconds(i64::try_from(n).expect("fits") * step_micros);
    let mut metadata = Metadata::new();
    metadata.insert("region".into(), "eu-west".into());
    metadata.insert("status".into(), 200.into());
    let pick = |len: usize, k: u64| usize::try_from(k).expect("fits") % len;
    Event {
        // Time-ordered like UUIDv7, but deterministic.
        id: EventId::new(format!(
            "{:016x}-{:08x}",
            at.timestamp_micros(),
            n % 0xffff_ffff
        ))
        .expect("valid"),
        tenant_id: names.0[pick(names.0.len(), n)].clone(),
        resource: names.1[pick(names.1.len(), n / 7)].clone(),
        feature: names.2[pick(names.2.len(), n / 3)].clone(),
        quantity: Quantity::from_nanos(u128::from(n % 100 + 1) * 10_000_000),
        timestamp: at,
        metadata: Some(metadata),
        created_at: at,
        amends: None,
        voided_at: None,
        void_reason: None,
    }
}

/// The events table of the store, without the store: what the bare loop writes into.
const BARE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, resource TEXT NOT NULL,
    feature TEXT NOT NULL, qty_units INTEGER NOT NULL, qty_nanos INTEGER NOT NULL,
    ts INTEGER NOT NULL, metadata TEXT, created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ts ON events (ts, id);
CREATE INDEX IF NOT EXISTS events_tenant_ts ON events (tenant_id, ts, id);
";

fn bare_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("a database");
    // The store's settings: WAL, synchronous=FULL, the same page cache.
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("WAL");
    conn.pragma_update(None, "synchronous", "FULL")
        .expect("FULL");
    conn.pragma_update(None, "cache_size", -65_536)
        .expect("cache");
    conn.execute_batch(BARE_SCHEMA).expect("schema");
    conn
}

/// A prepared statement and one transaction per batch: the fastest plain way to insert.
fn bare_insert(conn: &mut Connection, events: &[Event]) {
    let tx = conn.transaction().expect("a transaction");
    {
        let mut stmt = tx
            .prepare_cached(
                "INSERT INTO events (id, tenant_id, resource, feature, qty_units, qty_nanos, ts, metadata, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .expect("a statement");
        for e in events {
            let metadata = e
                .metadata
                .as_ref()
                .map(|m| serde_json::to_string(m).expect("json"));
            stmt.execute(params![
                e.id.as_str(),
                e.tenant_id.as_str(),
                e.resource.as_str(),
                e.feature.as_str(),
                i64::try_from(e.quantity.units()).expect("fits"),
                e.quantity.fraction_nanos(),
                e.timestamp.timestamp_micros(),
                metadata,
                e.created_at.timestamp_micros(),
            ])
            .expect("an insert");
        }
    }
    tx.commit().expect("a commit");
}

fn ingest(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let names = names();
    let store = rt
        .block_on(SqliteStore::open(SqliteConfig::new(
            dir.path().join("store.db"),
        )))
        .expect("a store");
    let mut bare = bare_connection(&dir.path().join("bare.db"));
    // Events arrive now-ish: 50 µs apart, as a busy ingest would see them.
    let start = epoch() + chrono::Duration::days(60);
    let mut group = c.benchmark_group("sqlite_ingest");
    group.throughput(Throughput::Elements(BATCH));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(20));
    let mut next_store = 0u64;
    group.bench_function("store_insert_events_1000", |b| {
        b.iter_batched(
            || {
                let batch: Vec<Event> = (next_store..next_store + BATCH)
                    .map(|n| event(n, start, 50, &names))
                    .collect();
                next_store += BATCH;
                batch
            },
            |batch| {
                let outcome = rt.block_on(store.insert_events(&batch)).expect("an insert");
                assert_eq!(outcome.inserted_count(), batch.len());
            },
            BatchSize::PerIteration,
        );
    });
    let mut next_bare = 0u64;
    group.bench_function("bare_rusqlite_loop_1000", |b| {
        b.iter_batched(
            || {
                let batch: Vec<Event> = (next_bare..next_bare + BATCH)
                    .map(|n| event(n, start, 50, &names))
                    .collect();
                next_bare += BATCH;
                batch
            },
            |batch| bare_insert(&mut bare, &batch),
            BatchSize::PerIteration,
        );
    });
    group.finish();

    // The machine is shared, so load drifts between the two runs above; this pairs them:
    // each round inserts one batch with each, back to back, and the sums are compared.
    let (mut store_time, mut bare_time) = (Duration::ZERO, Duration::ZERO);
    let rounds = 300;
    for _ in 0..rounds {
        let batch: Vec<Event> = (next_store..next_store + BATCH)
            .map(|n| event(n, start, 50, &names))
            .collect();
        next_store += BATCH;
        let began = Instant::now();
        rt.block_on(store.insert_events(&batch)).expect("an insert");
        store_time += began.elapsed();
        let batch: Vec<Event> = (next_bare..next_bare + BATCH)
            .map(|n| event(n, start, 50, &names))
            .collect();
        next_bare += BATCH;
        let began = Instant::now();
        bare_insert(&mut bare, &batch);
        bare_time += began.elapsed();
    }
    let rate = |t: Duration| (rounds * BATCH) as f64 / t.as_secs_f64();
    eprintln!(
        "paired ingest, {rounds} batches of {BATCH}: store {:.0} events/s, bare loop {:.0} events/s, store/bare = {:.1} %",
        rate(store_time),
        rate(bare_time),
        100.0 * bare_time.as_secs_f64() / store_time.as_secs_f64()
    );
    drop(store);
}

/// How many events the big database holds.
fn seeded_events() -> u64 {
    std::env::var("METERING_BENCH_SQLITE_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000)
}

/// The big database, seeded on first use and kept in the target directory.
fn big_database(rt: &Runtime) -> PathBuf {
    let total = seeded_events();
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sqlite-bench-{total}-v{SCHEMA_VERSION}.db"));
    let done = path.with_extension("done");
    if done.exists() {
        return path;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    eprintln!("seeding {total} events into {} (once) ...", path.display());
    let began = Instant::now();
    let names = names();
    // Spread evenly over 30 days; seeding durability does not matter, speed does.
    let step = DAYS * 86_400_000_000 / i64::try_from(total).expect("fits");
    rt.block_on(async {
        let config = SqliteConfig::new(&path).with_synchronous(Synchronous::Normal);
        let store = SqliteStore::open(config).await.expect("a store");
        let chunk = 10_000;
        let mut n = 0;
        while n < total {
            let batch: Vec<Event> = (n..(n + chunk).min(total))
                .map(|i| event(i, epoch(), step, &names))
                .collect();
            store.insert_events(&batch).await.expect("an insert");
            n += chunk;
            if n % 1_000_000 == 0 {
                eprintln!("  {n} events, {:.0} s", began.elapsed().as_secs_f64());
            }
        }
    });
    let conn = Connection::open(&path).expect("the database");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;")
        .expect("a checkpoint");
    std::fs::write(&done, b"seeded\n").expect("a marker");
    eprintln!("seeded in {:.0} s", began.elapsed().as_secs_f64());
    path
}

fn queries(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let path = big_database(&rt);
    let total = seeded_events();
    let bytes = std::fs::metadata(&path).expect("the file").len();
    eprintln!(
        "database: {bytes} bytes for {total} events = {:.1} bytes/event (events, 2 indexes, rollups)",
        bytes as f64 / total as f64
    );
    let store = rt
        .block_on(SqliteStore::open(SqliteConfig::new(&path)))
        .expect("a store");

    let mut group = c.benchmark_group("sqlite_query");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(10));
    let month = AggregateQuery::new(
        WindowType::Daily,
        epoch(),
        epoch() + chrono::Duration::days(DAYS),
    )
    .group_by("tenant_id,resource".parse().expect("a grouping"));
    let rows = rt.block_on(store.aggregate(&month)).expect("an aggregate");
    let counted: u64 = rows.iter().map(|r| r.event_count).sum();
    assert_eq!(counted, total, "the aggregate counts every event");
    group.bench_function("aggregate_30_daily_windows_by_tenant_resource_utc", |b| {
        b.iter(|| rt.block_on(store.aggregate(&month)).expect("an aggregate"));
    });
    let new_york = month.clone().tz(Tz::America__New_York);
    group.bench_function(
        "aggregate_30_daily_windows_by_tenant_resource_new_york",
        |b| {
            b.iter(|| {
                rt.block_on(store.aggregate(&new_york))
                    .expect("an aggregate")
            });
        },
    );
    let mut unaligned = month.clone();
    unaligned.start += chrono::Duration::seconds(7_777);
    unaligned.end -= chrono::Duration::seconds(1_234);
    group.bench_function("aggregate_30_daily_windows_unaligned_range", |b| {
        b.iter(|| {
            rt.block_on(store.aggregate(&unaligned))
                .expect("an aggregate")
        });
    });

    // The cursor after the millionth newest event.
    let depth = 1_000_000.min(total - 100);
    let conn = Connection::open(&path).expect("the database");
    let (ts, id): (i64, String) = conn
        .query_row(
            "SELECT ts, id FROM events ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?1",
            [i64::try_from(depth - 1).expect("fits")],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a deep event");
    let cursor = Cursor {
        timestamp: DateTime::from_timestamp_micros(ts).expect("valid"),
        id: EventId::new(id).expect("valid"),
    };
    let deep = EventQuery::new(
        EventFilter::all(),
        Paging::Cursor {
            after: Some(cursor),
            page_size: 50,
        },
    );
    group.bench_function("cursor_page_50_at_depth_1m", |b| {
        b.iter(|| {
            let page = rt.block_on(store.list_events(&deep)).expect("a page");
            assert_eq!(page.events.len(), 50);
        });
    });
    let tenant = EventQuery::new(
        EventFilter::all().tenant(TenantId::new("tenant-007").expect("valid")),
        Paging::Cursor {
            after: None,
            page_size: 50,
        },
    );
    group.bench_function("cursor_first_page_50_one_tenant", |b| {
        b.iter(|| rt.block_on(store.list_events(&tenant)).expect("a page"));
    });
    group.finish();
}

criterion_group!(benches, ingest, queries);
criterion_main!(benches);
