//! Webhook endpoints and quota thresholds over HTTP: roles, the secret shown once, and bad
//! input refused with nothing stored.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, assert_error};
use metering_core::Role;
use serde_json::{Value, json};

fn fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["error"]["details"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(field) = body["error"]["details"]["field"].as_str() {
        fields.push(field.to_owned());
    }
    fields.sort();
    fields.dedup();
    fields
}

#[tokio::test]
async fn endpoints_register_once_list_without_secrets_and_delete() {
    let app = app().await;
    let (status, created) = app
        .post(
            "/v1/meter/webhooks",
            json!({"url": "https://billing.example.com/hooks", "events": ["quota.exceeded",
                   "quota.threshold"], "description": "billing"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("a secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(
        created["events"],
        json!(["quota.threshold", "quota.exceeded"])
    );
    assert_eq!(created["description"], "billing");
    assert_eq!(created["disabled_at"], Value::Null);
    let id = created["id"].as_str().expect("an id").to_owned();

    let (status, all) = app
        .post("/v1/meter/webhooks", json!({"url": "http://127.0.0.1:9/x"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{all}");
    assert_eq!(
        all["events"],
        json!(["quota.threshold", "quota.exceeded", "quota.reset"])
    );

    let (status, listed) = app.get("/v1/meter/webhooks").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let hooks = listed["webhooks"].as_array().expect("webhooks");
    assert_eq!(hooks.len(), 2);
    assert_eq!(hooks[0]["id"], id.as_str());
    assert!(hooks.iter().all(|h| h.get("secret").is_none()));
    assert!(!listed.to_string().contains(secret), "never listed");

    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/meter/webhooks/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for missing in [id.as_str(), "not-a-uuid"] {
        let (status, _, body) = app
            .call(
                Method::DELETE,
                &format!("/v1/meter/webhooks/{missing}"),
                Some(ADMIN),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    }
    let (_, listed) = app.get("/v1/meter/webhooks").await;
    assert_eq!(listed["webhooks"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn only_unscoped_admin_keys_manage_endpoints() {
    let app = app().await;
    let scoped_admin = app.key(Role::Admin, Some("org_001")).await;
    let ingest = app.key(Role::Ingest, None).await;
    let read = app.key(Role::Read, None).await;
    let body = json!({"url": "https://example.com/hooks"});
    for key in [&scoped_admin, &ingest, &read] {
        let (status, _, answer) = app
            .call(
                Method::POST,
                "/v1/meter/webhooks",
                Some(key),
                Some(body.clone()),
            )
            .await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "FORBIDDEN");
        let (status, _, answer) = app
            .call(Method::GET, "/v1/meter/webhooks", Some(key), None)
            .await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "FORBIDDEN");
    }
    let (status, created) = app.post("/v1/meter/webhooks", body).await;
    assert_eq!(status, StatusCode::CREATED);
    let uri = format!("/v1/meter/webhooks/{}", created["id"].as_str().expect("id"));
    let (status, _, answer) = app
        .call(Method::DELETE, &uri, Some(&scoped_admin), None)
        .await;
    assert_error(status, &answer, StatusCode::FORBIDDEN, "FORBIDDEN");
    let (status, _, answer) = app
        .call(Method::POST, "/v1/meter/webhooks", None, None)
        .await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

#[tokio::test]
async fn bad_endpoints_get_422_and_store_nothing() {
    let app = app().await;
    for (body, expected) in [
        (json!({"url": "ftp://example.com/x"}), vec!["url"]),
        (json!({"url": "javascript:alert(1)"}), vec!["url"]),
        (json!({"url": "https://user:pw@example.com/"}), vec!["url"]),
        (json!({"url": 7}), vec!["url"]),
        (json!({"events": ["quota.threshold"]}), vec!["url"]),
        (
            json!({"url": "https://example.com", "events": ["quota.used"]}),
            vec!["events[0]"],
        ),
        (
            json!({"url": "https://example.com", "events": []}),
            vec!["events"],
        ),
        (
            json!({"url": "https://example.com", "events": "quota.reset"}),
            vec!["events"],
        ),
        (
            json!({"url": "https://example.com", "secret": "mine"}),
            vec!["secret"],
        ),
    ] {
        let (status, answer) = app.post("/v1/meter/webhooks", body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        assert_eq!(fields(&answer), expected, "{body} -> {answer}");
    }
    let (status, answer) = app.post_text("/v1/meter/webhooks", "{\"url\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (_, listed) = app.get("/v1/meter/webhooks").await;
    assert_eq!(listed["webhooks"], json!([]));
}

#[tokio::test]
async fn quota_thresholds_are_stored_exactly_and_checked() {
    let app = app().await;
    let quota = json!({"tenant_id": "org_001", "feature": "api_call", "limit": 10000,
        "period": "monthly", "thresholds": [{"percent": 50}, {"usage": 9500.000000001},
        {"percent": 90}]});
    let (status, stored) = app.put("/v1/meter/quotas", quota.clone()).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["alert_threshold"], 50, "mirrors the first percent");
    let (status, listed) = app.get("/v1/meter/quotas?tenant_id=org_001").await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert!(text.contains(r#"{"percent":50}"#), "{text}");
    assert!(text.contains(r#"{"usage":9500.000000001}"#), "{text}");
    assert!(text.contains(r#"{"percent":90}"#), "{text}");

    let (status, alone) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org_001", "feature": "api_call", "limit": 10000,
                   "period": "monthly", "alert_threshold": 70}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{alone}");
    assert_eq!(alone["thresholds"], json!([{"percent": 70}]));
    let (status, default) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org_002", "feature": "api_call", "limit": 5, "period": "daily"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{default}");
    assert_eq!(default["thresholds"], json!([{"percent": 80}]));
    assert_eq!(default["alert_threshold"], 80);

    let before = app.record_count().await;
    for (thresholds, alert, expected) in [
        (
            json!([{"percent": 0}]),
            Value::Null,
            "thresholds[0].percent",
        ),
        (
            json!([{"percent": 101}]),
            Value::Null,
            "thresholds[0].percent",
        ),
        (
            json!([{"percent": 12.5}]),
            Value::Null,
            "thresholds[0].percent",
        ),
        (json!([{"usage": 0}]), Value::Null, "thresholds[0].usage"),
        (json!([{"usage": -3}]), Value::Null, "thresholds[0].usage"),
        (
            json!([{"usage": "lots"}]),
            Value::Null,
            "thresholds[0].usage",
        ),
        (json!([{"ratio": 1}]), Value::Null, "thresholds[0].ratio"),
        (
            json!([{"percent": 5, "usage": 1}]),
            Value::Null,
            "thresholds[0]",
        ),
        (
            json!([{"percent": 5}, {"percent": 5}]),
            Value::Null,
            "thresholds[1]",
        ),
        (json!({"percent": 5}), Value::Null, "thresholds"),
        (json!([{"percent": 60}]), json!(80), "alert_threshold"),
    ] {
        let mut body = json!({"tenant_id": "org_003", "feature": "api_call", "limit": 10,
            "period": "monthly", "thresholds": thresholds});
        if !alert.is_null() {
            body["alert_threshold"] = alert;
        }
        let (status, answer) = app.put("/v1/meter/quotas", body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        assert_eq!(fields(&answer), [expected], "{body} -> {answer}");
    }
    let many: Vec<Value> = (1..=17).map(|p| json!({"percent": p})).collect();
    let (status, answer) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org_003", "feature": "api_call", "limit": 10,
                   "period": "monthly", "thresholds": many}),
        )
        .await;
    assert_error(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );
    assert_eq!(app.record_count().await, before, "nothing stored");
}
