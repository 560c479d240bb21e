//! The handlers, one module per resource. Each parses its input, authorizes the caller's
//! `Principal` (role and tenant scope), calls the engine and returns the answer; errors go
//! through [`crate::ApiError`]. The router serves them, and the OpenAPI document lists
//! them, from the one route list in `api_routes` (`lib.rs`).

pub(crate) mod aggregates;
pub(crate) mod api_keys;
pub(crate) mod events;
pub(crate) mod health;
pub(crate) mod quotas;
pub(crate) mod validate;

use axum::http::{Method, Uri};

use crate::error::{ApiError, ErrorCode};

/// A known path with a method it does not serve (the `Allow` header lists those it does).
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}
