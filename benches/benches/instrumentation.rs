//! What instrumentation costs the host application.
//!
//! - `meter/*`: calling a function under `#[meter]`, with the batching client installed as
//!   the recorder, against the same function bare (and, before the recorder is installed,
//!   metered with no recorder). Target: metered minus bare under 1 µs.
//! - `axum_layer_*/*`: an axum hello-world with and without `MeteringLayer` (same run, same
//!   requests), driven in-process with `oneshot` (`_wall`, `_cpu`) and over loopback with a
//!   keep-alive HTTP client (`_loopback`). `with_layer_noop_recorder` isolates the layer from
//!   the client. Target: at least 90% of the throughput.
//! - `saturated` (printed after the criterion groups): the same routers under load, each
//!   served on one thread of its own and kept busy by a light pipelining client (16
//!   connections x 16 requests in flight), taking turns for ten rounds; requests per second
//!   and the ratio to the router without the layer.
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

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use metering_benches::layer::{
    BATCH_INTERVAL, HelloServers, batching_client, discard_server, hello_router,
    pipelined_requests, schedstat_cpu, spawn_server, variants,
};
use metering_client::MeteringClient;
use metering_client::middleware::MeteringLayer;
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

fn client(rt: &Runtime) -> MeteringClient {
    rt.block_on(async { batching_client(discard_server().await, BATCH_INTERVAL).await })
}

/// CPU time the calling thread has used (Linux `schedstat`, nanoseconds): the cost to the
/// caller, without the time other processes on a busy machine take from it. `None` where
/// the kernel does not expose it.
fn thread_cpu() -> Option<Duration> {
    schedstat_cpu("/proc/thread-self/schedstat")
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

    let plain = hello_router();
    let request = || {
        Request::get("/hello")
            .header("X-Tenant-ID", "org_1")
            .body(Body::empty())
            .expect("a request")
    };
    let routers = variants(&plain, MeteringLayer::new());
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
    let urls: Vec<(&str, String)> = routers
        .iter()
        .map(|(name, router)| {
            let addr = rt.block_on(spawn_server(router.clone()));
            (*name, format!("http://{addr}/hello"))
        })
        .collect();
    for (name, url) in &urls {
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

    saturated();

    let stats = rt.block_on(client.shutdown()).stats;
    println!(
        "client after the run: sent {}, dropped {}, rejected {}",
        stats.sent, stats.dropped, stats.rejected
    );
}

/// Throughput under load, the way a load generator sees a server: the hello-world server
/// runs on one thread of its own (with, for the metered variant, the metering client's
/// recording; the client encodes and ships batches on its own thread), so it has one core,
/// and the server that takes the batches on another; a light pipelining HTTP/1.1 client on
/// the benchmark's thread keeps it saturated. The routers take turns, round after round,
/// and the requests each served in its turns are summed.
///
/// Two figures per router: requests per second of wall time, and requests per second of
/// the server thread's CPU time (Linux `schedstat`). On a machine with fewer cores than busy
/// threads (load generator, server, client, batch sink) the first moves with how the
/// scheduler shares the cores in each turn; the second is the server's capacity per core, what the
/// layer costs it, whatever else runs.
fn saturated() {
    const CONNECTIONS: usize = 16;
    const PIPELINE: usize = 16;
    const TURN: Duration = Duration::from_millis(1000);
    const ROUNDS: usize = 10;

    let servers = HelloServers::start(BATCH_INTERVAL);
    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let addrs = &servers.addrs;
    let mut served = vec![0u64; addrs.len()];
    let mut busy = vec![Duration::ZERO; addrs.len()];
    let mut cpu = vec![Duration::ZERO; addrs.len()];
    load.block_on(async {
        for _ in 0..ROUNDS {
            for (i, (_, addr)) in addrs.iter().enumerate() {
                let started = Instant::now();
                let cpu_before = servers.cpu();
                let tasks: Vec<_> = (0..CONNECTIONS)
                    .map(|_| {
                        tokio::spawn(pipelined_requests(
                            *addr,
                            PIPELINE,
                            started + TURN,
                            u64::MAX,
                        ))
                    })
                    .collect();
                for task in tasks {
                    served[i] += task.await.expect("a load task");
                }
                busy[i] += started.elapsed();
                if let (Some(before), Some(after)) = (cpu_before, servers.cpu()) {
                    cpu[i] += after.saturating_sub(before);
                }
            }
        }
    });
    let per = |times: &[Duration]| -> Vec<f64> {
        served
            .iter()
            .zip(times)
            .map(|(n, t)| *n as f64 / t.as_secs_f64().max(1e-9))
            .collect()
    };
    let (rates, per_cpu) = (per(&busy), per(&cpu));
    for (i, (name, _)) in addrs.iter().enumerate() {
        println!(
            "saturated  {name:26} {:9.0} requests/s, {:6.1}% of the throughput without the layer \
             ({CONNECTIONS} connections x {PIPELINE} pipelined, server on one thread)",
            rates[i],
            100.0 * rates[i] / rates[0]
        );
        if servers.schedstat.is_some() {
            println!(
                "saturated  {name:26} {:9.0} requests per CPU second of the server thread, \
                 {:6.1}% of the figure without the layer (server thread busy {:5.1}% of the time)",
                per_cpu[i],
                100.0 * per_cpu[i] / per_cpu[0],
                100.0 * cpu[i].as_secs_f64() / busy[i].as_secs_f64()
            );
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    targets = instrumentation
}
criterion_main!(benches);
