//! Meters: definitions, and answers equal to a recount.
//!
//! Cases:
//! - [`meters_define_replace_list_delete`]
//! - [`meters_count_events_stored_before_them`]
//! - [`meter_values_are_exact`]
//! - [`meters_match_recount_property`]
//! - [`unique_counts_by_whole_windows`]

use metering_core::{
    Aggregation, Amount, Meter, MeterFilter, MeterGroup, MeterKey, MeterQuery, MeterSpec, ValuePath,
};
use serde_json::Value;

use super::*;

fn key(text: &str) -> MeterKey {
    MeterKey::new(text).expect("a valid key")
}

fn with_metadata(mut e: Event, metadata: Value) -> Event {
    let Value::Object(map) = metadata else {
        panic!("metadata must be an object")
    };
    e.metadata = Some(map);
    e
}

async fn answer<S: Store>(
    store: &S,
    meter: &Meter,
    query: &MeterQuery,
) -> (Vec<metering_core::MeterRow>, u64) {
    let report = store.query_meter(meter, query).await.expect("query meter");
    assert_eq!(report.meter, meter.key);
    assert_eq!(report.window_type, query.window);
    (report.data, report.skipped_events)
}

/// A replaced meter keeps `created_at`; meters list by key; a deleted one is gone, and
/// deleting it again is `NotFound`.
pub async fn meters_define_replace_list_delete<S: Store + Clone>(store: S) {
    let t0 = at("2025-11-01T00:00:00Z");
    let tokens = MeterSpec::new(Aggregation::Sum)
        .named("Tokens")
        .filter(MeterFilter {
            feature: vec![feature("input_tokens"), feature("output_tokens")],
            metadata: [("region".to_owned(), vec![Value::from("eu"), Value::Null])].into(),
            ..MeterFilter::default()
        })
        .dimensions(["model", "region"]);
    let first = store
        .put_meter(&key("tokens"), &tokens, t0)
        .await
        .expect("put");
    assert_eq!(first.spec, tokens);
    assert_eq!((first.created_at, first.updated_at), (t0, t0));
    let users =
        MeterSpec::new(Aggregation::UniqueCount).value("metadata.user.id".parse().expect("path"));
    store
        .put_meter(&key("active_users"), &users, t0)
        .await
        .expect("put");
    let t1 = t0 + Duration::hours(1);
    let replaced = MeterSpec::new(Aggregation::Max).dimensions(["model"]);
    let second = store
        .put_meter(&key("tokens"), &replaced, t1)
        .await
        .expect("replace");
    assert_eq!((second.created_at, second.updated_at), (t0, t1));
    assert_eq!(second.spec, replaced);
    let listed = store.list_meters().await.expect("list");
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["active_users", "tokens"]);
    assert_eq!(listed[0].spec, users);
    assert_eq!(
        store.meter(&key("tokens")).await.expect("get"),
        Some(second)
    );
    store.delete_meter(&key("tokens")).await.expect("delete");
    assert_eq!(store.meter(&key("tokens")).await.expect("get"), None);
    assert!(matches!(
        store.delete_meter(&key("tokens")).await,
        Err(Error::NotFound(_))
    ));
    assert!(store.meter(&key("missing")).await.expect("get").is_none());
}

/// A meter defined after its events were stored counts them all at once.
pub async fn meters_count_events_stored_before_them<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let start = at("2025-06-01T00:00:00Z");
    let events: Vec<Event> = (0..500)
        .map(|i| {
            let model = if i % 2 == 0 { "gpt" } else { "o3" };
            with_metadata(
                event(
                    ns.id(&format!("b{i}")),
                    &t,
                    "ai",
                    "tokens",
                    qty("1.5"),
                    start + Duration::minutes(i),
                ),
                json!({"model": model}),
            )
        })
        .collect();
    store.insert_events(&events).await.expect("insert");
    let (engine, _clock) = engine(&store);
    let meter = engine
        .define_meter(
            &key("tokens"),
            &MeterSpec::new(Aggregation::Sum).dimensions(["model"]),
        )
        .await
        .expect("define");
    let query = MeterQuery::new(start, start + Duration::days(1))
        .group_by([MeterGroup::Dimension("model".into())])
        .tenant(t.clone());
    let report = engine.query_meter(&meter.key, &query).await.expect("query");
    let values: Vec<(Option<String>, String, u64)> = report
        .data
        .iter()
        .map(|r| (r.group[0].1.clone(), r.value.to_string(), r.event_count))
        .collect();
    assert_eq!(
        values,
        [
            (Some("gpt".to_owned()), "375".to_owned(), 250),
            (Some("o3".to_owned()), "375".to_owned(), 250)
        ]
    );
    // And later events count too.
    store
        .insert_events(&[event(
            ns.id("late"),
            &t,
            "ai",
            "tokens",
            qty("0.000000001"),
            start,
        )])
        .await
        .expect("insert");
    let report = engine
        .query_meter(
            &meter.key,
            &MeterQuery::new(start, start + Duration::days(1)).tenant(t),
        )
        .await
        .expect("query");
    assert_eq!(report.data[0].value.to_string(), "750.000000001");
    assert_eq!(report.data[0].event_count, 501);
}

