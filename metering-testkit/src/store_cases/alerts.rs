//! Alerts: marks placed once per quota, tenant, period and threshold, in the transaction of
//! the write that reached them, with their messages in the outbox.
//!
//! Cases:
//! - [`alerts_fire_once_per_period_and_mark`]
//! - [`refused_checks_and_meter_quotas_alert`]
//! - [`concurrent_writes_place_each_mark_once`]
//! - [`deliveries_are_leased_finished_and_retried`]
//! - [`old_alerts_are_pruned`]
//! - [`amends_that_raise_usage_alert`]

use metering_core::{
    Aggregation, AlertKind, Amendment, Attempt, CreatedWebhook, Delivery, DeliveryCounts,
    DeliveryStatus, EventId, MeterCheck, MeterFilter, MeterKey, MeterSpec, NewWebhook, Threshold,
};
use serde_json::Value;

use super::*;

/// The messages delivered to `hook`, oldest first, as `(type, payload)`.
async fn messages<S: Store>(store: &S, hook: &CreatedWebhook) -> Vec<(AlertKind, Value)> {
    let mut deliveries: Vec<Delivery> = store
        .list_deliveries(hook.webhook.id, 1000)
        .await
        .expect("deliveries");
    deliveries.reverse();
    deliveries
        .into_iter()
        .map(|d| {
            assert_eq!(d.status, DeliveryStatus::Pending);
            assert_eq!(d.attempts, 0);
            let payload: Value = serde_json::from_str(&d.payload).expect("a JSON payload");
            assert_eq!(payload["id"], d.message_id.as_str());
            assert_eq!(payload["type"], d.kind.as_str());
            (d.kind, payload)
        })
        .collect()
}

/// `(type, threshold, usage)` of each message, usage as its literal text.
fn summary(messages: &[(AlertKind, Value)]) -> Vec<(AlertKind, Value, String)> {
    messages
        .iter()
        .map(|(kind, p)| {
            (
                *kind,
                p["data"]["threshold"].clone(),
                p["data"]["usage"].to_string(),
            )
        })
        .collect()
}

/// A monthly quota of `limit` on `calls` for `tenant`.
fn calls_quota(tenant: &TenantId, limit: &str) -> QuotaSpec {
    QuotaSpec::new(
        QuotaScope::Tenant(tenant.clone()),
        feature("calls"),
        qty(limit),
        QuotaPeriod::Monthly,
    )
}

/// Ingests `q` of `calls` of `api` for `tenant`.
async fn ingest_calls(engine: &Metering, tenant: &TenantId, q: &str) {
    engine
        .ingest(vec![
            NewEvent::new(tenant.as_str(), "api", "calls").with_quantity(qty(q)),
        ])
        .await
        .expect("ingest");
}

async fn hook(engine: &Metering, events: &[AlertKind]) -> CreatedWebhook {
    engine
        .create_webhook(
            NewWebhook::new("http://127.0.0.1:9/hooks")
                .expect("url")
                .with_events(events.iter().copied()),
        )
        .await
        .expect("webhook")
}

