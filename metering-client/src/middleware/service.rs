//! [`MeteringService`]: the service the layer wraps around the application.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::MatchedPath;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use metering_core::event::MAX_NAME_CHARS;
use metering_core::{
    Clock, Feature, Metadata, NewEvent, QuotaDecision, Resource, SystemClock, TenantId,
    ValidateRequest,
};
use serde_json::Value;
use tower::Service;

use super::{Enforcement, RequestInfo, Settings, TenantSource, default_resource};

/// Wraps a service, metering each request; made by
/// [`MeteringLayer`](super::MeteringLayer).
#[derive(Clone)]
pub struct MeteringService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> fmt::Debug for MeteringService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringService").finish_non_exhaustive()
    }
}

impl<S> MeteringService<S> {
    pub(super) fn new(inner: S, settings: Arc<Settings>) -> Self {
        MeteringService { inner, settings }
    }
}

/// The response future of [`MeteringService`].
pub type MeteringFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// What is known about a metered request before it runs. Plain strings: they move into
/// the event without another copy; the sink validates them (see [`plausible`]).
struct Metered {
    tenant: String,
    resource: String,
    feature: String,
    method: Method,
    route: String,
}

/// A quick check, without allocating, of the rules the sink applies to names (1 to 255
/// characters after trimming, no control characters), so a garbage tenant header is not
/// metered, and rejected and logged downstream, on every request.
fn plausible(name: &str) -> bool {
    let name = name.trim();
    !name.is_empty()
        && name.len() <= 4 * MAX_NAME_CHARS
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control)
}

impl Settings {
    fn excluded(&self, path: &str) -> bool {
        self.excluded_paths.iter().any(|p| p == path)
            || self
                .excluded_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    fn metered(&self, parts: &axum::http::request::Parts) -> Option<Metered> {
        let tenant = match &self.tenant {
            TenantSource::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| plausible(v))
                .map(str::to_owned),
            TenantSource::Closure(tenant) => tenant(parts).filter(|t| plausible(t)),
        }?;
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path(), MatchedPath::as_str);
        let info = RequestInfo { parts, route };
        let resource = match &self.resource {
            Some(f) => f(&info),
            None => default_resource(route),
        };
        let feature = match &self.feature {
            Some(f) => f(&info),
            None => format!("{} {route}", parts.method),
        };
        if !(plausible(&resource) && plausible(&feature)) {
            tracing::debug!(%resource, %feature, "request not metered: invalid resource or feature");
            return None;
        }
        Some(Metered {
            tenant,
            resource,
            feature,
            method: parts.method.clone(),
            route: route.to_owned(),
        })
    }

    fn record(&self, event: NewEvent) {
        match &self.recorder {
            Some(recorder) => recorder.record(event),
            None => crate::recorder::record(event),
        }
    }
}

impl Metered {
    fn metadata(&self) -> Metadata {
        let mut metadata = Metadata::new();
        metadata.insert(
            "method".into(),
            Value::String(self.method.as_str().to_owned()),
        );
        metadata.insert("route".into(), Value::String(self.route.clone()));
        metadata
    }

    /// The quota check for this request.
    fn validate_request(&self, quantity: metering_core::Quantity) -> Option<ValidateRequest> {
        let (Ok(tenant), Ok(resource), Ok(feature)) = (
            TenantId::new(&self.tenant),
            Resource::new(&self.resource),
            Feature::new(&self.feature),
        ) else {
            return None;
        };
        Some(
            ValidateRequest::new(tenant, feature)
                .with_resource(resource)
                .with_quantity(quantity),
        )
    }

    /// The event recorded after the response.
    fn into_event(
        self,
        quantity: metering_core::Quantity,
        status: StatusCode,
        latency_ms: u64,
    ) -> NewEvent {
        let mut metadata = Metadata::new();
        metadata.insert(
            "method".into(),
            Value::String(self.method.as_str().to_owned()),
        );
        metadata.insert("route".into(), Value::String(self.route));
        metadata.insert("status".into(), Value::from(status.as_u16()));
        metadata.insert("latency_ms".into(), Value::from(latency_ms));
        NewEvent::new(self.tenant, self.resource, self.feature)
            .with_quantity(quantity)
            .with_metadata(metadata)
    }
}

/// `429` with the decision as JSON and `Retry-After` in whole seconds until `reset_at`.
fn refused(decision: &QuotaDecision) -> Response<Body> {
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(decision)).into_response();
    if let Some(reset_at) = decision.reset_at {
        let millis = (reset_at - SystemClock.now()).num_milliseconds().max(0);
        let seconds = (millis + 999) / 1000;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
    }
    response
}

impl<S, B, ResBody> Service<Request<B>> for MeteringService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = MeteringFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this request (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(&self.settings);
        let idle = settings.recorder.is_none()
            && settings.enforcement.is_none()
            && crate::recorder::installed_recorder().is_none();
        if idle || settings.excluded(request.uri().path()) {
            return Box::pin(async move { Ok(inner.call(request).await?.map(Body::new)) });
        }
        let (parts, body) = request.into_parts();
        let metered = settings.metered(&parts);
        let request = Request::from_parts(parts, body);
        let Some(metered) = metered else {
            return Box::pin(async move { Ok(inner.call(request).await?.map(Body::new)) });
        };
        let started = Instant::now();
        Box::pin(async move {
            let mut consumed = false;
            if let Some((checker, mode)) = &settings.enforcement {
                let Some(mut check) = metered.validate_request(settings.quantity) else {
                    return Ok(inner.call(request).await?.map(Body::new));
                };
                if *mode == Enforcement::Consume {
                    check = check.consuming();
                    check.metadata = Some(metered.metadata());
                }
                match checker.check(check).await {
                    Ok(decision) if !decision.allowed => return Ok(refused(&decision)),
                    Ok(_) => consumed = *mode == Enforcement::Consume,
                    Err(error) if settings.fail_closed => {
                        tracing::error!(%error, "quota check failed; refusing the request");
                        return Ok(StatusCode::SERVICE_UNAVAILABLE.into_response());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "quota check failed; letting the request through");
                    }
                }
            }
            let response = inner.call(request).await?;
            let status = response.status();
            if !consumed && settings.record_on.admits(status) {
                let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                settings.record(metered.into_event(settings.quantity, status, latency_ms));
            }
            Ok(response.map(Body::new))
        })
    }
}
