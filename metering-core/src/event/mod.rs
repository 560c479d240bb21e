//! Events: what was used, by whom, how much and when.

mod correction;
mod decode;
mod id;
mod metadata;
mod name;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

pub use correction::{Amendment, MAX_REASON_CHARS, void_reason};
pub(crate) use decode::{fields, report_duplicates};
pub use id::{EventId, EventIdError, MAX_EVENT_ID_LEN};
pub use metadata::{Metadata, depth as metadata_depth, serialized_len as metadata_len};
pub use name::{Feature, MAX_NAME_CHARS, NameError, Resource, TenantId};

use crate::error::ValidationErrors;
use crate::quantity::Quantity;

/// A validated, stored usage event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Idempotency key.
    pub id: EventId,
    /// Who used it.
    pub tenant_id: TenantId,
    /// Which module.
    pub resource: Resource,
    /// Which feature of the module.
    pub feature: Feature,
    /// How much (> 0, exact).
    pub quantity: Quantity,
    /// When it was used (UTC, microsecond precision).
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// Free-form details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Metadata>,
    /// When the store accepted it (UTC, microsecond precision).
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The event this one replaces, when it was recorded by an amend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub amends: Option<EventId>,
    /// When it was voided (by a void or an amend); a voided event no longer counts anywhere
    /// and is listed only when asked for.
    #[serde(
        default,
        with = "crate::time::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub voided_at: Option<DateTime<Utc>>,
    /// Why it was voided, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void_reason: Option<String>,
}

impl Event {
    /// Whether the event still counts (it was not voided).
    #[must_use]
    pub fn counts(&self) -> bool {
        self.voided_at.is_none()
    }
}

/// Limits applied when validating events; the defaults are the REST contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventRules {
    /// How far in the future a timestamp may be (default 1 hour).
    pub max_future_skew: Duration,
    /// Largest serialized metadata, in bytes (default 16 KiB).
    pub max_metadata_bytes: usize,
    /// Deepest metadata nesting (default 16).
    pub max_metadata_depth: usize,
    /// Most events in one batch (default 10,000).
    pub max_batch_events: usize,
}

impl Default for EventRules {
    fn default() -> Self {
        EventRules {
            max_future_skew: Duration::hours(1),
            max_metadata_bytes: 16 * 1024,
            max_metadata_depth: 16,
            max_batch_events: 10_000,
        }
    }
}

impl EventRules {
    /// Sets the future-skew bound.
    #[must_use]
    pub fn with_max_future_skew(mut self, skew: Duration) -> Self {
        self.max_future_skew = skew;
        self
    }

    /// Sets the metadata size limit.
    #[must_use]
    pub fn with_max_metadata_bytes(mut self, bytes: usize) -> Self {
        self.max_metadata_bytes = bytes;
        self
    }

    /// Sets the metadata depth limit.
    #[must_use]
    pub fn with_max_metadata_depth(mut self, depth: usize) -> Self {
        self.max_metadata_depth = depth;
        self
    }

    /// Sets the batch size limit.
    #[must_use]
    pub fn with_max_batch_events(mut self, events: usize) -> Self {
        self.max_batch_events = events;
        self
    }
}

