//! `POST /v1/meter/validate`.

use axum::Json;
use axum::extract::State;
use metering_core::{Action, MeterCheck, QuotaDecision, ValidateRequest};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Checks a quota, and with `consume: true` records the usage when allowed, atomically. A
/// body that names a `meter` checks the tenant's quota on that meter.
#[utoipa::path(
    post,
    path = "/v1/meter/validate",
    tag = "quotas",
    summary = "Check a quota, optionally consuming atomically (role ingest or admin)",
    request_body(content = metering_core::api::ValidateBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The decision (a denial is still 200, with allowed false)", body = metering_core::QuotaDecision),
        (status = 400, description = "BAD_REQUEST: not JSON, or not application/json", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: the named meter does not exist", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR (also an event that does not match the meter)", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn validate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<Json<QuotaDecision>, ApiError> {
    principal.authorize(Action::Validate)?;
    let raw = body.raw()?;
    let names_meter = metering_core::json::JsonObject::from_raw(raw)
        .is_some_and(|body| body.contains_key("meter"));
    let (decision, consume) = if names_meter {
        let check = MeterCheck::from_json(raw)?;
        let consume = check.consume;
        (
            state.engine().check_meter_as(&principal, check).await?,
            consume,
        )
    } else {
        let request = ValidateRequest::from_json(raw)?;
        let consume = request.consume;
        (
            state.engine().validate_as(&principal, request).await?,
            consume,
        )
    };
    let outcome = match (&decision.quota_id, decision.allowed) {
        (None, _) => "no_quota",
        (Some(_), true) => "allowed",
        (Some(_), false) => "denied",
    };
    state.metrics().record_quota_decision(outcome, consume);
    Ok(Json(decision))
}
