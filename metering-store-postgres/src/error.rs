//! Classifying sqlx errors into [`metering_core::Error`].

use metering_core::Error;

/// A failure of this crate, before it is classified for callers.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// The driver failed.
    #[error("PostgreSQL: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("PostgreSQL migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("PostgreSQL returned an unreadable {what}: {detail}")]
    Corrupt {
        /// Which value.
        what: &'static str,
        /// Why it is unreadable.
        detail: String,
    },
}

impl PgError {
    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        PgError::Corrupt {
            what,
            detail: detail.to_string(),
        }
    }
}

/// SQLSTATE codes that mean "the server cannot serve us right now".
fn is_unavailable_code(code: &str) -> bool {
    // 08xxx connection exceptions, 57P01..57P03 shutdown / cannot connect now,
    // 53300 too many connections, 53xxx insufficient resources in general.
    code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
}

/// Whether retrying the same transaction may succeed (deadlock, serialization failure, or an
/// event id that turned out to be stored, see [`is_id_taken`]).
pub(crate) fn is_retryable(err: &sqlx::Error) -> bool {
    is_id_taken(err)
        || matches!(err, sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

/// Whether a write failed because one of its event ids is stored already (or was claimed by
/// a concurrent batch that committed first): a unique violation on `event_ids`. A retry that
/// skips stored ids sees it.
pub(crate) fn is_id_taken(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code() == Some("23505".into()) && db.constraint() == Some("event_ids_pkey"))
}

/// Whether the insert hit a timestamp with no partition (SQLSTATE 23514, no partition found).
pub(crate) fn is_missing_partition(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c == "23514") && db.message().contains("no partition"))
}

fn classify_sqlx(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::unavailable("PostgreSQL is unavailable", err),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                Error::Conflict(db.message().to_owned())
            } else if db.code().is_some_and(|c| is_unavailable_code(&c)) {
                Error::unavailable("PostgreSQL is unavailable", err)
            } else {
                Error::internal("PostgreSQL query failed", err)
            }
        }
        _ => Error::internal("PostgreSQL query failed", err),
    }
}

impl From<PgError> for Error {
    fn from(err: PgError) -> Self {
        match err {
            PgError::Sqlx(e) => classify_sqlx(e),
            PgError::Migrate(sqlx::migrate::MigrateError::Execute(e)) => classify_sqlx(e),
            PgError::Migrate(e) => Error::internal("PostgreSQL migrations failed", e),
            e @ PgError::Corrupt { .. } => Error::internal("PostgreSQL returned bad data", e),
        }
    }
}

/// Shorthand: a sqlx error straight to a core error.
pub(crate) fn db(err: sqlx::Error) -> Error {
    PgError::Sqlx(err).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_failures_are_unavailable() {
        assert!(db(sqlx::Error::PoolTimedOut).is_unavailable());
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = db(sqlx::Error::Io(refused));
        assert!(err.is_unavailable());
        assert!(
            std::error::Error::source(&err).is_some(),
            "the cause is kept"
        );
    }

    #[test]
    fn other_failures_are_internal() {
        let err = db(sqlx::Error::RowNotFound);
        assert!(matches!(err, Error::Internal { .. }));
        let err: Error = PgError::corrupt("quantity", "x").into();
        assert!(matches!(err, Error::Internal { .. }));
    }

    #[test]
    fn sqlstates() {
        assert!(is_unavailable_code("08006"));
        assert!(is_unavailable_code("57P01"));
        assert!(!is_unavailable_code("42P01"));
    }
}
