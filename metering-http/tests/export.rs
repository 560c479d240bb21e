//! `GET /v1/meter/events/export`, and CSV answers of aggregates and meter queries.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, assert_error, build, respond};
use metering_core::Role;
use serde_json::{Value, json};

async fn download(
    app: &common::App,
    uri: &str,
    key: &str,
    accept: Option<&str>,
) -> (StatusCode, String, String) {
    let mut request = build(Method::GET, uri, Some(key), None);
    if let Some(accept) = accept {
        request
            .headers_mut()
            .insert("accept", accept.parse().expect("a header value"));
    }
    let (status, headers, body) = respond(&app.router, request).await;
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        status,
        content_type,
        String::from_utf8(body).expect("UTF-8"),
    )
}

/// 2,500 events of `org_a` (more than two export pages) and 2 of `org_b`.
async fn seeded() -> common::App {
    let app = app().await;
    for chunk in 0..5 {
        let events: Vec<Value> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                json!({"id": format!("a-{n:05}"), "tenant_id": "org_a", "resource": "api", "feature": "call",
                       "quantity": "0.000000001", "timestamp": format!("2025-11-{:02}T{:02}:{:02}:00Z", 1 + n % 28, n / 60 % 24, n % 60)})
            })
            .collect();
        let (status, body) = app
            .post("/v1/meter/events", json!({"events": events}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = app
        .post(
            "/v1/meter/events",
            json!({"events": [
                {"id": "b-1", "tenant_id": "org_b", "resource": "api", "feature": "call",
                 "quantity": "999999999999999.999999999", "timestamp": "2025-11-20T10:00:00Z",
                 "metadata": {"note": "a, \"quoted\"\nline"}},
                {"id": "b-2", "tenant_id": "org_b", "resource": "api", "feature": "call",
                 "quantity": 2, "timestamp": "2025-11-21T10:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

#[tokio::test]
async fn ndjson_exports_every_event_once_newest_first_and_exact() {
    let app = seeded().await;
    let (status, content_type, body) = download(&app, "/v1/meter/events/export", ADMIN, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "application/x-ndjson");
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 2_502);
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    let order: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["timestamp"].as_str().expect("ts").to_owned(),
                e["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, sorted, "newest first, ties by id descending");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_502, "each event once");
    assert!(
        body.contains("\"quantity\":999999999999999.999999999"),
        "exact text"
    );

    let (_, _, body) = download(
        &app,
        "/v1/meter/events/export?tenant_id=org_b&start_date=2025-11-21",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(body.lines().count(), 1);
    assert!(body.starts_with("{\"id\":\"b-2\""), "{body}");
}

#[tokio::test]
async fn csv_has_a_header_and_rfc_4180_quoting() {
    let app = seeded().await;
    let (status, content_type, body) = download(
        &app,
        "/v1/meter/events/export?format=csv&tenant_id=org_b",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let mut rows = body.split("\r\n");
    assert_eq!(
        rows.next(),
        Some("id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata")
    );
    let b2 = rows.next().expect("b-2");
    assert!(
        b2.starts_with("b-2,org_b,api,call,2,2025-11-21T10:00:00Z,"),
        "{b2}"
    );
    assert!(b2.ends_with(','), "no metadata: an empty last field: {b2}");
    let b1 = rows.next().expect("b-1");
    assert!(
        b1.starts_with("b-1,org_b,api,call,999999999999999.999999999,2025-11-20T10:00:00Z,"),
        "{b1}"
    );
    assert!(
        b1.ends_with(r#","{""note"":""a, \""quoted\""\nline""}""#),
        "{b1}"
    );
    assert_eq!(rows.next(), Some(""));
    assert_eq!(rows.next(), None);

    // Nothing matches: a header only, and an empty NDJSON file.
    let empty = "start_date=2000-01-01&end_date=2000-01-02";
    let uri = format!("/v1/meter/events/export?format=csv&{empty}");
    let (status, _, body) = download(&app, &uri, ADMIN, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        "id,tenant_id,resource,feature,quantity,timestamp,created_at,metadata\r\n"
    );
    let uri = format!("/v1/meter/events/export?{empty}");
    let (status, _, body) = download(&app, &uri, ADMIN, None).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));

    let (_, _, all) = download(&app, "/v1/meter/events/export?format=csv", ADMIN, None).await;
    assert_eq!(
        all.matches("\r\n").count(),
        2_503,
        "a header and one row per event"
    );
}

#[tokio::test]
async fn keys_and_parameters_are_checked() {
    let app = seeded().await;
    let scoped = app.key(Role::Read, Some("org_b")).await;
    let (status, _, body) = download(&app, "/v1/meter/events/export", &scoped, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.lines().count(),
        2,
        "a tenant key exports its own tenant"
    );
    let (status, _, body) = download(
        &app,
        "/v1/meter/events/export?tenant_id=org_a",
        &scoped,
        None,
    )
    .await;
    let body: Value = serde_json::from_str(&body).expect("an envelope");
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let ingest = app.key(Role::Ingest, None).await;
    let (status, _, body) = download(&app, "/v1/meter/events/export", &ingest, None).await;
    let body: Value = serde_json::from_str(&body).expect("an envelope");
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    for (uri, field) in [
        ("/v1/meter/events/export?format=xml", "format"),
        ("/v1/meter/events/export?start_date=yesterday", "start_date"),
        ("/v1/meter/events/export?page=2", "page"),
    ] {
        let (status, _, body) = download(&app, uri, ADMIN, None).await;
        let body: Value = serde_json::from_str(&body).expect("an envelope");
        assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
        assert!(
            body.to_string().contains(&format!("\"field\":\"{field}\"")),
            "{uri}: {body}"
        );
    }
    // A store that is down answers the envelope, not a cut-off file.
    app.store.set(common::DOWN);
    let (status, _, body) = download(&app, "/v1/meter/events/export", ADMIN, None).await;
    let body: Value = serde_json::from_str(&body).expect("an envelope");
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    );
}

#[tokio::test]
async fn aggregates_and_meter_queries_answer_csv_when_asked() {
    let app = seeded().await;
    let uri = "/v1/meter/aggregates?window_type=monthly&start_date=2025-11-01&end_date=2025-12-01&group_by=tenant_id";
    let (status, content_type, body) = download(&app, uri, ADMIN, Some("text/csv")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert_eq!(
        body,
        "window_start,window_end,window_type,tenant_id,resource,feature,total_quantity,event_count\r\n\
         2025-11-01T00:00:00Z,2025-12-01T00:00:00Z,monthly,org_a,,,0.0000025,2500\r\n\
         2025-11-01T00:00:00Z,2025-12-01T00:00:00Z,monthly,org_b,,,1000000000000001.999999999,2\r\n"
    );
    // JSON stays the default, also for `*/*`.
    let (_, content_type, _) = download(&app, uri, ADMIN, Some("*/*")).await;
    assert_eq!(content_type, "application/json");

    let (status, _) = app
        .put(
            "/v1/meter/meters/calls",
            json!({"aggregation": "sum", "dimensions": ["note"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let uri = "/v1/meter/meters/calls/query?start_date=2025-11-01&end_date=2025-12-01&group_by=tenant_id,note";
    let (status, _, body) = download(&app, uri, ADMIN, Some("text/html, text/csv;q=0.9")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        "window_start,window_end,tenant_id,note,value,event_count\r\n\
         2025-11-01T00:00:00Z,2025-12-01T00:00:00Z,org_a,,0.0000025,2500\r\n\
         2025-11-01T00:00:00Z,2025-12-01T00:00:00Z,org_b,\"a, \"\"quoted\"\"\nline\",999999999999999.999999999,1\r\n\
         2025-11-01T00:00:00Z,2025-12-01T00:00:00Z,org_b,,2,1\r\n"
    );
}
