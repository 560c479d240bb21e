//! Cross-origin requests (CORS) for browser apps served from other origins: off unless
//! origins are configured, then answered by tower-http's [`CorsLayer`].
//!
//! A configured origin may call every endpoint: preflights are answered with the methods
//! and headers the API uses (`X-API-Key`, `Authorization`, `Content-Type`) and a max-age,
//! and responses expose `Retry-After` and `X-Request-Id`. `*` allows any origin, but only
//! on the endpoints that take no key (`/v1/meter/health`, `/openapi.json`): a page on an
//! unknown origin holding a key must not be able to use it. A request from an origin that is
//! not allowed gets no CORS headers (the browser then withholds the answer from the page);
//! the server still handles and authenticates it as usual.

use std::fmt;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header, request::Parts};
use axum::response::Response;
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long browsers may cache a preflight answer.
const MAX_AGE: Duration = Duration::from_secs(600);

/// The endpoints that take no key, which `*` opens to any origin.
const KEYLESS_PATHS: [&str; 2] = ["/v1/meter/health", "/openapi.json"];

/// Which browser origins may call the API. The default allows none (no CORS headers at
/// all).
///
/// A listed origin may call every endpoint: preflights allow `X-API-Key`, `Authorization`
/// and `Content-Type` and are cached for 10 minutes, and answers expose `Retry-After` and
/// `X-Request-Id`. `*` allows any origin on the endpoints that take no key only
/// (`/v1/meter/health`, `/openapi.json`). An origin not allowed gets no CORS headers; its
/// requests are still handled and authenticated as usual (the browser withholds the answer).
///
/// ```
/// use metering_http::CorsConfig;
///
/// let cors = CorsConfig::new(["http://localhost:3000", "https://app.example.com"], false)?;
/// assert!(cors.is_enabled());
/// assert!(CorsConfig::new(["localhost:3000"], false).is_err());
/// assert!(CorsConfig::new(["*"], true).is_err());
/// # Ok::<(), metering_http::CorsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "CorsSettings")]
pub struct CorsConfig {
    /// The allowed origins, lowercased as browsers send them.
    origins: Vec<HeaderValue>,
    /// Whether `*` was configured.
    any_keyless: bool,
    allow_credentials: bool,
}

/// The serialized form of [`CorsConfig`], checked on the way in.
#[derive(Default, Deserialize)]
#[serde(default)]
struct CorsSettings {
    origins: Vec<String>,
    allow_credentials: bool,
}

impl TryFrom<CorsSettings> for CorsConfig {
    type Error = CorsError;

    fn try_from(s: CorsSettings) -> Result<Self, Self::Error> {
        CorsConfig::new(s.origins, s.allow_credentials)
    }
}

/// Why a CORS setting was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsError {
    /// An origin that is not `scheme://host[:port]` with scheme `http` or `https`.
    Malformed {
        /// The origin as given.
        origin: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `*` together with credentials, which browsers refuse and which would let any site
    /// send a user's credentials.
    WildcardWithCredentials,
}

impl fmt::Display for CorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsError::Malformed { origin, reason } => write!(
                f,
                "invalid CORS origin {origin:?}: {reason} (expected scheme://host[:port], \
                 e.g. http://localhost:3000, or *)"
            ),
            CorsError::WildcardWithCredentials => f.write_str(
                "the CORS origin * cannot be combined with credentials: list the origins \
                 that may send credentials instead",
            ),
        }
    }
}

impl std::error::Error for CorsError {}

