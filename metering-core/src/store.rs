//! The [`Store`] trait: where events, quotas and keys are kept.

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::alert::{AlertMark, AlertPeriod, AlertWatch};
use crate::apikey::{ApiKey, ApiKeyId, KeyHash, LastAdmin};
use crate::error::Result;
use crate::event::{Event, EventId, Feature, TenantId};
use crate::meter::{
    Meter, MeterJudgement, MeterKey, MeterLimit, MeterQuery, MeterReport, MeterSpec, MeterTally,
};
use crate::quantity::Quantity;
use crate::query::{AggregateQuery, AggregateRow, EventPage, EventQuery};
use crate::quota::{Quota, QuotaId, QuotaScope, QuotaSpec, UsageLimit, UsageScope};
use crate::webhook::{
    Attempt, Delivery, DeliveryCounts, DeliveryId, DueDelivery, Webhook, WebhookId, WebhookSecret,
};
use crate::window::Window;

/// What [`Store::insert_events`] did with each event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// `inserted[i]` is true when event `i` was newly written, false when its id was
    /// already stored (or appeared earlier in the same batch).
    pub inserted: Vec<bool>,
}

impl InsertOutcome {
    /// Events newly written.
    #[must_use]
    pub fn inserted_count(&self) -> usize {
        self.inserted.iter().filter(|i| **i).count()
    }

    /// Events whose id was already stored.
    #[must_use]
    pub fn duplicate_count(&self) -> usize {
        self.inserted.len() - self.inserted_count()
    }
}

/// What [`Store::consume`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// The event was recorded; usage was `usage_before` before it.
    Admitted {
        /// Usage in the window before this event.
        usage_before: Quantity,
    },
    /// An event with this id was already stored, so nothing was recorded (a retried consume).
    Duplicate {
        /// Usage in the window now.
        usage: Quantity,
    },
    /// Recording the event would exceed the limit; nothing was written.
    Denied {
        /// Usage in the window now.
        usage: Quantity,
    },
}

/// What [`Store::consume_metered`] decided, and the meter values behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeteredConsume {
    /// Recorded, a duplicate of a stored id, or denied; usages are the meter's value.
    pub outcome: ConsumeOutcome,
    /// The value before the event, what it added, and whether it was allowed.
    pub judgement: MeterJudgement,
}

/// What [`Store::amend_event`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum AmendOutcome {
    /// The original was voided and the replacement stored, in one step.
    Amended(Event),
    /// An event with the replacement's id already amends the original (a retried amend):
    /// nothing changed; the stored replacement.
    Replayed(Event),
    /// No event has the original's id.
    NotFound,
    /// The original was voided already (by a void or an earlier amend).
    OriginalVoided,
    /// The replacement's id is taken by an event that is not an amend of the original.
    IdTaken,
}

/// A stored key with its secret's hash, as looked up during authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredApiKey {
    /// The key record.
    pub key: ApiKey,
    /// The hash of its secret.
    pub hash: KeyHash,
}