/// Thresholds, percent and absolute, fire once when ingest or consume first reaches them;
/// `quota.exceeded` once at the limit; nothing repeats in the period; the next period starts
/// over; `quota.reset` follows the end of a period with alerts, once; an endpoint receives
/// only its types.
pub async fn alerts_fire_once_per_period_and_mark<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, clock) = engine(&store);
    let all = hook(&engine, &AlertKind::ALL).await;
    let exceeded_only = hook(&engine, &[AlertKind::Exceeded]).await;
    let quota = engine
        .upsert_quota(
            calls_quota(&t, "100")
                .with_thresholds(vec![Threshold::Percent(50), Threshold::Usage(qty("75.5"))]),
        )
        .await
        .expect("quota");
    let ingest = |q: &'static str| ingest_calls(&engine, &t, q);
    ingest("49.999999999").await;
    assert!(messages(&store, &all).await.is_empty());
    ingest("0.000000001").await;
    ingest("10").await;
    ingest("15.5").await;
    ingest("5").await;
    let consume = |q: &'static str| {
        let (engine, t) = (engine.clone(), t.clone());
        async move {
            engine
                .validate(
                    ValidateRequest::new(t.clone(), feature("calls"))
                        .with_resource(resource("api"))
                        .with_quantity(qty(q))
                        .consuming(),
                )
                .await
                .expect("consume")
        }
    };
    assert!(consume("19.5").await.allowed);
    assert!(!consume("1").await.allowed, "over the limit");
    assert!(
        !engine
            .validate(ValidateRequest::new(t.clone(), feature("calls")))
            .await
            .expect("check")
            .allowed
    );
    ingest("3").await;
    assert_eq!(
        summary(&messages(&store, &all).await),
        vec![
            (
                AlertKind::Threshold,
                json!({"percent": 50}),
                "50".to_owned()
            ),
            (
                AlertKind::Threshold,
                json!({"usage": 75.5}),
                "75.5".to_owned()
            ),
            (AlertKind::Exceeded, Value::Null, "100".to_owned()),
        ]
    );
    let first = &messages(&store, &all).await[0].1;
    assert_eq!(first["data"]["tenant_id"], t.as_str());
    assert_eq!(first["data"]["quota_id"], quota.id.to_string());
    assert_eq!(first["data"]["feature"], "calls");
    assert_eq!(first["data"]["resource"], Value::Null);
    assert_eq!(first["data"]["limit"], 100);
    assert_eq!(first["data"]["period_start"], "2025-11-01T00:00:00Z");
    assert_eq!(first["data"]["period_end"], "2025-12-01T00:00:00Z");
    assert_eq!(
        summary(&messages(&store, &exceeded_only).await),
        vec![(AlertKind::Exceeded, Value::Null, "100".to_owned())]
    );

    assert_eq!(engine.fire_resets().await.expect("resets"), 0, "not ended");
    clock.set(at("2025-12-02T08:00:00Z"));
    ingest("60").await;
    assert_eq!(engine.fire_resets().await.expect("resets"), 1);
    assert_eq!(engine.fire_resets().await.expect("resets"), 0, "once");
    let after = summary(&messages(&store, &all).await);
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(
        after[3],
        (
            AlertKind::Threshold,
            json!({"percent": 50}),
            "60".to_owned()
        ),
        "a new period starts over"
    );
    assert_eq!(after[4].0, AlertKind::Reset);
    assert_eq!(after[4].2, "103", "the ended period's usage");
    let reset = &messages(&store, &all).await[4].1;
    assert_eq!(reset["data"]["period_end"], "2025-12-01T00:00:00Z");
    assert_eq!(reset["data"]["threshold"], Value::Null);
    assert_eq!(messages(&store, &exceeded_only).await.len(), 1);

    engine
        .delete_webhook(exceeded_only.webhook.id)
        .await
        .expect("delete");
    assert!(
        store
            .list_deliveries(exceeded_only.webhook.id, 10)
            .await
            .expect("deliveries")
            .is_empty()
    );
}

/// A refused check sends `quota.exceeded` once; a meter quota's thresholds and limit fire
/// on the meter's value, from ingest and from a consume; with no endpoint nothing is written, and an endpoint registered later
/// hears of a threshold at the next usage that counts.
pub async fn refused_checks_and_meter_quotas_alert<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _) = engine(&store);
    engine
        .upsert_quota(
            QuotaSpec::new(
                QuotaScope::AllTenants,
                feature("exports"),
                qty("10"),
                QuotaPeriod::Daily,
            )
            .with_alert_threshold(0),
        )
        .await
        .expect("quota");
    let logins = MeterKey::new("logins").expect("key");
    engine
        .define_meter(
            &logins,
            &MeterSpec::new(Aggregation::Count).filter(MeterFilter {
                feature: vec![feature("login")],
                ..MeterFilter::default()
            }),
        )
        .await
        .expect("meter");
    engine
        .upsert_quota(
            QuotaSpec::on_meter(
                QuotaScope::AllTenants,
                logins.clone(),
                qty("4"),
                QuotaPeriod::Monthly,
            )
            .with_thresholds(vec![Threshold::Percent(50)]),
        )
        .await
        .expect("meter quota");
    let login = |n: usize| {
        (0..n)
            .map(|_| NewEvent::new(t.as_str(), "app", "login"))
            .collect::<Vec<_>>()
    };
    engine.ingest(login(2)).await.expect("no endpoint yet");
    let hook = hook(&engine, &AlertKind::ALL).await;
    assert!(messages(&store, &hook).await.is_empty());
    engine.ingest(login(1)).await.expect("ingest");
    let refused = engine
        .validate(ValidateRequest::new(t.clone(), feature("exports")).with_quantity(qty("10.5")))
        .await
        .expect("check");
    assert!(!refused.allowed);
    engine
        .validate(ValidateRequest::new(t.clone(), feature("exports")).with_quantity(qty("11")))
        .await
        .expect("check");
    // A consume through the meter quota reaches the limit.
    let fourth = engine
        .check_meter(
            MeterCheck::new(t.clone(), logins.clone())
                .with_event(NewEvent::new(t.as_str(), "app", "login").with_timestamp(now()))
                .consuming(),
        )
        .await
        .expect("meter consume");
    assert!(fourth.allowed);
    let over = engine
        .check_meter(MeterCheck::new(t.clone(), logins.clone()))
        .await
        .expect("meter check");
    assert!(!over.allowed);
    let got = messages(&store, &hook).await;
    assert_eq!(
        summary(&got),
        vec![
            (AlertKind::Threshold, json!({"percent": 50}), "3".to_owned()),
            (AlertKind::Exceeded, Value::Null, "0".to_owned()),
            (AlertKind::Exceeded, Value::Null, "4".to_owned()),
        ]
    );
    assert_eq!(got[0].1["data"]["meter"], "logins");
    assert_eq!(got[0].1["data"].get("feature"), None);
    assert_eq!(got[1].1["data"]["feature"], "exports");
    assert_eq!(
        got[1].1["data"]["tenant_id"],
        t.as_str(),
        "a default quota counts each tenant"
    );
}

