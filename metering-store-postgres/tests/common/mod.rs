//! Opening a store in a fresh schema of the test database.

#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Utc};
use metering_core::{
    AmendOutcome, ConsumeOutcome, Event, EventId, InsertOutcome, Meter, MeterKey, MeterLimit,
    MeterSpec, MeteredConsume, Result, UsageLimit,
};
use metering_store_postgres::{PostgresConfig, PostgresStore, sqlx};
use tokio::sync::OnceCell;

/// Schemas of this prefix older than this many seconds are leftovers of earlier runs.
const STALE_AFTER_SECS: u64 = 3_600;
const PREFIX: &str = "mtest_pg_";

static CLEANED: OnceCell<()> = OnceCell::const_new();

fn now_secs() -> u64 {
    use metering_core::Clock;
    u64::try_from(metering_core::SystemClock.now().timestamp()).unwrap_or(0)
}

/// A fresh schema name: the prefix, the creation time and random letters.
pub fn schema_name() -> String {
    format!("{PREFIX}{}_{:016x}", now_secs(), rand::random::<u64>())
}

/// Drops schemas that earlier runs left behind (those more than an hour old), once per process.
async fn clean_stale(url: &str) {
    CLEANED
        .get_or_init(|| async {
            let Ok(store) =
                PostgresStore::open(PostgresConfig::new(url).with_run_migrations(false)).await
            else {
                return;
            };
            let names: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'mtest\\_pg\\_%'",
            )
            .fetch_all(store.pool())
            .await
            .unwrap_or_default();
            for name in names {
                let born: Option<u64> = name
                    .strip_prefix(PREFIX)
                    .and_then(|rest| rest.split('_').next())
                    .and_then(|secs| secs.parse().ok());
                if born.is_some_and(|b| b + STALE_AFTER_SECS < now_secs()) {
                    let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                    let _ = sqlx::query(sql.as_str()).execute(store.pool()).await;
                }
            }
            store.close().await;
        })
        .await;
}

/// The test URL, or `None` (and a SKIPPED line) when unset.
pub fn url() -> Option<String> {
    metering_testkit::postgres_url()
}

/// The config of a store in schema `schema`. Calls wait up to 30 s for a connection: the
/// races queue hundreds of calls on four connections, on a machine that may be busy. No
/// background compaction and no meter folder: a test decides when rollup deltas are
/// compacted and meters folded, so reads see them uncompacted and unfolded unless it calls
/// [`PostgresStore::compact_rollups`] or [`PostgresStore::fold_meters`].
pub fn config(url: &str, schema: &str) -> PostgresConfig {
    PostgresConfig::new(url)
        .with_schema(schema)
        .with_max_connections(4)
        .with_acquire_timeout(std::time::Duration::from_secs(30))
        .with_compaction_interval(None)
        .with_meter_fold_interval(None)
}

/// Opens a store in `schema`, panicking with the cause when the configured server fails.
pub async fn open_in(url: &str, schema: &str) -> PostgresStore {
    open_with(config(url, schema)).await
}

/// Opens a store with `config`, panicking with the cause when the configured server fails.
pub async fn open_with(config: PostgresConfig) -> PostgresStore {
    let url = config.url.clone();
    match PostgresStore::open(config).await {
        Ok(store) => store,
        Err(e) => panic!(
            "METERING_TEST_POSTGRES_URL={} is set but the store does not open: {e:?}",
            metering_testkit::env::redact(&url)
        ),
    }
}

/// A store in a schema of its own, or `None` when no server is configured.
pub async fn fresh_store() -> Option<PostgresStore> {
    let url = url()?;
    clean_stale(&url).await;
    Some(open_in(&url, &schema_name()).await)
}

/// Two stores (two pools) on one fresh schema, as two server instances sharing a database,
/// or `None` when no server is configured.
pub async fn two_stores() -> Option<(PostgresStore, PostgresStore)> {
    let url = url()?;
    clean_stale(&url).await;
    let schema = schema_name();
    Some((open_in(&url, &schema).await, open_in(&url, &schema).await))
}

/// Events one meter fold step of [`Compacting`] reads: small, so most cases end with events
/// left unfolded.
const FOLD_STEP: usize = 7;

/// A store that compacts its rollup deltas after every write, so that every read sees the
/// usage in the rollup tables (the plain store's reads see it in the deltas), and folds one
/// small step of its meters before every write, so meter answers combine folded cells with
/// the events not folded yet (at least the last write's). A meter definition is followed
/// by a full backfill, so voids that follow must take events out of folded cells.
#[derive(Debug, Clone)]
pub struct Compacting(pub PostgresStore);

impl Compacting {
    /// Folds one step; the write that follows stays unfolded.
    async fn fold_step(&self) -> Result<()> {
        self.0.fold_meters(FOLD_STEP).await.map(drop)
    }

    async fn compacted<T>(&self, result: Result<T>) -> Result<T> {
        let value = result?;
        self.0.compact_rollups().await?;
        Ok(value)
    }
}

metering_core::forward_store! {
    impl Store for Compacting => 0;
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
        self.fold_step().await?;
        self.compacted(self.0.insert_events_watched(events, watches).await).await
    }

    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        self.fold_step().await?;
        self.compacted(self.0.insert_events(events).await).await
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        self.fold_step().await?;
        self.compacted(self.0.consume(event, limit, watch).await).await
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&metering_core::AlertWatch>,
    ) -> Result<MeteredConsume> {
        self.fold_step().await?;
        self.compacted(self.0.consume_metered(event, limit, watch).await).await
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        self.fold_step().await?;
        self.compacted(self.0.void_event(id, reason, at).await).await
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        self.fold_step().await?;
        self.compacted(self.0.amend_event(replacement, reason, at).await).await
    }

    async fn put_meter(&self, key: &MeterKey, spec: &MeterSpec, now: DateTime<Utc>) -> Result<Meter> {
        let meter = self.0.put_meter(key, spec, now).await?;
        while self.0.fold_meters(1_000).await? {}
        Ok(meter)
    }
}

/// Drops the store's schema.
pub async fn drop_schema(store: &PostgresStore) {
    if let Some(schema) = store.config().schema.clone() {
        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        sqlx::query(sql.as_str())
            .execute(store.pool())
            .await
            .expect("drop the test schema");
    }
}
