//! `GET /v1/meter/health` (no key needed).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use metering_core::HealthStatus;
use serde_json::{Value, json};

use crate::state::AppState;

/// 200 `healthy` or `degraded` (the quota cache is down; checks fall back to the store),
/// 503 `unhealthy` (the store is down).
#[utoipa::path(
    get,
    path = "/v1/meter/health",
    tag = "operations",
    summary = "Health of the store and the quota cache (no key)",
    responses(
        (status = 200, description = "healthy, or degraded when only the quota cache is down", body = crate::openapi::schema::Health),
        (status = 503, description = "unhealthy: the store is down", body = crate::openapi::schema::Health),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let engine = state.engine();
    let health = engine.health().await;
    let status = match health.status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let connected = |up: bool| if up { "connected" } else { "disconnected" };
    (
        status,
        Json(json!({
            "status": health.status,
            "timestamp": metering_core::time::format_rfc3339(engine.now()),
            "version": env!("CARGO_PKG_VERSION"),
            "services": {
                "database": connected(health.store_connected),
                "quota_cache": connected(health.cache_connected),
            },
        })),
    )
}
