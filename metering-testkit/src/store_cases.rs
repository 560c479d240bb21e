//! The store conformance cases: one public async function per documented behavior of
//! [`Store`] (and of the engine over it). Each takes a fresh store.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use metering_core::{
    AggregateQuery, ApiKeyId, ConsumeOutcome, Cursor, Error, Event, EventFilter, EventQuery,
    GroupBy, MemoryQuotaCache, Metering, NewApiKey, NewEvent, Paging, Quantity, QuotaPeriod,
    QuotaScope, QuotaSpec, Role, Store, TenantId, UsageLimit, UsageScope, ValidateRequest, Window,
    WindowType,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::fixtures::{Namespace, at, engine, event, feature, now, qty, resource, series};
use crate::recount;

const GROUPINGS: [&str; 8] = [
    "",
    "tenant_id",
    "resource",
    "feature",
    "tenant_id,resource",
    "tenant_id,feature",
    "resource,feature",
    "tenant_id,resource,feature",
];

async fn list_all<S: Store>(store: &S, filter: EventFilter) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(&EventQuery::new(
                filter.clone(),
                Paging::Cursor {
                    after: after.clone(),
                    page_size: 1000,
                },
            ))
            .await
            .expect("list events");
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

fn tenant_filter(t: &TenantId) -> EventFilter {
    EventFilter::all().tenant(t.clone())
}

/// Events come back with every field as written: decimal quantity, microsecond timestamps,
/// metadata, `created_at`.
pub async fn insert_and_list_round_trip<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let mut e = event(
        ns.id("1"),
        &t,
        "billing",
        "invoice_generate",
        qty("12.000000001"),
        at("2025-11-20T10:31:00.123456Z"),
    );
    let serde_json::Value::Object(meta) =
        json!({"user": "u_123", "nested": {"k": [1, 2.5, "x", null]}, "quote": "it's \"fine\""})
    else {
        unreachable!()
    };
    e.metadata = Some(meta);
    let plain = event(
        ns.id("2"),
        &t,
        "api",
        "search",
        Quantity::from_units(1_000_000_000_000_000),
        at("2025-11-20T09:00:00Z"),
    );
    let outcome = store
        .insert_events(&[e.clone(), plain.clone()])
        .await
        .expect("insert");
    assert_eq!(outcome.inserted, vec![true, true]);
    let listed = list_all(&store, tenant_filter(&t)).await;
    assert_eq!(listed, vec![e, plain]);
}

/// A duplicate id is not written again, across batches and within one; the first write wins.
pub async fn duplicate_ids_count_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let ts = now() - Duration::hours(1);
    let a1 = event(ns.id("a"), &t, "r", "f", qty("1"), ts);
    let b = event(ns.id("b"), &t, "r", "f", qty("2"), ts);
    let a5 = event(
        ns.id("a"),
        &t,
        "r",
        "f",
        qty("5"),
        ts + Duration::minutes(1),
    );
    let c = event(ns.id("c"), &t, "r", "f", qty("3"), ts);
    let d = event(ns.id("d"), &t, "r", "f", qty("4"), ts);
    let d9 = event(ns.id("d"), &t, "r", "f", qty("9"), ts);
    assert_eq!(
        store
            .insert_events(&[a1.clone(), b])
            .await
            .expect("insert")
            .inserted,
        [true, true]
    );
    assert_eq!(
        store
            .insert_events(&[a5, c])
            .await
            .expect("insert")
            .inserted,
        [false, true]
    );
    assert_eq!(
        store
            .insert_events(&[d, d9])
            .await
            .expect("insert")
            .inserted,
        [true, false]
    );
    let listed = list_all(&store, tenant_filter(&t)).await;
    assert_eq!(listed.len(), 4);
    let a = listed.iter().find(|e| e.id == a1.id).expect("a stored");
    assert_eq!(a.quantity, qty("1"), "the first write wins");
    assert_eq!(a.timestamp, a1.timestamp);
    let scope = UsageScope {
        tenant_id: t,
        resource: None,
        feature: feature("f"),
    };
    let usage = store
        .sum_usage(
            &scope,
            Window {
                start: ts - Duration::days(1),
                end: ts + Duration::days(1),
            },
        )
        .await
        .expect("sum");
    assert_eq!(usage, qty("10"));
}

/// Batches racing with overlapping ids write each id exactly once.
pub async fn concurrent_overlapping_batches_insert_each_id_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let events = series(&ns, &t, "x", 200, now());
    let mut tasks = Vec::new();
    for k in 0..8usize {
        let store = store.clone();
        let mut batch = events.clone();
        batch.rotate_left(k * 25);
        if k % 2 == 1 {
            batch.reverse();
        }
        tasks.push(tokio::spawn(async move {
            store
                .insert_events(&batch)
                .await
                .expect("insert")
                .inserted_count()
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    assert_eq!(total, 200);
    let listed = list_all(&store, tenant_filter(&t)).await;
    assert_eq!(listed.len(), 200);
    let ids: HashSet<_> = listed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 200);
}

/// A batch with one invalid event is refused whole, listing every problem; nothing is written.
pub async fn invalid_batch_writes_nothing<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let mut batch: Vec<NewEvent> = (0..5)
        .map(|i| NewEvent::new(t.as_str(), "r", "f").with_id(ns.id(&i.to_string()).as_str()))
        .collect();
    batch[3].quantity = Some(Quantity::ZERO);
    batch[4].tenant_id = String::new();
    let Err(Error::Validation(errors)) = engine.ingest(batch).await else {
        panic!("an invalid batch must be refused");
    };
    let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["events[3].quantity", "events[4].tenant_id"]);
    assert!(list_all(&store, tenant_filter(&t)).await.is_empty());
}

