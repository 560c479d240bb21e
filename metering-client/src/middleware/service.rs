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
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
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

/// What is known about a metered request before it runs.
struct Metered {
    tenant: TenantId,
    resource: Resource,
    feature: Feature,
    method: String,
    route: String,
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
        let raw_tenant = match &self.tenant {
            TenantSource::Header(name) => parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            TenantSource::Closure(tenant) => tenant(parts),
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
        // An invalid name would be rejected by the sink anyway; skipping here keeps a bad
        // header from failing the request or an enforcement check.
        let (Ok(tenant), Ok(resource), Ok(feature)) = (
            TenantId::new(&raw_tenant),
            Resource::new(&resource),
            Feature::new(&feature),
        ) else {
            tracing::debug!(tenant = %raw_tenant, %resource, %feature, "request not metered: invalid names");
            return None;
        };
        Some(Metered {
            tenant,
            resource,
            feature,
            method: parts.method.as_str().to_owned(),
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

fn metadata(metered: &Metered) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert("method".into(), Value::String(metered.method.clone()));
    metadata.insert("route".into(), Value::String(metered.route.clone()));
    metadata
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
                let mut check =
                    ValidateRequest::new(metered.tenant.clone(), metered.feature.clone())
                        .with_resource(metered.resource.clone())
                        .with_quantity(settings.quantity);
                if *mode == Enforcement::Consume {
                    check = check.consuming();
                    check.metadata = Some(metadata(&metered));
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
                let mut metadata = metadata(&metered);
                metadata.insert("status".into(), Value::from(status.as_u16()));
                metadata.insert("latency_ms".into(), Value::from(latency_ms));
                let event = NewEvent::new(
                    metered.tenant.as_str(),
                    metered.resource.as_str(),
                    metered.feature.as_str(),
                )
                .with_quantity(settings.quantity)
                .with_metadata(metadata);
                settings.record(event);
            }
            Ok(response.map(Body::new))
        })
    }
}
