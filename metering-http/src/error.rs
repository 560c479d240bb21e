//! [`ApiError`]: the one place where a failure becomes an HTTP status, a `code` and the
//! error envelope `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metering_core::{Error, ValidationErrors};
use serde_json::{Value, json};

/// The message of every 500: the cause goes to the log, never to the client.
pub const INTERNAL_MESSAGE: &str = "internal error; the cause has been logged";

/// The machine-readable `code` of an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body is not JSON, the content type is wrong, or a query parameter is unknown
    /// or unreadable.
    BadRequest,
    /// 401: the API key is missing, unknown, revoked or expired.
    Unauthorized,
    /// 403: the key lacks the role, or is scoped to another tenant.
    Forbidden,
    /// 404: unknown id or path.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the write conflicts with stored state.
    Conflict,
    /// 413: the body is over the byte limit, or a batch over the event limit.
    PayloadTooLarge,
    /// 422: well-formed input that breaks a rule.
    ValidationError,
    /// 429: the key sent more requests than its rate limit allows; `Retry-After` says when
    /// to try again.
    RateLimited,
    /// 500: a bug.
    Internal,
    /// 503: the store (or a required cache) is unreachable.
    Unavailable,
}

impl ErrorCode {
    /// The wire form, e.g. `VALIDATION_ERROR`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// The HTTP status that goes with the code.
    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An error answered with the error envelope.
///
/// Build it from a [`metering_core::Error`] (`?` does that) or with one of the HTTP-level
/// constructors; [`IntoResponse`] renders it.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<Value>,
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
    pub fn with_details(mut self, details: Value) -> Self {
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
        Self::new(ErrorCode::BadRequest, errors.to_string()).with_details(field_details(errors))
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

fn field_details(errors: &ValidationErrors) -> Value {
    let list: Vec<Value> = errors
        .errors()
        .iter()
        .map(|e| json!({"index": e.index, "field": e.field, "message": e.message}))
        .collect();
    let first = errors.errors().first().map(|e| e.field.clone());
    json!({"field": first, "errors": list})
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Validation(errors) => {
                ApiError::new(ErrorCode::ValidationError, errors.to_string())
                    .with_details(field_details(&errors))
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
        let mut error = json!({"code": self.code.as_str(), "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response = (self.code.status(), Json(json!({ "error": error }))).into_response();
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
            assert_eq!(api.code().status().as_u16(), status);
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
        assert_eq!(details["field"], "events[3].quantity");
        assert_eq!(details["errors"][1]["index"], 5);
        assert_eq!(details["errors"].as_array().map(Vec::len), Some(2));
    }
}
