//! Corrections: voided and amended events stop counting everywhere, at once, exactly.
//!
//! Cases:
//! - [`void_stops_counting_everywhere`]
//! - [`amend_replaces_in_one_step`]
//! - [`concurrent_corrections_apply_once`]
//! - [`corrections_reach_quota_usage_through_the_cache`]
//! - [`corrections_match_recount_property`]

use metering_core::{
    Aggregation, AmendOutcome, Amendment, Event, EventId, MeterKey, MeterQuery, MeterSpec,
    QuotaCache,
};

use super::*;
use crate::fixtures::engine_with_cache;

/// The events that still count.
fn counting(events: &[Event]) -> Vec<Event> {
    events.iter().filter(|e| e.counts()).cloned().collect()
}

/// Aggregates of `tenant` by every window type and grouping equal a recount of `expected`.
async fn assert_aggregates<S: Store>(store: &S, tenant: &TenantId, expected: &[Event], ctx: &str) {
    for w in WindowType::ALL {
        for g in GROUPINGS {
            let q = AggregateQuery::new(*w, at("2025-11-01T00:00:00Z"), at("2025-12-01T00:00:00Z"))
                .group_by(g.parse().expect("grouping"))
                .tz("Asia/Kolkata".parse().expect("zone"))
                .tenant(tenant.clone());
            assert_eq!(
                store.aggregate(&q).await.expect("aggregate"),
                recount::aggregate(expected, &q),
                "{ctx}: {q:?}"
            );
        }
    }
}

fn amendment(quantity: Option<&str>, timestamp: Option<&str>, id: Option<&str>) -> Amendment {
    let mut a = Amendment::default();
    a.quantity = quantity.map(qty);
    a.timestamp = timestamp.map(at);
    a.id = id.map(str::to_owned);
    a.reason = Some("wrong quantity".to_owned());
    a
}

/// A voided event is kept (listed only when asked, with its time and reason) and counts in
/// no aggregate, usage sum, page total or meter; voiding again changes nothing.
pub async fn void_stops_counting_everywhere<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let mut events = vec![
        event(
            ns.id("e1"),
            &t,
            "api",
            "search",
            qty("1.5"),
            at("2025-11-03T10:07:00Z"),
        ),
        event(
            ns.id("e2"),
            &t,
            "api",
            "search",
            qty("2.25"),
            at("2025-11-03T10:08:00Z"),
        ),
        event(
            ns.id("e3"),
            &t,
            "api",
            "export",
            qty("4"),
            at("2025-11-19T23:59:59Z"),
        ),
    ];
    store.insert_events(&events).await.expect("insert");
    let meter = MeterKey::new("calls").expect("key");
    engine
        .define_meter(&meter, &MeterSpec::new(Aggregation::Count))
        .await
        .expect("meter");

    let voided = engine
        .void_event(&ns.id("e2"), Some("sent twice".to_owned()))
        .await
        .expect("void");
    assert_eq!(voided.id, ns.id("e2"));
    assert_eq!(voided.void_reason.as_deref(), Some("sent twice"));
    let at_void = voided.voided_at.expect("voided_at is set");
    assert!(!voided.counts());
    events[1] = voided.clone();

    assert_aggregates(&store, &t, &counting(&events), "after a void").await;
    let day = Window {
        start: at("2025-11-03T00:00:00Z"),
        end: at("2025-11-04T00:00:00Z"),
    };
    let scope = UsageScope {
        tenant_id: t.clone(),
        resource: None,
        feature: feature("search"),
    };
    assert_eq!(store.sum_usage(&scope, day).await.expect("sum"), qty("1.5"));
    let listed = list_all(&store, tenant_filter(&t)).await;
    assert_eq!(listed.len(), 2, "voided events are not listed by default");
    let all = list_all(&store, tenant_filter(&t).including_voided()).await;
    assert_eq!(all.len(), 3);
    assert!(all.contains(&voided), "listed with voided_at and reason");
    for (filter, total) in [
        (tenant_filter(&t), 2),
        (tenant_filter(&t).including_voided(), 3),
    ] {
        let page = store
            .list_events(&EventQuery::new(
                filter,
                Paging::Page {
                    page: 1,
                    page_size: 10,
                },
            ))
            .await
            .expect("page");
        assert_eq!(page.total, Some(total));
    }
    let report = engine
        .query_meter(
            &meter,
            &MeterQuery::new(at("2025-11-01T00:00:00Z"), at("2025-12-01T00:00:00Z"))
                .tenant(t.clone()),
        )
        .await
        .expect("meter");
    assert_eq!(report.data[0].event_count, 2, "meters skip voided events");

    // Again: nothing changes, not even the time or the reason.
    let again = engine
        .void_event(&ns.id("e2"), Some("other".to_owned()))
        .await
        .expect("void again");
    assert_eq!(again.voided_at, Some(at_void));
    assert_eq!(again.void_reason.as_deref(), Some("sent twice"));
    assert_aggregates(&store, &t, &counting(&events), "after a second void").await;
    assert_eq!(
        store
            .void_event(&ns.id("missing"), None, now())
            .await
            .expect("void"),
        None
    );
    assert!(matches!(
        engine.void_event(&ns.id("missing"), None).await,
        Err(Error::NotFound(_))
    ));
    // A voided id stays taken: ingesting it again is a duplicate and counts nothing.
    let outcome = store.insert_events(&events[1..2]).await.expect("insert");
    assert_eq!(outcome.inserted, [false]);
    assert_aggregates(
        &store,
        &t,
        &counting(&events),
        "after re-sending a voided id",
    )
    .await;
}

