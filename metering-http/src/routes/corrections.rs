//! `POST /v1/meter/events/{id}/void`, `POST /v1/meter/events/{id}/amend` and
//! `GET /v1/meter/events/{id}/history`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::api::EventHistory;
use metering_core::{Action, Amendment, Error, Event, EventId, ValidationErrors, void_reason};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, OptionalJsonBody};
use crate::state::AppState;

/// An id in a path: one that breaks the id rules names no event.
fn event_id(id: String) -> Result<EventId, ApiError> {
    EventId::new(id.clone()).map_err(|_| Error::NotFound(format!("event `{id}`")).into())
}

/// Voids an event.
#[utoipa::path(
    post,
    path = "/v1/meter/events/{id}/void",
    tag = "events",
    summary = "Void an event: it stops counting and is kept for audit (role admin)",
    description = "The event stops counting in aggregates, meters and quota usage, in whatever \
                   window it fell; it stays stored and is listed with `voided_at` and \
                   `void_reason` when `GET /v1/meter/events` has `include_voided=true`. Voiding \
                   a voided event changes nothing (200, unchanged). A tenant-scoped admin key \
                   may void only its tenant's events. The body is optional.",
    params(("id" = String, Path, description = "The event's id")),
    request_body(content = metering_core::api::VoidBody, content_type = "application/json", description = "Optional: an empty body is no reason"),
    responses(
        (status = 200, description = "The event, voided", body = metering_core::Event),
        (status = 400, description = "BAD_REQUEST: the body is not JSON", body = metering_core::api::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN: not an admin key", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such event (or another tenant's)", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a bad reason, or an unknown field", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn void(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Json<Event>, ApiError> {
    principal.authorize(Action::Admin)?;
    let id = event_id(id)?;
    let raw = body.as_ref().map(JsonBody::raw).transpose()?;
    let mut errors = ValidationErrors::new();
    let reason = void_reason(raw, &mut errors);
    errors.into_result(())?;
    Ok(Json(
        state
            .engine()
            .void_event_as(&principal, &id, reason)
            .await?,
    ))
}

/// Amends an event.
#[utoipa::path(
    post,
    path = "/v1/meter/events/{id}/amend",
    tag = "events",
    summary = "Replace an event by a corrected copy, keeping the original for audit (role admin)",
    description = "In one step, voids the original (with `reason`) and records the replacement: \
                   the given fields over the original's, with a new id (or the given `id`) and \
                   `amends` naming the original. 201 with the replacement; a retry with the \
                   same `id` returns the replacement already recorded (200). Amending a voided \
                   event is 409: amend its replacement instead (see the history).",
    params(("id" = String, Path, description = "The original event's id")),
    request_body(content = metering_core::api::AmendBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The replacement, recorded", body = metering_core::Event),
        (status = 200, description = "A retry: the replacement with this id was recorded before", body = metering_core::Event),
        (status = 400, description = "BAD_REQUEST: the body is not JSON", body = metering_core::api::ErrorEnvelope),
        (status = 403, description = "FORBIDDEN: not an admin key", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such event (or another tenant's)", body = metering_core::api::ErrorEnvelope),
        (status = 409, description = "CONFLICT: the event is voided, or the replacement's id belongs to another event", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a corrected field breaks an event rule, with its name", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn amend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    principal.authorize(Action::Admin)?;
    let id = event_id(id)?;
    let mut errors = ValidationErrors::new();
    let amendment = Amendment::from_json(body.raw()?, &mut errors);
    let amendment = errors.into_result(amendment)?.unwrap_or_default();
    let amended = state
        .engine()
        .amend_event_as(&principal, &id, amendment)
        .await?;
    let status = if amended.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(amended.event)))
}

/// The correction chain of an event.
#[utoipa::path(
    get,
    path = "/v1/meter/events/{id}/history",
    tag = "events",
    summary = "The correction chain of an event, oldest first (role read or admin)",
    description = "Every event of the chain the event belongs to: the events it amends (back to \
                   the first), itself, and the replacements recorded after it, voided ones \
                   included.",
    params(("id" = String, Path, description = "Any event of the chain")),
    responses(
        (status = 200, description = "The chain", body = metering_core::api::EventHistory),
        (status = 403, description = "FORBIDDEN: not a read or admin key", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such event (or another tenant's)", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn history(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<EventHistory>, ApiError> {
    principal.authorize(Action::Read)?;
    let id = event_id(id)?;
    let events = state.engine().event_history_as(&principal, &id).await?;
    Ok(Json(EventHistory { events }))
}
