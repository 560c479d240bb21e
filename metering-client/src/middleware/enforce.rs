//! Quota enforcement before the handler runs.

use async_trait::async_trait;
use metering_core::{BoxError, Metering, QuotaDecision, ValidateRequest};

use crate::MeteringClient;

/// How [`MeteringLayer::enforce`](super::MeteringLayer::enforce) uses the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Enforcement {
    /// Check that the request fits (`validate` without consuming) and record the event
    /// after the response, as without enforcement. Concurrent requests may overshoot the
    /// limit by the number in flight.
    Validate,
    /// Consume the quota atomically before the handler runs; the event is recorded by the
    /// check itself (the layer records nothing afterwards, so the metadata carries only
    /// `method` and `route`). Never exceeds the limit; a request that then fails in the
    /// handler still counts.
    Consume,
}

/// Answers quota checks for the middleware: a [`Metering`] engine in this process, or a
/// [`MeteringClient`] (which asks its sink: the embedded engine or
/// `POST /v1/meter/validate` of a `metering-server`).
#[async_trait]
pub trait QuotaChecker: Send + Sync + 'static {
    /// Checks (or, with `request.consume`, consumes) the quota.
    ///
    /// # Errors
    ///
    /// Any failure to answer; the layer then fails open or closed as configured.
    async fn check(&self, request: ValidateRequest) -> Result<QuotaDecision, BoxError>;
}

#[async_trait]
impl QuotaChecker for Metering {
    async fn check(&self, request: ValidateRequest) -> Result<QuotaDecision, BoxError> {
        Ok(self.validate(request).await?)
    }
}

#[async_trait]
impl QuotaChecker for MeteringClient {
    async fn check(&self, request: ValidateRequest) -> Result<QuotaDecision, BoxError> {
        Ok(self.validate(request).await?)
    }
}

#[async_trait]
impl<C: QuotaChecker + ?Sized> QuotaChecker for std::sync::Arc<C> {
    async fn check(&self, request: ValidateRequest) -> Result<QuotaDecision, BoxError> {
        (**self).check(request).await
    }
}
