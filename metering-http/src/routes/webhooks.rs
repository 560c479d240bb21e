//! `POST /v1/meter/webhooks`, `GET /v1/meter/webhooks`, `DELETE /v1/meter/webhooks/{id}`,
//! and an endpoint's deliveries: `GET .../{id}/deliveries` and
//! `POST .../{id}/deliveries/{delivery_id}/retry`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::api::{CreatedWebhookBody, DeliveryList, WebhookList};
use metering_core::{Action, Delivery, DeliveryId, Error, NewWebhook, WebhookId};

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
    let id = webhook_id(&id)?;
    state.engine().delete_webhook_as(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The most deliveries one listing returns.
const MAX_DELIVERIES: u32 = 1_000;

/// Lists an endpoint's latest deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/meter/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "List an endpoint's deliveries (role admin, no tenant scope)",
    description = "The latest deliveries to the endpoint, newest first: each message's id (its \
                   `webhook-id` header), type, status (`pending`, `delivered`, `failed`), attempts \
                   and the HTTP status of the last one.",
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("limit" = Option<u32>, Query, description = "At most this many (1 to 1000, default 100)", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "Deliveries", body = metering_core::api::DeliveryList),
        (status = 400, description = "BAD_REQUEST: a query parameter", body = metering_core::api::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: limit out of range", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<DeliveryList>, ApiError> {
    principal.authorize(Action::Admin)?;
    let mut params = Params::new(pairs, &["limit"]);
    let limit = params.read("limit", crate::params::number);
    if limit.is_some_and(|l| !(1..=MAX_DELIVERIES).contains(&l)) {
        params.reject("limit", "must be from 1 to 1000");
    }
    params.finish()?;
    let id = webhook_id(&id)?;
    let limit = usize::try_from(limit.unwrap_or(100)).unwrap_or(100);
    let deliveries = state
        .engine()
        .list_deliveries_as(&principal, id, limit)
        .await?;
    Ok(Json(DeliveryList { deliveries }))
}

/// Sends a delivery again, with the same message id; 202 with the delivery, now pending.
#[utoipa::path(
    post,
    path = "/v1/meter/webhooks/{id}/deliveries/{delivery_id}/retry",
    tag = "webhooks",
    summary = "Send a delivery again (role admin, no tenant scope)",
    description = "The delivery becomes pending and due now, whatever its state; the message \
                   keeps its id, so receivers that deduplicate by `webhook-id` see it once.",
    params(
        ("id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = uuid::Uuid, Path, description = "The delivery's id"),
    ),
    responses(
        (status = 202, description = "Queued to be sent again", body = metering_core::Delivery),
        (status = 403, description = "FORBIDDEN", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    principal.authorize(Action::Admin)?;
    let id = webhook_id(&id)?;
    let delivery: DeliveryId = delivery
        .parse()
        .map_err(|_| Error::NotFound(format!("delivery `{delivery}`")))?;
    let delivery = state
        .engine()
        .retry_delivery_as(&principal, id, delivery)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// An endpoint id from the path; 404 when it is not one.
fn webhook_id(raw: &str) -> Result<WebhookId, Error> {
    raw.parse()
        .map_err(|_| Error::NotFound(format!("webhook `{raw}`")))
}
