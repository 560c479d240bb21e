//! `GET /v1/meter/events/export`: every matching event as one NDJSON or CSV file, streamed.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use metering_core::Action;
use metering_core::api::ExportFormat;

use crate::error::ApiError;
use crate::extract::{Auth, QueryPairs};
use crate::params::Params;
use crate::routes::events::event_filter;
use crate::state::AppState;

const PARAMS: &[&str] = &[
    "tenant_id",
    "resource",
    "feature",
    "start_date",
    "end_date",
    "include_voided",
    "format",
];

/// Whether the request asks for CSV (`Accept: text/csv`).
pub(crate) fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}

/// A CSV answer, offered as a download named `filename`.
pub(crate) fn csv_response(csv: Vec<u8>, filename: &str) -> Response {
    (
        [
            (CONTENT_TYPE, ExportFormat::Csv.content_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        csv,
    )
        .into_response()
}

/// Streams every matching event, newest first.
#[utoipa::path(
    get,
    path = "/v1/meter/events/export",
    tag = "events",
    summary = "Export events as NDJSON or CSV (role read or admin)",
    description = "Every event the filters select, newest first, streamed a page at a time, so \
                   the server's memory stays bounded whatever the size. CSV has the header row \
                   `id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata` (metadata \
                   as JSON text, RFC 4180 quoting); quantities are their exact decimal text. A \
                   tenant-scoped key exports its own tenant.",
    params(
        ("format" = Option<metering_core::api::ExportFormat>, Query, description = "`ndjson` (default) or `csv`"),
        ("tenant_id" = Option<metering_core::api::TenantFilter>, Query, description = "Only this tenant"),
        ("resource" = Option<metering_core::api::NameFilter>, Query, description = "Only this resource"),
        ("feature" = Option<metering_core::api::NameFilter>, Query, description = "Only this feature"),
        ("start_date" = Option<metering_core::api::RangeFilter>, Query, description = "RFC 3339 or YYYY-MM-DD, inclusive"),
        ("end_date" = Option<metering_core::api::RangeFilter>, Query, description = "RFC 3339 or YYYY-MM-DD, exclusive"),
        ("include_voided" = Option<bool>, Query, description = "Also export voided events; default false"),
    ),
    responses(
        (status = 200, description = "`ndjson`: one event per line; `csv`: a header row, then one event per row", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 400, description = "BAD_REQUEST: an unknown format, or an unknown, repeated or unreadable parameter", body = metering_core::api::ErrorEnvelope),
        (status = 422, description = "VALIDATION_ERROR: a value breaks a rule", body = metering_core::api::ErrorEnvelope),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    principal.authorize(Action::Read)?;
    let mut p = Params::new(pairs, PARAMS);
    let filter = event_filter(&mut p);
    let format = p
        .read("format", |raw| raw.parse::<ExportFormat>())
        .unwrap_or_default();
    p.finish()?;
    let corrections = filter.include_voided;
    let mut pages = state.engine().export_as(&principal, filter)?;
    // The first page is read before answering, so a store that is down gets the error
    // envelope rather than a cut-off file.
    let first = pages.next().await.transpose()?.unwrap_or_default();
    let mut head = format.preamble(corrections);
    format.write_events(&first, corrections, &mut head);
    let rest = pages.map(move |page| match page {
        Ok(events) => {
            let mut chunk = Vec::new();
            format.write_events(&events, corrections, &mut chunk);
            Ok(Bytes::from(chunk))
        }
        Err(e) => {
            // The status is sent already: end the body early so the client sees a
            // truncated transfer, never a file that looks complete.
            tracing::error!(error = %e, "event export stopped");
            Err(std::io::Error::other(
                "the export stopped: the store failed",
            ))
        }
    });
    let body = futures::stream::once(async move { Ok(Bytes::from(head)) }).chain(rest);
    let filename = format!("events.{}", format.as_str());
    Ok((
        [
            (CONTENT_TYPE, format.content_type().to_owned()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
