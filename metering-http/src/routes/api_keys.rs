//! `POST /v1/meter/api-keys`, `GET /v1/meter/api-keys` and `DELETE /v1/meter/api-keys/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::{Action, ApiKeyId, Error, NewApiKey};
use serde_json::{Value, json};

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
    request_body(content = crate::openapi::schema::NewApiKey, content_type = "application/json"),
    responses(
        (status = 201, description = "The key; `key` is shown only here", body = crate::openapi::schema::CreatedApiKey),
        (status = 400, description = "BAD_REQUEST", body = crate::openapi::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = crate::openapi::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.authorize(Action::Admin)?;
    let new = NewApiKey::from_json(&body.value()?)?;
    if principal.key.tenant_id.is_some() {
        // A scoped admin may only hand out keys scoped to its own tenant.
        match &new.tenant_id {
            Some(t) => principal.authorize_tenant(t)?,
            None => {
                return Err(Error::Forbidden(
                    "a tenant-scoped key may only create keys for its own tenant".into(),
                )
                .into());
            }
        }
    }
    let created = state.engine().create_api_key(new).await?;
    let mut record = serde_json::to_value(&created.key)
        .map_err(|e| Error::internal("serializing an API key", e))?;
    record["key"] = Value::String(created.secret);
    Ok((StatusCode::CREATED, Json(record)))
}

/// Lists keys without secrets, with `last_used_at`.
#[utoipa::path(
    get,
    path = "/v1/meter/api-keys",
    tag = "api-keys",
    summary = "List API keys, without secrets (role admin)",
    responses(
        (status = 200, description = "Keys", body = crate::openapi::schema::ApiKeyList),
        (status = 400, description = "BAD_REQUEST: a query parameter", body = crate::openapi::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    principal.authorize(Action::Admin)?;
    Params::new(pairs, &[]).finish()?;
    let own = principal.key.tenant_id.clone();
    let keys: Vec<_> = state
        .engine()
        .list_api_keys()
        .await?
        .into_iter()
        .filter(|k| own.is_none() || k.tenant_id == own)
        .collect();
    Ok(Json(json!({ "api_keys": keys })))
}

/// Revokes a key; 204, and it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/meter/api-keys/{id}",
    tag = "api-keys",
    summary = "Revoke an API key (role admin)",
    params(("id" = uuid::Uuid, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "NOT_FOUND", body = crate::openapi::ErrorEnvelope),
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