/// Each filter and combination selects exactly the matching events.
pub async fn filters_select_exactly<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b")];
    let mut events = Vec::new();
    let mut n = 0;
    for t in &tenants {
        for r in ["billing", "reports"] {
            for f in ["export", "render"] {
                for k in 0..3 {
                    n += 1;
                    events.push(event(
                        ns.id(&n.to_string()),
                        t,
                        r,
                        f,
                        Quantity::ONE,
                        now() - Duration::hours(k * 5),
                    ));
                }
            }
        }
    }
    store.insert_events(&events).await.expect("insert");
    for t in [None, Some(&tenants[0]), Some(&tenants[1])] {
        for r in [None, Some("billing"), Some("reports")] {
            for f in [None, Some("export"), Some("render")] {
                for (start, end) in [
                    (None, None),
                    (Some(now() - Duration::hours(7)), None),
                    (None, Some(now() - Duration::hours(3))),
                ] {
                    let mut filter = EventFilter::all().between(start, end);
                    filter.tenant_id = t.cloned();
                    filter.resource = r.map(resource);
                    filter.feature = f.map(feature);
                    if t.is_none() {
                        // Stay inside this case's namespace on shared databases.
                        let got: usize = {
                            let mut sum = 0;
                            for tenant in &tenants {
                                let mut ft = filter.clone();
                                ft.tenant_id = Some(tenant.clone());
                                sum += list_all(&store, ft).await.len();
                            }
                            sum
                        };
                        let want = events.iter().filter(|e| filter.matches(e)).count();
                        assert_eq!(got, want, "{filter:?}");
                        continue;
                    }
                    let got: BTreeSet<_> = list_all(&store, filter.clone())
                        .await
                        .into_iter()
                        .map(|e| e.id)
                        .collect();
                    let want: BTreeSet<_> = events
                        .iter()
                        .filter(|e| filter.matches(e))
                        .map(|e| e.id.clone())
                        .collect();
                    assert_eq!(got, want, "{filter:?}");
                }
            }
        }
    }
}

/// `start` is inclusive and `end` exclusive, for listings, aggregates and usage.
pub async fn time_ranges_are_half_open<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let t0 = at("2025-11-20T10:00:00Z");
    let t1 = at("2025-11-20T11:00:00Z");
    let events = [
        event(
            ns.id("before"),
            &t,
            "r",
            "f",
            qty("1"),
            t0 - Duration::microseconds(1),
        ),
        event(ns.id("start"), &t, "r", "f", qty("2"), t0),
        event(ns.id("end"), &t, "r", "f", qty("4"), t1),
    ];
    store.insert_events(&events).await.expect("insert");
    let listed = list_all(&store, tenant_filter(&t).between(Some(t0), Some(t1))).await;
    assert_eq!(
        listed.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ns.id("start")]
    );
    let q = AggregateQuery::new(WindowType::Hourly, t0, t1)
        .group_by(GroupBy::NONE)
        .tenant(t.clone());
    let rows = store.aggregate(&q).await.expect("aggregate");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].total_quantity, rows[0].event_count), (qty("2"), 1));
    assert_eq!((rows[0].window_start, rows[0].window_end), (t0, t1));
    let scope = UsageScope {
        tenant_id: t,
        resource: None,
        feature: feature("f"),
    };
    assert_eq!(
        store
            .sum_usage(&scope, Window { start: t0, end: t1 })
            .await
            .expect("sum"),
        qty("2")
    );
}

/// Newest timestamp first; equal timestamps by id, descending.
pub async fn listing_order_is_newest_first_ties_by_id<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let ts = at("2025-11-19T08:00:00Z");
    let events = [
        event(ns.id("b"), &t, "r", "f", qty("1"), ts),
        event(ns.id("c"), &t, "r", "f", qty("1"), ts),
        event(ns.id("a"), &t, "r", "f", qty("1"), ts),
        event(
            ns.id("z"),
            &t,
            "r",
            "f",
            qty("1"),
            ts - Duration::seconds(1),
        ),
        event(
            ns.id("y"),
            &t,
            "r",
            "f",
            qty("1"),
            ts + Duration::microseconds(1),
        ),
    ];
    store.insert_events(&events).await.expect("insert");
    let ids: Vec<_> = list_all(&store, tenant_filter(&t))
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["y", "c", "b", "a", "z"].map(|s| ns.id(s)));
}

/// Numbered pages count the total and cover every event exactly once.
pub async fn numbered_pages_cover_everything_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let events = series(&ns, &t, "p", 23, now());
    store.insert_events(&events).await.expect("insert");
    let mut seen = Vec::new();
    for page in 1..=6 {
        let got = store
            .list_events(&EventQuery::new(
                tenant_filter(&t),
                Paging::Page { page, page_size: 5 },
            ))
            .await
            .expect("page");
        assert_eq!(got.total, Some(23));
        let expected_len = if page <= 4 {
            5
        } else if page == 5 {
            3
        } else {
            0
        };
        assert_eq!(got.events.len(), expected_len, "page {page}");
        seen.extend(got.events.into_iter().map(|e| e.id));
    }
    let mut want: Vec<_> = events.iter().rev().map(|e| e.id.clone()).collect();
    assert_eq!(seen, want);
    want.dedup();
    assert_eq!(want.len(), 23);
}

