//! Running the router: the key-usage flusher, the alert delivery loop, graceful shutdown,
//! and HTTPS.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use metering_core::Metering;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::deliver::Deliverer;
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

    /// Starts flushing the uses of `state`'s engine at its configured interval.
    fn for_state(state: &AppState) -> Self {
        Self::spawn(
            state.engine().clone(),
            state.config().key_usage_flush_interval,
        )
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
/// requests in flight and flushes key uses. Alerts are sent to webhook endpoints meanwhile
/// (a [`Deliverer`]).
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = KeyUsageFlusher::for_state(&state);
    let deliverer = deliverer_for(&state);
    let app = crate::router(state);
    // Answers go out at once, not held back by Nagle's algorithm waiting for an ACK.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    // The peer address feeds the failed-authentication limit per address.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    deliverer.shutdown().await;
    flusher.shutdown().await;
    result
}

/// The alert delivery loop of `state`'s engine, with its configuration and metrics.
fn deliverer_for(state: &AppState) -> Deliverer {
    Deliverer::spawn(
        state.engine().clone(),
        state.config().webhooks,
        state.metrics().clone(),
    )
}

/// A certificate chain and its private key for HTTPS, read from PEM files.
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads the certificate chain (`cert`, PEM, the server's certificate first) and its
    /// private key (`key`, PEM: PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3 with rustls's safe
    /// defaults; HTTP/2 and HTTP/1.1 are offered.
    ///
    /// # Errors
    ///
    /// A message naming the file that cannot be read or used (never the key's bytes).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "the TLS certificate file {} holds no certificate",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("reading the TLS private key {}: {e}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "the TLS key {} does not fit the certificate {}: {e}",
                    key.display(),
                    cert.display()
                )
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsConfig {
            config: Arc::new(config),
        })
    }
}

/// [`serve`] over HTTPS with `tls`.
///
/// # Errors
///
/// The listener's I/O error.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: TlsConfig,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = KeyUsageFlusher::for_state(&state);
    let deliverer = deliverer_for(&state);
    let app = crate::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    let stop = tokio::spawn(async move {
        shutdown.await;
        // Like `serve`: stop accepting, let the requests in flight finish.
        stopper.graceful_shutdown(None);
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls.config);
    // Answers go out at once: the default acceptor sets TCP_NODELAY on each connection.
    let result = axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app)
        .await;
    stop.abort();
    deliverer.shutdown().await;
    flusher.shutdown().await;
    result
}
