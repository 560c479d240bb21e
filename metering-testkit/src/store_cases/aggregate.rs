//! Aggregates and usage sums.
//!
//! Cases:
//! - [`aggregates_match_recount_for_every_window_and_grouping`]
//! - [`aggregates_across_dst_changes`]
//! - [`aggregate_range_edges_inside_buckets`]
//! - [`exact_decimal_sums`]
//! - [`late_events_land_in_their_own_window`]
//! - [`sum_usage_scopes_and_windows`]
//! - [`aggregates_match_recount_property`]

use super::*;

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
