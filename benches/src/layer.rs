//! The axum hello-world the `MeteringLayer` benchmarks serve, with and without the layer,
//! and the load that keeps it busy (`benches/instrumentation.rs`,
//! `benches/layer_instructions.rs`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use metering_client::middleware::MeteringLayer;
use metering_client::{ClientConfig, MeteringClient};
use tokio::sync::{mpsc, oneshot};

/// The hello-world: `GET /hello` answers `Hello, World!`.
pub fn hello_router() -> Router {
    Router::new().route("/hello", get(|| async { "Hello, World!" }))
}

/// The three routers every comparison runs: bare, with the layer and a no-op recorder, and
/// with `layer` as given.
pub fn variants(plain: &Router, layer: MeteringLayer) -> [(&'static str, Router); 3] {
    [
        ("without_layer", plain.clone()),
        (
            "with_layer_noop_recorder",
            plain
                .clone()
                .layer(MeteringLayer::new().recorder(metering_client::NoopRecorder)),
        ),
        ("with_layer", plain.clone().layer(layer)),
    ]
}

/// Serves `app` on a free local port from a task of the current runtime; returns the address.
/// Connections get `TCP_NODELAY`, as in `metering-server`: no Nagle delay on answers.
pub async fn spawn_server(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A server that takes batches and throws them away, from a task of the current runtime;
/// returns its URL.
pub async fn discard_server() -> String {
    let app = Router::new().route(
        "/v1/meter/events",
        post(|body: axum::body::Bytes| async move {
            black_box(body.len());
            (StatusCode::CREATED, "{}")
        }),
    );
    format!("http://{}", spawn_server(app).await)
}

/// How often the benchmarks' batching client ships a partial batch.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// The batching client of every benchmark, shipping to `url`: batches of 1,000 or every
/// `interval`.
pub async fn batching_client(url: String, interval: Duration) -> MeteringClient {
    MeteringClient::connect(
        ClientConfig::default()
            .with_api_url(url)
            .with_batch_size(1000)
            .with_batch_interval(interval)
            .with_max_buffered(2_000_000),
    )
    .await
    .expect("a client")
}

/// The CPU time in a `schedstat` file (Linux): the first of its numbers, in nanoseconds.
pub fn schedstat_cpu(path: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// The hello-world [`variants`], served from one thread of their own (so they have one
/// core, whatever the load generator takes), their batching client shipping (from its own
/// thread) to a discard server on another thread (the metering server is another process in
/// production). Both threads run until the process exits.
#[derive(Debug)]
pub struct HelloServers {
    /// Each variant's name and address.
    pub addrs: Vec<(&'static str, SocketAddr)>,
    /// The server thread's `schedstat` file, where its CPU time can be read.
    pub schedstat: Option<String>,
    flush: mpsc::Sender<oneshot::Sender<()>>,
}

impl HelloServers {
    /// Starts the two threads; the client ships a partial batch every `batch_interval`.
    pub fn start(batch_interval: Duration) -> Self {
        let (sink_tx, sink_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            current_thread().block_on(async move {
                sink_tx
                    .send(discard_server().await)
                    .expect("the caller waits");
                std::future::pending::<()>().await;
            });
        });
        let sink = sink_rx.recv().expect("the sink starts");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let server = std::thread::Builder::new().name("hello-server".into());
        let _ = server.spawn(move || {
            current_thread().block_on(async move {
                let client = batching_client(sink, batch_interval).await;
                let layer = MeteringLayer::new().recorder(client.clone());
                let mut addrs = Vec::new();
                for (name, router) in variants(&hello_router(), layer) {
                    addrs.push((name, spawn_server(router).await));
                }
                let schedstat = std::fs::read_link("/proc/thread-self")
                    .ok()
                    .map(|task| format!("/proc/{}/schedstat", task.display()));
                let (flush, mut flushes) = mpsc::channel::<oneshot::Sender<()>>(1);
                ready_tx
                    .send((addrs, schedstat, flush))
                    .expect("the caller waits");
                while let Some(done) = flushes.recv().await {
                    client.flush().await;
                    let _ = done.send(());
                }
            });
        });
        let (addrs, schedstat, flush) = ready_rx.recv().expect("the server thread starts");
        HelloServers {
            addrs,
            schedstat,
            flush,
        }
    }

    /// The server thread's CPU time so far.
    pub fn cpu(&self) -> Option<Duration> {
        self.schedstat.as_deref().and_then(schedstat_cpu)
    }

    /// Ships every event recorded so far.
    pub async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.flush.send(done).await.is_ok() {
            let _ = flushed.await;
        }
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// One keep-alive connection to the hello-world sending `depth` pipelined requests at a
/// time, until `until` or until at least `limit` were answered; returns how many were.
pub async fn pipelined_requests(addr: SocketAddr, depth: usize, until: Instant, limit: u64) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &[u8] = b"Hello, World!";
    let request = b"GET /hello HTTP/1.1\r\nHost: bench\r\nX-Tenant-ID: org_1\r\n\r\n".repeat(depth);
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server listens");
    stream.set_nodelay(true).expect("nodelay");
    let mut buffer = vec![0u8; 64 * 1024];
    let mut carried = 0usize;
    let mut answered = 0u64;
    while answered < limit && Instant::now() < until {
        stream.write_all(&request).await.expect("the server reads");
        let mut pending = depth;
        while pending > 0 {
            let n = stream
                .read(&mut buffer[carried..])
                .await
                .expect("the server answers");
            assert!(n > 0, "the server closed the connection");
            let filled = carried + n;
            // Count complete bodies; keep a partial one for the next read.
            let mut start = 0;
            while let Some(at) = buffer[start..filled]
                .windows(BODY.len())
                .position(|w| w == BODY)
            {
                start += at + BODY.len();
                pending -= 1;
            }
            let keep = (filled - start).min(BODY.len() - 1);
            buffer.copy_within(filled - keep..filled, 0);
            carried = keep;
        }
        answered += depth as u64;
    }
    answered
}
