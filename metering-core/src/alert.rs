//! Alerts: which marks of a quota a write reaches, and the messages they send.
//!
//! The engine hands a store an [`AlertWatch`] for each quota a write may move: the quota, the
//! tenant, its current period and how to measure the usage. In the same transaction as the
//! write, the store measures the usage and, for each [`AlertMark`] the usage has reached
//! ([`AlertWatch::reached`]), inserts the mark under a unique key `(quota, tenant, period,
//! mark)`. Only a mark newly inserted sends its [`AlertMessage`], written to the outbox in
//! that transaction, one delivery per subscribed endpoint. So a message goes out once per
//! quota, tenant, period and mark, whatever the number of server instances, and is never
//! lost once the write is acknowledged.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::{Feature, Resource, TenantId};
use crate::meter::{MeterKey, MeterLimit};
use crate::quantity::Quantity;
use crate::quota::{Quota, QuotaId, Threshold, UsageScope};
use crate::store::ConsumeOutcome;
use crate::webhook::AlertKind;
use crate::window::Window;

/// How a watched quota's usage is measured.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertMeasure {
    /// The sum of the scope's quantities in the period.
    Usage(UsageScope),
    /// A meter's value for the tenant in the period.
    Meter(MeterLimit),
}

/// A quota whose marks a write may reach: what a store evaluates in the write's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertWatch {
    /// The quota.
    pub quota: Quota,
    /// Whose usage (a default quota, `*`, counts each tenant on its own).
    pub tenant_id: TenantId,
    /// The quota's current period.
    pub window: Window,
    /// How the usage is measured.
    pub measure: AlertMeasure,
    /// When the write happens: the messages' `timestamp`.
    pub at: DateTime<Utc>,
}

impl AlertWatch {
    /// A watch of a feature quota for `tenant`, in its period around `at`.
    #[must_use]
    pub fn usage(quota: Quota, tenant: TenantId, feature: &Feature, at: DateTime<Utc>) -> Self {
        let window = quota.spec.period.window(at, quota.spec.tz);
        let scope = UsageScope::of(&quota.spec, &tenant, feature);
        AlertWatch {
            quota,
            tenant_id: tenant,
            window,
            measure: AlertMeasure::Usage(scope),
            at,
        }
    }

    /// A watch of a meter quota; `limit` carries the meter, the tenant and the period.
    #[must_use]
    pub fn meter(quota: Quota, limit: MeterLimit, at: DateTime<Utc>) -> Self {
        AlertWatch {
            tenant_id: limit.tenant_id.clone(),
            window: limit.window,
            quota,
            measure: AlertMeasure::Meter(limit),
            at,
        }
    }

    /// The marks `usage` has reached: each threshold at or below it, and
    /// [`AlertKind::Exceeded`] when it reached the limit or a check was `refused`.
    #[must_use]
    pub fn reached(&self, usage: Quantity, refused: bool) -> Vec<AlertMark> {
        let limit = self.quota.spec.limit;
        let mut marks: Vec<AlertMark> = self
            .quota
            .spec
            .thresholds
            .iter()
            .filter(|t| t.reached(usage, limit))
            .map(|t| AlertMark::Threshold(*t))
            .collect();
        if refused || usage >= limit {
            marks.push(AlertMark::Exceeded);
        }
        marks
    }

    /// The marks a consume's `outcome` reaches and the usage its messages state: for an
    /// admitted event the usage after it (`usage_before + added`), for a denied one the
    /// usage with [`AlertMark::Exceeded`], for a duplicate nothing.
    #[must_use]
    pub fn after_consume(
        &self,
        outcome: ConsumeOutcome,
        added: Quantity,
    ) -> Option<(Quantity, Vec<AlertMark>)> {
        let (usage, refused) = match outcome {
            ConsumeOutcome::Admitted { usage_before } => {
                (usage_before.saturating_add(added), false)
            }
            ConsumeOutcome::Denied { usage } => (usage, true),
            ConsumeOutcome::Duplicate { .. } => return None,
        };
        Some((usage, self.reached(usage, refused)))
    }

