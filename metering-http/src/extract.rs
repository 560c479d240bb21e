//! Extractors that answer with the error envelope: the API key, a JSON body and the query
//! string.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use metering_core::Principal;
use metering_core::json::{JsonError, JsonObject};
use serde_json::Value;
use serde_json::value::RawValue;

use metering_core::api::ErrorCode;

use crate::error::ApiError;
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
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let guard = state.guard().zip(address);
        if let Some((guard, address)) = guard {
            guard
                .admit(address)
                .map_err(|wait| too_many_failures(state, wait))?;
        }
        let principal = match state.engine().authenticate(secret).await {
            Ok(principal) => principal,
            Err(e @ metering_core::Error::Unauthenticated(_)) => {
                if let Some((guard, address)) = guard {
                    if let Err(wait) = guard.failed(address) {
                        tracing::warn!(%address, "too many failed authentications; blocking the address for {wait} s");
                        return Err(too_many_failures(state, wait));
                    }
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
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

/// The answer to an address with no failed authentications left.
fn too_many_failures(state: &AppState, wait: u64) -> ApiError {
    state.metrics().record_rate_limited();
    ApiError::new(
        ErrorCode::RateLimited,
        "too many failed authentications from this address; retry after the Retry-After delay",
    )
    .with_retry_after(wait)
}

/// A JSON request body, kept as the text it was sent as so the core decoders read every
/// number from its literal (never through a float) and report every bad field at once.
/// Wrong content type, text that is not UTF-8 and an oversized body are answered with the
/// envelope (400, 400, 413); text that is not JSON is answered 400 by [`JsonBody::raw`] and
/// [`JsonBody::object`].
#[derive(Debug, Clone)]
pub struct JsonBody(Bytes);

impl JsonBody {
    fn text(&self) -> &str {
        // Checked to be UTF-8 when the body was read.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The body as one raw JSON value.
    ///
    /// # Errors
    ///
    /// 400 when the body is not JSON.
    pub fn raw(&self) -> Result<&RawValue, ApiError> {
        serde_json::from_str(self.text()).map_err(not_json)
    }

    /// The members of the body, or `None` when it is JSON but not an object.
    ///
    /// # Errors
    ///
    /// 400 when the body is not JSON.
    pub fn object(&self) -> Result<Option<JsonObject<'_>>, ApiError> {
        match JsonObject::parse(self.text()) {
            Ok(object) => Ok(Some(object)),
            Err(JsonError::NotAnObject) => Ok(None),
            Err(JsonError::Syntax(e)) => Err(not_json(e)),
        }
    }

    /// The body as a [`Value`], for messages that carry no decimals.
    ///
    /// # Errors
    ///
    /// 400 when the body is not JSON.
    pub fn value(&self) -> Result<Value, ApiError> {
        serde_json::from_str(self.text()).map_err(not_json)
    }
}

fn not_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("the body is not valid JSON: {e}"))
}

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
            return Err(not_json_content());
        }
        read_json(request, state).await
    }
}

/// A JSON request body that may be left out: an empty body is `None` (whatever its content
/// type), anything else is read as [`JsonBody`].
#[derive(Debug, Clone)]
pub(crate) struct OptionalJsonBody(pub(crate) Option<JsonBody>);

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json_content_type(request.headers());
        let body = read_json(request, state).await?;
        if body.0.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        if !json {
            return Err(not_json_content());
        }
        Ok(OptionalJsonBody(Some(body)))
    }
}

fn not_json_content() -> ApiError {
    ApiError::bad_request("the body must be JSON with Content-Type: application/json")
}

/// Reads the body (within the configured limit) and checks it is UTF-8.
async fn read_json<S: Send + Sync>(request: Request, state: &S) -> Result<JsonBody, ApiError> {
    {
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
        if let Err(e) = std::str::from_utf8(&bytes) {
            return Err(ApiError::bad_request(format!(
                "the body is not valid JSON: it is not UTF-8 ({e})"
            )));
        }
        Ok(JsonBody(bytes))
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
