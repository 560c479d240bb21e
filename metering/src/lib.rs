//! # metering
//!
//! Usage metering for SaaS products: record who used which module, feature or API and how
//! much, enforce quotas before work is done, query usage per tenant, and feed billing.
//!
//! This is the facade crate: it re-exports what an application uses from [`metering_core`]
//! (events, quantities, windows, quotas, the [`Store`] and [`QuotaCache`] traits and the
//! [`Metering`] engine), the whole core as [`core`] for backend implementers, and, by
//! feature, the backends and integrations. With `http`, the store and cache features also
//! reach the REST service: `features = ["http", "postgres"]` lets it open `postgres://` URLs.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> metering::Result<()> {
//! use metering::{MemoryStore, Metering, NewEvent, QuotaScope, QuotaSpec, Quantity,
//!     QuotaPeriod, ValidateRequest, TenantId, Feature, Resource};
//!
//! let engine = Metering::builder(MemoryStore::new()).build();
//! let tenant = TenantId::new("org_1").expect("valid");
//! let feature = Feature::new("invoice_generate").expect("valid");
//! engine.upsert_quota(QuotaSpec::new(QuotaScope::Tenant(tenant.clone()), feature.clone(),
//!     Quantity::from_units(2), QuotaPeriod::Monthly)).await?;
//! let consume = ValidateRequest::new(tenant, feature)
//!     .with_resource(Resource::new("billing").expect("valid"))
//!     .consuming();
//! assert!(engine.validate(consume.clone()).await?.allowed);
//! assert!(engine.validate(consume.clone()).await?.allowed);
//! assert!(!engine.validate(consume).await?.allowed); // the third would exceed 2
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | the embedded SQLite store (`metering::sqlite`) |
//! | `postgres` | no | the PostgreSQL store (`metering::postgres`) |
//! | `redis` | no | the Redis quota cache (`metering::redis`) |
//! | `http` | no | the REST service (`metering::http`) |
//! | `openapi` | no | OpenAPI schemas of the REST messages (`metering::api`) |
//! | `macros` | no | the `#[meter]` attribute |
//! | `client` | no | the client, recorder and middleware (`metering::client`) |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub use metering_core::{
    Action, AggregateBuilder, AggregateQuery, AggregateReport, AggregateRow, AggregateSummary,
    ApiKey, ApiKeyId, BoxError, CachedLookups, Clock, ConsumeOutcome, CounterKey, CreatedApiKey,
    Cursor, Dimension, Error, Event, EventFilter, EventId, EventPage, EventQuery, EventRules,
    Feature, FieldError, Granularity, GroupBy, Health, HealthStatus, IngestReceipt, Ingested,
    InsertOutcome, KeyHash, ManualClock, Metadata, Metering, MeteringBuilder, NameError, NewApiKey,
    NewEvent, Paging, Principal, Quantity, QuantityError, Quota, QuotaCache, QuotaDecision,
    QuotaId, QuotaPeriod, QuotaScope, QuotaSpec, RebuildToken, Resource, Result, Role, Store,
    StoredApiKey, SystemClock, TenantId, Tz, UsageLimit, UsageScope, UsageStream, ValidateRequest,
    ValidationErrors, Window, WindowType, parse_tz, select_quota, validate_batch,
};

/// Meters: what to measure from events (sum, count, unique_count, min, max, avg, latest over
/// the quantity or a metadata value), and their exact answers.
pub use metering_core::{
    Aggregation, Amount, Meter, MeterAggregator, MeterFilter, MeterGroup, MeterKey, MeterQuery,
    MeterReport, MeterRow, MeterSpec, ValuePath,
};

/// Alerts: quota thresholds, webhook endpoints and their signed messages.
pub use metering_core::{
    AlertKind, CreatedWebhook, Delivery, DeliveryStatus, NewWebhook, Threshold, Webhook, WebhookId,
    WebhookSecret,
};

/// The v1 REST messages: request and response bodies and the error envelope.
pub use metering_core::api;

/// The in-memory store and quota cache: the reference backends, for tests and examples.
pub use metering_core::{MemoryQuotaCache, MemoryStore};

/// The whole core crate, for implementing a backend (its guide, window and time helpers,
/// JSON decoding and group commit live there).
pub use metering_core as core;

/// The embedded SQLite store.
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use metering_store_sqlite as sqlite;

/// The PostgreSQL store.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use metering_store_postgres as postgres;

/// The Redis quota cache.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use metering_store_redis as redis;

/// The REST service.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use metering_http as http;

/// The `#[meter]` attribute.
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use metering_macros as macros;

/// The `#[meter]` attribute: meters every call of a function (see [`metering_macros`]).
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use metering_macros::meter;

/// The client: recorder, transports, spill queue and tower middleware.
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use metering_client as client;

/// The process-wide recorder `#[meter]` reports to.
#[cfg(any(feature = "macros", feature = "client"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "macros", feature = "client"))))]
pub use metering_client::{Recorder, set_recorder};

/// Support for the code `#[meter]` generates; not a public API.
#[cfg(feature = "macros")]
#[doc(hidden)]
pub use metering_client::__private;