/// Exact sums of decimal strings and numbers, skipped values, avg rounded half to even,
/// latest ties by id, distinct values by value for numbers and by text for strings.
pub async fn meter_values_are_exact<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let start = at("2025-03-01T00:00:00Z");
    let values = [
        json!({"v": "999999999999999.999999999", "u": 1}),
        json!({"v": "-0.000000001", "u": 1.0}),
        json!({"v": 0.1, "u": "1"}),
        json!({"v": 0.2, "u": true}),
        json!({"v": "1e3", "u": null}),
        json!({"v": "abc"}),
        json!({"w": 1, "u": "x"}),
        json!({"v": 1_000_000_000_000_001_i64, "u": "x"}),
        json!({"v": 5, "u": 2}),
        json!({"v": 7, "u": 2}),
        json!({"v": null}),
    ];
    let same_time = start + Duration::hours(1);
    let events: Vec<Event> = values
        .iter()
        .enumerate()
        .map(|(i, m)| {
            // x8 and x9 share the greatest timestamp, so `latest` is decided by id.
            let ts = if i == 8 || i == 9 {
                same_time
            } else {
                start + Duration::minutes(i64::try_from(i).expect("small"))
            };
            with_metadata(
                event(ns.id(&format!("x{i}")), &t, "r", "f", Quantity::ONE, ts),
                m.clone(),
            )
        })
        .collect();
    store.insert_events(&events).await.expect("insert");
    let query = MeterQuery::new(start, start + Duration::days(1)).tenant(t.clone());
    let ask = |aggregation: Aggregation, path: &str| {
        let store = store.clone();
        let query = query.clone();
        let path: ValuePath = path.parse().expect("path");
        async move {
            let meter = Meter {
                key: key("m"),
                spec: MeterSpec::new(aggregation).value(path),
                created_at: start,
                updated_at: start,
            };
            let (rows, skipped) = answer(&store, &meter, &query).await;
            assert_eq!(rows.len(), 1, "{aggregation:?}");
            (rows[0].value.to_string(), rows[0].event_count, skipped)
        }
    };
    // Usable: the two decimal strings, 0.1, 0.2, 5 and 7. Skipped: "1e3" (not plain), "abc",
    // a missing value, 10^15 + 1 (out of range) and null.
    let v = "metadata.v";
    assert_eq!(
        ask(Aggregation::Sum, v).await,
        ("1000000000000012.299999998".to_owned(), 6, 5)
    );
    assert_eq!(
        ask(Aggregation::Min, v).await,
        ("-0.000000001".to_owned(), 6, 5)
    );
    assert_eq!(
        ask(Aggregation::Max, v).await,
        ("999999999999999.999999999".to_owned(), 6, 5)
    );
    // 1000000000000012.299999998 / 6 = 166666666666668.716666666333...
    assert_eq!(
        ask(Aggregation::Avg, v).await,
        ("166666666666668.716666666".to_owned(), 6, 5)
    );
    assert_eq!(ask(Aggregation::Latest, v).await, ("7".to_owned(), 6, 5));
    assert_eq!(
        ask(Aggregation::Count, "quantity").await,
        ("11".to_owned(), 11, 0)
    );
    // Distinct u: 1 (= 1.0), "1", true, "x" and 2; null and missing are skipped.
    assert_eq!(
        ask(Aggregation::UniqueCount, "metadata.u").await,
        ("5".to_owned(), 8, 3)
    );
    assert_eq!(
        ask(Aggregation::Sum, "quantity").await,
        ("11".to_owned(), 11, 0)
    );
}

