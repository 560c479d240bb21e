//! Group commit: coalescing, per-caller outcomes, duplicates across callers, backpressure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metering_core::{
    Error, Event, EventFilter, EventQuery, Feature, GroupCommitConfig, InsertOutcome, MemoryStore,
    Metering, NewEvent, Paging, Quantity, QuotaScope, QuotaSpec, Result, Store, TenantId,
};

/// A memory store that counts `insert_events` calls and can be slowed down.
#[derive(Debug, Clone, Default)]
struct SlowStore {
    inner: MemoryStore,
    calls: Arc<AtomicUsize>,
    delay_ms: u64,
}

metering_core::forward_store! {
    impl Store for SlowStore => inner;
    forward: [
        list_events, event, replacement_of, void_event, amend_event, aggregate, sum_usage, consume,
        tally_meter,
        consume_metered, upsert_quota, list_quotas, quota,
        quota_candidates, delete_quota, insert_api_key, api_key_by_hash, list_api_keys, api_key,
        revoke_api_key, record_key_usage, put_meter, list_meters, meter, delete_meter,
        query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, insert_events_watched, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health,
    ];

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(self.delay_ms)).await;
        self.inner.insert_events(events).await
    }
}

async fn count(store: &MemoryStore) -> usize {
    let page = store
        .list_events(&EventQuery::new(
            EventFilter::all(),
            Paging::Page {
                page: 1,
                page_size: 1,
            },
        ))
        .await
        .expect("list");
    usize::try_from(page.total.expect("total")).expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_events_share_commits() {
    let store = SlowStore {
        delay_ms: 5,
        ..SlowStore::default()
    };
    let engine = Metering::builder(store.clone())
        .group_commit(GroupCommitConfig::default().with_max_delay(Duration::from_millis(5)))
        .build();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let receipt = engine
                .ingest(vec![NewEvent::new("t", "r", "f").with_id(format!("e{i}"))])
                .await
                .expect("ingest");
            assert_eq!(receipt.event_ids[0].as_str(), format!("e{i}"));
            assert_eq!((receipt.events_processed, receipt.duplicates), (1, 0));
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(count(&store.inner).await, 400);
    let calls = store.calls.load(Ordering::SeqCst);
    assert!(calls < 100, "400 requests took {calls} commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_across_callers_count_once() {
    let store = SlowStore {
        delay_ms: 20,
        ..SlowStore::default()
    };
    let engine = Metering::builder(store.clone())
        .group_commit(GroupCommitConfig::default().with_max_delay(Duration::from_millis(20)))
        .build();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .ingest(vec![NewEvent::new("t", "r", "f").with_id("same")])
                .await
                .expect("ingest")
        }));
    }
    let mut processed = 0;
    let mut duplicates = 0;
    for t in tasks {
        let r = t.await.expect("task");
        processed += r.events_processed;
        duplicates += r.duplicates;
    }
    assert_eq!((processed, duplicates), (1, 9));
    assert_eq!(count(&store.inner).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_loses_nothing_acknowledged() {
    let store = SlowStore {
        delay_ms: 50,
        ..SlowStore::default()
    };
    let engine = Metering::builder(store.clone())
        .group_commit(
            GroupCommitConfig::default()
                .with_queue_capacity(2)
                .with_max_events(1)
                .with_max_delay(Duration::from_millis(1)),
        )
        .build();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            engine
                .ingest(vec![NewEvent::new("t", "r", "f").with_id(format!("e{i}"))])
                .await
        }));
    }
    let mut acknowledged = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => acknowledged += r.events_processed,
            Err(Error::Unavailable { .. }) => refused += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        refused > 0,
        "a queue of 2 must refuse some of 50 concurrent requests"
    );
    assert_eq!(count(&store.inner).await, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_bypass_the_group_and_quotas_see_grouped_events() {
    let store = SlowStore::default();
    let engine = Metering::builder(store.clone())
        .group_commit(GroupCommitConfig::default().with_max_events(10))
        .build();
    let tenant = TenantId::new("t").expect("valid");
    let feature = Feature::new("f").expect("valid");
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(tenant.clone()),
            feature.clone(),
            Quantity::from_units(100),
            metering_core::QuotaPeriod::Monthly,
        ))
        .await
        .expect("quota");
    let check = metering_core::ValidateRequest::new(tenant, feature);
    assert_eq!(
        engine
            .validate(check.clone())
            .await
            .expect("validate")
            .current_usage,
        Quantity::ZERO
    );
    let big: Vec<_> = (0..20).map(|_| NewEvent::new("t", "r", "f")).collect();
    engine.ingest(big).await.expect("ingest");
    engine
        .ingest(vec![NewEvent::new("t", "r", "f")])
        .await
        .expect("ingest");
    assert_eq!(
        engine
            .validate(check)
            .await
            .expect("validate")
            .current_usage,
        Quantity::from_units(21)
    );
}
