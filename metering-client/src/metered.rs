//! [`MeteredRequest`]: what the layer hands a recorder for each metered request.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::extract::MatchedPath;
use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use compact_str::CompactString;
use metering_core::{Metadata, NewEvent, Quantity};
use serde_json::Value;

/// One request metered by [`MeteringLayer`](crate::middleware::MeteringLayer), as it reaches
/// [`Recorder::record_request`](crate::Recorder::record_request).
///
/// It is the event in a compact form: the route is shared with the router (no copy), and the
/// default resource and feature are derived from it only when they are read. A recorder that
/// ships events can encode it directly; [`MeteredRequest::into_event`] gives the
/// [`NewEvent`] every other recorder takes.
#[derive(Debug, Clone)]
pub struct MeteredRequest {
    /// Held inline up to 24 bytes (most tenant ids): no allocation per request.
    pub(crate) tenant: CompactString,
    pub(crate) method: Method,
    pub(crate) route: Route,
    /// Set by the layer's closures; boxed, so the usual request (default names) stays
    /// small enough to be moved without a `memcpy` call.
    pub(crate) names: Option<Box<CustomNames>>,
    pub(crate) quantity: Quantity,
    pub(crate) status: StatusCode,
    /// When the response head was ready; until then, when the request reached the layer.
    pub(crate) at: SystemTime,
    pub(crate) latency_ms: u64,
}

/// The names computed by the layer's closures.
#[derive(Debug, Clone, Default)]
pub(crate) struct CustomNames {
    /// Set by [`MeteringLayer::resource_from`](crate::middleware::MeteringLayer::resource_from).
    pub(crate) resource: Option<String>,
    /// Set by [`MeteringLayer::feature_from`](crate::middleware::MeteringLayer::feature_from).
    pub(crate) feature: Option<String>,
}

/// The route of a request: the template axum matched (shared, cheap to clone), or the path.
#[derive(Debug, Clone)]
pub(crate) enum Route {
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
    pub(crate) fn names_mut(&mut self) -> &mut CustomNames {
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
    pub(crate) fn complete(&mut self, status: StatusCode, now: SystemTime) {
        self.status = status;
        self.latency_ms = now
            .duration_since(self.at)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.at = now;
    }

    /// What is known before the response: `method` and `route`.
    pub(crate) fn head_metadata(&self) -> Metadata {
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

/// The default resource: the first route segment that is neither a version prefix nor a
/// parameter.
pub(crate) fn default_resource(route: &str) -> &str {
    route
        .split('/')
        .find(|segment| {
            !segment.is_empty()
                && !segment.starts_with('{')
                && !segment.starts_with(':')
                && !is_version(segment)
        })
        .unwrap_or("root")
}

fn is_version(segment: &str) -> bool {
    segment.len() > 1
        && segment.starts_with('v')
        && segment[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_skip_versions_and_parameters() {
        assert_eq!(default_resource("/v1/items/{id}"), "items");
        assert_eq!(default_resource("/items"), "items");
        assert_eq!(default_resource("/{tenant}/reports"), "reports");
        assert_eq!(default_resource("/"), "root");
        assert_eq!(default_resource("/v2"), "root");
        assert_eq!(default_resource("/video/x"), "video");
    }
}
