//! Decoding events from JSON text, exactly: quantities are read from the literal's text.

use serde_json::value::RawValue;

use super::NewEvent;
use crate::error::ValidationErrors;
use crate::json::JsonObject;

/// Readers for one member of a JSON object, shared by every decoder of request bodies so
/// the same field gets the same rules and messages everywhere. Each returns `Ok(None)` for
/// `null`, and the message to report otherwise.
pub(crate) mod fields {
    use chrono::{DateTime, Utc};
    use serde_json::value::RawValue;

    use crate::event::Metadata;
    use crate::json::{self, JsonKind};
    use crate::quantity::Quantity;

    /// A string (names, ids, periods).
    pub(crate) fn string(raw: &RawValue) -> Result<Option<String>, String> {
        match JsonKind::of(raw) {
            JsonKind::Null => Ok(None),
            _ => json::string(raw)
                .map(|s| Some(s.into_owned()))
                .ok_or_else(|| "must be a string".to_owned()),
        }
    }

    /// A quantity: a number literal read from its text, or a decimal string.
    pub(crate) fn quantity(raw: &RawValue) -> Result<Option<Quantity>, String> {
        match JsonKind::of(raw) {
            JsonKind::Null | JsonKind::Number | JsonKind::String => {
                Quantity::from_json(raw).map_err(|e| e.to_string())
            }
            _ => Err("must be a number".to_owned()),
        }
    }

    /// An event timestamp: RFC 3339, or a date-time without an offset, which means UTC.
    pub(crate) fn timestamp(raw: &RawValue) -> Result<Option<DateTime<Utc>>, String> {
        match JsonKind::of(raw) {
            JsonKind::Null => Ok(None),
            JsonKind::String => json::string(raw)
                .and_then(|s| crate::time::parse_event_timestamp(&s))
                .map(Some)
                .ok_or_else(|| {
                    "must be an RFC 3339 date-time, e.g. 2025-11-20T10:31:00Z \
                     (without an offset it means UTC)"
                        .to_owned()
                }),
            _ => Err("must be a string".to_owned()),
        }
    }

    /// A metadata object whose numbers are all kept exactly (see [`json::inexact_number`]).
    pub(crate) fn metadata(raw: &RawValue) -> Result<Option<Metadata>, String> {
        match JsonKind::of(raw) {
            JsonKind::Null => Ok(None),
            _ => {
                let metadata =
                    json::metadata(raw).ok_or_else(|| "must be a JSON object".to_owned())?;
                if let Some(literal) = json::inexact_number(raw.get()) {
                    return Err(format!(
                        "holds the number {literal}, which cannot be kept exactly (at most \
                         64-bit integers and the precision of a double); send it as a string, \
                         \"{literal}\", which meters read exactly"
                    ));
                }
                Ok(Some(metadata))
            }
        }
    }

    /// `true` or `false`.
    pub(crate) fn boolean(raw: &RawValue) -> Result<Option<bool>, String> {
        match raw.get() {
            "null" => Ok(None),
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err("must be true or false".to_owned()),
        }
    }
}

/// Reports every member name of `object` that appears more than once.
pub(crate) fn report_duplicates(
    object: &JsonObject<'_>,
    index: Option<usize>,
    field: &dyn Fn(&str) -> String,
    errors: &mut ValidationErrors,
) {
    for key in object.duplicate_keys() {
        errors.push(index, field(key), "appears more than once");
    }
}

