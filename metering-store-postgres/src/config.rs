//! [`PostgresConfig`]: where the database is and how the store uses it.

use std::fmt;
use std::time::Duration;

/// How to reach PostgreSQL and how the store lays out its data.
///
/// Build one with [`PostgresConfig::new`] (or `Default`) and the `with_*` setters. Its `Debug`
/// output hides the password of the URL.
///
/// ```
/// use std::time::Duration;
/// use metering_store_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://metering:secret@db.internal/metering")
///     .with_max_connections(20)
///     .with_schema("metering")
///     .with_retention(Some(Duration::from_secs(400 * 86_400)));
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The connection URL, e.g. `postgres://user:password@host:5432/db`.
    pub url: String,
    /// Most connections the pool opens (default 10).
    pub max_connections: u32,
    /// Connections the pool keeps open even when idle (default 0).
    pub min_connections: u32,
    /// How long opening one connection may take (default 3 s).
    pub connect_timeout: Duration,
    /// How long a call waits for a connection before failing with
    /// [`metering_core::Error::Unavailable`] (default 3 s), e.g. while the server is down.
    pub acquire_timeout: Duration,
    /// The PostgreSQL schema that holds every table (created when missing); `None` uses the
    /// connection's default search path (usually `public`).
    pub schema: Option<String>,
    /// Monthly partitions created ahead of the current month by [`crate::PostgresStore::maintain`]
    /// (default 2). Ingest creates any other month it needs on the fly.
    pub partitions_ahead: u32,
    /// Events older than this are dropped, a whole monthly partition at a time, by
    /// [`crate::PostgresStore::maintain`]; `None` (the default) keeps everything.
    pub retention: Option<Duration>,
    /// Whether [`crate::PostgresStore::open`] applies the migrations (default true).
    pub run_migrations: bool,
    /// How often the store folds the rollup deltas ingest appends into the rollup tables, on
    /// a task of the runtime that opened it (default 1 s); `None` leaves it to
    /// [`crate::PostgresStore::compact_rollups`]. Results are exact either way.
    pub compaction_interval: Option<Duration>,
    /// How long the store's meter folder rests when it has caught up (default 200 ms);
    /// `None` runs no folder (call [`crate::PostgresStore::fold_meters`] instead). Meter
    /// answers are exact either way; an unfolded backlog only makes them slower.
    pub meter_fold_interval: Option<Duration>,
    /// Most events the meter folder reads per step and group of meters (default 5,000).
    pub meter_fold_batch: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            url: "postgres://localhost/metering".to_owned(),
            max_connections: 10,
            min_connections: 0,
            connect_timeout: Duration::from_secs(3),
            acquire_timeout: Duration::from_secs(3),
            schema: None,
            partitions_ahead: 2,
            retention: None,
            run_migrations: true,
            compaction_interval: Some(Duration::from_secs(1)),
            meter_fold_interval: Some(Duration::from_millis(200)),
            meter_fold_batch: 5_000,
        }
    }
}

impl PostgresConfig {
    /// The defaults with `url`.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            ..PostgresConfig::default()
        }
    }

    /// Sets the connection URL.
    #[must_use]
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets the largest pool size.
    #[must_use]
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets how many idle connections the pool keeps.
    #[must_use]
    pub fn with_min_connections(mut self, min: u32) -> Self {
        self.min_connections = min;
        self
    }

    /// Sets the timeout for opening one connection.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long a call waits for a pooled connection.
    #[must_use]
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Keeps every table in `schema` (created when missing).
    #[must_use]
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets how many monthly partitions are created ahead of need.
    #[must_use]
    pub fn with_partitions_ahead(mut self, months: u32) -> Self {
        self.partitions_ahead = months;
        self
    }

    /// Sets the retention; `None` keeps everything.
    #[must_use]
    pub fn with_retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Sets whether opening the store applies migrations.
    #[must_use]
    pub fn with_run_migrations(mut self, run: bool) -> Self {
        self.run_migrations = run;
        self
    }

    /// Sets how often the store compacts its rollup deltas; `None` turns the background
    /// compaction off (call [`crate::PostgresStore::compact_rollups`] instead).
    #[must_use]
    pub fn with_compaction_interval(mut self, every: Option<Duration>) -> Self {
        self.compaction_interval = every;
        self
    }

    /// Sets how long the meter folder rests once caught up; `None` runs no folder (call
    /// [`crate::PostgresStore::fold_meters`] instead).
    #[must_use]
    pub fn with_meter_fold_interval(mut self, every: Option<Duration>) -> Self {
        self.meter_fold_interval = every;
        self
    }

    /// Sets the most events the meter folder reads per step and group of meters.
    #[must_use]
    pub fn with_meter_fold_batch(mut self, events: usize) -> Self {
        self.meter_fold_batch = events.max(1);
        self
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &metering_core::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("schema", &self.schema)
            .field("partitions_ahead", &self.partitions_ahead)
            .field("retention", &self.retention)
            .field("run_migrations", &self.run_migrations)
            .field("compaction_interval", &self.compaction_interval)
            .field("meter_fold_interval", &self.meter_fold_interval)
            .field("meter_fold_batch", &self.meter_fold_batch)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = PostgresConfig::new("postgres://app:s3cr3t@db:5432/metering?sslmode=require");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/metering?sslmode=require"),
            "{shown}"
        );
    }
}
