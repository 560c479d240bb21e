//! The OpenAPI 3 document (`GET /openapi.json`) and the interactive page (`GET /docs`),
//! generated from the handlers' `#[utoipa::path]` annotations, collected by the router from
//! its own route list, and the schema types below.
//!
//! Core types carry no OpenAPI derives (metering-core does not depend on utoipa), so the
//! wire shapes are written here as schema-only mirror types. They are never used to
//! (de)serialize requests: the handlers use the core decoders. The tests compare the
//! document with the router, so a new route without an annotation fails.
//!
//! The page is Swagger UI with its files compiled into the binary (utoipa-swagger-ui's
//! `vendored` feature): it loads nothing from the internet.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, ResponseBuilder, Schema, Type};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorCode;

/// The document's fixed parts: its description, the shared schemas and the tags. The
/// paths are added by the router from its own list of routes ([`crate::router`]), so a route
/// cannot be served without being documented; the router then adds the security schemes
/// and shared error answers to every operation.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "metering",
        description = "Usage metering REST API (v1). Send the key as `X-API-Key: <key>` or \
                       `Authorization: Bearer <key>`. Every error has the shape \
                       `{\"error\": {\"code\", \"message\", \"details\"}}`."
    ),
    components(schemas(ErrorCode, ErrorEnvelope, ErrorBody, ErrorDetails, FieldErrorOut)),
    tags(
        (name = "events", description = "Recording and listing usage events"),
        (name = "aggregates", description = "Usage summed per time window"),
        (name = "quotas", description = "Quota checks and quota administration"),
        (name = "api-keys", description = "API key administration"),
        (name = "operations", description = "Health and metrics")
    )
)]
pub struct ApiDoc;

/// Adds the two security schemes and the error answers every authenticated endpoint can
/// give (401, 403, 429, 500, 503).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The API key secret (`mk_...`)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer <API key secret>`"))
                    .build(),
            ),
        );
        let common = [
            (
                "401",
                "UNAUTHORIZED: the key is missing, unknown, revoked or expired",
            ),
            (
                "403",
                "FORBIDDEN: the key's role or tenant scope does not allow it",
            ),
            (
                "429",
                "RATE_LIMITED: over the key's rate limit; see Retry-After",
            ),
            ("500", "INTERNAL: a bug; the cause is logged"),
            (
                "503",
                "UNAVAILABLE: the store is unreachable or the ingest queue is full; see Retry-After",
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if operation.security.is_none() {
                    continue;
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorEnvelope",
                ))))
                .build(),
        )
        .build()
        .into()
}

/// Adds what every operation shares (security schemes, error answers) to a document whose
/// paths are all in.
pub(crate) fn complete(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    Security.modify(&mut api);
    api
}

/// The `/docs` page and `/openapi.json`, serving `api`.
pub(crate) fn docs(api: utoipa::openapi::OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", api)
}

impl ErrorCode {
    /// Every code, in status order.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::PayloadTooLarge,
        ErrorCode::ValidationError,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The machine-readable error code"))
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .into()
    }
}

impl ToSchema for ErrorCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ErrorCode")
    }
}

/// An exact decimal as the server writes it: always a JSON number whose text is the exact
/// value, with at most nine fractional digits.
#[derive(Serialize)]
pub(crate) struct Decimal;

impl PartialSchema for Decimal {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .description(Some(
                "An exact decimal, always a JSON number whose text is the exact value \
                 (`1`, `0.1`, `999999999999999.999999999`), with at most 9 fractional digits. \
                 It may carry more significant digits than a 64-bit float: read it with a \
                 decimal-exact JSON parser to keep every digit.",
            ))
            .examples([serde_json::json!(12.5)])
            .into()
    }
}

impl ToSchema for Decimal {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Decimal")
    }
}

/// A quantity or limit in a request: a number literal or a decimal string, read exactly.
#[derive(Serialize)]
pub(crate) struct DecimalInput;

impl PartialSchema for DecimalInput {
    fn schema() -> RefOr<Schema> {
        let number = ObjectBuilder::new().schema_type(Type::Number);
        let string = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\+?[0-9]*\.?[0-9]+$"));
        utoipa::openapi::OneOfBuilder::new()
            .item(number)
            .item(string)
            .description(Some(
                "An exact decimal: a JSON number, read from its literal text (never through a \
                 float), or a decimal string in plain notation (`\"12.5\"`). At most 9 \
                 fractional digits (trailing zeros do not count); more is refused with 422, \
                 never rounded.",
            ))
            .examples([serde_json::json!(1)])
            .into()
    }
}