/// Writes racing through two engines over one store place every mark exactly once.
pub async fn concurrent_writes_place_each_mark_once<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (first, _) = engine(&store);
    let (second, _) = engine(&store);
    let hook = hook(&first, &AlertKind::ALL).await;
    first
        .upsert_quota(calls_quota(&t, "40").with_thresholds(vec![
            Threshold::Percent(25),
            Threshold::Percent(50),
            Threshold::Usage(qty("30")),
        ]))
        .await
        .expect("quota");
    let mut tasks = Vec::new();
    for i in 0..48 {
        let engine = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            if i % 3 == 0 {
                engine
                    .validate(
                        ValidateRequest::new(t.clone(), feature("calls"))
                            .with_resource(resource("api"))
                            .consuming(),
                    )
                    .await
                    .map(|_| ())
            } else {
                engine
                    .ingest(vec![NewEvent::new(t.as_str(), "api", "calls")])
                    .await
                    .map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.expect("task").expect("write");
    }
    let mut kinds: Vec<(AlertKind, Value)> = messages(&store, &hook)
        .await
        .into_iter()
        .map(|(k, p)| (k, p["data"]["threshold"].clone()))
        .collect();
    kinds.sort_by_key(|(k, t)| (*k, t.to_string()));
    assert_eq!(
        kinds,
        vec![
            (AlertKind::Threshold, json!({"percent": 25})),
            (AlertKind::Threshold, json!({"percent": 50})),
            (AlertKind::Threshold, json!({"usage": 30})),
            (AlertKind::Exceeded, Value::Null),
        ]
    );
}

