//! # metering-http
//!
//! The REST service of the `metering` framework: an [axum] [`axum::Router`] serving
//! every endpoint of the v1 contract under `/v1/meter`, and the `metering-server` binary
//! that runs it on a store and quota cache chosen by URL.
//!
//! Each handler parses its request, authorizes the caller's
//! [`Principal`](metering_core::Principal) for the action (role and tenant scope), calls
//! the [`Metering`] engine and returns the answer as one of the typed
//! [REST messages](metering_core::api), so decimals keep their exact text. Every failure becomes the
//! error envelope `{"error": {"code", "message", "details"}}` in one place, [`ApiError`],
//! including axum's own rejections (bad JSON, wrong content type, oversized bodies, unknown
//! paths and methods).
//!
//! The API's routes and the OpenAPI document's paths come from one list, so an API route
//! cannot be served without being documented. `ENDPOINTS.md` in this crate is the
//! endpoint reference; a test checks its sections against the same routes.
//!
//! ## Embedding
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> metering_core::Result<()> {
//! use metering_core::{MemoryStore, Metering};
//! use metering_http::{AppState, ServerConfig};
//!
//! let config = ServerConfig::default();
//! let engine = Metering::builder(MemoryStore::new()).rules(config.event_rules()).build();
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .merge(metering_http::router(AppState::new(engine, config)));
//! # let _ = app; Ok(()) }
//! ```
//!
//! Run a [`KeyUsageFlusher`] and a [`Deliverer`] (which sends quota alerts to webhook
//! endpoints) next to a router you mount yourself, or use [`serve`], which does that and
//! shuts down gracefully.
//!
//! ## Operations
//!
//! The router also serves `GET /metrics` (Prometheus text; see [`metrics`]),
//! `GET /openapi.json` (OpenAPI 3; see [`openapi`]) and `GET /docs` (Swagger UI, offline).
//! Every response carries `X-Request-Id`. [`AppState::from_backends`] is the server's own
//! wiring: store and cache timed by [`InstrumentedStore`] / [`InstrumentedCache`] and
//! group commit on.
//!
//! ## Picking backends at run time
//!
//! [`open_store`] and [`open_quota_cache`] take a URL (`memory://`, `sqlite://path`,
//! `postgres://...`, `redis://...`); see [`backends`].
//!
//! ## Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `sqlite` | yes | `sqlite://` store URLs (metering-store-sqlite) |
//! | `postgres` | no | `postgres://` store URLs (metering-store-postgres) |
//! | `redis` | no | `redis://` quota cache URLs (metering-store-redis) |
//! | `cli` | yes | the `metering-server` binary |
//!
//! ## Error codes
//!
//! | status | code |
//! |---|---|
//! | 400 | `BAD_REQUEST`: body not JSON, wrong content type, unknown or unreadable query parameter |
//! | 401 | `UNAUTHORIZED` |
//! | 403 | `FORBIDDEN` |
//! | 404 | `NOT_FOUND`: unknown id or path |
//! | 405 | `METHOD_NOT_ALLOWED`: known path, other method (with an `Allow` header) |
//! | 409 | `CONFLICT` |
//! | 413 | `PAYLOAD_TOO_LARGE`: body over the byte limit, or batch over the event limit |
//! | 422 | `VALIDATION_ERROR`: `details.errors` lists `{index, field, message}` |
//! | 429 | `RATE_LIMITED`: over the key's rate limit (off by default); `Retry-After` is set |
//! | 500 | `INTERNAL`: fixed message; the cause is logged |
//! | 503 | `UNAVAILABLE`: the store (or a required cache) is unreachable, or the ingest queue is full; `Retry-After` is set |

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backends;
mod config;
mod cors;
mod dashboard;
pub mod deliver;
mod error;
mod extract;
mod guard;
pub mod instrument;
pub mod metrics;
pub mod openapi;
mod ops;
mod params;
mod routes;
mod serve;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use backends::{open_quota_cache, open_store, open_store_with};
pub use config::{RateLimit, ServerConfig};
pub use cors::{CorsConfig, CorsError};
pub use deliver::{Deliverer, WebhookConfig};
pub use error::ApiError;
pub use extract::{Auth, JsonBody, QueryPairs};
pub use instrument::{InstrumentedCache, InstrumentedStore};
pub use metering_core::CachedLookups;
pub use metering_core::api::{ErrorCode, INTERNAL_MESSAGE};
pub use metering_core::{self, Metering};
pub use metrics::Metrics;
pub use serve::{KeyUsageFlusher, TlsConfig, serve, serve_tls};
pub use state::AppState;

/// Every endpoint of the v1 contract, with its limits and error handling, over `state`.
///
/// `GET /` is left free for the dashboard or the embedding application; unknown paths
/// answer 404 `NOT_FOUND` with the error envelope.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config().body_limit;
    let cors = state.config().cors.layer();
    let (api, doc) = api_routes().split_for_parts();
    api.merge(openapi::docs(openapi::complete(doc)))
        .fallback_service(dashboard::service())
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::track,
        ))
        // Inside the request's id and trace, outside everything else: preflights are
        // answered here (never counted as API calls), and every answer gets its CORS headers.
        .layer(tower::util::option_layer(cors.clone()))
        .layer(tower::util::option_layer(cors.is_some().then(|| {
            axum::middleware::map_response(cors::strip_unallowed)
        })))
        .layer(TraceLayer::new_for_http().make_span_with(ops::request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Every documented route: the one list both the router and the OpenAPI paths come from.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(routes::events::ingest, routes::events::list))
        .routes(routes!(routes::events::ingest_batch))
        .routes(routes!(routes::export::export))
        .routes(routes!(routes::corrections::void))
        .routes(routes!(routes::corrections::amend))
        .routes(routes!(routes::corrections::history))
        .routes(routes!(routes::aggregates::aggregate))
        .routes(routes!(routes::validate::validate))
        .routes(routes!(routes::quotas::list, routes::quotas::upsert))
        .routes(routes!(routes::quotas::delete))
        .routes(routes!(routes::api_keys::list, routes::api_keys::create))
        .routes(routes!(routes::api_keys::revoke))
        .routes(routes!(routes::meters::list))
        .routes(routes!(
            routes::meters::get,
            routes::meters::put,
            routes::meters::delete
        ))
        .routes(routes!(routes::meters::query))
        .routes(routes!(routes::webhooks::list, routes::webhooks::create))
        .routes(routes!(routes::webhooks::delete))
        .routes(routes!(routes::webhooks::deliveries))
        .routes(routes!(routes::webhooks::retry))
        .routes(routes!(routes::health::health))
        .routes(routes!(ops::metrics))
}

/// A panicking handler is a bug: 500 with the fixed message; the panic is logged.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "a request handler panicked");
    ApiError::new(ErrorCode::Internal, INTERNAL_MESSAGE).into_response()
}
