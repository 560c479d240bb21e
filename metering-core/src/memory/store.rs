use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::alert::{AlertMark, AlertMeasure, AlertPeriod, AlertWatch};
use crate::apikey::{ApiKey, ApiKeyId, KeyHash, LastAdmin, Role};
use crate::error::{Error, Result};
use crate::event::{Event, EventId, Feature, TenantId};
use crate::meter::{
    Meter, MeterAddition, MeterAggregator, MeterKey, MeterLimit, MeterQuery, MeterReport,
    MeterSpec, MeterTally, check_quota_meter, meter_in_use, quotable,
};
use crate::quantity::Quantity;
use crate::query::{AggregateBuilder, AggregateQuery, AggregateRow, EventPage, EventQuery, Paging};
use crate::quota::{Quota, QuotaId, QuotaScope, QuotaSpec, UsageLimit, UsageScope, sort_quotas};
use crate::store::{
    AmendOutcome, ConsumeOutcome, InsertOutcome, MeteredConsume, Store, StoredApiKey,
};
use crate::webhook::{
    Attempt, Delivery, DeliveryCounts, DeliveryId, DeliveryStatus, DueDelivery, Webhook, WebhookId,
    WebhookSecret,
};
use crate::window::Window;

/// A [`Store`] that keeps everything in memory. Clones share the same data.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> metering_core::Result<()> {
/// use metering_core::{MemoryStore, Metering, NewEvent};
/// let engine = Metering::builder(MemoryStore::new()).build();
/// let receipt = engine.ingest(vec![NewEvent::new("org_1", "api", "search")]).await?;
/// assert_eq!(receipt.events_processed, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    state: Arc<RwLock<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Ascending by (timestamp, id); listings walk it backwards.
    events: BTreeMap<(DateTime<Utc>, EventId), Event>,
    /// Every stored id, with the event's timestamp (its place in `events`).
    ids: HashMap<EventId, DateTime<Utc>>,
    /// Original id -> the id of the event its amend recorded.
    replacements: HashMap<EventId, EventId>,
    quotas: HashMap<QuotaId, Quota>,
    keys: Vec<StoredApiKey>,
    meters: BTreeMap<MeterKey, Meter>,
    /// Registration order; each with its signing secret.
    webhooks: Vec<(Webhook, WebhookSecret)>,
    /// Placed alert marks, `(quota, tenant, period start, mark key)`, with the period's end.
    alert_marks: HashMap<(QuotaId, TenantId, DateTime<Utc>, String), DateTime<Utc>>,
    /// The outbox: one delivery per message and endpoint, in writing order.
    deliveries: Vec<Outboxed>,
}

/// A delivery with its schedule.
#[derive(Debug)]
struct Outboxed {
    delivery: Delivery,
    next_attempt_at: DateTime<Utc>,
    lease_until: Option<DateTime<Utc>>,
}

/// The smallest id, so `(t, MIN_ID)` sorts before every event at `t`.
fn min_id() -> EventId {
    EventId::from_trusted(String::new())
}

impl State {
    fn tally(&self, limit: &MeterLimit) -> MeterTally {
        let filter = limit.event_filter();
        let mut tally = limit.tally();
        for event in self.range(filter.start, filter.end) {
            if filter.matches(event) {
                tally.push(limit, event);
            }
        }
        tally
    }

    fn meter_in_use(&self, key: &MeterKey) -> bool {
        self.quotas
            .values()
            .any(|q| q.spec.meter.as_ref() == Some(key))
    }

