//! [`MeteringService`]: the service the layer wraps around the application.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use pin_project_lite::pin_project;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::MatchedPath;
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use compact_str::CompactString;
use metering_core::event::MAX_NAME_CHARS;
use metering_core::{
    Clock, Feature, QuotaDecision, Resource, SystemClock, TenantId, ValidateRequest,
};
use tower::Service;

use super::{Enforcement, MeteredRequest, RequestInfo, Settings, TenantSource};
use crate::metered::Route;

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

/// A quick check, without allocating, of the rules the sink applies to names (1 to 255
/// characters after trimming, no control characters), so a garbage tenant header is not
/// metered, and rejected and logged downstream, on every request. A name given in `parts`
/// is their concatenation.
fn plausible(parts: &[&str]) -> bool {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    // The usual case, printable ASCII (a byte is a character, and the space the only
    // whitespace), in one simple pass per part: something besides spaces, not too long.
    if parts
        .iter()
        .all(|part| part.bytes().all(|byte| (0x20..0x7f).contains(&byte)))
    {
        return len <= MAX_NAME_CHARS && parts.iter().any(|part| part.bytes().any(|b| b != b' '));
    }
    // Otherwise a control character (ASCII or not) rejects it, and characters are counted.
    let chars = || parts.iter().flat_map(|p| p.chars());
    !chars().any(char::is_control)
        && chars().any(|c| !c.is_whitespace())
        && len <= 4 * MAX_NAME_CHARS
        && chars().count() <= MAX_NAME_CHARS
}

/// A route template and method whose default names were checked, and the verdict.
struct CheckedRoute {
    route: Box<str>,
    method: Method,
    plausible: bool,
}

/// How many templates each thread remembers (a direct-mapped cache: a template that
/// collides with another is checked again, which is only slower).
const CHECKED_ROUTES: usize = 64;

thread_local! {
    static CHECKED: RefCell<[Option<CheckedRoute>; CHECKED_ROUTES]> =
        const { RefCell::new([const { None }; CHECKED_ROUTES]) };
}

/// Whether the default resource and feature of `route` (a template axum matched) and
/// `method` are plausible names. The answer never changes for a template, so it is
/// computed once per thread, template and method, and looked up (by the template's text)
/// on every other request: checking every time was a fifth of the layer's instructions.
fn default_names_plausible(method: &Method, route: &str) -> bool {
    let check = || check_default_names(method, route);
    // Templates are shared by every request of their route: their address picks the slot.
    let slot = (route.as_ptr() as usize >> 3).wrapping_add(method.as_str().len()) % CHECKED_ROUTES;
    CHECKED
        .try_with(|checked| {
            let mut checked = checked.borrow_mut();
            match &checked[slot] {
                Some(known) if known.method == method && &*known.route == route => known.plausible,
                _ => {
                    let plausible = check();
                    checked[slot] = Some(CheckedRoute {
                        route: route.into(),
                        method: method.clone(),
                        plausible,
                    });
                    plausible
                }
            }
        })
        // The thread is exiting: check without remembering.
        .unwrap_or_else(|_| check())
}

/// The check [`default_names_plausible`] remembers: the default resource, and the default
/// feature `"{method} {route}"`.
fn check_default_names(method: &Method, route: &str) -> bool {
    plausible(&[crate::metered::default_resource(route)])
        && plausible(&[method.as_str(), " ", route])
}

/// The request head as the layer reads it: borrowed from the request, or (when a closure
/// needs them) from its [`Parts`].
struct Head<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
    /// Set when the layer has closures, which take the parts.
    parts: Option<&'a Parts>,
}

impl<'a> Head<'a> {
    fn of_request<B>(request: &'a Request<B>) -> Self {
        Head {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
            parts: None,
        }
    }

    fn of_parts(parts: &'a Parts) -> Self {
        Head {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
            parts: Some(parts),
        }
    }
}

impl Settings {
    fn excluded(&self, path: &str) -> bool {
        self.excluded_paths.iter().any(|p| p == path)
            || self
                .excluded_prefixes
                .iter()
                .any(|p| path.starts_with(p.as_str()))
    }

    /// Whether a closure reads the request head: it then goes to them as [`Parts`].
    fn has_closures(&self) -> bool {
        matches!(self.tenant, TenantSource::Closure(_))
            || self.resource.is_some()
            || self.feature.is_some()
    }

