//! Classifies Redis failures into the framework's [`metering_core::Error`].

use std::time::Duration;

use metering_core::Error;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// What went wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisCacheError {
    /// The driver or the server failed.
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
    /// No answer within the configured time.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Fewer replicas than required confirmed a write in time.
    #[error("only {confirmed} of {wanted} replicas confirmed the write in time")]
    NotReplicated {
        /// How many did.
        confirmed: i64,
        /// How many must.
        wanted: u32,
    },
    /// A script answered something this crate does not understand.
    #[error("unexpected answer from a redis script: {0}")]
    Protocol(String),
}

impl RedisCacheError {
    /// Whether waiting (for a reconnect, a failover, a loading server) may help.
    fn is_transient(&self) -> bool {
        match self {
            RedisCacheError::Timeout(_) | RedisCacheError::NotReplicated { .. } => true,
            RedisCacheError::Protocol(_) => false,
            RedisCacheError::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(e.code(), Some("BUSY" | "OOM"))
                    || matches!(
                        e.kind(),
                        ErrorKind::Server(
                            ServerErrorKind::BusyLoading
                                | ServerErrorKind::TryAgain
                                | ServerErrorKind::ClusterDown
                                | ServerErrorKind::MasterDown
                                | ServerErrorKind::ReadOnly
                        )
                    )
            }
        }
    }
}

impl From<RedisCacheError> for Error {
    fn from(e: RedisCacheError) -> Self {
        if e.is_transient() {
            Error::unavailable("the quota cache (redis) is unavailable", e)
        } else {
            Error::internal("the quota cache (redis) failed", e)
        }
    }
}
