//! `ENDPOINTS.md` is the endpoint reference: it has a section for every route the router
//! serves, and no section for a route it does not serve.
//!
//! The router's API routes come from the same list as the OpenAPI document's paths
//! (`api_routes` in `lib.rs`), so the test reads the routes from `GET /openapi.json` and
//! compares them with the "`METHOD /path`" pairs named in the reference's headings.
//! `GET /openapi.json` and `GET /docs` are served beside that list (they are not among the
//! document's paths), so they are checked on their own.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use metering_core::{MemoryStore, Metering};
use metering_http::{AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt as _;

/// The reference, as shipped with the crate.
const REFERENCE: &str = include_str!("../ENDPOINTS.md");

/// The workspace README, which must send readers to the reference.
const README: &str = include_str!("../../README.md");

/// Routes the router serves outside the OpenAPI document's paths.
const OUTSIDE_OPENAPI: [&str; 2] = ["GET /openapi.json", "GET /docs"];

/// The methods an OpenAPI path item can hold, as the reference spells them.
const METHODS: [&str; 8] = [
    "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE",
];

/// The router of the embedding example in the crate docs, over the memory store.
fn router() -> axum::Router {
    let config = ServerConfig::default();
    let engine = Metering::builder(MemoryStore::new())
        .rules(config.event_rules())
        .build();
    metering_http::router(AppState::new(engine, config))
}

/// Sends `GET uri` (no key) and returns the status and the body.
async fn get(router: &axum::Router, uri: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::get(uri).body(Body::empty()).expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.to_vec())
}

/// Every "`METHOD /path`" pair of the OpenAPI document's paths.
fn openapi_routes(doc: &Value) -> BTreeSet<String> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for method in item.keys() {
            let method = method.to_ascii_uppercase();
            if METHODS.contains(&method.as_str()) {
                routes.insert(format!("{method} {path}"));
            }
        }
    }
    routes
}

/// Every "`METHOD /path`" pair named in a heading of `markdown` (code blocks skipped: their
/// `#` lines are shell comments).
fn reference_routes(markdown: &str) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        // Code spans sit between odd and even backticks.
        for span in line.split('`').skip(1).step_by(2) {
            let Some((method, path)) = span.split_once(' ') else {
                continue;
            };
            if METHODS.contains(&method) && path.starts_with('/') && !path.contains(' ') {
                routes.insert(format!("{method} {path}"));
            }
        }
    }
    routes
}

#[tokio::test]
async fn every_route_has_a_section_and_every_section_a_route() {
    let router = router();
    let (status, body) = get(&router, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "GET /openapi.json");
    let doc: Value = serde_json::from_slice(&body).expect("/openapi.json is JSON");

    let served = openapi_routes(&doc);
    assert!(
        served.contains("POST /v1/meter/events"),
        "the document lists the API routes: {served:?}"
    );
    let mut documented = reference_routes(REFERENCE);

    for route in OUTSIDE_OPENAPI {
        assert!(
            !served.contains(route),
            "{route} is now in the OpenAPI paths; drop it from OUTSIDE_OPENAPI"
        );
        assert!(
            documented.remove(route),
            "ENDPOINTS.md has no heading naming `{route}`"
        );
        let uri = route.strip_prefix("GET ").expect("a GET route");
        let (status, _) = get(&router, uri).await;
        assert!(
            status.is_success() || status.is_redirection(),
            "{route} answered {status}"
        );
    }

    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "ENDPOINTS.md and the router disagree.\n\
         Routes with no section (add a heading such as \"### `POST /v1/meter/...` (role ...)\"): \
         {undocumented:?}\n\
         Sections naming a route the router does not serve: {not_served:?}"
    );
}

#[test]
fn the_readme_links_to_the_reference() {
    assert!(
        README.contains("](metering-http/ENDPOINTS.md)"),
        "README.md must link to metering-http/ENDPOINTS.md, the endpoint reference"
    );
}

#[test]
fn headings_are_read_and_code_blocks_skipped() {
    let markdown = "\
### `POST /v1/meter/events` and `POST /v1/meter/events/batch` (role `ingest` or `admin`)
```sh
# `GET /not/a/heading`
```
### Errors
";
    let found: Vec<_> = reference_routes(markdown).into_iter().collect();
    assert_eq!(
        found,
        ["POST /v1/meter/events", "POST /v1/meter/events/batch"]
    );
}
