//! Decoding quota and validate requests from JSON text; limits and quantities are read from
//! the literal's text, never through a float.

use chrono_tz::Tz;
use serde_json::value::RawValue;

use super::{
    DEFAULT_ALERT_THRESHOLD, MeterCheck, QuotaScope, QuotaSpec, Threshold, ValidateRequest,
    first_percent,
};
use crate::error::ValidationErrors;
use crate::event::{EventId, Feature, NewEvent, Resource, TenantId, fields};
use crate::json::{self, JsonObject};
use crate::meter::MeterKey;
use crate::quantity::Quantity;
use crate::window::{QuotaPeriod, parse_tz};

/// The members of a request body, or the error for a body that is not an object.
fn object(raw: &RawValue) -> crate::Result<JsonObject<'_>> {
    JsonObject::from_raw(raw).ok_or_else(|| crate::Error::invalid("body", "must be a JSON object"))
}

/// Pushes the message of a failed read under `field`, keeping the value otherwise.
fn take<T>(
    read: Result<Option<T>, String>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<T> {
    read.map_err(|message| errors.push(None, field, message))
        .ok()
        .flatten()
}

/// A quota's `thresholds`: a list of `{"percent": p}` and `{"usage": u}`, usages read
/// exactly. Pushes each problem under `thresholds[i]...`; `None` when any entry is bad.
pub(super) fn thresholds(raw: &RawValue, errors: &mut ValidationErrors) -> Option<Vec<Threshold>> {
    let Some(items) = json::array(raw) else {
        errors.push(None, "thresholds", "must be an array");
        return None;
    };
    let before = errors.errors().len();
    let mut list = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let entry = JsonObject::from_raw(item).filter(|o| o.len() == 1);
        let Some((key, value)) = entry.as_ref().and_then(|o| o.iter().next()) else {
            errors.push(
                None,
                format!("thresholds[{i}]"),
                r#"must be {"percent": p} or {"usage": u}"#,
            );
            continue;
        };
        match key {
            "percent" => match crate::json::small_whole_number(value.get()) {
                Some(p) if (1..=100).contains(&p) => list.push(Threshold::Percent(p)),
                _ => errors.push(
                    None,
                    format!("thresholds[{i}].percent"),
                    "must be an integer from 1 to 100",
                ),
            },
            "usage" => match fields::quantity(value) {
                Ok(Some(u)) if !u.is_zero() => list.push(Threshold::Usage(u)),
                Ok(_) => errors.push(None, format!("thresholds[{i}].usage"), "must be > 0"),
                Err(e) => errors.push(None, format!("thresholds[{i}].usage"), e),
            },
            other => errors.push(
                None,
                format!("thresholds[{i}].{other}"),
                "unknown field (use `percent` or `usage`)",
            ),
        }
    }
    (errors.errors().len() == before).then_some(list)
}

/// A check's `quantity`: an event quantity, 1 when null.
fn check_quantity(v: &RawValue, key: &str, errors: &mut ValidationErrors) -> Option<Quantity> {
    match fields::quantity(v) {
        Ok(q) => q
            .unwrap_or(Quantity::ONE)
            .validate_event()
            .map_err(|e| errors.push(None, key, e.to_string()))
            .ok(),
        Err(e) => {
            errors.push(None, key, e);
            None
        }
    }
}

/// A check's `period`.
fn check_period(v: &RawValue, key: &str, errors: &mut ValidationErrors) -> Option<QuotaPeriod> {
    take(fields::string(v), key, errors).and_then(|s| {
        s.parse::<QuotaPeriod>()
            .map_err(|e| errors.push(None, key, e))
            .ok()
    })
}

/// A check's `tenant_id`.
fn check_tenant(v: &RawValue, key: &str, errors: &mut ValidationErrors) -> Option<TenantId> {
    match fields::string(v) {
        Ok(Some(s)) => TenantId::new(&s)
            .map_err(|e| errors.push(None, key, e.to_string()))
            .ok(),
        _ => {
            errors.push(None, key, "must be a string");
            None
        }
    }
}