    /// The request as it will be metered (status and latency still to come), or `None` when
    /// it has no plausible tenant, resource or feature. `head.parts` is set whenever
    /// [`Settings::has_closures`].
    fn metered(&self, head: &Head<'_>, started: SystemTime) -> Option<MeteredRequest> {
        let tenant = match &self.tenant {
            TenantSource::Header(name) => head
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| plausible(&[v]))
                .map(CompactString::new),
            TenantSource::Closure(tenant) => tenant(head.parts?)
                .filter(|t| plausible(&[t]))
                .map(CompactString::from),
        }?;
        let route = match head.extensions.get::<MatchedPath>() {
            Some(matched) => Route::Matched(matched.clone()),
            None => Route::Path(head.uri.path().to_owned()),
        };
        let mut request = MeteredRequest {
            tenant,
            method: head.method.clone(),
            route,
            names: None,
            quantity: self.quantity,
            status: StatusCode::OK,
            at: started,
            latency_ms: 0,
        };
        if self.resource.is_some() || self.feature.is_some() {
            let info = RequestInfo {
                parts: head.parts?,
                route: request.route(),
            };
            let resource = self.resource.as_ref().map(|f| f(&info));
            let feature = self.feature.as_ref().map(|f| f(&info));
            let names = request.names_mut();
            names.resource = resource;
            names.feature = feature;
        }
        let names_plausible = match (&request.route, request.has_default_names()) {
            // A template: checked once per thread, template and method.
            (Route::Matched(matched), true) => {
                default_names_plausible(&request.method, matched.as_str())
            }
            _ => plausible(&[request.resource()]) && plausible(&request.feature_parts()),
        };
        if !names_plausible {
            tracing::debug!(
                resource = %request.resource(),
                feature = %request.feature(),
                "request not metered: invalid resource or feature"
            );
            return None;
        }
        Some(request)
    }

    fn record(&self, request: MeteredRequest) {
        match &self.recorder {
            Some(recorder) => recorder.record_request(request),
            None => {
                if let Some(recorder) = crate::recorder::installed_recorder() {
                    recorder.record_request(request);
                }
            }
        }
    }
}

/// The quota check for `request`; with `consume`, the metadata of the event it records
/// (the status and latency are not known yet).
fn validate_request(request: &MeteredRequest, consume: bool) -> Option<ValidateRequest> {
    let (Ok(tenant), Ok(resource), Ok(feature)) = (
        TenantId::new(request.tenant()),
        Resource::new(request.resource()),
        Feature::new(request.feature()),
    ) else {
        return None;
    };
    let check = ValidateRequest::new(tenant, feature)
        .with_resource(resource)
        .with_quantity(request.quantity());
    if !consume {
        return Some(check);
    }
    let mut check = check.consuming();
    check.metadata = Some(request.head_metadata());
    Some(check)
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

pin_project! {
    /// The response future of [`MeteringService`]: the inner service's future, with the
    /// request recorded when it completes, or (with enforcement) the quota check first.
    pub struct MeteringFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        /// Not metered.
        Passthrough {
            #[pin]
            future: F,
        },
        /// Metered, no enforcement: recorded when the response head is ready.
        Metered {
            #[pin]
            future: F,
            // Taken when recorded.
            request: Option<MeteredRequest>,
            settings: Arc<Settings>,
        },
        /// The quota is checked before the inner service is called.
        Enforced {
            future: BoxedResponse<E>,
        },
    }
}

type BoxedResponse<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<F, E> fmt::Debug for MeteringFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringFuture").finish_non_exhaustive()
    }
}

