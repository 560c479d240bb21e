//! The conformance suite of `metering-testkit`, on a fresh database file per case, with the
//! background meter folder running every millisecond in batches of 5 events, so folds race
//! with every write and query of the cases. (`conformance_folded.rs` folds in fixed steps.)

use std::sync::Mutex;

use metering_store_sqlite::{SqliteConfig, SqliteStore};

/// Keeps every case's temporary directory alive until the test binary exits.
static DIRS: Mutex<Vec<tempfile::TempDir>> = Mutex::new(Vec::new());

async fn setup() -> Option<SqliteStore> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("metering.db");
    DIRS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(dir);
    Some(
        SqliteStore::open(
            SqliteConfig::new(path)
                .with_meter_fold_interval(Some(std::time::Duration::from_millis(1)))
                .with_meter_fold_batch(5),
        )
        .await
        .expect("a fresh SQLite database opens"),
    )
}

metering_testkit::store_conformance!(setup);
