//! [`MeteringLayer`]: meter every request of an axum (or any tower) service, and optionally
//! refuse requests over quota before the handler runs.
//!
//! Per request the layer records one event:
//!
//! - **tenant**: the `X-Tenant-ID` header by default ([`MeteringLayer::tenant_header`] picks
//!   another, [`MeteringLayer::tenant_from`] takes a closure, e.g. over an authenticated
//!   user in the request extensions). Requests with no tenant (or an invalid one) are
//!   passed through **unmetered** and unchecked: metering never breaks the application.
//! - **resource** and **feature**: from the route template axum matched
//!   ([`axum::extract::MatchedPath`]) and the method. `GET /v1/items/{id}` has feature
//!   `"GET /v1/items/{id}"` and resource `"items"`: the first segment that is neither a
//!   version prefix (`v1`, `v2`, ...) nor a parameter; `"root"` when there is none. Outside
//!   axum, or for requests no route matched, the URI path stands in for the template (set
//!   closures with [`MeteringLayer::resource_from`] and [`MeteringLayer::feature_from`] to
//!   avoid one feature per distinct path).
//! - **quantity**: 1, or [`MeteringLayer::quantity`].
//! - **metadata**: `method`, `route`, `status` and `latency_ms` (until the response head).
//!
//! The request goes, as a [`MeteredRequest`], to the process-wide [`recorder()`](crate::recorder()) unless
//! [`MeteringLayer::recorder`] names one. Excluded paths ([`MeteringLayer::exclude_path`],
//! [`MeteringLayer::exclude_prefix`]) are never metered: health checks, metrics.
//!
//! With [`MeteringLayer::enforce`], the quota is checked (or consumed) before the handler
//! runs; a refused request gets `429 Too Many Requests` with the [`QuotaDecision`](metering_core::QuotaDecision) as JSON
//! and `Retry-After` set to the seconds until `reset_at`. When the checker itself fails the
//! request goes through (fail open, logged) unless [`MeteringLayer::fail_closed`] asks for
//! `503`.
//!
//! Add the layer with `Router::layer` (not `route_layer` only) so it sees every route and
//! the matched template:
//!
//! ```
//! use axum::{Router, routing::get};
//! use metering_client::middleware::MeteringLayer;
//!
//! let app: Router = Router::new()
//!     .route("/v1/items/{id}", get(|| async { "item" }))
//!     .route("/health", get(|| async { "ok" }))
//!     .layer(MeteringLayer::new().exclude_path("/health"));
//! ```

mod enforce;
mod service;

use std::fmt;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderName, StatusCode};
use metering_core::Quantity;

use crate::recorder::Recorder;

pub use crate::metered::MeteredRequest;
pub use enforce::{Enforcement, QuotaChecker};
pub use service::{MeteringFuture, MeteringService};

/// What a closure sees of a request: its head and the route (the matched template, or the
/// path when none matched).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestInfo<'a> {
    /// Method, URI, headers and extensions.
    pub parts: &'a Parts,
    /// The matched route template (`/v1/items/{id}`), or the URI path.
    pub route: &'a str,
}

type TenantFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;
type NameFn = dyn Fn(&RequestInfo<'_>) -> String + Send + Sync;

/// Which responses are metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecordOn {
    /// Every response, whatever its status (the status is in the metadata).
    #[default]
    Always,
    /// Only responses with a status below 400.
    Success,
}

impl RecordOn {
    fn admits(self, status: StatusCode) -> bool {
        match self {
            RecordOn::Always => true,
            RecordOn::Success => status.as_u16() < 400,
        }
    }
}

#[derive(Clone)]
pub(crate) enum TenantSource {
    Header(HeaderName),
    Closure(Arc<TenantFn>),
}

/// Everything the layer was told; shared by every clone of the service.
#[derive(Clone)]
pub(crate) struct Settings {
    recorder: Option<Arc<dyn Recorder>>,
    tenant: TenantSource,
    resource: Option<Arc<NameFn>>,
    feature: Option<Arc<NameFn>>,
    quantity: Quantity,
    excluded_paths: Vec<String>,
    excluded_prefixes: Vec<String>,
    record_on: RecordOn,
    enforcement: Option<(Arc<dyn QuotaChecker>, Enforcement)>,
    fail_closed: bool,
}

