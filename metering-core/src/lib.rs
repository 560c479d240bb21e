//! # metering-core
//!
//! The heart of the `metering` framework: validated usage events, exact quantities, calendar
//! windows in any time zone, aggregate and event queries, quotas with the most-specific-match
//! rule, API keys, and the [`Store`] and [`QuotaCache`] traits that backends implement. The
//! [`Metering`] engine ties them together; the REST server and embedders call only it.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> metering_core::Result<()> {
//! use metering_core::{AggregateQuery, GroupBy, MemoryStore, Metering, NewEvent, Quantity,
//!     WindowType};
//!
//! let engine = Metering::builder(MemoryStore::new()).build();
//! let tenth: Quantity = "0.1".parse().expect("a decimal");
//! let batch = (0..10).map(|_| NewEvent::new("org_1", "api", "search").with_quantity(tenth));
//! engine.ingest(batch.collect()).await?;
//!
//! let now = engine.now();
//! let query = AggregateQuery::new(WindowType::Daily, now - chrono::Duration::days(1),
//!     now + chrono::Duration::hours(1)).group_by(GroupBy::NONE);
//! let report = engine.aggregate(&query).await?;
//! assert_eq!(report.summary.total_quantity, Quantity::ONE); // exactly, no float drift
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `memory` | yes | [`MemoryStore`] and [`MemoryQuotaCache`] |
//! | `openapi` | no | `utoipa::ToSchema` for the [REST messages](crate::api), to derive an OpenAPI document |
//!
//! ## Guides
//!
//! - [The REST messages](crate::api): the one definition of the v1 wire format.
//! - [Meters](crate::meter): what to measure from events, and how answers are computed.
//! - [Implementing a Store](crate::guide)
//! - [The counter protocol](crate::cache) that keeps quota checks exact while counters are
//!   rebuilt.
//! - [Rollup range planning](crate::rollup_plan), for backends that keep sums per time bucket.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alert;
pub mod api;
pub mod apikey;
pub mod cache;
pub mod clock;
pub mod engine;
pub mod error;
pub mod event;
mod forward;
pub mod group_commit;
pub mod guide;
pub mod json;
pub mod lookup_cache;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory;
pub mod meter;
pub mod quantity;
pub mod query;
pub mod quota;
mod redact;
pub mod rollup_plan;
pub mod store;
pub mod time;
pub mod webhook;
pub mod window;

pub use alert::{
    AlertMark, AlertMeasure, AlertMessage, AlertPeriod, AlertSubject, AlertTarget, AlertWatch,
};
pub use apikey::{
    Action, ApiKey, ApiKeyId, CreatedApiKey, KeyHash, LastAdmin, NewApiKey, Principal, Role,
};
pub use cache::{CounterKey, Ingested, QuotaCache, RebuildToken, UsageStream};
pub use clock::{Clock, ManualClock, SystemClock};
pub use engine::{Amended, Health, HealthStatus, IngestReceipt, Metering, MeteringBuilder};
pub use error::{BoxError, Error, FieldError, Result, ValidationErrors};
pub use event::{
    Amendment, Event, EventId, EventRules, Feature, Metadata, NameError, NewEvent, Resource,
    TenantId, validate_batch, void_reason,
};
pub use group_commit::GroupCommitConfig;
pub use lookup_cache::CachedLookups;
#[cfg(feature = "memory")]
pub use memory::{MemoryQuotaCache, MemoryStore};
pub use meter::{
    Aggregation, Amount, Meter, MeterAddition, MeterAggregator, MeterFilter, MeterGroup,
    MeterJudgement, MeterKey, MeterLimit, MeterQuery, MeterReport, MeterRow, MeterSpec, MeterTally,
    ValuePath,
};
pub use quantity::{Quantity, QuantityError};
pub use query::{
    AggregateBuilder, AggregateQuery, AggregateReport, AggregateRow, AggregateSummary, Cursor,
    Dimension, EventFilter, EventPage, EventQuery, GroupBy, Paging,
};
pub use quota::{
    MeterCheck, Quota, QuotaDecision, QuotaId, QuotaScope, QuotaSpec, Threshold, UsageLimit,
    UsageScope, ValidateRequest, select_quota, sort_quotas,
};
pub use redact::redact_url;
pub use store::{AmendOutcome, ConsumeOutcome, InsertOutcome, MeteredConsume, Store, StoredApiKey};
pub use webhook::{
    AlertKind, Attempt, AttemptRecord, CreatedWebhook, Delivery, DeliveryCounts, DeliveryId,
    DeliveryStatus, DueDelivery, NewWebhook, Webhook, WebhookId, WebhookSecret,
};
pub use window::{Granularity, QuotaPeriod, Window, WindowType, parse_tz};

/// For [`forward_store!`]: the attribute its impls carry.
#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;
/// For [`forward_store!`]: the time types in `Store` signatures.
#[doc(hidden)]
pub use chrono as __chrono;

/// Re-exported so users name time zones with the same version.
pub use chrono_tz::Tz;
