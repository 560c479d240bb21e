//! The web dashboard, embedded in the binary from `ui/dist` (built with npm and committed),
//! so the server needs no Node.js and no files beside it.
//!
//! `GET /` and every other `GET` outside the API serve the single-page app: a file of the
//! build when one matches the path, else `index.html` so client-side routes survive a
//! reload. Hashed files under `/assets/` are cached for a year; everything else is
//! revalidated (`no-cache`) with an `ETag`. Files are sent gzip-compressed to browsers that
//! accept it. API paths and missing assets keep the JSON 404 envelope.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;
use tower_http::compression::CompressionLayer;

use crate::error::ApiError;

#[derive(Embed)]
#[folder = "../ui/dist"]
struct Build;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Paths that belong to the API and never fall back to the app.
fn is_api_path(path: &str) -> bool {
    ["/v1", "/metrics", "/openapi.json", "/docs"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// The dashboard's client-side routes (see `ui/src/App.tsx`): a reload of one of these gets
/// the app; any other unknown path keeps the JSON 404.
fn is_app_route(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    matches!(
        first,
        "" | "tenants" | "events" | "quotas" | "meters" | "webhooks" | "keys"
    )
}

/// The main router's fallback: [`serve`], gzip-compressed for clients that accept it.
pub(crate) fn service() -> Router {
    Router::new().fallback(serve).layer(CompressionLayer::new())
}

/// The dashboard for page loads, the JSON 404 for everything else.
pub(crate) async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if !(method == Method::GET || method == Method::HEAD) || is_api_path(path) {
        return ApiError::unknown_path(path).into_response();
    }
    let name = path.trim_start_matches('/');
    let (name, file) = match Build::get(name) {
        Some(file) if !name.is_empty() => (name, file),
        _ if name.starts_with("assets/")
            || name.rsplit('/').next().is_some_and(|n| n.contains('.')) =>
        {
            // A missing asset must not turn into the HTML page (a browser would try to run it).
            return ApiError::unknown_path(path).into_response();
        }
        _ if !is_app_route(path) => return ApiError::unknown_path(path).into_response(),
        _ => match Build::get("index.html") {
            Some(file) => ("index.html", file),
            None => return ApiError::unknown_path(path).into_response(),
        },
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let cache = if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn get(path: &str) -> Response {
        serve(Method::GET, path.parse().expect("uri"), HeaderMap::new()).await
    }

    #[tokio::test]
    async fn serves_the_app_with_types_caching_and_fallback() {
        let index = get("/").await;
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(index.headers()[header::CONTENT_TYPE], "text/html");
        assert_eq!(index.headers()[header::CACHE_CONTROL], REVALIDATE);
        let etag = index.headers()[header::ETAG].clone();
        let html = to_bytes(index.into_body(), usize::MAX).await.expect("body");
        let html = String::from_utf8(html.to_vec()).expect("utf-8");
        assert!(html.contains("<div id=\"root\">"), "{html}");

        // Every asset the page links to is served with its type and cached for good.
        let asset = html
            .split('"')
            .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
            .expect("a script asset");
        let js = get(asset).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(js.headers()[header::CONTENT_TYPE], "text/javascript");
        assert_eq!(js.headers()[header::CACHE_CONTROL], IMMUTABLE);

        // Client-side routes get the app; missing assets and API paths get the JSON 404.
        let route = get("/tenants/org_001").await;
        assert_eq!(route.status(), StatusCode::OK);
        assert_eq!(route.headers()[header::CONTENT_TYPE], "text/html");
        for missing in [
            "/assets/nope.js",
            "/favicon.png",
            "/v1/meter/nope",
            "/v1",
            "/v2/meter/events",
            "/nope",
        ] {
            let r = get(missing).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{missing}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        }

        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag);
        let cached = serve(Method::GET, "/".parse().expect("uri"), headers).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

        let post = serve(Method::POST, "/".parse().expect("uri"), HeaderMap::new()).await;
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn compresses_for_browsers_that_accept_gzip() {
        use tower::ServiceExt as _;
        let request = |encoding: Option<&str>| {
            let mut r = axum::http::Request::get("/").body(axum::body::Body::empty());
            if let (Ok(r), Some(e)) = (r.as_mut(), encoding) {
                r.headers_mut().insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_str(e).expect("ascii"),
                );
            }
            r.expect("a request")
        };
        let plain = service().oneshot(request(None)).await.expect("infallible");
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let plain = to_bytes(plain.into_body(), usize::MAX).await.expect("body");

        let gzip = service()
            .oneshot(request(Some("gzip, deflate, br")))
            .await
            .expect("infallible");
        assert_eq!(gzip.status(), StatusCode::OK);
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzip.headers()[header::CONTENT_TYPE], "text/html");
        let gzip = to_bytes(gzip.into_body(), usize::MAX).await.expect("body");
        assert!(
            gzip.len() < plain.len(),
            "{} vs {}",
            gzip.len(),
            plain.len()
        );
        assert_eq!(&gzip[..2], &[0x1f, 0x8b], "a gzip stream");
    }
}
