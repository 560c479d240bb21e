//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use metering_core::Metering;

use crate::config::ServerConfig;

/// The state behind the router: the engine and the limits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Metering,
    config: ServerConfig,
}

impl AppState {
    /// State over `engine` with `config`.
    ///
    /// Build the engine with `config.event_rules()` so the engine and the HTTP layer enforce
    /// the same limits.
    #[must_use]
    pub fn new(engine: Metering, config: ServerConfig) -> Self {
        AppState {
            inner: Arc::new(Inner { engine, config }),
        }
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &Metering {
        &self.inner.engine
    }

    /// The limits.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }
}
