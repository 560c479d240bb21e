//! The shared store conformance suite, against the real PostgreSQL, one schema per case,
//! with no compaction (reads see the usage in the rollup deltas) and a meter folder racing
//! every write in tiny steps. (`conformance_compacted.rs` runs it with the usage in the
//! rollup tables and meters folded step by step after each write.)

use std::time::Duration;

mod common;

async fn setup() -> Option<metering_store_postgres::PostgresStore> {
    let url = common::url()?;
    let config = common::config(&url, &common::schema_name())
        .with_meter_fold_interval(Some(Duration::from_millis(1)))
        .with_meter_fold_batch(5);
    Some(common::open_with(config).await)
}

metering_testkit::store_conformance!(setup);
