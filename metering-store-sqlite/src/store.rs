//! [`SqliteStore`]: the handle, opening, and the [`Store`] implementation, which delegates to
//! the module of each concern.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metering_core::meter::rollup::Writes;
use metering_core::{
    AggregateQuery, AggregateRow, AlertMark, AlertPeriod, AlertWatch, AmendOutcome, ApiKey,
    ApiKeyId, Attempt, ConsumeOutcome, Delivery, DeliveryCounts, DeliveryId, DueDelivery, Error,
    Event, EventId, EventPage, EventQuery, Feature, InsertOutcome, KeyHash, LastAdmin, Meter,
    MeterKey, MeterLimit, MeterQuery, MeterReport, MeterSpec, MeterTally, MeteredConsume, Quantity,
    Quota, QuotaId, QuotaScope, QuotaSpec, Result, Store, StoredApiKey, TenantId, UsageLimit,
    UsageScope, Webhook, WebhookId, WebhookSecret, Window,
};
use rusqlite::{Connection, TransactionBehavior};

use crate::codec::{EventRow, micros};
use crate::config::SqliteConfig;
use crate::conn::{self, Readers, Writer};
use crate::error::{DbResult, SqliteError};
use crate::{
    aggregate, alerts, api_keys, events, meter_rollup, meters, migrations, quotas, webhooks,
};

/// The SQLite [`Store`]: a cheap `Clone` handle; clones share one writer thread and one pool
/// of read connections (see the crate docs for the design).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> metering_core::Result<()> {
/// use metering_core::{Metering, NewEvent};
/// use metering_store_sqlite::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite::memory:").await?;
/// let engine = Metering::builder(store).build();
/// let receipt = engine.ingest(vec![NewEvent::new("org_1", "api", "search")]).await?;
/// assert_eq!(receipt.events_processed, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    writer: Writer,
    readers: Arc<Readers>,
    /// Writes of events in flight, which the folder lets go first.
    writes: Writes,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .field("synchronous", &self.inner.config.synchronous)
            .field("readers", &self.inner.config.readers)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database of `config` and applies any pending
    /// migrations.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the file cannot be opened or locked;
    /// [`Error::Internal`] when the schema is newer than this version or a migration fails.
    pub async fn open(config: SqliteConfig) -> Result<Self> {
        let opened = tokio::task::spawn_blocking(move || -> DbResult<_> {
            let mut writer = conn::open(&config, true)?;
            migrations::migrate(&mut writer)?;
            let count = if config.is_in_memory() {
                0
            } else {
                config.readers
            };
            let readers = Readers::open(&config, count)?;
            Ok((config, writer, readers))
        })
        .await
        .map_err(|e| SqliteError::Task(e.to_string()))??;
        let (config, writer, readers) = opened;
        let store = SqliteStore {
            inner: Arc::new(Inner {
                config,
                writer: Writer::spawn(writer)?,
                readers: Arc::new(readers),
                writes: Writes::new(),
            }),
        };
        store.spawn_folder();
        Ok(store)
    }

    /// Folds up to `budget` events not yet in the meter rollups (over every meter) in one
    /// write transaction; true when more are waiting. The background folder does this on
    /// its own unless [`SqliteConfig::meter_fold_interval`] is `None`. Meter answers are
    /// exact whether or not events are folded.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database cannot be written.
    pub async fn fold_meters(&self, budget: usize) -> Result<bool> {
        self.fold(budget, false).await
    }

    /// Folds one batch: the events are read and folded on a read snapshot, and each
    /// meter's cells are written in its own short write transaction. With `yield_to_writes`,
    /// the read and each write first wait for a pause in the store's writes of events
    /// ([`Writes::idle`]), so ingest goes first; without one in a second, the step is a
    /// tenth of `budget`.
    async fn fold(&self, budget: usize, yield_to_writes: bool) -> Result<bool> {
        let writes = &self.inner.writes;
        let budget = if yield_to_writes {
            writes.fold_budget(budget).await
        } else {
            budget
        };
        let batch = self
            .read(move |c| meter_rollup::read_batch(c, budget))
            .await?;
        let mut more = batch.more;
        for folded in batch.meters {
            if yield_to_writes {
                writes.idle().await;
            }
            let applied = self
                .write_tx(move |tx| meter_rollup::apply(tx, &folded))
                .await?;
            more |= !applied;
        }
        Ok(more)
    }

    /// Runs the background meter folder while a handle lives and a Tokio runtime does.
    fn spawn_folder(&self) {
        let (Some(pause), Ok(runtime)) = (
            self.inner.config.meter_fold_interval,
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let budget = self.inner.config.meter_fold_batch;
        let weak = Arc::downgrade(&self.inner);
        runtime.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let more = SqliteStore { inner }.fold(budget, true).await;
                match more {
                    Ok(true) => tokio::task::yield_now().await,
                    Ok(false) => tokio::time::sleep(pause).await,
                    Err(error) => {
                        tracing::warn!(%error, "folding meter rollups failed; retrying");
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        });
    }

    /// Opens the database a `sqlite:` URL names (see [`SqliteConfig::from_url`]) with the
    /// default settings.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a malformed URL, else as [`SqliteStore::open`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(SqliteConfig::from_url(url)?).await
    }

    /// Applies any pending migrations (already done by [`SqliteStore::open`]; useful when
    /// another process may have opened the file with an older version) and returns how many
    /// ran.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub async fn migrate(&self) -> Result<usize> {
        Ok(self.inner.writer.run(migrations::migrate).await?)
    }

    /// The stored schema version (`PRAGMA user_version`).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the database cannot be read.
    pub async fn schema_version(&self) -> Result<i64> {
        self.read(migrations::schema_version).await
    }

    /// The settings this store was opened with.
    #[must_use]
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// Runs `f` on the write connection, on the writer thread.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        Ok(self.inner.writer.run(f).await?)
    }

    /// Runs `f` in one read transaction (a consistent snapshot), on a reader when there are.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> DbResult<T> + Send + 'static,
    {
        let snapshot = move |conn: &mut Connection| {
            let tx = conn.transaction()?;
            let value = f(&tx)?;
            tx.finish()?;
            Ok(value)
        };
        if self.inner.readers.is_empty() {
            self.write(snapshot).await
        } else {
            Ok(self.inner.readers.run(snapshot).await?)
        }
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer thread and commits.
    async fn write_tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> DbResult<T> + Send + 'static,
    {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }
}

