//! The shared store conformance suite, against the real PostgreSQL, one schema per case,
//! with the rollup deltas compacted after every write: reads see the usage in the rollup
//! tables. (`conformance.rs` runs the suite with the usage in the deltas.)

mod common;

async fn setup() -> Option<common::Compacting> {
    common::fresh_store().await.map(common::Compacting)
}

metering_testkit::store_conformance!(setup);
