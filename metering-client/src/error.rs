//! [`ClientError`] and the classification of sink failures.

use std::time::Duration;

use metering_core::{BoxError, FieldError};

/// Why the client could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A setting is missing or malformed.
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The sink refused the events for good (a validation error); retrying cannot help.
    #[error("events rejected: {message}")]
    Rejected {
        /// What the sink said.
        message: String,
        /// The broken rules, with the index of each bad event in its batch.
        errors: Vec<FieldError>,
    },
    /// The sink could not be reached after every retry.
    #[error("metering sink unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The last failure.
        #[source]
        source: Option<BoxError>,
    },
    /// The spill queue could not be opened, read or written.
    #[error("spill queue: {message}")]
    Spill {
        /// What failed.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
    },
    /// The client was shut down.
    #[error("the metering client is shut down")]
    Closed,
}

/// How one delivery attempt failed, which decides whether it is retried.
#[derive(Debug)]
pub(crate) enum SendFailure {
    /// Connection error, timeout, 5xx or 429: try again (after `retry_after` when given).
    Retryable {
        message: String,
        retry_after: Option<Duration>,
        source: Option<BoxError>,
    },
    /// Validation error: the events at `invalid` (indices into the batch) are bad; the
    /// others may be resent. An empty `invalid` rejects the whole batch.
    Invalid {
        message: String,
        errors: Vec<FieldError>,
    },
    /// The batch holds more events than the sink takes in one request: split it.
    TooLarge { message: String },
}

impl From<metering_core::Error> for SendFailure {
    fn from(error: metering_core::Error) -> Self {
        match error {
            metering_core::Error::Validation(errors) => SendFailure::Invalid {
                message: errors.to_string(),
                errors: errors.errors().to_vec(),
            },
            metering_core::Error::TooLarge(message) => SendFailure::TooLarge { message },
            other @ (metering_core::Error::Unavailable { .. }
            | metering_core::Error::Internal { .. }) => SendFailure::Retryable {
                message: other.to_string(),
                retry_after: None,
                source: Some(Box::new(other)),
            },
            other => SendFailure::Invalid {
                message: other.to_string(),
                errors: Vec::new(),
            },
        }
    }
}
