//! `POST /v1/meter/api-keys`, `GET /v1/meter/api-keys` and `DELETE /v1/meter/api-keys/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::api::{ApiKeyList, CreatedApiKeyBody};
use metering_core::{Action, ApiKeyId, Error, NewApiKey};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::params::Params;
use crate::state::AppState;

/// Makes a key; 201 with the record and `key`, the only time the secret is shown.
#[utoipa::path(
    post,
    path = "/v1/meter/api-keys",
    tag = "api-keys",
    summary = "Create an API key (role admin)",
    request_body(content = metering_core::NewApiKey, content_type = "application/json"),
    responses(
        (status = 201, description = "The key; `key` is shown only here", body = metering_core::api::CreatedApiKeyBody),
        (status = 400, description = "BAD_REQUEST", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<(StatusCode, Json<CreatedApiKeyBody>), ApiError> {
    principal.authorize(Action::Admin)?;
    let new = NewApiKey::from_json(&body.value()?)?;
    let created = state.engine().create_api_key_as(&principal, new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Lists keys without secrets, with `last_used_at`.
#[utoipa::path(
    get,
    path = "/v1/meter/api-keys",
    tag = "api-keys",
    summary = "List API keys, without secrets (role admin)",
    responses(
        (status = 200, description = "Keys", body = metering_core::api::ApiKeyList),
        (status = 400, description = "BAD_REQUEST: a query parameter", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ApiKeyList>, ApiError> {
    principal.authorize(Action::Admin)?;
    Params::new(pairs, &[]).finish()?;
    let api_keys = state.engine().list_api_keys_as(&principal).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// Revokes a key; 204, and it stops working at once. The last active admin key is kept.
#[utoipa::path(
    delete,
    path = "/v1/meter/api-keys/{id}",
    tag = "api-keys",
    summary = "Revoke an API key (role admin)",
    description = "The last active admin key is never revoked through the API (409): create \
                   another admin key first. An admin may revoke its own key while another \
                   admin key is active.",
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
        (status = 409, description = "CONFLICT: the last active admin key", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: ApiKeyId = id
        .parse()
        .map_err(|_| Error::NotFound(format!("API key `{id}`")))?;
    state.engine().revoke_api_key_as(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
