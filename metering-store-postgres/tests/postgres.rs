//! PostgreSQL-specific behavior: two pools racing consumes, SQL-looking strings, partitions
//! and retention, reads racing rollup compaction, odd time zones against the reference
//! store, and outages.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use metering_core::{
    AggregateQuery, ConsumeOutcome, Event, EventFilter, EventQuery, EventRules, Feature, GroupBy,
    MemoryStore, NewEvent, Paging, Quantity, Store, TenantId, UsageLimit, UsageScope, WindowType,
    validate_batch,
};
use metering_store_postgres::{PostgresConfig, PostgresStore, sqlx};
use serde_json::json;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid")
}

fn events(batch: Vec<NewEvent>) -> Vec<Event> {
    let now = at(2030, 1, 1, 0, 0, 0);
    validate_batch(batch, &EventRules::default(), now).expect("a valid batch")
}

fn qty(text: &str) -> Quantity {
    text.parse().expect("a quantity")
}

async fn list_all(store: &PostgresStore, filter: EventFilter) -> Vec<Event> {
    let query = EventQuery::new(
        filter,
        Paging::Cursor {
            after: None,
            page_size: 1000,
        },
    );
    store.list_events(&query).await.expect("list").events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_pools_racing_200_consumes_admit_exactly_the_limit() {
    let Some((a, b)) = common::two_stores().await else {
        return;
    };
    let now = at(2025, 11, 20, 10, 30, 0);
    let limit = UsageLimit {
        scope: UsageScope {
            tenant_id: TenantId::new("racer").expect("tenant"),
            resource: None,
            feature: Feature::new("render").expect("feature"),
        },
        window: WindowType::Daily.window(now, chrono_tz::UTC),
        limit: qty("50"),
    };
    let limit = Arc::new(limit);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let limit = Arc::clone(&limit);
        // Alternate resources: a scope without a resource counts them all.
        let resource = if i % 3 == 0 { "api" } else { "batch" };
        let event = events(vec![
            NewEvent::new("racer", resource, "render")
                .with_id(format!("race-{i}"))
                .with_timestamp(now - Span::minutes(i64::from(i % 90))),
        ])
        .remove(0);
        tasks.push(tokio::spawn(async move {
            store.consume(&event, &limit, None).await.expect("consume")
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        match task.await.expect("task") {
            ConsumeOutcome::Admitted { usage_before } => {
                assert!(usage_before < qty("50"));
                admitted += 1;
            }
            ConsumeOutcome::Denied { usage } => assert_eq!(usage, qty("50")),
            ConsumeOutcome::Duplicate { .. } => panic!("no id was repeated"),
        }
    }
    assert_eq!(admitted, 50);
    let stored = list_all(&a, EventFilter::all()).await;
    assert_eq!(stored.len(), 50);
    assert_eq!(
        a.sum_usage(&limit.scope, limit.window).await.expect("sum"),
        qty("50")
    );
    common::drop_schema(&a).await;
}

#[tokio::test]
async fn strings_that_look_like_sql_come_back_verbatim() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let nasty = [
        "o'brien",
        "'; DROP TABLE events; --",
        "$1",
        "back\\slash\\\\",
        "\"quoted\"",
        "日本語 🚀 ünïcødé",
        "%_like_%",
        "E'\\x00'",
    ];
    let mut batch = Vec::new();
    for (i, s) in nasty.iter().enumerate() {
        let mut metadata = serde_json::Map::new();
        metadata.insert(
            (*s).to_owned(),
            json!({ "v": s, "n": 1.50, "big": 12345678901234567890u64 }),
        );
        batch.push(
            NewEvent::new(*s, *s, *s)
                .with_id(format!("id-'{i}\"; --"))
                .with_quantity(qty("0.000000001"))
                .with_timestamp(at(2025, 6, 1, 12, 0, u32::try_from(i).expect("small")))
                .with_metadata(metadata),
        );
    }
    let sent = events(batch);
    let outcome = store.insert_events(&sent).await.expect("insert");
    assert_eq!(outcome.inserted_count(), nasty.len());
    for event in &sent {
        let filter = EventFilter::all()
            .tenant(event.tenant_id.clone())
            .resource(event.resource.clone())
            .feature(event.feature.clone());
        let got = list_all(&store, filter).await;
        assert_eq!(got, vec![event.clone()], "{}", event.tenant_id.as_str());
        let meta = got[0].metadata.as_ref().expect("metadata");
        // Kept as sent, number text included.
        assert_eq!(
            serde_json::to_string(meta).expect("json"),
            serde_json::to_string(event.metadata.as_ref().expect("metadata")).expect("json")
        );
        let report = store
            .aggregate(
                &AggregateQuery::new(
                    WindowType::Daily,
                    at(2025, 6, 1, 0, 0, 0),
                    at(2025, 6, 2, 0, 0, 0),
                )
                .group_by(GroupBy::ALL)
                .tenant(event.tenant_id.clone()),
            )
            .await
            .expect("aggregate");
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].tenant_id.as_ref(), Some(&event.tenant_id));
        assert_eq!(report[0].feature.as_ref(), Some(&event.feature));
        assert_eq!(report[0].total_quantity, qty("0.000000001"));
    }
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .expect("the events table is still there");
    assert_eq!(tables, i64::try_from(nasty.len()).expect("small"));
    common::drop_schema(&store).await;
}