    /// What the messages of this watch say about the quota, with `usage`.
    #[must_use]
    pub fn subject(&self, usage: Quantity) -> AlertSubject {
        let spec = &self.quota.spec;
        let target = match (&spec.meter, &spec.feature) {
            (Some(meter), _) => AlertTarget::Meter {
                meter: meter.clone(),
            },
            (None, feature) => AlertTarget::Feature {
                resource: spec.resource.clone(),
                feature: feature.clone(),
            },
        };
        AlertSubject {
            tenant_id: self.tenant_id.clone(),
            quota_id: self.quota.id,
            target,
            period_start: self.window.start,
            period_end: self.window.end,
            limit: spec.limit,
            usage,
        }
    }
}

/// One thing a quota tells once per tenant and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertMark {
    /// Usage reached this threshold.
    Threshold(Threshold),
    /// Usage reached the limit, or a check was refused.
    Exceeded,
    /// The period, in which other marks were placed, ended.
    Reset,
}

impl AlertMark {
    /// The message type it sends.
    #[must_use]
    pub fn kind(self) -> AlertKind {
        match self {
            AlertMark::Threshold(_) => AlertKind::Threshold,
            AlertMark::Exceeded => AlertKind::Exceeded,
            AlertMark::Reset => AlertKind::Reset,
        }
    }

    /// Its unique key within a quota, tenant and period, as stored: `percent:80`,
    /// `usage:1000.5`, `exceeded` or `reset`.
    #[must_use]
    pub fn key(self) -> String {
        match self {
            AlertMark::Threshold(Threshold::Percent(p)) => format!("percent:{p}"),
            AlertMark::Threshold(Threshold::Usage(u)) => format!("usage:{u}"),
            AlertMark::Exceeded => "exceeded".to_owned(),
            AlertMark::Reset => "reset".to_owned(),
        }
    }

    /// The message of this mark about `subject`, sent at `at`.
    #[must_use]
    pub fn message(self, subject: &AlertSubject, at: DateTime<Utc>) -> AlertMessage {
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let at = crate::time::truncate_micros(at);
        let threshold = match self {
            AlertMark::Threshold(t) => Some(t),
            AlertMark::Exceeded | AlertMark::Reset => None,
        };
        let payload = Payload {
            kind: self.kind(),
            id: &id,
            timestamp: at,
            data: PayloadData { subject, threshold },
        };
        // Plain data with exact decimals: serializing cannot fail.
        let body = serde_json::to_string(&payload).unwrap_or_default();
        AlertMessage {
            id,
            kind: self.kind(),
            body,
            created_at: at,
        }
    }
}

/// The facts a message states about its quota and period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertSubject {
    /// Whose usage.
    pub tenant_id: TenantId,
    /// The quota.
    pub quota_id: QuotaId,
    /// What the quota limits.
    #[serde(flatten)]
    pub target: AlertTarget,
    /// The period's start.
    #[serde(with = "crate::time::rfc3339")]
    pub period_start: DateTime<Utc>,
    /// The period's end (exclusive).
    #[serde(with = "crate::time::rfc3339")]
    pub period_end: DateTime<Utc>,
    /// The quota's limit.
    pub limit: Quantity,
    /// The usage when the message was written.
    pub usage: Quantity,
}

/// What a quota limits, as a message states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum AlertTarget {
    /// A feature's usage: `resource` (`null` for any) and `feature`.
    Feature {
        /// The resource, or `None` for any.
        resource: Option<Resource>,
        /// The feature (always set on a stored feature quota).
        feature: Option<Feature>,
    },
    /// A meter's value: `meter`.
    Meter {
        /// The meter.
        meter: MeterKey,
    },
}

#[derive(Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: AlertKind,
    id: &'a str,
    #[serde(with = "crate::time::rfc3339")]
    timestamp: DateTime<Utc>,
    data: PayloadData<'a>,
}

