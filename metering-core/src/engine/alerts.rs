//! Alerts: which quotas a write may move (the [`AlertWatch`]es handed to the store with
//! it), refused checks, the resets of ended periods, and the deliveries of an endpoint.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::alert::{AlertMark, AlertMeasure, AlertWatch};
use crate::apikey::Principal;
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::meter::{Meter, MeterKey, MeterLimit};
use crate::quota::{Quota, QuotaScope, UsageScope, select_quota};
use crate::webhook::{Delivery, DeliveryId, WebhookId};

use super::webhooks::authorize as authorize_webhooks;
use crate::window::Window;

use super::{Inner, Metering};

/// How long the engine trusts what it read of the alert setup (the active endpoints, the
/// meter quotas and their meters). An endpoint or meter quota set through another instance
/// applies here within this time; through this engine, at once.
const SETUP_TTL: Duration = Duration::from_secs(1);

/// The most ended periods one [`Metering::fire_resets`] call handles.
const RESETS_PER_CALL: usize = 100;

/// What decides whether and how writes are watched, as last read from the store.
#[derive(Debug)]
struct Setup {
    /// When it was read.
    read_at: Instant,
    /// Whether an endpoint receives alerts (else no write is watched).
    endpoints: bool,
    /// The meter quotas, with their meters.
    meter_quotas: Vec<(Quota, Meter)>,
}

/// The alert setup, read from the store at most once per [`SETUP_TTL`].
#[derive(Debug, Default)]
pub(super) struct AlertSetup(std::sync::Mutex<Option<Arc<Setup>>>);

impl AlertSetup {
    /// Forgets what was read, so the next write reads the store again (after a change
    /// through this engine to endpoints, quotas or meters).
    pub(super) fn forget(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Inner {
    /// The alert setup when writes must be watched (some endpoint is active), else `None`.
    async fn alerting(&self) -> Result<Option<Arc<Setup>>> {
        let known = self
            .alert_setup
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let setup = match known {
            Some(setup) if setup.read_at.elapsed() < SETUP_TTL => setup,
            _ => {
                let endpoints = self
                    .store
                    .list_webhooks()
                    .await?
                    .iter()
                    .any(|w| w.disabled_at.is_none());
                let meter_quotas = if endpoints {
                    self.read_meter_quotas().await?
                } else {
                    Vec::new()
                };
                let setup = Arc::new(Setup {
                    read_at: Instant::now(),
                    endpoints,
                    meter_quotas,
                });
                *self
                    .alert_setup
                    .0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&setup));
                setup
            }
        };
        Ok(setup.endpoints.then_some(setup))
    }

    /// Every meter quota with its meter.
    async fn read_meter_quotas(&self) -> Result<Vec<(Quota, Meter)>> {
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
        Ok(quotas
            .into_iter()
            .filter_map(|q| {
                let meter = meters.get(q.spec.meter.as_ref()?)?.clone();
                Some((q, meter))
            })
            .collect())
    }

    /// The quotas `events` may move in their current periods: for each tenant, resource and
    /// feature, the quota that governs it (the most specific match), and each meter quota
    /// whose meter counts one of the events. Empty when no endpoint receives alerts.
    pub(super) async fn watches(&self, events: &[Event]) -> Result<Vec<AlertWatch>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let Some(setup) = self.alerting().await? else {
            return Ok(Vec::new());
        };
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
        watches.extend(meter_watches(&setup.meter_quotas, events, now));
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
        if self.alerting().await?.is_none() {
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

    /// Places the marks an amend's `replacement` reached: a correction that raises usage
    /// alerts as the usage it adds would have. Measured after the amend committed; the
    /// store places each mark once whoever else reaches it. A failure is logged: the amend
    /// itself stands.
    pub(super) async fn watch_correction(&self, replacement: &Event) {
        if let Err(e) = self.place_reached(replacement).await {
            tracing::warn!(error = %e, event = %replacement.id, "could not record the alerts of an amend");
        }
    }

    async fn place_reached(&self, replacement: &Event) -> Result<()> {
        for watch in self.watches(std::slice::from_ref(replacement)).await? {
            let usage = match &watch.measure {
                AlertMeasure::Usage(scope) => self.store.sum_usage(scope, watch.window).await?,
                AlertMeasure::Meter(limit) => self.store.tally_meter(limit).await?.usage(),
            };
            for mark in watch.reached(usage, false) {
                self.store.record_alert(&watch, mark, None).await?;
            }
        }
        Ok(())
    }
}

/// The meter quotas `events` may move: for each tenant, its own quota on a meter, else the
/// default (`*`), when one of its events counts for the meter in the quota's period.
fn meter_watches(
    quotas: &[(Quota, Meter)],
    events: &[Event],
    now: DateTime<Utc>,
) -> Vec<AlertWatch> {
    if quotas.is_empty() {
        return Vec::new();
    }
    let tenants: BTreeSet<&TenantId> = events
        .iter()
        .filter(|e| e.counts())
        .map(|e| &e.tenant_id)
        .collect();
    let mut watches = Vec::new();
    for tenant in tenants {
        // The governing quota per meter: the tenant's own wins over the default.
        let mut governing: BTreeMap<&MeterKey, (&Quota, &Meter)> = BTreeMap::new();
        for (quota, meter) in quotas {
            match &quota.spec.tenant_id {
                QuotaScope::Tenant(t) if t == tenant => {
                    governing.insert(&meter.key, (quota, meter));
                }
                QuotaScope::AllTenants => {
                    governing.entry(&meter.key).or_insert((quota, meter));
                }
                QuotaScope::Tenant(_) => {}
            }
        }
        for (quota, meter) in governing.into_values() {
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
    watches
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
