//! Meter folding under concurrency: two stores fold one schema at once while three writers
//! ingest, a fourth voids, and a meter is redefined halfway; afterwards every answer equals
//! the reference store's recount, and the answers came from folded cells. A store upgraded
//! with meters defined before meter rollups backfills them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{Duration as Span, TimeZone, Utc};
use metering_core::{
    Aggregation, Event, EventId, EventRules, MemoryStore, MeterGroup, MeterKey, MeterQuery,
    MeterSpec, NewEvent, Store, WindowType, validate_batch,
};
use metering_store_postgres::sqlx;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_folders_racing_writes_and_voids_match_a_recount() {
    let Some((a, b)) = common::two_stores().await else {
        return;
    };
    let memory = MemoryStore::new();
    let start = Utc
        .with_ymd_and_hms(2024, 3, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let at = start;
    let specs = [
        (
            "tokens",
            MeterSpec::new(Aggregation::Sum).value("metadata.tokens".parse().expect("path")),
        ),
        (
            "peak",
            MeterSpec::new(Aggregation::Max).value("metadata.tokens".parse().expect("path")),
        ),
        (
            "last",
            MeterSpec::new(Aggregation::Latest).value("metadata.tokens".parse().expect("path")),
        ),
        (
            "users",
            MeterSpec::new(Aggregation::UniqueCount).value("metadata.user".parse().expect("path")),
        ),
    ];
    let specs: Vec<(MeterKey, MeterSpec)> = specs
        .into_iter()
        .map(|(k, s)| (MeterKey::new(k).expect("key"), s.dimensions(["model"])))
        .collect();
    for (key, spec) in &specs[..2] {
        a.put_meter(key, spec, at).await.expect("put");
        memory.put_meter(key, spec, at).await.expect("put");
    }
    let batches: Vec<Vec<Event>> = (0..90u32)
        .map(|k| {
            let batch = (0..40u32)
                .map(|i| {
                    let n = k * 40 + i;
                    NewEvent::new(format!("t{}", n % 5), "r", "f")
                        .with_id(format!("fold-{n}"))
                        .with_timestamp(start + Span::minutes(i64::from(n * 37 % (9 * 1440))))
                        .with_metadata(
                            [
                                ("tokens".to_owned(), json!(format!("{}.{}", n % 97, n % 10))),
                                ("user".to_owned(), json!(format!("u{}", n % 23))),
                                ("model".to_owned(), json!(["a", "b", "c"][(n % 3) as usize])),
                            ]
                            .into_iter()
                            .collect(),
                        )
                })
                .collect();
            validate_batch(batch, &EventRules::default(), start + Span::days(30))
                .expect("a valid batch")
        })
        .collect();
    for batch in &batches {
        memory.insert_events(batch).await.expect("insert");
    }
    let done = Arc::new(AtomicBool::new(false));
    let folders: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|store| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    store.fold_meters(50).await.expect("fold");
                }
            })
        })
        .collect();
    let mut writers = Vec::new();
    for w in 0..3usize {
        let (store, mine) = (
            a.clone(),
            batches
                .iter()
                .skip(w)
                .step_by(3)
                .cloned()
                .collect::<Vec<_>>(),
        );
        writers.push(tokio::spawn(async move {
            for batch in mine {
                store.insert_events(&batch).await.expect("insert");
            }
        }));
    }
    // Voids of events already stored, racing the writers and the folders.
    let voided: Vec<_> = (0..3_600u32)
        .step_by(97)
        .map(|n| format!("fold-{n}"))
        .collect();
    let voider = {
        let (store, voided) = (b.clone(), voided.clone());
        tokio::spawn(async move {
            for id in voided {
                let id = EventId::new(id).expect("id");
                while store.event(&id).await.expect("event").is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                store.void_event(&id, Some("race"), at).await.expect("void");
            }
        })
    };
    // Halfway: two more meters, and one of the first redefined.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (key, spec) in &specs[2..] {
        b.put_meter(key, spec, at).await.expect("put");
        memory.put_meter(key, spec, at).await.expect("put");
    }
    let redefined = MeterSpec::new(Aggregation::Max).dimensions(["model"]);
    b.put_meter(&specs[1].0, &redefined, at).await.expect("put");
    memory
        .put_meter(&specs[1].0, &redefined, at)
        .await
        .expect("put");
    for writer in writers {
        writer.await.expect("writer");
    }
    voider.await.expect("voider");
    for id in &voided {
        memory
            .void_event(&EventId::new(id.as_str()).expect("id"), Some("race"), at)
            .await
            .expect("void");
    }
    // Let the folders catch up (other tests' transactions may hold the horizon back).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let behind: bool = sqlx::query_scalar(
            "SELECT bool_or(NOT backfilled OR EXISTS (SELECT 1 FROM events WHERE xact > folded_seq))
             FROM meter_folds",
        )
        .fetch_one(a.pool())
        .await
        .expect("fold state");
        if !behind {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the folders did not catch up in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.store(true, Ordering::SeqCst);
    for folder in folders {
        folder.await.expect("folder");
    }
    let cells: i64 = sqlx::query_scalar("SELECT count(DISTINCT meter) FROM meter_cells")
        .fetch_one(a.pool())
        .await
        .expect("cells");
    assert_eq!(cells, 4, "every meter has cells");
    for (key, _) in &specs {
        let meter = a.meter(key).await.expect("meter").expect("stored");
        for window in [None, Some(WindowType::Hourly), Some(WindowType::Daily)] {
            let mut query = MeterQuery::new(start, start + Span::days(10))
                .group_by([MeterGroup::TenantId, "model".parse().expect("group")]);
            query.window = window;
            let got = a.query_meter(&meter, &query).await.expect("query");
            let want = memory.query_meter(&meter, &query).await.expect("query");
            assert_eq!(got, want, "{key} by {window:?}");
        }
    }
    common::drop_schema(&a).await;
}

