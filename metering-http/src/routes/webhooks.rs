//! `POST /v1/meter/webhooks`, `GET /v1/meter/webhooks` and `DELETE /v1/meter/webhooks/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::api::{CreatedWebhookBody, WebhookList};
use metering_core::{Action, Error, NewWebhook, WebhookId};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::params::Params;
use crate::state::AppState;

/// Registers an endpoint; 201 with the record and its signing `secret`, shown only here.
#[utoipa::path(
    post,
    path = "/v1/meter/webhooks",
    tag = "webhooks",
    summary = "Register a webhook endpoint (role admin, no tenant scope)",
    description = "Alerts about quotas are POSTed to `url`, signed as Standard Webhooks \
                   (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the returned \
                   `secret`. `events` defaults to every type.",
    request_body(content = metering_core::NewWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "The endpoint; `secret` is shown only here", body = metering_core::api::CreatedWebhookBody),
        (status = 400, description = "BAD_REQUEST", body = metering_core::api::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN: not an admin key, or scoped to a tenant", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a URL that is not http(s), an unknown event type", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<(StatusCode, Json<CreatedWebhookBody>), ApiError> {
    principal.authorize(Action::Admin)?;
    let new = NewWebhook::from_json(&body.value()?)?;
    let created = state.engine().create_webhook_as(&principal, new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Lists endpoints without their secrets.
#[utoipa::path(
    get,
    path = "/v1/meter/webhooks",
    tag = "webhooks",
    summary = "List webhook endpoints, without secrets (role admin, no tenant scope)",
    responses(
        (status = 200, description = "Endpoints, oldest first", body = metering_core::api::WebhookList),
        (status = 400, description = "BAD_REQUEST: a query parameter", body = metering_core::api::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<WebhookList>, ApiError> {
    principal.authorize(Action::Admin)?;
    Params::new(pairs, &[]).finish()?;
    let webhooks = state.engine().list_webhooks_as(&principal).await?;
    Ok(Json(WebhookList { webhooks }))
}

/// Deletes an endpoint; 204, and it receives nothing more.
#[utoipa::path(
    delete,
    path = "/v1/meter/webhooks/{id}",
    tag = "webhooks",
    summary = "Delete a webhook endpoint (role admin, no tenant scope)",
    params(("id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "FORBIDDEN", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.authorize(Action::Admin)?;
    let id: WebhookId = id
        .parse()
        .map_err(|_| Error::NotFound(format!("webhook `{id}`")))?;
    state.engine().delete_webhook_as(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