/// An event as submitted, before validation. Build one in code with [`NewEvent::new`] or
/// decode one from JSON with [`NewEvent::from_json`].
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(description = "An event to record"))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct NewEvent {
    /// Idempotency key, 1 to 128 printable ASCII characters; a UUIDv7 is made when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EventId>))]
    pub id: Option<String>,
    /// Who used it: 1 to 255 characters after trimming, no control characters.
    #[cfg_attr(feature = "openapi", schema(value_type = TenantId))]
    pub tenant_id: String,
    /// Which module, same rules.
    #[cfg_attr(feature = "openapi", schema(value_type = Resource))]
    pub resource: String,
    /// Which feature, same rules.
    #[cfg_attr(feature = "openapi", schema(value_type = Feature))]
    pub feature: String,
    /// How much; 1 when absent. Above 0, at most 10^15, at most 9 fractional digits; summed
    /// exactly.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::quantity::DecimalInput>))]
    pub quantity: Option<Quantity>,
    /// When; the time of receipt when absent, at most the configured skew in the future.
    /// RFC 3339 (`2025-11-20T10:31:00Z`), or a date-time without an offset
    /// (`2025-11-20T10:31:00.123456`, as Python's `isoformat()` writes it), which means UTC.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime, example = "2025-11-20T10:31:00Z"))]
    pub timestamp: Option<DateTime<Utc>>,
    /// Free-form details: a JSON object, at most 16 KiB serialized and 16 levels deep.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Metadata>,
}