/// Walking by `next_cursor` returns every matching event once, in order, at any page size.
pub async fn cursor_walk_returns_each_event_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let other = ns.tenant("b");
    let mut events = Vec::new();
    for i in 0..57i64 {
        // Groups of three share a timestamp, to exercise the id tie-break.
        let ts = now() - Duration::minutes(i / 3);
        events.push(event(
            ns.id(&format!("e{i:02}")),
            &t,
            "r",
            if i % 2 == 0 { "f" } else { "g" },
            Quantity::ONE,
            ts,
        ));
        events.push(event(
            ns.id(&format!("o{i:02}")),
            &other,
            "r",
            "f",
            Quantity::ONE,
            ts,
        ));
    }
    store.insert_events(&events).await.expect("insert");
    for (filter, size) in [
        (tenant_filter(&t), 7u32),
        (tenant_filter(&t), 1),
        (tenant_filter(&t).feature(feature("f")), 4),
        (
            tenant_filter(&t).between(Some(now() - Duration::minutes(10)), Some(now())),
            3,
        ),
    ] {
        let mut walked = Vec::new();
        let mut after: Option<Cursor> = None;
        for _ in 0..200 {
            let page = store
                .list_events(&EventQuery::new(
                    filter.clone(),
                    Paging::Cursor {
                        after: after.clone(),
                        page_size: size,
                    },
                ))
                .await
                .expect("page");
            assert!(page.events.len() <= size as usize);
            walked.extend(page.events.into_iter().map(|e| e.id));
            match page.next_cursor {
                Some(c) => after = Some(Cursor::decode(&c.encode()).expect("a cursor round-trips")),
                None => break,
            }
        }
        let mut want: Vec<_> = events
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect();
        want.sort_by(|a, b| (b.timestamp, &b.id).cmp(&(a.timestamp, &a.id)));
        assert_eq!(
            walked,
            want.into_iter().map(|e| e.id).collect::<Vec<_>>(),
            "{filter:?} size {size}"
        );
    }
}

fn spread_events(ns: &Namespace, tenants: &[TenantId], days: i64) -> Vec<Event> {
    let mut events = Vec::new();
    let start = at("2025-10-01T00:00:00Z");
    let mut n = 0u32;
    for day in 0..days {
        for (ti, t) in tenants.iter().enumerate() {
            for k in 0..3i64 {
                n += 1;
                let minutes = (day * 1440)
                    + (i64::from(n) * 97 + k * 331 + i64::try_from(ti).expect("few") * 53) % 1440;
                let r = ["billing", "reports"][usize::try_from(n % 2).expect("small")];
                let f = ["export", "render", "send"][usize::try_from(n % 3).expect("small")];
                let q =
                    Quantity::from_nanos(u128::from(n % 7 + 1) * 100_000_000 + u128::from(n % 3));
                events.push(event(
                    ns.id(&format!("s{n}")),
                    t,
                    r,
                    f,
                    q,
                    start + Duration::minutes(minutes),
                ));
            }
        }
    }
    events
}

/// Every window type, every group-by subset and several zones equal a brute-force recount.
pub async fn aggregates_match_recount_for_every_window_and_grouping<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b")];
    let events = spread_events(&ns, &tenants, 45);
    for chunk in events.chunks(500) {
        store.insert_events(chunk).await.expect("insert");
    }
    let zones: [Tz; 3] = [
        Tz::UTC,
        "America/New_York".parse().expect("zone"),
        "Asia/Kathmandu".parse().expect("zone"),
    ];
    for window in WindowType::ALL {
        for grouping in GROUPINGS {
            for tz in zones {
                for t in &tenants {
                    let q = AggregateQuery::new(
                        *window,
                        at("2025-10-03T07:20:00Z"),
                        at("2025-11-12T00:00:00Z"),
                    )
                    .group_by(grouping.parse().expect("grouping"))
                    .tz(tz)
                    .tenant(t.clone());
                    let got = store.aggregate(&q).await.expect("aggregate");
                    assert_eq!(
                        got,
                        recount::aggregate(&events, &q),
                        "{window} by `{grouping}` in {tz}"
                    );
                }
            }
        }
    }
    let q = AggregateQuery::new(
        WindowType::Daily,
        at("2025-10-01T00:00:00Z"),
        at("2025-12-01T00:00:00Z"),
    )
    .tenant(tenants[1].clone())
    .resource(resource("billing"))
    .feature(feature("render"));
    assert_eq!(
        store.aggregate(&q).await.expect("aggregate"),
        recount::aggregate(&events, &q)
    );
}