impl QuotaSpec {
    /// Decodes a JSON quota (raw text), collecting every problem. The limit is read from
    /// its literal text, so it is stored exactly as given.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each bad field.
    pub fn from_json(raw: &RawValue) -> crate::Result<Self> {
        let map = object(raw)?;
        let mut errors = ValidationErrors::new();
        crate::event::report_duplicates(&map, None, &str::to_owned, &mut errors);
        for (key, _) in map.iter() {
            if !matches!(
                key,
                "tenant_id"
                    | "resource"
                    | "feature"
                    | "meter"
                    | "limit"
                    | "period"
                    | "alert_threshold"
                    | "thresholds"
                    | "tz"
                    | "id"
                    | "created_at"
                    | "updated_at"
            ) {
                errors.push(None, key, "unknown field");
            }
        }
        let string = |name: &str, errors: &mut ValidationErrors| -> Option<String> {
            map.get(name)
                .and_then(|v| take(fields::string(v), name, errors))
        };
        let tenant = match string("tenant_id", &mut errors) {
            Some(raw) => QuotaScope::parse(&raw)
                .map_err(|e| errors.push(None, "tenant_id", e))
                .ok(),
            None => {
                if !map.contains_key("tenant_id") {
                    errors.push(
                        None,
                        "tenant_id",
                        "is required (a tenant id, or `*` for all)",
                    );
                }
                None
            }
        };
        let resource = string("resource", &mut errors).and_then(|raw| {
            Resource::new(raw)
                .map_err(|e| errors.push(None, "resource", e.to_string()))
                .ok()
        });
        let meter = string("meter", &mut errors).and_then(|raw| {
            MeterKey::new(raw)
                .map_err(|e| errors.push(None, "meter", e))
                .ok()
        });
        let feature = match string("feature", &mut errors) {
            Some(raw) => Feature::new(raw)
                .map_err(|e| errors.push(None, "feature", e.to_string()))
                .ok(),
            None => {
                if !map.contains_key("feature") && !map.contains_key("meter") {
                    errors.push(None, "feature", "is required (or a `meter`)");
                }
                None
            }
        };
        let limit = match map.get("limit").map(fields::quantity) {
            None | Some(Ok(None)) => {
                errors.push(None, "limit", "is required");
                None
            }
            Some(Ok(Some(q))) if q.is_zero() => {
                errors.push(None, "limit", "must be > 0");
                None
            }
            Some(Ok(Some(q))) => Some(q),
            Some(Err(e)) => {
                errors.push(None, "limit", e);
                None
            }
        };
        let period = match string("period", &mut errors) {
            Some(raw) => raw
                .parse::<QuotaPeriod>()
                .map_err(|e| errors.push(None, "period", e))
                .ok(),
            None => {
                if !map.contains_key("period") {
                    errors.push(None, "period", "is required");
                }
                None
            }
        };
        let alert_given = match map.get("alert_threshold").map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(text) => match crate::json::small_whole_number(text) {
                Some(p) if p <= 100 => Ok(Some(p)),
                _ => {
                    errors.push(
                        None,
                        "alert_threshold",
                        "must be an integer between 0 and 100",
                    );
                    Err(())
                }
            },
        };
        let thresholds_given = match map.get("thresholds") {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => thresholds(raw, &mut errors).map(Some).ok_or(()),
        };
        // `alert_threshold` mirrors the first percent threshold; given alone, it is the one.
        let (alert_threshold, thresholds) = match (alert_given, thresholds_given) {
            (Ok(alert), Ok(None)) => {
                let p = alert.unwrap_or(DEFAULT_ALERT_THRESHOLD);
                let list = if p == 0 {
                    Vec::new()
                } else {
                    vec![Threshold::Percent(p)]
                };
                (Some(p), list)
            }
            (Ok(alert), Ok(Some(list))) => {
                let p = match (alert, first_percent(&list)) {
                    (Some(a), Some(p)) if a != p => {
                        errors.push(
                            None,
                            "alert_threshold",
                            format!("must equal the first percent entry of `thresholds` ({p})"),
                        );
                        None
                    }
                    (Some(a), _) => Some(a),
                    (None, first) => Some(first.unwrap_or(DEFAULT_ALERT_THRESHOLD)),
                };
                (p, list)
            }
            _ => (None, Vec::new()),
        };
        let tz = match string("tz", &mut errors) {
            Some(raw) => parse_tz(&raw).map_err(|e| errors.push(None, "tz", e)).ok(),
            None => Some(Tz::UTC),
        };
        if !errors.is_empty() {
            return Err(crate::Error::Validation(errors));
        }
        match (tenant, limit, period, alert_threshold, tz) {
            (Some(tenant_id), Some(limit), Some(period), Some(alert_threshold), Some(tz)) => {
                QuotaSpec {
                    tenant_id,
                    resource,
                    feature,
                    meter,
                    limit,
                    period,
                    alert_threshold,
                    thresholds,
                    tz,
                }
                .validate()
            }
            _ => Err(crate::Error::invalid("body", "invalid quota")),
        }
    }
}

