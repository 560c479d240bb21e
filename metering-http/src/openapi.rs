//! The OpenAPI 3 document (`GET /openapi.json`) and the interactive page (`GET /docs`).
//!
//! The paths come from the handlers' `#[utoipa::path]` annotations, collected by the router
//! from its own route list, so a route cannot be served undocumented. The schemas are
//! derived from the types the handlers send and the decoders read, the
//! [REST messages](metering_core::api) (metering-core's `openapi` feature).
//!
//! The page is Swagger UI with its files compiled into the binary (utoipa-swagger-ui's
//! `vendored` feature): it loads nothing from the internet.

use metering_core::FieldError;
use metering_core::api::{ErrorBody, ErrorCode, ErrorDetails, ErrorEnvelope};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

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
                       `{\"error\": {\"code\", \"message\", \"details\"}}`. Browser apps on \
                       other origins may call the API when the server lists their origin \
                       (`--cors-origin`, `METERING_CORS_ORIGINS`; off by default): preflights \
                       allow `X-API-Key`, `Authorization` and `Content-Type`, and answers \
                       expose `Retry-After` and `X-Request-Id`. `*` opens only the endpoints \
                       that take no key (health, this document)."
    ),
    components(schemas(
        ErrorCode,
        ErrorEnvelope,
        ErrorBody,
        ErrorDetails,
        FieldError,
        metering_core::api::ExportFormat,
        metering_core::api::TenantFilter,
        metering_core::api::NameFilter,
        metering_core::api::RangeBound,
        metering_core::api::RangeFilter,
        metering_core::api::TimeZoneFilter,
        metering_core::api::CursorFilter,
        metering_core::api::GroupByFilter,
        metering_core::api::DimensionFilters,
        metering_core::api::LimitInput,
        metering_core::api::DecimalInput,
        metering_core::Threshold
    )),
    tags(
        (name = "events", description = "Recording and listing usage events"),
        (name = "aggregates", description = "Usage summed per time window"),
        (name = "quotas", description = "Quota checks and quota administration"),
        (name = "api-keys", description = "API key administration"),
        (name = "meters", description = "Meters: what to measure from events, and their exact answers"),
        (name = "webhooks", description = "Signed webhook endpoints that receive quota alerts"),
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
                "UNAVAILABLE: the store is unreachable, the ingest queue is full, or an aggregate or deep listing waited too long for a slot; see Retry-After",
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
    // A void may be sent without a body (no reason); its body, when sent, is an object.
    if let Some(body) = api
        .paths
        .paths
        .get_mut("/v1/meter/events/{id}/void")
        .and_then(|item| item.post.as_mut())
        .and_then(|op| op.request_body.as_mut())
    {
        body.required = Some(utoipa::openapi::Required::False);
    }
    api
}

/// The `/docs` page and `/openapi.json`, serving `api`.
pub(crate) fn docs(api: utoipa::openapi::OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs").url("/openapi.json", api)
}