/// Windows across DST changes are 23 and 25 hours long, and hourly windows stay one hour.
pub async fn aggregates_across_dst_changes<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let ny: Tz = "America/New_York".parse().expect("zone");
    let mut events = Vec::new();
    for (i, ts) in [
        "2025-03-09T04:30:00Z", // 23:30 on the 8th, EST
        "2025-03-09T05:00:00Z", // midnight on the 9th, EST
        "2025-03-10T03:59:59Z", // 23:59:59 on the 9th, EDT
        "2025-03-10T04:00:00Z", // midnight on the 10th, EDT
        "2025-11-02T04:00:00Z", // midnight on Nov 2nd, EDT
        "2025-11-02T05:30:00Z", // 01:30 EDT
        "2025-11-02T06:30:00Z", // 01:30 EST
        "2025-11-03T04:59:00Z", // 23:59 on Nov 2nd, EST
    ]
    .iter()
    .enumerate()
    {
        events.push(event(
            ns.id(&i.to_string()),
            &t,
            "r",
            "f",
            Quantity::ONE,
            at(ts),
        ));
    }
    store.insert_events(&events).await.expect("insert");
    let q = AggregateQuery::new(
        WindowType::Daily,
        at("2025-03-01T00:00:00Z"),
        at("2025-11-10T00:00:00Z"),
    )
    .group_by(GroupBy::NONE)
    .tz(ny)
    .tenant(t.clone());
    let rows = store.aggregate(&q).await.expect("aggregate");
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.window_start, r.window_end, r.event_count))
        .collect();
    assert_eq!(
        got,
        vec![
            (at("2025-03-08T05:00:00Z"), at("2025-03-09T05:00:00Z"), 1),
            (at("2025-03-09T05:00:00Z"), at("2025-03-10T04:00:00Z"), 2),
            (at("2025-03-10T04:00:00Z"), at("2025-03-11T04:00:00Z"), 1),
            (at("2025-11-02T04:00:00Z"), at("2025-11-03T05:00:00Z"), 4),
        ]
    );
    let q = AggregateQuery::new(
        WindowType::Hourly,
        at("2025-11-02T05:00:00Z"),
        at("2025-11-02T07:00:00Z"),
    )
    .group_by(GroupBy::NONE)
    .tz(ny)
    .tenant(t);
    let rows = store.aggregate(&q).await.expect("aggregate");
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.window_start, r.window_end, r.event_count))
        .collect();
    assert_eq!(
        got,
        vec![
            (at("2025-11-02T05:00:00Z"), at("2025-11-02T06:00:00Z"), 1),
            (at("2025-11-02T06:00:00Z"), at("2025-11-02T07:00:00Z"), 1),
        ]
    );
}

/// Ranges whose edges fall inside a rollup bucket, and zones with odd historic offsets,
/// still count exactly the events inside.
pub async fn aggregate_range_edges_inside_buckets<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let base = at("2025-11-18T10:00:00Z");
    let events: Vec<_> = (0..120i64)
        .map(|i| {
            event(
                ns.id(&i.to_string()),
                &t,
                "r",
                "f",
                qty("0.5"),
                base + Duration::seconds(i * 37),
            )
        })
        .collect();
    store.insert_events(&events).await.expect("insert");
    for (start, end) in [
        ("2025-11-18T10:07:13Z", "2025-11-18T10:52:01.5Z"),
        ("2025-11-18T10:00:00.000001Z", "2025-11-18T10:15:00Z"),
        ("2025-11-18T10:14:59Z", "2025-11-18T10:15:01Z"),
        ("2025-11-18T09:00:00Z", "2025-11-18T12:00:00Z"),
    ] {
        for window in [WindowType::Hourly, WindowType::Daily] {
            let q = AggregateQuery::new(window, at(start), at(end))
                .group_by(GroupBy::NONE)
                .tenant(t.clone());
            assert_eq!(
                store.aggregate(&q).await.expect("aggregate"),
                recount::aggregate(&events, &q),
                "{start}..{end}"
            );
        }
    }
    // Historic zone offsets that are not multiples of 15 minutes (Amsterdam, 1920: +00:19:32).
    let old: Vec<_> = (0..50i64)
        .map(|i| {
            event(
                ns.id(&format!("old{i}")),
                &t,
                "r",
                "f",
                Quantity::ONE,
                at("1920-06-01T00:00:00Z") + Duration::minutes(i * 61),
            )
        })
        .collect();
    store.insert_events(&old).await.expect("insert");
    let q = AggregateQuery::new(
        WindowType::Hourly,
        at("1920-05-31T00:00:00Z"),
        at("1920-06-04T00:00:00Z"),
    )
    .group_by(GroupBy::NONE)
    .tz("Europe/Amsterdam".parse().expect("zone"))
    .tenant(t);
    assert_eq!(
        store.aggregate(&q).await.expect("aggregate"),
        recount::aggregate(&old, &q)
    );
}

/// Sums of decimals are exact: a thousand tenths are exactly 100.
pub async fn exact_decimal_sums<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let ts = at("2025-11-20T01:00:00Z");
    let mut events: Vec<_> = (0..1000)
        .map(|i| event(ns.id(&format!("d{i}")), &t, "r", "tenth", qty("0.1"), ts))
        .collect();
    events.extend((0..7).map(|i| {
        event(
            ns.id(&format!("n{i}")),
            &t,
            "r",
            "nano",
            qty("0.000000001"),
            ts,
        )
    }));
    events.extend((0..3).map(|i| {
        event(
            ns.id(&format!("b{i}")),
            &t,
            "r",
            "big",
            qty("1000000000000000"),
            ts,
        )
    }));
    events.extend((0..3).map(|i| {
        event(
            ns.id(&format!("m{i}")),
            &t,
            "r",
            "mixed",
            qty("999999999999999.999999999"),
            ts,
        )
    }));
    store.insert_events(&events).await.expect("insert");
    let q = AggregateQuery::new(
        WindowType::Daily,
        at("2025-11-20T00:00:00Z"),
        at("2025-11-21T00:00:00Z"),
    )
    .group_by("feature".parse().expect("grouping"))
    .tenant(t.clone());
    let rows = store.aggregate(&q).await.expect("aggregate");
    let totals: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.feature.as_ref().expect("grouped").to_string(),
                r.total_quantity.to_string(),
            )
        })
        .collect();
    assert_eq!(
        totals,
        [
            ("big", "3000000000000000"),
            ("mixed", "2999999999999999.999999997"),
            ("nano", "0.000000007"),
            ("tenth", "100")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let window = Window {
        start: at("2025-11-20T00:00:00Z"),
        end: at("2025-11-21T00:00:00Z"),
    };
    let scope = UsageScope {
        tenant_id: t,
        resource: None,
        feature: feature("tenth"),
    };
    assert_eq!(
        store.sum_usage(&scope, window).await.expect("sum"),
        Quantity::from_units(100)
    );
}

/// An event with a past timestamp counts in its own window as soon as it is stored.
pub async fn late_events_land_in_their_own_window<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    store
        .insert_events(&series(&ns, &t, "now", 5, now()))
        .await
        .expect("insert");
    let q = AggregateQuery::new(
        WindowType::Daily,
        now() - Duration::days(20),
        now() + Duration::hours(1),
    )
    .group_by(GroupBy::NONE)
    .tenant(t.clone());
    let before = store.aggregate(&q).await.expect("aggregate");
    assert_eq!(before.len(), 1);
    let late = event(
        ns.id("late"),
        &t,
        "api",
        "search",
        qty("2.5"),
        now() - Duration::days(10),
    );
    store.insert_events(&[late]).await.expect("insert");
    let after = store.aggregate(&q).await.expect("aggregate");
    assert_eq!(after.len(), 2);
    assert_eq!(after[0].window_start, at("2025-11-10T00:00:00Z"));
    assert_eq!(after[0].total_quantity, qty("2.5"));
    assert_eq!(after[1], before[0], "the current window is untouched");
}

