//! Every endpoint of the contract, in process: the shapes of the answers and every row of
//! the error table.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, BROKEN, DOWN, UP, app, app_with, assert_error, event};
use metering_core::Role;
use metering_http::ServerConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn post_one_event_then_a_batch_with_a_duplicate() {
    let app = app().await;
    let (status, body) = app
        .post(
            "/v1/meter/events",
            json!({"id": "evt-1", "tenant_id": "org_001", "resource": "billing",
            "feature": "invoice_generate", "quantity": 2, "metadata": {"user": "u_123"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "events_processed": 1, "duplicates": 0, "event_ids": ["evt-1"]})
    );

    let (status, body) = app
        .post(
            "/v1/meter/events",
            json!({"events": [event("org_001"), {"id": "evt-1", "tenant_id": "org_001",
            "resource": "billing", "feature": "invoice_generate"}, event("org_002")]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["events_processed"], 2);
    assert_eq!(body["duplicates"], 1);
    let ids = body["event_ids"].as_array().expect("ids");
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[1], "evt-1", "event_ids follow the request order");
    assert_eq!(app.event_count().await, 3);
}

#[tokio::test]
async fn list_events_by_page_and_by_cursor() {
    let app = app().await;
    let batch: Vec<Value> = (0..7)
        .map(|i| {
            json!({"id": format!("e{i}"), "tenant_id": "org_001", "resource": "billing",
            "feature": "invoice_generate", "quantity": 1.5,
            "timestamp": format!("2025-11-20T10:0{i}:00Z")})
        })
        .collect();
    let (status, _) = app.post("/v1/meter/events", json!({"events": batch})).await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app
        .get("/v1/meter/events?page=2&page_size=3&tenant_id=org_001")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["pagination"],
        json!({"page": 2, "page_size": 3, "total": 7, "total_pages": 3})
    );
    let ids: Vec<_> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["e3", "e2", "e1"], "newest first");
    let first = &body["events"][0];
    assert_eq!(first["quantity"], 1.5);
    assert_eq!(first["timestamp"], "2025-11-20T10:03:00Z");
    assert!(
        first["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    // Walk every page by cursor: each event exactly once, in order.
    let mut seen = Vec::new();
    let mut uri = "/v1/meter/events?page_size=3".to_owned();
    loop {
        let (status, body) = app.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(
            body["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|e| e["id"].clone()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/meter/events?page_size=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["e6", "e5", "e4", "e3", "e2", "e1", "e0"]);

    let (_, body) = app
        .get("/v1/meter/events?start_date=2025-11-20T10:02:00Z&end_date=2025-11-20T10:04:00Z")
        .await;
    assert_eq!(body["pagination"]["total"], 2, "half-open range: {body}");
}

#[tokio::test]
async fn aggregates_group_and_omit_dimensions() {
    let app = app().await;
    let events = json!({"events": [
        {"tenant_id": "a", "resource": "billing", "feature": "invoice", "quantity": 0.1, "timestamp": "2025-11-20T10:00:00Z"},
        {"tenant_id": "a", "resource": "billing", "feature": "invoice", "quantity": 0.2, "timestamp": "2025-11-20T23:59:59Z"},
        {"tenant_id": "b", "resource": "billing", "feature": "invoice", "quantity": 3, "timestamp": "2025-11-21T00:00:00Z"},
        {"tenant_id": "b", "resource": "api", "feature": "call", "quantity": 5, "timestamp": "2025-11-19T12:00:00Z"},
    ]});
    assert_eq!(
        app.post("/v1/meter/events", events).await.0,
        StatusCode::CREATED
    );

    let (status, body) = app
        .get("/v1/meter/aggregates?window_type=daily&start_date=2025-11-20T00:00:00Z&end_date=2025-11-22T00:00:00Z&group_by=tenant_id")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"aggregates": [
            {"tenant_id": "a", "resource": null, "feature": null, "window_start": "2025-11-20T00:00:00Z",
             "window_end": "2025-11-21T00:00:00Z", "window_type": "daily", "total_quantity": 0.3, "event_count": 2},
            {"tenant_id": "b", "resource": null, "feature": null, "window_start": "2025-11-21T00:00:00Z",
             "window_end": "2025-11-22T00:00:00Z", "window_type": "daily", "total_quantity": 3, "event_count": 1}],
         "summary": {"total_quantity": 3.3, "total_events": 3}})
    );

    // Default grouping is resource,feature; an empty group_by is one series; filters apply.
    let (_, body) = app
        .get("/v1/meter/aggregates?window_type=monthly&start_date=2025-11-01&end_date=2025-12-01")
        .await;
    assert_eq!(
        body["aggregates"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert_eq!(body["aggregates"][0]["resource"], "api");
    assert_eq!(body["aggregates"][0]["tenant_id"], Value::Null);
    let (_, body) = app
        .get("/v1/meter/aggregates?window_type=weekly&start_date=2025-11-01&end_date=2025-12-01&group_by=&tenant_id=b")
        .await;
    assert_eq!(
        body["summary"],
        json!({"total_quantity": 8, "total_events": 2}),
        "{body}"
    );
    assert_eq!(
        body["aggregates"][0]["window_start"], "2025-11-17T00:00:00Z",
        "ISO weeks start Monday"
    );

    // Window boundaries in another zone.
    let (_, body) = app
        .get("/v1/meter/aggregates?window_type=daily&start_date=2025-11-19T00:00:00Z&end_date=2025-11-22T00:00:00Z&group_by=&tz=America/New_York&tenant_id=b")
        .await;
    assert_eq!(
        body["aggregates"][0]["window_start"], "2025-11-19T05:00:00Z",
        "{body}"
    );
    assert_eq!(
        body["aggregates"][1]["window_start"], "2025-11-20T05:00:00Z",
        "{body}"
    );
    assert_eq!(
        body["aggregates"][1]["window_end"], "2025-11-21T05:00:00Z",
        "{body}"
    );
}

#[tokio::test]
async fn validate_without_and_with_quota_then_consume() {
    let app = app().await;
    let (status, body) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org_001", "feature": "invoice_generate"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);
    assert_eq!(body["limit"], Value::Null);
    assert_eq!(body["remaining"], Value::Null);
    assert_eq!(body["message"], "no quota configured");

    let (status, quota) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org_001", "resource": null, "feature": "invoice_generate",
            "limit": 3, "period": "monthly", "alert_threshold": 60, "tz": "UTC"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    for field in ["id", "created_at", "updated_at"] {
        assert!(quota[field].is_string(), "{field} in {quota}");
    }

    let consume = json!({"tenant_id": "org_001", "resource": "billing", "feature": "invoice_generate",
        "consume": true, "quantity": 2, "metadata": {"user": "u_1"}});
    let (status, body) = app.post("/v1/meter/validate", consume.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);
    assert_eq!(body["current_usage"], 2);
    assert_eq!(body["remaining"], 1);
    assert_eq!(body["limit"], 3);
    assert_eq!(body["period"], "monthly");
    assert_eq!(body["alert"], true, "2 of 3 is over 60 %");
    assert!(body["event_id"].is_string());
    assert!(
        body["reset_at"]
            .as_str()
            .is_some_and(|t| t.ends_with("T00:00:00Z"))
    );

    let (_, body) = app.post("/v1/meter/validate", consume).await;
    assert_eq!(body["allowed"], false, "{body}");
    assert!(body.get("event_id").is_none_or(Value::is_null));
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("exceeded"))
    );
    assert_eq!(
        app.event_count().await,
        1,
        "a refused consume records nothing"
    );

    let (_, body) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org_001", "feature": "invoice_generate"}),
        )
        .await;
    assert_eq!(body["allowed"], true, "1 more fits: {body}");
    assert_eq!(body["current_usage"], 2);
}

#[tokio::test]
async fn quotas_list_filter_replace_and_delete() {
    let app = app().await;
    let q = |tenant: &str, limit: u32| json!({"tenant_id": tenant, "feature": "f", "limit": limit, "period": "daily"});
    let (_, first) = app.put("/v1/meter/quotas", q("org_001", 10)).await;
    let (_, replaced) = app.put("/v1/meter/quotas", q("org_001", 20)).await;
    assert_eq!(
        first["id"], replaced["id"],
        "upsert by (tenant, resource, feature)"
    );
    assert_eq!(replaced["limit"], 20);
    assert_eq!(replaced["alert_threshold"], 80, "default threshold");
    app.put("/v1/meter/quotas", q("*", 5)).await;

    let (status, body) = app.get("/v1/meter/quotas").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["quotas"].as_array().map(Vec::len), Some(2));
    let (_, body) = app.get("/v1/meter/quotas?tenant_id=org_001").await;
    assert_eq!(body["quotas"].as_array().map(Vec::len), Some(1));
    let (_, body) = app.get("/v1/meter/quotas?tenant_id=*").await;
    assert_eq!(body["quotas"][0]["tenant_id"], "*");

    let id = first["id"].as_str().expect("id");
    let uri = format!("/v1/meter/quotas/{id}");
    let (status, _, body) = app.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
    let (status, _, body) = app.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/v1/meter/quotas/not-a-uuid",
            Some(ADMIN),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn api_keys_create_list_revoke() {
    let app = app().await;
    let (status, created) = app
        .post(
            "/v1/meter/api-keys",
            json!({"name": "ci", "role": "ingest", "tenant_id": "org_001", "expires_at": null}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["key"]
        .as_str()
        .expect("the secret is shown once")
        .to_owned();
    assert_eq!(created["role"], "ingest");
    assert_eq!(created["tenant_id"], "org_001");

    let (status, _, _) = app
        .call(
            Method::POST,
            "/v1/meter/events",
            Some(&secret),
            Some(event("org_001")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Bearer works too.
    let request = Request::post("/v1/meter/events")
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .body(Body::from(event("org_001").to_string()))
        .expect("request");
    assert_eq!(app.send(request).await.0, StatusCode::CREATED);

    let (status, body) = app.get("/v1/meter/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    let keys = body["api_keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2);
    assert!(
        !body.to_string().contains(&secret),
        "no secrets in the listing"
    );
    let listed = keys
        .iter()
        .find(|k| k["id"] == created["id"])
        .expect("listed");
    assert!(
        listed["last_used_at"].is_string(),
        "last_used_at without a flush: {listed}"
    );
    assert!(listed.get("key").is_none());

    let uri = format!("/v1/meter/api-keys/{}", created["id"].as_str().expect("id"));
    let (status, _, _) = app.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events",
            Some(&secret),
            Some(event("org_001")),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let (status, _, body) = app
        .call(Method::DELETE, &uri.replace("-7", "-8"), Some(ADMIN), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    // Flushing writes last_used_at through to the store.
    app.engine.flush_key_usage().await.expect("flush");
    let stored = app.store.clone();
    let keys = metering_core::Store::list_api_keys(&stored)
        .await
        .expect("keys");
    assert!(keys.iter().all(|k| k.last_used_at.is_some()), "{keys:?}");
}

#[tokio::test]
async fn health_reports_each_backend() {
    let app = app().await;
    let (status, _, body) = app.call(Method::GET, "/v1/meter/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(
        body["services"],
        json!({"database": "connected", "quota_cache": "connected"})
    );
    assert!(body["version"].is_string() && body["timestamp"].is_string());

    app.cache.set(DOWN);
    let (status, _, body) = app.call(Method::GET, "/v1/meter/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["services"]["quota_cache"], "disconnected");
    // Quota checks still work (from the store) while the cache is down.
    let (status, _) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "t", "feature": "f"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.cache.set(UP);

    app.store.set(DOWN);
    let (status, _, body) = app.call(Method::GET, "/v1/meter/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["services"]["database"], "disconnected");
}

#[tokio::test]
async fn error_rows_401_403_404_405() {
    let app = app().await;
    let read = app.key(Role::Read, None).await;
    let scoped = app.key(Role::Ingest, Some("org_001")).await;

    let (status, headers, body) = app.call(Method::GET, "/v1/meter/events", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, body) = app
        .call(Method::GET, "/v1/meter/events", Some("mk_nope"), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");

    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events",
            Some(&read),
            Some(event("a")),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events",
            Some(&scoped),
            Some(event("org_002")),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.event_count().await, 0);

    let (status, _, body) = app
        .call(Method::GET, "/v1/meter/nothing-here", Some(ADMIN), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, body) = app.call(Method::GET, "/nope", None, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    let (status, headers, body) = app
        .call(Method::DELETE, "/v1/meter/events", Some(ADMIN), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
    );
    let allow = headers
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(allow.contains("POST") && allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let app = app().await;
    let clockless = app.engine.now() + chrono::Duration::milliseconds(300);
    let new = metering_core::NewApiKey::new("short", Role::Read).expiring(clockless);
    let secret = app.engine.create_api_key(new).await.expect("key").secret;
    assert_eq!(
        app.call(Method::GET, "/v1/meter/quotas", Some(&secret), None)
            .await
            .0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let (status, _, body) = app
        .call(Method::GET, "/v1/meter/quotas", Some(&secret), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn error_rows_413() {
    let app = app_with(
        ServerConfig::default()
            .with_body_limit(2048)
            .with_max_batch_events(3),
    )
    .await;
    let big = json!({"tenant_id": "a", "resource": "r", "feature": "f", "metadata": {"x": "y".repeat(4096)}});
    let (status, body) = app.post("/v1/meter/events", big).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
    let four: Vec<Value> = (0..4).map(|_| event("a")).collect();
    let (status, body) = app.post("/v1/meter/events", json!({"events": four})).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
    );
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn error_rows_422_lists_every_bad_event() {
    let app = app().await;
    let (status, body) = app
        .post("/v1/meter/events", json!({"events": [event("a"), event("a"),
            {"tenant_id": "a", "resource": "r", "feature": "f", "quantity": 0},
            {"tenant_id": "", "resource": "r", "feature": "f", "timestamp": "2999-01-01T00:00:00Z"}]}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );
    assert_eq!(body["error"]["details"]["field"], "events[2].quantity");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    let listed: Vec<_> = errors
        .iter()
        .map(|e| (e["index"].clone(), e["field"].clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (json!(2), json!("events[2].quantity")),
            (json!(3), json!("events[3].tenant_id")),
            (json!(3), json!("events[3].timestamp")),
        ]
    );
    assert!(
        errors
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty()))
    );
    assert_eq!(app.event_count().await, 0, "a bad batch writes nothing");
}

#[tokio::test]
async fn error_rows_500_and_503() {
    let app = app().await;
    app.store.set(DOWN);
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/v1/meter/events",
            Some(ADMIN),
            Some(event("a")),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    );
    assert!(headers.contains_key("retry-after"));
    let (status, body) = app.get("/v1/meter/quotas").await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
    );

    app.store.set(BROKEN);
    let (status, body) = app
        .get("/v1/meter/aggregates?window_type=daily&start_date=2025-01-01&end_date=2025-02-01")
        .await;
    assert_error(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL");
    assert_eq!(body["error"]["message"], metering_http::INTERNAL_MESSAGE);
    let text = body.to_string();
    assert!(
        !text.contains("SELECT") && !text.contains("syntax"),
        "no leak: {text}"
    );
    app.store.set(UP);
    assert_eq!(app.get("/v1/meter/quotas").await.0, StatusCode::OK);
}

#[tokio::test]
async fn error_rows_400() {
    let app = app().await;
    let request = Request::post("/v1/meter/events")
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .expect("request");
    let (status, _, body) = app.send(request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let request = Request::post("/v1/meter/events")
        .header("x-api-key", ADMIN)
        .header("content-type", "text/plain")
        .body(Body::from(event("a").to_string()))
        .expect("request");
    let (status, _, body) = app.send(request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let (status, body) = app.get("/v1/meter/events?colour=blue").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    assert_eq!(body["error"]["details"]["field"], "colour");
    let (status, body) = app
        .get("/v1/meter/aggregates?window_type=fortnightly&start_date=2025-01-01&end_date=2025-02-01")
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
}
