//! Quotas: administration, lookups by id, matching, periods and checks.
//!
//! Cases:
//! - [`quota_upsert_list_delete`]
//! - [`records_are_found_by_id`]
//! - [`quota_matching_and_periods`]
//! - [`validate_sees_every_acknowledged_event`]

use super::*;

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
    engine
        .revoke_api_key(created.key.id, metering_core::LastAdmin::Keep)
        .await
        .expect("revoke");
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
