//! CORS: preflights and simple requests from allowed and unknown origins, `*` on the keyless
//! endpoints only, and credentials. (The browser test is in `ui/e2e/run.mjs`; start-up with
//! a bad setting in `tests/binary`.)

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::{ADMIN, App, app_with};
use metering_http::{CorsConfig, ServerConfig};

const ORIGIN: &str = "http://localhost:3000";
const OTHER: &str = "http://evil.example";

async fn app(origins: &[&str], credentials: bool) -> App {
    let cors = CorsConfig::new(origins, credentials).expect("valid CORS settings");
    app_with(ServerConfig::default().with_cors(cors)).await
}

/// A preflight from `origin` for `method` on `uri`, asking to send `x-api-key`.
async fn preflight(app: &App, uri: &str, origin: &str, method: &str) -> (StatusCode, HeaderMap) {
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri(uri)
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "x-api-key,content-type")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = app.send(request).await;
    (status, headers)
}

/// A GET from `origin`, with `key` when given.
async fn get(app: &App, uri: &str, origin: &str, key: Option<&str>) -> (StatusCode, HeaderMap) {
    let mut request = Request::builder().uri(uri).header("origin", origin);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let request = request.body(Body::empty()).expect("request");
    // Raw bytes: `/metrics` answers text.
    let (status, headers, _) = common::respond(&app.router, request).await;
    (status, headers)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).map(|v| v.to_str().expect("ascii header"))
}

fn has_no_cors_headers(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .all(|name| !name.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_lists_the_methods_and_headers() {
    let app = app(&[ORIGIN, "http://localhost:5173"], false).await;
    for (uri, method) in [
        ("/v1/meter/events", "GET"),
        ("/v1/meter/events", "POST"),
        ("/v1/meter/quotas", "PUT"),
        (
            "/v1/meter/api-keys/00000000-0000-0000-0000-000000000000",
            "DELETE",
        ),
    ] {
        let (status, headers) = preflight(&app, uri, ORIGIN, method).await;
        assert_eq!(status, StatusCode::OK, "{method} {uri}");
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            Some(ORIGIN)
        );
        let methods = header(&headers, "access-control-allow-methods").expect("methods");
        assert!(methods.contains(method), "{methods}");
        let allowed = header(&headers, "access-control-allow-headers")
            .expect("headers")
            .to_ascii_lowercase();
        for name in ["x-api-key", "authorization", "content-type"] {
            assert!(allowed.contains(name), "{allowed}");
        }
        assert_eq!(header(&headers, "access-control-max-age"), Some("600"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        assert!(header(&headers, "vary").is_some_and(|v| v.contains("origin")));
    }
}

#[tokio::test]
async fn a_preflight_from_an_unknown_origin_gets_no_cors_headers() {
    let app = app(&[ORIGIN], false).await;
    let (status, headers) = preflight(&app, "/v1/meter/events", OTHER, "GET").await;
    // The layer answers the preflight, but without allowing it: the browser stops there.
    assert_eq!(status, StatusCode::OK);
    assert!(has_no_cors_headers(&headers), "{headers:?}");
}

#[tokio::test]
async fn an_allowed_origin_sees_the_answer_and_its_exposed_headers() {
    let app = app(&[ORIGIN], false).await;
    let (status, headers) = get(&app, "/v1/meter/events", ORIGIN, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ORIGIN)
    );
    let exposed = header(&headers, "access-control-expose-headers")
        .expect("exposed")
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(header(&headers, "x-request-id").is_some());
    // Errors carry the headers too, so the page can read the error envelope.
    let (status, headers) = get(&app, "/v1/meter/events", ORIGIN, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ORIGIN)
    );
}

#[tokio::test]
async fn an_unknown_origin_is_still_authenticated_as_usual() {
    let app = app(&[ORIGIN], false).await;
    let (status, headers) = get(&app, "/v1/meter/events", OTHER, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(has_no_cors_headers(&headers));
    let (status, headers) = get(&app, "/v1/meter/events", OTHER, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(has_no_cors_headers(&headers));
}

#[tokio::test]
async fn without_origins_there_are_no_cors_headers_and_preflights_are_not_served() {
    let app = app_with(ServerConfig::default()).await;
    let (status, headers) = preflight(&app, "/v1/meter/events", ORIGIN, "GET").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(has_no_cors_headers(&headers));
    let (status, headers) = get(&app, "/v1/meter/health", ORIGIN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(has_no_cors_headers(&headers));
}

#[tokio::test]
async fn a_wildcard_opens_only_the_keyless_endpoints() {
    let app = app(&["*", ORIGIN], false).await;
    for uri in ["/v1/meter/health", "/openapi.json"] {
        let (status, headers) = get(&app, uri, OTHER, None).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(OTHER));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        let (_, headers) = preflight(&app, uri, OTHER, "GET").await;
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(OTHER));
    }
    // Endpoints that take a key stay closed to origins not listed.
    let (status, headers) = get(&app, "/v1/meter/events", OTHER, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(has_no_cors_headers(&headers));
    let (_, headers) = preflight(&app, "/v1/meter/events", OTHER, "POST").await;
    assert!(has_no_cors_headers(&headers));
    let (_, headers) = get(&app, "/metrics", OTHER, None).await;
    assert!(has_no_cors_headers(&headers));
    // The listed origin still reaches them.
    let (_, headers) = get(&app, "/v1/meter/events", ORIGIN, Some(ADMIN)).await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ORIGIN)
    );
}

#[tokio::test]
async fn credentials_are_allowed_only_for_listed_origins() {
    let app = app(&[ORIGIN], true).await;
    let (_, headers) = preflight(&app, "/v1/meter/events", ORIGIN, "GET").await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(ORIGIN)
    );
    assert_eq!(
        header(&headers, "access-control-allow-credentials"),
        Some("true")
    );
    let (_, headers) = get(&app, "/v1/meter/events", OTHER, Some(ADMIN)).await;
    assert!(has_no_cors_headers(&headers));
    // `*` with credentials is refused before a server could start with it.
    assert!(CorsConfig::new(["*"], true).is_err());
}