/// Usage of a scope with a resource counts that resource only; without, every resource.
pub async fn sum_usage_scopes_and_windows<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let o = ns.tenant("b");
    let ts = at("2025-11-20T05:00:00Z");
    let events = [
        event(ns.id("1"), &t, "billing", "f", qty("1.5"), ts),
        event(ns.id("2"), &t, "reports", "f", qty("2"), ts),
        event(ns.id("3"), &t, "billing", "g", qty("4"), ts),
        event(ns.id("4"), &o, "billing", "f", qty("8"), ts),
        event(
            ns.id("5"),
            &t,
            "billing",
            "f",
            qty("16"),
            at("2025-11-21T00:00:00Z"),
        ),
    ];
    store.insert_events(&events).await.expect("insert");
    let day = Window {
        start: at("2025-11-20T00:00:00Z"),
        end: at("2025-11-21T00:00:00Z"),
    };
    let any = UsageScope {
        tenant_id: t.clone(),
        resource: None,
        feature: feature("f"),
    };
    let billing = UsageScope {
        resource: Some(resource("billing")),
        ..any.clone()
    };
    assert_eq!(store.sum_usage(&any, day).await.expect("sum"), qty("3.5"));
    assert_eq!(
        store.sum_usage(&billing, day).await.expect("sum"),
        qty("1.5")
    );
    let two_days = Window {
        start: day.start,
        end: at("2025-11-22T00:00:00Z"),
    };
    assert_eq!(
        store.sum_usage(&billing, two_days).await.expect("sum"),
        qty("17.5")
    );
    let none = UsageScope {
        tenant_id: ns.tenant("nobody"),
        resource: None,
        feature: feature("f"),
    };
    assert_eq!(
        store.sum_usage(&none, two_days).await.expect("sum"),
        Quantity::ZERO
    );
}

