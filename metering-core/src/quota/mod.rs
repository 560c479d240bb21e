//! Quotas: limits on usage per period, the most-specific-match rule and decisions.

use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ValidationErrors;
use crate::event::{EventId, Feature, Metadata, NewEvent, Resource, TenantId};
use crate::meter::MeterKey;
use crate::quantity::{MAX_LIMIT, Quantity};
use crate::window::{QuotaPeriod, Window};

mod decode;

/// The alert threshold when none is given, in percent of the limit.
pub const DEFAULT_ALERT_THRESHOLD: u8 = 80;

/// The most thresholds one quota may have.
pub const MAX_THRESHOLDS: usize = 16;

/// A level of usage at which a quota sends a `quota.threshold` message, once per tenant and
/// period. In JSON, `{"percent": 80}` or `{"usage": 1000}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Threshold {
    /// A whole percentage of the limit, 1 to 100.
    Percent(u8),
    /// An absolute usage (> 0), in the quota's units.
    Usage(Quantity),
}

impl Threshold {
    /// Whether `usage` has reached this threshold of `limit`.
    #[must_use]
    pub fn reached(self, usage: Quantity, limit: Quantity) -> bool {
        match self {
            // Whole percents: floor(100 * usage / limit) >= p exactly when 100 * usage / limit >= p.
            Threshold::Percent(p) => usage
                .percent_of(limit)
                .is_some_and(|at| at >= u128::from(p)),
            Threshold::Usage(u) => usage >= u,
        }
    }

    /// The list as stored: its JSON text, with usages written exactly.
    #[must_use]
    pub fn list_text(thresholds: &[Threshold]) -> String {
        serde_json::to_string(thresholds).unwrap_or_else(|_| "[]".to_owned())
    }

    /// Reads [`Threshold::list_text`] back (or any JSON list of thresholds), exactly.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] naming each bad entry (`thresholds[i]...`).
    pub fn parse_list(text: &str) -> crate::Result<Vec<Threshold>> {
        let raw: &serde_json::value::RawValue = serde_json::from_str(text)
            .map_err(|_| crate::Error::invalid("thresholds", "must be a JSON array"))?;
        let mut errors = ValidationErrors::new();
        let list = decode::thresholds(raw, &mut errors);
        errors.into_result(list.unwrap_or_default())
    }
}

/// A quota's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaId(pub uuid::Uuid);

impl QuotaId {
    /// A new random (time-ordered) id.
    #[must_use]
    pub fn generate() -> Self {
        QuotaId(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for QuotaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for QuotaId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(QuotaId)
    }
}

/// Whom a quota applies to: one tenant, or every tenant (`*`) as a default.
///
/// A default quota still counts each tenant's usage separately.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaScope {
    /// Every tenant that has no more specific quota; written `*`.
    AllTenants,
    /// One tenant.
    Tenant(TenantId),
}

impl QuotaScope {
    /// The wire form: the tenant id, or `*`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            QuotaScope::AllTenants => "*",
            QuotaScope::Tenant(t) => t.as_str(),
        }
    }

    /// Parses the wire form.
    ///
    /// # Errors
    ///
    /// When it is neither `*` nor a valid tenant id.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim() == "*" {
            Ok(QuotaScope::AllTenants)
        } else {
            TenantId::new(raw)
                .map(QuotaScope::Tenant)
                .map_err(|e| e.to_string())
        }
    }

    /// Whether the quota applies to `tenant`.
    #[must_use]
    pub fn covers(&self, tenant: &TenantId) -> bool {
        match self {
            QuotaScope::AllTenants => true,
            QuotaScope::Tenant(t) => t == tenant,
        }
    }
}

