//! Quantities are exact end to end, on every store: for random quantities (0 < q <= 10^15,
//! 0 to 9 fractional digits) sent as number literals or decimal strings, `POST` then `GET`,
//! aggregates and validate give back exactly what was sent, always as JSON numbers, and sums
//! equal the exact sum. Literals that would need rounding are refused with 422.
//!
//! The stores: memory, SQLite (a temporary file) and PostgreSQL (a schema of its own, when
//! `METERING_TEST_POSTGRES_URL` is set), each behind the server's own wiring.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use metering_core::{Clock as _, MemoryQuotaCache, NewApiKey, Quantity, Role, SystemClock};
use metering_http::{AppState, ServerConfig};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;

const ADMIN: &str = "mk_exact_admin_secret_0123456789";

/// A router over the store `url` names, with the server's wiring and an admin key.
async fn router(url: &str) -> Router {
    let store = metering_http::open_store(url)
        .await
        .expect("open the store");
    let state = AppState::from_backends(
        store,
        Arc::new(MemoryQuotaCache::new()),
        ServerConfig::default(),
    );
    state
        .engine()
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("import the admin key");
    metering_http::router(state)
}

/// Sends `body` as it is (no re-encoding, so literals arrive exactly as written).
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<String>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", ADMIN);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, Body::from))
        .expect("a request");
    let (status, _, bytes) = common::respond(router, request).await;
    (status, String::from_utf8(bytes).expect("UTF-8"))
}

/// A decimal field as it came over the wire: its JSON text, which must be a number.
fn number(raw: &RawValue) -> Quantity {
    assert!(
        !raw.get().starts_with('"'),
        "a decimal must always be a JSON number: {}",
        raw.get()
    );
    Quantity::from_json_number(raw.get()).expect("a decimal literal")
}

#[derive(Deserialize)]
struct Page {
    events: Vec<StoredEvent>,
}

#[derive(Deserialize)]
struct StoredEvent {
    id: String,
    quantity: Box<RawValue>,
}

#[derive(Deserialize)]
struct Report {
    aggregates: Vec<Row>,
    summary: Summary,
}

#[derive(Deserialize)]
struct Row {
    total_quantity: Box<RawValue>,
    event_count: u64,
}

#[derive(Deserialize)]
struct Summary {
    total_quantity: Box<RawValue>,
    total_events: u64,
}

#[derive(Deserialize)]
struct Decision {
    allowed: bool,
    limit: Box<RawValue>,
    remaining: Box<RawValue>,
    current_usage: Box<RawValue>,
}

/// A quantity with `digits` fractional digits: `units` and the leading digits of `nanos`.
fn quantity(units: u64, nanos: u32, digits: u32) -> Quantity {
    let step = 10u32.pow(9 - digits);
    // 10^15 is the largest quantity an event may carry, with no fraction above it.
    let nanos = if units >= 1_000_000_000_000_000 {
        0
    } else {
        nanos / step * step
    };
    let q = Quantity::from_parts(u128::from(units), u128::from(nanos));
    if q.is_zero() {
        Quantity::from_nanos(u128::from(step))
    } else {
        q
    }
}

/// How a quantity is written in a request.
#[derive(Debug, Clone, Copy)]
enum Form {
    /// `12.5`
    Number,
    /// `12.50000` (trailing zeros, still nine fractional digits at most)
    Padded,
    /// `"12.5"`
    Text,
    /// `1.25e1`
    Exponent,
}

fn literal(q: Quantity, form: Form) -> String {
    let text = q.to_string();
    match form {
        Form::Number => text,
        Form::Padded => {
            let fraction = text.split_once('.').map_or(0, |(_, f)| f.len());
            let zeros = "0".repeat(9 - fraction);
            if fraction == 0 {
                format!("{text}.{zeros}")
            } else {
                format!("{text}{zeros}")
            }
        }
        Form::Text => format!("\"{text}\""),
        Form::Exponent => format!("{}e-9", q.nanos()),
    }
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::Number),
        Just(Form::Padded),
        Just(Form::Text),
        Just(Form::Exponent)
    ]
}

fn units() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..10,
        0u64..1_000_000,
        0u64..=999_999_999_999_999,
        Just(1_000_000_000_000_000),
    ]
}