impl NewEvent {
    /// Decodes one JSON event (raw text, e.g. an element of a batch), recording every type
    /// problem under `path` (e.g. `events[3]`) in `errors`. Unknown fields are refused so
    /// typos are caught; the quantity is read from its literal text, never through a float.
    ///
    /// Returns `None` when anything was wrong.
    pub fn from_json(
        raw: &RawValue,
        index: Option<usize>,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Option<NewEvent> {
        match JsonObject::from_raw(raw) {
            Some(object) => NewEvent::from_json_object(&object, index, path, errors),
            None => {
                let at = if path.is_empty() { "body" } else { path };
                errors.push(index, at, "must be a JSON object");
                None
            }
        }
    }

    /// [`NewEvent::from_json`] for an object already split into its members.
    pub fn from_json_object(
        object: &JsonObject<'_>,
        index: Option<usize>,
        path: &str,
        errors: &mut ValidationErrors,
    ) -> Option<NewEvent> {
        let field = |name: &str| super::field_path(path, name);
        let before = errors.errors().len();
        report_duplicates(object, index, &field, errors);
        let mut event = NewEvent::default();
        for (key, v) in object.iter() {
            let result = match key {
                "id" => fields::string(v).map(|s| event.id = s),
                "tenant_id" | "resource" | "feature" => match fields::string(v) {
                    Ok(Some(s)) => {
                        match key {
                            "tenant_id" => event.tenant_id = s,
                            "resource" => event.resource = s,
                            _ => event.feature = s,
                        }
                        Ok(())
                    }
                    // A required name given as null is as good as missing.
                    Ok(None) => Err("must be a string".to_owned()),
                    Err(e) => Err(e),
                },
                "quantity" => fields::quantity(v).map(|q| event.quantity = q),
                "timestamp" => fields::timestamp(v).map(|t| event.timestamp = t),
                "metadata" => fields::metadata(v).map(|m| event.metadata = m),
                // Read-only; sent back by clients that echo events.
                "created_at" => Ok(()),
                _ => Err("unknown field".to_owned()),
            };
            if let Err(message) = result {
                errors.push(index, field(key), message);
            }
        }
        for required in ["tenant_id", "resource", "feature"] {
            if !object.contains_key(required) {
                errors.push(index, field(required), "is required");
            }
        }
        (errors.errors().len() == before).then_some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Quantity;

    fn decode(text: &str) -> Result<NewEvent, Vec<String>> {
        let raw: &RawValue = serde_json::from_str(text).expect("JSON");
        let mut errors = ValidationErrors::new();
        NewEvent::from_json(raw, Some(0), "events[0]", &mut errors).ok_or_else(|| {
            errors
                .errors()
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect()
        })
    }

    #[test]
    fn reports_types_unknown_and_duplicate_fields() {
        let mut problems = decode(
            r#"{"tenant_id": 5, "resource": "r", "feature": "f", "quantiy": 2,
                "quantity": "x", "timestamp": "yesterday", "metadata": [],
                "resource": "again"}"#,
        )
        .expect_err("invalid");
        problems.sort();
        let fields: Vec<_> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            fields,
            [
                "events[0].metadata",
                "events[0].quantity",
                "events[0].quantiy",
                "events[0].resource",
                "events[0].tenant_id",
                "events[0].timestamp"
            ]
        );
    }

    #[test]
    fn quantities_are_read_from_their_text() {
        let q = |text: &str| {
            decode(&format!(
                r#"{{"tenant_id": "t", "resource": "r", "feature": "f", "quantity": {text}}}"#
            ))
            .map(|e| e.quantity)
        };
        assert_eq!(
            q("999999999999999.999999999")
                .expect("exact")
                .map(|q| q.to_string()),
            Some("999999999999999.999999999".to_owned())
        );
        assert!(q("0.1000000000000000055511151231257827").is_err());
        assert_eq!(
            q("\"12.5\"").expect("a string"),
            Some("12.5".parse().expect("valid"))
        );
        assert_eq!(
            q("2.5e3").expect("an exponent"),
            Some(Quantity::from_units(2500))
        );
        assert_eq!(q("null").expect("null"), None);
        assert!(q("true").is_err());
    }

    #[test]
    fn naive_timestamps_mean_utc() {
        let e = decode(
            r#"{"tenant_id": "t", "resource": "r", "feature": "f",
                "timestamp": "2026-12-02T07:45:00.123456", "metadata": null}"#,
        )
        .expect("valid");
        assert_eq!(
            e.timestamp.map(crate::time::format_rfc3339).as_deref(),
            Some("2026-12-02T07:45:00.123456Z")
        );
    }
}
