//! Quotas on meters: the store's rules for meter quotas, tallies and atomic consumes.
//!
//! Cases:
//! - [`meter_quotas_follow_their_meter`]
//! - [`meter_consume_is_exact`]
//! - [`unique_count_quota_allows_counted_values`]
//! - [`meter_consume_is_atomic_under_concurrency`]

use metering_core::{
    Aggregation, MeterCheck, MeterFilter, MeterKey, MeterSpec, NewEvent, QuotaDecision,
};
use serde_json::Value;

use super::*;

fn key(text: &str) -> MeterKey {
    MeterKey::new(text).expect("a valid key")
}

/// An `ai` event of `tenant` for the check, at [`now`], with `metadata`.
fn check_event(tenant: &TenantId, id: &str, metadata: Value) -> NewEvent {
    let Value::Object(map) = metadata else {
        panic!("metadata must be an object")
    };
    NewEvent::new(tenant.as_str(), "ai", "tokens")
        .with_id(id)
        .with_timestamp(now())
        .with_metadata(map)
}

async fn consume(
    engine: &Metering,
    tenant: &TenantId,
    meter: &str,
    event: NewEvent,
) -> QuotaDecision {
    engine
        .check_meter(
            MeterCheck::new(tenant.clone(), key(meter))
                .with_event(event)
                .consuming(),
        )
        .await
        .expect("consume")
}

/// A meter quota needs its meter, with `sum`, `count` or `unique_count`; it is upserted by
/// tenant and meter; its meter cannot be deleted or turned into an `avg` while it exists.
pub async fn meter_quotas_follow_their_meter<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let spec = |meter: &str, limit: &str| {
        QuotaSpec::on_meter(
            QuotaScope::Tenant(t.clone()),
            key(meter),
            qty(limit),
            QuotaPeriod::Monthly,
        )
    };
    assert!(matches!(
        engine.upsert_quota(spec("nothing", "5")).await,
        Err(Error::NotFound(_))
    ));
    engine
        .define_meter(&key("mean"), &MeterSpec::new(Aggregation::Avg))
        .await
        .expect("avg meter");
    match engine.upsert_quota(spec("mean", "5")).await {
        Err(Error::Validation(e)) => assert_eq!(e.errors()[0].field, "meter"),
        other => panic!("a quota on an avg meter: {other:?}"),
    }
    engine
        .define_meter(&key("calls"), &MeterSpec::new(Aggregation::Count))
        .await
        .expect("count meter");
    let first = engine
        .upsert_quota(spec("calls", "5"))
        .await
        .expect("quota");
    assert_eq!(first.spec.meter, Some(key("calls")));
    assert_eq!(first.spec.feature, None);
    let again = engine
        .upsert_quota(spec("calls", "7"))
        .await
        .expect("replace");
    assert_eq!((again.id, again.spec.limit), (first.id, qty("7")));
    let feature_quota = engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(t.clone()),
            feature("render"),
            qty("3"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("a feature quota beside it");
    let listed = store
        .list_quotas(Some(&QuotaScope::Tenant(t.clone())))
        .await
        .expect("list");
    assert_eq!(listed, vec![feature_quota.clone(), again.clone()]);
    assert!(
        store
            .quota_candidates(&t, &feature("render"))
            .await
            .expect("candidates")
            .iter()
            .all(|q| q.spec.meter.is_none())
    );
    assert!(matches!(
        engine.delete_meter(&key("calls")).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        engine
            .define_meter(&key("calls"), &MeterSpec::new(Aggregation::Max))
            .await,
        Err(Error::Conflict(_))
    ));
    let calls = engine.meter(&key("calls")).await.expect("still there");
    assert_eq!(
        calls.spec.aggregation,
        Aggregation::Count,
        "nothing changed"
    );
    engine
        .define_meter(&key("calls"), &MeterSpec::new(Aggregation::Sum))
        .await
        .expect("another quotable aggregation");
    engine.delete_quota(again.id).await.expect("delete quota");
    engine
        .delete_meter(&key("calls"))
        .await
        .expect("a meter no quota uses");
}

