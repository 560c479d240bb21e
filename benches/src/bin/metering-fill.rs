//! `metering-fill`: fills a store with the realistic workload (see `metering-load`) straight
//! through the library, no HTTP, so a benchmark can start from a store that already holds
//! millions of events in minutes. Timestamps spread uniformly over the last `--spread-days`.
//!
//! ```text
//! cargo run --release -p metering-benches --bin metering-fill -- \
//!     --store sqlite://bench.db --events 10000000
//! ```

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use metering_benches::workload::{backfill_age_secs, mix, realistic};
use metering_core::{Metering, NewEvent, Quantity, Store};

#[derive(Debug, Parser)]
#[command(about = "Fill a metering store with the realistic benchmark workload")]
struct Args {
    /// The store: `sqlite://path` or `postgres://...` (with `?schema=` for a schema).
    #[arg(long)]
    store: String,
    /// How many events to add.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per insert.
    #[arg(long, default_value_t = 10_000)]
    batch: u64,
    /// Days the timestamps spread over, ending now.
    #[arg(long, default_value_t = 30)]
    spread_days: i64,
    /// Add the events in time order (the same timestamps spread evenly instead of at
    /// random): the store ends up with the same shape, and filling it costs minutes instead
    /// of the random-order insert floor (about 10,000 events/s on SQLite).
    #[arg(long)]
    ordered: bool,
    /// Numbers the events from here (a second fill with the same seed adds the same events
    /// again, with new ids).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn new_event(n: u64, now: i64, args: &Args) -> anyhow::Result<NewEvent> {
    let r = mix(n);
    let json = realistic(n, r);
    let text = |key: &str| json[key].as_str().unwrap_or_default().to_owned();
    let units = json["quantity"].as_u64().unwrap_or(1);
    let age = if args.ordered {
        let spread = u128::try_from(args.spread_days.max(1) * 86_400)?;
        let done = u128::from(n - args.seed);
        i64::try_from(spread - spread * done / u128::from(args.events.max(1)))?
    } else {
        i64::try_from(backfill_age_secs(r, args.spread_days))?
    };
    let at = chrono::DateTime::from_timestamp(now - age, 0).context("a timestamp")?;
    let serde_json::Value::Object(metadata) = json["metadata"].clone() else {
        bail!("metadata is an object");
    };
    Ok(
        NewEvent::new(text("tenant_id"), text("resource"), text("feature"))
            .with_quantity(Quantity::from_units(units))
            .with_timestamp(at)
            .with_metadata(metadata),
    )
}

async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let config =
            metering_store_sqlite::SqliteConfig::from_url(url)?.with_meter_fold_interval(None);
        Ok(std::sync::Arc::new(
            metering_store_sqlite::SqliteStore::open(config).await?,
        ))
    } else if url.starts_with("postgres") {
        // As `metering-server` reads it (`?schema=` and the other store parameters).
        Ok(metering_http::backends::open_store(url).await?)
    } else {
        bail!("--store must be sqlite://... or postgres://...")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engine = Metering::builder_arc(open(&args.store).await?).build();
    #[allow(clippy::disallowed_methods)] // the spread ends at the real now
    let now = chrono::Utc::now().timestamp();
    let started = Instant::now();
    let mut n = args.seed;
    let end = args.seed + args.events;
    while n < end {
        let last = end.min(n + args.batch.max(1));
        let batch = (n..last)
            .map(|i| new_event(i, now, &args))
            .collect::<anyhow::Result<Vec<_>>>()?;
        engine.ingest(batch).await?;
        n = last;
        if (n - args.seed) % 1_000_000 < args.batch {
            eprintln!(
                "{} events, {:.0} s",
                n - args.seed,
                started.elapsed().as_secs_f64()
            );
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = args.events as f64 / started.elapsed().as_secs_f64();
    println!(
        "filled {} events in {:.1} s ({rate:.0} events/s)",
        args.events,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