impl<F, E, ResBody> Future for MeteringFuture<F, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => future
                .poll(cx)
                .map(|result| result.map(|response| response.map(Body::new))),
            KindProj::Metered {
                future,
                request,
                settings,
            } => {
                let response = std::task::ready!(future.poll(cx))?;
                let status = response.status();
                if let Some(mut request) = request.take()
                    && settings.record_on.admits(status)
                {
                    request.complete(status, SystemClock::system_time());
                    settings.record(request);
                }
                Poll::Ready(Ok(response.map(Body::new)))
            }
            KindProj::Enforced { future } => future.as_mut().poll(cx),
        }
    }
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
    type Future = MeteringFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let settings = &self.settings;
        let passthrough = |future| MeteringFuture {
            kind: Kind::Passthrough { future },
        };
        let idle = settings.recorder.is_none()
            && settings.enforcement.is_none()
            && crate::recorder::installed_recorder().is_none();
        if idle || settings.excluded(request.uri().path()) {
            return passthrough(self.inner.call(request));
        }
        let started = SystemClock::system_time();
        let mut request = request;
        let metered = if settings.has_closures() {
            let (parts, body) = request.into_parts();
            let metered = settings.metered(&Head::of_parts(&parts), started);
            request = Request::from_parts(parts, body);
            metered
        } else {
            // No closure: read the head in place, without moving the request apart.
            settings.metered(&Head::of_request(&request), started)
        };
        let Some(metered) = metered else {
            return passthrough(self.inner.call(request));
        };
        if settings.enforcement.is_none() {
            // `self.inner` was driven to readiness: it serves this request now.
            return MeteringFuture {
                kind: Kind::Metered {
                    future: self.inner.call(request),
                    request: Some(metered),
                    settings: Arc::clone(settings),
                },
            };
        }
        // The inner service is called after the check, from the future: the clone that was
        // driven to readiness goes with it (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = Arc::clone(settings);
        let future = Box::pin(async move {
            let mut consumed = false;
            if let Some((checker, mode)) = &settings.enforcement {
                let consume = *mode == Enforcement::Consume;
                let Some(check) = validate_request(&metered, consume) else {
                    return Ok(inner.call(request).await?.map(Body::new));
                };
                match checker.check(check).await {
                    Ok(decision) if !decision.allowed => return Ok(refused(&decision)),
                    Ok(_) => consumed = consume,
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
                let mut metered = metered;
                metered.complete(status, SystemClock::system_time());
                settings.record(metered);
            }
            Ok(response.map(Body::new))
        });
        MeteringFuture {
            kind: Kind::Enforced { future },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What the sink checks, on the joined name.
    fn valid(name: &str) -> bool {
        Feature::new(name).is_ok()
    }

    #[test]
    fn plausible_names() {
        assert!(plausible(&["org_1"]));
        assert!(plausible(&["GET", " ", "/v1/items/{id}"]));
        assert!(!plausible(&[""]));
        assert!(!plausible(&["  ", " "]));
        assert!(!plausible(&["a\tb"]));
        assert!(!plausible(&["é\u{85}"]));
        assert!(plausible(&[&"x".repeat(255)]));
        assert!(!plausible(&[&"x".repeat(200), &"y".repeat(56)]));
        assert!(plausible(&[&"é".repeat(255)]));
        assert!(!plausible(&[&"é".repeat(256)]));
    }

    #[test]
    fn remembered_verdicts_follow_the_template_text() {
        // The same buffer (so the same address and slot) holding one template, then another.
        let mut route = String::with_capacity(64);
        for (text, expected) in [
            ("/v1/items/{id}", true),
            ("/v1/it\u{1}ems", false),
            ("/ /x", false),
            ("/v1/items/{id}", true),
        ] {
            route.clear();
            route.push_str(text);
            for _ in 0..2 {
                assert_eq!(
                    default_names_plausible(&Method::GET, &route),
                    expected,
                    "{text:?}"
                );
            }
        }
        // The method is part of the verdict: the feature is "{method} {route}".
        let long = format!("/{}", "x".repeat(250));
        assert!(default_names_plausible(&Method::GET, &long));
        assert!(!default_names_plausible(&Method::DELETE, &long));
        assert!(default_names_plausible(&Method::GET, &long));
    }

    proptest! {
        /// The remembered verdict is the direct check's, first time and every time after.
        #[test]
        fn remembered_verdicts_are_the_checks(
            routes in proptest::collection::vec("/\\PC{0,20}|/[\\x00-\\x7f]{0,260}|/[a-z]{0,3}", 1..20),
            methods in proptest::collection::vec(0usize..3, 1..20),
        ) {
            let method = |i: usize| [Method::GET, Method::POST, Method::OPTIONS][methods[i % methods.len()]].clone();
            for round in 0..2 {
                for (i, route) in routes.iter().enumerate() {
                    let method = method(i + round);
                    prop_assert_eq!(
                        default_names_plausible(&method, route),
                        check_default_names(&method, route),
                        "{:?} {:?}", method, route
                    );
                }
            }
        }

        /// Whatever the layer meters, the sink takes: no name that passes here is rejected
        /// downstream (names without surrounding whitespace, as tenants and routes are).
        #[test]
        fn plausible_names_are_valid(a in "\\PC{0,150}|[\\x00-\\x7f]{0,150}", b in "[\\x00-\\x7f]{0,150}") {
            let joined = format!("{a}{b}");
            if plausible(&[&a, &b]) && joined.trim() == joined {
                prop_assert!(valid(&joined), "{joined:?}");
            }
            if valid(&joined) && joined.trim() == joined {
                prop_assert!(plausible(&[&a, &b]), "{joined:?}");
            }
        }
    }
}
