//! Ingest, idempotency and listing.
//!
//! Cases:
//! - [`insert_and_list_round_trip`]
//! - [`duplicate_ids_count_once`]
//! - [`concurrent_overlapping_batches_insert_each_id_once`]
//! - [`invalid_batch_writes_nothing`]
//! - [`filters_select_exactly`]
//! - [`time_ranges_are_half_open`]
//! - [`listing_order_is_newest_first_ties_by_id`]
//! - [`numbered_pages_cover_everything_once`]
//! - [`page_totals_equal_a_recount`]
//! - [`cursor_walk_returns_each_event_once`]

use super::*;

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

/// A numbered page's `total` equals a recount of the matching events for every filter and
/// range: open or closed, on bucket boundaries or off them, over weeks of events.
pub async fn page_totals_equal_a_recount<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let (t, other) = (ns.tenant("a"), ns.tenant("b"));
    let base = at("2025-10-01T00:00:00Z");
    let mut events = Vec::new();
    for i in 0..400i64 {
        // Spread over about seven weeks, off every bucket boundary, with some exactly on one.
        let offset = if i % 37 == 0 {
            Duration::days(i % 45)
        } else {
            Duration::seconds(i * 9_173 + 7) + Duration::microseconds(i * 13 % 1_000_000)
        };
        let tenant = if i % 4 == 0 { &other } else { &t };
        events.push(event(
            ns.id(&format!("t{i:03}")),
            tenant,
            ["r1", "r2"][usize::try_from(i % 2).unwrap_or(0)],
            ["f1", "f2", "f3"][usize::try_from(i % 3).unwrap_or(0)],
            Quantity::ONE,
            base + offset,
        ));
    }
    store.insert_events(&events).await.expect("insert");
    let edges = [
        None,
        Some(base),
        Some(base + Duration::days(3) + Duration::minutes(7)),
        Some(base + Duration::days(10)),
        Some(base + Duration::days(20) + Duration::hours(5) + Duration::microseconds(1)),
        Some(base + Duration::days(60)),
    ];
    let mut checked = 0;
    for start in edges {
        for end in edges {
            for (r, f) in [(None, None), (Some("r1"), None), (Some("r2"), Some("f3"))] {
                let mut filter = tenant_filter(&t).between(start, end);
                filter.resource = r.map(resource);
                filter.feature = f.map(feature);
                let want = events.iter().filter(|e| filter.matches(e)).count();
                let page = store
                    .list_events(&EventQuery::new(
                        filter.clone(),
                        Paging::Page {
                            page: 1,
                            page_size: 10,
                        },
                    ))
                    .await
                    .expect("page");
                assert_eq!(
                    page.total,
                    Some(u64::try_from(want).unwrap_or(0)),
                    "{filter:?}"
                );
                assert_eq!(page.events.len(), want.min(10), "{filter:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 108);
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
