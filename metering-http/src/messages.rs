//! Typed response bodies of the endpoints that carry quantities.
//!
//! They are serialized straight to the response bytes, so every quantity is written as a
//! JSON number with its exact decimal text. Building them with `json!` instead would pass
//! the numbers through `serde_json::Value`, which holds them as `f64`.

use metering_core::{Event, EventId, IngestReceipt, Quota};
use serde::Serialize;

/// `201` of `POST /v1/meter/events` (and `/events/batch`).
#[derive(Debug, Clone, Serialize)]
pub struct IngestResponse {
    /// Always `"success"`.
    pub status: &'static str,
    /// Events newly written.
    pub events_processed: usize,
    /// Events whose id was already stored.
    pub duplicates: usize,
    /// The id of every event, in request order.
    pub event_ids: Vec<EventId>,
}

impl From<IngestReceipt> for IngestResponse {
    fn from(receipt: IngestReceipt) -> Self {
        IngestResponse {
            status: "success",
            events_processed: receipt.events_processed,
            duplicates: receipt.duplicates,
            event_ids: receipt.event_ids,
        }
    }
}

/// `200` of `GET /v1/meter/events`.
#[derive(Debug, Clone, Serialize)]
pub struct EventList {
    /// The page's events, newest first.
    pub events: Vec<Event>,
    /// Where the page is.
    pub pagination: Pagination,
    /// The cursor of the next page, when the page was full.
    pub next_cursor: Option<String>,
}

/// Where a page of events is.
#[derive(Debug, Clone, Serialize)]
pub struct Pagination {
    /// The page number (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// The page size.
    pub page_size: u32,
    /// Matching events in all (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Pages in all (numbered paging only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_pages: Option<u64>,
}

/// `200` of `GET /v1/meter/quotas`.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaList {
    /// The quotas.
    pub quotas: Vec<Quota>,
}
