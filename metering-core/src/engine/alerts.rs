//! Alerts: which quotas a write may move (the [`AlertWatch`]es handed to the store with
//! it), refused checks, the resets of ended periods, and the deliveries of an endpoint.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::alert::{AlertMark, AlertMeasure, AlertWatch};
use crate::apikey::Principal;
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::meter::{Meter, MeterLimit};
use crate::quota::{Quota, QuotaScope, UsageScope, select_quota};
use crate::webhook::{Delivery, DeliveryId, WebhookId};

use super::webhooks::authorize as authorize_webhooks;
use crate::window::Window;

use super::{Inner, Metering};

/// How long the engine trusts its knowledge of whether any endpoint receives alerts. An
/// endpoint registered through another instance starts receiving within this time.
const ENDPOINTS_TTL: Duration = Duration::from_secs(1);

/// The most ended periods one [`Metering::fire_resets`] call handles.
const RESETS_PER_CALL: usize = 100;

/// Whether any endpoint receives alerts, as last read from the store.
#[derive(Debug, Default)]
pub(super) struct EndpointsSeen(std::sync::Mutex<Option<(Instant, bool)>>);

impl EndpointsSeen {
    /// Forgets what was read, so the next write reads the store again.
    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Inner {
    /// Whether writes must be watched: some endpoint is active (read at most once a second).
    async fn alerting(&self) -> Result<bool> {
        let known = *self
            .endpoints
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, any)) = known
            && at.elapsed() < ENDPOINTS_TTL
        {
            return Ok(any);
        }
        let any = self
            .store
            .list_webhooks()
            .await?
            .iter()
            .any(|w| w.disabled_at.is_none());
        *self
            .endpoints
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), any));
        Ok(any)
    }

    /// The quotas `events` may move in their current periods: for each tenant, resource and
    /// feature, the quota that governs it (the most specific match), and each meter quota
    /// whose meter counts one of the events. Empty when no endpoint receives alerts.
    pub(super) async fn watches(&self, events: &[Event]) -> Result<Vec<AlertWatch>> {
        if events.is_empty() || !self.alerting().await? {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut watches = Vec::new();
        let mut seen = HashSet::new();
        let groups: BTreeSet<_> = events
            .iter()
            .filter(|e| e.counts())
            .map(|e| (&e.tenant_id, &e.resource, &e.feature))
            .collect();
        for (tenant, resource, feature) in groups {
            let candidates = self.store.quota_candidates(tenant, feature).await?;
            let Some(quota) = select_quota(&candidates, tenant, Some(resource), feature) else {
                continue;
            };
            let watch = AlertWatch::usage(quota.clone(), tenant.clone(), feature, now);
            let moves = events.iter().any(|e| {
                e.counts()
                    && e.tenant_id == *tenant
                    && e.resource == *resource
                    && e.feature == *feature
                    && watch.window.contains(e.timestamp)
            });
            if moves && seen.insert((quota.id, tenant.clone())) {
                watches.push(watch);
            }
        }
        watches.extend(self.meter_watches(events, now).await?);
        Ok(watches)
    }

    /// The meter quotas `events` may move, for each tenant its own quota on a meter, else
    /// the default (`*`).
    async fn meter_watches(&self, events: &[Event], now: DateTime<Utc>) -> Result<Vec<AlertWatch>> {
        let quotas: Vec<Quota> = self
            .store
            .list_quotas(None)
            .await?
            .into_iter()
            .filter(|q| q.spec.meter.is_some())
            .collect();
        if quotas.is_empty() {
            return Ok(Vec::new());
        }
        let meters: BTreeMap<_, Meter> = self
            .store
            .list_meters()
            .await?
            .into_iter()
            .map(|m| (m.key.clone(), m))
            .collect();
        let tenants: BTreeSet<&TenantId> = events
            .iter()
            .filter(|e| e.counts())
            .map(|e| &e.tenant_id)
            .collect();
        let mut watches = Vec::new();
        for tenant in tenants {
            let governing = quotas
                .iter()
                .filter(|q| q.spec.tenant_id.covers(tenant))
                .fold(BTreeMap::new(), |mut by_meter, q| {
                    let own = matches!(q.spec.tenant_id, QuotaScope::Tenant(_));
                    let key = q.spec.meter.clone();
                    match by_meter.get(&key) {
                        Some((true, _)) => {}
                        Some((false, _)) if !own => {}
                        _ => {
                            by_meter.insert(key, (own, q));
                        }
                    }
                    by_meter
                });
            for (key, (_, quota)) in governing {
                let Some(meter) = key.and_then(|k| meters.get(&k)) else {
                    continue;
                };
                let window = quota.spec.period.window(now, quota.spec.tz);
                let moves = events.iter().any(|e| {
                    e.counts()
                        && e.tenant_id == *tenant
                        && window.contains(e.timestamp)
                        && meter.spec.filter.matches(e)
                });
                if moves {
                    let limit = MeterLimit {
                        meter: meter.clone(),
                        tenant_id: tenant.clone(),
                        window,
                        limit: quota.spec.limit,
                    };
                    watches.push(AlertWatch::meter(quota.clone(), limit, now));
                }
            }
        }
        Ok(watches)
    }

    /// The watch of `quota` in its current period `window` for a consume or a check, when
    /// writes are watched.
    pub(super) async fn watch_of(
        &self,
        quota: &Quota,
        measure: AlertMeasure,
        window: Window,
    ) -> Result<Option<AlertWatch>> {
        if !self.alerting().await? {
            return Ok(None);
        }
        let tenant_id = match &measure {
            AlertMeasure::Usage(scope) => scope.tenant_id.clone(),
            AlertMeasure::Meter(limit) => limit.tenant_id.clone(),
        };
        Ok(Some(AlertWatch {
            quota: quota.clone(),
            tenant_id,
            window,
            measure,
            at: self.clock.now(),
        }))
    }

    /// Sends `quota.exceeded` for a refused check (once per quota, tenant and period). A
    /// failure is logged: the refusal itself stands.
    pub(super) async fn refused(
        &self,
        quota: &Quota,
        measure: AlertMeasure,
        window: Window,
        usage: crate::Quantity,
    ) {
        let result = match self.watch_of(quota, measure, window).await {
            Ok(Some(watch)) => self
                .store
                .record_alert(&watch, AlertMark::Exceeded, Some(usage))
                .await
                .map(|_| ()),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, quota = %quota.id, "could not record the quota.exceeded alert of a refused check");
        }
    }
}

