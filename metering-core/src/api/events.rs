//! The bodies of `POST /v1/meter/events` (and `/events/batch`) and `GET /v1/meter/events`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::IngestReceipt;
use crate::error::{Error, ValidationErrors};
use crate::event::{Event, EventId, EventRules, NewEvent, validate_batch};
use crate::json::{self, JsonObject};

/// `201` of `POST /v1/meter/events` (and `/events/batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = IngestReceipt))]
pub struct IngestResponse {
    /// Always `"success"`.
    #[cfg_attr(feature = "openapi", schema(example = "success"))]
    pub status: String,
    /// Events newly written.
    pub events_processed: usize,
    /// Events whose id was already stored.
    pub duplicates: usize,
    /// The id of every event, in request order.
    pub event_ids: Vec<EventId>,
}

impl From<IngestReceipt> for IngestResponse {
    fn from(receipt: IngestReceipt) -> Self {
        IngestResponse {
            status: "success".to_owned(),
            events_processed: receipt.events_processed,
            duplicates: receipt.duplicates,
            event_ids: receipt.event_ids,
        }
    }
}

/// `200` of `GET /v1/meter/events/{id}/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventHistory {
    /// The correction chain, oldest first: the event an amend replaced comes before its
    /// replacement.
    pub events: Vec<Event>,
}

/// Body of `POST /v1/meter/events/{id}/void` (optional; an empty body is no reason). Only a
/// schema: [`crate::void_reason`] reads the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = VoidRequest))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
pub struct VoidBody {
    /// Why, kept with the voided event: at most 1000 characters, no control characters but
    /// line breaks and tabs.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::Reason>))]
    pub reason: Option<String>,
}

/// Body of `POST /v1/meter/events/{id}/amend`: the fields to correct, every other one is
/// copied from the original. Only a schema: [`crate::Amendment::from_json`] reads the body.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AmendRequest))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
pub struct AmendBody {
    /// The corrected quantity; the same rules as an event's.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::quantity::DecimalInput>))]
    pub quantity: Option<String>,
    /// The corrected timestamp (RFC 3339; without an offset it means UTC).
    #[cfg_attr(feature = "openapi", schema(format = DateTime, example = "2025-11-20T10:31:00Z"))]
    pub timestamp: Option<String>,
    /// The corrected metadata, replacing the original's whole.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// The replacement's id (1 to 128 printable ASCII characters); a UUIDv7 is made when
    /// absent. Send one to make retries safe: a retry with the same id returns the
    /// replacement already recorded (200).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::event::EventId>))]
    pub id: Option<String>,
    /// Why, kept with the voided original: at most 1000 characters, no control characters
    /// but line breaks and tabs.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::Reason>))]
    pub reason: Option<String>,
}

/// `200` of `GET /v1/meter/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventPage))]
pub struct EventList {
    /// The page's events, newest first.
    pub events: Vec<Event>,
    /// Where the page is.
    pub pagination: Pagination,
    /// Where the next page starts, when this one was full: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

/// Where a page of events is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pagination {
    /// The page number (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The page size.
    pub page_size: u32,
    /// Matching events in all (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Pages in all (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
}

/// Decodes and validates an event body, reporting every problem of every event at once.
///
/// A single event reports fields by name (`quantity`); a batch by path and index
/// (`events[3].quantity`).
///
/// # Errors
///
/// [`Error::TooLarge`] for a batch over `rules.max_batch_events` (checked before decoding),
/// [`Error::Validation`] listing each problem.
pub fn decode_events(
    body: Option<&JsonObject<'_>>,
    rules: &EventRules,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Error> {
    let Some(map) = body else {
        return Err(Error::invalid(
            "body",
            "must be an event object or {\"events\": [...]}",
        ));
    };
    if !map.contains_key("events") {
        let mut errors = ValidationErrors::new();
        let event = NewEvent::from_json_object(map, None, "", &mut errors)
            .and_then(|new| new.validate(rules, now, None, "", &mut errors));
        return match event {
            Some(event) if errors.is_empty() => Ok(vec![event]),
            _ => Err(Error::Validation(errors)),
        };
    }
    let mut errors = ValidationErrors::new();
    for (key, _) in map.iter().filter(|(k, _)| *k != "events") {
        errors.push(
            None,
            key.to_owned(),
            "unknown field (a batch holds only `events`)",
        );
    }
    for key in map.duplicate_keys() {
        errors.push(None, key.to_owned(), "appears more than once");
    }
    let Some(items) = map.get("events").and_then(json::array) else {
        errors.push(None, "events", "must be an array of event objects");
        return Err(Error::Validation(errors));
    };
    if items.len() > rules.max_batch_events {
        return Err(Error::TooLarge(format!(
            "a batch holds at most {} events, got {}",
            rules.max_batch_events,
            items.len()
        )));
    }
    let decoded: Vec<Option<NewEvent>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| NewEvent::from_json(item, Some(i), &format!("events[{i}]"), &mut errors))
        .collect();
    if errors.is_empty() {
        return validate_batch(decoded.into_iter().flatten().collect(), rules, now);
    }
    // Some events did not decode: still check the rules of those that did, so the client
    // sees every problem in one answer, in batch order.
    for (i, new) in decoded.into_iter().enumerate() {
        if let Some(new) = new {
            let _ = new.validate(rules, now, Some(i), &format!("events[{i}]"), &mut errors);
        }
    }
    let mut sorted: Vec<_> = errors.errors().to_vec();
    sorted.sort_by_key(|e| e.index);
    let mut ordered = ValidationErrors::new();
    for e in sorted {
        ordered.push(e.index, e.field, e.message);
    }
    Err(Error::Validation(ordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EventRules {
        EventRules::default().with_max_batch_events(3)
    }

    fn now() -> DateTime<Utc> {
        chrono::DateTime::UNIX_EPOCH + chrono::Duration::days(20_000)
    }

    fn decode(text: &str) -> Result<Vec<Event>, Error> {
        let object = JsonObject::parse(text).ok();
        decode_events(object.as_ref(), &rules(), now())
    }

    fn fields(result: Result<Vec<Event>, Error>) -> Vec<String> {
        match result {
            Err(Error::Validation(e)) => e.errors().iter().map(|e| e.field.clone()).collect(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    const ONE: &str = r#"{"tenant_id": "t", "resource": "r", "feature": "f"}"#;

    #[test]
    fn single_and_batch() {
        assert_eq!(decode(ONE).expect("one").len(), 1);
        let two = format!(r#"{{"events": [{ONE}, {ONE}]}}"#);
        assert_eq!(decode(&two).expect("two").len(), 2);
        assert_eq!(fields(decode("[1, 2]")), ["body"]);
    }

    #[test]
    fn every_problem_is_reported_in_order() {
        let body = r#"{"events": [
            {"tenant_id": "t", "resource": "r", "feature": "f", "quantity": 0},
            {"tenant_id": 1, "resource": "r", "feature": "f"}
        ]}"#;
        assert_eq!(
            fields(decode(body)),
            ["events[0].quantity", "events[1].tenant_id"]
        );
        let single = r#"{"tenant_id": "", "resource": "r", "feature": "f", "quantity": -1}"#;
        assert_eq!(fields(decode(single)), ["quantity"]);
        let twice = format!(r#"{{"events": [{ONE}], "events": []}}"#);
        assert_eq!(fields(decode(&twice)), ["events"]);
    }

    #[test]
    fn too_many_events_is_too_large() {
        let body = format!(r#"{{"events": [{ONE}, {ONE}, {ONE}, {ONE}]}}"#);
        assert!(matches!(decode(&body), Err(Error::TooLarge(_))));
    }
}