#[tokio::test]
async fn late_events_get_partitions_and_retention_drops_whole_months() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let old = at(2019, 3, 15, 8, 7, 0);
    let older = at(2019, 1, 31, 23, 59, 59);
    let recent = at(2025, 11, 20, 10, 0, 0);
    let batch = events(vec![
        NewEvent::new("t", "r", "f")
            .with_id("old")
            .with_timestamp(old),
        NewEvent::new("t", "r", "f")
            .with_id("older")
            .with_timestamp(older),
        NewEvent::new("t", "r", "f")
            .with_id("recent")
            .with_timestamp(recent),
    ]);
    assert_eq!(
        store
            .insert_events(&batch)
            .await
            .expect("insert")
            .inserted_count(),
        3
    );
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'events'::regclass ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("partitions");
    assert!(
        partitions.contains(&"events_p201901".to_owned()),
        "{partitions:?}"
    );
    assert!(
        partitions.contains(&"events_p201903".to_owned()),
        "{partitions:?}"
    );
    assert!(
        partitions.contains(&"events_p202511".to_owned()),
        "{partitions:?}"
    );

    // Mid-March: January goes, March stays (its month is not over).
    let report = store
        .apply_retention(at(2019, 3, 20, 0, 0, 0))
        .await
        .expect("retention");
    assert_eq!(report.dropped_partitions, ["events_p201901"]);
    assert_eq!(report.dropped_before, Some(at(2019, 2, 1, 0, 0, 0)));
    let left: Vec<String> = list_all(&store, EventFilter::all())
        .await
        .into_iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    assert_eq!(left, ["recent", "old"]);
    let all_time = AggregateQuery::new(
        WindowType::Monthly,
        at(2018, 1, 1, 0, 0, 0),
        at(2026, 1, 1, 0, 0, 0),
    )
    .group_by(GroupBy::NONE);
    let rows = store.aggregate(&all_time).await.expect("aggregate");
    assert_eq!(
        rows.iter().map(|r| r.event_count).sum::<u64>(),
        2,
        "rollups forgot January"
    );

    // The dropped id is forgotten with its event; writing the month again recreates it.
    let again = events(vec![
        NewEvent::new("t", "r", "f")
            .with_id("older")
            .with_timestamp(older),
    ]);
    assert_eq!(
        store
            .insert_events(&again)
            .await
            .expect("insert")
            .inserted_count(),
        1
    );
    assert_eq!(list_all(&store, EventFilter::all()).await.len(), 3);

    // Another handle that still believes in the dropped partition recovers by itself.
    let other = common::open_in(
        &store.config().url.clone(),
        store.config().schema.as_deref().expect("a schema"),
    )
    .await;
    let mid = events(vec![
        NewEvent::new("t", "r", "f")
            .with_id("mid")
            .with_timestamp(at(2019, 1, 10, 0, 0, 0)),
    ]);
    other.insert_events(&mid).await.expect("insert");
    store
        .apply_retention(at(2019, 2, 1, 0, 0, 0))
        .await
        .expect("retention");
    let mid2 = events(vec![
        NewEvent::new("t", "r", "f")
            .with_id("mid2")
            .with_timestamp(at(2019, 1, 11, 0, 0, 0)),
    ]);
    assert_eq!(
        other
            .insert_events(&mid2)
            .await
            .expect("insert")
            .inserted_count(),
        1
    );
    common::drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_create_partitions_once() {
    let Some((a, b)) = common::two_stores().await else {
        return;
    };
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let batch = events(
            (0..12u32)
                .map(|m| {
                    NewEvent::new("t", "r", "f")
                        .with_id(format!("p{i}-{m}"))
                        .with_timestamp(at(2010, m + 1, 1 + i, 0, 0, 0))
                })
                .collect(),
        );
        tasks.push(tokio::spawn(
            async move { store.insert_events(&batch).await },
        ));
    }
    for task in tasks {
        assert_eq!(
            task.await.expect("task").expect("insert").inserted_count(),
            12
        );
    }
    assert_eq!(list_all(&a, EventFilter::all()).await.len(), 16 * 12);
    common::drop_schema(&a).await;
}