/// An amend voids the original and stores the replacement in one step; a retry with the same
/// id returns the same replacement; a voided original, a taken id and an unknown id are
/// refused; the history lists the chain.
pub async fn amend_replaces_in_one_step<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let mut events = vec![
        event(
            ns.id("o"),
            &t,
            "api",
            "search",
            qty("10"),
            at("2025-11-03T10:07:00Z"),
        ),
        event(
            ns.id("other"),
            &t,
            "api",
            "search",
            qty("1"),
            at("2025-11-04T10:00:00Z"),
        ),
    ];
    events[0].metadata = Some(json!({"model": "a"}).as_object().expect("object").clone());
    store.insert_events(&events).await.expect("insert");

    // Quantity and timestamp corrected: the replacement moves to another day.
    let r1 = ns.id("r1");
    let amended = engine
        .amend_event(
            &ns.id("o"),
            amendment(Some("7.5"), Some("2025-11-10T01:00:00Z"), Some(r1.as_str())),
        )
        .await
        .expect("amend");
    assert!(!amended.replayed);
    let replacement = amended.event;
    assert_eq!(replacement.id, r1);
    assert_eq!(replacement.amends, Some(ns.id("o")));
    assert_eq!(replacement.quantity, qty("7.5"));
    assert_eq!(replacement.timestamp, at("2025-11-10T01:00:00Z"));
    assert_eq!(replacement.metadata, events[0].metadata, "copied");
    assert_eq!(
        (
            &replacement.tenant_id,
            replacement.resource.as_str(),
            replacement.feature.as_str()
        ),
        (&t, "api", "search")
    );
    let original = store
        .event(&ns.id("o"))
        .await
        .expect("event")
        .expect("kept");
    assert!(!original.counts());
    assert_eq!(original.void_reason.as_deref(), Some("wrong quantity"));
    events[0] = original;
    events.push(replacement.clone());
    assert_aggregates(&store, &t, &counting(&events), "after an amend").await;

    // A retry with the same id: the same replacement, nothing new.
    let retried = engine
        .amend_event(&ns.id("o"), amendment(Some("7.5"), None, Some(r1.as_str())))
        .await
        .expect("retry");
    assert!(retried.replayed);
    assert_eq!(retried.event, replacement);
    assert_aggregates(&store, &t, &counting(&events), "after a retried amend").await;

    // The original is voided: amending it again (with a new id) is a conflict.
    assert!(matches!(
        engine
            .amend_event(
                &ns.id("o"),
                amendment(Some("1"), None, Some(ns.id("r9").as_str()))
            )
            .await,
        Err(Error::Conflict(_))
    ));
    // A replacement id taken by an unrelated event.
    assert!(matches!(
        engine
            .amend_event(&r1, amendment(None, None, Some(ns.id("other").as_str())))
            .await,
        Err(Error::Conflict(_))
    ));
    // Invalid corrections are refused by field, and change nothing.
    match engine
        .amend_event(&r1, amendment(Some("0"), None, None))
        .await
    {
        Err(Error::Validation(errors)) => {
            assert_eq!(errors.errors()[0].field, "quantity");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    match engine
        .amend_event(&r1, amendment(None, Some("2030-01-01T00:00:00Z"), None))
        .await
    {
        Err(Error::Validation(errors)) => {
            assert_eq!(errors.errors()[0].field, "timestamp");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(matches!(
        engine
            .amend_event(&ns.id("missing"), amendment(Some("1"), None, None))
            .await,
        Err(Error::NotFound(_))
    ));
    assert_aggregates(&store, &t, &counting(&events), "after refused amends").await;

    // The store's own outcomes.
    let mut stray = replacement.clone();
    stray.id = ns.id("stray");
    stray.amends = Some(ns.id("missing"));
    assert_eq!(
        store.amend_event(&stray, None, now()).await.expect("amend"),
        AmendOutcome::NotFound
    );
    stray.amends = Some(ns.id("o"));
    assert_eq!(
        store.amend_event(&stray, None, now()).await.expect("amend"),
        AmendOutcome::OriginalVoided
    );

    // Amend the replacement: the chain grows, seen from any of its events.
    let r2 = engine
        .amend_event(&r1, amendment(Some("8"), None, Some(ns.id("r2").as_str())))
        .await
        .expect("amend the replacement")
        .event;
    let chain: Vec<EventId> = [ns.id("o"), r1.clone(), r2.id.clone()].into();
    for id in &chain {
        let history = engine.event_history(id).await.expect("history");
        let ids: Vec<EventId> = history.iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, chain, "history of {id}");
        assert_eq!(
            history.iter().filter(|e| e.counts()).count(),
            1,
            "only the last counts"
        );
    }
    assert_eq!(store.replacement_of(&r2.id).await.expect("lookup"), None);
    let history = engine
        .event_history(&ns.id("other"))
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
}

/// Racing corrections of one event: exactly one amend records a replacement, the others
/// (and racing voids) change nothing more, and the totals equal a recount.
pub async fn concurrent_corrections_apply_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let original = event(
        ns.id("o"),
        &t,
        "api",
        "search",
        qty("5"),
        at("2025-11-03T10:00:00Z"),
    );
    store
        .insert_events(std::slice::from_ref(&original))
        .await
        .expect("insert");
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let (engine, id) = (engine.clone(), ns.id("o"));
        let replacement = ns.id(&format!("r{i}")).as_str().to_owned();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                engine.void_event(&id, None).await.map(|_| false)
            } else {
                let mut a = Amendment::default();
                a.quantity = Some(Quantity::from_units(i));
                a.id = Some(replacement);
                engine.amend_event(&id, a).await.map(|a| !a.replayed)
            }
        }));
    }
    let mut amended = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(true) => amended += 1,
            Ok(false) | Err(Error::Conflict(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(
        amended <= 1,
        "{amended} amends of one event recorded replacements"
    );
    let all = list_all(&store, tenant_filter(&t).including_voided()).await;
    assert_eq!(all.len(), 1 + amended, "{all:?}");
    let alive = counting(&all);
    assert!(alive.len() <= 1);
    assert_aggregates(&store, &t, &alive, "after racing corrections").await;
}

/// Quota checks through a cache see corrections at once: the stream's counters are dropped
/// and rebuilt, so usage falls after a void and follows an amend.
pub async fn corrections_reach_quota_usage_through_the_cache<S: Store + Clone>(store: S) {
    corrections_reach_quota_usage(store, MemoryQuotaCache::new()).await;
}

/// [`corrections_reach_quota_usage_through_the_cache`] on any store and cache (the cache
/// conformance suite runs it with each cache).
pub async fn corrections_reach_quota_usage<S: Store + Clone, C: QuotaCache + Clone>(
    store: S,
    cache: C,
) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let f = feature("search");
    let (engine, _) = engine_with_cache(&store, &cache);
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            f.clone(),
            qty("10"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    let batch = ["3", "4", "1.5"]
        .iter()
        .enumerate()
        .map(|(i, q)| {
            NewEvent::new(t.as_str(), "api", "search")
                .with_id(ns.id(&format!("e{i}")).as_str())
                .with_quantity(qty(q))
        })
        .collect();
    engine.ingest(batch).await.expect("ingest");
    let check = |quantity: &'static str, consume: bool| {
        let mut request = ValidateRequest::new(t.clone(), f.clone()).with_quantity(qty(quantity));
        if consume {
            request = request
                .with_resource(resource("api"))
                .with_id(ns.id(&format!("c{quantity}")))
                .consuming();
        }
        let engine = engine.clone();
        async move { engine.validate(request).await.expect("validate") }
    };
    let before = check("1", false).await;
    assert_eq!(before.current_usage, qty("8.5"));
    assert!(!check("2", false).await.allowed);

    engine.void_event(&ns.id("e1"), None).await.expect("void");
    assert_eq!(check("1", false).await.current_usage, qty("4.5"));
    assert!(check("5.5", true).await.allowed, "room freed by the void");
    assert_eq!(check("1", false).await.current_usage, qty("10"));

    engine
        .amend_event(&ns.id("e0"), amendment(Some("1"), None, None))
        .await
        .expect("amend");
    assert_eq!(check("1", false).await.current_usage, qty("8"));
    assert_eq!(
        store
            .sum_usage(
                &UsageScope {
                    tenant_id: t.clone(),
                    resource: None,
                    feature: f.clone(),
                },
                Window {
                    start: at("2025-11-20T00:00:00Z"),
                    end: at("2025-11-21T00:00:00Z"),
                },
            )
            .await
            .expect("sum"),
        qty("8")
    );
}