impl ValidateRequest {
    /// Decodes a JSON validate request (raw text), collecting every problem. Names and the
    /// quantity follow the rules of events; the quantity is read from its literal text.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each bad field.
    pub fn from_json(raw: &RawValue) -> crate::Result<Self> {
        let map = object(raw)?;
        let mut errors = ValidationErrors::new();
        crate::event::report_duplicates(&map, None, &str::to_owned, &mut errors);
        let mut tenant_id = None;
        let mut resource = None;
        let mut feature = None;
        let mut quantity = Some(Quantity::ONE);
        let mut consume = false;
        let mut period = None;
        let mut id = None;
        let mut metadata = None;
        for (key, v) in map.iter() {
            match key {
                "tenant_id" => tenant_id = check_tenant(v, key, &mut errors),
                "feature" => match fields::string(v) {
                    Ok(Some(s)) => {
                        feature = Feature::new(&s)
                            .map_err(|e| errors.push(None, key, e.to_string()))
                            .ok();
                    }
                    _ => errors.push(None, key, "must be a string"),
                },
                "resource" => {
                    resource = take(fields::string(v), key, &mut errors).and_then(|s| {
                        Resource::new(&s)
                            .map_err(|e| errors.push(None, key, e.to_string()))
                            .ok()
                    });
                }
                "quantity" => quantity = check_quantity(v, key, &mut errors),
                "consume" => consume = take(fields::boolean(v), key, &mut errors).unwrap_or(false),
                "period" => period = check_period(v, key, &mut errors),
                "id" => {
                    id = take(fields::string(v), key, &mut errors).and_then(|s| {
                        EventId::new(s)
                            .map_err(|e| errors.push(None, key, e.to_string()))
                            .ok()
                    });
                }
                "metadata" => metadata = take(fields::metadata(v), key, &mut errors),
                other => errors.push(None, other, "unknown field"),
            }
        }
        for required in ["tenant_id", "feature"] {
            if !map.contains_key(required) {
                errors.push(None, required, "is required");
            }
        }
        match (tenant_id, feature, quantity) {
            (Some(tenant_id), Some(feature), Some(quantity)) if errors.is_empty() => {
                Ok(ValidateRequest {
                    tenant_id,
                    resource,
                    feature,
                    quantity,
                    period,
                    consume,
                    id,
                    metadata,
                })
            }
            _ => Err(crate::Error::Validation(errors)),
        }
    }
}

impl MeterCheck {
    /// Decodes a JSON meter check (raw text), collecting every problem; the `event` member
    /// follows the rules of ingested events, with field paths under `event`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each bad field.
    pub fn from_json(raw: &RawValue) -> crate::Result<Self> {
        let map = object(raw)?;
        let mut errors = ValidationErrors::new();
        crate::event::report_duplicates(&map, None, &str::to_owned, &mut errors);
        let mut tenant_id = None;
        let mut meter = None;
        let mut quantity = Some(Quantity::ONE);
        let mut consume = false;
        let mut period = None;
        let mut event_raw: Option<&RawValue> = None;
        for (key, v) in map.iter() {
            match key {
                "tenant_id" => tenant_id = check_tenant(v, key, &mut errors),
                "meter" => match fields::string(v) {
                    Ok(Some(s)) => {
                        meter = MeterKey::new(s).map_err(|e| errors.push(None, key, e)).ok()
                    }
                    _ => errors.push(None, key, "must be a string"),
                },
                "quantity" => quantity = check_quantity(v, key, &mut errors),
                "consume" => consume = take(fields::boolean(v), key, &mut errors).unwrap_or(false),
                "period" => period = check_period(v, key, &mut errors),
                "event" if v.get() != "null" => event_raw = Some(v),
                "event" => {}
                "resource" | "feature" | "id" | "metadata" => errors.push(
                    None,
                    key,
                    "is not allowed with `meter`; give the event in `event`",
                ),
                other => errors.push(None, other, "unknown field"),
            }
        }
        for required in ["tenant_id", "meter"] {
            if !map.contains_key(required) {
                errors.push(None, required, "is required");
            }
        }
        let event =
            event_raw.and_then(|raw| decode_check_event(raw, tenant_id.as_ref(), &mut errors));
        if consume && event.is_none() && errors.is_empty() {
            errors.push(None, "event", "is required when consume is true");
        }
        match (tenant_id, meter, quantity) {
            (Some(tenant_id), Some(meter), Some(quantity)) if errors.is_empty() => Ok(MeterCheck {
                tenant_id,
                meter,
                quantity,
                period,
                consume,
                event,
            }),
            _ => Err(crate::Error::Validation(errors)),
        }
    }
}

