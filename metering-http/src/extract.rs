//! Extractors that answer with the error envelope: the API key, a JSON body and the query
//! string.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use metering_core::Principal;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The authenticated caller: the key from `X-API-Key` or `Authorization: Bearer`.
///
/// Extraction fails with 401 when no key is presented or the key does not authenticate;
/// handlers then check the role with [`Principal::authorize`].
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

/// The secret presented with a request, if any.
fn presented_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    if let Some(value) = headers.get("x-api-key") {
        let key = value
            .to_str()
            .map_err(|_| ApiError::new(ErrorCode::Unauthorized, "X-API-Key is not valid text"))?;
        return Ok(Some(key.trim()).filter(|k| !k.is_empty()));
    }
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().map_err(|_| {
            ApiError::new(ErrorCode::Unauthorized, "Authorization is not valid text")
        })?;
        let (scheme, key) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "Authorization must use the Bearer scheme",
            ));
        }
        return Ok(Some(key.trim()).filter(|k| !k.is_empty()));
    }
    Ok(None)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(secret) = presented_key(&parts.headers)? else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "an API key is required (X-API-Key or Authorization: Bearer)",
            ));
        };
        let principal = state.engine().authenticate(secret).await?;
        if let Some(limiter) = state.limiter() {
            if let Err(wait) = limiter.check(&principal.key.id) {
                state.metrics().record_rate_limited();
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    "too many requests for this API key; retry after the Retry-After delay",
                )
                .with_retry_after(wait.max(1)));
            }
        }
        Ok(Auth(principal))
    }
}

/// A request body read as any JSON value, so the core decoders can report every bad field
/// at once. Wrong content type, unreadable JSON and an oversized body are answered with the
/// envelope (400, 400, 413).
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json_content_type(request.headers()) {
            return Err(ApiError::bad_request(
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        ApiError::new(
                            ErrorCode::PayloadTooLarge,
                            "the request body is larger than the configured limit",
                        )
                    } else {
                        ApiError::bad_request(format!(
                            "the request body could not be read: {rejection}"
                        ))
                    }
                })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))
    }
}

/// The query string as name/value pairs, percent-decoded, in order.
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| {
                    ApiError::bad_request(format!("the query string cannot be read: {e}"))
                })?;
        Ok(QueryPairs(pairs))
    }
}
