//! The shared store conformance suite, against the real PostgreSQL, one schema per case,
//! with no compaction: reads see the usage in the rollup deltas. (`conformance_compacted.rs`
//! runs it with the usage in the rollup tables.)

mod common;

async fn setup() -> Option<metering_store_postgres::PostgresStore> {
    common::fresh_store().await
}

metering_testkit::store_conformance!(setup);
