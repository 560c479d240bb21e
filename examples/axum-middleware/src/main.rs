//! `MeteringLayer`: meter an axum app per request and guard a route with a quota.
//!
//! - `GET /v1/reports/{id}` is quota-guarded: the layer consumes one unit of the tenant's
//!   quota before the handler runs and answers `429` (with the quota decision as JSON and
//!   `Retry-After`) once it is used up.
//! - `POST /v1/invoices` is metered after the response (tenant, route, status, latency),
//!   through the batching client installed as the process-wide recorder.
//! - `GET /health` is excluded; requests without `X-Tenant-ID` pass unmetered.
//!
//! With `METERING_API_URL` and `METERING_API_KEY` set, events and quota checks go to that
//! `metering-server` (give the tenant a quota there first, e.g.
//! `metering-server quotas set --tenant org_demo --feature "GET /v1/reports/{id}" --limit 5 --period hourly`).
//! Without them, an in-memory engine with that quota stands in.
//!
//! Run with `cargo run -p example-axum-middleware`: it sends a few requests in-process and
//! prints the answers. Add `serve` to keep listening on `127.0.0.1:3000` (or
//! `METERING_EXAMPLE_BIND`) and try `curl -H 'X-Tenant-ID: org_demo' localhost:3000/v1/reports/1`.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use metering::client::middleware::{Enforcement, MeteringLayer};
use metering::client::{ClientConfig, MeteringClient};
use metering::{
    Feature, MemoryStore, Metering, Quantity, QuotaPeriod, QuotaScope, QuotaSpec, TenantId,
};
use tower::ServiceExt;

async fn client() -> anyhow::Result<MeteringClient> {
    let config = ClientConfig::from_env()?;
    if let Some(url) = &config.api_url {
        println!("metering through {url}");
        return Ok(MeteringClient::connect(config).await?);
    }
    println!("METERING_API_URL is not set: an in-memory engine stands in");
    let engine = Metering::builder(MemoryStore::new()).build();
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(TenantId::new("org_demo")?),
            Feature::new("GET /v1/reports/{id}")?,
            Quantity::from_units(5),
            QuotaPeriod::Hourly,
        ))
        .await?;
    Ok(MeteringClient::embedded(engine, config).await?)
}

fn app(client: &MeteringClient) -> Router {
    let guarded = Router::new()
        .route(
            "/v1/reports/{id}",
            get(|Path(id): Path<u32>| async move { format!("report {id}") }),
        )
        .layer(MeteringLayer::new().enforce(client.clone(), Enforcement::Consume));
    let metered = Router::new()
        .route(
            "/v1/invoices",
            post(|| async { (StatusCode::CREATED, "invoice created") }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(MeteringLayer::new().exclude_path("/health"));
    guarded.merge(metered)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = client().await?;
    metering::set_recorder(client.clone())?;
    let app = app(&client);

    for (method, path) in [
        ("POST", "/v1/invoices"),
        ("GET", "/health"),
        ("GET", "/v1/reports/1"),
        ("GET", "/v1/reports/2"),
        ("GET", "/v1/reports/3"),
        ("GET", "/v1/reports/4"),
        ("GET", "/v1/reports/5"),
        ("GET", "/v1/reports/6"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("X-Tenant-ID", "org_demo")
            .body(Body::empty())?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(|s| format!(" (Retry-After: {s} s)"))
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await?;
        println!(
            "{method:4} {path:16} -> {status}{retry_after} {}",
            String::from_utf8_lossy(&body)
        );
    }

    if std::env::args().nth(1).as_deref() == Some("serve") {
        let bind =
            std::env::var("METERING_EXAMPLE_BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        println!("listening on http://{bind}; Ctrl-C to stop");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    }

    let report = client.shutdown().await;
    println!("client counters: {:?}", report.stats);
    Ok(())
}
