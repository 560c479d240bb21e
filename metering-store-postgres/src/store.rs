//! [`PostgresStore`]: the handle, opening, and the [`Store`] implementation, which delegates to
//! the module of each concern.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metering_core::{
    AggregateQuery, AggregateRow, AlertMark, AlertPeriod, AlertWatch, AmendOutcome, ApiKey,
    ApiKeyId, Attempt, ConsumeOutcome, Delivery, DeliveryCounts, DeliveryId, DueDelivery, Error,
    Event, EventId, EventPage, EventQuery, Feature, InsertOutcome, KeyHash, LastAdmin, Meter,
    MeterKey, MeterLimit, MeterQuery, MeterReport, MeterSpec, MeterTally, MeteredConsume, Quantity,
    Quota, QuotaId, QuotaScope, QuotaSpec, Result, Store, StoredApiKey, TenantId, UsageLimit,
    UsageScope, Webhook, WebhookId, WebhookSecret, Window, redact_url,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use crate::config::PostgresConfig;
use crate::error::db;
use crate::meter_rollup::Folder;
use crate::migrations::quote_ident;
use crate::retention::{KnownPartitions, RetentionReport};
use crate::rollup::Compactor;
use crate::{
    aggregate, alerts, api_keys, corrections, events, meter_rollup, meters, migrations, quotas,
    retention, rollup, webhooks,
};
use metering_core::meter::rollup::Writes;

