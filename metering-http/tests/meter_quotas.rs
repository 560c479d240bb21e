//! Quotas on meters through the REST API: upsert, checks and consumes with an event, roles,
//! and every refusal with its field and nothing written.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, assert_error};
use metering_core::Role;
use serde_json::json;

async fn with_users_meter() -> common::App {
    let app = app().await;
    let (status, body) = app
        .put(
            "/v1/meter/meters/active_users",
            json!({"aggregation": "unique_count", "value": "metadata.user_id",
                   "filter": {"resource": "app"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app
}

fn login(user: &str) -> serde_json::Value {
    json!({"resource": "app", "feature": "login", "metadata": {"user_id": user}})
}

#[tokio::test]
async fn a_unique_count_quota_admits_its_limit_and_counted_users() {
    let app = with_users_meter().await;
    let (status, quota) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org", "meter": "active_users", "limit": 2,
                   "period": "monthly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    assert_eq!(quota["meter"], "active_users");
    assert_eq!(quota["feature"], json!(null));
    assert_eq!(quota["resource"], json!(null));

    let mut allowed = Vec::new();
    for user in ["ann", "bob", "cy", "ann"] {
        let (status, d) = app
            .post(
                "/v1/meter/validate",
                json!({"tenant_id": "org", "meter": "active_users", "consume": true,
                       "event": login(user)}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{d}");
        assert_eq!(d["quota_id"], quota["id"]);
        allowed.push(d["allowed"].as_bool().expect("allowed"));
        assert_eq!(
            d["event_id"].is_string(),
            d["allowed"] == json!(true),
            "{d}"
        );
    }
    assert_eq!(allowed, [true, true, false, true]);
    assert_eq!(app.event_count().await, 3);

    // A check without an event adds nothing to a unique count: allowed at the limit.
    let (_, d) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org", "meter": "active_users"}),
        )
        .await;
    assert_eq!(
        (d["current_usage"].clone(), d["allowed"].clone()),
        (json!(2), json!(true))
    );
    assert_eq!(d["remaining"], json!(0));

    // The meter cannot go while the quota uses it; nor become an avg.
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/v1/meter/meters/active_users",
            Some(ADMIN),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (status, body) = app
        .put(
            "/v1/meter/meters/active_users",
            json!({"aggregation": "avg", "value": "metadata.user_id"}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "CONFLICT");
    let (_, meter) = app.get("/v1/meter/meters/active_users").await;
    assert_eq!(meter["aggregation"], "unique_count");

    // Listed with the other quotas; deleted by id, after which the meter can go.
    let (_, list) = app.get("/v1/meter/quotas?tenant_id=org").await;
    assert_eq!(list["quotas"], json!([quota.clone()]));
    let id = quota["id"].as_str().expect("id");
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/meter/quotas/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            "/v1/meter/meters/active_users",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_sum_quota_checks_quantity_or_the_event_value() {
    let app = app().await;
    app.put(
        "/v1/meter/meters/tokens",
        json!({"aggregation": "sum", "value": "metadata.tokens"}),
    )
    .await;
    app.put(
        "/v1/meter/quotas",
        json!({"tenant_id": "*", "meter": "tokens", "limit": "100.5", "period": "daily"}),
    )
    .await;
    let (status, d) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org", "meter": "tokens", "consume": true,
                   "event": {"tenant_id": "org", "resource": "ai", "feature": "chat",
                             "id": "req-1", "metadata": {"tokens": "100.25"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        (d["allowed"].clone(), d["current_usage"].clone()),
        (json!(true), json!(100.25))
    );
    assert_eq!(d["event_id"], "req-1");
    // Without an event, `quantity` is what a sum would add.
    let (_, d) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org", "meter": "tokens", "quantity": 0.25}),
        )
        .await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let (_, d) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org", "meter": "tokens", "quantity": 0.26}),
        )
        .await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    assert!(
        d["message"]
            .as_str()
            .expect("message")
            .contains("quota exceeded")
    );
    // Another tenant has its own value under the default quota.
    let (_, d) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "other", "meter": "tokens", "quantity": 100}),
        )
        .await;
    assert_eq!(
        (d["allowed"].clone(), d["current_usage"].clone()),
        (json!(true), json!(0))
    );
}

#[tokio::test]
async fn bad_meter_quotas_and_checks_name_the_field_and_write_nothing() {
    let app = with_users_meter().await;
    app.put(
        "/v1/meter/meters/mean",
        json!({"aggregation": "avg", "value": "metadata.ms"}),
    )
    .await;
    let quota = |extra: serde_json::Value| {
        let mut body = json!({"tenant_id": "org", "limit": 5, "period": "monthly"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        body
    };
    let quota_cases = [
        (
            quota(json!({"meter": "mean"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "meter",
        ),
        (
            quota(json!({"meter": "nothing"})),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            quota(json!({"meter": "Bad Key"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "meter",
        ),
        (
            quota(json!({"meter": "active_users", "feature": "f"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "meter",
        ),
        (
            quota(json!({"meter": "active_users", "resource": "app"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "resource",
        ),
        (
            quota(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "feature",
        ),
    ];
    for (body, expected, field) in quota_cases {
        let (status, answer) = app.put("/v1/meter/quotas", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer
                .to_string()
                .contains(&format!("\"field\":\"{field}\""))
                || field.is_empty(),
            "{body}: {answer}"
        );
    }
    assert_eq!(app.record_count().await.0, 0, "no quota was stored");

    app.put(
        "/v1/meter/quotas",
        json!({"tenant_id": "org", "meter": "active_users", "limit": 5, "period": "monthly"}),
    )
    .await;
    let check_cases = [
        (
            json!({"tenant_id": "org", "meter": "active_users", "consume": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event",
        ),
        (
            json!({"tenant_id": "org", "meter": "nothing"}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            json!({"meter": "active_users"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tenant_id",
        ),
        (
            json!({"tenant_id": "org", "meter": "active_users", "consume": true,
                   "event": {"tenant_id": "someone", "resource": "app", "feature": "login",
                             "metadata": {"user_id": "u"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event.tenant_id",
        ),
        (
            json!({"tenant_id": "org", "meter": "active_users", "consume": true,
                   "event": {"resource": "billing", "feature": "login",
                             "metadata": {"user_id": "u"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event",
        ),
        (
            json!({"tenant_id": "org", "meter": "active_users", "consume": true,
                   "event": {"resource": "app", "feature": "login"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event",
        ),
        (
            json!({"tenant_id": "org", "meter": "active_users", "consume": true,
                   "event": {"resource": "app", "feature": "login", "quantity": 0,
                             "metadata": {"user_id": "u"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "event.quantity",
        ),
        (
            json!({"tenant_id": "org", "meter": "active_users", "feature": "login"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "feature",
        ),
    ];
    for (body, expected, field) in check_cases {
        let (status, answer) = app.post("/v1/meter/validate", body.clone()).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer
                .to_string()
                .contains(&format!("\"field\":\"{field}\""))
                || field.is_empty(),
            "{body}: {answer}"
        );
    }
    assert_eq!(app.event_count().await, 0, "no event was stored");
}

#[tokio::test]
async fn tenant_scoped_keys_check_only_their_tenant() {
    let app = with_users_meter().await;
    app.put(
        "/v1/meter/quotas",
        json!({"tenant_id": "*", "meter": "active_users", "limit": 5, "period": "monthly"}),
    )
    .await;
    let mine = app.key(Role::Ingest, Some("org")).await;
    let body = |tenant: &str| {
        json!({"tenant_id": tenant, "meter": "active_users", "consume": true,
               "event": login("ann")})
    };
    let (status, _, d) = app
        .call(
            Method::POST,
            "/v1/meter/validate",
            Some(&mine),
            Some(body("org")),
        )
        .await;
    assert_eq!(
        (status, d["allowed"].clone()),
        (StatusCode::OK, json!(true)),
        "{d}"
    );
    let (status, _, d) = app
        .call(
            Method::POST,
            "/v1/meter/validate",
            Some(&mine),
            Some(body("other")),
        )
        .await;
    assert_error(status, &d, StatusCode::FORBIDDEN, "FORBIDDEN");
    let read = app.key(Role::Read, None).await;
    let (status, _, d) = app
        .call(
            Method::POST,
            "/v1/meter/validate",
            Some(&read),
            Some(body("org")),
        )
        .await;
    assert_error(status, &d, StatusCode::FORBIDDEN, "FORBIDDEN");
    assert_eq!(app.event_count().await, 1);
}