/// Property: for random events with random metadata (mixed JSON types, missing keys,
/// nested paths), every aggregation over every window type and random group-by subsets and
/// filters equals a brute-force recount. Each meter is defined in the store (so rollups,
/// where a store keeps them, answer) and events are voided after it is defined.
pub async fn meters_match_recount_property<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b")];
    let zones = ["UTC", "America/New_York", "Asia/Kathmandu"];
    let scalars = [
        json!(null),
        json!(true),
        json!(3),
        json!(-2),
        json!(0.5),
        json!(1.0),
        json!("eu"),
        json!("us"),
        json!("2.25"),
        json!("-0.000000001"),
        json!("1e3"),
        json!({"x": 4}),
        json!([1]),
    ];
    let groups = ["tenant_id", "resource", "feature", "model", "region", "n"];
    let paths = [
        "quantity",
        "metadata.n",
        "metadata.region",
        "metadata.deep.x",
    ];
    let event_strategy = (
        0usize..2,
        0usize..2,
        0usize..2,
        0i64..(20 * 86_400),
        1u64..3_000_000_000u64,
        proptest::collection::vec((0usize..5, 0usize..scalars.len()), 0..5),
    );
    let strategy = (
        proptest::collection::vec(event_strategy, 1..80),
        0usize..paths.len(),
        proptest::collection::vec((0usize..3, 0usize..64, 0usize..4, 0usize..3), 3),
        0usize..4,
    );
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    for case in 0..8i64 {
        let (raw, path, shapes, filter) =
            strategy.new_tree(&mut runner).expect("a value").current();
        let base = Utc
            .with_ymd_and_hms(2023, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::days(30 * case);
        let events: Vec<Event> = raw
            .iter()
            .enumerate()
            .map(|(i, (t, r, f, secs, nanos, meta))| {
                let mut map = serde_json::Map::new();
                for (k, v) in meta {
                    let value = scalars[*v].clone();
                    match *k {
                        0 => map.insert("model".into(), value),
                        1 => map.insert("region".into(), value),
                        2 => map.insert("n".into(), value),
                        3 => map.insert("deep".into(), json!({"x": value})),
                        _ => map.insert("deep".into(), value),
                    };
                }
                let mut e = event(
                    ns.id(&format!("m{case}-{i}")),
                    &tenants[*t],
                    ["r0", "r1"][*r],
                    ["f0", "f1"][*f],
                    Quantity::from_nanos(u128::from(*nanos)),
                    base + Duration::seconds(*secs),
                );
                e.metadata = Some(map);
                e
            })
            .collect();
        store.insert_events(&events).await.expect("insert");
        let meter_filter = match filter {
            0 => MeterFilter::default(),
            1 => MeterFilter {
                feature: vec![feature("f1")],
                ..MeterFilter::default()
            },
            2 => MeterFilter {
                metadata: [("region".to_owned(), vec![json!("eu"), json!(null)])].into(),
                ..MeterFilter::default()
            },
            _ => MeterFilter {
                resource: vec![resource("r0"), resource("r1")],
                metadata: [("n".to_owned(), vec![json!(3), json!(1), json!("2.25")])].into(),
                ..MeterFilter::default()
            },
        };
        let mut counting = events.clone();
        for (j, aggregation) in Aggregation::ALL.iter().copied().enumerate() {
            let value = match (aggregation, paths[path]) {
                (Aggregation::UniqueCount, "quantity") => "metadata.model",
                (_, p) => p,
            };
            let spec = MeterSpec::new(aggregation)
                .value(value.parse().expect("path"))
                .filter(meter_filter.clone())
                .dimensions(["model", "region", "n"]);
            // Defined in the store, so a store that keeps meter rollups answers from them.
            let meter = store
                .put_meter(&key(&format!("p{case}")), &spec, base)
                .await
                .expect("put meter");
            // Void a few events after the meter is defined (a rollup must take them out).
            let mut i = j;
            while i < counting.len() {
                let id = counting[i].id.clone();
                store
                    .void_event(&id, Some("property"), base)
                    .await
                    .expect("void");
                counting.remove(i);
                i += 9;
            }
            for window in [
                None,
                Some(WindowType::Hourly),
                Some(WindowType::Daily),
                Some(WindowType::Weekly),
                Some(WindowType::Monthly),
            ] {
                for (z, subset, dim_filter, range) in &shapes {
                    let start = base + Duration::hours(i64::try_from(*range).expect("small") * 30);
                    let end = base + Duration::days(21 - i64::try_from(*range).expect("small"));
                    let mut query = MeterQuery::new(start, end)
                        .tz(zones[*z].parse().expect("zone"))
                        .group_by(
                            groups
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| subset & (1 << i) != 0)
                                .map(|(_, g)| g.parse::<MeterGroup>().expect("group")),
                        );
                    query.window = window;
                    match dim_filter {
                        0 => {}
                        1 => query = query.filter("region", vec!["eu".into(), "us".into()]),
                        2 => {
                            query =
                                query.filter("n", vec!["3".into(), "true".into(), "2.25".into()])
                        }
                        _ => query = query.tenant(tenants[0].clone()),
                    }
                    let got = answer(&store, &meter, &query).await;
                    assert_eq!(
                        got,
                        recount::meter(&counting, &meter, &query),
                        "case {case}, {aggregation:?} over {value}: {query:?}"
                    );
                }
            }
        }
    }
    let _ = Amount::ZERO;
}

