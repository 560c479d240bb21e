//! Running the router: the key-usage flusher and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use metering_core::Metering;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::state::AppState;

/// Writes remembered API key uses (`last_used_at`) to the store every `interval`, and once
/// more when stopped. The engine keeps uses in memory so a request costs no database write.
///
/// Embedders that mount [`crate::router`] themselves start one of these next to it.
#[derive(Debug)]
pub struct KeyUsageFlusher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl KeyUsageFlusher {
    /// Starts flushing on the current tokio runtime.
    #[must_use]
    pub fn spawn(engine: Metering, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                if let Err(e) = engine.flush_key_usage().await {
                    tracing::warn!(error = %e, "could not record API key uses; will retry");
                }
            }
            if let Err(e) = engine.flush_key_usage().await {
                tracing::warn!(error = %e, "could not record API key uses at shutdown");
            }
        });
        KeyUsageFlusher { stop, task }
    }

    /// Stops, after a last flush.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the key usage flusher failed");
        }
    }
}

/// Serves [`crate::router`] on `listener` until `shutdown` completes, then finishes the
/// requests in flight and flushes key uses.
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = KeyUsageFlusher::spawn(
        state.engine().clone(),
        state.config().key_usage_flush_interval,
    );
    let app = crate::router(state);
    // Answers go out at once, not held back by Nagle's algorithm waiting for an ACK.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    // The peer address feeds the failed-authentication limit per address.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    flusher.shutdown().await;
    result
}
