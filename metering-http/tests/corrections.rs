//! Corrections through the REST API: void, amend and history, their roles and tenant scope,
//! the listing and export of voided events, and every refusal with nothing changed.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, assert_error};
use metering_core::Role;
use serde_json::{Value, json};

async fn with_events() -> common::App {
    let app = app().await;
    let (status, body) = app
        .post(
            "/v1/meter/events",
            json!({"events": [
                {"id": "e1", "tenant_id": "org", "resource": "api", "feature": "search",
                 "quantity": 2.5, "timestamp": "2025-11-03T10:00:00Z", "metadata": {"plan": "pro"}},
                {"id": "e2", "tenant_id": "org", "resource": "api", "feature": "search",
                 "quantity": 4, "timestamp": "2025-11-03T11:00:00Z"},
                {"id": "x1", "tenant_id": "other", "resource": "api", "feature": "search",
                 "quantity": 1, "timestamp": "2025-11-03T11:00:00Z"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

async fn total(app: &common::App) -> Value {
    let (status, body) = app
        .get("/v1/meter/aggregates?tenant_id=org&start_date=2025-11-01&end_date=2025-12-01&window_type=monthly")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["aggregates"][0]["total_quantity"].clone()
}

#[tokio::test]
async fn void_and_amend_change_what_counts_and_keep_the_originals() {
    let app = with_events().await;
    assert_eq!(total(&app).await, json!(6.5));

    let (status, voided) = app
        .post("/v1/meter/events/e2/void", json!({"reason": "sent twice"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{voided}");
    assert_eq!(voided["void_reason"], "sent twice");
    assert!(voided["voided_at"].is_string(), "{voided}");
    assert_eq!(total(&app).await, json!(2.5));
    // Again, and without a body: unchanged.
    let (status, _, again) = app
        .call(Method::POST, "/v1/meter/events/e2/void", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, voided);

    let (status, listed) = app.get("/v1/meter/events?tenant_id=org").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["pagination"]["total"], 1);
    let (status, listed) = app
        .get("/v1/meter/events?tenant_id=org&include_voided=true")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["pagination"]["total"], 2);
    assert_eq!(listed["events"][0]["id"], "e2");
    assert_eq!(listed["events"][0]["void_reason"], "sent twice");

    let (status, replacement) = app
        .post(
            "/v1/meter/events/e1/amend",
            json!({"quantity": "0.000000001", "id": "e1-fixed", "reason": "typo"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{replacement}");
    assert_eq!(replacement["id"], "e1-fixed");
    assert_eq!(replacement["amends"], "e1");
    assert_eq!(replacement["quantity"], json!(0.000000001));
    assert_eq!(replacement["metadata"], json!({"plan": "pro"}));
    assert_eq!(replacement["timestamp"], "2025-11-03T10:00:00Z");
    assert_eq!(total(&app).await, json!(0.000000001));
    // A retry with the same id: the same replacement, 200.
    let (status, retried) = app
        .post(
            "/v1/meter/events/e1/amend",
            json!({"quantity": "0.000000001", "id": "e1-fixed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried, replacement);

    let (status, history) = app.get("/v1/meter/events/e1-fixed/history").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let ids: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["e1", "e1-fixed"]);
    assert_eq!(history["events"][0]["void_reason"], "typo");

    // The export follows the listing: voided events only when asked.
    for (query, lines) in [("", 1), ("&include_voided=true", 3)] {
        let (status, _, bytes) = common::respond(
            &app.router,
            common::build(
                Method::GET,
                &format!("/v1/meter/events/export?tenant_id=org&format=ndjson{query}"),
                Some(ADMIN),
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(text.lines().count(), lines, "{text}");
    }
}

#[tokio::test]
async fn corrections_refuse_bad_input_and_change_nothing() {
    let app = with_events().await;
    let read = app.key(Role::Read, None).await;
    let scoped_admin = app.key(Role::Admin, Some("other")).await;

    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events/e1/void",
            Some(&read),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events/e1/amend",
            Some(&read),
            Some(json!({"quantity": 1})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
    // Another tenant's event is not found for a tenant-scoped key; its own is.
    let (status, _, body) = app
        .call(
            Method::POST,
            "/v1/meter/events/e1/void",
            Some(&scoped_admin),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, body) = app
        .call(
            Method::GET,
            "/v1/meter/events/e1/history",
            Some(&scoped_admin),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    for uri in ["/v1/meter/events/nope/void", "/v1/meter/events/nope/amend"] {
        let (status, body) = app.post(uri, json!({"quantity": 1})).await;
        if uri.ends_with("void") {
            // `quantity` is no field of a void.
            assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
            );
        } else {
            assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
        }
    }
    let (status, body) = app.post("/v1/meter/events/nope/void", json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = app.get("/v1/meter/events/nope/history").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");

    for (amend, field) in [
        (json!({"quantity": 0}), "quantity"),
        (json!({"quantity": "1.0000000001"}), "quantity"),
        (json!({"timestamp": "yesterday"}), "timestamp"),
        (json!({"timestamp": "2999-01-01T00:00:00Z"}), "timestamp"),
        (json!({"tenant_id": "other"}), "tenant_id"),
        (json!({"reason": "x".repeat(1001)}), "reason"),
        (json!({"metadata": [1]}), "metadata"),
    ] {
        let (status, body) = app.post("/v1/meter/events/e1/amend", amend.clone()).await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        assert_eq!(
            body["error"]["details"]["errors"][0]["field"], field,
            "{amend}: {body}"
        );
    }
    let (status, body) = app
        .post("/v1/meter/events/e1/void", json!({"reason": 7}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );
    let (status, text) = app
        .post_text("/v1/meter/events/e1/amend", "{not json")
        .await;
    let body: Value = serde_json::from_str(&text).expect("an error envelope");
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    // A replacement id that belongs to another event, and an amend of a voided event.
    let (status, body) = app
        .post("/v1/meter/events/e1/amend", json!({"id": "e2"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (status, _) = app.post("/v1/meter/events/e2/void", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post("/v1/meter/events/e2/amend", json!({"quantity": 1}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    // An unknown export format.
    let (status, body) = app.get("/v1/meter/events/export?format=xml").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
    let (status, body) = app.get("/v1/meter/events?include_voided=yes").await;
    assert!(status.is_client_error(), "{body}");

    // Nothing above changed e1, and only the one void counted.
    assert_eq!(total(&app).await, json!(2.5));
    let (status, history) = app.get("/v1/meter/events/e1/history").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["events"].as_array().expect("events").len(), 1);
    assert!(history["events"][0].get("voided_at").is_none());
}
