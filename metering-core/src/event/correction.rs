//! Corrections of stored events: what a void or an amend asks for, decoded from JSON.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use super::decode::{fields, report_duplicates};
use super::{Event, EventRules, Metadata, NewEvent};
use crate::error::ValidationErrors;
use crate::json::JsonObject;
use crate::quantity::Quantity;

/// The longest void or amend reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// What an amend changes; every field left `None` is copied from the original.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Amendment {
    /// The corrected quantity.
    pub quantity: Option<Quantity>,
    /// The corrected timestamp.
    pub timestamp: Option<DateTime<Utc>>,
    /// The corrected metadata (replaces the original's whole).
    pub metadata: Option<Metadata>,
    /// The replacement's id; a UUIDv7 is made when absent. Retrying an amend with the same
    /// id returns the replacement already recorded.
    pub id: Option<String>,
    /// Why, kept on the voided original.
    pub reason: Option<String>,
}

impl Amendment {
    /// Decodes an amend body: `quantity`, `timestamp`, `metadata`, `id` and `reason`, all
    /// optional; anything else is refused. Problems are recorded by field name.
    pub fn from_json(raw: &RawValue, errors: &mut ValidationErrors) -> Option<Amendment> {
        let Some(object) = JsonObject::from_raw(raw) else {
            errors.push(None, "body", "must be a JSON object");
            return None;
        };
        let before = errors.errors().len();
        report_duplicates(&object, None, &|k| k.to_owned(), errors);
        let mut amendment = Amendment::default();
        for (key, v) in object.iter() {
            let result = match key {
                "quantity" => fields::quantity(v).map(|q| amendment.quantity = q),
                "timestamp" => fields::timestamp(v).map(|t| amendment.timestamp = t),
                "metadata" => fields::metadata(v).map(|m| amendment.metadata = m),
                "id" => fields::string(v).map(|s| amendment.id = s),
                "reason" => reason(v).map(|r| amendment.reason = r),
                _ => Err("unknown field".to_owned()),
            };
            if let Err(message) = result {
                errors.push(None, key, message);
            }
        }
        (errors.errors().len() == before).then_some(amendment)
    }

    /// The replacement of `original`: the amended fields over the original's, validated
    /// like a new event received at `now`, with `amends` naming the original. Problems are
    /// recorded under the amend body's field names.
    pub fn replacement(
        self,
        original: &Event,
        rules: &EventRules,
        now: DateTime<Utc>,
        errors: &mut ValidationErrors,
    ) -> Option<Event> {
        let new = NewEvent {
            id: self.id,
            tenant_id: original.tenant_id.as_str().to_owned(),
            resource: original.resource.as_str().to_owned(),
            feature: original.feature.as_str().to_owned(),
            quantity: Some(self.quantity.unwrap_or(original.quantity)),
            timestamp: Some(self.timestamp.unwrap_or(original.timestamp)),
            metadata: self.metadata.or_else(|| original.metadata.clone()),
        };
        let mut event = new.validate(rules, now, None, "", errors)?;
        event.amends = Some(original.id.clone());
        Some(event)
    }
}

/// Decodes a void body: `{"reason": "..."}`, the reason optional; an empty body is no reason.
pub fn void_reason(raw: Option<&RawValue>, errors: &mut ValidationErrors) -> Option<String> {
    let raw = raw?;
    let Some(object) = JsonObject::from_raw(raw) else {
        errors.push(None, "body", "must be a JSON object");
        return None;
    };
    report_duplicates(&object, None, &|k| k.to_owned(), errors);
    let mut found = None;
    for (key, v) in object.iter() {
        let result = match key {
            "reason" => reason(v).map(|r| found = r),
            _ => Err("unknown field".to_owned()),
        };
        if let Err(message) = result {
            errors.push(None, key, message);
        }
    }
    found
}

/// A reason: a string of at most [`MAX_REASON_CHARS`] characters, without control characters
/// other than line breaks and tabs.
fn reason(raw: &RawValue) -> Result<Option<String>, String> {
    let Some(text) = fields::string(raw)? else {
        return Ok(None);
    };
    if text.chars().count() > MAX_REASON_CHARS {
        return Err(format!("must be at most {MAX_REASON_CHARS} characters"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Result<Amendment, Vec<String>> {
        let raw: Box<RawValue> = serde_json::from_str(text).expect("json");
        let mut errors = ValidationErrors::default();
        Amendment::from_json(&raw, &mut errors).ok_or_else(|| {
            errors
                .errors()
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        })
    }

    #[test]
    fn amend_bodies_are_read_exactly_and_strictly() {
        let a = decode(r#"{"quantity": 0.100000001, "reason": "typo"}"#).expect("valid");
        assert_eq!(a.quantity, Some("0.100000001".parse().expect("q")));
        assert_eq!(a.reason.as_deref(), Some("typo"));
        assert_eq!(a.timestamp, None);
        let errors =
            decode(r#"{"tenant_id": "x", "quantity": [], "reason": 3}"#).expect_err("invalid");
        assert_eq!(
            errors,
            [
                "tenant_id: unknown field",
                "quantity: must be a number",
                "reason: must be a string"
            ]
        );
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(MAX_REASON_CHARS + 1));
        assert_eq!(
            decode(&long).expect_err("too long"),
            ["reason: must be at most 1000 characters"]
        );
    }
}
