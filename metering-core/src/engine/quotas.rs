//! Quotas: checks, atomic consumption and quota administration.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::alert::AlertMeasure;
use crate::apikey::{Action, Principal};
use crate::cache::{CounterKey, UsageStream};
use crate::error::{Error, Result};
use crate::event::{Event, NewEvent};
use crate::meter::{MeterAddition, MeterKey, MeterLimit};
use crate::quantity::Quantity;
use crate::quota::{
    MeterCheck, Quota, QuotaDecision, QuotaId, QuotaScope, QuotaSpec, UsageLimit, UsageScope,
    ValidateRequest, select_quota,
};
use crate::store::ConsumeOutcome;
use crate::window::Window;

use super::{Metering, spawn_to_completion};

impl Metering {
    /// Checks a quota, and with `consume` records the usage when allowed, atomically.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a consume without a resource (the event needs one);
    /// the store's error.
    pub async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision> {
        let now = self.now();
        let candidates = self
            .inner
            .store
            .quota_candidates(&request.tenant_id, &request.feature)
            .await?;
        let quota = select_quota(
            &candidates,
            &request.tenant_id,
            request.resource.as_ref(),
            &request.feature,
        )
        .cloned();
        let event = if request.consume {
            Some(self.consume_event(&request, now)?)
        } else {
            None
        };
        let Some(quota) = quota else {
            let event_id = match event {
                Some(event) => Some(self.ingest_validated(vec![event]).await?.event_ids[0].clone()),
                None => None,
            };
            let period = request
                .period
                .map(|p| (p, p.window(now, chrono_tz::Tz::UTC)));
            let usage = match (&period, &request.resource) {
                (Some((_, window)), resource) => {
                    let scope = UsageScope {
                        tenant_id: request.tenant_id.clone(),
                        resource: resource.clone(),
                        feature: request.feature.clone(),
                    };
                    self.inner.store.sum_usage(&scope, *window).await?
                }
                _ => Quantity::ZERO,
            };
            let mut decision = QuotaDecision::unlimited(period, usage);
            decision.event_id = event_id;
            return Ok(decision);
        };
        let window = quota.spec.period.window(now, quota.spec.tz);
        let key = CounterKey {
            scope: UsageScope::of(&quota.spec, &request.tenant_id, &request.feature),
            window,
        };
        match event {
            None => {
                let usage = self.usage(&key).await?;
                let allowed = usage
                    .checked_add(request.quantity)
                    .is_some_and(|total| total <= quota.spec.limit);
                if !allowed {
                    self.inner
                        .refused(
                            &quota,
                            AlertMeasure::Usage(key.scope.clone()),
                            key.window,
                            usage,
                        )
                        .await;
                }
                Ok(QuotaDecision::under_quota(
                    &quota,
                    window,
                    usage,
                    request.quantity,
                    allowed,
                ))
            }
            Some(event) => self.consume(quota, key, event, request.quantity).await,
        }
    }

    fn consume_event(&self, request: &ValidateRequest, now: DateTime<Utc>) -> Result<Event> {
        let Some(resource) = request.resource.clone() else {
            return Err(Error::invalid(
                "resource",
                "is required when consume is true (the recorded event needs one)",
            ));
        };
        let mut new = NewEvent::new(
            request.tenant_id.as_str(),
            resource.as_str(),
            request.feature.as_str(),
        )
        .with_quantity(request.quantity);
        new.id = request.id.as_ref().map(|id| id.as_str().to_owned());
        new.metadata.clone_from(&request.metadata);
        let mut errors = crate::error::ValidationErrors::new();
        match new.validate(&self.inner.rules, now, None, "", &mut errors) {
            Some(event) => Ok(event),
            None => Err(Error::Validation(errors)),
        }
    }

    async fn consume(
        &self,
        quota: Quota,
        key: CounterKey,
        event: Event,
        requested: Quantity,
    ) -> Result<QuotaDecision> {
        let inner = Arc::clone(&self.inner);
        let limit = UsageLimit {
            scope: key.scope.clone(),
            window: key.window,
            limit: quota.spec.limit,
        };
        let event_id = event.id.clone();
        let streams = vec![UsageStream::of(&event)];
        let watch = self
            .inner
            .watch_of(
                &quota,
                AlertMeasure::Usage(limit.scope.clone()),
                limit.window,
            )
            .await?;
        let outcome = spawn_to_completion(async move {
            inner
                .bracket(&streams, vec![event], |store, events| async move {
                    let outcome = store.consume(&events[0], &limit, watch.as_ref()).await?;
                    let admitted = matches!(outcome, ConsumeOutcome::Admitted { .. });
                    Ok((outcome, vec![admitted], events))
                })
                .await
        })
        .await?;
        Ok(QuotaDecision::after_consume(
            &quota, key.window, outcome.0, requested, event_id,
        ))
    }

