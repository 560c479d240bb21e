//! The embedded sink: a [`Metering`] engine in this process, over any store.

use async_trait::async_trait;
use metering_core::{Metering, QuotaDecision, ValidateRequest};

use super::Sink;
use crate::error::{ClientError, SendFailure};
use crate::wire::Pending;

/// Writes through an engine in this process.
#[derive(Debug, Clone)]
pub(crate) struct EmbeddedSink {
    engine: Metering,
}

impl EmbeddedSink {
    pub(crate) fn new(engine: Metering) -> Self {
        EmbeddedSink { engine }
    }
}

#[async_trait]
impl Sink for EmbeddedSink {
    async fn send(&self, events: &[Pending]) -> Result<(), SendFailure> {
        self.engine
            .ingest(events.iter().map(Pending::to_event).collect())
            .await?;
        Ok(())
    }

    async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision, ClientError> {
        self.engine
            .validate(request)
            .await
            .map_err(|error| match error {
                metering_core::Error::Validation(errors) => ClientError::Rejected {
                    message: errors.to_string(),
                    errors: errors.errors().to_vec(),
                },
                other => ClientError::Unavailable {
                    message: other.to_string(),
                    source: Some(Box::new(other)),
                },
            })
    }
}
