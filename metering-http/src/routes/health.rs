//! `GET /v1/meter/health` (no key needed).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use metering_core::HealthStatus;
use metering_core::api::HealthReport;

use crate::state::AppState;

/// 200 `healthy` or `degraded` (the quota cache is down; checks fall back to the store),
/// 503 `unhealthy` (the store is down).
#[utoipa::path(
    get,
    path = "/v1/meter/health",
    tag = "operations",
    summary = "Health of the store and the quota cache (no key)",
    responses(
        (status = 200, description = "healthy, or degraded when only the quota cache is down", body = metering_core::api::HealthReport),
        (status = 503, description = "unhealthy: the store is down", body = metering_core::api::HealthReport),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let engine = state.engine();
    let health = engine.health().await;
    let status = match health.status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let report = HealthReport::new(health, engine.now(), env!("CARGO_PKG_VERSION"));
    (status, Json(report))
}
