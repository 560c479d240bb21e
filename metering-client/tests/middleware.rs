//! `MeteringLayer` on an axum router, driven with `oneshot` (no socket).

#![cfg(feature = "tower")]

#[cfg(all(feature = "remote", feature = "spill"))]
mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use metering_client::middleware::{Enforcement, MeteringLayer, RecordOn};
use metering_client::{NewEvent, Recorder};
use metering_core::{
    Feature, MemoryStore, Metering, Quantity, QuotaDecision, QuotaPeriod, QuotaScope, QuotaSpec,
    TenantId,
};
use tower::ServiceExt;

#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<NewEvent>>>);

impl Recorder for Collect {
    fn record(&self, event: NewEvent) {
        self.0.lock().expect("not poisoned").push(event);
    }
}

impl Collect {
    fn events(&self) -> Vec<NewEvent> {
        self.0.lock().expect("not poisoned").clone()
    }
}

fn app(layer: MeteringLayer) -> Router {
    Router::new()
        .route("/v1/items/{id}", get(|| async { "item" }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(layer)
}

fn request(path: &str, tenant: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(tenant) = tenant {
        builder = builder.header("X-Tenant-ID", tenant);
    }
    builder.body(Body::empty()).expect("a request")
}

#[tokio::test]
async fn meters_route_method_status_and_latency() -> anyhow::Result<()> {
    let collect = Collect::default();
    let app = app(MeteringLayer::new().recorder(collect.clone()));
    let response = app.oneshot(request("/v1/items/42", Some("org_1"))).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let events = collect.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.tenant_id, "org_1");
    assert_eq!(e.resource, "items");
    assert_eq!(e.feature, "GET /v1/items/{id}");
    assert_eq!(e.quantity, Some(Quantity::ONE));
    let metadata = e.metadata.as_ref().expect("metadata");
    assert_eq!(metadata["method"], "GET");
    assert_eq!(metadata["route"], "/v1/items/{id}");
    assert_eq!(metadata["status"], 200);
    assert!(metadata["latency_ms"].is_u64());
    Ok(())
}

#[tokio::test]
async fn no_tenant_and_excluded_paths_pass_unmetered() -> anyhow::Result<()> {
    let collect = Collect::default();
    let layer = MeteringLayer::new()
        .recorder(collect.clone())
        .exclude_path("/health");
    let response = app(layer.clone())
        .oneshot(request("/v1/items/1", None))
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app(layer).oneshot(request("/health", Some("org"))).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(collect.events().is_empty());
    Ok(())
}

#[tokio::test]
async fn closures_and_record_on_success() -> anyhow::Result<()> {
    let collect = Collect::default();
    let layer = MeteringLayer::new()
        .recorder(collect.clone())
        .tenant_from(|parts| {
            parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("org="))
                .map(str::to_owned)
        })
        .resource_from(|_| "catalog".into())
        .feature_from(|info| format!("read {}", info.route))
        .quantity(Quantity::from_units(3))
        .record_on(RecordOn::Success);
    let ok = app(layer.clone())
        .oneshot(request("/v1/items/7?org=acme", None))
        .await?;
    assert_eq!(ok.status(), StatusCode::OK);
    let failed = app(layer).oneshot(request("/boom?org=acme", None)).await?;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let events = collect.events();
    assert_eq!(events.len(), 1, "the 500 is not metered");
    assert_eq!(events[0].tenant_id, "acme");
    assert_eq!(events[0].resource, "catalog");
    assert_eq!(events[0].feature, "read /v1/items/{id}");
    assert_eq!(events[0].quantity, Some(Quantity::from_units(3)));
    Ok(())
}

async fn engine_with_quota(limit: u64) -> anyhow::Result<Metering> {
    let engine = Metering::builder(MemoryStore::new()).build();
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(TenantId::new("org_q")?),
            Feature::new("GET /v1/items/{id}")?,
            Quantity::from_units(limit),
            QuotaPeriod::Daily,
        ))
        .await?;
    Ok(engine)
}

#[tokio::test]
async fn consume_enforcement_refuses_with_429_and_retry_after() -> anyhow::Result<()> {
    let engine = engine_with_quota(2).await?;
    let collect = Collect::default();
    let layer = MeteringLayer::new()
        .recorder(collect.clone())
        .enforce(engine.clone(), Enforcement::Consume);
    for _ in 0..2 {
        let response = app(layer.clone())
            .oneshot(request("/v1/items/1", Some("org_q")))
            .await?;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = app(layer)
        .oneshot(request("/v1/items/1", Some("org_q")))
        .await?;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()?
        .parse()?;
    assert!(retry_after <= 24 * 3600, "{retry_after}");
    let body = axum::body::to_bytes(refused.into_body(), 1 << 20).await?;
    let decision: QuotaDecision = serde_json::from_slice(&body)?;
    assert!(!decision.allowed);
    assert_eq!(decision.limit, Some(Quantity::from_units(2)));
    assert_eq!(decision.current_usage, Quantity::from_units(2));
    // Consumed by the check itself: the engine holds the events, the recorder none.
    assert!(collect.events().is_empty());
    Ok(())
}

#[tokio::test]
async fn validate_enforcement_records_after_the_response() -> anyhow::Result<()> {
    let engine = engine_with_quota(1).await?;
    let collect = Collect::default();
    let layer = MeteringLayer::new()
        .recorder(collect.clone())
        .enforce(engine, Enforcement::Validate);
    let response = app(layer.clone())
        .oneshot(request("/v1/items/1", Some("org_q")))
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    // Validation alone consumes nothing, so the quota still admits the next one.
    let again = app(layer)
        .oneshot(request("/v1/items/1", Some("org_q")))
        .await?;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(collect.events().len(), 2);
    Ok(())
}

#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl metering_client::middleware::QuotaChecker for Down {
    async fn check(
        &self,
        _request: metering_core::ValidateRequest,
    ) -> Result<QuotaDecision, metering_core::BoxError> {
        Err("down".into())
    }
}