/// `unique_count` by whole days grouped by the tenant and every dimension (where a store may
/// answer from per-window distinct counts), by other shapes (where it must unite distinct
/// sets), with events stored before and after the meter is defined and voids after it:
/// every answer equals a recount.
pub async fn unique_counts_by_whole_windows<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b")];
    let base = at("2024-03-01T00:00:00Z");
    let make = |i: usize, phase: &str| {
        let minutes = i64::try_from(i * 37).expect("small");
        with_metadata(
            event(
                ns.id(&format!("{phase}{i}")),
                &tenants[i % 2],
                "api",
                ["f0", "f1"][i % 3 % 2],
                qty("1"),
                base + Duration::minutes(minutes),
            ),
            json!({"user": format!("u{}", i % 7), "model": (["x", "y"][i % 5 % 2])}),
        )
    };
    let before: Vec<Event> = (0..90).map(|i| make(i, "b")).collect();
    store.insert_events(&before).await.expect("insert");
    let meter = store
        .put_meter(
            &key("users"),
            &MeterSpec::new(Aggregation::UniqueCount)
                .value("metadata.user".parse().expect("path"))
                .dimensions(["model"]),
            base,
        )
        .await
        .expect("put meter");
    let after: Vec<Event> = (0..50).map(|i| make(i * 3 + 1, "a")).collect();
    store.insert_events(&after).await.expect("insert");
    let mut counting: Vec<Event> = before.into_iter().chain(after).collect();
    for i in [4, 33, 61, 100] {
        let id = counting[i].id.clone();
        store.void_event(&id, None, base).await.expect("void");
    }
    for i in [100, 61, 33, 4] {
        counting.remove(i);
    }
    let range = MeterQuery::new(base, base + Duration::days(3));
    let by = |groups: &[&str]| {
        groups
            .iter()
            .map(|g| g.parse::<MeterGroup>().expect("group"))
            .collect::<Vec<_>>()
    };
    let queries = [
        range
            .clone()
            .window(WindowType::Daily)
            .group_by(by(&["tenant_id", "model"])),
        range.clone().window(WindowType::Daily).group_by(by(&[
            "model",
            "tenant_id",
            "resource",
            "feature",
        ])),
        range
            .clone()
            .window(WindowType::Daily)
            .group_by(by(&["tenant_id"])),
        range
            .clone()
            .window(WindowType::Hourly)
            .group_by(by(&["tenant_id", "model"])),
        range
            .clone()
            .window(WindowType::Daily)
            .tz("America/New_York".parse().expect("zone"))
            .group_by(by(&["tenant_id", "model"])),
        range
            .clone()
            .window(WindowType::Daily)
            .group_by(by(&["tenant_id", "model"]))
            .filter("model", vec!["x".into()]),
        range.clone().group_by(by(&["tenant_id", "model"])),
    ];
    for query in &queries {
        assert_eq!(
            answer(&store, &meter, query).await,
            recount::meter(&counting, &meter, query),
            "{query:?}"
        );
    }
}