impl fmt::Display for QuotaScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for QuotaScope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for QuotaScope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        QuotaScope::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a quota limits: usage of a feature, identified by `(tenant_id, resource, feature)`,
/// or a meter's value, identified by `(tenant_id, meter)`.
///
/// Exactly one of `feature` and `meter` is set; a meter quota has no resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct QuotaSpec {
    /// The tenant, or `*` for the default of every tenant.
    pub tenant_id: QuotaScope,
    /// The resource, or `None` for usage of the feature in any resource.
    pub resource: Option<Resource>,
    /// The feature whose usage (the sum of quantities) is limited; `None` for a meter quota.
    pub feature: Option<Feature>,
    /// The meter whose value is limited (a `sum`, `count` or `unique_count` meter), instead
    /// of a feature: 1 to 64 characters of `a-z0-9_-`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = false, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$"))]
    pub meter: Option<MeterKey>,
    /// The most usage allowed per period (> 0, at most 10^27).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::quantity::LimitInput))]
    pub limit: Quantity,
    /// The period usage is counted over.
    pub period: QuotaPeriod,
    /// Percent of the limit at which `alert` turns true (0 to 100; default 80). It mirrors
    /// the first percent entry of `thresholds`; given alone, it is the one percent threshold.
    #[cfg_attr(feature = "openapi", schema(required = false, maximum = 100))]
    pub alert_threshold: u8,
    /// The usages at which a `quota.threshold` message is sent, once per tenant and period
    /// (default: `alert_threshold` percent, when above 0).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::api::ThresholdList, required = false))]
    pub thresholds: Vec<Threshold>,
    /// IANA zone of the period boundaries (default `UTC`).
    #[serde(with = "crate::window::tz_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::api::TimeZone>, required = false, example = "UTC"))]
    pub tz: Tz,
}

impl QuotaSpec {
    /// A quota of `limit` per `period` on `feature` of any resource for `tenant_id`, in UTC,
    /// alerting at 80 %.
    #[must_use]
    pub fn new(
        tenant_id: QuotaScope,
        feature: Feature,
        limit: Quantity,
        period: QuotaPeriod,
    ) -> Self {
        QuotaSpec {
            tenant_id,
            resource: None,
            feature: Some(feature),
            meter: None,
            limit,
            period,
            alert_threshold: DEFAULT_ALERT_THRESHOLD,
            thresholds: vec![Threshold::Percent(DEFAULT_ALERT_THRESHOLD)],
            tz: Tz::UTC,
        }
    }

    /// A quota of `limit` per `period` on the value of `meter` for `tenant_id`, in UTC,
    /// alerting at 80 %. The meter's aggregation must be `sum`, `count` or `unique_count`.
    #[must_use]
    pub fn on_meter(
        tenant_id: QuotaScope,
        meter: MeterKey,
        limit: Quantity,
        period: QuotaPeriod,
    ) -> Self {
        QuotaSpec {
            tenant_id,
            resource: None,
            feature: None,
            meter: Some(meter),
            limit,
            period,
            alert_threshold: DEFAULT_ALERT_THRESHOLD,
            thresholds: vec![Threshold::Percent(DEFAULT_ALERT_THRESHOLD)],
            tz: Tz::UTC,
        }
    }

    /// Restricts the quota to one resource.
    #[must_use]
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the alert threshold, which becomes the one threshold (none for 0).
    #[must_use]
    pub fn with_alert_threshold(mut self, percent: u8) -> Self {
        self.alert_threshold = percent;
        self.thresholds = if percent == 0 {
            Vec::new()
        } else {
            vec![Threshold::Percent(percent)]
        };
        self
    }

    /// Sets the thresholds; `alert_threshold` follows the first percent entry, if any.
    #[must_use]
    pub fn with_thresholds(mut self, thresholds: Vec<Threshold>) -> Self {
        if let Some(p) = first_percent(&thresholds) {
            self.alert_threshold = p;
        }
        self.thresholds = thresholds;
        self
    }