/// Runs one case: the quantities of a tenant of its own, posted, listed, aggregated and
/// checked against a quota.
async fn round_trip(
    router: &Router,
    tenant: &str,
    quantities: &[(Quantity, Form)],
    batch_path: bool,
) -> Result<(), TestCaseError> {
    let events: Vec<String> = quantities
        .iter()
        .enumerate()
        .map(|(i, (q, form))| {
            format!(
                r#"{{"id": "{tenant}-{i}", "tenant_id": "{tenant}", "resource": "api.v1.invoices",
                    "feature": "create", "quantity": {}}}"#,
                literal(*q, *form)
            )
        })
        .collect();
    let (path, body) = match (events.len(), batch_path) {
        (1, false) => ("/v1/meter/events", events[0].clone()),
        (_, false) => (
            "/v1/meter/events",
            format!(r#"{{"events": [{}]}}"#, events.join(",")),
        ),
        (_, true) => (
            "/v1/meter/events/batch",
            format!(r#"{{"events": [{}]}}"#, events.join(",")),
        ),
    };
    let (status, text) = send(router, Method::POST, path, Some(body)).await;
    prop_assert_eq!(status, StatusCode::CREATED, "{}", text);

    let (status, text) = send(
        router,
        Method::GET,
        &format!("/v1/meter/events?tenant_id={tenant}&page_size=1000"),
        None,
    )
    .await;
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let page: Page = serde_json::from_str(&text).expect("a page");
    prop_assert_eq!(page.events.len(), quantities.len());
    for event in &page.events {
        let i: usize = event
            .id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .expect("our id");
        prop_assert_eq!(number(&event.quantity), quantities[i].0, "{}", text);
        prop_assert_eq!(event.quantity.get(), quantities[i].0.to_string());
    }

    let exact: Quantity = quantities.iter().map(|(q, _)| *q).sum();
    let now = SystemClock.now();
    let (status, text) = send(
        router,
        Method::GET,
        &format!(
            "/v1/meter/aggregates?window_type=daily&group_by=tenant_id&tenant_id={tenant}\
             &start_date={}&end_date={}",
            (now - chrono::Duration::days(2)).format("%Y-%m-%d"),
            (now + chrono::Duration::days(2)).format("%Y-%m-%d"),
        ),
        None,
    )
    .await;
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let report: Report = serde_json::from_str(&text).expect("a report");
    prop_assert_eq!(number(&report.summary.total_quantity), exact, "{}", text);
    prop_assert_eq!(report.summary.total_events, quantities.len() as u64);
    let rows: Quantity = report
        .aggregates
        .iter()
        .map(|row| number(&row.total_quantity))
        .sum();
    prop_assert_eq!(rows, exact);
    prop_assert_eq!(
        report
            .aggregates
            .iter()
            .map(|row| row.event_count)
            .sum::<u64>(),
        quantities.len() as u64
    );

    // A quota whose limit is the exact sum plus the first quantity: the check of the first
    // quantity is allowed with nothing to spare.
    let first = quantities[0];
    let limit = exact + first.0;
    let (status, text) = send(
        router,
        Method::PUT,
        "/v1/meter/quotas",
        Some(format!(
            r#"{{"tenant_id": "{tenant}", "resource": "api.v1.invoices", "feature": "create",
                "limit": {}, "period": "yearly"}}"#,
            literal(limit, Form::Number)
        )),
    )
    .await;
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let (status, text) = send(
        router,
        Method::POST,
        "/v1/meter/validate",
        Some(format!(
            r#"{{"tenant_id": "{tenant}", "resource": "api.v1.invoices", "feature": "create",
                "quantity": {}}}"#,
            literal(first.0, first.1)
        )),
    )
    .await;
    prop_assert_eq!(status, StatusCode::OK, "{}", text);
    let decision: Decision = serde_json::from_str(&text).expect("a decision");
    prop_assert!(decision.allowed, "{}", text);
    prop_assert_eq!(number(&decision.current_usage), exact, "{}", text);
    prop_assert_eq!(number(&decision.limit), limit, "{}", text);
    prop_assert_eq!(number(&decision.remaining), first.0, "{}", text);
    Ok(())
}

/// Every store the build and the environment offer, by URL.
fn store_urls(dir: &std::path::Path, tag: &str) -> Vec<String> {
    let mut urls = vec![
        "memory://".to_owned(),
        format!("sqlite://{}", dir.join("exact.db").display()),
    ];
    match metering_testkit::postgres_url() {
        Some(url) if cfg!(feature = "postgres") => {
            let join = if url.contains('?') { '&' } else { '?' };
            urls.push(format!("{url}{join}schema=exact_{tag}"));
        }
        Some(_) => println!("SKIPPED postgres: build metering-http with --features postgres"),
        None => println!("SKIPPED postgres: METERING_TEST_POSTGRES_URL not set"),
    }
    urls
}

#[test]
fn random_quantities_come_back_exactly_on_every_store() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let tag = format!("{:x}", SystemClock.now().timestamp_micros());
    for url in store_urls(dir.path(), &tag) {
        let router = runtime.block_on(router(&url));
        let case = std::cell::Cell::new(0u32);
        let config = ProptestConfig {
            cases: 48,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(
            quantities in prop::collection::vec(
                (units(), any::<u32>(), 0u32..=9, form()), 1..12),
            batch_path in any::<bool>(),
        )| {
            case.set(case.get() + 1);
            let quantities: Vec<(Quantity, Form)> = quantities
                .into_iter()
                .map(|(units, nanos, digits, form)| {
                    (quantity(units, nanos % 1_000_000_000, digits), form)
                })
                .collect();
            let tenant = format!("exact_{tag}_{}", case.get());
            runtime.block_on(round_trip(&router, &tenant, &quantities, batch_path))?;
        });
        println!(
            "{}: {} cases exact",
            metering_testkit::env::redact(&url),
            case.get()
        );
    }
}

#[tokio::test]
async fn literals_that_would_be_rounded_are_refused() {
    let router = router("memory://").await;
    for (i, (literal, field)) in [
        ("999999999999999.999999999", None),
        ("0.1000000000000000055511151231257827", Some("quantity")),
        ("1.0000000001", Some("quantity")),
        ("1000000000000000.000000001", Some("quantity")),
        ("1e-10", Some("quantity")),
        ("\"0.0000000001\"", Some("quantity")),
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!(
            r#"{{"id": "lit-{i}", "tenant_id": "lit", "resource": "r", "feature": "f",
                "quantity": {literal}}}"#
        );
        let (status, text) = send(&router, Method::POST, "/v1/meter/events", Some(body)).await;
        match field {
            None => assert_eq!(status, StatusCode::CREATED, "{literal}: {text}"),
            Some(field) => {
                assert_eq!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{literal}: {text}"
                );
                let error: serde_json::Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(error["error"]["details"]["field"], field, "{text}");
            }
        }
    }
    let (_, text) = send(&router, Method::GET, "/v1/meter/events?tenant_id=lit", None).await;
    let page: Page = serde_json::from_str(&text).expect("a page");
    assert_eq!(page.events.len(), 1, "{text}");
    assert_eq!(page.events[0].quantity.get(), "999999999999999.999999999");
}