#[tokio::test]
async fn a_failing_checker_fails_open_unless_told_otherwise() -> anyhow::Result<()> {
    let open = MeteringLayer::new()
        .recorder(Collect::default())
        .enforce(Down, Enforcement::Consume);
    let response = app(open.clone())
        .oneshot(request("/v1/items/1", Some("org")))
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let response = app(open.fail_closed())
        .oneshot(request("/v1/items/1", Some("org")))
        .await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    Ok(())
}

/// The client keeps metered requests compact until they ship; what reaches either sink is
/// the event a plain recorder gets.
#[cfg(all(feature = "remote", feature = "spill"))]
mod shipped {
    use std::time::Duration;

    use metering_client::{ClientConfig, MeteringClient};
    use metering_core::{EventFilter, EventQuery, MemoryStore, Metering, Paging};
    use serde_json::{Value, json};

    use super::*;

    use crate::common;

    /// Two requests through the layer: one to an item, one failing.
    async fn drive(recorder: impl Recorder) -> anyhow::Result<()> {
        let app = app(MeteringLayer::new().recorder(recorder));
        app.clone()
            .oneshot(request("/v1/items/42", Some("org_1")))
            .await?;
        app.oneshot(request("/boom", Some("org \"2\""))).await?;
        Ok(())
    }

    fn check(event: &Value, tenant: &str, feature: &str, resource: &str, status: u16) {
        assert_eq!(event["tenant_id"], json!(tenant), "{event}");
        assert_eq!(event["resource"], json!(resource), "{event}");
        assert_eq!(event["feature"], json!(feature), "{event}");
        // Absent on the wire means the contract's default, 1.
        let quantity = event.get("quantity").cloned().unwrap_or(json!(1));
        assert_eq!(quantity, json!(1), "{event}");
        let metadata = &event["metadata"];
        assert_eq!(metadata["method"], json!("GET"), "{event}");
        assert_eq!(metadata["status"], json!(status), "{event}");
        assert!(metadata["latency_ms"].is_u64(), "{event}");
        let id = event["id"].as_str().expect("an id");
        let id = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(id.get_version_num(), 7);
        let at = event["timestamp"].as_str().expect("a timestamp");
        let at = chrono::DateTime::parse_from_rfc3339(at).expect("RFC 3339");
        let now = metering_core::Clock::now(&metering_core::SystemClock);
        assert!((now - at.to_utc()).num_seconds().abs() < 60);
    }

    #[tokio::test]
    async fn to_a_server_also_after_spilling() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let addr = common::free_addr()?;
        let client = MeteringClient::connect(
            ClientConfig::default()
                .with_api_url(format!("http://{addr}"))
                .with_max_retries(0)
                .with_spill_path(dir.path().join("spill.db"))
                .with_replay_interval(Duration::from_millis(50)),
        )
        .await?;
        // The server is down: both requests are spilled, then replayed from disk.
        drive(client.clone()).await?;
        assert_eq!(client.flush().await.pending_spill, 2);
        let server = common::start_on(addr).await?;
        drive(client.clone()).await?;
        let report = client.shutdown().await;
        assert!(report.is_complete(), "{report:?}");
        let stored = server.stored();
        assert_eq!(stored.len(), 4, "{stored:?}");
        for pair in stored.chunks(2) {
            check(&pair[0], "org_1", "GET /v1/items/{id}", "items", 200);
            check(&pair[1], "org \"2\"", "GET /boom", "boom", 500);
            assert_eq!(pair[0]["metadata"]["route"], json!("/v1/items/{id}"));
        }
        Ok(())
    }

    #[tokio::test]
    async fn into_an_embedded_engine() -> anyhow::Result<()> {
        let engine = Metering::builder(MemoryStore::new()).build();
        let client = MeteringClient::embedded(engine.clone(), ClientConfig::default()).await?;
        drive(client.clone()).await?;
        assert_eq!(client.shutdown().await.stats.sent, 2);
        let query = EventQuery::new(
            EventFilter::all().tenant(TenantId::new("org_1")?),
            Paging::default(),
        );
        let page = engine.list_events(&query).await?;
        assert_eq!(page.events.len(), 1);
        let event = serde_json::to_value(&page.events[0])?;
        check(&event, "org_1", "GET /v1/items/{id}", "items", 200);
        Ok(())
    }
}
