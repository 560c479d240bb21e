//! The body of `GET /v1/meter/health`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::{Health, HealthStatus};

/// `200` (healthy or degraded) or `503` (unhealthy) of `GET /v1/meter/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Health))]
pub struct HealthReport {
    /// Overall health.
    pub status: HealthStatus,
    /// The server's time.
    #[serde(with = "crate::time::rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// The server's version.
    pub version: String,
    /// Each dependency's state.
    pub services: Services,
}

/// The state of each dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Services {
    /// The store.
    pub database: Connection,
    /// The quota cache (always connected when there is none).
    pub quota_cache: Connection,
}

/// Whether a dependency answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    /// It answers.
    Connected,
    /// It does not.
    Disconnected,
}

impl From<bool> for Connection {
    fn from(up: bool) -> Self {
        if up {
            Connection::Connected
        } else {
            Connection::Disconnected
        }
    }
}

impl HealthReport {
    /// The report of `health`, checked at `timestamp` by a server of `version`.
    #[must_use]
    pub fn new(health: Health, timestamp: DateTime<Utc>, version: impl Into<String>) -> Self {
        HealthReport {
            status: health.status,
            timestamp,
            version: version.into(),
            services: Services {
                database: health.store_connected.into(),
                quota_cache: health.cache_connected.into(),
            },
        }
    }
}