/// Durable storage for events, quotas and API keys.
///
/// Every method is a unit of atomicity: it either happens whole or not at all. Implementations
/// are cheap `Clone` handles around a pool or connection, shared by every task; use them as
/// `Arc<dyn Store>` to pick one at run time. The conformance suite in `metering-testkit`
/// checks each `# Behavior` below. See the crate-level guide "Implementing a Store".
#[async_trait]
pub trait Store: Send + Sync + Debug + 'static {
    /// Writes a batch of validated events in one transaction.
    ///
    /// # Behavior
    ///
    /// - All or nothing: on error, no event of the batch is stored.
    /// - Idempotent by id: an event whose id is stored already, or appears earlier in the same
    ///   batch, is not written again and is reported as not inserted; the first write wins.
    /// - Once this returns, the events are durable and visible to every later query and to
    ///   [`Store::sum_usage`].
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing was written).
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome>;

    /// Writes a batch as [`Store::insert_events`] does and, in the same transaction, places
    /// the alert marks the batch makes each watch reach (see [`crate::alert`]).
    ///
    /// # Behavior
    ///
    /// - With `usage` the watch's usage after the batch, measured in the transaction, every
    ///   mark of [`AlertWatch::reached`] that is not placed yet for the watch's quota,
    ///   tenant and period is placed, and its message written to the outbox with one pending
    ///   delivery per endpoint that receives its type ([`crate::Webhook::receives`]).
    /// - A mark is placed once, however many writes reach it at once, through any number of
    ///   handles or processes sharing the store: writes that can reach the same marks are
    ///   serialized, so the last one sees the others' events.
    /// - All or nothing: on error, neither events nor marks nor messages are stored.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing was written).
    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[AlertWatch],
    ) -> Result<InsertOutcome>;

    /// Lists events matching a filter, newest `timestamp` first, ties by `id` descending.
    ///
    /// # Behavior
    ///
    /// - Time filters are half-open: `start <= timestamp < end`.
    /// - Numbered paging returns `total`; cursor paging returns the events strictly after the
    ///   cursor and no total. Walking pages by `next_cursor` returns every matching event
    ///   exactly once.
    /// - `next_cursor` is set when the page is full.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_events(&self, query: &EventQuery) -> Result<EventPage>;

    /// One event by id, voided or not.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn event(&self, id: &EventId) -> Result<Option<Event>>;

    /// The event an amend of `id` recorded (whose `amends` is `id`), voided or not.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>>;

    /// Voids an event: it stays stored (with `voided_at = at` and `void_reason = reason`)
    /// and stops counting everywhere. Returns the event as stored afterwards; `None` when no
    /// event has the id.
    ///
    /// # Behavior
    ///
    /// - Aggregates, usage sums, meters and consumes no longer count the event once this
    ///   returns, in whatever window it fell.
    /// - Listings show it only with [`EventFilter::include_voided`](crate::EventFilter).
    /// - Voiding a voided event changes nothing and returns it as it is.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing changed).
    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>>;

    /// Voids the event `replacement.amends` names (as [`Store::void_event`], with `reason`)
    /// and inserts `replacement`, in one step.
    ///
    /// # Behavior
    ///
    /// - Checked in this order: the replacement's id stored already ([`AmendOutcome::Replayed`]
    ///   when that event amends the same original, else [`AmendOutcome::IdTaken`]); the
    ///   original missing ([`AmendOutcome::NotFound`]) or voided
    ///   ([`AmendOutcome::OriginalVoided`]). Only [`AmendOutcome::Amended`] changes anything.
    /// - `replacement.amends` is `Some`; the caller builds it from the original.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing changed).
    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome>;

    /// Sums events per window and group.
    ///
    /// # Behavior
    ///
    /// - Exactly the events with `start <= timestamp < end` matching the filters count, each
    ///   in the window (in `query.tz`) that contains its timestamp.
    /// - Sums are exact; rows are ordered by `window_start`, then the grouped dimensions, and
    ///   windows with no events are absent (build rows with [`crate::AggregateBuilder`]).
    /// - Results equal a recount over the raw events, including events that arrived late.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>>;

    /// The exact usage of `scope` within `window`.
    ///
    /// # Behavior
    ///
    /// Sums the quantity of the scope's events with `window.start <= timestamp < window.end`;
    /// a scope without a resource counts every resource.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity>;

    /// Records `event` only if the scope's usage in the window stays within the limit, as one
    /// atomic step.
    ///
    /// # Behavior
    ///
    /// - When an event with the same id is stored already, nothing is written:
    ///   [`ConsumeOutcome::Duplicate`].
    /// - Otherwise, with `usage` the exact [`Store::sum_usage`] of `limit.scope` in
    ///   `limit.window`: when `usage + event.quantity <= limit.limit` the event is written
    ///   ([`ConsumeOutcome::Admitted`]), else nothing is ([`ConsumeOutcome::Denied`]).
    /// - Concurrent calls, through any number of handles or processes sharing the store,
    ///   never admit more than the limit.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing was written).
    ///
    /// With a `watch`, in the same transaction: an admitted event places the marks the usage
    /// after it reaches, and a denied one those of the usage with [`AlertMark::Exceeded`],
    /// as [`Store::insert_events_watched`] does.
    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<ConsumeOutcome>;

    /// A tenant's value of a meter in a window: the tally of the events that
    /// [`MeterLimit::event_filter`] selects, each pushed to [`MeterLimit::tally`].
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally>;

    /// Records `event` only if the meter's value stays within the limit, as one atomic step.
    ///
    /// # Behavior
    ///
    /// - With the tally of [`Store::tally_meter`] and [`MeterLimit::judge`] of the event:
    ///   when an event with the same id is stored already, nothing is written
    ///   ([`ConsumeOutcome::Duplicate`]); when allowed, the event is written
    ///   ([`ConsumeOutcome::Admitted`]); else nothing is ([`ConsumeOutcome::Denied`]).
    /// - Concurrent calls on the same tenant and meter, through any number of handles or
    ///   processes sharing the store, never admit more than the limit.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing was written).
    ///
    /// With a `watch`, the marks are placed as [`Store::consume`] places them.
    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<MeteredConsume>;

    /// Inserts or replaces the quota identified by `(tenant_id, resource, feature)`, or by
    /// `(tenant_id, meter)` for a meter quota.
    ///
    /// # Behavior
    ///
    /// - A replaced quota keeps its `id` and `created_at`; `updated_at` becomes `now`.
    /// - A meter quota is stored only while its meter exists with an aggregation that
    ///   [`crate::meter::quotable`] accepts, checked atomically with the write.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] for an unknown meter; [`crate::Error::Validation`] for a
    /// meter whose aggregation cannot carry a quota; [`crate::Error::Unavailable`] when the
    /// store cannot be reached.
    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota>;

    /// Lists quotas, all or those whose `tenant_id` equals `scope`, ordered by tenant,
    /// resource (none first), feature.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>>;

    /// One quota by its id.
    ///
    /// # Behavior
    ///
    /// - The quota as [`Store::upsert_quota`] last returned it; `None` for an unknown id or
    ///   a deleted quota.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>>;

    /// The quotas that may govern `tenant`'s use of `feature`: the tenant's own and the
    /// defaults (`*`) for that feature, with any resource.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>>;

    /// Deletes a quota.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] when there is no such quota.
    async fn delete_quota(&self, id: QuotaId) -> Result<()>;

    /// Stores a new key with its secret's hash.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Conflict`] when the id or hash exists already.
    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()>;

    /// Looks a key up by its secret's hash, whatever its state (revoked and expired keys too).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>>;

    /// Lists every key, oldest first, without secrets.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>>;

    /// One key by its id, without its secret, whatever its state.
    ///
    /// # Behavior
    ///
    /// - The key as listed by [`Store::list_api_keys`], revoked and expired keys too;
    ///   `None` for an unknown id.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>>;

    /// Marks a key revoked at `at`; it stops authenticating at once.
    ///
    /// # Behavior
    ///
    /// - Revoking a revoked key changes nothing (the first revocation time stays).
    /// - With [`LastAdmin::Keep`], an admin key that is active at `at` is revoked only while
    ///   another admin key is active then; otherwise nothing changes and the answer is
    ///   [`LastAdmin::refusal`]. The check and the write are one atomic step: concurrent
    ///   revocations, through any number of handles or processes, never leave no active
    ///   admin key.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] when there is no such key; [`crate::Error::Conflict`] for
    /// the last active admin key under [`LastAdmin::Keep`].
    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()>;

    /// Records when keys were last used (batched by the engine; later times win).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()>;

    /// Stores a new webhook endpoint with its signing secret.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Conflict`] when the id exists already; [`crate::Error::Unavailable`]
    /// when the store cannot be reached.
    async fn insert_webhook(&self, webhook: &Webhook, secret: &WebhookSecret) -> Result<()>;

    /// Every webhook endpoint, oldest first (ties by id), without secrets.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_webhooks(&self) -> Result<Vec<Webhook>>;

    /// One webhook endpoint by id, without its secret; `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>>;

    /// Deletes a webhook endpoint; it receives nothing more.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] when there is no such endpoint.
    async fn delete_webhook(&self, id: WebhookId) -> Result<()>;

    /// Places `mark` for `watch` unless it is placed, writing its message and deliveries as
    /// [`Store::insert_events_watched`] does, in one transaction; whether it was placed now.
    /// The message states `usage`, or the usage measured in the transaction when `None`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached (nothing was written).
    async fn record_alert(
        &self,
        watch: &AlertWatch,
        mark: AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool>;

    /// Periods that ended at or before `now` in which marks were placed and whose
    /// [`AlertMark::Reset`] is not placed yet, of quotas that still exist, the earliest
    /// ending first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertPeriod>>;

    /// The deliveries to an endpoint, the last written first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>>;

    /// Takes up to `limit` pending deliveries due at `now` to active endpoints, oldest
    /// first, and leases them until `lease_until`: until then no other call returns them.
    ///
    /// # Behavior
    ///
    /// - A delivery is due when its next attempt time has come and no lease on it runs.
    /// - Concurrent calls, through any number of handles or processes, never return the
    ///   same delivery while its lease runs.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>>;

    /// Records how an attempt at a pending delivery ended, at `at`: one more attempt, its
    /// status code, the new state; the lease ends. [`Attempt::Gone`] also disables the
    /// endpoint. A delivery no longer pending (retried by hand meanwhile, or deleted) is
    /// left as it is.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: Attempt,
        at: DateTime<Utc>,
    ) -> Result<()>;

    /// Makes a delivery of `webhook` pending again, due at `now`, whatever its state; the
    /// delivery as it is now. The message keeps its id.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] when `webhook` has no such delivery.
    async fn retry_delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery>;

    /// How many deliveries are in each state.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn delivery_counts(&self) -> Result<DeliveryCounts>;

    /// Deletes what alerting no longer needs from before `before`: deliveries that are not
    /// pending (delivered or failed) written before it, and the marks of periods that ended
    /// before it (their thresholds cannot fire again, and their `quota.reset` was sent or is
    /// too late to send). At most `limit` rows of each kind; returns how many were deleted
    /// in all. Pending deliveries are never deleted.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// Creates or replaces the meter `key`.
    ///
    /// # Behavior
    ///
    /// - A replaced meter keeps its `created_at`; `updated_at` becomes `now`.
    /// - The meter applies to every stored event at once, past and future
    ///   ([`Store::query_meter`] recounts them).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Conflict`] when the new aggregation cannot carry a quota and a quota
    /// names the meter (nothing is changed); [`crate::Error::Unavailable`] when the store
    /// cannot be reached.
    async fn put_meter(
        &self,
        key: &MeterKey,
        spec: &MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<Meter>;

    /// Every meter, ordered by key.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn list_meters(&self) -> Result<Vec<Meter>>;

    /// One meter by its key; `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>>;

    /// Deletes a meter.
    ///
    /// # Errors
    ///
    /// [`crate::Error::NotFound`] when there is no such meter; [`crate::Error::Conflict`]
    /// while a quota names it (nothing is deleted).
    async fn delete_meter(&self, key: &MeterKey) -> Result<()>;

    /// Answers `query` for `meter`.
    ///
    /// # Behavior
    ///
    /// - Exactly the events with `start <= timestamp < end` that match the meter's filter and
    ///   the query's filters count, each in the window (in `query.tz`) containing it.
    /// - The answer equals a recount over the raw events ([`crate::MeterAggregator`] fed
    ///   every stored event), including events stored before the meter was defined.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the store cannot be reached.
    async fn query_meter(&self, meter: &Meter, query: &MeterQuery) -> Result<MeterReport>;

    /// Checks the store answers.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when it does not.
    async fn health(&self) -> Result<()>;
}