/// Upsert by identity keeps id and `created_at`; listing, candidates and delete behave.
pub async fn quota_upsert_list_delete<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature(&format!("{}-feature", ns.tenant("f")));
    let spec = QuotaSpec::new(
        QuotaScope::Tenant(t.clone()),
        f.clone(),
        qty("100"),
        QuotaPeriod::Monthly,
    );
    let first = store.upsert_quota(&spec, now()).await.expect("upsert");
    let mut changed = spec
        .clone()
        .with_alert_threshold(90)
        .with_tz("Europe/Paris".parse().expect("zone"));
    changed.limit = qty("250.5");
    let second = store
        .upsert_quota(&changed, now() + Duration::minutes(5))
        .await
        .expect("upsert");
    assert_eq!(second.id, first.id);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.updated_at, now() + Duration::minutes(5));
    assert_eq!(second.spec, changed);
    let with_resource = store
        .upsert_quota(&spec.clone().with_resource(resource("billing")), now())
        .await
        .expect("upsert");
    assert_ne!(with_resource.id, first.id);
    let default = store
        .upsert_quota(
            &QuotaSpec::new(
                QuotaScope::AllTenants,
                f.clone(),
                qty("10"),
                QuotaPeriod::Daily,
            ),
            now(),
        )
        .await
        .expect("upsert");
    let other_feature = store
        .upsert_quota(
            &QuotaSpec::new(
                QuotaScope::Tenant(t.clone()),
                feature("unrelated"),
                qty("1"),
                QuotaPeriod::Daily,
            ),
            now(),
        )
        .await
        .expect("upsert");
    let listed = store
        .list_quotas(Some(&QuotaScope::Tenant(t.clone())))
        .await
        .expect("list");
    let ids: BTreeSet<_> = listed.iter().map(|q| q.id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([first.id, with_resource.id, other_feature.id])
    );
    assert_eq!(listed.iter().find(|q| q.id == first.id), Some(&second));
    let candidates = store.quota_candidates(&t, &f).await.expect("candidates");
    let ids: BTreeSet<_> = candidates.iter().map(|q| q.id).collect();
    assert_eq!(
        ids,
        BTreeSet::from([first.id, with_resource.id, default.id])
    );
    let all = store.list_quotas(None).await.expect("list");
    assert!(all.iter().any(|q| q.id == default.id));
    store.delete_quota(first.id).await.expect("delete");
    assert!(matches!(
        store.delete_quota(first.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(
        !store
            .quota_candidates(&t, &f)
            .await
            .expect("candidates")
            .iter()
            .any(|q| q.id == first.id)
    );
}

/// `quota(id)` and `api_key(id)` find one record: as stored, `None` when unknown or
/// deleted, revoked keys included.
pub async fn records_are_found_by_id<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let spec = QuotaSpec::new(
        QuotaScope::Tenant(ns.tenant("a")),
        feature("lookups"),
        qty("12.5"),
        QuotaPeriod::Daily,
    );
    let quota = store.upsert_quota(&spec, now()).await.expect("upsert");
    assert_eq!(
        store.quota(quota.id).await.expect("lookup"),
        Some(quota.clone())
    );
    assert_eq!(
        store
            .quota(metering_core::QuotaId::generate())
            .await
            .expect("lookup"),
        None
    );
    store.delete_quota(quota.id).await.expect("delete");
    assert_eq!(store.quota(quota.id).await.expect("lookup"), None);

    let (engine, _clock) = engine(&store);
    let created = engine
        .create_api_key(NewApiKey::new("lookup", Role::Read).for_tenant(ns.tenant("a")))
        .await
        .expect("create");
    let found = store.api_key(created.key.id).await.expect("lookup");
    assert_eq!(found.as_ref(), Some(&created.key));
    assert_eq!(
        store.api_key(ApiKeyId::generate()).await.expect("lookup"),
        None
    );
    engine.revoke_api_key(created.key.id).await.expect("revoke");
    let revoked = store
        .api_key(created.key.id)
        .await
        .expect("lookup")
        .expect("still found");
    assert!(revoked.revoked_at.is_some());
}

/// The most specific quota governs, and each period resets at its boundary.
pub async fn quota_matching_and_periods<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature(&format!("{}-f", ns.tenant("x")));
    let (engine, clock) = engine(&store);
    let billing = resource("billing");
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::AllTenants,
            f.clone(),
            qty("1000"),
            QuotaPeriod::Yearly,
        ))
        .await
        .expect("quota");
    engine
        .upsert_quota(
            QuotaSpec::new(
                QuotaScope::AllTenants,
                f.clone(),
                qty("500"),
                QuotaPeriod::Monthly,
            )
            .with_resource(billing.clone()),
        )
        .await
        .expect("quota");
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("50"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    engine
        .upsert_quota(
            QuotaSpec::new(
                QuotaScope::Tenant(t.clone()),
                f.clone(),
                qty("5"),
                QuotaPeriod::Hourly,
            )
            .with_resource(billing.clone())
            .with_alert_threshold(60),
        )
        .await
        .expect("quota");
    let check = |tenant: &TenantId, res: Option<&metering_core::Resource>| {
        let mut r = ValidateRequest::new(tenant.clone(), f.clone());
        r.resource = res.cloned();
        r
    };
    let d = engine
        .validate(check(&t, Some(&billing)))
        .await
        .expect("validate");
    assert_eq!(
        (d.limit, d.period, d.reset_at),
        (
            Some(qty("5")),
            Some(QuotaPeriod::Hourly),
            Some(at("2025-11-20T11:00:00Z"))
        )
    );
    let d = engine.validate(check(&t, None)).await.expect("validate");
    assert_eq!(
        (d.limit, d.period, d.reset_at),
        (
            Some(qty("50")),
            Some(QuotaPeriod::Daily),
            Some(at("2025-11-21T00:00:00Z"))
        )
    );
    let u = ns.tenant("other");
    let d = engine
        .validate(check(&u, Some(&billing)))
        .await
        .expect("validate");
    assert_eq!(
        (d.limit, d.period, d.reset_at),
        (
            Some(qty("500")),
            Some(QuotaPeriod::Monthly),
            Some(at("2025-12-01T00:00:00Z"))
        )
    );
    let d = engine.validate(check(&u, None)).await.expect("validate");
    assert_eq!(
        (d.limit, d.period, d.reset_at),
        (
            Some(qty("1000")),
            Some(QuotaPeriod::Yearly),
            Some(at("2026-01-01T00:00:00Z"))
        )
    );
    let d = engine
        .validate(ValidateRequest::new(t.clone(), feature("no-quota-here")))
        .await
        .expect("validate");
    assert!(d.allowed && d.limit.is_none() && d.remaining.is_none());
    assert_eq!(d.message.as_deref(), Some("no quota configured"));

    // Usage in the hourly window: 3 of 5 -> alert at 60 %, 3 more refused, reset next hour.
    let consume = |q: &str| check(&t, Some(&billing)).with_quantity(qty(q)).consuming();
    let d = engine.validate(consume("3")).await.expect("consume");
    assert!(d.allowed && d.alert);
    assert_eq!((d.current_usage, d.remaining), (qty("3"), Some(qty("2"))));
    let d = engine.validate(consume("3")).await.expect("consume");
    assert!(!d.allowed);
    assert!(d.message.as_deref().is_some_and(|m| m.contains("exceeded")));
    assert_eq!(d.current_usage, qty("3"));
    let d = engine
        .validate(check(&t, Some(&billing)).with_quantity(qty("2")))
        .await
        .expect("validate");
    assert!(d.allowed, "exactly reaching the limit is allowed");
    clock.set(at("2025-11-20T11:00:00Z"));
    let d = engine.validate(consume("3")).await.expect("consume");
    assert!(d.allowed);
    assert_eq!(d.current_usage, qty("3"));
    // The daily any-resource quota saw both consumes.
    let d = engine.validate(check(&t, None)).await.expect("validate");
    assert_eq!(d.current_usage, qty("6"));

    // A quota in another zone resets at local midnight.
    let g = feature(&format!("{}-tz", ns.tenant("x")));
    engine
        .upsert_quota(
            QuotaSpec::new(
                QuotaScope::Tenant(t.clone()),
                g.clone(),
                qty("1"),
                QuotaPeriod::Daily,
            )
            .with_tz("Asia/Kolkata".parse().expect("zone")),
        )
        .await
        .expect("quota");
    let d = engine
        .validate(ValidateRequest::new(t, g))
        .await
        .expect("validate");
    assert_eq!(d.reset_at, Some(at("2025-11-20T18:30:00Z")));
}

