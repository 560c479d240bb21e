//! What instrumentation costs the host application.
//!
//! - `meter/*`: calling a function under `#[meter]`, with the batching client installed as
//!   the recorder, against the same function bare (and, before the recorder is installed,
//!   metered with no recorder). Target: metered minus bare under 1 µs.
//! - `axum_layer_*/*`: an axum hello-world with and without `MeteringLayer` (same run, same
//!   requests), driven in-process with `oneshot` (`_wall`, `_cpu`) and over loopback with a
//!   keep-alive HTTP client (`_loopback`). `with_layer_noop_recorder` isolates the layer from
//!   the client. Target: at least 90% of the throughput.
//!
//! Each is measured twice: `_wall` is elapsed time; `_cpu` is the CPU time of the calling
//! thread (Linux only), which leaves out the time other processes and the client's own
//! background task take from it on a busy machine: the cost the caller pays.
//!
//! The client ships to an in-process HTTP server that accepts and discards every batch, so
//! the memory of a long run stays flat; each sample ends with an (untimed) flush so buffered
//! events never pile up or get dropped. Run with
//! `cargo bench -p metering-benches --bench instrumentation`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use metering_client::middleware::MeteringLayer;
use metering_client::{ClientConfig, MeteringClient};
use metering_macros::meter;
use tokio::runtime::Runtime;
use tower::ServiceExt;

#[inline(never)]
fn bare(tenant_id: &str, n: u64) -> u64 {
    black_box(tenant_id.len() as u64).wrapping_mul(n)
}