impl Metering {
    /// Sends `quota.reset` for periods that ended with alerts (at most 100 a call); how many
    /// were sent. The server calls it every few seconds; several instances may: each reset
    /// is placed once.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn fire_resets(&self) -> Result<usize> {
        let now = self.now();
        let periods = self
            .inner
            .store
            .ended_alert_periods(now, RESETS_PER_CALL)
            .await?;
        let mut fired = 0;
        for period in periods {
            let Some(quota) = self.inner.store.quota(period.quota_id).await? else {
                continue;
            };
            let measure = match (&quota.spec.meter, &quota.spec.feature) {
                (Some(key), _) => {
                    let meter = self.meter(key).await?;
                    AlertMeasure::Meter(MeterLimit {
                        meter,
                        tenant_id: period.tenant_id.clone(),
                        window: period.window,
                        limit: quota.spec.limit,
                    })
                }
                (None, Some(feature)) => {
                    AlertMeasure::Usage(UsageScope::of(&quota.spec, &period.tenant_id, feature))
                }
                (None, None) => continue,
            };
            let watch = AlertWatch {
                quota,
                tenant_id: period.tenant_id,
                window: period.window,
                measure,
                at: now,
            };
            if self
                .inner
                .store
                .record_alert(&watch, AlertMark::Reset, None)
                .await?
            {
                fired += 1;
            }
        }
        Ok(fired)
    }

    /// The latest deliveries to an endpoint (at most `limit`), newest first.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown endpoint; the store's error.
    pub async fn list_deliveries(&self, webhook: WebhookId, limit: usize) -> Result<Vec<Delivery>> {
        if self.inner.store.webhook(webhook).await?.is_none() {
            return Err(Error::NotFound(format!("webhook `{webhook}`")));
        }
        self.inner.store.list_deliveries(webhook, limit).await
    }

    /// Sends a delivery again (due now, the same message id), whatever its state; the
    /// delivery as it is now.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the endpoint has no such delivery; the store's error.
    pub async fn retry_delivery(&self, webhook: WebhookId, id: DeliveryId) -> Result<Delivery> {
        self.inner
            .store
            .retry_delivery(webhook, id, self.now())
            .await
    }

    /// [`Metering::retry_delivery`] on behalf of `caller`: an admin key without a tenant
    /// scope.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::retry_delivery`].
    pub async fn retry_delivery_as(
        &self,
        caller: &Principal,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Delivery> {
        authorize_webhooks(caller)?;
        self.retry_delivery(webhook, id).await
    }

    /// [`Metering::list_deliveries`] on behalf of `caller`: an admin key without a tenant
    /// scope.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::list_deliveries`].
    pub async fn list_deliveries_as(
        &self,
        caller: &Principal,
        webhook: WebhookId,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        authorize_webhooks(caller)?;
        self.list_deliveries(webhook, limit).await
    }
}
