//! `PUT|GET|DELETE /v1/meter/meters/{key}`, `GET /v1/meter/meters` and
//! `GET /v1/meter/meters/{key}/query`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use metering_core::api::{MeterList, meter_csv};
use metering_core::{
    Action, Error, Feature, Meter, MeterGroup, MeterKey, MeterQuery, MeterReport, MeterSpec,
    Resource, TenantId, WindowType, parse_tz,
};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::params::{Params, date_time};
use crate::routes::export::{csv_response, wants_csv};
use crate::state::AppState;

const QUERY_PARAMS: &[&str] = &[
    "start_date",
    "end_date",
    "window_type",
    "tz",
    "group_by",
    "tenant_id",
    "resource",
    "feature",
];

/// A key in a path that reads or deletes: one that breaks the key rules names no meter.
fn existing_key(key: &str) -> Result<MeterKey, ApiError> {
    MeterKey::new(key).map_err(|_| Error::NotFound(format!("no meter `{key}`")).into())
}

/// Creates or replaces a meter.
#[utoipa::path(
    put,
    path = "/v1/meter/meters/{key}",
    tag = "meters",
    summary = "Create or replace a meter (role admin)",
    params(("key" = String, Path, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$", description = "1 to 64 characters of a-z, 0-9, `_` and `-`")),
    request_body(content = metering_core::api::MeterBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The stored meter", body = metering_core::api::MeterSchema),
        (status = 400, description = "BAD_REQUEST: the body is not JSON", body = metering_core::api::ErrorEnvelope),
        (status = 409, description = "CONFLICT: a quota uses the meter and the new aggregation cannot carry one", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a bad key or definition, with the field path", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn put(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key): Path<String>,
    body: JsonBody,
) -> Result<Json<Meter>, ApiError> {
    principal.authorize(Action::Admin)?;
    let key = MeterKey::new(key).map_err(|e| Error::invalid("key", e))?;
    let spec = MeterSpec::from_json(body.raw()?)?;
    Ok(Json(
        state
            .engine()
            .define_meter_as(&principal, &key, &spec)
            .await?,
    ))
}

/// Lists every meter.
#[utoipa::path(
    get,
    path = "/v1/meter/meters",
    tag = "meters",
    summary = "List meters (role read or admin)",
    responses(
        (status = 200, description = "Every meter, by key", body = metering_core::api::MeterList),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<MeterList>, ApiError> {
    principal.authorize(Action::Read)?;
    Params::new(pairs, &[]).finish()?;
    let meters = state.engine().list_meters_as(&principal).await?;
    Ok(Json(MeterList { meters }))
}

/// One meter.
#[utoipa::path(
    get,
    path = "/v1/meter/meters/{key}",
    tag = "meters",
    summary = "Get a meter (role read or admin)",
    params(("key" = String, Path, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$", description = "The meter's key")),
    responses(
        (status = 200, description = "The meter", body = metering_core::api::MeterSchema),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key): Path<String>,
) -> Result<Json<Meter>, ApiError> {
    principal.authorize(Action::Read)?;
    let key = existing_key(&key)?;
    Ok(Json(state.engine().meter_as(&principal, &key).await?))
}

/// Deletes a meter; 204.
#[utoipa::path(
    delete,
    path = "/v1/meter/meters/{key}",
    tag = "meters",
    summary = "Delete a meter (role admin)",
    params(("key" = String, Path, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$", description = "The meter's key")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "NOT_FOUND", body = metering_core::api::ErrorEnvelope),
        (status = 409, description = "CONFLICT: a quota uses the meter", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    principal.authorize(Action::Admin)?;
    let key = existing_key(&key)?;
    state.engine().delete_meter_as(&principal, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The meter's value per window and group.
#[utoipa::path(
    get,
    path = "/v1/meter/meters/{key}/query",
    tag = "meters",
    summary = "Query a meter (role read or admin; a tenant key sees its own tenant)",
    params(
        ("key" = String, Path, min_length = 1, max_length = 64, pattern = "^[a-z0-9_-]{1,64}$", description = "The meter's key"),
        ("start_date" = metering_core::api::RangeBound, Query, description = "RFC 3339 or YYYY-MM-DD, inclusive"),
        ("end_date" = metering_core::api::RangeBound, Query, description = "RFC 3339 or YYYY-MM-DD, exclusive"),
        ("window_type" = Option<metering_core::WindowType>, Query, description = "Window size; absent: one window from start_date to end_date"),
        ("tz" = Option<metering_core::api::TimeZoneFilter>, Query, description = "IANA zone of the window boundaries, default UTC"),
        ("group_by" = Option<String>, Query, description = "Comma-separated subset of tenant_id, resource, feature and the meter's dimensions; default none"),
        ("tenant_id" = Option<metering_core::api::TenantFilter>, Query, description = "Only this tenant"),
        ("resource" = Option<metering_core::api::NameFilter>, Query, description = "Only this resource"),
        ("feature" = Option<metering_core::api::NameFilter>, Query, description = "Only this feature"),
        ("filter" = Option<metering_core::api::DimensionFilters>, Query, style = Form, explode, description = "`filter.<dimension>=<value>`: only events whose dimension (one of the meter's) has this value (repeat a name for any of several values); a string matches its text, a number or boolean its JSON text"),
    ),
    responses(
        (status = 200, description = "The meter's value per window and group; with `Accept: text/csv`: `window_start,window_end`, one column per `group_by` key, `value,event_count`", content(
            (metering_core::api::MeterReportSchema = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "BAD_REQUEST: unknown, repeated or unreadable parameter", body = metering_core::api::ErrorEnvelope),
        (status = 404, description = "NOT_FOUND: no such meter", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a missing or invalid parameter, or a group or filter on a dimension the meter lacks", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn query(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(key): Path<String>,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    principal.authorize(Action::Read)?;
    let key = existing_key(&key)?;
    // `filter.<dimension>` may repeat (any of its values); the rest are plain parameters.
    let (filters, pairs): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(name, _)| name.starts_with("filter."));
    let mut p = Params::new(pairs, QUERY_PARAMS);
    let start = p.required("start_date", date_time);
    let end = p.required("end_date", date_time);
    let window = p.read("window_type", |raw| raw.parse::<WindowType>());
    let tz = p.read("tz", parse_tz);
    let group_by = p.raw("group_by").map(MeterGroup::parse_list);
    let tenant = p.check("tenant_id", |s| TenantId::new(s));
    let resource = p.check("resource", |s| Resource::new(s));
    let feature = p.check("feature", |s| Feature::new(s));
    let mut dimension_filters = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, value) in filters {
        let dimension = &name["filter.".len()..];
        if dimension.is_empty() {
            p.reject(&name, "name a dimension: filter.<dimension>=<value>");
        } else {
            dimension_filters
                .entry(dimension.to_owned())
                .or_default()
                .push(value);
        }
    }
    p.finish()?;
    let (Some(start), Some(end)) = (start, end) else {
        // finish() has already refused a request missing either.
        return Err(ApiError::bad_request("incomplete meter query"));
    };
    let mut query = MeterQuery::new(start, end).group_by(group_by.unwrap_or_default());
    query.window = window;
    query.tenant_id = tenant;
    query.resource = resource;
    query.feature = feature;
    query.dimension_filters = dimension_filters;
    if let Some(tz) = tz {
        query = query.tz(tz);
    }
    let group_by: Vec<String> = query
        .group_by
        .iter()
        .map(|g| g.as_str().to_owned())
        .collect();
    let _slot = state.heavy_read().await?;
    let report: MeterReport = state
        .engine()
        .query_meter_as(&principal, &key, query)
        .await?;
    if wants_csv(&headers) {
        return Ok(csv_response(
            meter_csv(&report, &group_by),
            &format!("{key}.csv"),
        ));
    }
    report_json(&report)
}

/// `report` as JSON, written into a buffer sized for its rows at once: an answer can be
/// megabytes, and growing axum's 128-byte start copies it about sixteen times.
fn report_json(report: &MeterReport) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(256 + report.data.len() * 160);
    serde_json::to_writer(&mut body, report)
        .map_err(|e| Error::internal("serializing a meter answer", e))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
