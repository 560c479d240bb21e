//! The JSON form of an event, as the REST contract's `POST /v1/meter/events` takes it and as
//! the spill queue stores it.

use chrono::{DateTime, Utc};
use metering_core::{Metadata, NewEvent, Quantity};
use serde::Serialize;

/// Borrowed view of a [`NewEvent`] for serialization.
#[derive(Debug, Serialize)]
pub(crate) struct WireEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    tenant_id: &'a str,
    resource: &'a str,
    feature: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
}

impl<'a> From<&'a NewEvent> for WireEvent<'a> {
    fn from(event: &'a NewEvent) -> Self {
        WireEvent {
            id: event.id.as_deref(),
            tenant_id: &event.tenant_id,
            resource: &event.resource,
            feature: &event.feature,
            quantity: event.quantity,
            timestamp: event.timestamp.map(metering_core::time::format_rfc3339),
            metadata: event.metadata.as_ref(),
        }
    }
}

/// The body of a batch request.
#[cfg(feature = "remote")]
#[derive(Debug, Serialize)]
pub(crate) struct WireBatch<'a> {
    pub(crate) events: Vec<WireEvent<'a>>,
}

#[cfg(feature = "remote")]
impl<'a> WireBatch<'a> {
    pub(crate) fn of(events: &'a [NewEvent]) -> Self {
        WireBatch {
            events: events.iter().map(WireEvent::from).collect(),
        }
    }
}

/// One event as a JSON string (for the spill queue).
pub(crate) fn encode(event: &NewEvent) -> String {
    // Strings, numbers and a JSON map always serialize.
    serde_json::to_string(&WireEvent::from(event)).expect("an event serializes to JSON")
}

#[cfg(any(feature = "spill", test))]
/// Reads back what [`encode`] wrote; `None` (logged by the caller) for a corrupt row.
pub(crate) fn decode(json: &str) -> Option<NewEvent> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut errors = metering_core::ValidationErrors::new();
    NewEvent::from_json(&value, None, "", &mut errors)
}

/// A UUIDv7 for `now`, as `EventId::generate` makes, but with the random bits from the
/// thread-local generator: no system call on the hot path of recording.
fn uuid_v7(now: DateTime<Utc>) -> String {
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// Gives `event` the id and timestamp it keeps through every retry, spill and replay, so a
/// resend is recognised as a duplicate and a late delivery still lands in the right window.
pub(crate) fn stamp(event: &mut NewEvent, now: DateTime<Utc>) {
    if event.id.is_none() {
        event.id = Some(uuid_v7(now));
    }
    if event.timestamp.is_none() {
        event.timestamp = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_through_json() {
        let mut metadata = Metadata::new();
        metadata.insert("user".into(), json!("u_1"));
        let mut event = NewEvent::new("org", "billing", "invoice")
            .with_quantity("2.5".parse().expect("a quantity"))
            .with_metadata(metadata);
        stamp(
            &mut event,
            metering_core::Clock::now(&metering_core::SystemClock),
        );
        let back = decode(&encode(&event)).expect("decodes");
        assert_eq!(back.id, event.id);
        assert_eq!(back.quantity, event.quantity);
        assert_eq!(back.metadata, event.metadata);
        assert_eq!(
            back.timestamp,
            event.timestamp.map(metering_core::time::truncate_micros)
        );
        let json: serde_json::Value = serde_json::from_str(&encode(&event)).expect("JSON");
        assert_eq!(json["quantity"], json!(2.5));
        assert_eq!(json["tenant_id"], json!("org"));
    }

    #[test]
    fn stamping_keeps_what_is_set() {
        let mut event = NewEvent::new("org", "r", "f").with_id("mine");
        stamp(
            &mut event,
            metering_core::Clock::now(&metering_core::SystemClock),
        );
        assert_eq!(event.id.as_deref(), Some("mine"));
        assert!(event.timestamp.is_some());
        let mut fresh = NewEvent::new("org", "r", "f");
        stamp(
            &mut fresh,
            metering_core::Clock::now(&metering_core::SystemClock),
        );
        let id = fresh.id.expect("an id");
        let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 7);
        assert!(metering_core::EventId::new(id).is_ok());
    }
}
