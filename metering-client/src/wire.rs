//! The JSON form of an event, as the REST contract's `POST /v1/meter/events` takes it and as
//! the spill queue stores it.

use chrono::{DateTime, Utc};
use metering_core::{Metadata, NewEvent, Quantity};
use serde::Serialize;
use uuid::Uuid;

#[cfg(feature = "tower")]
use crate::metered::MeteredRequest;

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
    let mut encoder = Encoder::default();
    out.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        event.write_with(&mut out, &mut encoder);
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
        self.write_with(out, &mut Encoder::default());
    }

    /// [`Pending::write_json`], reusing what `encoder` wrote for earlier events of the batch.
    #[cfg_attr(not(feature = "tower"), allow(unused_variables))]
    fn write_with(&self, out: &mut Vec<u8>, encoder: &mut Encoder) {
        match self {
            // Strings, numbers and a JSON map always serialize.
            Pending::Event(event) => serde_json::to_writer(out, &WireEvent::from(event))
                .expect("an event serializes to JSON"),
            #[cfg(feature = "tower")]
            Pending::Request { id, request } => encoder.write_request(out, id, request),
        }
    }

    /// The event as a JSON string (for the spill queue and logs).
    pub(crate) fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        String::from_utf8(out).expect("JSON is UTF-8")
    }
}

/// What an encoder remembers from the events of a batch it wrote: metered requests are
/// mostly of a few routes and a few seconds, and writing their names and dates again for
/// every event would cost more than the rest of the event.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// A second since the Unix epoch and its `2026-01-31T23:59:59.` text.
    #[cfg(feature = "tower")]
    second: Option<(u64, [u8; 20])>,
    /// The method and route of the last request with the default resource and feature, and
    /// the end of its event (method and route, then resource and feature).
    #[cfg(feature = "tower")]
    route: Option<(axum::http::Method, String, Vec<u8>)>,
}

#[cfg(feature = "tower")]
impl Encoder {
    /// A metered request as the REST contract's event, written field by field: the hot path
    /// of a metered service (hundreds of thousands per second), where building a
    /// [`NewEvent`] and its metadata map first would cost more than the request itself. A
    /// quantity of 1, the contract's default, is left out.
    fn write_request(&mut self, out: &mut Vec<u8>, id: &Uuid, request: &MeteredRequest) {
        out.extend_from_slice(b"{\"id\":\"");
        let mut uuid = [0u8; uuid::fmt::Hyphenated::LENGTH];
        out.extend_from_slice(id.hyphenated().encode_lower(&mut uuid).as_bytes());
        out.extend_from_slice(b"\",\"tenant_id\":");
        write_str(out, &[request.tenant()]);
        if request.quantity() != Quantity::ONE {
            out.extend_from_slice(b",\"quantity\":");
            serde_json::to_writer(&mut *out, &request.quantity()).expect("a quantity serializes");
        }
        out.extend_from_slice(b",\"timestamp\":\"");
        self.write_timestamp(out, request.system_time());
        out.extend_from_slice(b"\",\"metadata\":{\"latency_ms\":");
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(number.format(request.latency_ms()).as_bytes());
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(number.format(request.status().as_u16()).as_bytes());
        out.push(b',');
        if !request.has_default_names() {
            write_route_end(out, request);
            return;
        }
        match &self.route {
            Some((method, route, end))
                if method == request.method() && route == request.route() =>
            {
                out.extend_from_slice(end);
            }
            _ => {
                let mut end = Vec::with_capacity(128);
                write_route_end(&mut end, request);
                out.extend_from_slice(&end);
                self.route = Some((request.method().clone(), request.route().to_owned(), end));
            }
        }
    }

