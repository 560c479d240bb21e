//! [`ApiError`]: the one place where a failure becomes an HTTP status, a `code` and the
//! error envelope `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metering_core::api::{ErrorCode, ErrorDetails, ErrorEnvelope, INTERNAL_MESSAGE};
use metering_core::{Error, ValidationErrors};

/// The HTTP status of `code`.
pub(crate) fn status(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error answered with the error envelope.
///
/// Build it from a [`metering_core::Error`] (`?` does that) or with one of the HTTP-level
/// constructors; [`IntoResponse`] renders it.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<ErrorDetails>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Sets the `Retry-After` header, in seconds (503 has 5 by default).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds `details` to the envelope.
    #[must_use]
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 for a request that cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 400 listing every unreadable part of a request (unknown or malformed query parameters),
    /// with the same `details` shape as a validation error.
    #[must_use]
    pub fn bad_request_fields(errors: &ValidationErrors) -> Self {
        Self::new(ErrorCode::BadRequest, errors.to_string()).with_details(errors.into())
    }

    /// 404 for a path no route serves.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no such path: {path}"))
    }

    /// The code.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message shown to the client.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Validation(errors) => {
                ApiError::new(ErrorCode::ValidationError, errors.to_string())
                    .with_details((&errors).into())
            }
            Error::TooLarge(message) => ApiError::new(ErrorCode::PayloadTooLarge, message),
            Error::Unauthenticated(message) => ApiError::new(ErrorCode::Unauthorized, message),
            Error::Forbidden(message) => ApiError::new(ErrorCode::Forbidden, message),
            e @ Error::NotFound(_) => ApiError::new(ErrorCode::NotFound, e.to_string()),
            e @ Error::Conflict(_) => ApiError::new(ErrorCode::Conflict, e.to_string()),
            Error::Unavailable { message, source } => {
                let cause = source.as_ref().map(ToString::to_string);
                tracing::warn!(%message, cause = cause.as_deref(), "backend unavailable");
                ApiError::new(ErrorCode::Unavailable, message)
            }
            other => {
                // Internal, or a variant added later: a bug as far as the client can tell.
                tracing::error!(error = %other, cause = ?std::error::Error::source(&other), "internal error");
                ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut envelope = ErrorEnvelope::new(self.code, self.message);
        envelope.error.details = self.details;
        let mut response = (status(self.code), Json(envelope)).into_response();
        match self.code {
            ErrorCode::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer, ApiKey header=\"X-API-Key\""),
                );
            }
            ErrorCode::Unavailable | ErrorCode::RateLimited => {
                let seconds = self.retry_after.unwrap_or(5);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_has_one_status() {
        let cases = [
            (
                Error::invalid("quantity", "must be > 0"),
                422,
                "VALIDATION_ERROR",
            ),
            (Error::TooLarge("x".into()), 413, "PAYLOAD_TOO_LARGE"),
            (Error::Unauthenticated("x".into()), 401, "UNAUTHORIZED"),
            (Error::Forbidden("x".into()), 403, "FORBIDDEN"),
            (Error::NotFound("quota".into()), 404, "NOT_FOUND"),
            (Error::Conflict("x".into()), 409, "CONFLICT"),
            (
                Error::unavailable("store down", "refused"),
                503,
                "UNAVAILABLE",
            ),
            (Error::internal("SELECT secret", "boom"), 500, "INTERNAL"),
        ];
        for (error, status, code) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.code().status(), status);
            assert_eq!(api.code().as_str(), code);
            if status == 500 {
                assert_eq!(api.message(), INTERNAL_MESSAGE);
            }
        }
    }

    #[test]
    fn validation_details_list_every_field() {
        let mut errors = ValidationErrors::new();
        errors.push(Some(3), "events[3].quantity", "must be > 0");
        errors.push(Some(5), "events[5].tenant_id", "is required");
        let api = ApiError::from(Error::Validation(errors));
        let details = api.details.expect("details");
        assert_eq!(details.field.as_deref(), Some("events[3].quantity"));
        assert_eq!(details.errors[1].index, Some(5));
        assert_eq!(details.errors.len(), 2);
    }
}
