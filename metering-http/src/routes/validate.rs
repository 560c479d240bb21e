//! `POST /v1/meter/validate`.

use axum::Json;
use axum::extract::State;
use metering_core::{Action, QuotaDecision, ValidateRequest};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Checks a quota, and with `consume: true` records the usage when allowed, atomically.
#[utoipa::path(
    post,
    path = "/v1/meter/validate",
    tag = "quotas",
    summary = "Check a quota, optionally consuming atomically (role ingest or admin)",
    request_body(content = metering_core::ValidateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The decision (a denial is still 200, with allowed false)", body = metering_core::QuotaDecision),
        (status = 400, description = "BAD_REQUEST: not JSON, or not application/json", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn validate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<Json<QuotaDecision>, ApiError> {
    principal.authorize(Action::Validate)?;
    let request = ValidateRequest::from_json(body.raw()?)?;
    let consume = request.consume;
    let decision = state.engine().validate_as(&principal, request).await?;
    let outcome = match (&decision.quota_id, decision.allowed) {
        (None, _) => "no_quota",
        (Some(_), true) => "allowed",
        (Some(_), false) => "denied",
    };
    state.metrics().record_quota_decision(outcome, consume);
    Ok(Json(decision))
}