/// Reads racing ingest and compaction count every acknowledged event once: never an event
/// twice (in the deltas and the rollups) nor an acknowledged one not at all (between them).
/// Two stores compact the same schema at once; afterwards the deltas are gone and the
/// rollups alone equal the reference store, window by window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_racing_compaction_count_each_event_once() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let Some((a, b)) = common::two_stores().await else {
        return;
    };
    let memory = MemoryStore::new();
    let start = at(2024, 6, 1, 20, 0, 0);
    // Two days, 15-minute and daily buckets both in play; hourly windows read rollups.
    let query = AggregateQuery::new(WindowType::Hourly, start, start + Span::days(2))
        .group_by(GroupBy::ALL);
    let (sent, acked, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut writers = Vec::new();
    for w in 0..3u32 {
        let (store, sent, acked) = (a.clone(), Arc::clone(&sent), Arc::clone(&acked));
        let batches: Vec<Vec<Event>> = (0..30u32)
            .map(|k| {
                events(
                    (0..40u32)
                        .map(|i| {
                            let n = (w * 30 + k) * 40 + i;
                            NewEvent::new(format!("t{}", n % 4), "r", format!("f{}", n % 2))
                                .with_id(format!("race-{n}"))
                                .with_timestamp(start + Span::minutes(i64::from(n * 29 % 2880)))
                        })
                        .collect(),
                )
            })
            .collect();
        for batch in &batches {
            memory.insert_events(batch).await.expect("insert");
        }
        writers.push(tokio::spawn(async move {
            for batch in batches {
                sent.fetch_add(batch.len() as u64, Ordering::SeqCst);
                store.insert_events(&batch).await.expect("insert");
                acked.fetch_add(batch.len() as u64, Ordering::SeqCst);
            }
        }));
    }
    let compactors: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut moved = 0;
                while !done.load(Ordering::SeqCst) {
                    moved += store.compact_rollups().await.expect("compact");
                }
                moved
            })
        })
        .collect();
    let reader = {
        let (store, sent, acked, done) = (b.clone(), sent, acked, Arc::clone(&done));
        let query = query.clone();
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let floor = acked.load(Ordering::SeqCst);
                let rows = store.aggregate(&query).await.expect("aggregate");
                let ceiling = sent.load(Ordering::SeqCst);
                let counted: u64 = rows.iter().map(|r| r.event_count).sum();
                assert!(
                    (floor..=ceiling).contains(&counted),
                    "a read counted {counted} events with {floor} acknowledged and {ceiling} sent"
                );
                reads += 1;
            }
            reads
        })
    };
    for writer in writers {
        writer.await.expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let reads = reader.await.expect("reader");
    let mut moved = 0;
    for compactor in compactors {
        moved += compactor.await.expect("compactor");
    }
    assert!(
        reads > 0 && moved > 0,
        "{reads} reads, {moved} deltas moved"
    );
    a.compact_rollups().await.expect("compact");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM rollup_deltas")
        .fetch_one(a.pool())
        .await
        .expect("count");
    assert_eq!(left, 0);
    for window in [WindowType::Hourly, WindowType::Daily] {
        let query =
            AggregateQuery::new(window, start, start + Span::days(2)).group_by(GroupBy::ALL);
        assert_eq!(
            a.aggregate(&query).await.expect("aggregate"),
            memory.aggregate(&query).await.expect("aggregate"),
            "{window}"
        );
    }
    common::drop_schema(&a).await;
}