/// A check sees every acknowledged event, whether or not its counter was cached before.
pub async fn validate_sees_every_acknowledged_event<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("search");
    let (engine, _) = engine(&store);
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("100"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    let ingest = |n: usize, q: &'static str, tag: &'static str| {
        let engine = engine.clone();
        let t = t.clone();
        let ns = ns.clone();
        async move {
            let batch = (0..n)
                .map(|i| {
                    NewEvent::new(t.as_str(), "api", "search")
                        .with_id(ns.id(&format!("{tag}{i}")).as_str())
                        .with_quantity(qty(q))
                })
                .collect();
            engine.ingest(batch).await.expect("ingest")
        }
    };
    let usage = || async {
        engine
            .validate(ValidateRequest::new(t.clone(), f.clone()))
            .await
            .expect("validate")
            .current_usage
    };
    ingest(3, "1.5", "a").await;
    assert_eq!(usage().await, qty("4.5"));
    ingest(4, "0.25", "b").await;
    assert_eq!(usage().await, qty("5.5"));
    let receipt = ingest(4, "0.25", "b").await;
    assert_eq!((receipt.events_processed, receipt.duplicates), (0, 4));
    assert_eq!(usage().await, qty("5.5"), "duplicates are not counted");
    // A late event for yesterday does not count today; one for earlier today does.
    let mut late =
        NewEvent::new(t.as_str(), "api", "search").with_timestamp(now() - Duration::days(1));
    late.quantity = Some(qty("7"));
    engine.ingest(vec![late]).await.expect("ingest");
    let mut today =
        NewEvent::new(t.as_str(), "api", "search").with_timestamp(at("2025-11-20T00:00:00Z"));
    today.quantity = Some(qty("0.5"));
    engine.ingest(vec![today]).await.expect("ingest");
    assert_eq!(usage().await, qty("6"));
}