    /// Sets the zone of period boundaries.
    #[must_use]
    pub fn with_tz(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// Checks the rules that the types alone do not: `limit > 0`, threshold at most 100,
    /// a feature or a meter (not both), no resource on a meter quota.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each broken rule.
    pub fn validate(self) -> crate::Result<Self> {
        let mut errors = ValidationErrors::new();
        match (&self.feature, &self.meter) {
            (None, None) => errors.push(None, "feature", "is required (or a `meter`)"),
            (Some(_), Some(_)) => errors.push(None, "meter", "may not be given with `feature`"),
            (None, Some(_)) if self.resource.is_some() => {
                errors.push(None, "resource", "may not be given with `meter`");
            }
            _ => {}
        }
        if self.limit.is_zero() {
            errors.push(None, "limit", "must be > 0");
        } else if self.limit > MAX_LIMIT {
            errors.push(None, "limit", "must be at most 10^27");
        }
        if self.alert_threshold > 100 {
            errors.push(None, "alert_threshold", "must be between 0 and 100");
        }
        check_thresholds(&self.thresholds, &mut errors);
        if let Some(p) = first_percent(&self.thresholds)
            && p != self.alert_threshold
        {
            errors.push(
                None,
                "alert_threshold",
                format!("must equal the first percent entry of `thresholds` ({p})"),
            );
        }
        errors.into_result(self)
    }

    /// How specific the quota is for a request; lower wins.
    fn rank(&self) -> u8 {
        match (&self.tenant_id, &self.resource) {
            (QuotaScope::Tenant(_), Some(_)) => 0,
            (QuotaScope::Tenant(_), None) => 1,
            (QuotaScope::AllTenants, Some(_)) => 2,
            (QuotaScope::AllTenants, None) => 3,
        }
    }

    /// Whether this quota applies to usage of `feature` (of `resource`, when given) by `tenant`.
    #[must_use]
    pub fn applies_to(
        &self,
        tenant: &TenantId,
        resource: Option<&Resource>,
        feature: &Feature,
    ) -> bool {
        self.feature.as_ref() == Some(feature)
            && self.tenant_id.covers(tenant)
            && match &self.resource {
                None => true,
                Some(r) => resource == Some(r),
            }
    }
}

/// The first percent entry of `thresholds`.
fn first_percent(thresholds: &[Threshold]) -> Option<u8> {
    thresholds.iter().find_map(|t| match t {
        Threshold::Percent(p) => Some(*p),
        Threshold::Usage(_) => None,
    })
}

/// Pushes what is wrong with a list of thresholds: too many, a percent outside 1 to 100, a
/// usage of 0, an entry given twice.
fn check_thresholds(thresholds: &[Threshold], errors: &mut ValidationErrors) {
    if thresholds.len() > MAX_THRESHOLDS {
        errors.push(
            None,
            "thresholds",
            format!("may have at most {MAX_THRESHOLDS} entries"),
        );
    }
    for (i, t) in thresholds.iter().enumerate() {
        match t {
            Threshold::Percent(p) if !(1..=100).contains(p) => {
                errors.push(None, format!("thresholds[{i}].percent"), "must be 1 to 100");
            }
            Threshold::Usage(u) if u.is_zero() => {
                errors.push(None, format!("thresholds[{i}].usage"), "must be > 0");
            }
            Threshold::Usage(u) if *u > MAX_LIMIT => {
                errors.push(
                    None,
                    format!("thresholds[{i}].usage"),
                    "must be at most 10^27",
                );
            }
            _ if thresholds[..i].contains(t) => {
                errors.push(None, format!("thresholds[{i}]"), "appears more than once");
            }
            _ => {}
        }
    }
}

/// A stored quota. In JSON, one flat object: `id`, the fields of [`QuotaSpec`], then
/// `created_at` and `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "QuotaFields", into = "QuotaFields")]
pub struct Quota {
    /// Identifier.
    pub id: QuotaId,
    /// What it limits.
    pub spec: QuotaSpec,
    /// When it was first stored.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

/// The JSON form of a [`Quota`], written out field by field: serde's `flatten` would buffer
/// the fields and hand the limit over without its literal text.
#[derive(Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(description = "A stored quota"))]
struct QuotaFields {
    id: QuotaId,
    tenant_id: QuotaScope,
    resource: Option<Resource>,
    feature: Option<Feature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = false))]
    meter: Option<MeterKey>,
    limit: Quantity,
    period: QuotaPeriod,
    alert_threshold: u8,
    #[serde(default)]
    thresholds: Vec<Threshold>,
    #[serde(with = "crate::window::tz_serde")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "UTC"))]
    tz: Tz,
    #[serde(with = "crate::time::rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(with = "crate::time::rfc3339")]
    updated_at: DateTime<Utc>,
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Quota {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <QuotaFields as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Quota {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Quota")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <QuotaFields as utoipa::ToSchema>::schemas(schemas);
    }
}

impl From<Quota> for QuotaFields {
    fn from(quota: Quota) -> Self {
        let QuotaSpec {
            tenant_id,
            resource,
            feature,
            meter,
            limit,
            period,
            alert_threshold,
            thresholds,
            tz,
        } = quota.spec;
        QuotaFields {
            id: quota.id,
            tenant_id,
            resource,
            feature,
            meter,
            limit,
            period,
            alert_threshold,
            thresholds,
            tz,
            created_at: quota.created_at,
            updated_at: quota.updated_at,
        }
    }
}