/// Windows of zones with quarter-hour and historic odd offsets, against the reference store.
#[tokio::test]
async fn odd_time_zones_match_the_reference_store() {
    let Some(store) = common::fresh_store().await else {
        return;
    };
    let memory = MemoryStore::new();
    let mut batch = Vec::new();
    let start = at(1936, 12, 20, 0, 0, 0);
    for i in 0..400i64 {
        let t = start + Span::minutes(i * 97 + i % 7);
        batch.push(
            NewEvent::new(format!("t{}", i % 3), "r", format!("f{}", i % 2))
                .with_id(format!("e{i}"))
                .with_quantity(qty(&format!("{}.{:03}", i % 5 + 1, i % 1000)))
                .with_timestamp(t),
        );
    }
    let batch = events(batch);
    store.insert_events(&batch).await.expect("insert");
    memory.insert_events(&batch).await.expect("insert");
    let end = start + Span::minutes(400 * 97);
    for tz in [
        chrono_tz::UTC,
        chrono_tz::Asia::Kathmandu,
        chrono_tz::Europe::Amsterdam,
        chrono_tz::America::St_Johns,
    ] {
        for window in [WindowType::Hourly, WindowType::Daily, WindowType::Weekly] {
            for (s, e) in [
                (start, end),
                (start + Span::seconds(1234), end - Span::seconds(4321)),
            ] {
                let query = AggregateQuery::new(window, s, e)
                    .group_by(GroupBy::ALL)
                    .tz(tz);
                let got = store.aggregate(&query).await.expect("aggregate");
                let want = memory.aggregate(&query).await.expect("aggregate");
                assert_eq!(got, want, "{tz} {window}");
            }
        }
    }
    common::drop_schema(&store).await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 refuses connections; no server needed.
    let config = PostgresConfig::new("postgres://nobody:pw@127.0.0.1:1/none")
        .with_acquire_timeout(Duration::from_millis(500))
        .with_connect_timeout(Duration::from_millis(500));
    let err = PostgresStore::open(config)
        .await
        .expect_err("nothing listens there");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        !format!("{err:?}").contains("pw@"),
        "the password stays hidden: {err:?}"
    );
}

/// Stops and restarts a private PostgreSQL server under the store: calls fail as unavailable
/// while it is down, and the store reconnects on its own once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_a_server_restart() {
    let Some(server) = metering_testkit::private::PrivatePostgres::start() else {
        return;
    };
    let config = PostgresConfig::new(server.url())
        .with_acquire_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2));
    let store = PostgresStore::open(config)
        .await
        .expect("open the private server");
    let first = events(vec![NewEvent::new("t", "r", "f").with_id("before")]);
    store
        .insert_events(&first)
        .await
        .expect("insert before the outage");

    server.pg_ctl(&["-m", "fast", "stop"]);
    let err = store.health().await.expect_err("the server is down");
    assert!(err.is_unavailable(), "{err:?}");
    let second = events(vec![NewEvent::new("t", "r", "f").with_id("during")]);
    let err = store
        .insert_events(&second)
        .await
        .expect_err("the server is down");
    assert!(err.is_unavailable(), "{err:?}");

    server.pg_ctl(&["start"]);
    // The first call after the server is back succeeds (allow for it to accept connections).
    let mut ok = false;
    for _ in 0..30 {
        if store.health().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ok, "the store never reconnected");
    let outcome = store
        .insert_events(&second)
        .await
        .expect("insert after the outage");
    assert_eq!(outcome.inserted_count(), 1);
    assert_eq!(list_all(&store, EventFilter::all()).await.len(), 2);
}