async fn race_consumes(
    engines: &[Metering],
    t: &TenantId,
    f: &metering_core::Feature,
    tasks: usize,
) -> usize {
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..tasks {
        let engine = engines[i % engines.len()].clone();
        let request = ValidateRequest::new(t.clone(), f.clone())
            .with_resource(resource("api"))
            .consuming();
        let admitted = admitted.clone();
        handles.push(tokio::spawn(async move {
            let d = engine.validate(request).await.expect("consume");
            if d.allowed {
                assert!(d.event_id.is_some());
                admitted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    admitted.load(Ordering::SeqCst)
}

/// 64 tasks racing for a limit of 10 admit exactly 10, and exactly 10 events are stored.
pub async fn consume_is_atomic_under_concurrency<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("render");
    let (engine, _) = engine(&store);
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("10"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    assert_eq!(
        race_consumes(std::slice::from_ref(&engine), &t, &f, 64).await,
        10
    );
    assert_eq!(list_all(&store, tenant_filter(&t)).await.len(), 10);
    let d = engine
        .validate(ValidateRequest::new(t, f))
        .await
        .expect("validate");
    assert_eq!((d.current_usage, d.allowed), (qty("10"), false));
}

/// Two engines (each with its own cache) over two handles of one store never over-admit.
pub async fn consume_through_two_engines_never_exceeds_limit<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("render");
    let (a, _) = crate::fixtures::engine_with_cache(&store, &MemoryQuotaCache::new());
    let (b, _) = crate::fixtures::engine_with_cache(&store.clone(), &MemoryQuotaCache::new());
    a.upsert_quota(QuotaSpec::new(
        QuotaScope::Tenant(t.clone()),
        f.clone(),
        qty("10"),
        QuotaPeriod::Daily,
    ))
    .await
    .expect("quota");
    // Warm b's counter first, so it must see a's consumes through the store.
    assert!(
        b.validate(ValidateRequest::new(t.clone(), f.clone()))
            .await
            .expect("validate")
            .allowed
    );
    assert_eq!(race_consumes(&[a, b], &t, &f, 64).await, 10);
    assert_eq!(list_all(&store, tenant_filter(&t)).await.len(), 10);
}

/// A retried consume with the same event id is not recorded twice.
pub async fn consume_retry_with_same_id_counts_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("render");
    let (engine, _) = engine(&store);
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("10"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    let request = ValidateRequest::new(t.clone(), f.clone())
        .with_resource(resource("api"))
        .with_quantity(qty("4"))
        .consuming()
        .with_id(ns.id("retry"));
    let first = engine.validate(request.clone()).await.expect("consume");
    let second = engine.validate(request).await.expect("consume");
    assert!(first.allowed && second.allowed);
    assert_eq!(first.event_id, second.event_id);
    assert_eq!(second.current_usage, qty("4"));
    assert_eq!(list_all(&store, tenant_filter(&t)).await.len(), 1);
    // At the store level too.
    let e = event(ns.id("direct"), &t, "api", "render", qty("1"), now());
    let limit = UsageLimit {
        scope: UsageScope {
            tenant_id: t,
            resource: None,
            feature: f,
        },
        window: QuotaPeriod::Daily.window(now(), Tz::UTC),
        limit: qty("10"),
    };
    assert_eq!(
        store.consume(&e, &limit).await.expect("consume"),
        ConsumeOutcome::Admitted {
            usage_before: qty("4")
        }
    );
    assert_eq!(
        store.consume(&e, &limit).await.expect("consume"),
        ConsumeOutcome::Duplicate { usage: qty("5") }
    );
    let big = event(
        ns.id("big"),
        &e.tenant_id,
        "api",
        "render",
        qty("5.000000001"),
        now(),
    );
    assert_eq!(
        store.consume(&big, &limit).await.expect("consume"),
        ConsumeOutcome::Denied { usage: qty("5") }
    );
}

/// Keys are found by hash only, stop working when revoked or expired, and record use.
pub async fn api_keys_lookup_revoke_expiry<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let (engine, clock) = engine(&store);
    let created = engine
        .create_api_key(NewApiKey::new("ingest key", Role::Ingest).for_tenant(ns.tenant("a")))
        .await
        .expect("create");
    assert!(created.secret.starts_with("mk_"));
    let principal = engine
        .authenticate(&created.secret)
        .await
        .expect("authenticate");
    assert_eq!(principal.key.id, created.key.id);
    assert_eq!(principal.key.tenant_id, Some(ns.tenant("a")));
    assert!(matches!(
        engine.authenticate("mk_not-a-key").await,
        Err(Error::Unauthenticated(_))
    ));
    let stored = store
        .api_key_by_hash(&metering_core::KeyHash::of(&created.secret))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(stored.key, created.key);
    assert!(matches!(
        store.insert_api_key(&created.key, &stored.hash).await,
        Err(Error::Conflict(_))
    ));

    engine.flush_key_usage().await.expect("flush");
    let listed = store.list_api_keys().await.expect("list");
    let key = listed
        .iter()
        .find(|k| k.id == created.key.id)
        .expect("listed");
    assert_eq!(key.last_used_at, Some(now()));
    clock.advance(Duration::minutes(5));
    engine
        .authenticate(&created.secret)
        .await
        .expect("authenticate");
    let listed = engine.list_api_keys().await.expect("list");
    let key = listed
        .iter()
        .find(|k| k.id == created.key.id)
        .expect("listed");
    assert_eq!(
        key.last_used_at,
        Some(now() + Duration::minutes(5)),
        "pending uses show before a flush"
    );

    engine.revoke_api_key(created.key.id).await.expect("revoke");
    assert!(matches!(
        engine.authenticate(&created.secret).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(matches!(
        engine.revoke_api_key(ApiKeyId::generate()).await,
        Err(Error::NotFound(_))
    ));

    let expiring = engine
        .create_api_key(
            NewApiKey::new("short", Role::Read).expiring(clock.now() + Duration::hours(1)),
        )
        .await
        .expect("create");
    engine
        .authenticate(&expiring.secret)
        .await
        .expect("still valid");
    clock.advance(Duration::hours(1));
    assert!(matches!(
        engine.authenticate(&expiring.secret).await,
        Err(Error::Unauthenticated(_))
    ));
    assert!(
        engine
            .create_api_key(NewApiKey::new("past", Role::Read).expiring(now()))
            .await
            .is_err()
    );
}

use metering_core::Clock as _;

/// Property: for random events, every aggregate equals a brute-force recount.
pub async fn aggregates_match_recount_property<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b"), ns.tenant("c")];
    let zones = [
        "UTC",
        "America/New_York",
        "Europe/London",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
    ];
    let strategy = (
        proptest::collection::vec(
            (
                0usize..3,
                0usize..2,
                0usize..2,
                0i64..(10 * 86_400),
                1u64..5_000_000_000u64,
            ),
            1..120,
        ),
        0usize..4,
        0usize..8,
        0usize..zones.len(),
        0i64..(5 * 86_400),
        1i64..(10 * 86_400),
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    for case in 0..24i64 {
        let (raw, w, g, z, from, len) = strategy.new_tree(&mut runner).expect("a value").current();
        // Each case lives in its own 40-day slot, so earlier cases do not leak in.
        let base = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .expect("valid")
            + Duration::days(40 * case);
        let events: Vec<Event> = raw
            .iter()
            .enumerate()
            .map(|(i, (t, r, f, secs, nanos))| {
                let mut e = event(
                    ns.id(&format!("p{case}-{i}")),
                    &tenants[*t],
                    ["r0", "r1"][*r],
                    ["f0", "f1"][*f],
                    Quantity::from_nanos(u128::from(*nanos)),
                    base + Duration::seconds(*secs),
                );
                e.created_at = base;
                e
            })
            .collect();
        store.insert_events(&events).await.expect("insert");
        let tz: Tz = zones[z].parse().expect("zone");
        for t in &tenants {
            let q = AggregateQuery::new(
                WindowType::ALL[w],
                base + Duration::seconds(from),
                base + Duration::seconds(from + len),
            )
            .group_by(GROUPINGS[g].parse().expect("grouping"))
            .tz(tz)
            .tenant(t.clone());
            assert_eq!(
                store.aggregate(&q).await.expect("aggregate"),
                recount::aggregate(&events, &q),
                "case {case}: {q:?}"
            );
        }
    }
}