/// Decodes a meter check's `event`: an event whose `tenant_id`, when omitted, is the
/// body's, and must otherwise equal it.
fn decode_check_event(
    raw: &RawValue,
    tenant: Option<&TenantId>,
    errors: &mut ValidationErrors,
) -> Option<NewEvent> {
    let Some(object) = JsonObject::from_raw(raw) else {
        errors.push(None, "event", "must be a JSON object");
        return None;
    };
    if object.contains_key("tenant_id") {
        let event = NewEvent::from_json_object(&object, None, "event", errors)?;
        if tenant.is_some_and(|t| event.tenant_id.trim() != t.as_str()) {
            errors.push(None, "event.tenant_id", "must equal `tenant_id`");
        }
        return Some(event);
    }
    // No tenant: the members as sent (numbers keep their literal text) plus the body's.
    let tenant = tenant?;
    let text = raw.get().trim_start();
    let rest = text[1..].trim_start();
    let separator = if rest.starts_with('}') { "" } else { "," };
    let name = serde_json::to_string(tenant.as_str()).ok()?;
    let with_tenant: Box<RawValue> =
        serde_json::from_str(&format!("{{\"tenant_id\":{name}{separator}{rest}")).ok()?;
    NewEvent::from_json(&with_tenant, None, "event", errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("JSON")
    }

    #[test]
    fn quota_json_errors_are_collected() {
        let Err(crate::Error::Validation(e)) = QuotaSpec::from_json(raw(
            r#"{"tenant_id": "", "feature": "f", "limit": 0, "period": "weekly",
                "alert_threshold": 101, "tz": "Nowhere/City"}"#,
        )) else {
            panic!("expected errors")
        };
        let fields: Vec<_> = e.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["tenant_id", "limit", "period", "alert_threshold", "tz"]
        );
        let ok = QuotaSpec::from_json(raw(
            r#"{"tenant_id": "*", "feature": "f", "limit": 100, "period": "monthly"}"#,
        ))
        .expect("valid");
        assert_eq!(ok.alert_threshold, 80);
        assert!(
            QuotaSpec::from_json(raw(
                r#"{"tenant_id": "t", "feature": "f", "limit": 0, "period": "daily"}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn quota_limits_are_exact() {
        let spec = QuotaSpec::from_json(raw(
            r#"{"tenant_id": "t", "feature": "f", "limit": 999999999999999.999999999,
                "period": "daily"}"#,
        ))
        .expect("valid");
        assert_eq!(spec.limit.to_string(), "999999999999999.999999999");
        assert!(
            QuotaSpec::from_json(raw(
                r#"{"tenant_id": "t", "feature": "f", "limit": 0.1000000000000000055511151231257827,
                    "period": "daily"}"#
            ))
            .is_err()
        );
    }

    #[test]
    fn validate_request_json() {
        let r = ValidateRequest::from_json(raw(
            r#"{"tenant_id": "t", "feature": "f", "consume": true, "quantity": 2.5}"#,
        ))
        .expect("valid");
        assert!(r.consume);
        assert_eq!(r.quantity.to_string(), "2.5");
        assert_eq!(r.resource, None);
        assert!(ValidateRequest::from_json(raw(r#"{"tenant_id": "t"}"#)).is_err());
        assert!(
            ValidateRequest::from_json(raw(r#"{"tenant_id": "t", "feature": "f", "quantity": 0}"#))
                .is_err()
        );
        let exact = ValidateRequest::from_json(raw(
            r#"{"tenant_id": "t", "feature": "f", "quantity": 123456789012345.123456789}"#,
        ))
        .expect("valid");
        assert_eq!(exact.quantity.to_string(), "123456789012345.123456789");
    }
}