/// A `sum` meter quota counts only the events its meter counts, admits while the value
/// stays within the limit, refuses past it, and a retried id records once.
pub async fn meter_consume_is_exact<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    let tokens = MeterSpec::new(Aggregation::Sum)
        .value("metadata.tokens".parse().expect("path"))
        .filter(MeterFilter {
            resource: vec![resource("ai")],
            metadata: [("model".to_owned(), vec![Value::from("o3")])].into(),
            ..MeterFilter::default()
        });
    engine
        .define_meter(&key("o3_tokens"), &tokens)
        .await
        .expect("meter");
    engine
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::Tenant(t.clone()),
            key("o3_tokens"),
            qty("10.5"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    // Stored before: one event the meter counts (2.5), two it does not.
    let counted = check_event(&t, "before-1", json!({"model": "o3", "tokens": "2.5"}));
    let other_model = check_event(&t, "before-2", json!({"model": "mini", "tokens": 100}));
    let no_value = check_event(&t, "before-3", json!({"model": "o3"}));
    let mut errors = metering_core::ValidationErrors::new();
    let stored: Vec<Event> = [counted, other_model, no_value]
        .into_iter()
        .map(|e| {
            e.validate(&Default::default(), now(), None, "", &mut errors)
                .expect("valid")
        })
        .collect();
    store.insert_events(&stored).await.expect("insert");

    let check = engine
        .check_meter(MeterCheck::new(t.clone(), key("o3_tokens")))
        .await
        .expect("check");
    assert_eq!(check.current_usage, qty("2.5"));
    assert!(check.allowed);

    let d = consume(
        &engine,
        &t,
        "o3_tokens",
        check_event(&t, "c1", json!({"model": "o3", "tokens": 4})),
    )
    .await;
    assert!(d.allowed);
    assert_eq!(d.current_usage, qty("6.5"));
    assert_eq!(d.event_id.as_ref().map(|i| i.as_str()), Some("c1"));
    let d = consume(
        &engine,
        &t,
        "o3_tokens",
        check_event(&t, "c2", json!({"model": "o3", "tokens": 4})),
    )
    .await;
    assert!(d.allowed, "6.5 + 4 = 10.5 is the limit");
    assert_eq!(d.current_usage, qty("10.5"));
    assert_eq!(d.remaining, Some(qty("0")));
    let d = consume(
        &engine,
        &t,
        "o3_tokens",
        check_event(&t, "c3", json!({"model": "o3", "tokens": 0.000000001})),
    )
    .await;
    assert!(!d.allowed, "one nano over");
    assert_eq!(d.current_usage, qty("10.5"));
    assert!(d.event_id.is_none());
    let retried = consume(
        &engine,
        &t,
        "o3_tokens",
        check_event(&t, "c1", json!({"model": "o3", "tokens": 4})),
    )
    .await;
    assert!(retried.allowed, "a retried id is not refused");
    assert_eq!(retried.current_usage, qty("10.5"), "and not counted twice");

    // An event the meter would not count is refused with the field, and nothing is stored.
    for (event, field) in [
        (
            check_event(&t, "x1", json!({"model": "mini", "tokens": 1})),
            "event",
        ),
        (check_event(&t, "x2", json!({"model": "o3"})), "event"),
        (
            check_event(&t, "x3", json!({"model": "o3", "tokens": 1}))
                .with_timestamp(now() - Duration::days(40)),
            "event.timestamp",
        ),
    ] {
        match engine
            .check_meter(
                MeterCheck::new(t.clone(), key("o3_tokens"))
                    .with_event(event)
                    .consuming(),
            )
            .await
        {
            Err(Error::Validation(e)) => assert_eq!(e.errors()[0].field, field),
            other => panic!("expected a validation error on {field}: {other:?}"),
        }
    }
    let ids: BTreeSet<String> = list_all(&store, tenant_filter(&t))
        .await
        .into_iter()
        .map(|e| e.id.as_str().to_owned())
        .collect();
    let expected: BTreeSet<String> = ["before-1", "before-2", "before-3", "c1", "c2"]
        .map(str::to_owned)
        .into();
    assert_eq!(ids, expected);
}

/// A `unique_count` quota of 2 admits two users, refuses a third, and always admits (and
/// records) a user already counted in the period.
pub async fn unique_count_quota_allows_counted_values<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    engine
        .define_meter(
            &key("users"),
            &MeterSpec::new(Aggregation::UniqueCount).value("metadata.user".parse().expect("path")),
        )
        .await
        .expect("meter");
    engine
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::AllTenants,
            key("users"),
            qty("2"),
            QuotaPeriod::Monthly,
        ))
        .await
        .expect("a default quota");
    let user = |id: &str, user: Value| check_event(&t, id, json!({ "user": user }));
    let mut admitted = Vec::new();
    for (id, who) in [
        ("e1", json!("ann")),
        ("e2", json!(7)),
        ("e3", json!("bob")),
        ("e4", json!("ann")),
        ("e5", json!(7.0)),
    ] {
        let d = consume(&engine, &t, "users", user(id, who)).await;
        if d.allowed {
            admitted.push(id);
        }
        assert_eq!(d.limit, Some(qty("2")));
    }
    assert_eq!(admitted, ["e1", "e2", "e4", "e5"], "7.0 is the user 7");
    let check = engine
        .check_meter(MeterCheck::new(t.clone(), key("users")).with_event(user("e6", json!("ann"))))
        .await
        .expect("check");
    assert!(check.allowed);
    assert_eq!(check.current_usage, qty("2"));
    let check = engine
        .check_meter(MeterCheck::new(t.clone(), key("users")).with_event(user("e7", json!("cy"))))
        .await
        .expect("check");
    assert!(!check.allowed);
    assert_eq!(list_all(&store, tenant_filter(&t)).await.len(), 4);
}

/// 48 tasks racing to consume against a `count` meter quota of 9 admit exactly 9, through
/// two engines with their own caches.
pub async fn meter_consume_is_atomic_under_concurrency<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let engines = [
        crate::fixtures::engine_with_cache(&store, &MemoryQuotaCache::new()).0,
        crate::fixtures::engine_with_cache(&store, &MemoryQuotaCache::new()).0,
    ];
    engines[0]
        .define_meter(
            &key("ai_calls"),
            &MeterSpec::new(Aggregation::Count).filter(MeterFilter {
                resource: vec![resource("ai")],
                ..MeterFilter::default()
            }),
        )
        .await
        .expect("meter");
    engines[1]
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::Tenant(t.clone()),
            key("ai_calls"),
            qty("9"),
            QuotaPeriod::Daily,
        ))
        .await
        .expect("quota");
    let mut tasks = Vec::new();
    for i in 0..48 {
        let engine = engines[i % 2].clone();
        let event = check_event(&t, &format!("race-{i}"), json!({}));
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            consume(&engine, &t, "ai_calls", event).await.allowed
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        admitted += usize::from(task.await.expect("task"));
    }
    assert_eq!(admitted, 9);
    assert_eq!(list_all(&store, tenant_filter(&t)).await.len(), 9);
}