fn rows_of(events: &[Event]) -> Result<Vec<EventRow>> {
    Ok(events
        .iter()
        .map(EventRow::of)
        .collect::<DbResult<Vec<_>>>()?)
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let _writing = self.inner.writes.start();
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        // Binding values are built here, on the caller's task, so the writer thread only
        // executes statements.
        let rows = rows_of(events)?;
        let inserted = self
            .write_tx(move |tx| events::insert_rows(tx, &rows))
            .await?;
        Ok(InsertOutcome { inserted })
    }

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[AlertWatch],
    ) -> Result<InsertOutcome> {
        let _writing = self.inner.writes.start();
        let rows = rows_of(events)?;
        let watches = watches.to_vec();
        let inserted = self
            .write_tx(move |tx| {
                let inserted = events::insert_rows(tx, &rows)?;
                alerts::watch_all(tx, &watches)?;
                Ok(inserted)
            })
            .await?;
        Ok(InsertOutcome { inserted })
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        let query = query.clone();
        self.read(move |c| events::list(c, &query)).await
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>> {
        let id = id.clone();
        self.read(move |c| events::by_id(c, id.as_str())).await
    }

    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
        let id = id.clone();
        self.read(move |c| events::replacement_of(c, id.as_str()))
            .await
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        let _writing = self.inner.writes.start();
        let (id, reason) = (id.clone(), reason.map(str::to_owned));
        self.write_tx(move |tx| events::void(tx, id.as_str(), reason.as_deref(), micros(at)))
            .await
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        let _writing = self.inner.writes.start();
        let rows = rows_of(std::slice::from_ref(replacement))?;
        let (replacement, reason) = (replacement.clone(), reason.map(str::to_owned));
        self.write_tx(move |tx| {
            events::amend(tx, &replacement, &rows, reason.as_deref(), micros(at))
        })
        .await
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let query = query.clone();
        self.read(move |c| aggregate::aggregate(c, &query)).await
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        let scope = scope.clone();
        self.read(move |c| aggregate::sum_usage(c, &scope, window))
            .await
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        let _writing = self.inner.writes.start();
        let rows = rows_of(std::slice::from_ref(event))?;
        let (limit, watch, added) = (limit.clone(), watch.cloned(), event.quantity);
        // BEGIN IMMEDIATE takes the database write lock before the sum is read, so no other
        // connection of any process can insert between the check and the write.
        self.write_tx(move |tx| {
            let outcome = events::consume(tx, &rows, &limit)?;
            if let Some(watch) = &watch
                && let Some((usage, marks)) = watch.after_consume(outcome, added)
            {
                alerts::place(tx, watch, usage, marks)?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally> {
        let limit = limit.clone();
        self.read(move |c| meters::tally(c, &limit)).await
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<MeteredConsume> {
        let _writing = self.inner.writes.start();
        let rows = rows_of(std::slice::from_ref(event))?;
        let (event, limit, watch) = (event.clone(), limit.clone(), watch.cloned());
        // As for `consume`: the write lock is held from before the tally is read.
        self.write_tx(move |tx| {
            let consumed = meters::consume(tx, &event, &rows, &limit)?;
            if let Some(watch) = &watch
                && let Some((usage, marks)) =
                    watch.after_consume(consumed.outcome, consumed.judgement.added)
            {
                alerts::place(tx, watch, usage, marks)?;
            }
            Ok(consumed)
        })
        .await
    }

    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        let spec = spec.clone();
        self.write_tx(move |tx| quotas::upsert(tx, &spec, now))
            .await
    }

    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        let scope = scope.cloned();
        self.read(move |c| quotas::list(c, scope.as_ref())).await
    }

    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
        self.read(move |c| quotas::by_id(c, id)).await
    }

    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        let (tenant, feature) = (tenant.clone(), feature.clone());
        self.read(move |c| quotas::candidates(c, &tenant, &feature))
            .await
    }

    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        if self.write_tx(move |tx| quotas::delete(tx, id)).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("quota {id}")))
        }
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        let (key, hash) = (key.clone(), *hash);
        self.write_tx(move |tx| api_keys::insert(tx, &key, &hash))
            .await
    }

    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        let hash = *hash;
        self.read(move |c| api_keys::by_hash(c, &hash)).await
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        self.read(api_keys::list).await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        self.read(move |c| api_keys::by_id(c, id)).await
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()> {
        match self
            .write_tx(move |tx| api_keys::revoke(tx, id, at, last_admin))
            .await?
        {
            api_keys::Revoked::Done => Ok(()),
            api_keys::Revoked::NotFound => Err(Error::NotFound(format!("API key {id}"))),
            api_keys::Revoked::LastAdmin => Err(LastAdmin::refusal()),
        }
    }

    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        let uses = uses.to_vec();
        self.write_tx(move |tx| api_keys::record_usage(tx, &uses))
            .await
    }

    async fn insert_webhook(&self, webhook: &Webhook, secret: &WebhookSecret) -> Result<()> {
        let (webhook, secret) = (webhook.clone(), secret.clone());
        self.write_tx(move |tx| webhooks::insert(tx, &webhook, &secret))
            .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(webhooks::list).await
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        self.read(move |c| webhooks::by_id(c, id)).await
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
        if self.write_tx(move |tx| webhooks::delete(tx, id)).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("webhook {id}")))
        }
    }

    async fn record_alert(
        &self,
        watch: &AlertWatch,
        mark: AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool> {
        let watch = watch.clone();
        self.write_tx(move |tx| {
            let usage = match usage {
                Some(usage) => usage,
                None => alerts::measure(tx, &watch)?,
            };
            alerts::place(tx, &watch, usage, vec![mark])
        })
        .await
    }

    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertPeriod>> {
        self.read(move |c| alerts::ended_periods(c, micros(now), limit))
            .await
    }

    async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
        self.read(move |c| alerts::deliveries(c, webhook, limit))
            .await
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>> {
        // Most polls find nothing due: look on a reader first, so an idle outbox costs the
        // writer nothing.
        if !self.read(move |c| alerts::any_due(c, micros(now))).await? {
            return Ok(Vec::new());
        }
        self.write_tx(move |tx| alerts::claim(tx, micros(now), micros(lease_until), limit))
            .await
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: Attempt,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.write_tx(move |tx| alerts::finish(tx, id, attempt, micros(at)))
            .await
    }

    async fn retry_delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        self.write_tx(move |tx| alerts::retry(tx, webhook, id, micros(now)))
            .await?
            .ok_or_else(|| Error::NotFound(format!("delivery {id} of webhook {webhook}")))
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts> {
        self.read(alerts::counts).await
    }

    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.write_tx(move |tx| alerts::prune(tx, micros(before), limit))
            .await
    }

    async fn put_meter(
        &self,
        key: &MeterKey,
        spec: &MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<Meter> {
        let (key, spec) = (key.clone(), spec.clone());
        self.write_tx(move |tx| meters::put(tx, &key, &spec, now))
            .await
    }

    async fn list_meters(&self) -> Result<Vec<Meter>> {
        self.read(meters::list).await
    }

    async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>> {
        let key = key.clone();
        self.read(move |c| meters::by_key(c, &key)).await
    }

    async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
        let owned = key.clone();
        if self.write_tx(move |tx| meters::delete(tx, &owned)).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!("meter {key}")))
        }
    }

    async fn query_meter(&self, meter: &Meter, query: &MeterQuery) -> Result<MeterReport> {
        let (meter, query) = (meter.clone(), query.clone());
        self.read(move |c| meter_rollup::query(c, &meter, &query))
            .await
    }

    async fn health(&self) -> Result<()> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
