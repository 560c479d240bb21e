//! [`MeteredRequest`]: what the layer hands a recorder for each metered request.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use compact_str::CompactString;
#[cfg(test)]
use metering_core::SystemClock;
use metering_core::{Metadata, NewEvent, Quantity};
use serde_json::Value;

use super::default_resource;

/// One request metered by [`MeteringLayer`](super::MeteringLayer), as it reaches
/// [`Recorder::record_request`](crate::Recorder::record_request).
///
/// It is the event in a compact form: the route is shared with the router (no copy), and the
/// default resource and feature are derived from it only when they are read. A recorder that
/// ships events can encode it directly; [`MeteredRequest::into_event`] gives the
/// [`NewEvent`] every other recorder takes.
#[derive(Debug, Clone)]
pub struct MeteredRequest {
    /// Held inline up to 24 bytes (most tenant ids): no allocation per request.
    pub(super) tenant: CompactString,
    pub(super) method: Method,
    pub(super) route: Route,
    /// Set by the layer's closures; boxed, so the usual request (default names) stays
    /// small enough to be moved without a `memcpy` call.
    pub(super) names: Option<Box<CustomNames>>,
    pub(super) quantity: Quantity,
    pub(super) status: StatusCode,
    /// When the response head was ready; until then, when the request reached the layer.
    pub(super) at: SystemTime,
    pub(super) latency_ms: u64,
}

/// The names computed by the layer's closures.
#[derive(Debug, Clone, Default)]
pub(super) struct CustomNames {
    /// Set by [`MeteringLayer::resource_from`](super::MeteringLayer::resource_from).
    pub(super) resource: Option<String>,
    /// Set by [`MeteringLayer::feature_from`](super::MeteringLayer::feature_from).
    pub(super) feature: Option<String>,
}

/// The route of a request: the template axum matched (shared, cheap to clone), or the path.
#[derive(Debug, Clone)]
pub(super) enum Route {
    Matched(MatchedPath),
    Path(String),
}

impl Route {
    fn as_str(&self) -> &str {
        match self {
            Route::Matched(matched) => matched.as_str(),
            Route::Path(path) => path,
        }
    }
}

impl MeteredRequest {
    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> &str {
        self.tenant.as_str()
    }

    /// The resource: as computed by the layer's closure, or the default (the first route
    /// segment that is neither a version prefix nor a parameter).
    #[must_use]
    pub fn resource(&self) -> &str {
        self.names
            .as_ref()
            .and_then(|names| names.resource.as_deref())
            .unwrap_or_else(|| default_resource(self.route()))
    }

    /// The feature: as computed by the layer's closure, or `"{method} {route}"`.
    #[must_use]
    pub fn feature(&self) -> Cow<'_, str> {
        match self.custom_feature() {
            Some(feature) => Cow::Borrowed(feature),
            None => Cow::Owned(format!("{} {}", self.method, self.route())),
        }
    }

    /// The parts the feature is written from: the closure's feature, or method and route
    /// (joined by a space), so an encoder can write it without building the string.
    pub(crate) fn feature_parts(&self) -> [&str; 3] {
        match self.custom_feature() {
            Some(feature) => [feature, "", ""],
            None => [self.method.as_str(), " ", self.route()],
        }
    }

    fn custom_feature(&self) -> Option<&str> {
        self.names
            .as_ref()
            .and_then(|names| names.feature.as_deref())
    }

    /// The names the layer's closures set, to set them.
    pub(super) fn names_mut(&mut self) -> &mut CustomNames {
        self.names.get_or_insert_with(Box::default)
    }

    /// Whether the resource and feature are the defaults derived from the route.
    pub(crate) fn has_default_names(&self) -> bool {
        self.names
            .as_ref()
            .is_none_or(|names| names.resource.is_none() && names.feature.is_none())
    }

    /// The request method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The matched route template (`/v1/items/{id}`), or the URI path when none matched.
    #[must_use]
    pub fn route(&self) -> &str {
        self.route.as_str()
    }

    /// The quantity metered.
    #[must_use]
    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    /// The response status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// When the response head was ready: the event's timestamp.
    #[must_use]
    pub fn timestamp(&self) -> DateTime<Utc> {
        DateTime::from(self.at)
    }

    pub(crate) fn system_time(&self) -> SystemTime {
        self.at
    }

    /// Milliseconds from the request reaching the layer to the response head.
    #[must_use]
    pub fn latency_ms(&self) -> u64 {
        self.latency_ms
    }

    /// Records the response: its status, the time it was ready, and the latency since the
    /// request reached the layer (the time it was made with).
    pub(super) fn complete(&mut self, status: StatusCode, now: SystemTime) {
        self.status = status;
        self.latency_ms = now
            .duration_since(self.at)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.at = now;
    }

    /// What is known before the response: `method` and `route`.
    pub(super) fn head_metadata(&self) -> Metadata {
        let mut metadata = Metadata::new();
        metadata.insert(
            "method".into(),
            Value::String(self.method.as_str().to_owned()),
        );
        metadata.insert("route".into(), Value::String(self.route().to_owned()));
        metadata
    }

    /// The metadata of the event: `method`, `route`, `status` and `latency_ms`.
    #[must_use]
    pub fn metadata(&self) -> Metadata {
        let mut metadata = self.head_metadata();
        metadata.insert("status".into(), Value::from(self.status.as_u16()));
        metadata.insert("latency_ms".into(), Value::from(self.latency_ms));
        metadata
    }

    /// The event this request is metered as.
    #[must_use]
    pub fn into_event(self) -> NewEvent {
        let metadata = self.metadata();
        let resource = self.resource().to_owned();
        let feature = self.feature().into_owned();
        let timestamp = self.timestamp();
        NewEvent::new(self.tenant, resource, feature)
            .with_quantity(self.quantity)
            .with_timestamp(timestamp)
            .with_metadata(metadata)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{self, Pending};

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
        let decoded = wire::decode(&json).expect("decodes as an event");
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
        let body = wire::encode_batch(&pending);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
        let events = value["events"].as_array().expect("a batch");
        assert_eq!(events.len(), pending.len());
        for (event, pending) in events.iter().zip(&pending) {
            let decoded = wire::decode(&event.to_string()).expect("decodes as an event");
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