    /// The exact usage behind a counter: from the cache when present, else from the store
    /// (rebuilding the counter when no ingest is in flight).
    async fn usage(&self, key: &CounterKey) -> Result<Quantity> {
        let cache = &self.inner.cache;
        match cache.usage(key).await {
            Ok(Some(usage)) => return Ok(usage),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "quota cache unreachable; reading usage from the store");
                return self.inner.store.sum_usage(&key.scope, key.window).await;
            }
        }
        let token = cache.begin_rebuild(key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "quota cache unreachable; not rebuilding the counter");
            None
        });
        let usage = self.inner.store.sum_usage(&key.scope, key.window).await?;
        if let Some(token) = token {
            if let Err(e) = cache.finish_rebuild(key, token, usage).await {
                tracing::warn!(error = %e, "quota cache unreachable; counter not stored");
            }
        }
        Ok(usage)
    }

    /// Checks (and with `consume`, records) on behalf of `caller`: a key with role ingest or
    /// admin, and a tenant-scoped key only for its own tenant. See [`Metering::validate`].
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::validate`].
    pub async fn validate_as(
        &self,
        caller: &Principal,
        request: ValidateRequest,
    ) -> Result<QuotaDecision> {
        caller.authorize(Action::Validate)?;
        caller.authorize_tenant(&request.tenant_id)?;
        self.validate(request).await
    }

    /// Checks a meter quota, and with `consume` records the check's event when allowed,
    /// atomically: the tenant's value of the meter in the quota's current period, plus what
    /// the event (or the requested quantity) adds. The tenant's own quota on the meter wins
    /// over the default (`*`).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown meter; [`Error::Validation`] for an event that
    /// breaks the event rules, does not match the meter or falls outside the period; the
    /// store's error.
    pub async fn check_meter(&self, check: MeterCheck) -> Result<QuotaDecision> {
        let now = self.now();
        let meter = self.meter(&check.meter).await?;
        let event = match check.event {
            Some(new) => {
                let mut errors = crate::error::ValidationErrors::new();
                match new.validate(&self.inner.rules, now, None, "event", &mut errors) {
                    Some(event) => Some(event),
                    None => return Err(Error::Validation(errors)),
                }
            }
            None => None,
        };
        if check.consume && event.is_none() {
            return Err(Error::invalid("event", "is required when consume is true"));
        }
        let quota = self.meter_quota(&check.tenant_id, &check.meter).await?;
        let (window, limit) = match &quota {
            Some(q) => (q.spec.period.window(now, q.spec.tz), q.spec.limit),
            None => (
                check.period.map_or(
                    Window {
                        start: now,
                        end: now,
                    },
                    |p| p.window(now, chrono_tz::Tz::UTC),
                ),
                Quantity::ZERO,
            ),
        };
        let limit = MeterLimit {
            meter,
            tenant_id: check.tenant_id.clone(),
            window,
            limit,
        };
        if let Some(event) = &event {
            // With a quota the event must also fall in its current period.
            match quota {
                Some(_) => limit.check_event(event)?,
                None => limit.check_event_matches(event)?,
            }
        }
        let Some(quota) = quota else {
            let event_id = match event {
                Some(event) if check.consume => {
                    Some(self.ingest_validated(vec![event]).await?.event_ids[0].clone())
                }
                _ => None,
            };
            let period = check.period.map(|p| (p, window));
            let usage = match period {
                Some(_) => self.inner.store.tally_meter(&limit).await?.usage(),
                None => Quantity::ZERO,
            };
            let mut decision = QuotaDecision::unlimited(period, usage);
            decision.event_id = event_id;
            return Ok(decision);
        };
        match event {
            Some(event) if check.consume => self.consume_metered(quota, limit, event).await,
            event => {
                let tally = self.inner.store.tally_meter(&limit).await?;
                let adding = match &event {
                    Some(event) => MeterAddition::Event(event),
                    None => MeterAddition::Requested(check.quantity),
                };
                let j = limit.judge(&tally, adding);
                if !j.allowed {
                    self.inner
                        .refused(&quota, AlertMeasure::Meter(limit.clone()), window, j.usage)
                        .await;
                }
                Ok(QuotaDecision::under_quota(
                    &quota, window, j.usage, j.added, j.allowed,
                ))
            }
        }
    }

    /// The quota on `meter` that governs `tenant`: its own, else the default (`*`).
    async fn meter_quota(
        &self,
        tenant: &crate::event::TenantId,
        meter: &MeterKey,
    ) -> Result<Option<Quota>> {
        for scope in [QuotaScope::Tenant(tenant.clone()), QuotaScope::AllTenants] {
            let found = self
                .inner
                .store
                .list_quotas(Some(&scope))
                .await?
                .into_iter()
                .find(|q| q.spec.meter.as_ref() == Some(meter));
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    async fn consume_metered(
        &self,
        quota: Quota,
        limit: MeterLimit,
        event: Event,
    ) -> Result<QuotaDecision> {
        let inner = Arc::clone(&self.inner);
        let window = limit.window;
        let event_id = event.id.clone();
        let streams = vec![UsageStream::of(&event)];
        let watch = self
            .inner
            .watch_of(&quota, AlertMeasure::Meter(limit.clone()), limit.window)
            .await?;
        let (consumed, _, _) = spawn_to_completion(async move {
            inner
                .bracket(&streams, vec![event], |store, events| async move {
                    let consumed = store
                        .consume_metered(&events[0], &limit, watch.as_ref())
                        .await?;
                    let admitted = matches!(consumed.outcome, ConsumeOutcome::Admitted { .. });
                    Ok((consumed, vec![admitted], events))
                })
                .await
        })
        .await?;
        Ok(QuotaDecision::after_consume(
            &quota,
            window,
            consumed.outcome,
            consumed.judgement.added,
            event_id,
        ))
    }

    /// Checks a meter quota on behalf of `caller`: a key with role ingest or admin, and a
    /// tenant-scoped key only for its own tenant. See [`Metering::check_meter`].
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::check_meter`].
    pub async fn check_meter_as(
        &self,
        caller: &Principal,
        check: MeterCheck,
    ) -> Result<QuotaDecision> {
        caller.authorize(Action::Validate)?;
        caller.authorize_tenant(&check.tenant_id)?;
        self.check_meter(check).await
    }

    /// Inserts or replaces a quota on behalf of `caller`: an admin key; a tenant-scoped one
    /// only for its own tenant, never a default (`*`).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::upsert_quota`].
    pub async fn upsert_quota_as(&self, caller: &Principal, spec: QuotaSpec) -> Result<Quota> {
        caller.authorize(Action::Admin)?;
        match &spec.tenant_id {
            QuotaScope::Tenant(tenant) => caller.authorize_tenant(tenant)?,
            QuotaScope::AllTenants if caller.key.tenant_id.is_some() => {
                return Err(Error::Forbidden(
                    "a tenant-scoped key may not set default quotas".into(),
                ));
            }
            QuotaScope::AllTenants => {}
        }
        self.upsert_quota(spec).await
    }

    /// Lists quotas on behalf of `caller`: a key with role read or admin. A tenant-scoped key
    /// sees only its own tenant's quotas (with no scope asked, those), never the defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; the store's error.
    pub async fn list_quotas_as(
        &self,
        caller: &Principal,
        scope: Option<QuotaScope>,
    ) -> Result<Vec<Quota>> {
        caller.authorize(Action::Read)?;
        let scope = match scope {
            Some(QuotaScope::AllTenants) if caller.key.tenant_id.is_some() => {
                return Err(Error::Forbidden(
                    "a tenant-scoped key sees only its own quotas".into(),
                ));
            }
            Some(QuotaScope::AllTenants) => Some(QuotaScope::AllTenants),
            Some(QuotaScope::Tenant(t)) => caller.scope_read(Some(t))?.map(QuotaScope::Tenant),
            None => caller.scope_read(None)?.map(QuotaScope::Tenant),
        };
        self.list_quotas(scope.as_ref()).await
    }

    /// Inserts or replaces a quota.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a zero limit or a threshold over 100; the store's error.
    pub async fn upsert_quota(&self, spec: QuotaSpec) -> Result<Quota> {
        let spec = spec.validate()?;
        let quota = self.inner.store.upsert_quota(&spec, self.now()).await?;
        self.inner.alert_setup.forget();
        Ok(quota)
    }

    /// Lists quotas, all or one tenant's (`*` lists the defaults).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_quotas(&self, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
        self.inner.store.list_quotas(scope).await
    }

    /// Deletes a quota.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; the store's error.
    pub async fn delete_quota(&self, id: QuotaId) -> Result<()> {
        self.inner.store.delete_quota(id).await?;
        self.inner.alert_setup.forget();
        Ok(())
    }

    /// Deletes a quota on behalf of `caller`: an admin key; a tenant-scoped one only for its
    /// own tenant's quotas, never the defaults (`*`).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; [`Error::NotFound`] for an unknown id; the
    /// store's error.
    pub async fn delete_quota_as(&self, caller: &Principal, id: QuotaId) -> Result<()> {
        caller.authorize(Action::Admin)?;
        if caller.key.tenant_id.is_some() {
            let quota = self
                .inner
                .store
                .quota(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("quota `{id}`")))?;
            match &quota.spec.tenant_id {
                QuotaScope::Tenant(t) => caller.authorize_tenant(t)?,
                QuotaScope::AllTenants => {
                    return Err(Error::Forbidden(
                        "a tenant-scoped key may not delete default quotas".into(),
                    ));
                }
            }
        }
        self.delete_quota(id).await
    }
}