/// Due deliveries are leased to one claimer at a time, with their endpoint's URL and secret;
/// attempts are recorded (delivered, retried later, given up, gone: the endpoint is
/// disabled); a delivery can be sent again by hand; the counts follow.
pub async fn deliveries_are_leased_finished_and_retried<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, clock) = engine(&store);
    let a = hook(&engine, &AlertKind::ALL).await;
    let b = hook(&engine, &[AlertKind::Threshold]).await;
    engine
        .upsert_quota(
            calls_quota(&t, "10")
                .with_thresholds(vec![Threshold::Percent(10), Threshold::Percent(20)]),
        )
        .await
        .expect("quota");
    engine
        .ingest(vec![
            NewEvent::new(t.as_str(), "api", "calls").with_quantity(qty("2")),
        ])
        .await
        .expect("ingest");
    // Two thresholds, each to two endpoints.
    let t0 = now();
    let lease = |s: i64| t0 + Duration::seconds(s);
    let (first, second) = tokio::join!(
        store.claim_deliveries(t0, lease(30), 3),
        store.claim_deliveries(t0, lease(30), 3)
    );
    let (first, second) = (first.expect("claim"), second.expect("claim"));
    let mut ids: Vec<_> = first.iter().chain(&second).map(|d| d.delivery.id).collect();
    assert_eq!(ids.len(), 4, "every due delivery, each once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "no delivery leased twice");
    for due in first.iter().chain(&second) {
        let (url, secret) = if due.delivery.webhook_id == a.webhook.id {
            (&a.webhook.url, &a.secret)
        } else {
            (&b.webhook.url, &b.secret)
        };
        assert_eq!(&due.url, url);
        assert_eq!(&due.secret, secret);
        assert_eq!(due.delivery.status, DeliveryStatus::Pending);
    }
    assert!(
        store
            .claim_deliveries(lease(10), lease(40), 10)
            .await
            .expect("claim")
            .is_empty(),
        "leased"
    );

    let all: Vec<_> = first.into_iter().chain(second).collect();
    let on_a: Vec<_> = all
        .iter()
        .filter(|d| d.delivery.webhook_id == a.webhook.id)
        .collect();
    let on_b: Vec<_> = all
        .iter()
        .filter(|d| d.delivery.webhook_id == b.webhook.id)
        .collect();
    let at = lease(1);
    store
        .finish_delivery(
            on_a[0].delivery.id,
            Attempt::Delivered { status_code: 204 },
            at,
        )
        .await
        .expect("finish");
    store
        .finish_delivery(
            on_a[1].delivery.id,
            Attempt::Retry {
                status_code: Some(503),
                next_attempt_at: lease(60),
            },
            at,
        )
        .await
        .expect("finish");
    store
        .finish_delivery(
            on_b[0].delivery.id,
            Attempt::GaveUp { status_code: None },
            at,
        )
        .await
        .expect("finish");
    store
        .finish_delivery(on_b[1].delivery.id, Attempt::Gone, at)
        .await
        .expect("finish");
    // A finished delivery is not finished again.
    store
        .finish_delivery(on_a[0].delivery.id, Attempt::Gone, at)
        .await
        .expect("finish");
    assert_eq!(
        store.delivery_counts().await.expect("counts"),
        DeliveryCounts {
            pending: 1,
            delivered: 1,
            failed: 2
        }
    );
    let listed = store.list_deliveries(a.webhook.id, 10).await.expect("list");
    let delivered = listed
        .iter()
        .find(|d| d.id == on_a[0].delivery.id)
        .expect("listed");
    assert_eq!(delivered.status, DeliveryStatus::Delivered);
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.last_status_code, Some(204));
    assert_eq!(delivered.delivered_at, Some(at));
    let waiting = listed
        .iter()
        .find(|d| d.id == on_a[1].delivery.id)
        .expect("listed");
    assert_eq!(
        (waiting.status, waiting.attempts),
        (DeliveryStatus::Pending, 1)
    );
    assert_eq!(waiting.last_status_code, Some(503));
    assert!(
        store
            .claim_deliveries(lease(59), lease(90), 10)
            .await
            .expect("claim")
            .is_empty(),
        "not due before its next attempt"
    );
    let again = store
        .claim_deliveries(lease(60), lease(90), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery.id, on_a[1].delivery.id);
    assert_eq!(again[0].delivery.attempts, 1);

    let hooks = store.list_webhooks().await.expect("hooks");
    let gone = hooks.iter().find(|w| w.id == b.webhook.id).expect("b");
    assert_eq!(gone.disabled_at, Some(at), "410 disables the endpoint");
    assert!(
        hooks
            .iter()
            .any(|w| w.id == a.webhook.id && w.disabled_at.is_none())
    );

    // By hand: the delivered message goes out again, with the same id.
    let retried = store
        .retry_delivery(a.webhook.id, on_a[0].delivery.id, lease(100))
        .await
        .expect("retry");
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert_eq!(retried.message_id, on_a[0].delivery.message_id);
    let resent = store
        .claim_deliveries(lease(100), lease(130), 10)
        .await
        .expect("claim");
    assert!(resent.iter().any(|d| d.delivery.id == on_a[0].delivery.id));
    assert!(matches!(
        store
            .retry_delivery(b.webhook.id, on_a[0].delivery.id, lease(100))
            .await,
        Err(Error::NotFound(_))
    ));
    // A disabled endpoint's deliveries are not claimed, even when retried by hand.
    store
        .retry_delivery(b.webhook.id, on_b[0].delivery.id, lease(100))
        .await
        .expect("retry");
    assert!(
        store
            .claim_deliveries(lease(200), lease(230), 10)
            .await
            .expect("claim")
            .iter()
            .all(|d| d.delivery.webhook_id == a.webhook.id)
    );
    clock.advance(Duration::seconds(1));
}

