//! Webhook endpoints and quota thresholds.
//!
//! Cases:
//! - [`webhooks_register_list_delete`]
//! - [`quota_thresholds_round_trip`]

use metering_core::{AlertKind, NewWebhook, Threshold};

use super::*;

/// Endpoints are listed oldest first without secrets, found by id, deleted once; a bad one
/// stores nothing.
pub async fn webhooks_register_list_delete<S: Store + Clone>(store: S) {
    let (engine, clock) = engine(&store);
    let a = engine
        .create_webhook(
            NewWebhook::new("https://example.com/hooks?team=billing")
                .expect("url")
                .with_description("billing alerts"),
        )
        .await
        .expect("create");
    clock.advance(Duration::seconds(1));
    let b = engine
        .create_webhook(
            NewWebhook::new("http://127.0.0.1:9/b")
                .expect("url")
                .with_events([AlertKind::Exceeded]),
        )
        .await
        .expect("create");
    assert!(a.secret.as_str().starts_with("whsec_"));
    assert_ne!(a.secret, b.secret);
    assert_eq!(a.webhook.events, AlertKind::ALL.to_vec());
    assert_eq!(a.webhook.created_at, now());
    assert_eq!(a.webhook.disabled_at, None);
    assert_eq!(
        store.list_webhooks().await.expect("list"),
        vec![a.webhook.clone(), b.webhook.clone()]
    );
    assert_eq!(
        store.webhook(b.webhook.id).await.expect("get"),
        Some(b.webhook.clone())
    );
    assert!(matches!(
        store.insert_webhook(&a.webhook, &a.secret).await,
        Err(Error::Conflict(_))
    ));

    let bad = NewWebhook::new("https://example.com")
        .expect("url")
        .with_events([]);
    assert!(matches!(
        engine.create_webhook(bad).await,
        Err(Error::Validation(_))
    ));
    assert_eq!(store.list_webhooks().await.expect("list").len(), 2);

    store.delete_webhook(a.webhook.id).await.expect("delete");
    assert_eq!(
        store.list_webhooks().await.expect("list"),
        vec![b.webhook.clone()]
    );
    assert_eq!(store.webhook(a.webhook.id).await.expect("get"), None);
    assert!(matches!(
        store.delete_webhook(a.webhook.id).await,
        Err(Error::NotFound(_))
    ));
}

/// Thresholds are stored exactly and in order; `alert_threshold` alone is the one percent
/// threshold, and 0 means none.
pub async fn quota_thresholds_round_trip<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let thresholds = vec![
        Threshold::Percent(50),
        Threshold::Usage(qty("123456789012345.123456789")),
        Threshold::Percent(90),
    ];
    let spec = QuotaSpec::new(
        QuotaScope::Tenant(ns.tenant("a")),
        feature("calls"),
        qty("999999999999999"),
        QuotaPeriod::Monthly,
    )
    .with_thresholds(thresholds.clone());
    assert_eq!(spec.alert_threshold, 50);
    let stored = store.upsert_quota(&spec, now()).await.expect("upsert");
    assert_eq!(stored.spec, spec);
    assert_eq!(stored.spec.thresholds, thresholds);
    assert_eq!(
        store.quota(stored.id).await.expect("get").map(|q| q.spec),
        Some(spec.clone())
    );

    for (alert, expected) in [(0, vec![]), (70, vec![Threshold::Percent(70)])] {
        let replaced = store
            .upsert_quota(&spec.clone().with_alert_threshold(alert), now())
            .await
            .expect("upsert");
        assert_eq!(replaced.id, stored.id);
        assert_eq!(replaced.spec.thresholds, expected);
        assert_eq!(replaced.spec.alert_threshold, alert);
        let listed = store
            .list_quotas(Some(&QuotaScope::Tenant(ns.tenant("a"))))
            .await
            .expect("list");
        assert_eq!(listed, vec![replaced]);
    }
}
