//! What the logs contain: the request id, and never an API key or a secret. Alone in its
//! own test binary because it installs the process-wide subscriber (tracing caches which
//! call sites are enabled process-wide, so a per-thread subscriber misses events when other
//! tests run beside it).

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use metering_core::{MemoryQuotaCache, MemoryStore, NewApiKey, Role};
use metering_http::{AppState, ServerConfig};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "mk_logs_test_admin_secret_0123456789";

fn event(n: usize) -> Value {
    json!({"id": format!("ev-{n}"), "tenant_id": "org_1", "resource": "api", "feature": "call"})
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn logs_carry_the_request_id_and_never_a_key() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .json()
        .with_current_span(true)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let state = AppState::from_backends(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQuotaCache::new()),
        ServerConfig::default(),
    );
    state
        .engine()
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("import the admin key");
    let router = metering_http::router(state.clone());
    let created = state
        .engine()
        .create_api_key(NewApiKey::new("ingest", Role::Ingest))
        .await
        .expect("key");
    let wrong = "mk_not_a_real_key_but_secret_all_the_same_42";
    let requests = [
        (Some(created.secret.as_str()), "x-api-key"),
        (Some(created.secret.as_str()), "authorization"),
        (Some(wrong), "x-api-key"),
        (Some(ADMIN), "authorization"),
    ];
    for (key, header) in requests {
        let value = match header {
            "authorization" => format!("Bearer {}", key.unwrap_or_default()),
            _ => key.unwrap_or_default().to_owned(),
        };
        let request = Request::post("/v1/meter/events")
            .header(header, value)
            .header("x-request-id", "trace-me-7")
            .header("content-type", "application/json")
            .body(Body::from(event(1).to_string()))
            .expect("request");
        router.clone().oneshot(request).await.expect("infallible");
    }
    // A key created over HTTP: its secret is in the response body only.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/meter/api-keys")
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"name": "via-http", "role": "read"}).to_string(),
        ))
        .expect("request");
    let (status, _, body) = common::respond(&router, request).await;
    assert_eq!(status, StatusCode::CREATED);
    let new_secret = serde_json::from_slice::<Value>(&body).expect("json")["key"]
        .as_str()
        .expect("key")
        .to_owned();

    let logs = String::from_utf8(capture.0.lock().expect("not poisoned").clone()).expect("utf-8");
    assert!(
        logs.contains("trace-me-7"),
        "the request id is not in the logs:\n{logs}"
    );
    for secret in [created.secret.as_str(), wrong, ADMIN, new_secret.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
        // Not even the part after the prefix.
        assert!(
            !logs.contains(&secret[8..]),
            "part of a secret reached the logs"
        );
    }
}
