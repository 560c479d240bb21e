//! The conformance suite of `metering-testkit` with the meter rollups in play: no background
//! folder; every write is followed by one fold step of a few events (so answers combine
//! folded cells with events not folded yet), and a meter definition by a full backfill (so
//! voids that follow must take events out of folded cells).

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use metering_core::{
    AmendOutcome, ConsumeOutcome, Event, EventId, InsertOutcome, Meter, MeterKey, MeterLimit,
    MeterSpec, MeteredConsume, Result, UsageLimit,
};
use metering_store_sqlite::{SqliteConfig, SqliteStore};

/// Keeps every case's temporary directory alive until the test binary exits.
static DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

/// Events one fold step reads: small, so most cases end with events left unfolded.
const STEP: usize = 7;

#[derive(Debug, Clone)]
struct Folding(SqliteStore);

impl Folding {
    async fn step<T>(&self, result: Result<T>) -> Result<T> {
        let value = result?;
        self.0.fold_meters(STEP).await?;
        Ok(value)
    }
}

metering_core::forward_store! {
    impl Store for Folding => 0;
    forward: [
        list_events, event, replacement_of, aggregate, tally_meter, sum_usage, upsert_quota,
        list_quotas, quota, quota_candidates, delete_quota, insert_api_key, api_key_by_hash,
        list_api_keys, api_key, revoke_api_key, record_key_usage, list_meters, meter,
        delete_meter, query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health,
    ];

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[metering_core::AlertWatch],
    ) -> Result<InsertOutcome> {
        self.step(self.0.insert_events_watched(events, watches).await).await
    }

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        self.step(self.0.insert_events(events).await).await
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        self.step(self.0.consume(event, limit, watch).await).await
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<MeteredConsume> {
        self.step(self.0.consume_metered(event, limit, watch).await).await
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        self.step(self.0.void_event(id, reason, at).await).await
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        self.step(self.0.amend_event(replacement, reason, at).await).await
    }

    async fn put_meter(&self, key: &MeterKey, spec: &MeterSpec, now: DateTime<Utc>) -> Result<Meter> {
        let meter = self.0.put_meter(key, spec, now).await?;
        while self.0.fold_meters(1_000).await? {}
        Ok(meter)
    }
}

async fn setup() -> Option<Folding> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("metering.db");
    DIRS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
    let config = SqliteConfig::new(path).with_meter_fold_interval(None);
    Some(Folding(
        SqliteStore::open(config)
            .await
            .expect("a fresh SQLite database opens"),
    ))
}

metering_testkit::store_conformance!(setup);
