//! The handlers, one module per resource. Each parses its input, calls the engine's `_as`
//! method with the caller's `Principal` (the engine applies roles and tenant scope) and
//! returns one of the typed [REST messages](metering_core::api); errors go through
//! [`crate::ApiError`]. A handler checks the key's role once before reading its input, so a
//! key without the role gets 403 rather than a 400 or 422 about a body it may not send.
//! The router serves the handlers, and the OpenAPI document lists them, from the one route
//! list in `api_routes` (`lib.rs`).

pub(crate) mod aggregates;
pub(crate) mod api_keys;
pub(crate) mod corrections;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod health;
pub(crate) mod meters;
pub(crate) mod quotas;
pub(crate) mod validate;
pub(crate) mod webhooks;

use axum::http::{Method, Uri};
use metering_core::api::ErrorCode;

use crate::error::ApiError;

/// A known path with a method it does not serve (the `Allow` header lists those it does).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}
