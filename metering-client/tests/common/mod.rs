//! A stand-in for `metering-server`'s ingestion endpoint, with failure modes.

#![allow(dead_code, unreachable_pub)] // each test binary uses part of it

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How the next requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 201, storing the events.
    Accept,
    /// 503 for the next `n` requests, then accept.
    Unavailable(u32),
    /// 429 with `Retry-After: secs` for the next request, then accept.
    RateLimited(u64),
    /// 422 without saying which event, for every batch holding a `bad` tenant.
    InvalidWithoutIndex,
    /// Accept after sleeping.
    Slow(Duration),
}

#[derive(Debug)]
pub struct Recorded {
    pub mode: Mode,
    /// Every request body's event ids, in arrival order (failed attempts included).
    pub attempts: Vec<Vec<String>>,
    /// Stored events, in arrival order, each stored once.
    pub stored: Vec<Value>,
    pub ids: HashSet<String>,
    pub api_keys: Vec<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct MockServer {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Recorded>>,
}

impl MockServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().expect("not poisoned").mode = mode;
    }

    pub fn stored(&self) -> Vec<Value> {
        self.state.lock().expect("not poisoned").stored.clone()
    }

    pub fn attempts(&self) -> Vec<Vec<String>> {
        self.state.lock().expect("not poisoned").attempts.clone()
    }

    /// Waits (up to 10 s) until `n` events are stored.
    pub async fn wait_for(&self, n: usize) -> usize {
        for _ in 0..200 {
            let stored = self.stored().len();
            if stored >= n {
                return stored;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stored().len()
    }
}

/// Starts the mock on `addr` (port 0 for any).
pub async fn start_on(addr: SocketAddr) -> anyhow::Result<MockServer> {
    let state = Arc::new(Mutex::new(Recorded {
        mode: Mode::Accept,
        attempts: Vec::new(),
        stored: Vec::new(),
        ids: HashSet::new(),
        api_keys: Vec::new(),
    }));
    let app = Router::new()
        .route("/v1/meter/events", post(ingest))
        .route("/v1/meter/validate", post(validate))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(MockServer { addr, state })
}

pub async fn start() -> anyhow::Result<MockServer> {
    start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts the mock on a thread of its own, so it answers while the test's thread is busy.
pub fn start_on_own_thread() -> MockServer {
    let (started, server) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(async move {
                started
                    .send(start().await.expect("the mock starts"))
                    .expect("the test waits");
                std::future::pending::<()>().await;
            });
    });
    server.recv().expect("the mock starts")
}

/// A local address nothing listens on (yet).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn error(status: StatusCode, code: &str, details: Value) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": "mock", "details": details}})),
    )
        .into_response()
}

async fn ingest(
    State(state): State<Arc<Mutex<Recorded>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mode = {
        let mut s = state.lock().expect("not poisoned");
        s.attempts.push(ids.clone());
        s.api_keys.push(
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        );
        let mode = s.mode;
        match mode {
            Mode::Unavailable(n) if n > 1 => s.mode = Mode::Unavailable(n - 1),
            Mode::Unavailable(_) | Mode::RateLimited(_) => s.mode = Mode::Accept,
            _ => {}
        }
        mode
    };
    match mode {
        Mode::Unavailable(_) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", json!({}));
        }
        Mode::RateLimited(secs) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", json!({}));
            response.headers_mut().insert(
                "retry-after",
                secs.to_string().parse().expect("a header value"),
            );
            return response;
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        Mode::Accept | Mode::InvalidWithoutIndex => {}
    }
    let bad: Vec<Value> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["tenant_id"] == "bad")
        .map(|(i, _)| json!({"index": i, "field": format!("events[{i}].tenant_id"), "message": "bad tenant"}))
        .collect();
    if !bad.is_empty() {
        let details = if mode == Mode::InvalidWithoutIndex {
            json!({})
        } else {
            json!({ "errors": bad })
        };
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            details,
        );
    }
    let mut s = state.lock().expect("not poisoned");
    let mut processed = 0;
    for (event, id) in events.into_iter().zip(&ids) {
        if s.ids.insert(id.clone()) {
            s.stored.push(event);
            processed += 1;
        }
    }
    (
        StatusCode::CREATED,
        Json(json!({"status": "success", "events_processed": processed,
                    "duplicates": ids.len() - processed, "event_ids": ids})),
    )
        .into_response()
}

async fn validate(Json(body): Json<Value>) -> Response {
    let allowed = body["quantity"].as_u64().unwrap_or(1) <= 5;
    Json(
        json!({"allowed": allowed, "remaining": 5, "limit": 5, "period": "daily",
                "reset_at": "2030-01-01T00:00:00Z", "current_usage": 0, "alert": false,
                "message": null}),
    )
    .into_response()
}