impl CorsConfig {
    /// Allows `origins` (each `scheme://host[:port]`, or `*` for the keyless endpoints);
    /// `allow_credentials` lets browsers send cookies or HTTP authentication with them.
    ///
    /// # Errors
    ///
    /// [`CorsError::Malformed`] for an origin with another scheme, a path, a query, user
    /// info or no host; [`CorsError::WildcardWithCredentials`] for `*` with credentials.
    pub fn new<I, S>(origins: I, allow_credentials: bool) -> Result<Self, CorsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut config = CorsConfig {
            allow_credentials,
            ..CorsConfig::default()
        };
        for origin in origins {
            let origin = origin.as_ref().trim();
            if origin == "*" {
                config.any_keyless = true;
                continue;
            }
            let value = parse_origin(origin)?;
            if !config.origins.contains(&value) {
                config.origins.push(value);
            }
        }
        if config.any_keyless && allow_credentials {
            return Err(CorsError::WildcardWithCredentials);
        }
        Ok(config)
    }

    /// Whether any origin is allowed (otherwise the server sends no CORS headers).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.any_keyless || !self.origins.is_empty()
    }

    /// The layer answering preflights and adding CORS headers, or `None` when disabled.
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        if !self.is_enabled() {
            return None;
        }
        let origins = self.origins.clone();
        let any_keyless = self.any_keyless;
        let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
            origins.contains(origin) || (any_keyless && KEYLESS_PATHS.contains(&parts.uri.path()))
        });
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::DELETE,
                    Method::OPTIONS,
                ])
                .allow_headers([
                    HeaderName::from_static("x-api-key"),
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                ])
                .expose_headers([header::RETRY_AFTER, HeaderName::from_static("x-request-id")])
                .allow_credentials(self.allow_credentials)
                .max_age(MAX_AGE),
        )
    }
}

/// Removes the CORS headers of an answer that does not allow its origin: tower-http's layer
/// lists the allowed methods and headers on every preflight and the exposed headers on every
/// answer, which tell an origin that is not allowed nothing useful.
pub(crate) async fn strip_unallowed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        let names: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            headers.remove(name);
        }
    }
    response
}

/// `origin` checked and normalized as browsers send it in `Origin`.
fn parse_origin(origin: &str) -> Result<HeaderValue, CorsError> {
    let malformed = |reason| CorsError::Malformed {
        origin: origin.to_owned(),
        reason,
    };
    let lower = origin.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
        .ok_or_else(|| malformed("the scheme must be http:// or https://"))?;
    if rest.is_empty() {
        return Err(malformed("no host"));
    }
    if rest.contains(['/', '?', '#']) {
        return Err(malformed("an origin has no path, query or fragment"));
    }
    if rest.contains('@') {
        return Err(malformed("an origin has no user info"));
    }
    let authority: axum::http::uri::Authority = rest
        .parse()
        .map_err(|_| malformed("not a valid host and port"))?;
    if authority.host().is_empty() {
        return Err(malformed("no host"));
    }
    if rest.ends_with(':') {
        return Err(malformed("an empty port"));
    }
    HeaderValue::from_str(&lower).map_err(|_| malformed("not a valid header value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalized() {
        let config = CorsConfig::new(
            [
                "http://localhost:3000",
                "HTTPS://App.Example.com",
                "http://[::1]:8080",
            ],
            false,
        )
        .expect("valid");
        let origins: Vec<&str> = config
            .origins
            .iter()
            .map(|o| o.to_str().expect("ascii"))
            .collect();
        assert_eq!(
            origins,
            [
                "http://localhost:3000",
                "https://app.example.com",
                "http://[::1]:8080"
            ]
        );
        for bad in [
            "localhost:3000",
            "ftp://example.com",
            "http://",
            "http://example.com/",
            "http://example.com/app",
            "http://example.com?x=1",
            "http://user@example.com",
            "http://example.com:",
            "http://exa mple.com",
            "",
        ] {
            let err = CorsConfig::new([bad], false).expect_err(bad);
            assert!(matches!(err, CorsError::Malformed { .. }), "{bad}: {err:?}");
            assert!(err.to_string().contains("scheme://host[:port]"), "{err}");
        }
    }

    #[test]
    fn a_wildcard_never_goes_with_credentials() {
        assert_eq!(
            CorsConfig::new(["*"], true),
            Err(CorsError::WildcardWithCredentials)
        );
        assert_eq!(
            CorsConfig::new(["http://a.example", "*"], true),
            Err(CorsError::WildcardWithCredentials)
        );
        assert!(CorsConfig::new(["*"], false).expect("valid").is_enabled());
        assert!(!CorsConfig::default().is_enabled());
        assert!(CorsConfig::default().layer().is_none());
    }

    #[test]
    fn settings_are_checked_when_deserialized() {
        let ok: CorsConfig =
            serde_json::from_str(r#"{"origins":["http://localhost:5173"]}"#).expect("valid");
        assert!(ok.is_enabled());
        let bad =
            serde_json::from_str::<CorsConfig>(r#"{"origins":["*"],"allow_credentials":true}"#);
        assert!(bad.is_err());
    }
}
