//! The error envelope `{"error": {"code", "message", "details"}}` and its codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{FieldError, ValidationErrors};

/// The message of every 500: the cause goes to the log, never to the client.
pub const INTERNAL_MESSAGE: &str = "internal error; the cause has been logged";

/// The machine-readable `code` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// 503: the store (or a required cache) is unreachable, or the ingest queue is full.
    Unavailable,
}

impl ErrorCode {
    /// Every code, in status order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

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
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::ValidationError => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code `{0}`")]
pub struct UnknownErrorCode(String);

impl FromStr for ErrorCode {
    type Err = UnknownErrorCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownErrorCode(s.to_owned()))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Every error answer: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The error itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people; a 500 always has the same fixed message.
    pub message: String,
    /// For 400 and 422: every problem found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

/// The problems of a 400 or 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetails {
    /// The first field in error.
    pub field: Option<String>,
    /// Every problem, in request order.
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl ErrorEnvelope {
    /// An error answer with a code and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code,
                message: message.into(),
                details: None,
            },
        }
    }

    /// Adds `details`.
    #[must_use]
    pub fn with_details(mut self, details: ErrorDetails) -> Self {
        self.error.details = Some(details);
        self
    }
}

impl From<&ValidationErrors> for ErrorDetails {
    fn from(errors: &ValidationErrors) -> Self {
        ErrorDetails {
            field: errors.errors().first().map(|e| e.field.clone()),
            errors: errors.errors().to_vec(),
        }
    }
}

impl ErrorDetails {
    /// Every problem; when an answer names only `field`, that field with `message`.
    #[must_use]
    pub fn field_errors(&self, message: &str) -> Vec<FieldError> {
        if !self.errors.is_empty() {
            return self.errors.clone();
        }
        self.field
            .iter()
            .map(|field| FieldError {
                index: None,
                field: field.clone(),
                message: message.to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for code in ErrorCode::ALL {
            let text = serde_json::to_string(&code).expect("serialize");
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).ok(), Some(code));
        }
        assert!(serde_json::from_str::<ErrorCode>("\"TEAPOT\"").is_err());
    }

    #[test]
    fn details_list_every_field_in_order() {
        let mut errors = ValidationErrors::new();
        errors.push(Some(3), "events[3].quantity", "must be > 0");
        errors.push(Some(5), "events[5].tenant_id", "is required");
        let envelope = ErrorEnvelope::new(ErrorCode::ValidationError, errors.to_string())
            .with_details(ErrorDetails::from(&errors));
        let json: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&envelope).expect("serialize"))
                .expect("json");
        assert_eq!(json["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(json["error"]["details"]["field"], "events[3].quantity");
        assert_eq!(json["error"]["details"]["errors"][1]["index"], 5);
        let back: ErrorEnvelope = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, envelope);
    }
}