impl NewEvent {
    /// One unit of `feature` of `resource` used by `tenant_id`, now.
    pub fn new(
        tenant_id: impl Into<String>,
        resource: impl Into<String>,
        feature: impl Into<String>,
    ) -> Self {
        NewEvent {
            tenant_id: tenant_id.into(),
            resource: resource.into(),
            feature: feature.into(),
            ..NewEvent::default()
        }
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the quantity.
    #[must_use]
    pub fn with_quantity(mut self, quantity: Quantity) -> Self {
        self.quantity = Some(quantity);
        self
    }

    /// Sets the timestamp.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: DateTime<Utc>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Checks every rule, recording each problem under `path` in `errors`, and returns
    /// the event ready to store (received at `now`) when all hold.
    pub fn validate(
        self,
        rules: &EventRules,
        now: DateTime<Utc>,
        index: Option<usize>,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Option<Event> {
        let field = |name: &str| field_path(path, name);
        let before = errors.errors().len();
        let id = match self.id {
            None => Some(EventId::generate()),
            Some(raw) => EventId::new(raw)
                .map_err(|e| errors.push(index, field("id"), e.to_string()))
                .ok(),
        };
        let tenant_id = TenantId::new(&self.tenant_id)
            .map_err(|e| errors.push(index, field("tenant_id"), e.to_string()))
            .ok();
        let resource = Resource::new(&self.resource)
            .map_err(|e| errors.push(index, field("resource"), e.to_string()))
            .ok();
        let feature = Feature::new(&self.feature)
            .map_err(|e| errors.push(index, field("feature"), e.to_string()))
            .ok();
        let quantity = self
            .quantity
            .unwrap_or(Quantity::ONE)
            .validate_event()
            .map_err(|e| errors.push(index, field("quantity"), e.to_string()))
            .ok();
        let now = crate::time::truncate_micros(now);
        let timestamp = self.timestamp.map_or(now, crate::time::truncate_micros);
        if timestamp > now + rules.max_future_skew {
            errors.push(
                index,
                field("timestamp"),
                format!(
                    "is more than {} seconds in the future",
                    rules.max_future_skew.num_seconds()
                ),
            );
        }
        if let Some(metadata) = &self.metadata {
            if metadata_len(metadata) > rules.max_metadata_bytes {
                errors.push(
                    index,
                    field("metadata"),
                    format!(
                        "must be at most {} bytes serialized",
                        rules.max_metadata_bytes
                    ),
                );
            } else {
                // Depth only once the size is sane; the object itself is level 1.
                let depth = 1 + metadata.values().map(metadata_depth).max().unwrap_or(0);
                if depth > rules.max_metadata_depth {
                    errors.push(
                        index,
                        field("metadata"),
                        format!("must nest at most {} levels", rules.max_metadata_depth),
                    );
                }
            }
        }
        if errors.errors().len() != before {
            return None;
        }
        Some(Event {
            id: id?,
            tenant_id: tenant_id?,
            resource: resource?,
            feature: feature?,
            quantity: quantity?,
            timestamp,
            metadata: self.metadata,
            created_at: now,
            amends: None,
            voided_at: None,
            void_reason: None,
        })
    }
}

/// The path of field `name` of the event at `path` (`events[3].quantity`, or `quantity` for
/// a single event, whose path is empty).
pub(crate) fn field_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Validates a whole batch: every problem of every event is collected (with its index and a
/// path such as `events[3].quantity`) before anything is returned, so nothing is written
/// unless all events are valid.
///
/// # Errors
///
/// [`crate::Error::TooLarge`] for an empty or oversized batch is reported by the caller;
/// here an empty batch is a validation error and each bad event adds its problems.
pub fn validate_batch(
    events: Vec<NewEvent>,
    rules: &EventRules,
    now: DateTime<Utc>,
) -> crate::Result<Vec<Event>> {
    if events.len() > rules.max_batch_events {
        return Err(crate::Error::TooLarge(format!(
            "a batch holds at most {} events, got {}",
            rules.max_batch_events,
            events.len()
        )));
    }
    let mut errors = ValidationErrors::new();
    if events.is_empty() {
        errors.push(None, "events", "must hold at least one event");
    }
    let mut valid = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        if let Some(e) = event.validate(rules, now, Some(i), &format!("events[{i}]"), &mut errors) {
            valid.push(e);
        }
    }
    errors.into_result(valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 20, 10, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn every_bad_event_of_a_batch_is_reported() {
        let batch = vec![
            NewEvent::new("org", "billing", "invoice"),
            NewEvent::new("", "billing", "invoice").with_quantity(Quantity::ZERO),
            NewEvent::new("org", "billing", "invoice").with_timestamp(now() + Duration::hours(2)),
        ];
        let Err(crate::Error::Validation(errors)) =
            validate_batch(batch, &EventRules::default(), now())
        else {
            panic!("expected a validation error");
        };
        let fields: Vec<_> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "events[1].tenant_id",
                "events[1].quantity",
                "events[2].timestamp"
            ]
        );
        assert_eq!(errors.errors()[0].index, Some(1));
    }

    #[test]
    fn defaults_apply() {
        let mut errors = ValidationErrors::new();
        let v: &serde_json::value::RawValue =
            serde_json::from_str(r#"{"tenant_id": " org ", "resource": "r", "feature": "f"}"#)
                .expect("JSON");
        let e = NewEvent::from_json(v, None, "", &mut errors)
            .expect("decodes")
            .validate(&EventRules::default(), now(), None, "", &mut errors)
            .expect("valid");
        assert_eq!(e.quantity, Quantity::ONE);
        assert_eq!(e.timestamp, now());
        assert_eq!(e.tenant_id.as_str(), "org");
    }

    #[test]
    fn metadata_limits() {
        let mut deep = json!(1);
        for _ in 0..16 {
            deep = json!({ "x": deep });
        }
        let Value::Object(deep) = deep else {
            unreachable!()
        };
        let mut errors = ValidationErrors::new();
        let r = NewEvent::new("o", "r", "f").with_metadata(deep).validate(
            &EventRules::default(),
            now(),
            None,
            "",
            &mut errors,
        );
        assert!(r.is_some(), "16 levels are allowed: {errors:?}");
        let mut deeper = json!(1);
        for _ in 0..17 {
            deeper = json!({ "x": deeper });
        }
        let Value::Object(deeper) = deeper else {
            unreachable!()
        };
        let r = NewEvent::new("o", "r", "f").with_metadata(deeper).validate(
            &EventRules::default(),
            now(),
            None,
            "",
            &mut errors,
        );
        assert!(r.is_none());
        let mut big = Metadata::new();
        big.insert("x".into(), Value::String("y".repeat(17 * 1024)));
        let r = NewEvent::new("o", "r", "f").with_metadata(big).validate(
            &EventRules::default(),
            now(),
            None,
            "",
            &mut errors,
        );
        assert!(r.is_none());
    }
}
