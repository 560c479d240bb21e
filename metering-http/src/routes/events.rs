//! `POST /v1/meter/events` and `GET /v1/meter/events`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use metering_core::api::{EventList, IngestResponse, Pagination, decode_events};
use metering_core::{
    Action, Cursor, EventFilter, EventQuery, Feature, Paging, Principal, Resource, TenantId,
};

use crate::error::ApiError;
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::params::{Params, boolean, date_time, number};
use crate::state::AppState;

/// Ingests one event or a batch; 201 once the events are committed.
#[utoipa::path(
    post,
    path = "/v1/meter/events",
    tag = "events",
    summary = "Record one event or a batch (role ingest or admin)",
    description = "A batch is validated whole: any invalid event rejects it with 422 listing every problem. \
                   201 means the events are committed. With an `id`, a repeated event counts once. \
                   `quantity` is read from the number literal's text, never through a float: at most \
                   9 fractional digits, above 0 and at most 10^15, else 422. A `timestamp` without \
                   an offset means UTC.",
    request_body(content = metering_core::api::IngestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed", body = metering_core::api::IngestResponse),
        (status = 400, description = "BAD_REQUEST: not JSON, or not application/json", body = metering_core::api::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: body over the byte limit or batch over the event limit", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: `details.errors` lists every bad field", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    ingest_body(&state, &principal, &body).await
}

/// The original service's batch path: the same as `POST /v1/meter/events`.
#[utoipa::path(
    post,
    path = "/v1/meter/events/batch",
    tag = "events",
    summary = "Record one event or a batch: the original service's batch path (role ingest or admin)",
    description = "Behaves exactly like `POST /v1/meter/events` (same bodies, limits, roles and \
                   answers). It is the path the original metering service and its Python client \
                   post batches to.",
    request_body(content = metering_core::api::IngestBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Committed", body = metering_core::api::IngestResponse),
        (status = 400, description = "BAD_REQUEST: not JSON, or not application/json", body = metering_core::api::ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: body over the byte limit or batch over the event limit", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: `details.errors` lists every bad field", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn ingest_batch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: JsonBody,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    ingest_body(&state, &principal, &body).await
}

/// Decodes, authorizes and commits an event body.
async fn ingest_body(
    state: &AppState,
    principal: &Principal,
    body: &JsonBody,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    principal.authorize(Action::WriteEvents)?;
    let engine = state.engine();
    let events = decode_events(body.object()?.as_ref(), engine.rules(), engine.now())?;
    let count = events.len();
    let receipt = engine.ingest_as(principal, events).await?;
    state.metrics().record_ingest(count, receipt.duplicates);
    Ok((StatusCode::CREATED, Json(receipt.into())))
}

/// Events a numbered page may skip before it counts as a heavy read.
const DEEP_OFFSET: u64 = 10_000;

const LIST_PARAMS: &[&str] = &[
    "tenant_id",
    "resource",
    "feature",
    "start_date",
    "end_date",
    "include_voided",
    "page",
    "page_size",
    "cursor",
];

/// Reads the listing filters: `tenant_id`, `resource`, `feature`, `start_date`, `end_date`
/// and `include_voided`.
pub(crate) fn event_filter(p: &mut Params) -> EventFilter {
    let tenant = p.check("tenant_id", |s| TenantId::new(s));
    let resource = p.check("resource", |s| Resource::new(s));
    let feature = p.check("feature", |s| Feature::new(s));
    let start = p.read("start_date", date_time);
    let end = p.read("end_date", date_time);
    let mut filter = EventFilter::all().between(start, end);
    filter.tenant_id = tenant;
    filter.resource = resource;
    filter.feature = feature;
    filter.include_voided = p.read("include_voided", boolean).unwrap_or(false);
    filter
}

/// Lists events, newest first, by page number or by cursor.
#[utoipa::path(
    get,
    path = "/v1/meter/events",
    tag = "events",
    summary = "List events, newest first (role read or admin)",
    params(
        ("tenant_id" = Option<metering_core::api::TenantFilter>, Query, description = "Only this tenant"),
        ("resource" = Option<metering_core::api::NameFilter>, Query, description = "Only this resource"),
        ("feature" = Option<metering_core::api::NameFilter>, Query, description = "Only this feature"),
        ("start_date" = Option<metering_core::api::RangeFilter>, Query, description = "RFC 3339 or YYYY-MM-DD, inclusive"),
        ("end_date" = Option<metering_core::api::RangeFilter>, Query, description = "RFC 3339 or YYYY-MM-DD, exclusive"),
        ("include_voided" = Option<bool>, Query, description = "Also list voided events (with `voided_at` and `void_reason`); default false"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 2_147_483_647, description = "Page number from 1 (not with cursor), at most 2^31 - 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 50"),
        ("cursor" = Option<metering_core::api::CursorFilter>, Query, description = "`next_cursor` of the previous page (not with page)"),
    ),
    responses(
        (status = 200, description = "A page", body = metering_core::api::EventList),
        (status = 400, description = "BAD_REQUEST: unknown, repeated or unreadable parameter", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a value breaks a rule", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<EventList>, ApiError> {
    principal.authorize(Action::Read)?;
    let mut p = Params::new(pairs, LIST_PARAMS);
    let filter = event_filter(&mut p);
    let page = p.read("page", number);
    let page_size = p
        .read("page_size", number)
        .unwrap_or(metering_core::query::DEFAULT_PAGE_SIZE);
    let cursor = p.read("cursor", Cursor::decode);
    if page.is_some() && cursor.is_some() {
        p.reject("cursor", "use either page or cursor, not both");
    }
    p.finish()?;

    let paging = match cursor {
        Some(after) => Paging::Cursor {
            after: Some(after),
            page_size,
        },
        None => Paging::Page {
            page: page.unwrap_or(1),
            page_size,
        },
    };
    let page_info = match paging {
        Paging::Page { page, .. } => Some(page),
        Paging::Cursor { .. } => None,
    };
    // A numbered page far from the start makes the store skip every event before it: such
    // pages take a heavy-read slot. Cursor pages and near pages cost the same at any size.
    let deep = page_info
        .is_some_and(|p| u64::from(p.saturating_sub(1)) * u64::from(page_size) > DEEP_OFFSET);
    let _slot = if deep {
        Some(state.heavy_read().await?)
    } else {
        None
    };
    let result = state
        .engine()
        .list_events_as(&principal, EventQuery::new(filter, paging))
        .await?;
    let pagination = match (page_info, result.total) {
        (Some(page), Some(total)) => Pagination {
            page: Some(page),
            page_size,
            total: Some(total),
            total_pages: Some(total.div_ceil(u64::from(page_size.max(1)))),
        },
        _ => Pagination {
            page: None,
            page_size,
            total: None,
            total_pages: None,
        },
    };
    Ok(Json(EventList {
        events: result.events,
        pagination,
        next_cursor: result.next_cursor.map(|c| c.encode()),
    }))
}