/// A store whose meters were defined before meter rollups existed (and whose events carry
/// no transaction id) is upgraded: the meters are backfilled, and answers equal a recount.
#[tokio::test]
async fn meters_defined_before_the_upgrade_are_folded() {
    let Some(url) = common::url() else {
        return;
    };
    let schema = common::schema_name();
    // The schema as it was before the meter rollups' migration.
    let old = common::open_with(common::config(&url, &schema).with_run_migrations(false)).await;
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 20_261_205_000_000)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before
        .run(old.pool())
        .await
        .expect("the earlier migrations");
    let memory = MemoryStore::new();
    let start = Utc
        .with_ymd_and_hms(2024, 5, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let spec = MeterSpec::new(Aggregation::Sum)
        .value("metadata.tokens".parse().expect("path"))
        .dimensions(["model"]);
    let key = MeterKey::new("tokens").expect("key");
    sqlx::query(
        "INSERT INTO meters (key, spec, created_at, updated_at) VALUES ($1, $2::json, $3, $3)",
    )
    .bind(key.as_str())
    .bind(serde_json::to_string(&spec).expect("json"))
    .bind(start)
    .execute(old.pool())
    .await
    .expect("an old meter");
    memory.put_meter(&key, &spec, start).await.expect("put");
    let batch = (0..300u32)
        .map(|n| {
            NewEvent::new(format!("t{}", n % 3), "r", "f")
                .with_id(format!("old-{n}"))
                .with_timestamp(start + Span::minutes(i64::from(n * 53)))
                .with_metadata(
                    [
                        ("tokens".to_owned(), json!(n % 17)),
                        ("model".to_owned(), json!(["a", "b"][(n % 2) as usize])),
                    ]
                    .into_iter()
                    .collect(),
                )
        })
        .collect();
    let batch = validate_batch(batch, &EventRules::default(), start + Span::days(30))
        .expect("a valid batch");
    old.insert_events(&batch).await.expect("insert");
    memory.insert_events(&batch).await.expect("insert");
    old.close().await;

    let store = common::open_in(&url, &schema).await;
    while store.fold_meters(100).await.expect("fold") {}
    let state: (bool, i64) =
        sqlx::query_as("SELECT backfilled, (SELECT count(*) FROM meter_cells) FROM meter_folds")
            .fetch_one(store.pool())
            .await
            .expect("fold state");
    assert!(state.0 && state.1 > 0, "backfilled into cells: {state:?}");
    let meter = store.meter(&key).await.expect("meter").expect("stored");
    for window in [None, Some(WindowType::Daily)] {
        let mut query = MeterQuery::new(start, start + Span::days(12))
            .group_by([MeterGroup::TenantId, "model".parse().expect("group")]);
        query.window = window;
        assert_eq!(
            store.query_meter(&meter, &query).await.expect("query"),
            memory.query_meter(&meter, &query).await.expect("query"),
            "{window:?}"
        );
    }
    common::drop_schema(&store).await;
}