impl From<QuotaFields> for Quota {
    fn from(fields: QuotaFields) -> Self {
        Quota {
            id: fields.id,
            spec: QuotaSpec {
                tenant_id: fields.tenant_id,
                resource: fields.resource,
                feature: fields.feature,
                meter: fields.meter,
                limit: fields.limit,
                period: fields.period,
                alert_threshold: fields.alert_threshold,
                thresholds: fields.thresholds,
                tz: fields.tz,
            },
            created_at: fields.created_at,
            updated_at: fields.updated_at,
        }
    }
}

/// Sorts quotas in the contract's listing order: by tenant (`*` first), feature quotas
/// (by resource, none first, then feature) before meter quotas (by meter).
pub fn sort_quotas(quotas: &mut [Quota]) {
    quotas.sort_by(|a, b| {
        let key = |q: &Quota| {
            (
                q.spec.tenant_id.clone(),
                q.spec.meter.clone(),
                q.spec.resource.clone(),
                q.spec.feature.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// Picks the quota that governs a request, by the most-specific-match rule:
/// `(tenant, resource, feature)`, then `(tenant, any resource, feature)`, then the default
/// for every tenant (`*`) with a resource, then `*` with any resource.
#[must_use]
pub fn select_quota<'a>(
    candidates: &'a [Quota],
    tenant: &TenantId,
    resource: Option<&Resource>,
    feature: &Feature,
) -> Option<&'a Quota> {
    candidates
        .iter()
        .filter(|q| q.spec.applies_to(tenant, resource, feature))
        .min_by_key(|q| q.spec.rank())
}

/// Whose usage a quota counts: one tenant's use of a feature, in one resource or in any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageScope {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The resource, or `None` for any.
    pub resource: Option<Resource>,
    /// The feature.
    pub feature: Feature,
}

impl UsageScope {
    /// The usage a quota of `feature` counts for `tenant`.
    #[must_use]
    pub fn of(quota: &QuotaSpec, tenant: &TenantId, feature: &Feature) -> Self {
        UsageScope {
            tenant_id: tenant.clone(),
            resource: quota.resource.clone(),
            feature: feature.clone(),
        }
    }

    /// Whether an event of (`tenant`, `resource`, `feature`) counts.
    #[must_use]
    pub fn counts(&self, tenant: &TenantId, resource: &Resource, feature: &Feature) -> bool {
        self.tenant_id == *tenant
            && self.feature == *feature
            && self.resource.as_ref().is_none_or(|r| r == resource)
    }
}

/// A limit on usage of a scope within a window: what [`crate::Store::consume`] enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLimit {
    /// Whose usage.
    pub scope: UsageScope,
    /// Over which window.
    pub window: Window,
    /// At most this much.
    pub limit: Quantity,
}

/// A validate (or consume) request.
///
/// It serializes to the body of `POST /v1/meter/validate`, which
/// [`ValidateRequest::from_json`] reads back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A quota check, optionally consuming")
)]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct ValidateRequest {
    /// Who wants to use it.
    pub tenant_id: TenantId,
    /// Which resource, if the quota may be resource-specific (required to consume).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// Which feature.
    pub feature: Feature,
    /// How much they want to use (default 1; `null` is the default).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::quantity::DecimalInput>, required = false))]
    pub quantity: Quantity,
    /// The period to report usage over when no quota applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<QuotaPeriod>,
    /// Record the usage as an event when allowed, atomically with the check (default false;
    /// `null` is the default).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, required = false))]
    pub consume: bool,
    /// Idempotency key of the consumed event (consume only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    /// Metadata of the consumed event (consume only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Metadata>,
}

impl ValidateRequest {
    /// A check of one unit of `feature` for `tenant_id`, without consuming.
    #[must_use]
    pub fn new(tenant_id: TenantId, feature: Feature) -> Self {
        ValidateRequest {
            tenant_id,
            resource: None,
            feature,
            quantity: Quantity::ONE,
            period: None,
            consume: false,
            id: None,
            metadata: None,
        }
    }

    /// Sets the resource.
    #[must_use]
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Sets the quantity.
    #[must_use]
    pub fn with_quantity(mut self, quantity: Quantity) -> Self {
        self.quantity = quantity;
        self
    }

    /// Records the usage when allowed.
    #[must_use]
    pub fn consuming(mut self) -> Self {
        self.consume = true;
        self
    }