    fn range(
        &self,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> impl DoubleEndedIterator<Item = &Event> {
        // An end before the start is an empty range (`BTreeMap::range` would panic on it).
        let end = match (start, end) {
            (Some(s), Some(e)) => Some(e.max(s)),
            _ => end,
        };
        let lower = start.map_or(Bound::Unbounded, |s| Bound::Included((s, min_id())));
        let upper = end.map_or(Bound::Unbounded, |e| Bound::Excluded((e, min_id())));
        self.events.range((lower, upper)).map(|(_, e)| e)
    }

    fn sum_usage(&self, scope: &UsageScope, window: Window) -> Quantity {
        self.range(Some(window.start), Some(window.end))
            .filter(|e| e.counts() && scope.counts(&e.tenant_id, &e.resource, &e.feature))
            .map(|e| e.quantity)
            .sum()
    }

    /// A watch's usage now.
    fn measure(&self, watch: &AlertWatch) -> Quantity {
        match &watch.measure {
            AlertMeasure::Usage(scope) => self.sum_usage(scope, watch.window),
            AlertMeasure::Meter(limit) => self.tally(limit).usage(),
        }
    }

    /// Places each of `marks` not placed yet, writing its message to the outbox; whether
    /// any was placed.
    fn place(&mut self, watch: &AlertWatch, usage: Quantity, marks: Vec<AlertMark>) -> bool {
        let mut placed = false;
        for mark in marks {
            let key = (
                watch.quota.id,
                watch.tenant_id.clone(),
                watch.window.start,
                mark.key(),
            );
            if self.alert_marks.contains_key(&key) {
                continue;
            }
            self.alert_marks.insert(key, watch.window.end);
            placed = true;
            let message = mark.message(&watch.subject(usage), watch.at);
            for (hook, _) in &self.webhooks {
                if hook.receives(message.kind) {
                    self.deliveries.push(Outboxed {
                        delivery: Delivery {
                            id: DeliveryId::generate(),
                            webhook_id: hook.id,
                            message_id: message.id.clone(),
                            kind: message.kind,
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            last_status_code: None,
                            created_at: message.created_at,
                            delivered_at: None,
                            payload: message.body.clone(),
                        },
                        next_attempt_at: message.created_at,
                        lease_until: None,
                    });
                }
            }
        }
        placed
    }

    fn insert(&mut self, event: &Event) -> bool {
        if self.ids.contains_key(&event.id) {
            return false;
        }
        self.ids.insert(event.id.clone(), event.timestamp);
        if let Some(original) = &event.amends {
            self.replacements.insert(original.clone(), event.id.clone());
        }
        self.events
            .insert((event.timestamp, event.id.clone()), event.clone());
        true
    }

    fn event_mut(&mut self, id: &EventId) -> Option<&mut Event> {
        let ts = *self.ids.get(id)?;
        self.events.get_mut(&(ts, id.clone()))
    }

    fn event(&self, id: &EventId) -> Option<&Event> {
        let ts = *self.ids.get(id)?;
        self.events.get(&(ts, id.clone()))
    }

    /// Voids the event unless it is voided already; false when unknown.
    fn void(&mut self, id: &EventId, reason: Option<&str>, at: DateTime<Utc>) -> bool {
        let Some(event) = self.event_mut(id) else {
            return false;
        };
        if event.voided_at.is_none() {
            event.voided_at = Some(crate::time::truncate_micros(at));
            event.void_reason = reason.map(str::to_owned);
        }
        true
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
        let mut state = self.write();
        let inserted = events.iter().map(|e| state.insert(e)).collect();
        Ok(InsertOutcome { inserted })
    }

    async fn insert_events_watched(
        &self,
        events: &[Event],
        watches: &[AlertWatch],
    ) -> Result<InsertOutcome> {
        let mut state = self.write();
        let inserted = events.iter().map(|e| state.insert(e)).collect();
        for watch in watches {
            let usage = state.measure(watch);
            let marks = watch.reached(usage, false);
            state.place(watch, usage, marks);
        }
        Ok(InsertOutcome { inserted })
    }

    async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        let state = self.read();
        let filter = &query.filter;
        let size = usize::try_from(query.paging.page_size()).unwrap_or(usize::MAX);
        let matching = state
            .range(filter.start, filter.end)
            .rev()
            .filter(|e| filter.matches(e));
        let (events, total): (Vec<Event>, _) = match &query.paging {
            Paging::Page { page, .. } => {
                let skip = usize::try_from(page.saturating_sub(1))
                    .unwrap_or(usize::MAX)
                    .saturating_mul(size);
                let all: Vec<&Event> = matching.collect();
                let total = all.len() as u64;
                (
                    all.into_iter().skip(skip).take(size).cloned().collect(),
                    Some(total),
                )
            }
            Paging::Cursor { after, .. } => (
                matching
                    .filter(|e| after.as_ref().is_none_or(|c| c.precedes(e)))
                    .take(size)
                    .cloned()
                    .collect(),
                None,
            ),
        };
        Ok(EventPage::new(events, total, &query.paging))
    }

