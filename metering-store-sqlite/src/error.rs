//! Failures inside this crate, and their one classification into [`metering_core::Error`].

use rusqlite::ErrorCode;

/// The result of work on a connection.
pub(crate) type DbResult<T> = Result<T, SqliteError>;

/// What can go wrong talking to SQLite.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SqliteError {
    /// A driver or database error.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored metadata that is not a JSON object.
    #[error("stored metadata is not a JSON object: {0}")]
    Metadata(#[from] serde_json::Error),
    /// A stored value this version cannot read (written by something else, or corrupted).
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
    /// The database was migrated by a newer version of this crate.
    #[error("the database schema is version {found}, newer than the {known} this version knows")]
    SchemaTooNew {
        /// The stored `user_version`.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// The writer thread has stopped (it panicked, or the store is shutting down).
    #[error("the SQLite writer thread has stopped")]
    WriterGone,
    /// A blocking read task could not run.
    #[error("a SQLite read task failed: {0}")]
    Task(String),
    /// A rule refused the write (an unknown meter, a meter in use); the transaction is
    /// rolled back and the caller gets the rule's error as it is.
    #[error("{0}")]
    Refused(#[from] metering_core::Error),
}

/// A stored value of another type than the column should hold, read in place.
impl From<rusqlite::types::FromSqlError> for SqliteError {
    fn from(error: rusqlite::types::FromSqlError) -> Self {
        SqliteError::Corrupt(error.to_string())
    }
}

impl From<SqliteError> for metering_core::Error {
    fn from(error: SqliteError) -> Self {
        use metering_core::Error;
        let error = match error {
            SqliteError::Refused(refused) => return refused,
            other => other,
        };
        match &error {
            SqliteError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
                // Another process holds the lock past the busy timeout, or the file cannot be
                // reached or written right now: retrying later may succeed.
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied => {
                    Error::unavailable("the SQLite database is unavailable", error)
                }
                ErrorCode::ConstraintViolation => {
                    Error::Conflict(format!("the write conflicts with stored data: {error}"))
                }
                _ => Error::internal("SQLite failed", error),
            },
            SqliteError::WriterGone | SqliteError::Task(_) => {
                Error::unavailable("the SQLite store is shutting down or has failed", error)
            }
            _ => Error::internal("SQLite store failure", error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let conn = rusqlite::Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .expect("schema");
        let unique = conn
            .execute("INSERT INTO t VALUES (1)", [])
            .expect_err("a unique violation");
        let e: metering_core::Error = SqliteError::from(unique).into();
        assert!(matches!(e, metering_core::Error::Conflict(_)), "{e:?}");
        let syntax = conn.execute("NOT SQL", []).expect_err("a syntax error");
        let e: metering_core::Error = SqliteError::from(syntax).into();
        assert!(matches!(e, metering_core::Error::Internal { .. }), "{e:?}");
        let e: metering_core::Error = SqliteError::WriterGone.into();
        assert!(e.is_unavailable());
        // The cause chain is kept, not flattened into a string.
        assert!(std::error::Error::source(&e).is_some());
    }
}
