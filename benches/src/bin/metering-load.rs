//! `metering-load`: a small HTTP load generator for `metering-server`.
//!
//! Runs one scenario for a fixed time with N keep-alive connections and prints throughput
//! and latency percentiles as a human line and as one JSON line (for scripts).
//!
//! Run with `cargo run --release -p metering-benches --bin metering-load -- --help`;
//! `benches/load.sh` drives every scenario against a release server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use metering_benches::workload::{backfill_age_secs, mix, realistic};

/// What each request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// POST one event per request.
    Single,
    /// POST a batch of `--batch-size` events per request.
    Batch,
    /// POST /v1/meter/validate (no consume).
    Validate,
    /// GET /v1/meter/aggregates over `--aggregate-days` days, daily, by tenant and resource.
    Aggregate,
    /// GET /v1/meter/events for one tenant (a different one each time), page_size 50,
    /// numbered (with `total`).
    List,
    /// GET /v1/meter/meters/{--meter}/query over `--aggregate-days` days, daily, grouped by
    /// `--meter-group-by`.
    Meter,
}

/// The shape of the events written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// What a SaaS sends: 50 tenants x 10 resources x 5 features (2,500 series), integer
    /// quantities 1-5, about 80 bytes of metadata with 5 keys, server-made ids.
    Realistic,
    /// The earlier easy shape: `--tenants` tenants x 3 resources x 4 features, a short
    /// metadata, client ids.
    Easy,
}

/// When the events happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Timestamps {
    /// Uniform over the last `--spread-days` days (30 by default): a backfill, or a store
    /// that receives late events from many sources.
    Backfill,
    /// Within the last minute.
    Live,
}

#[derive(Debug, Parser)]
#[command(about = "HTTP load generator for metering-server")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// API key (admin, or ingest for the write scenarios).
    #[arg(long, env = "METERING_API_KEY")]
    key: String,
    /// The scenario.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Concurrent connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Events per request for the batch scenario.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Number of tenants events are spread over.
    #[arg(long, default_value_t = 50)]
    tenants: usize,
    /// Days the aggregate scenario covers (ending now).
    #[arg(long, default_value_t = 30)]
    aggregate_days: i64,
    /// Stop after this many requests in all (0: run for `--seconds`).
    #[arg(long, default_value_t = 0)]
    max_requests: u64,
    /// Start of the aggregate scenario's range, in Unix seconds (0: `--aggregate-days`
    /// before now), e.g. to query a database seeded by the criterion bench.
    #[arg(long, default_value_t = 0)]
    aggregate_start_unix: u64,
    /// The meter the meter scenario queries.
    #[arg(long, default_value = "tokens")]
    meter: String,
    /// The meter scenario's `group_by`.
    #[arg(long, default_value = "tenant_id,th")]
    meter_group_by: String,
    /// Days the backfill timestamps spread over.
    #[arg(long, default_value_t = 30)]
    spread_days: i64,
    /// The shape of the events.
    #[arg(long, value_enum, default_value_t = Workload::Realistic)]
    workload: Workload,
    /// When the events happened.
    #[arg(long, value_enum, default_value_t = Timestamps::Live)]
    timestamps: Timestamps,
    /// Send a random UUIDv4 `id` with each event (the realistic workload sends none by
    /// default; the easy one always sends its own ids).
    #[arg(long)]
    uuid_ids: bool,
}

struct Shared {
    args: Args,
    client: Client<HttpConnector, Full<Bytes>>,
    sequence: AtomicU64,
    run_id: u64,
}

