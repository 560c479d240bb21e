//! The v1 REST messages: every body the API sends or reads, and the error envelope.
//!
//! This is the one definition of the wire format. The server answers with these types, the
//! client and the command line read and write them, and with the `openapi` feature each one
//! derives its OpenAPI schema, so the document describes exactly what is sent.
//!
//! - Domain types that travel as they are ([`Event`](crate::Event),
//!   [`Quota`](crate::Quota), [`QuotaDecision`](crate::QuotaDecision),
//!   [`ApiKey`](crate::ApiKey), [`AggregateReport`](crate::AggregateReport), ...) are used
//!   directly; this module adds the envelopes around them ([`EventList`], [`QuotaList`],
//!   [`ApiKeyList`], ...).
//! - Request bodies are read by the decoders of their domain types
//!   ([`NewEvent::from_json`](crate::NewEvent::from_json),
//!   [`QuotaSpec::from_json`](crate::QuotaSpec::from_json),
//!   [`ValidateRequest::from_json`](crate::ValidateRequest::from_json),
//!   [`NewApiKey::from_json`](crate::NewApiKey::from_json),
//!   [`NewWebhook::from_json`](crate::NewWebhook::from_json)), and an event body by
//!   [`decode_events`]. They read decimals from their literal text and report every problem
//!   with its field path ([`FieldError`](crate::FieldError)).
//! - Every error answer is an [`ErrorEnvelope`].
//!
//! Decimals (quantities, limits, usage) are always written as JSON numbers whose text is
//! the exact value; serialize these types with `serde_json::to_vec`/`to_writer`, not through
//! `serde_json::Value`, which would hold them as `f64`.

mod api_keys;
mod error;
mod events;
mod export;
mod health;
mod meters;
mod quotas;
#[cfg(feature = "openapi")]
mod schema;
mod webhooks;

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub use crate::quantity::{DecimalInput, LimitInput};
pub use api_keys::{ApiKeyList, CreatedApiKeyBody};
pub use error::{ErrorBody, ErrorCode, ErrorDetails, ErrorEnvelope, INTERNAL_MESSAGE};
pub use events::{
    AmendBody, EventHistory, EventList, IngestResponse, Pagination, VoidBody, decode_events,
};
pub use export::{
    CORRECTION_CSV_COLUMNS, EVENT_CSV_COLUMNS, ExportFormat, aggregates_csv, meter_csv,
};
pub use health::{Connection, HealthReport, Services};
pub use meters::MeterList;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub use meters::{
    DimensionFilters, Dimensions, FeatureOrList, Ignored, MetadataConditions, MeterBody,
    MeterDefinition, MeterFilterSchema, MeterReportSchema, MeterRowSchema, MeterSchema,
    ResourceOrList,
};
pub use quotas::QuotaList;
#[cfg(feature = "openapi")]
pub(crate) use schema::WHITE_SPACE;
#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub use schema::{
    CursorFilter, GroupByFilter, IngestBody, NameFilter, QuotaBody, RangeBound, RangeFilter,
    Reason, TenantFilter, ThresholdList, TimeZone, TimeZoneFilter, ValidateBody,
};
pub use webhooks::{CreatedWebhookBody, DeliveryList, WebhookList};