    /// Appends `at` as RFC 3339 UTC with microseconds (`2026-01-31T23:59:59.123456Z`), the
    /// precision events are stored with; the calendar arithmetic runs once per second.
    fn write_timestamp(&mut self, out: &mut Vec<u8>, at: std::time::SystemTime) {
        let general = |out: &mut Vec<u8>| {
            let at: DateTime<Utc> = at.into();
            out.extend_from_slice(metering_core::time::format_rfc3339(at).as_bytes());
        };
        let Ok(since_epoch) = at.duration_since(std::time::UNIX_EPOCH) else {
            // Before 1970.
            return general(out);
        };
        let second = since_epoch.as_secs();
        let prefix = match self.second {
            Some((last, prefix)) if last == second => prefix,
            _ => {
                let Some(prefix) = second_prefix(second) else {
                    // Past year 9999.
                    return general(out);
                };
                self.second = Some((second, prefix));
                prefix
            }
        };
        out.extend_from_slice(&prefix);
        let mut micros = *b"000000Z";
        put_digits(&mut micros[..6], since_epoch.subsec_micros());
        out.extend_from_slice(&micros);
    }
}

/// The end of a metered request's event, from the metadata's `method` on:
/// `"method":"GET","route":"/v1/items/{id}"},"resource":"items","feature":"GET /v1/items/{id}"}`.
#[cfg(feature = "tower")]
fn write_route_end(out: &mut Vec<u8>, request: &MeteredRequest) {
    out.extend_from_slice(b"\"method\":");
    write_str(out, &[request.method().as_str()]);
    out.extend_from_slice(b",\"route\":");
    write_str(out, &[request.route()]);
    out.extend_from_slice(b"},\"resource\":");
    write_str(out, &[request.resource()]);
    out.extend_from_slice(b",\"feature\":");
    write_str(out, &request.feature_parts());
    out.push(b'}');
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

/// `2026-01-31T23:59:59.` for a second since the Unix epoch; `None` past year 9999.
#[cfg(feature = "tower")]
fn second_prefix(second: u64) -> Option<[u8; 20]> {
    use chrono::{Datelike, Timelike};
    let at = DateTime::<Utc>::from_timestamp(i64::try_from(second).ok()?, 0)?.naive_utc();
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let mut text = *b"0000-00-00T00:00:00.";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], at.month());
    put_digits(&mut text[8..10], at.day());
    put_digits(&mut text[11..13], at.hour());
    put_digits(&mut text[14..16], at.minute());
    put_digits(&mut text[17..19], at.second());
    Some(text)
}

/// Writes the last `slots.len()` decimal digits of `value` into `slots`, zero-padded.
#[cfg(feature = "tower")]
fn put_digits(slots: &mut [u8], mut value: u32) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
}

#[cfg(any(feature = "spill", test))]
/// Reads back what [`encode`] wrote; `None` (logged by the caller) for a corrupt row.
pub(crate) fn decode(json: &str) -> Option<NewEvent> {
    let raw: &serde_json::value::RawValue = serde_json::from_str(json).ok()?;
    let mut errors = metering_core::ValidationErrors::new();
    NewEvent::from_json(raw, None, "", &mut errors)
}

/// The 74 bits of a UUIDv7 after its millisecond timestamp (`rand_a` and `rand_b`).
const V7_RANDOM_BITS: u32 = 74;

thread_local! {
    /// This thread's last millisecond and the random part of the id it made in it.
    static LAST_V7: std::cell::Cell<(u64, u128)> = const { std::cell::Cell::new((u64::MAX, 0)) };
}

