//! The JSON form of an event, as the REST contract's `POST /v1/meter/events` takes it and as
//! the spill queue stores it.

use chrono::{DateTime, Utc};
use metering_core::{Metadata, NewEvent, Quantity};
use serde::Serialize;
use uuid::Uuid;

#[cfg(feature = "tower")]
use crate::middleware::MeteredRequest;

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

/// The body of a batch request: `{"events":[...]}`.
#[cfg(feature = "remote")]
pub(crate) fn encode_batch(events: &[Pending]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 256 + 16);
    out.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        event.write_json(&mut out);
    }
    out.extend_from_slice(b"]}");
    out
}

/// An event waiting for delivery, stamped with the id and timestamp it keeps through every
/// retry, spill and replay.
#[derive(Debug)]
pub(crate) enum Pending {
    /// An event as recorded.
    Event(NewEvent),
    /// A request metered by the layer, kept compact until it is encoded or converted.
    #[cfg(feature = "tower")]
    Request { id: Uuid, request: MeteredRequest },
}

impl Pending {
    /// Stamps `event` (see [`stamp`]).
    pub(crate) fn event(mut event: NewEvent, now: DateTime<Utc>) -> Self {
        stamp(&mut event, now);
        Pending::Event(event)
    }

    /// Gives a metered request its id (its timestamp is when its response was ready).
    #[cfg(feature = "tower")]
    pub(crate) fn request(request: MeteredRequest) -> Self {
        let millis = request
            .system_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        Pending::Request {
            id: uuid_v7(millis),
            request,
        }
    }

    /// The event, for sinks that take [`NewEvent`]s.
    pub(crate) fn to_event(&self) -> NewEvent {
        match self {
            Pending::Event(event) => event.clone(),
            #[cfg(feature = "tower")]
            Pending::Request { id, request } => {
                let mut event = request.clone().into_event();
                event.id = Some(id.hyphenated().to_string());
                event
            }
        }
    }

    /// Appends the event as a JSON object (the REST contract's event).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            // Strings, numbers and a JSON map always serialize.
            Pending::Event(event) => serde_json::to_writer(out, &WireEvent::from(event))
                .expect("an event serializes to JSON"),
            #[cfg(feature = "tower")]
            Pending::Request { id, request } => write_request(out, id, request),
        }
    }

    /// The event as a JSON string (for the spill queue and logs).
    pub(crate) fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

/// A metered request as the REST contract's event, written field by field: the hot path of
/// a metered service (hundreds of thousands per second), where building a [`NewEvent`] and
/// its metadata map first would cost more than the request itself.
#[cfg(feature = "tower")]
fn write_request(out: &mut Vec<u8>, id: &Uuid, request: &MeteredRequest) {
    out.extend_from_slice(b"{\"id\":\"");
    let mut uuid = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.extend_from_slice(id.hyphenated().encode_lower(&mut uuid).as_bytes());
    out.extend_from_slice(b"\",\"tenant_id\":");
    write_str(out, &[request.tenant()]);
    out.extend_from_slice(b",\"resource\":");
    write_str(out, &[request.resource()]);
    out.extend_from_slice(b",\"feature\":");
    write_str(out, &request.feature_parts());
    out.extend_from_slice(b",\"quantity\":");
    serde_json::to_writer(&mut *out, &request.quantity()).expect("a quantity serializes");
    out.extend_from_slice(b",\"timestamp\":\"");
    write_timestamp(out, request.timestamp());
    out.extend_from_slice(b"\",\"metadata\":{\"latency_ms\":");
    serde_json::to_writer(&mut *out, &request.latency_ms()).expect("a number serializes");
    out.extend_from_slice(b",\"method\":");
    write_str(out, &[request.method().as_str()]);
    out.extend_from_slice(b",\"route\":");
    write_str(out, &[request.route()]);
    out.extend_from_slice(b",\"status\":");
    serde_json::to_writer(&mut *out, &request.status().as_u16()).expect("a number serializes");
    out.extend_from_slice(b"}}");
}

/// Appends the concatenation of `parts` as a JSON string.
#[cfg(feature = "tower")]
fn write_str(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for part in parts {
        let bytes = part.as_bytes();
        if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
            // The usual case: nothing to escape.
            out.extend_from_slice(bytes);
            continue;
        }
        let mut clean = 0;
        for (i, &byte) in bytes.iter().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[clean..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
            } else {
                out.extend_from_slice(escape);
            }
            clean = i + 1;
        }
        out.extend_from_slice(&bytes[clean..]);
    }
    out.push(b'"');
}

/// Appends `at` as RFC 3339 UTC with microseconds (`2026-01-31T23:59:59.123456Z`), the
/// precision events are stored with.
#[cfg(feature = "tower")]
fn write_timestamp(out: &mut Vec<u8>, at: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let nanos = at.nanosecond();
    let utc = at.naive_utc();
    let year = u32::try_from(utc.year()).unwrap_or(u32::MAX);
    if year > 9999 || nanos >= 1_000_000_000 {
        // Outside four-digit years, or a leap second: the general formatter.
        out.extend_from_slice(metering_core::time::format_rfc3339(at).as_bytes());
        return;
    }
    let at = utc;
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in text[at..at + width].iter_mut().rev() {
            *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 6, nanos / 1000);
    out.extend_from_slice(&text);
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
fn uuid_v7(millis: u64) -> Uuid {
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// Gives `event` the id and timestamp it keeps through every retry, spill and replay, so a
/// resend is recognised as a duplicate and a late delivery still lands in the right window.
pub(crate) fn stamp(event: &mut NewEvent, now: DateTime<Utc>) {
    if event.id.is_none() {
        let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        event.id = Some(uuid_v7(millis).hyphenated().to_string());
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
        let json = Pending::Event(event.clone()).to_json();
        let back = decode(&json).expect("decodes");
        assert_eq!(back.id, event.id);
        assert_eq!(back.quantity, event.quantity);
        assert_eq!(back.metadata, event.metadata);
        assert_eq!(
            back.timestamp,
            event.timestamp.map(metering_core::time::truncate_micros)
        );
        let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
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