impl ToSchema for DecimalInput {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DecimalInput")
    }
}

/// Every error answer: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorEnvelope {
    error: ErrorBody,
}

/// The error itself.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    code: ErrorCode,
    /// For people; a 500 always has the same fixed message.
    message: String,
    /// For 400 and 422: every problem found.
    details: Option<ErrorDetails>,
}

/// The problems of a 400 or 422.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetails {
    /// The first field in error.
    field: Option<String>,
    /// Every problem, in request order.
    errors: Vec<FieldErrorOut>,
}

/// One problem.
#[derive(Serialize, ToSchema)]
#[schema(as = FieldError)]
pub(crate) struct FieldErrorOut {
    /// The event's index in a batch.
    index: Option<usize>,
    /// The field, e.g. `events[3].quantity`.
    field: String,
    message: String,
}

/// Schema-only mirrors of the request and response bodies.
#[allow(dead_code)] // never constructed: they only describe what the core types serialize to
pub(crate) mod schema {
    use super::{DateTime, Serialize, ToSchema, Utc};

    /// An event to record.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct NewEvent {
        /// Idempotency key, 1-128 printable ASCII characters; a UUIDv7 is made when absent.
        pub id: Option<String>,
        /// 1-255 characters, no control characters.
        pub tenant_id: String,
        /// The module, same rules.
        pub resource: String,
        /// The feature, same rules.
        pub feature: String,
        /// Default 1; > 0, at most 9 fractional digits, at most 10^15; summed exactly.
        pub quantity: Option<super::DecimalInput>,
        /// Default: the time of receipt; at most the configured skew in the future. RFC 3339
        /// (`2025-11-20T10:31:00Z`), or a date-time without an offset
        /// (`2025-11-20T10:31:00.123456`, as Python's `isoformat()` writes it), which means UTC.
        #[schema(value_type = Option<String>, example = "2025-11-20T10:31:00Z")]
        pub timestamp: Option<DateTime<Utc>>,
        /// A JSON object, at most 16 KiB serialized and 16 levels deep.
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<serde_json::Value>,
    }

    /// A batch of events, validated whole.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct EventBatch {
        /// 1 to 10,000 events (configurable).
        pub events: Vec<NewEvent>,
    }

    /// One event, or a batch.
    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub(crate) enum IngestBody {
        /// One event.
        One(NewEvent),
        /// A batch.
        Batch(EventBatch),
    }

    /// The events are committed.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct IngestReceipt {
        /// Always `success`.
        #[schema(example = "success")]
        pub status: String,
        /// Events newly written.
        pub events_processed: u64,
        /// Events whose id was already stored (not written again).
        pub duplicates: u64,
        /// Every event's id, in request order.
        pub event_ids: Vec<String>,
    }

    /// A stored event.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Event {
        pub id: String,
        pub tenant_id: String,
        pub resource: String,
        pub feature: String,
        /// Integers are rendered as JSON integers.
        pub quantity: super::Decimal,
        pub timestamp: DateTime<Utc>,
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<serde_json::Value>,
        /// When the store accepted it.
        pub created_at: DateTime<Utc>,
    }

    /// Paging of a numbered page (`total` and `total_pages` are absent with a cursor).
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Pagination {
        pub page: Option<u32>,
        pub page_size: u32,
        pub total: Option<u64>,
        pub total_pages: Option<u64>,
    }

    /// A page of events, newest first.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct EventPage {
        pub events: Vec<Event>,
        pub pagination: Pagination,
        /// Where the next page starts, when this one was full.
        pub next_cursor: Option<String>,
    }

    /// A time window size.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum WindowType {
        Hourly,
        Daily,
        /// ISO weeks, starting Monday.
        Weekly,
        Monthly,
    }

    /// One window of one group.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct AggregateRow {
        /// Null when not grouped by it.
        pub tenant_id: Option<String>,
        pub resource: Option<String>,
        pub feature: Option<String>,
        pub window_start: DateTime<Utc>,
        pub window_end: DateTime<Utc>,
        pub window_type: WindowType,
        pub total_quantity: super::Decimal,
        pub event_count: u64,
    }

    /// Totals over every row.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct AggregateSummary {
        pub total_quantity: super::Decimal,
        pub total_events: u64,
    }

    /// Usage per window and group, ordered by window start then the grouped dimensions.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct AggregateReport {
        pub aggregates: Vec<AggregateRow>,
        pub summary: AggregateSummary,
    }

    /// A quota period.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum QuotaPeriod {
        Hourly,
        Daily,
        Monthly,
        Yearly,
    }

    /// A quota check, optionally consuming.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct ValidateBody {
        pub tenant_id: String,
        /// Required when `consume` is true.
        pub resource: Option<String>,
        pub feature: String,
        /// Default 1.
        pub quantity: Option<super::DecimalInput>,
        /// Used only when no quota applies.
        pub period: Option<QuotaPeriod>,
        /// Record the event when allowed, atomically with the check (default false).
        pub consume: Option<bool>,
        /// The recorded event's id (consume only).
        pub id: Option<String>,
        /// The recorded event's metadata (consume only).
        #[schema(value_type = Option<Object>)]
        pub metadata: Option<serde_json::Value>,
    }

    /// The answer to a quota check.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct QuotaDecision {
        /// `current_usage + quantity <= limit`; true when no quota applies.
        pub allowed: bool,
        pub remaining: Option<super::Decimal>,
        pub limit: Option<super::Decimal>,
        pub period: Option<QuotaPeriod>,
        pub reset_at: Option<DateTime<Utc>>,
        pub current_usage: super::Decimal,
        /// Usage has reached the alert threshold.
        pub alert: bool,
        /// `no quota configured` when none applies.
        pub message: Option<String>,
        /// The recorded event (consume, when allowed).
        pub event_id: Option<String>,
        pub quota_id: Option<uuid::Uuid>,
    }

    /// A quota to create or replace, keyed by `(tenant_id, resource, feature)`.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct QuotaSpec {
        /// A tenant, or `*` for the default of every tenant.
        pub tenant_id: String,
        /// Null counts every resource.
        pub resource: Option<String>,
        pub feature: String,
        /// > 0.
        pub limit: super::DecimalInput,
        pub period: QuotaPeriod,
        /// Percent of the limit, 0-100 (default 80).
        pub alert_threshold: Option<u8>,
        /// IANA zone of the period boundaries (default UTC).
        pub tz: Option<String>,
    }

    /// A stored quota.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Quota {
        pub id: uuid::Uuid,
        pub tenant_id: String,
        pub resource: Option<String>,
        pub feature: String,
        pub limit: super::Decimal,
        pub period: QuotaPeriod,
        pub alert_threshold: u8,
        pub tz: String,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }

    /// Quotas.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct QuotaList {
        pub quotas: Vec<Quota>,
    }

    /// A key's role.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum Role {
        /// Everything.
        Admin,
        /// Record events and check quotas.
        Ingest,
        /// Read events, aggregates and quotas.
        Read,
    }

    /// A key to create.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct NewApiKey {
        pub name: String,
        pub role: Role,
        /// Scopes the key to one tenant.
        pub tenant_id: Option<String>,
        pub expires_at: Option<DateTime<Utc>>,
    }

    /// A key, without its secret.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct ApiKey {
        pub id: uuid::Uuid,
        pub name: String,
        pub role: Role,
        pub tenant_id: Option<String>,
        /// The first characters of the secret, to recognise it.
        pub prefix: String,
        pub created_at: DateTime<Utc>,
        pub expires_at: Option<DateTime<Utc>>,
        pub last_used_at: Option<DateTime<Utc>>,
        pub revoked_at: Option<DateTime<Utc>>,
    }

    /// A new key: the record and its secret, shown only here.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct CreatedApiKey {
        #[serde(flatten)]
        pub record: ApiKey,
        /// The secret; store it now, it cannot be shown again.
        pub key: String,
    }

    /// Keys.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct ApiKeyList {
        pub api_keys: Vec<ApiKey>,
    }

    /// Overall health.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum HealthStatus {
        Healthy,
        /// Only the quota cache is down; quota checks read the store.
        Degraded,
        /// The store is down.
        Unhealthy,
    }

    /// A dependency's state.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum Connection {
        Connected,
        Disconnected,
    }

    /// The dependencies.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Services {
        pub database: Connection,
        pub quota_cache: Connection,
    }

    /// The health answer.
    #[derive(Serialize, ToSchema)]
    pub(crate) struct Health {
        pub status: HealthStatus,
        pub timestamp: DateTime<Utc>,
        pub version: String,
        pub services: Services,
    }
}
