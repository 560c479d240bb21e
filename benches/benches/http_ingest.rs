//! Batch ingest through the REST router, in process: a `POST /v1/meter/events` body of 1,000
//! realistic events (2,000 tenants, timestamps spread over 30 days, fractional quantities,
//! metadata with strings and numbers on every event) is read, decoded exactly, validated and
//! stored. No socket: the router is driven with `tower::ServiceExt::oneshot`.
//!
//! - `http_ingest/memory_batch_1000`: into the in-memory store, so the body's decoding and
//!   validation are most of the time (the worst case for any decoding cost);
//! - `http_ingest/sqlite_batch_1000`: into a SQLite store in a temporary directory, default
//!   settings (WAL, `synchronous=FULL`), as `metering-server` runs it.
//!
//! Run with `cargo bench -p metering-benches --bench http_ingest`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::fmt::Write as _;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use metering_core::{MemoryStore, Metering, NewApiKey, Role, Store};
use metering_http::{AppState, ServerConfig};
use metering_store_sqlite::{SqliteConfig, SqliteStore};
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

const BATCH: usize = 1_000;
const TENANTS: usize = 2_000;
const SECRET: &str = "mk_bench_admin_secret_0123456789";

/// Batch `round` as JSON text: deterministic, a different slice of tenants and times each
/// round, timestamps up to 30 days back from a fixed present.
fn batch_body(round: usize) -> String {
    let mut body = String::with_capacity(BATCH * 330);
    body.push_str("{\"events\":[");
    for i in 0..BATCH {
        let n = round * BATCH + i;
        if i > 0 {
            body.push(',');
        }
        let tenant = (n * 7919) % TENANTS;
        let minutes_back = (n * 104_729) % (30 * 24 * 60);
        let day = 1 + minutes_back / (24 * 60) % 28;
        let hour = minutes_back / 60 % 24;
        let minute = minutes_back % 60;
        let _ = write!(
            body,
            "{{\"tenant_id\":\"org_{tenant:05}\",\"resource\":\"api.v1.invoices\",\
             \"feature\":\"{feature}\",\"quantity\":{units}.{frac:03},\
             \"timestamp\":\"2025-10-{day:02}T{hour:02}:{minute:02}:{second:02}.{micros:06}Z\",\
             \"metadata\":{{\"user_id\":\"u_{user:06}\",\"region\":\"{region}\",\
             \"latency_ms\":{latency},\"tokens\":{tokens},\"ratio\":0.{ratio:04},\
             \"plan\":\"{plan}\",\"request_id\":\"req-{n:012}\"}}}}",
            feature = ["create", "read", "update", "delete", "export"][n % 5],
            units = n % 97 + 1,
            frac = n % 1000,
            second = n % 60,
            micros = n % 1_000_000,
            user = n % 50_000,
            region = ["eu-west-1", "us-east-1", "ap-south-1"][n % 3],
            latency = n % 900 + 3,
            tokens = n % 100_000,
            ratio = n % 10_000,
            plan = ["free", "pro", "enterprise"][n % 3],
        );
    }
    body.push_str("]}");
    body
}

async fn router_over<S: Store>(store: S) -> Router {
    let config = ServerConfig::default();
    let engine = Metering::builder(store).rules(config.event_rules()).build();
    engine
        .import_api_key(NewApiKey::new("bench", Role::Admin), SECRET)
        .await
        .expect("import the key");
    metering_http::router(AppState::new(engine, config))
}

async fn post(router: &Router, body: String) {
    let request = Request::post("/v1/meter/events")
        .header("content-type", "application/json")
        .header("x-api-key", SECRET)
        .body(Body::from(body))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::CREATED);
}

fn ingest(c: &mut Criterion) {
    let rt = Runtime::new().expect("a runtime");
    let memory = rt.block_on(router_over(MemoryStore::new()));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = rt.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("bench.db")))
            .await
            .expect("open SQLite");
        router_over(store).await
    });
    let bodies: Vec<String> = (0..64).map(batch_body).collect();
    let bytes: usize = bodies.iter().map(String::len).sum::<usize>() / bodies.len();
    println!("http_ingest: {bytes} bytes per batch body on average");

    let mut group = c.benchmark_group("http_ingest");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, router) in [
        ("memory_batch_1000", &memory),
        ("sqlite_batch_1000", &sqlite),
    ] {
        let mut round = 0;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    bodies[round % bodies.len()].clone()
                },
                |body| rt.block_on(post(router, body)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