/// A UUIDv7 for the millisecond `millis`, with "monotonic random" bits (RFC 9562, section
/// 6.2, method 2): the first id a thread makes in a millisecond gets 73 random bits (the
/// top one clear, so incrementing cannot overflow), the next ones the previous value plus
/// one. One random draw per thread and millisecond instead of one per event; ids of
/// different threads and processes collide only if two random starts fall within a few
/// thousand of each other among 2^73.
fn uuid_v7(millis: u64) -> Uuid {
    let fresh = || rand::random::<u128>() >> (128 - (V7_RANDOM_BITS - 1));
    let random = LAST_V7
        .try_with(|last| {
            let (last_millis, last_random) = last.get();
            let random = if last_millis == millis {
                last_random + 1
            } else {
                fresh()
            };
            last.set((millis, random));
            random
        })
        // The thread is exiting: a fresh start.
        .unwrap_or_else(|_| fresh());
    let rand_a = (random >> 62) & 0xfff;
    let rand_b = random & ((1 << 62) - 1);
    Uuid::from_u128(
        (u128::from(millis & 0xffff_ffff_ffff) << 80)
            | (0x7 << 76)
            | (rand_a << 64)
            | (0b10 << 62)
            | rand_b,
    )
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
    fn ids_are_v7_and_increase_within_a_millisecond() {
        let millis = 1_790_000_000_123;
        let ids: Vec<Uuid> = (0..1000).map(|_| uuid_v7(millis)).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (seconds, nanos) = id.get_timestamp().expect("a v7 timestamp").to_unix();
            assert_eq!(seconds * 1000 + u64::from(nanos / 1_000_000), millis);
        }
        // A new millisecond starts from fresh random bits.
        let next = uuid_v7(millis + 1);
        let again = uuid_v7(millis + 2);
        assert_ne!(next.as_u128() & ((1 << 74) - 1), 0);
        assert!(next < again);
        // Another thread starts from its own random bits.
        let other = std::thread::spawn(move || uuid_v7(millis))
            .join()
            .expect("the thread runs");
        assert!(!ids.contains(&other));
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

#[cfg(all(test, feature = "tower"))]
mod metered_request_tests {
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    use axum::http::{Method, StatusCode};
    use metering_core::SystemClock;

    use super::*;
    use crate::metered::{MeteredRequest, Route};

    fn request(tenant: &str, method: &str, path: &str) -> MeteredRequest {
        MeteredRequest {
            tenant: tenant.into(),
            method: Method::from_bytes(method.as_bytes()).expect("a method"),
            route: Route::Path(path.to_owned()),
            names: None,
            quantity: Quantity::ONE,
            status: StatusCode::CREATED,
            at: SystemClock::system_time(),
            latency_ms: 12,
        }
    }

    /// What the sink reads back from the compact encoding is the event `into_event` builds.
    fn assert_encodes_as_event(request: MeteredRequest, at: DateTime<Utc>) {
        let mut request = request;
        request.at = at.into();
        let pending = Pending::request(request.clone());
        let json = pending.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let decoded = super::decode(&json).expect("decodes as an event");
        let expected = pending.to_event();
        assert_eq!(decoded.tenant_id, request.tenant(), "{json}");
        assert_eq!(decoded.resource, expected.resource, "{json}");
        assert_eq!(decoded.feature, expected.feature, "{json}");
        // A quantity of 1, the contract's default, is left out.
        assert_eq!(
            decoded.quantity.unwrap_or(Quantity::ONE),
            request.quantity(),
            "{json}"
        );
        assert_eq!(
            value.get("quantity").is_none(),
            request.quantity() == Quantity::ONE,
            "{json}"
        );
        assert_eq!(decoded.metadata, expected.metadata, "{json}");
        assert_eq!(decoded.id, expected.id, "{json}");
        assert_eq!(
            decoded.timestamp,
            expected.timestamp.map(metering_core::time::truncate_micros),
            "{json}"
        );
        // The general encoder writes the same object.
        let general: serde_json::Value =
            serde_json::from_str(&Pending::Event(expected).to_json()).expect("valid JSON");
        assert_eq!(
            DateTime::parse_from_rfc3339(value["timestamp"].as_str().expect("a string")).ok(),
            DateTime::parse_from_rfc3339(general["timestamp"].as_str().expect("a string")).ok()
        );
        let strip = |mut v: serde_json::Value| {
            let object = v.as_object_mut().expect("an object");
            object.remove("timestamp");
            if object.get("quantity") == Some(&serde_json::json!(1)) {
                object.remove("quantity");
            }
            v
        };
        assert_eq!(strip(value), strip(general));
    }

    #[test]
    fn compact_encoding_matches_the_event() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 9, 7, 5, 3)
            .single()
            .expect("a time")
            + chrono::Duration::microseconds(4_021);
        assert_encodes_as_event(request("org_1", "GET", "/v1/items/{id}"), at);
        let mut custom = request("org \"quoted\" \\ \u{1} é", "PATCH", "/a\tb\n/ü");
        custom.names_mut().resource = Some("res\u{7f}\u{1f}".into());
        custom.names_mut().feature = Some("feat\r\"x\"".into());
        custom.quantity = "2.5".parse().expect("a quantity");
        assert_encodes_as_event(custom, at);
        assert_encodes_as_event(request("t", "GET", "/"), Utc.timestamp_opt(0, 0).unwrap());
    }

    #[test]
    fn default_names_come_from_the_route() {
        let mut r = request("org_1", "GET", "/v1/items/{id}");
        assert_eq!(r.resource(), "items");
        assert_eq!(r.feature(), "GET /v1/items/{id}");
        assert_eq!(r.feature_parts().concat(), "GET /v1/items/{id}");
        r.names_mut().feature = Some("custom".into());
        assert_eq!(r.feature(), "custom");
        assert_eq!(r.feature_parts().concat(), "custom");
    }

    /// In a batch, events of the same second share the date and time written for the first
    /// of them, and events of the same method and route the names written for the first:
    /// each still reads back as its own event, across seconds, days, routes and custom names.
    #[cfg(feature = "remote")]
    #[test]
    fn a_batch_writes_every_event_exactly() {
        let start = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 58)
            .single()
            .expect("a time");
        let steps = [
            0, 1, 999_999, 1_000_000, 1_000_001, 1_500_000, 2_000_000, 2_000_001, 61_000_000,
        ];
        let mut pending = Vec::new();
        for (i, micros) in steps.into_iter().enumerate() {
            let (method, route) = [
                ("GET", "/v1/items/{id}"),
                ("GET", "/v1/items/{id}"),
                ("POST", "/v1/items/{id}"),
                ("GET", "/v1/orders"),
            ][i % 4];
            let mut r = request(&format!("org_{}", i % 2), method, route);
            r.at = (start + chrono::Duration::microseconds(micros)).into();
            r.latency_ms = i as u64;
            if i % 3 == 1 {
                r.quantity = "0.25".parse().expect("a quantity");
            }
            if i == 5 {
                r.names_mut().feature = Some("custom".into());
            }
            pending.push(Pending::request(r));
        }
        let body = super::encode_batch(&pending);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let events = value["events"].as_array().expect("a batch");
        assert_eq!(events.len(), pending.len());
        for (event, pending) in events.iter().zip(&pending) {
            let decoded = super::decode(&event.to_string()).expect("decodes as an event");
            let expected = pending.to_event();
            assert_eq!(decoded.id, expected.id, "{event}");
            assert_eq!(decoded.tenant_id, expected.tenant_id, "{event}");
            assert_eq!(decoded.resource, expected.resource, "{event}");
            assert_eq!(decoded.feature, expected.feature, "{event}");
            assert_eq!(decoded.metadata, expected.metadata, "{event}");
            assert_eq!(decoded.timestamp, expected.timestamp, "{event}");
            assert_eq!(
                decoded.quantity.unwrap_or(Quantity::ONE),
                expected.quantity.unwrap_or(Quantity::ONE),
                "{event}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_strings_and_instants_encode_exactly(
            tenant in "\\PC{1,20}|[\\x00-\\x7f]{1,20}",
            route in "/[\\x00-\\x7f]{0,30}|/\\PC{0,10}",
            micros in 0i64..253_402_300_799_999_999,
            status in 100u16..600,
            latency_ms in any::<u64>(),
        ) {
            let mut r = request(&tenant, "POST", &route);
            r.status = StatusCode::from_u16(status).expect("a status");
            r.latency_ms = latency_ms;
            let at = DateTime::from_timestamp_micros(micros).expect("in range");
            assert_encodes_as_event(r, at);
        }
    }
}