/// The tower layer; see the [module docs](self).
#[derive(Clone)]
#[must_use]
pub struct MeteringLayer {
    settings: Arc<Settings>,
}

impl fmt::Debug for MeteringLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("MeteringLayer")
            .field(
                "tenant",
                &match &s.tenant {
                    TenantSource::Header(h) => h.as_str(),
                    TenantSource::Closure(_) => "<closure>",
                },
            )
            .field("quantity", &s.quantity)
            .field("excluded_paths", &s.excluded_paths)
            .field("excluded_prefixes", &s.excluded_prefixes)
            .field("record_on", &s.record_on)
            .field("enforcement", &s.enforcement.as_ref().map(|(_, e)| *e))
            .field("fail_closed", &s.fail_closed)
            .finish_non_exhaustive()
    }
}

impl Default for MeteringLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MeteringLayer {
    /// A layer with the defaults: tenant from `X-Tenant-ID`, resource and feature from the
    /// matched route, quantity 1, every response metered, no enforcement, events to the
    /// process-wide recorder.
    pub fn new() -> Self {
        MeteringLayer {
            settings: Arc::new(Settings {
                recorder: None,
                tenant: TenantSource::Header(HeaderName::from_static("x-tenant-id")),
                resource: None,
                feature: None,
                quantity: Quantity::ONE,
                excluded_paths: Vec::new(),
                excluded_prefixes: Vec::new(),
                record_on: RecordOn::Always,
                enforcement: None,
                fail_closed: false,
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        // Copy-on-write: configuring a clone never changes services already built.
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Sends events to `recorder` instead of the process-wide one.
    pub fn recorder(self, recorder: impl Recorder) -> Self {
        self.edit(|s| s.recorder = Some(Arc::new(recorder)))
    }

    /// Reads the tenant from the header `name`.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name.
    pub fn tenant_header(self, name: &str) -> Self {
        let header = HeaderName::try_from(name).expect("a valid header name");
        self.edit(|s| s.tenant = TenantSource::Header(header))
    }

    /// Computes the tenant from the request head; `None` passes the request through
    /// unmetered.
    pub fn tenant_from(
        self,
        tenant: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.tenant = TenantSource::Closure(Arc::new(tenant)))
    }

    /// Computes the resource.
    pub fn resource_from(
        self,
        resource: impl Fn(&RequestInfo<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.resource = Some(Arc::new(resource)))
    }

    /// Computes the feature.
    pub fn feature_from(
        self,
        feature: impl Fn(&RequestInfo<'_>) -> String + Send + Sync + 'static,
    ) -> Self {
        self.edit(|s| s.feature = Some(Arc::new(feature)))
    }

    /// Meters `quantity` per request (default 1).
    pub fn quantity(self, quantity: Quantity) -> Self {
        self.edit(|s| s.quantity = quantity)
    }

    /// Never meters requests to exactly `path`.
    pub fn exclude_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.edit(|s| s.excluded_paths.push(path))
    }

    /// Never meters requests whose path starts with `prefix`.
    pub fn exclude_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.edit(|s| s.excluded_prefixes.push(prefix))
    }

    /// Which responses are metered (default all).
    pub fn record_on(self, record_on: RecordOn) -> Self {
        self.edit(|s| s.record_on = record_on)
    }

    /// Checks the quota before the handler runs; see [`Enforcement`].
    pub fn enforce(self, checker: impl QuotaChecker, mode: Enforcement) -> Self {
        self.edit(|s| s.enforcement = Some((Arc::new(checker), mode)))
    }

    /// Answers `503` when the quota checker fails, instead of letting the request through.
    pub fn fail_closed(self) -> Self {
        self.edit(|s| s.fail_closed = true)
    }
}

impl<S> tower::Layer<S> for MeteringLayer {
    type Service = MeteringService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MeteringService::new(inner, Arc::clone(&self.settings))
    }
}