    /// Sets the idempotency key of the consumed event.
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = Some(id);
        self
    }
}

/// A check (or consume) against a meter quota: the body of `POST /v1/meter/validate` that
/// names a `meter`, read by [`MeterCheck::from_json`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(description = "A meter quota check, optionally consuming an event")
)]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct MeterCheck {
    /// Whose meter value.
    pub tenant_id: TenantId,
    /// Which meter: 1 to 64 characters of `a-z0-9_-`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$"))]
    pub meter: MeterKey,
    /// With no `event`: what a `sum` meter would add (default 1); `count` adds 1 and
    /// `unique_count` nothing.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::quantity::DecimalInput>, required = false))]
    pub quantity: Quantity,
    /// The period to report the value over when no quota applies.
    pub period: Option<QuotaPeriod>,
    /// Record `event` when allowed, atomically with the check (default false; `null` is the
    /// default).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<bool>, required = false))]
    pub consume: bool,
    /// The event whose contribution is checked (required to consume); its `tenant_id` may
    /// be omitted and must otherwise equal the body's.
    pub event: Option<NewEvent>,
}

impl MeterCheck {
    /// A check of `meter` for `tenant_id` that adds one unit (for `sum` and `count`).
    #[must_use]
    pub fn new(tenant_id: TenantId, meter: MeterKey) -> Self {
        MeterCheck {
            tenant_id,
            meter,
            quantity: Quantity::ONE,
            period: None,
            consume: false,
            event: None,
        }
    }

    /// Checks `event`'s contribution instead of a quantity.
    #[must_use]
    pub fn with_event(mut self, event: NewEvent) -> Self {
        self.event = Some(event);
        self
    }

    /// Records the event when allowed.
    #[must_use]
    pub fn consuming(mut self) -> Self {
        self.consume = true;
        self
    }
}

/// The answer to a validate request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaDecision {
    /// Whether `current_usage + quantity <= limit` (always true with no quota).
    pub allowed: bool,
    /// `limit - current_usage`, floored at 0; null with no quota.
    pub remaining: Option<Quantity>,
    /// The limit; null with no quota.
    pub limit: Option<Quantity>,
    /// The period usage is counted over.
    pub period: Option<QuotaPeriod>,
    /// When the current period ends and usage resets.
    #[serde(with = "crate::time::rfc3339::option")]
    pub reset_at: Option<DateTime<Utc>>,
    /// Usage in the current period (after recording, for an admitted consume).
    pub current_usage: Quantity,
    /// Whether usage has reached the alert threshold.
    pub alert: bool,
    /// A human-readable note (why it was refused, or that no quota applies).
    pub message: Option<String>,
    /// The recorded event, for an admitted consume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// The quota that applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_id: Option<QuotaId>,
}

impl QuotaDecision {
    /// The decision for `usage` (already including the request when it was consumed) against
    /// `quota` in `window`.
    #[must_use]
    pub fn under_quota(
        quota: &Quota,
        window: Window,
        usage: Quantity,
        requested: Quantity,
        allowed: bool,
    ) -> Self {
        let limit = quota.spec.limit;
        let alert = usage
            .percent_of(limit)
            .is_some_and(|p| p >= u128::from(quota.spec.alert_threshold));
        let message = (!allowed).then(|| {
            format!(
                "quota exceeded: usage {usage} + requested {requested} > limit {limit} per {} period",
                quota.spec.period
            )
        });
        QuotaDecision {
            allowed,
            remaining: Some(limit.saturating_sub(usage)),
            limit: Some(limit),
            period: Some(quota.spec.period),
            reset_at: Some(window.end),
            current_usage: usage,
            alert,
            message,
            event_id: None,
            quota_id: Some(quota.id),
        }
    }

    /// The decision after an atomic consume of `requested` (event `event_id`) against
    /// `quota` in `window`: usage after the event when admitted, the event id unless denied.
    #[must_use]
    pub fn after_consume(
        quota: &Quota,
        window: Window,
        outcome: crate::store::ConsumeOutcome,
        requested: Quantity,
        event_id: EventId,
    ) -> Self {
        use crate::store::ConsumeOutcome;
        let (usage, allowed) = match outcome {
            ConsumeOutcome::Admitted { usage_before } => {
                (usage_before.saturating_add(requested), true)
            }
            ConsumeOutcome::Duplicate { usage } => (usage, true),
            ConsumeOutcome::Denied { usage } => (usage, false),
        };
        let mut decision = Self::under_quota(quota, window, usage, requested, allowed);
        decision.event_id = allowed.then_some(event_id);
        decision
    }

