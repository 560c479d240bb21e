//! The conformance suite of `metering-testkit`, on a fresh database file per case.

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
        SqliteStore::open(SqliteConfig::new(path))
            .await
            .expect("a fresh SQLite database opens"),
    )
}

metering_testkit::store_conformance!(setup);