fn event_json(shared: &Shared, n: u64) -> serde_json::Value {
    let args = &shared.args;
    let r = mix(n ^ shared.run_id.rotate_left(17));
    let mut event = match args.workload {
        Workload::Realistic => realistic(n, r),
        Workload::Easy => {
            let tenants = u64::try_from(args.tenants.max(1)).unwrap_or(1);
            let resource = ["billing", "reports", "api"][usize::try_from(n % 3).unwrap_or(0)];
            let feature = ["invoice_generate", "pdf_export", "search", "render"]
                [usize::try_from(n % 4).unwrap_or(0)];
            serde_json::json!({
                "id": format!("load-{}-{n}", shared.run_id),
                "tenant_id": format!("org_{:03}", n % tenants),
                "resource": resource,
                "feature": feature,
                "quantity": if n % 5 == 0 { serde_json::json!(0.5) } else { serde_json::json!(1) },
                "metadata": {"user": format!("u_{}", n % 1000)},
            })
        }
    };
    if args.uuid_ids {
        event["id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
    }
    let now = unix_now();
    let at = match args.timestamps {
        Timestamps::Backfill => now.saturating_sub(backfill_age_secs(r, args.spread_days)),
        Timestamps::Live => now.saturating_sub(mix(r) % 60),
    };
    event["timestamp"] = serde_json::Value::String(rfc3339(at));
    event
}

#[allow(clippy::disallowed_methods)] // a load client measures real time
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn rfc3339(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(metering_core::time::format_rfc3339)
        .unwrap_or_default()
}

/// The range of the read scenarios, as RFC 3339 texts.
fn read_range(args: &Args) -> (String, String) {
    let span = u64::try_from(args.aggregate_days * 86_400).unwrap_or(0);
    let (start, end) = if args.aggregate_start_unix > 0 {
        (args.aggregate_start_unix, args.aggregate_start_unix + span)
    } else {
        let end = unix_now() + 3600;
        (end.saturating_sub(span), end)
    };
    (rfc3339(start), rfc3339(end))
}

fn build_request(shared: &Shared) -> anyhow::Result<Request<Full<Bytes>>> {
    let args = &shared.args;
    let (method, path, body) = match args.scenario {
        Scenario::Single => {
            let n = shared.sequence.fetch_add(1, Ordering::Relaxed);
            (
                Method::POST,
                "/v1/meter/events".to_owned(),
                Some(event_json(shared, n)),
            )
        }
        Scenario::Batch => {
            let size = u64::try_from(args.batch_size).unwrap_or(1);
            let first = shared.sequence.fetch_add(size, Ordering::Relaxed);
            let events: Vec<_> = (first..first + size)
                .map(|n| event_json(shared, n))
                .collect();
            (
                Method::POST,
                "/v1/meter/events".to_owned(),
                Some(serde_json::json!({"events": events})),
            )
        }
        Scenario::Validate => {
            let n = shared.sequence.fetch_add(1, Ordering::Relaxed);
            let tenants = u64::try_from(args.tenants.max(1)).unwrap_or(1);
            let body = serde_json::json!({
                "tenant_id": format!("org_{:03}", n % tenants),
                "resource": "billing",
                "feature": "invoice_generate",
            });
            (Method::POST, "/v1/meter/validate".to_owned(), Some(body))
        }
        Scenario::List => {
            let n = shared.sequence.fetch_add(1, Ordering::Relaxed);
            let path = format!(
                "/v1/meter/events?tenant_id=org_{:03}&page_size=50&page=1",
                mix(n) % 50
            );
            (Method::GET, path, None)
        }
        Scenario::Aggregate => {
            let (start, end) = read_range(args);
            let path = format!(
                "/v1/meter/aggregates?window_type=daily&group_by=tenant_id,resource&start_date={start}&end_date={end}",
            );
            (Method::GET, path, None)
        }
        Scenario::Meter => {
            let (start, end) = read_range(args);
            let path = format!(
                "/v1/meter/meters/{}/query?window_type=daily&group_by={}&start_date={start}&end_date={end}",
                args.meter, args.meter_group_by
            );
            (Method::GET, path, None)
        }
    };
    let builder = Request::builder()
        .method(method)
        .uri(format!("{}{path}", args.url.trim_end_matches('/')))
        .header("x-api-key", &args.key);
    let request = match body {
        Some(json) => builder
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&json)?)))?,
        None => builder.body(Full::new(Bytes::new()))?,
    };
    Ok(request)
}

#[derive(Default)]
struct WorkerStats {
    latencies_us: Vec<u32>,
    errors: u64,
    statuses: std::collections::BTreeMap<u16, u64>,
}

async fn worker(shared: Arc<Shared>, deadline: Instant, budget: Arc<AtomicU64>) -> WorkerStats {
    let mut stats = WorkerStats::default();
    while Instant::now() < deadline {
        if shared.args.max_requests > 0 && budget.fetch_sub(1, Ordering::Relaxed) == 0 {
            budget.store(0, Ordering::Relaxed);
            break;
        }
        let Ok(request) = build_request(&shared) else {
            stats.errors += 1;
            continue;
        };
        let started = Instant::now();
        match shared.client.request(request).await {
            Ok(response) => {
                let status = response.status();
                let drained = response.into_body().collect().await.is_ok();
                let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                *stats.statuses.entry(status.as_u16()).or_default() += 1;
                if drained && (status.is_success() || status == StatusCode::CONFLICT) {
                    stats.latencies_us.push(micros);
                } else {
                    stats.errors += 1;
                }
            }
            Err(_) => {
                stats.errors += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    stats
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)]) / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.connections)
        .build(connector);
    let shared = Arc::new(Shared {
        client,
        sequence: AtomicU64::new(0),
        run_id: unix_now() * 1000 + u64::from(std::process::id() % 1000),
        args,
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(shared.args.seconds);
    let budget = Arc::new(AtomicU64::new(shared.args.max_requests));
    let tasks: Vec<_> = (0..shared.args.connections)
        .map(|_| tokio::spawn(worker(shared.clone(), deadline, budget.clone())))
        .collect();
    let mut all = WorkerStats::default();
    for task in tasks {
        let s = task.await.context("a worker failed")?;
        all.latencies_us.extend(s.latencies_us);
        all.errors += s.errors;
        for (k, v) in s.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.latencies_us.sort_unstable();
    #[allow(clippy::cast_precision_loss)]
    let ok = all.latencies_us.len() as f64;
    let per_request = match shared.args.scenario {
        Scenario::Batch => shared.args.batch_size,
        _ => 1,
    };
    #[allow(clippy::cast_precision_loss)]
    let events_per_s = ok * per_request as f64 / elapsed;
    let (p50, p99, max) = (
        percentile(&all.latencies_us, 0.50),
        percentile(&all.latencies_us, 0.99),
        percentile(&all.latencies_us, 1.0),
    );
    println!(
        "{:?}: {} ok, {} errors in {elapsed:.1}s -> {:.0} req/s, {events_per_s:.0} items/s; latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; statuses {:?}",
        shared.args.scenario,
        all.latencies_us.len(),
        all.errors,
        ok / elapsed,
        all.statuses
    );
    println!(
        "{}",
        serde_json::json!({
            "scenario": format!("{:?}", shared.args.scenario).to_lowercase(),
            "ok": all.latencies_us.len(), "errors": all.errors, "seconds": elapsed,
            "requests_per_s": ok / elapsed, "items_per_s": events_per_s,
            "p50_ms": p50, "p99_ms": p99, "max_ms": max,
        })
    );
    if all.errors > 0 && all.latencies_us.is_empty() {
        bail!("every request failed");
    }
    Ok(())
}