/// A [`Store`] on PostgreSQL: a cheap `Clone` handle around a [`sqlx::PgPool`].
///
/// Open it with [`PostgresStore::open`] or [`PostgresStore::connect`]; clones share the pool.
/// See the crate docs for the schema and its guarantees.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    config: Arc<PostgresConfig>,
    /// First days (UTC) of the months whose partition is known to exist.
    partitions: Arc<KnownPartitions>,
    /// The background rollup compaction, stopped when the last clone is dropped.
    _compactor: Option<Arc<Compactor>>,
    /// The background meter folder, stopped when the last clone is dropped.
    _folder: Option<Arc<Folder>>,
    /// Writes of events in flight, which the folder lets go first.
    writes: Arc<Writes>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &redact_url(&self.config.url))
            .field("schema", &self.config.schema)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with `config`, creates the schema when one is configured, applies the
    /// migrations (unless turned off) and creates the partitions of the coming months.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached within the connect timeout,
    /// [`Error::Internal`] when the URL is invalid or a migration fails.
    pub async fn open(config: PostgresConfig) -> Result<PostgresStore> {
        let options: PgConnectOptions = config.url.parse().map_err(|e| {
            Error::internal(
                format!("invalid PostgreSQL URL {}", redact_url(&config.url)),
                e,
            )
        })?;
        // No JIT: the store's statements are short, and compiling one took longer than
        // running it (over 100 ms of a 30-day aggregate on a million events).
        let options = options
            .application_name("metering")
            .options([("jit", "off")]);
        let search_path = config.schema.as_deref().map(quote_ident);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .min_connections(config.min_connections)
            .acquire_timeout(config.acquire_timeout)
            .test_before_acquire(true)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(path) = search_path {
                        // The schema name is quoted as an identifier; SET takes no parameters.
                        let sql = format!("SET search_path TO {path}");
                        conn.execute(sql.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let store = PostgresStore {
            pool,
            config: Arc::new(config),
            partitions: Arc::new(Mutex::new(HashSet::new())),
            _compactor: None,
            _folder: None,
            writes: Arc::new(Writes::new()),
        };
        // Only reaching the server is bounded by the timeouts: migrations may take as long
        // as they need (one that rewrites a large table takes minutes).
        match tokio::time::timeout(
            store
                .config
                .connect_timeout
                .max(store.config.acquire_timeout),
            async {
                drop(store.pool.acquire().await.map_err(db)?);
                migrations::create_schema(&store.pool, store.config.schema.as_deref()).await
            },
        )
        .await
        {
            Ok(result) => result?,
            Err(elapsed) => {
                return Err(Error::unavailable(
                    format!(
                        "PostgreSQL at {} did not answer in time",
                        redact_url(&store.config.url)
                    ),
                    elapsed,
                ));
            }
        }
        if store.config.run_migrations {
            store.migrate().await?;
            store
                .maintain(metering_core::Clock::now(&metering_core::SystemClock))
                .await?;
        }
        let compactor = store
            .config
            .compaction_interval
            .map(|every| Arc::new(Compactor::spawn(store.pool.clone(), every)));
        let folder = store.config.meter_fold_interval.map(|every| {
            Arc::new(Folder::spawn(
                store.pool.clone(),
                every,
                store.config.meter_fold_batch,
                Arc::clone(&store.writes),
            ))
        });
        Ok(PostgresStore {
            _compactor: compactor,
            _folder: folder,
            ..store
        })
    }

    /// Opens the store at `url` with the default settings.
    ///
    /// # Errors
    ///
    /// As [`PostgresStore::open`].
    pub async fn connect(url: &str) -> Result<PostgresStore> {
        PostgresStore::open(PostgresConfig::new(url)).await
    }

    /// Applies the embedded migrations. Several instances may call it at once: sqlx holds an
    /// advisory lock while it migrates.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached, [`Error::Internal`] when a
    /// migration fails.
    pub async fn migrate(&self) -> Result<()> {
        migrations::migrate(&self.pool).await
    }

    /// The pool, for queries of your own.
    #[must_use]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The configuration the store was opened with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Closes the pool; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Routine upkeep at `now`: creates the partitions of this month and of the configured
    /// number of months ahead, and applies the configured retention (if any). Run it now and
    /// then (daily is plenty); [`PostgresStore::open`] runs it once.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<RetentionReport> {
        retention::maintain(&self.pool, &self.config, &self.partitions, now).await
    }

    /// Drops every monthly partition that ends at or before `older_than`, with the ids and
    /// rollups of the events it held, in one transaction. Events of a partial month are kept
    /// until their whole month is past `older_than`.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn apply_retention(&self, older_than: DateTime<Utc>) -> Result<RetentionReport> {
        retention::apply_retention(&self.pool, &self.partitions, older_than).await
    }

    /// Folds the rollup deltas that ingest appended into `rollups_15m` and `rollups_1d`, and
    /// returns how many delta rows it moved (0 when another store is compacting the same
    /// schema at that moment).
    ///
    /// The store does this by itself every [`crate::PostgresConfig::compaction_interval`];
    /// call it when that is turned off. Results never depend on it: reads add the deltas
    /// not compacted yet. It only keeps the delta table, which reads scan, short.
    ///
    /// # Errors
    ///
    /// [`metering_core::Error::Unavailable`] when the server cannot be reached.
    pub async fn compact_rollups(&self) -> metering_core::Result<u64> {
        rollup::compact(&self.pool).await.map_err(db)
    }

    /// Folds up to `budget` events (per group of meters at the same point) into the meters'
    /// cells; returns whether more are waiting.
    ///
    /// The store does this by itself (see [`crate::PostgresConfig::meter_fold_interval`]);
    /// call it when that is turned off. Answers never depend on it: a query adds the events
    /// not folded yet.
    ///
    /// # Errors
    ///
    /// [`metering_core::Error::Unavailable`] when the server cannot be reached.
    pub async fn fold_meters(&self, budget: usize) -> Result<bool> {
        meter_rollup::fold(&self.pool, budget, None).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let _writing = self.writes.start();
        events::insert_batch(&self.pool, &self.partitions, events, &[]).await
    }

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[AlertWatch],
    ) -> Result<InsertOutcome> {
        let _writing = self.writes.start();
        events::insert_batch(&self.pool, &self.partitions, events, watches).await
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        events::list_events(&self.pool, query).await
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>> {
        corrections::by_id(&self.pool, id).await
    }

    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
        corrections::replacement_of(&self.pool, id).await
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        let _writing = self.writes.start();
        corrections::void(&self.pool, id, reason, at).await
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        let _writing = self.writes.start();
        corrections::amend(&self.pool, &self.partitions, replacement, reason, at).await
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        aggregate::aggregate_rows(&self.pool, query).await
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        aggregate::sum_usage(&mut conn, scope, window).await
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        let _writing = self.writes.start();
        let limit = events::ConsumeLimit::Usage(limit);
        Ok(
            events::consume(&self.pool, &self.partitions, event, limit, watch)
                .await?
                .0,
        )
    }

    async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        meters::tally(&mut conn, limit).await
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<MeteredConsume> {
        let _writing = self.writes.start();
        let (outcome, judgement) = events::consume(
            &self.pool,
            &self.partitions,
            event,
            events::ConsumeLimit::Meter(limit),
            watch,
        )
        .await?;
        Ok(MeteredConsume { outcome, judgement })
    }

    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        quotas::upsert_quota(&self.pool, spec, now).await
    }

    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        quotas::list_quotas(&self.pool, scope).await
    }

    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        quotas::quota_candidates(&self.pool, tenant, feature).await
    }

    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
        quotas::quota(&self.pool, id).await
    }

    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        quotas::delete_quota(&self.pool, id).await
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        api_keys::insert_api_key(&self.pool, key, hash).await
    }

    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        api_keys::api_key_by_hash(&self.pool, hash).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        api_keys::list_api_keys(&self.pool).await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        api_keys::api_key(&self.pool, id).await
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()> {
        api_keys::revoke_api_key(&self.pool, id, at, last_admin).await
    }

    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        api_keys::record_key_usage(&self.pool, uses).await
    }

    async fn insert_webhook(&self, webhook: &Webhook, secret: &WebhookSecret) -> Result<()> {
        webhooks::insert(&self.pool, webhook, secret).await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        webhooks::list(&self.pool).await
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        webhooks::by_id(&self.pool, id).await
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
        webhooks::delete(&self.pool, id).await
    }

    async fn record_alert(
        &self,
        watch: &AlertWatch,
        mark: AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        alerts::lock(&mut tx, std::slice::from_ref(watch)).await?;
        let usage = match usage {
            Some(usage) => usage,
            None => alerts::measure(&mut tx, watch).await?,
        };
        let placed = alerts::place(&mut tx, watch, usage, vec![mark]).await?;
        tx.commit().await.map_err(db)?;
        Ok(placed)
    }

    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertPeriod>> {
        alerts::ended_periods(&self.pool, now, limit).await
    }

    async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
        alerts::deliveries(&self.pool, webhook, limit).await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>> {
        alerts::claim(&self.pool, now, lease_until, limit).await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: Attempt,
        at: DateTime<Utc>,
    ) -> Result<()> {
        alerts::finish(&self.pool, id, attempt, at).await
    }

    async fn retry_delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        alerts::retry(&self.pool, webhook, id, now)
            .await?
            .ok_or_else(|| Error::NotFound(format!("delivery {id} of webhook {webhook}")))
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts> {
        alerts::counts(&self.pool).await
    }

    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        alerts::prune(&self.pool, before, limit).await
    }

    async fn put_meter(
        &self,
        key: &MeterKey,
        spec: &MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<Meter> {
        meters::put(&self.pool, key, spec, now).await
    }

    async fn list_meters(&self) -> Result<Vec<Meter>> {
        meters::list(&self.pool).await
    }

    async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>> {
        meters::by_key(&self.pool, key).await
    }

    async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
        if meters::delete(&self.pool, key).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("meter {key}")))
        }
    }

    async fn query_meter(&self, meter: &Meter, query: &MeterQuery) -> Result<MeterReport> {
        meter_rollup::query(&self.pool, meter, query).await
    }

    async fn health(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}
