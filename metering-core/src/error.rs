//! The one error type of the framework.

use std::fmt;

use serde::Serialize;

/// A boxed error, used as the source of [`Error::Unavailable`] and [`Error::Internal`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible call in the framework.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure, classified by what the caller can do about it.
///
/// The HTTP layer maps each variant to exactly one status code, in one place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Well-formed input that breaks a rule; every problem found is listed. Fix the input.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// A request larger than a configured limit (too many events in one batch).
    #[error("{0}")]
    TooLarge(String),
    /// No API key, or an unknown, revoked or expired one.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key is valid but lacks the role, or is scoped to another tenant.
    #[error("{0}")]
    Forbidden(String),
    /// The addressed record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The write conflicts with stored state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A backend (store or required cache) cannot be reached right now; retry later.
    #[error("{message}")]
    Unavailable {
        /// What could not be reached, safe to show to clients.
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
    },
    /// A bug or an unexpected backend failure. The message is for logs, not for clients.
    #[error("{message}")]
    Internal {
        /// What failed (for logs).
        message: String,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// An [`Error::Unavailable`] with its cause.
    pub fn unavailable(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Internal`] with its cause.
    pub fn internal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(ValidationErrors::single(field, message))
    }

    /// Whether retrying later may succeed.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// One broken rule: which field (a path such as `events[3].quantity`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The index of the event in its batch, when the error belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The field path, e.g. `events[3].quantity` or `tenant_id`.
    pub field: String,
    /// What is wrong, for people.
    pub message: String,
}

/// Every problem found in one input, collected before anything is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// No errors yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// One error on one field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.push(None, field, message);
        errors
    }

    /// Adds a problem.
    pub fn push(
        &mut self,
        index: Option<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            index,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Whether nothing is wrong.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems, in the order found.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// `Ok(value)` when empty, else `Err(Error::Validation)`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when any problem was recorded.
    pub fn into_result<T>(self, value: T) -> Result<T> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(Error::Validation(self))
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("invalid input"),
            [one] => write!(f, "{}: {}", one.field, one.message),
            [first, rest @ ..] => write!(
                f,
                "{}: {} (and {} more errors)",
                first.field,
                first.message,
                rest.len()
            ),
        }
    }
}