    async fn event(&self, id: &EventId) -> Result<Option<Event>> {
        Ok(self.read().event(id).cloned())
    }

    async fn replacement_of(&self, id: &EventId) -> Result<Option<Event>> {
        let state = self.read();
        Ok(state
            .replacements
            .get(id)
            .and_then(|r| state.event(r))
            .cloned())
    }

    async fn void_event(
        &self,
        id: &EventId,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>> {
        let mut state = self.write();
        if !state.void(id, reason, at) {
            return Ok(None);
        }
        Ok(state.event(id).cloned())
    }

    async fn amend_event(
        &self,
        replacement: &Event,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<AmendOutcome> {
        let original = replacement.amends.as_ref().ok_or_else(|| Error::Internal {
            message: "an amend's replacement names no original".into(),
            source: None,
        })?;
        let mut state = self.write();
        if let Some(stored) = state.event(&replacement.id) {
            return Ok(if stored.amends.as_ref() == Some(original) {
                AmendOutcome::Replayed(stored.clone())
            } else {
                AmendOutcome::IdTaken
            });
        }
        match state.event(original) {
            None => return Ok(AmendOutcome::NotFound),
            Some(e) if !e.counts() => return Ok(AmendOutcome::OriginalVoided),
            Some(_) => {}
        }
        state.void(original, reason, at);
        state.insert(replacement);
        Ok(AmendOutcome::Amended(replacement.clone()))
    }

    async fn aggregate(&self, query: &AggregateQuery) -> Result<Vec<AggregateRow>> {
        let state = self.read();
        let filter = query.filter();
        let mut builder = AggregateBuilder::new(query);
        for event in state
            .range(filter.start, filter.end)
            .filter(|e| filter.matches(e))
        {
            builder.add_event(event);
        }
        Ok(builder.finish())
    }

    async fn sum_usage(&self, scope: &UsageScope, window: Window) -> Result<Quantity> {
        Ok(self.read().sum_usage(scope, window))
    }

    async fn consume(
        &self,
        event: &Event,
        limit: &UsageLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<ConsumeOutcome> {
        // One write lock over the check and the insert makes them one atomic step.
        let mut state = self.write();
        let usage = state.sum_usage(&limit.scope, limit.window);
        let outcome = if state.ids.contains_key(&event.id) {
            ConsumeOutcome::Duplicate { usage }
        } else {
            match usage.checked_add(event.quantity) {
                Some(total) if total <= limit.limit => {
                    state.insert(event);
                    ConsumeOutcome::Admitted {
                        usage_before: usage,
                    }
                }
                _ => ConsumeOutcome::Denied { usage },
            }
        };
        if let Some(watch) = watch
            && let Some((usage, marks)) = watch.after_consume(outcome, event.quantity)
        {
            state.place(watch, usage, marks);
        }
        Ok(outcome)
    }

    async fn tally_meter(&self, limit: &MeterLimit) -> Result<MeterTally> {
        Ok(self.read().tally(limit))
    }

    async fn consume_metered(
        &self,
        event: &Event,
        limit: &MeterLimit,
        watch: Option<&AlertWatch>,
    ) -> Result<MeteredConsume> {
        // One write lock over the tally and the insert makes them one atomic step.
        let mut state = self.write();
        let tally = state.tally(limit);
        let judgement = limit.judge(&tally, MeterAddition::Event(event));
        let usage = judgement.usage;
        let outcome = if state.ids.contains_key(&event.id) {
            ConsumeOutcome::Duplicate { usage }
        } else if judgement.allowed {
            state.insert(event);
            ConsumeOutcome::Admitted {
                usage_before: usage,
            }
        } else {
            ConsumeOutcome::Denied { usage }
        };
        if let Some(watch) = watch
            && let Some((usage, marks)) = watch.after_consume(outcome, judgement.added)
        {
            state.place(watch, usage, marks);
        }
        Ok(MeteredConsume { outcome, judgement })
    }

    async fn upsert_quota(&self, spec: &QuotaSpec, now: DateTime<Utc>) -> Result<Quota> {
        let mut state = self.write();
        if let Some(key) = &spec.meter {
            check_quota_meter(key, state.meters.get(key).map(|m| &m.spec))?;
        }
        let now = crate::time::truncate_micros(now);
        let existing = state.quotas.values_mut().find(|q| {
            q.spec.tenant_id == spec.tenant_id
                && q.spec.resource == spec.resource
                && q.spec.feature == spec.feature
                && q.spec.meter == spec.meter
        });
        if let Some(q) = existing {
            q.spec = spec.clone();
            q.updated_at = now;
            return Ok(q.clone());
        }
        let quota = Quota {
            id: QuotaId::generate(),
            spec: spec.clone(),
            created_at: now,
            updated_at: now,
        };
        state.quotas.insert(quota.id, quota.clone());
        Ok(quota)
    }

    async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        let mut quotas: Vec<Quota> = self
            .read()
            .quotas
            .values()
            .filter(|q| scope.is_none_or(|s| q.spec.tenant_id == *s))
            .cloned()
            .collect();
        sort_quotas(&mut quotas);
        Ok(quotas)
    }

    async fn quota_candidates(&self, tenant: &TenantId, feature: &Feature) -> Result<Vec<Quota>> {
        let mut quotas: Vec<Quota> = self
            .read()
            .quotas
            .values()
            .filter(|q| q.spec.feature.as_ref() == Some(feature) && q.spec.tenant_id.covers(tenant))
            .cloned()
            .collect();
        sort_quotas(&mut quotas);
        Ok(quotas)
    }

    async fn quota(&self, id: QuotaId) -> Result<Option<Quota>> {
        Ok(self.read().quotas.get(&id).cloned())
    }

    async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        match self.write().quotas.remove(&id) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("quota {id}"))),
        }
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &KeyHash) -> Result<()> {
        let mut state = self.write();
        if state
            .keys
            .iter()
            .any(|k| k.key.id == key.id || k.hash == *hash)
        {
            return Err(Error::Conflict(
                "an API key with this id or secret exists".into(),
            ));
        }
        state.keys.push(StoredApiKey {
            key: key.clone(),
            hash: *hash,
        });
        Ok(())
    }

    async fn api_key_by_hash(&self, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
        Ok(self.read().keys.iter().find(|k| k.hash == *hash).cloned())
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        Ok(self.read().keys.iter().map(|k| k.key.clone()).collect())
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>> {
        Ok(self
            .read()
            .keys
            .iter()
            .find(|k| k.key.id == id)
            .map(|k| k.key.clone()))
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: DateTime<Utc>,
        last_admin: LastAdmin,
    ) -> Result<()> {
        let mut state = self.write();
        let active_admin = |k: &StoredApiKey| k.key.role == Role::Admin && k.key.is_active(at);
        let target_is_active_admin = state.keys.iter().any(|k| k.key.id == id && active_admin(k));
        let other_admin = state.keys.iter().any(|k| k.key.id != id && active_admin(k));
        if last_admin == LastAdmin::Keep && target_is_active_admin && !other_admin {
            return Err(LastAdmin::refusal());
        }
        let key = state
            .keys
            .iter_mut()
            .find(|k| k.key.id == id)
            .ok_or_else(|| Error::NotFound(format!("API key {id}")))?;
        if key.key.revoked_at.is_none() {
            key.key.revoked_at = Some(crate::time::truncate_micros(at));
        }
        Ok(())
    }

    async fn record_key_usage(&self, uses: &[(ApiKeyId, DateTime<Utc>)]) -> Result<()> {
        let mut state = self.write();
        for (id, at) in uses {
            if let Some(k) = state.keys.iter_mut().find(|k| k.key.id == *id) {
                let at = crate::time::truncate_micros(*at);
                k.key.last_used_at = Some(k.key.last_used_at.map_or(at, |l| l.max(at)));
            }
        }
        Ok(())
    }

    async fn insert_webhook(&self, webhook: &Webhook, secret: &WebhookSecret) -> Result<()> {
        let mut state = self.write();
        if state.webhooks.iter().any(|(w, _)| w.id == webhook.id) {
            return Err(Error::Conflict(format!(
                "webhook {} exists already",
                webhook.id
            )));
        }
        state.webhooks.push((webhook.clone(), secret.clone()));
        Ok(())
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let mut hooks: Vec<Webhook> = self
            .read()
            .webhooks
            .iter()
            .map(|(w, _)| w.clone())
            .collect();
        hooks.sort_by_key(|w| (w.created_at, w.id));
        Ok(hooks)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>> {
        Ok(self
            .read()
            .webhooks
            .iter()
            .find(|(w, _)| w.id == id)
            .map(|(w, _)| w.clone()))
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
        let mut state = self.write();
        let before = state.webhooks.len();
        state.webhooks.retain(|(w, _)| w.id != id);
        if state.webhooks.len() == before {
            return Err(Error::NotFound(format!("webhook {id}")));
        }
        state.deliveries.retain(|d| d.delivery.webhook_id != id);
        Ok(())
    }

    async fn record_alert(
        &self,
        watch: &AlertWatch,
        mark: AlertMark,
        usage: Option<Quantity>,
    ) -> Result<bool> {
        let mut state = self.write();
        let usage = usage.unwrap_or_else(|| state.measure(watch));
        Ok(state.place(watch, usage, vec![mark]))
    }

    async fn ended_alert_periods(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AlertPeriod>> {
        let state = self.read();
        let reset = AlertMark::Reset.key();
        let mut periods: Vec<AlertPeriod> = state
            .alert_marks
            .iter()
            .filter(|((quota, ..), end)| **end <= now && state.quotas.contains_key(quota))
            .filter(|((quota, tenant, start, _), _)| {
                !state
                    .alert_marks
                    .contains_key(&(*quota, tenant.clone(), *start, reset.clone()))
            })
            .map(|((quota, tenant, start, _), end)| AlertPeriod {
                quota_id: *quota,
                tenant_id: tenant.clone(),
                window: Window {
                    start: *start,
                    end: *end,
                },
            })
            .collect();
        periods.sort_by(|a, b| {
            (a.window.end, a.quota_id, &a.tenant_id).cmp(&(b.window.end, b.quota_id, &b.tenant_id))
        });
        periods.dedup();
        periods.truncate(limit);
        Ok(periods)
    }

    async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
        let state = self.read();
        Ok(state
            .deliveries
            .iter()
            .rev()
            .filter(|d| d.delivery.webhook_id == webhook)
            .take(limit)
            .map(|d| d.delivery.clone())
            .collect())
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueDelivery>> {
        let mut state = self.write();
        let State {
            deliveries,
            webhooks,
            ..
        } = &mut *state;
        let mut due = Vec::new();
        for entry in deliveries.iter_mut() {
            if due.len() == limit {
                break;
            }
            let waiting = entry.delivery.status == DeliveryStatus::Pending
                && entry.next_attempt_at <= now
                && entry.lease_until.is_none_or(|l| l <= now);
            let Some((hook, secret)) = webhooks
                .iter()
                .find(|(w, _)| w.id == entry.delivery.webhook_id && w.disabled_at.is_none())
            else {
                continue;
            };
            if waiting {
                entry.lease_until = Some(lease_until);
                due.push(DueDelivery {
                    delivery: entry.delivery.clone(),
                    url: hook.url.clone(),
                    secret: secret.clone(),
                });
            }
        }
        Ok(due)
    }

    async fn finish_delivery(
        &self,
        id: DeliveryId,
        attempt: Attempt,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let mut state = self.write();
        let State {
            deliveries,
            webhooks,
            ..
        } = &mut *state;
        let Some(entry) = deliveries
            .iter_mut()
            .find(|d| d.delivery.id == id && d.delivery.status == DeliveryStatus::Pending)
        else {
            return Ok(());
        };
        let record = attempt.record(at);
        let d = &mut entry.delivery;
        d.attempts += 1;
        d.status = record.status;
        d.last_status_code = record.status_code;
        d.delivered_at = record.delivered_at.or(d.delivered_at);
        if let Some(next) = record.next_attempt_at {
            entry.next_attempt_at = next;
        }
        entry.lease_until = None;
        if record.disables_endpoint {
            let webhook = d.webhook_id;
            if let Some((hook, _)) = webhooks.iter_mut().find(|(w, _)| w.id == webhook) {
                hook.disabled_at
                    .get_or_insert(crate::time::truncate_micros(at));
            }
        }
        Ok(())
    }

    async fn retry_delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        let mut state = self.write();
        let entry = state
            .deliveries
            .iter_mut()
            .find(|d| d.delivery.id == id && d.delivery.webhook_id == webhook)
            .ok_or_else(|| Error::NotFound(format!("delivery {id} of webhook {webhook}")))?;
        entry.delivery.status = DeliveryStatus::Pending;
        entry.next_attempt_at = now;
        entry.lease_until = None;
        Ok(entry.delivery.clone())
    }

    async fn delivery_counts(&self) -> Result<DeliveryCounts> {
        let mut counts = DeliveryCounts::default();
        for d in &self.read().deliveries {
            match d.delivery.status {
                DeliveryStatus::Pending => counts.pending += 1,
                DeliveryStatus::Delivered => counts.delivered += 1,
                DeliveryStatus::Failed => counts.failed += 1,
            }
        }
        Ok(counts)
    }

    async fn prune_alerts(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        let mut state = self.write();
        let mut deleted = 0;
        let mut left = limit;
        state.deliveries.retain(|d| {
            let old =
                d.delivery.status != DeliveryStatus::Pending && d.delivery.created_at < before;
            if old && left > 0 {
                left -= 1;
                deleted += 1;
                false
            } else {
                true
            }
        });
        let mut left = limit;
        state.alert_marks.retain(|_, period_end| {
            if *period_end < before && left > 0 {
                left -= 1;
                deleted += 1;
                false
            } else {
                true
            }
        });
        Ok(deleted)
    }

    async fn put_meter(
        &self,
        key: &MeterKey,
        spec: &MeterSpec,
        now: DateTime<Utc>,
    ) -> Result<Meter> {
        let mut state = self.write();
        if !quotable(spec.aggregation) && state.meter_in_use(key) {
            return Err(meter_in_use(key));
        }
        let created_at = state.meters.get(key).map_or(now, |m| m.created_at);
        let meter = Meter {
            key: key.clone(),
            spec: spec.clone(),
            created_at,
            updated_at: now,
        };
        state.meters.insert(key.clone(), meter.clone());
        Ok(meter)
    }

    async fn list_meters(&self) -> Result<Vec<Meter>> {
        Ok(self.read().meters.values().cloned().collect())
    }

    async fn meter(&self, key: &MeterKey) -> Result<Option<Meter>> {
        Ok(self.read().meters.get(key).cloned())
    }

    async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
        let mut state = self.write();
        if state.meter_in_use(key) {
            return Err(meter_in_use(key));
        }
        match state.meters.remove(key) {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!("meter {key}"))),
        }
    }

    async fn query_meter(&self, meter: &Meter, query: &MeterQuery) -> Result<MeterReport> {
        let filter = query.event_filter(meter);
        let mut aggregator = MeterAggregator::new(meter, query);
        for event in self.read().range(filter.start, filter.end) {
            if filter.matches(event) {
                aggregator.push(event);
            }
        }
        Ok(aggregator.finish())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
