//! The batching client: thousands of events, a handful of requests, nothing lost.
//!
//! Records 10,000 events from 8 concurrent tasks through a [`MeteringClient`] in batching
//! mode (500 events or 200 ms per request), then flushes and prints the counters. With
//! `METERING_API_URL` set it ships to that `metering-server` (authenticated with
//! `METERING_API_KEY`, an `ingest` or `admin` key); batches the server does not take are
//! spilled to `metering-spill.db` in the temp directory and replayed on the next run.
//! Without it, the events go to an in-memory engine in this process.
//!
//! Run with `cargo run -p example-client-batching`, or against a server:
//!
//! ```text
//! METERING_ADMIN_KEY=dev-admin-key cargo run -p metering-http --bin metering-server -- serve --bind 127.0.0.1:8000
//! METERING_API_URL=http://127.0.0.1:8000 METERING_API_KEY=dev-admin-key cargo run -p example-client-batching
//! ```
//!
//! `METERING_TRANSPORT_MODE`, `METERING_BATCH_SIZE` and `METERING_BATCH_INTERVAL_MS` override
//! the settings below.

use std::time::{Duration, Instant};

use metering::client::{ClientConfig, MeteringClient};
use metering::{MemoryStore, Metering, NewEvent, Quantity};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = ClientConfig::default()
        .with_batch_size(500)
        .with_batch_interval(Duration::from_millis(200));
    let from_env = ClientConfig::from_env()?;
    config.api_url = from_env.api_url;
    config.api_key = from_env.api_key;
    if std::env::var_os("METERING_TRANSPORT_MODE").is_some() {
        config.mode = from_env.mode;
    }
    if std::env::var_os("METERING_BATCH_SIZE").is_some() {
        config.batch_size = from_env.batch_size;
    }
    if std::env::var_os("METERING_BATCH_INTERVAL_MS").is_some() {
        config.batch_interval = from_env.batch_interval;
    }

    let client = match &config.api_url {
        Some(url) => {
            println!("shipping to {url}");
            let spill = std::env::temp_dir().join("metering-spill.db");
            MeteringClient::connect(config.clone().with_spill_path(spill)).await?
        }
        None => {
            println!("METERING_API_URL is not set: using an in-memory engine");
            let engine = Metering::builder(MemoryStore::new()).build();
            MeteringClient::embedded(engine, config.clone()).await?
        }
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1250u32 {
                let tenant = format!("org_{:03}", (worker * 1250 + i) % 50);
                client.record(
                    NewEvent::new(tenant, "api", "search")
                        .with_quantity(Quantity::from_units(u64::from(i % 3 + 1))),
                );
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let recorded = started.elapsed();
    let report = client.shutdown().await;
    let stats = report.stats;
    println!(
        "recorded 10000 events in {recorded:?}; delivered in {:?}",
        started.elapsed()
    );
    println!(
        "sent {} | retried {} | spilled {} (still pending {}) | replayed {} | dropped {} | rejected {}",
        stats.sent,
        stats.retried,
        stats.spilled,
        report.pending_spill,
        stats.replayed,
        stats.dropped,
        stats.rejected
    );
    Ok(())
}
