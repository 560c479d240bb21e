//! `GET /v1/meter/aggregates`.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use metering_core::api::aggregates_csv;
use metering_core::{
    Action, AggregateQuery, AggregateReport, Feature, GroupBy, Resource, TenantId, WindowType,
    parse_tz,
};

use crate::error::ApiError;
use crate::extract::{Auth, QueryPairs};
use crate::params::{Params, date_time};
use crate::routes::export::{csv_response, wants_csv};
use crate::state::AppState;

const PARAMS: &[&str] = &[
    "window_type",
    "start_date",
    "end_date",
    "group_by",
    "tenant_id",
    "resource",
    "feature",
    "tz",
];

/// Sums usage per window and group.
#[utoipa::path(
    get,
    path = "/v1/meter/aggregates",
    tag = "aggregates",
    summary = "Usage per time window and group (role read or admin)",
    params(
        ("window_type" = metering_core::WindowType, Query, description = "Window size"),
        ("start_date" = metering_core::api::RangeBound, Query, description = "RFC 3339 or YYYY-MM-DD, inclusive"),
        ("end_date" = metering_core::api::RangeBound, Query, description = "RFC 3339 or YYYY-MM-DD, exclusive; after start_date, with at most 100000 windows of window_type between them (422 otherwise)"),
        ("group_by" = Option<metering_core::api::GroupByFilter>, Query, description = "Comma-separated subset of tenant_id,resource,feature; default resource,feature; empty for one series"),
        ("tenant_id" = Option<metering_core::api::TenantFilter>, Query, description = "Only this tenant"),
        ("resource" = Option<metering_core::api::NameFilter>, Query, description = "Only this resource"),
        ("feature" = Option<metering_core::api::NameFilter>, Query, description = "Only this feature"),
        ("tz" = Option<metering_core::api::TimeZoneFilter>, Query, description = "IANA zone of the window boundaries, default UTC"),
    ),
    responses(
        (status = 200, description = "The windows with events; with `Accept: text/csv`: `window_start,window_end,window_type,tenant_id,resource,feature,total_quantity,event_count`, one row per window and group", content(
            (metering_core::AggregateReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "BAD_REQUEST: unknown, repeated or unreadable parameter", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a missing or invalid parameter", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn aggregate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    principal.authorize(Action::Read)?;
    let mut p = Params::new(pairs, PARAMS);
    let window = p.required("window_type", |raw| raw.parse::<WindowType>());
    let start = p.required("start_date", date_time);
    let end = p.required("end_date", date_time);
    // Present but empty means "no grouping" (one series); absent means the default.
    let group_by = match p.raw("group_by") {
        None => Some(GroupBy::DEFAULT),
        Some(raw) if raw.trim().is_empty() => Some(GroupBy::NONE),
        Some(_) => p.read("group_by", str::parse::<GroupBy>),
    };
    let tenant = p.check("tenant_id", |s| TenantId::new(s));
    let resource = p.check("resource", |s| Resource::new(s));
    let feature = p.check("feature", |s| Feature::new(s));
    let tz = p.read("tz", parse_tz);
    p.finish()?;
    let (Some(window), Some(start), Some(end), Some(group_by)) = (window, start, end, group_by)
    else {
        // finish() has already refused a request missing any of these.
        return Err(ApiError::bad_request("incomplete aggregate query"));
    };
    let mut query = AggregateQuery::new(window, start, end).group_by(group_by);
    query.tenant_id = tenant;
    query.resource = resource;
    query.feature = feature;
    if let Some(tz) = tz {
        query = query.tz(tz);
    }
    let _slot = state.heavy_read().await?;
    let report: AggregateReport = state.engine().aggregate_as(&principal, query).await?;
    if wants_csv(&headers) {
        return Ok(csv_response(aggregates_csv(&report), "aggregates.csv"));
    }
    Ok(Json(report).into_response())
}