#[inline(never)]
#[meter(crate = metering_client, resource = "bench", feature = "call")]
fn metered(tenant_id: &str, n: u64) -> u64 {
    black_box(tenant_id.len() as u64).wrapping_mul(n)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A server that takes batches and throws them away; returns its URL.
async fn discard_server() -> String {
    let app = Router::new().route(
        "/v1/meter/events",
        post(|body: axum::body::Bytes| async move {
            black_box(body.len());
            (StatusCode::CREATED, "{}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn client(rt: &Runtime) -> MeteringClient {
    rt.block_on(async {
        let url = discard_server().await;
        MeteringClient::connect(
            ClientConfig::default()
                .with_api_url(url)
                .with_batch_size(1000)
                .with_batch_interval(Duration::from_millis(100))
                .with_max_buffered(2_000_000),
        )
        .await
        .expect("a client")
    })
}

/// CPU time the calling thread has used (Linux `schedstat`, nanoseconds): the cost to the
/// caller, without the time other processes on a busy machine take from it. `None` where
/// the kernel does not expose it.
fn thread_cpu() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Which clock a benchmark reads.
#[derive(Clone, Copy)]
enum Clock {
    Wall,
    ThreadCpu,
}

impl Clock {
    fn now(self) -> (Instant, Option<Duration>) {
        (
            Instant::now(),
            matches!(self, Clock::ThreadCpu).then(thread_cpu).flatten(),
        )
    }

    fn since(self, (wall, cpu): (Instant, Option<Duration>)) -> Duration {
        match (self, cpu, thread_cpu()) {
            // The counter advances at scheduler ticks: samples are made long (flat
            // sampling) so its granularity does not matter, and never reported as zero.
            (Clock::ThreadCpu, Some(start), Some(end)) => {
                end.saturating_sub(start).max(Duration::from_nanos(1))
            }
            _ => wall.elapsed(),
        }
    }
}

fn instrumentation(c: &mut Criterion) {
    let rt = runtime();
    let cpu_available = thread_cpu().is_some();

    let mut group = c.benchmark_group("meter");
    group.throughput(Throughput::Elements(1));
    group.bench_function("bare", |b| b.iter(|| bare(black_box("org_1"), 3)));
    group.bench_function("metered_no_recorder", |b| {
        b.iter(|| metered(black_box("org_1"), 3));
    });

    let client = client(&rt);
    metering_client::set_recorder(client.clone()).expect("the only recorder");
    group.finish();
    let mut clocks = vec![("wall", Clock::Wall)];
    if cpu_available {
        clocks.push(("cpu", Clock::ThreadCpu));
    }
    for &(clock_name, clock) in &clocks {
        let mut group = c.benchmark_group(format!("meter_{clock_name}"));
        group.throughput(Throughput::Elements(1));
        if matches!(clock, Clock::ThreadCpu) {
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        group.bench_function("bare", |b| {
            b.iter_custom(|iters| {
                let started = clock.now();
                for _ in 0..iters {
                    bare(black_box("org_1"), 3);
                }
                clock.since(started)
            });
        });
        group.bench_function("metered_batching", |b| {
            b.iter_custom(|iters| {
                let started = clock.now();
                for _ in 0..iters {
                    metered(black_box("org_1"), 3);
                }
                let elapsed = clock.since(started);
                rt.block_on(client.flush());
                elapsed
            });
        });
        group.finish();
    }

    let plain: Router = Router::new().route("/hello", get(|| async { "Hello, World!" }));
    let request = || {
        Request::get("/hello")
            .header("X-Tenant-ID", "org_1")
            .body(Body::empty())
            .expect("a request")
    };
    let routers = [
        ("without_layer", plain.clone()),
        (
            "with_layer_noop_recorder",
            plain
                .clone()
                .layer(MeteringLayer::new().recorder(metering_client::NoopRecorder)),
        ),
        ("with_layer", plain.layer(MeteringLayer::new())),
    ];
    for &(clock_name, clock) in &clocks {
        let mut group = c.benchmark_group(format!("axum_layer_{clock_name}"));
        group.throughput(Throughput::Elements(1));
        if matches!(clock, Clock::ThreadCpu) {
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        for (name, router) in &routers {
            let client = client.clone();
            group.bench_function(*name, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let router = router.clone();
                    let client = client.clone();
                    async move {
                        let started = clock.now();
                        for _ in 0..iters {
                            let response = router.clone().oneshot(request()).await;
                            black_box(response.expect("infallible").status());
                        }
                        let elapsed = clock.since(started);
                        client.flush().await;
                        elapsed
                    }
                });
            });
        }
        group.finish();
    }

    // The same routers behind real sockets: a keep-alive HTTP client on loopback, one request
    // at a time, as a load generator would see them.
    let mut group = c.benchmark_group("axum_layer_loopback");
    group.throughput(Throughput::Elements(1));
    let http = reqwest::Client::new();
    for (name, router) in &routers {
        let url = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port");
            let addr = listener.local_addr().expect("an address");
            let app = router.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            format!("http://{addr}/hello")
        });
        let client = client.clone();
        let http = http.clone();
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let client = client.clone();
                let http = http.clone();
                let url = url.clone();
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let response = http
                            .get(&url)
                            .header("X-Tenant-ID", "org_1")
                            .send()
                            .await
                            .expect("the server answers");
                        black_box(response.bytes().await.expect("a body"));
                    }
                    let elapsed = started.elapsed();
                    client.flush().await;
                    elapsed
                }
            });
        });
    }
    group.finish();

    // A paired comparison that a busy machine cannot bias: blocks of requests alternate
    // between the routers, round after round, and each router's time is summed.
    let urls: Vec<(&str, String)> = routers
        .iter()
        .map(|(name, router)| {
            let url = rt.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a port");
                let addr = listener.local_addr().expect("an address");
                let app = router.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                format!("http://{addr}/hello")
            });
            (*name, url)
        })
        .collect();
    let (rounds, block) = (40u32, 250u32);
    let mut loopback = vec![Duration::ZERO; urls.len()];
    let mut in_process = vec![Duration::ZERO; urls.len()];
    rt.block_on(async {
        for _ in 0..rounds {
            for (i, (_, url)) in urls.iter().enumerate() {
                let started = Instant::now();
                for _ in 0..block {
                    let response = http
                        .get(url)
                        .header("X-Tenant-ID", "org_1")
                        .send()
                        .await
                        .expect("the server answers");
                    black_box(response.bytes().await.expect("a body"));
                }
                loopback[i] += started.elapsed();
                let started = Instant::now();
                for _ in 0..block {
                    let response = routers[i].1.clone().oneshot(request()).await;
                    black_box(response.expect("infallible").status());
                }
                in_process[i] += started.elapsed();
            }
        }
        client.flush().await;
    });
    let requests = f64::from(rounds * block);
    for (label, totals) in [("loopback", &loopback), ("in-process", &in_process)] {
        let base = totals[0].as_secs_f64();
        for ((name, _), total) in urls.iter().zip(totals) {
            println!(
                "paired {label:10} {name:26} {:8.2} µs/request, {:6.1}% of the throughput without the layer",
                total.as_secs_f64() * 1e6 / requests,
                100.0 * base / total.as_secs_f64()
            );
        }
    }

    let stats = rt.block_on(client.shutdown()).stats;
    println!(
        "client after the run: sent {}, dropped {}, rejected {}",
        stats.sent, stats.dropped, stats.rejected
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = instrumentation
}
criterion_main!(benches);