/// Retention: deliveries no longer pending, written before the cutoff, and the marks of
/// periods that ended before it are deleted, at most `limit` of each kind per call; pending
/// deliveries and the marks of periods still running stay, and a pruned period is not
/// reported for `quota.reset` again.
pub async fn old_alerts_are_pruned<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, clock) = engine(&store);
    let a = hook(&engine, &AlertKind::ALL).await;
    engine
        .upsert_quota(calls_quota(&t, "10").with_thresholds(vec![
            Threshold::Percent(10),
            Threshold::Percent(20),
            Threshold::Percent(30),
        ]))
        .await
        .expect("quota");
    let ingest = |q: &'static str| ingest_calls(&engine, &t, q);
    // November: three thresholds, three deliveries; one delivered, one given up, one pending.
    ingest("3").await;
    let due = store
        .claim_deliveries(now(), now() + Duration::seconds(30), 10)
        .await
        .expect("claim");
    assert_eq!(due.len(), 3);
    let finished_at = now() + Duration::seconds(1);
    let finish = |i: usize, attempt: Attempt| {
        let id = due[i].delivery.id;
        let store = store.clone();
        async move {
            store
                .finish_delivery(id, attempt, finished_at)
                .await
                .expect("finish")
        }
    };
    finish(0, Attempt::Delivered { status_code: 200 }).await;
    finish(
        1,
        Attempt::GaveUp {
            status_code: Some(500),
        },
    )
    .await;
    finish(
        2,
        Attempt::Retry {
            status_code: Some(503),
            next_attempt_at: now() + Duration::hours(1),
        },
    )
    .await;
    // December: the period of November ended; one threshold of December.
    clock.set(at("2025-12-05T00:00:00Z"));
    ingest("1").await;
    assert_eq!(engine.fire_resets().await.expect("resets"), 1);
    let before = store.delivery_counts().await.expect("counts");
    assert_eq!(
        before,
        DeliveryCounts {
            pending: 3,
            delivered: 1,
            failed: 1
        },
        "December's threshold and November's reset are pending"
    );

    // Nothing is older than a cutoff in the past.
    assert_eq!(
        store
            .prune_alerts(at("2025-11-01T00:00:00Z"), 100)
            .await
            .expect("prune"),
        0
    );
    // A cutoff in December: November's finished deliveries (2) and November's marks (three
    // thresholds and the reset), at most `limit` of each kind per call.
    let cutoff = at("2025-12-03T00:00:00Z");
    assert_eq!(store.prune_alerts(cutoff, 1).await.expect("prune"), 2);
    assert_eq!(store.prune_alerts(cutoff, 100).await.expect("prune"), 4);
    assert_eq!(store.prune_alerts(cutoff, 100).await.expect("prune"), 0);
    assert_eq!(
        store.delivery_counts().await.expect("counts"),
        DeliveryCounts {
            pending: 3,
            delivered: 0,
            failed: 0
        },
        "pending deliveries stay, however old"
    );
    let listed = store.list_deliveries(a.webhook.id, 10).await.expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|d| d.status == DeliveryStatus::Pending));
    assert!(
        store
            .ended_alert_periods(at("2025-12-05T00:00:00Z"), 10)
            .await
            .expect("periods")
            .is_empty()
    );
    // December's mark stays: its threshold does not fire again.
    ingest("0.5").await;
    assert_eq!(store.delivery_counts().await.expect("counts").pending, 3);
}

/// An amend is usage too: one that raises the usage past a threshold fires it (once), and
/// one that lowers it fires nothing.
pub async fn amends_that_raise_usage_alert<S: Store + Clone>(store: S) {
    let ns = Namespace::new();
    let t = ns.tenant("a");
    let (engine, _clock) = engine(&store);
    let all = hook(&engine, &AlertKind::ALL).await;
    engine
        .upsert_quota(calls_quota(&t, "10").with_thresholds(vec![Threshold::Percent(50)]))
        .await
        .expect("quota");
    let receipt = engine
        .ingest(vec![
            NewEvent::new(t.as_str(), "api", "calls").with_quantity(qty("4")),
        ])
        .await
        .expect("ingest");
    let id = receipt.event_ids[0].clone();
    assert!(messages(&store, &all).await.is_empty(), "40%");
    let amend = |id: EventId, q: &'static str| {
        let engine = engine.clone();
        async move {
            let mut amendment = Amendment::default();
            amendment.quantity = Some(qty(q));
            engine
                .amend_event(&id, amendment)
                .await
                .expect("amend")
                .event
                .id
        }
    };
    let lowered = amend(id, "3").await;
    assert!(messages(&store, &all).await.is_empty(), "lowered to 30%");
    let raised = amend(lowered, "6").await;
    assert_eq!(
        summary(&messages(&store, &all).await),
        vec![(AlertKind::Threshold, json!({"percent": 50}), "6".to_owned())],
        "raised to 60%"
    );
    amend(raised, "7").await;
    assert_eq!(messages(&store, &all).await.len(), 1, "once per period");
}