/// Property: for random ingest, void and amend sequences, every aggregate, usage sum and page
/// total equals a recount of the events not voided.
pub async fn corrections_match_recount_property<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let tenants = [ns.tenant("a"), ns.tenant("b")];
    let (engine, _) = engine(&store);
    // (tenant, resource, feature, seconds into the month, nano-units); then operations:
    // (kind: 0 void, 1 amend quantity, 2 amend timestamp, target index, value).
    let strategy = (
        proptest::collection::vec(
            (
                0usize..2,
                0usize..2,
                0usize..2,
                0i64..(20 * 86_400),
                1u64..5_000_000_000u64,
            ),
            1..60,
        ),
        proptest::collection::vec((0u8..3, 0usize..200, 0i64..(20 * 86_400)), 1..30),
    );
    let mut runner = TestRunner::new(Config {
        cases: 8,
        ..Config::default()
    });
    for case in 0..8i64 {
        let (raw, ops) = strategy.new_tree(&mut runner).expect("a value").current();
        // Each case in its own 25-day slot before "now", so cases do not mix.
        let base = at("2024-01-01T00:00:00Z") + Duration::days(25 * case);
        let mut events: Vec<Event> = raw
            .iter()
            .enumerate()
            .map(|(i, (t, r, f, secs, nanos))| {
                event(
                    ns.id(&format!("p{case}-{i}")),
                    &tenants[*t],
                    ["r0", "r1"][*r],
                    ["f0", "f1"][*f],
                    Quantity::from_nanos(u128::from(*nanos)),
                    base + Duration::seconds(*secs),
                )
            })
            .collect();
        store.insert_events(&events).await.expect("insert");
        for (n, (kind, target, value)) in ops.iter().enumerate() {
            let target = events[target % events.len()].id.clone();
            let result = match kind {
                0 => engine.void_event(&target, None).await.map(|_| ()),
                _ => {
                    let mut a = Amendment::default();
                    a.id = Some(ns.id(&format!("p{case}-a{n}")).as_str().to_owned());
                    if *kind == 1 {
                        a.quantity = Some(Quantity::from_nanos(
                            u128::try_from(*value).expect("positive") + 1,
                        ));
                    } else {
                        a.timestamp = Some(base + Duration::seconds(*value));
                    }
                    engine.amend_event(&target, a).await.map(|_| ())
                }
            };
            match result {
                Ok(()) | Err(Error::Conflict(_)) => {}
                Err(e) => panic!("case {case}: correction {n} failed: {e}"),
            }
            // Refresh the model from the store: the voided flags and replacements.
            let all = list_all(
                &store,
                EventFilter::all()
                    .between(Some(base), Some(base + Duration::days(21)))
                    .including_voided(),
            )
            .await;
            events = all
                .into_iter()
                .filter(|e| tenants.contains(&e.tenant_id))
                .collect();
        }
        let alive = counting(&events);
        for (i, t) in tenants.iter().enumerate() {
            let q = AggregateQuery::new(
                WindowType::ALL
                    [(i + usize::try_from(case).expect("small")) % WindowType::ALL.len()],
                base,
                base + Duration::days(21),
            )
            .group_by(
                GROUPINGS[usize::try_from(case).expect("small") % GROUPINGS.len()]
                    .parse()
                    .expect("grouping"),
            )
            .tz("America/New_York".parse().expect("zone"))
            .tenant(t.clone());
            assert_eq!(
                store.aggregate(&q).await.expect("aggregate"),
                recount::aggregate(&alive, &q),
                "case {case}: {q:?}"
            );
            let page = store
                .list_events(&EventQuery::new(
                    tenant_filter(t).between(Some(base), Some(base + Duration::days(21))),
                    Paging::Page {
                        page: 1,
                        page_size: 5,
                    },
                ))
                .await
                .expect("page");
            let expected = alive.iter().filter(|e| e.tenant_id == *t).count() as u64;
            assert_eq!(page.total, Some(expected), "case {case}: page total");
            let scope = UsageScope {
                tenant_id: t.clone(),
                resource: None,
                feature: feature("f0"),
            };
            let window = Window {
                start: base,
                end: base + Duration::days(21),
            };
            let expected: Quantity = alive
                .iter()
                .filter(|e| e.tenant_id == *t && e.feature.as_str() == "f0")
                .map(|e| e.quantity)
                .sum();
            assert_eq!(
                store.sum_usage(&scope, window).await.expect("sum"),
                expected,
                "case {case}: usage"
            );
        }
    }
}
