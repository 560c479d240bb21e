//! `PUT /v1/meter/quotas`, `GET /v1/meter/quotas` and `DELETE /v1/meter/quotas/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use metering_core::api::QuotaList;
use metering_core::{Action, Error, Quota, QuotaId, QuotaScope, QuotaSpec};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::params::Params;
use crate::state::AppState;

/// Inserts or replaces the quota of `(tenant_id, resource, feature)`.
#[utoipa::path(
    put,
    path = "/v1/meter/quotas",
    tag = "quotas",
    summary = "Create or replace a quota (role admin)",
    request_body(content = metering_core::api::QuotaBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The stored quota", body = metering_core::Quota),
        (status = 400, description = "BAD_REQUEST", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: the named meter does not exist", body = metering_core::api::ErrorEnvelope),
        (status = 409, description = "CONFLICT", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR (also a meter whose aggregation is not sum, count or unique_count)", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn upsert(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<Json<Quota>, ApiError> {
    principal.authorize(Action::Admin)?;
    let spec = QuotaSpec::from_json(body.raw()?)?;
    Ok(Json(
        state.engine().upsert_quota_as(&principal, spec).await?,
    ))
}

/// Lists quotas, all or one tenant's (`tenant_id=*` lists the defaults).
#[utoipa::path(
    get,
    path = "/v1/meter/quotas",
    tag = "quotas",
    summary = "List quotas (role read or admin)",
    params(("tenant_id" = Option<metering_core::api::NameFilter>, Query, description = "One tenant's quotas; `*` lists the defaults")),
    responses(
        (status = 200, description = "Quotas", body = metering_core::api::QuotaList),
        (status = 400, description = "BAD_REQUEST", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<QuotaList>, ApiError> {
    principal.authorize(Action::Read)?;
    let mut p = Params::new(pairs, &["tenant_id"]);
    let scope = p.check("tenant_id", QuotaScope::parse);
    p.finish()?;
    let quotas = state.engine().list_quotas_as(&principal, scope).await?;
    Ok(Json(QuotaList { quotas }))
}

/// Deletes a quota; 204.
#[utoipa::path(
    delete,
    path = "/v1/meter/quotas/{id}",
    tag = "quotas",
    summary = "Delete a quota (role admin)",
    params(("id" = uuid::Uuid, Path, description = "The quota's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // An id that is not even a UUID names no quota.
    let id: QuotaId = id
        .parse()
        .map_err(|_| Error::NotFound(format!("quota `{id}`")))?;
    state.engine().delete_quota_as(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
