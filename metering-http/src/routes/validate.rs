//! `POST /v1/meter/validate`.

use axum::Json;
use axum::extract::State;
use metering_core::{Action, QuotaDecision, ValidateRequest};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody};
use crate::state::AppState;

/// Checks a quota, and with `consume: true` records the usage when allowed, atomically.
pub(crate) async fn validate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody,
) -> Result<Json<QuotaDecision>, ApiError> {
    principal.authorize(Action::Validate)?;
    let request = ValidateRequest::from_json(&body)?;
    principal.authorize_tenant(&request.tenant_id)?;
    Ok(Json(state.engine().validate(request).await?))
}
