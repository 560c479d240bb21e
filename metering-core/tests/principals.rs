//! The engine's `_as` methods apply roles and tenant scope for every operation, whoever
//! calls them (the REST server or an embedder).

use chrono::Duration;
use metering_core::{
    AggregateQuery, Error, EventFilter, EventQuery, GroupBy, MemoryStore, Metering, NewApiKey,
    NewEvent, Paging, Principal, Quantity, QuotaPeriod, QuotaScope, QuotaSpec, Role, TenantId,
    ValidateRequest, WindowType, validate_batch,
};

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("a tenant")
}

async fn principal(engine: &Metering, role: Role, scope: Option<&str>) -> Principal {
    let mut new = NewApiKey::new(format!("{role:?} {scope:?}"), role);
    new.tenant_id = scope.map(tenant);
    let created = engine.create_api_key(new).await.expect("a key");
    engine
        .authenticate(&created.secret)
        .await
        .expect("authenticates")
}

fn forbidden<T: std::fmt::Debug>(result: metering_core::Result<T>) {
    assert!(
        matches!(result, Err(Error::Forbidden(_))),
        "expected 403, got {result:?}"
    );
}

fn events(engine: &Metering, tenants: &[&str]) -> Vec<metering_core::Event> {
    let new = tenants
        .iter()
        .map(|t| NewEvent::new(*t, "api", "search"))
        .collect();
    validate_batch(new, engine.rules(), engine.now()).expect("valid")
}

#[tokio::test]
async fn every_operation_applies_roles_and_tenant_scope() {
    let engine = Metering::builder(MemoryStore::new()).build();
    let admin = principal(&engine, Role::Admin, None).await;
    let scoped_admin = principal(&engine, Role::Admin, Some("a")).await;
    let ingest_a = principal(&engine, Role::Ingest, Some("a")).await;
    let read_a = principal(&engine, Role::Read, Some("a")).await;
    let read_all = principal(&engine, Role::Read, None).await;

    // Ingest: role ingest or admin, own tenant only, all or nothing.
    forbidden(engine.ingest_as(&read_all, events(&engine, &["a"])).await);
    forbidden(
        engine
            .ingest_as(&ingest_a, events(&engine, &["a", "b"]))
            .await,
    );
    let receipt = engine
        .ingest_as(&ingest_a, events(&engine, &["a", "a"]))
        .await
        .expect("own tenant");
    assert_eq!(receipt.events_processed, 2);
    engine
        .ingest_as(&admin, events(&engine, &["b"]))
        .await
        .expect("admin writes any tenant");

    // Reads: role read or admin; a scoped key sees its own tenant whatever it asks for.
    let page = |tenant_id: Option<&str>| {
        let mut filter = EventFilter::all();
        filter.tenant_id = tenant_id.map(tenant);
        EventQuery::new(
            filter,
            Paging::Page {
                page: 1,
                page_size: 50,
            },
        )
    };
    forbidden(engine.list_events_as(&ingest_a, page(None)).await);
    forbidden(engine.list_events_as(&read_a, page(Some("b"))).await);
    let own = engine
        .list_events_as(&read_a, page(None))
        .await
        .expect("own");
    assert_eq!(own.events.len(), 2);
    assert!(own.events.iter().all(|e| e.tenant_id == tenant("a")));
    let all = engine
        .list_events_as(&read_all, page(None))
        .await
        .expect("all");
    assert_eq!(all.events.len(), 3);

    let now = engine.now();
    let query = AggregateQuery::new(
        WindowType::Daily,
        now - Duration::days(1),
        now + Duration::days(1),
    )
    .group_by(GroupBy::NONE);
    forbidden(engine.aggregate_as(&ingest_a, query.clone()).await);
    let mut other = query.clone();
    other.tenant_id = Some(tenant("b"));
    forbidden(engine.aggregate_as(&read_a, other).await);
    let report = engine.aggregate_as(&read_a, query).await.expect("own");
    assert_eq!(report.summary.total_events, 2);

    // Quotas: admin to write (a scoped admin only its own tenant, never a default).
    let limit: Quantity = "10".parse().expect("decimal");
    let spec = |scope: QuotaScope| {
        QuotaSpec::new(
            scope,
            metering_core::Feature::new("search").expect("feature"),
            limit,
            QuotaPeriod::Daily,
        )
    };
    forbidden(
        engine
            .upsert_quota_as(&read_all, spec(QuotaScope::AllTenants))
            .await,
    );
    forbidden(
        engine
            .upsert_quota_as(&scoped_admin, spec(QuotaScope::AllTenants))
            .await,
    );
    forbidden(
        engine
            .upsert_quota_as(&scoped_admin, spec(QuotaScope::Tenant(tenant("b"))))
            .await,
    );
    engine
        .upsert_quota_as(&scoped_admin, spec(QuotaScope::Tenant(tenant("a"))))
        .await
        .expect("own tenant");
    engine
        .upsert_quota_as(&admin, spec(QuotaScope::AllTenants))
        .await
        .expect("admin sets defaults");
    forbidden(engine.list_quotas_as(&ingest_a, None).await);
    forbidden(
        engine
            .list_quotas_as(&read_a, Some(QuotaScope::AllTenants))
            .await,
    );
    forbidden(
        engine
            .list_quotas_as(&read_a, Some(QuotaScope::Tenant(tenant("b"))))
            .await,
    );
    assert_eq!(
        engine
            .list_quotas_as(&read_a, None)
            .await
            .expect("own")
            .len(),
        1
    );
    assert_eq!(
        engine
            .list_quotas_as(&read_all, None)
            .await
            .expect("all")
            .len(),
        2
    );

    // Validate: role ingest or admin, own tenant only.
    let check = |t: &str| {
        ValidateRequest::new(
            tenant(t),
            metering_core::Feature::new("search").expect("feature"),
        )
    };
    forbidden(engine.validate_as(&read_all, check("a")).await);
    forbidden(engine.validate_as(&ingest_a, check("b")).await);
    let decision = engine
        .validate_as(&ingest_a, check("a"))
        .await
        .expect("own");
    assert!(decision.allowed);

    // Keys: admin only; a scoped admin makes and sees only keys of its own tenant.
    forbidden(engine.list_api_keys_as(&read_all).await);
    forbidden(
        engine
            .create_api_key_as(&scoped_admin, NewApiKey::new("unscoped", Role::Read))
            .await,
    );
    let mut for_a = NewApiKey::new("for a", Role::Read);
    for_a.tenant_id = Some(tenant("a"));
    engine
        .create_api_key_as(&scoped_admin, for_a)
        .await
        .expect("own tenant");
    let seen = engine.list_api_keys_as(&scoped_admin).await.expect("keys");
    assert!(seen.iter().all(|k| k.tenant_id == Some(tenant("a"))));
    assert_eq!(seen.len(), 4);
    assert_eq!(engine.list_api_keys_as(&admin).await.expect("all").len(), 6);
}