#[derive(Serialize)]
struct PayloadData<'a> {
    #[serde(flatten)]
    subject: &'a AlertSubject,
    threshold: Option<Threshold>,
}

/// A quota's period for one tenant in which marks were placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertPeriod {
    /// The quota.
    pub quota_id: QuotaId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The period.
    pub window: Window,
}

/// A message for the outbox: its id (the `webhook-id` header), type and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMessage {
    /// `msg_` and a time-ordered id; also the body's `id`.
    pub id: String,
    /// Its type.
    pub kind: AlertKind,
    /// The JSON payload, as sent.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{QuotaScope, QuotaSpec};
    use crate::window::QuotaPeriod;

    fn watch(thresholds: Vec<Threshold>) -> AlertWatch {
        let spec = QuotaSpec::new(
            QuotaScope::AllTenants,
            Feature::new("calls").expect("feature"),
            Quantity::from_units(200),
            QuotaPeriod::Monthly,
        )
        .with_thresholds(thresholds);
        let quota = Quota {
            id: QuotaId::generate(),
            spec,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        };
        let at = crate::time::parse_rfc3339("2025-11-20T10:30:00Z").expect("a time");
        AlertWatch::usage(
            quota,
            TenantId::new("org_1").expect("tenant"),
            &Feature::new("calls").expect("feature"),
            at,
        )
    }

    #[test]
    fn marks_are_reached_at_exact_levels() {
        let w = watch(vec![
            Threshold::Percent(50),
            Threshold::Usage("150.5".parse().expect("q")),
        ]);
        let keys = |usage: &str, refused| -> Vec<String> {
            w.reached(usage.parse().expect("q"), refused)
                .into_iter()
                .map(AlertMark::key)
                .collect()
        };
        assert!(keys("99.999999999", false).is_empty());
        assert_eq!(keys("100", false), ["percent:50"]);
        assert_eq!(keys("150.5", false), ["percent:50", "usage:150.5"]);
        assert_eq!(keys("199", true), ["percent:50", "usage:150.5", "exceeded"]);
        assert_eq!(
            keys("200", false),
            ["percent:50", "usage:150.5", "exceeded"]
        );
        assert_eq!(keys("0", true), ["exceeded"]);
    }

    #[test]
    fn messages_state_the_quota_exactly() {
        let w = watch(vec![Threshold::Percent(80)]);
        let usage: Quantity = "160.000000001".parse().expect("q");
        let message = AlertMark::Threshold(Threshold::Percent(80)).message(&w.subject(usage), w.at);
        assert!(message.id.starts_with("msg_"));
        let body: serde_json::Value = serde_json::from_str(&message.body).expect("JSON");
        assert_eq!(body["type"], "quota.threshold");
        assert_eq!(body["id"], message.id.as_str());
        assert_eq!(body["timestamp"], "2025-11-20T10:30:00Z");
        let data = &body["data"];
        assert_eq!(data["tenant_id"], "org_1");
        assert_eq!(data["feature"], "calls");
        assert_eq!(data.get("resource"), Some(&serde_json::Value::Null));
        assert_eq!(data.get("meter"), None);
        assert_eq!(data["period_start"], "2025-11-01T00:00:00Z");
        assert_eq!(data["period_end"], "2025-12-01T00:00:00Z");
        assert_eq!(data["threshold"], serde_json::json!({"percent": 80}));
        assert!(
            message.body.contains(r#""usage":160.000000001"#),
            "{}",
            message.body
        );
        assert!(message.body.contains(r#""limit":200"#), "{}", message.body);
        let exceeded = AlertMark::Exceeded.message(&w.subject(usage), w.at);
        let body: serde_json::Value = serde_json::from_str(&exceeded.body).expect("JSON");
        assert_eq!(body["type"], "quota.exceeded");
        assert_eq!(body["data"]["threshold"], serde_json::Value::Null);
        assert_ne!(exceeded.id, message.id);
    }
}
