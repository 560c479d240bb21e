//! The shared store conformance suite, against the real PostgreSQL, one schema per case.

mod common;

async fn setup() -> Option<metering_store_postgres::PostgresStore> {
    common::fresh_store().await
}

metering_testkit::store_conformance!(setup);
