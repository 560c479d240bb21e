//! [`SqliteConfig`]: where the database lives and how hard it syncs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The path that names a private in-memory database.
pub const MEMORY_PATH: &str = ":memory:";

/// How hard SQLite syncs each commit to disk (`PRAGMA synchronous`).
///
/// The database always runs in WAL mode; this only decides when the WAL is synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Synchronous {
    /// Every commit is synced before it is acknowledged: an acknowledged batch survives both a
    /// killed process and a power loss. The default.
    #[default]
    Full,
    /// Commits are synced at WAL checkpoints only: an acknowledged batch survives a killed
    /// process (the WAL is in the OS page cache), but a power loss or kernel crash may lose the
    /// last commits (never corrupting the database). Faster for small batches.
    Normal,
}

impl Synchronous {
    /// The `PRAGMA synchronous` value.
    #[must_use]
    pub fn as_pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Settings of a [`SqliteStore`](crate::SqliteStore).
///
/// ```
/// use std::time::Duration;
/// use metering_store_sqlite::{SqliteConfig, Synchronous};
///
/// let config = SqliteConfig::new("data/metering.db")
///     .with_synchronous(Synchronous::Normal)
///     .with_busy_timeout(Duration::from_secs(10))
///     .with_readers(2);
/// assert_eq!(config.readers, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SqliteConfig {
    /// The database file, created when missing (its directory must exist); `:memory:` for a
    /// private in-memory database. Default: `metering.db` in the working directory.
    pub path: PathBuf,
    /// Durability of each commit. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// How long a write waits for another process holding the database lock before failing
    /// with [`metering_core::Error::Unavailable`]. Default: 5 seconds. Written in
    /// milliseconds when deserialized (`busy_timeout_ms`).
    #[serde(rename = "busy_timeout_ms", deserialize_with = "millis")]
    pub busy_timeout: Duration,
    /// How many read connections serve queries in parallel with the writer (WAL lets readers
    /// and the writer work at once). Zero sends reads to the writer connection. In-memory
    /// databases always use the writer connection. Default: 4.
    pub readers: usize,
    /// SQLite page cache of the whole store, in KiB: the writer connection gets two thirds,
    /// the readers share the last third. Default: 32,768 (32 MiB). The cache fills as pages
    /// are read, so a small database never uses all of it. On the realistic load benchmark
    /// (a million events, 500 MB) 96 MiB bought no measurable speed over 32 MiB (the
    /// operating system caches the file too) and cost the server 95 MiB more at its peak.
    pub cache_kib: u32,
    /// How long the background meter folder waits once every meter is folded before it
    /// looks again; `None` runs no folder (call [`crate::SqliteStore::fold_meters`]).
    /// Answers are exact either way; unfolded events only make queries read more rows.
    /// Default: 200 ms. Written in milliseconds when deserialized (`meter_fold_interval_ms`,
    /// 0 for none).
    #[serde(
        rename = "meter_fold_interval_ms",
        deserialize_with = "optional_millis"
    )]
    pub meter_fold_interval: Option<Duration>,
    /// The most events one fold transaction reads, over all meters; each holds the write
    /// lock, so this bounds how long an ingest can wait behind the folder. Default: 2,000.
    pub meter_fold_batch: usize,
}

fn optional_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    u64::deserialize(d).map(|ms| (ms > 0).then(|| Duration::from_millis(ms)))
}

fn millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: PathBuf::from("metering.db"),
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            readers: 4,
            cache_kib: 32 * 1024,
            meter_fold_interval: Some(Duration::from_millis(200)),
            meter_fold_batch: 2_000,
        }
    }
}

impl SqliteConfig {
    /// The default settings for the database file at `path`.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            ..SqliteConfig::default()
        }
    }

    /// A private in-memory database, gone when the last handle is dropped.
    #[must_use]
    pub fn in_memory() -> Self {
        SqliteConfig::new(MEMORY_PATH)
    }

    /// Sets the database path.
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self
    }

    /// Sets the durability of commits.
    #[must_use]
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets how long a write waits for another process's lock.
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Sets the number of read connections.
    #[must_use]
    pub fn with_readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// Sets the page cache of the whole store, in KiB (see [`SqliteConfig::cache_kib`]).
    #[must_use]
    pub fn with_cache_kib(mut self, kib: u32) -> Self {
        self.cache_kib = kib;
        self
    }

    /// Sets the pause of the background meter folder; `None` runs none (see
    /// [`SqliteConfig::meter_fold_interval`]).
    #[must_use]
    pub fn with_meter_fold_interval(mut self, interval: Option<Duration>) -> Self {
        self.meter_fold_interval = interval;
        self
    }

    /// Sets the most events one fold transaction reads.
    #[must_use]
    pub fn with_meter_fold_batch(mut self, events: usize) -> Self {
        self.meter_fold_batch = events.max(1);
        self
    }

    /// Whether this names an in-memory database.
    #[must_use]
    pub fn is_in_memory(&self) -> bool {
        self.path == Path::new(MEMORY_PATH)
    }

    /// Reads a `sqlite:` URL: `sqlite://relative/path.db`, `sqlite:///absolute/path.db`,
    /// `sqlite:path.db`, `sqlite::memory:` or `sqlite://:memory:`.
    ///
    /// # Errors
    ///
    /// [`metering_core::Error::Validation`] when the URL is not one of these forms.
    pub fn from_url(url: &str) -> metering_core::Result<Self> {
        let invalid = || {
            metering_core::Error::invalid(
                "url",
                "must be sqlite://path/to/file.db, sqlite:///absolute/path.db or sqlite::memory:",
            )
        };
        let rest = url.trim().strip_prefix("sqlite:").ok_or_else(invalid)?;
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if path.is_empty() || path.contains(['?', '#']) {
            return Err(invalid());
        }
        Ok(SqliteConfig::new(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let path = |url: &str| SqliteConfig::from_url(url).map(|c| c.path);
        assert_eq!(
            path("sqlite://data/m.db").ok(),
            Some(PathBuf::from("data/m.db"))
        );
        assert_eq!(
            path("sqlite:///var/lib/m.db").ok(),
            Some(PathBuf::from("/var/lib/m.db"))
        );
        assert_eq!(path("sqlite:m.db").ok(), Some(PathBuf::from("m.db")));
        assert!(SqliteConfig::from_url("sqlite::memory:").is_ok_and(|c| c.is_in_memory()));
        assert!(SqliteConfig::from_url("sqlite://:memory:").is_ok_and(|c| c.is_in_memory()));
        assert!(SqliteConfig::from_url("postgres://x/y").is_err());
        assert!(SqliteConfig::from_url("sqlite://").is_err());
        assert!(SqliteConfig::from_url("sqlite://m.db?mode=ro").is_err());
    }

    #[test]
    fn deserializes_with_defaults() {
        let c: SqliteConfig = serde_json::from_str(
            r#"{"path": "x.db", "synchronous": "normal", "busy_timeout_ms": 250}"#,
        )
        .expect("valid config");
        assert_eq!(c.path, PathBuf::from("x.db"));
        assert_eq!(c.synchronous, Synchronous::Normal);
        assert_eq!(c.busy_timeout, Duration::from_millis(250));
        assert_eq!(c.readers, SqliteConfig::default().readers);
    }
}
