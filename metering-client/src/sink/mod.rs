//! Where events end up: an embedded engine or a remote `metering-server`.

mod embedded;
#[cfg(feature = "remote")]
mod remote;

use std::fmt;

use async_trait::async_trait;
use metering_core::{QuotaDecision, ValidateRequest};

use crate::error::{ClientError, SendFailure};
use crate::wire::Pending;

pub(crate) use embedded::EmbeddedSink;
#[cfg(feature = "remote")]
pub(crate) use remote::RemoteSink;

/// One destination for batches of events. Implementations make exactly one attempt per
/// call; retries, spilling and counting happen in [`crate::delivery`].
#[async_trait]
pub(crate) trait Sink: Send + Sync + fmt::Debug + 'static {
    /// Writes `events` (ids already assigned) in one request.
    async fn send(&self, events: &[Pending]) -> Result<(), SendFailure>;

    /// Checks (or consumes) a quota.
    async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision, ClientError>;
}
