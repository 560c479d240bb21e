//! Atomic check-and-record (`consume`).
//!
//! Cases:
//! - [`consume_is_atomic_under_concurrency`]
//! - [`consume_through_two_engines_never_exceeds_limit`]
//! - [`consume_retry_with_same_id_counts_once`]

use super::*;

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
        store.consume(&e, &limit, None).await.expect("consume"),
        ConsumeOutcome::Admitted {
            usage_before: qty("4")
        }
    );
    assert_eq!(
        store.consume(&e, &limit, None).await.expect("consume"),
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
        store.consume(&big, &limit, None).await.expect("consume"),
        ConsumeOutcome::Denied { usage: qty("5") }
    );
}