    /// The decision when no quota applies.
    #[must_use]
    pub fn unlimited(period: Option<(QuotaPeriod, Window)>, usage: Quantity) -> Self {
        QuotaDecision {
            allowed: true,
            remaining: None,
            limit: None,
            period: period.map(|p| p.0),
            reset_at: period.map(|p| p.1.end),
            current_usage: usage,
            alert: false,
            message: Some("no quota configured".into()),
            event_id: None,
            quota_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(tenant: &str, resource: Option<&str>) -> Quota {
        let scope = QuotaScope::parse(tenant).expect("scope");
        let mut spec = QuotaSpec::new(
            scope,
            Feature::new("f").expect("f"),
            Quantity::from_units(10),
            QuotaPeriod::Monthly,
        );
        spec.resource = resource.map(|r| Resource::new(r).expect("r"));
        Quota {
            id: QuotaId::generate(),
            spec,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn most_specific_quota_wins() {
        let all = vec![
            quota("*", None),
            quota("*", Some("r")),
            quota("t", None),
            quota("t", Some("r")),
            quota("other", Some("r")),
        ];
        let t = TenantId::new("t").expect("t");
        let f = Feature::new("f").expect("f");
        let r = Resource::new("r").expect("r");
        let pick = |cands: &[Quota], res: Option<&Resource>, tenant: &TenantId| {
            select_quota(cands, tenant, res, &f)
                .map(|q| (q.spec.tenant_id.to_string(), q.spec.resource.clone()))
        };
        assert_eq!(
            pick(&all, Some(&r), &t),
            Some(("t".into(), Some(r.clone())))
        );
        assert_eq!(pick(&all[..3], Some(&r), &t), Some(("t".into(), None)));
        assert_eq!(
            pick(&all[..2], Some(&r), &t),
            Some(("*".into(), Some(r.clone())))
        );
        assert_eq!(pick(&all[..1], Some(&r), &t), Some(("*".into(), None)));
        assert_eq!(pick(&all, None, &t), Some(("t".into(), None)));
        let u = TenantId::new("u").expect("u");
        assert_eq!(
            pick(&all, Some(&r), &u),
            Some(("*".into(), Some(r.clone())))
        );
        assert_eq!(pick(&all[4..], Some(&r), &t), None);
    }

    #[test]
    fn decisions_read_back_exactly() {
        let text = r#"{"allowed": true, "remaining": 0.000000001, "limit": 999999999999999.999999999,
            "period": "monthly", "reset_at": "2025-12-01T00:00:00Z",
            "current_usage": 999999999999999.999999998, "alert": true, "message": null}"#;
        let decision: QuotaDecision = serde_json::from_str(text).expect("a decision");
        assert_eq!(
            decision.limit.map(|q| q.to_string()).as_deref(),
            Some("999999999999999.999999999")
        );
        assert_eq!(
            decision.current_usage.to_string(),
            "999999999999999.999999998"
        );
        let again = serde_json::to_string(&decision).expect("JSON");
        assert!(
            again.contains(r#""limit":999999999999999.999999999"#),
            "{again}"
        );
        assert!(again.contains(r#""remaining":0.000000001"#), "{again}");
    }

    #[test]
    fn quotas_read_back_exactly() {
        let text = r#"{"id": "0193a1b2-0000-7000-8000-000000000000", "tenant_id": "org",
            "resource": null, "feature": "f", "limit": 123456789012345.123456789,
            "period": "monthly", "alert_threshold": 80, "tz": "Europe/Paris",
            "created_at": "2025-11-20T10:31:00Z", "updated_at": "2025-11-20T10:31:00Z"}"#;
        let quota: Quota = serde_json::from_str(text).expect("a quota");
        assert_eq!(quota.spec.limit.to_string(), "123456789012345.123456789");
        let again = serde_json::to_string(&quota).expect("JSON");
        assert!(
            again.contains(r#""limit":123456789012345.123456789"#),
            "{again}"
        );
        assert_eq!(
            serde_json::from_str::<Quota>(&again).expect("a quota"),
            quota
        );
    }
}
