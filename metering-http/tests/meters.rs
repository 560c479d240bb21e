//! Meters through the REST API: definitions, queries, roles and bad input.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, assert_error};
use metering_core::Role;
use serde_json::{Value, json};

fn tokens_meter() -> Value {
    json!({
        "name": "LLM tokens by model",
        "aggregation": "sum",
        "value": "quantity",
        "filter": {"resource": "ai", "feature": ["input_tokens", "output_tokens"],
                   "metadata": {"region": "eu", "model": ["gpt-4o", "o3"]}},
        "dimensions": ["model", "region"]
    })
}

fn token_event(
    tenant: &str,
    feature: &str,
    quantity: &str,
    model: &str,
    region: &str,
    at: &str,
) -> Value {
    json!({"tenant_id": tenant, "resource": "ai", "feature": feature,
           "quantity": quantity, "timestamp": at,
           "metadata": {"model": model, "region": region}})
}

#[tokio::test]
async fn define_list_get_replace_and_delete() {
    let app = app().await;
    let (status, body) = app.put("/v1/meter/meters/llm_tokens", tokens_meter()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"], "llm_tokens");
    assert_eq!(body["aggregation"], "sum");
    assert_eq!(
        body["filter"]["feature"],
        json!(["input_tokens", "output_tokens"])
    );
    assert_eq!(body["dimensions"], json!(["model", "region"]));
    let created = body["created_at"].clone();
    assert_eq!(created, body["updated_at"]);

    // What GET returns can be sent back unchanged.
    let (status, fetched) = app.get("/v1/meter/meters/llm_tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, body);
    let (status, again) = app.put("/v1/meter/meters/llm_tokens", fetched).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["created_at"], created);

    app.put(
        "/v1/meter/meters/active_users",
        json!({"aggregation": "unique_count", "value": "metadata.user_id"}),
    )
    .await;
    let (_, list) = app.get("/v1/meter/meters").await;
    let keys: Vec<&str> = list["meters"]
        .as_array()
        .expect("meters")
        .iter()
        .map(|m| m["key"].as_str().expect("key"))
        .collect();
    assert_eq!(keys, ["active_users", "llm_tokens"]);

    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/v1/meter/meters/llm_tokens",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = app.get("/v1/meter/meters/llm_tokens").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/v1/meter/meters/llm_tokens",
            Some(ADMIN),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (status, body) = app
        .get("/v1/meter/meters/llm_tokens/query?start_date=2025-01-01&end_date=2025-02-01")
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn queries_answer_exactly_by_window_group_and_filter() {
    let app = app().await;
    let events = json!({"events": [
        token_event("org_a", "input_tokens", "0.1", "o3", "eu", "2025-11-20T10:00:00Z"),
        token_event("org_a", "output_tokens", "0.2", "o3", "eu", "2025-11-20T23:59:59Z"),
        token_event("org_a", "input_tokens", "1234.2", "gpt-4o", "eu", "2025-11-21T00:00:00Z"),
        token_event("org_b", "input_tokens", "5", "o3", "eu", "2025-11-20T12:00:00Z"),
        token_event("org_b", "input_tokens", "7", "o3", "us", "2025-11-20T12:00:00Z"),
        token_event("org_b", "other", "9", "o3", "eu", "2025-11-20T12:00:00Z"),
    ]});
    // Events stored before the meter exists count.
    let (status, body) = app.post("/v1/meter/events", events).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.put("/v1/meter/meters/llm_tokens", tokens_meter()).await;

    let base = "/v1/meter/meters/llm_tokens/query?start_date=2025-11-20&end_date=2025-11-22";
    let (status, body) = app
        .get(&format!(
            "{base}&window_type=daily&group_by=tenant_id,model"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"meter": "llm_tokens", "aggregation": "sum", "window_type": "daily", "tz": "UTC",
               "data": [
                   {"window_start": "2025-11-20T00:00:00Z", "window_end": "2025-11-21T00:00:00Z",
                    "group": {"tenant_id": "org_a", "model": "o3"}, "value": 0.3, "event_count": 2},
                   {"window_start": "2025-11-20T00:00:00Z", "window_end": "2025-11-21T00:00:00Z",
                    "group": {"tenant_id": "org_b", "model": "o3"}, "value": 5, "event_count": 1},
                   {"window_start": "2025-11-21T00:00:00Z", "window_end": "2025-11-22T00:00:00Z",
                    "group": {"tenant_id": "org_a", "model": "gpt-4o"}, "value": 1234.2, "event_count": 1}],
               "skipped_events": 0})
    );
    // The exact text of the decimal, not a float's.
    let (_, _, raw) = common::respond(
        &app.router,
        common::build(
            Method::GET,
            &format!("{base}&window_type=daily"),
            Some(ADMIN),
            None,
        ),
    )
    .await;
    let text = String::from_utf8(raw).expect("UTF-8");
    assert!(text.contains("\"value\":5.3,"), "{text}");

    // No window: one row over the range; a dimension filter, repeated for any of values.
    let (_, body) = app
        .get(&format!(
            "{base}&filter.model=gpt-4o&filter.model=o3&tenant_id=org_a"
        ))
        .await;
    assert_eq!(body["window_type"], Value::Null);
    assert_eq!(body["data"][0]["value"], json!(1234.5));
    assert_eq!(body["data"][0]["window_start"], "2025-11-20T00:00:00Z");
    assert_eq!(body["data"][0]["window_end"], "2025-11-22T00:00:00Z");
    assert_eq!(body["data"][0]["group"], json!({}));

    // A tenant-scoped read key sees its own tenant only.
    let key = app.key(Role::Read, Some("org_b")).await;
    let (status, _, body) = app.call(Method::GET, base, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"][0]["value"], json!(5));
    let (status, _, body) = app
        .call(
            Method::GET,
            &format!("{base}&tenant_id=org_a"),
            Some(&key),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "FORBIDDEN");
}

#[tokio::test]
async fn every_bad_definition_is_refused_with_its_field_and_nothing_is_stored() {
    let app = app().await;
    let cases = [
        (json!({"aggregation": "median"}), "aggregation"),
        (json!({"aggregation": "unique_count"}), "value"),
        (
            json!({"aggregation": "unique_count", "value": "quantity"}),
            "value",
        ),
        (
            json!({"aggregation": "sum", "dimensions": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}),
            "dimensions",
        ),
        (json!({"aggregation": "sum", "value": "metadata."}), "value"),
        (
            json!({"aggregation": "sum", "filter": {"metadata": {"region": [["eu"]]}}}),
            "filter.metadata.region[0]",
        ),
        (
            json!({"aggregation": "sum", "filter": {"feature": []}}),
            "filter.feature",
        ),
        (
            json!({"aggregation": "sum", "filter": {"plan": "pro"}}),
            "filter.plan",
        ),
        (json!({"aggregation": "sum", "colour": "red"}), "colour"),
        (
            json!({"aggregation": "sum", "dimensions": ["a", "a"]}),
            "dimensions[1]",
        ),
        (json!(["not", "an", "object"]), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = app.put("/v1/meter/meters/m", body.clone()).await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        let text = answer.to_string();
        assert!(
            text.contains(&format!("\"field\":\"{field}\"")),
            "{body}: {text}"
        );
    }
    for bad_key in ["Upper", "a.b", &"k".repeat(65)] {
        let (status, answer) = app
            .put(
                &format!("/v1/meter/meters/{bad_key}"),
                json!({"aggregation": "sum"}),
            )
            .await;
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
        );
        assert!(answer.to_string().contains("\"field\":\"key\""), "{answer}");
    }
    let (_, list) = app.get("/v1/meter/meters").await;
    assert_eq!(list, json!({"meters": []}));
    // Not JSON at all is 400.
    let request = axum::http::Request::builder()
        .method(Method::PUT)
        .uri("/v1/meter/meters/m")
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{"))
        .expect("request");
    let (status, _, body) = app.send(request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "BAD_REQUEST");
}

#[tokio::test]
async fn bad_queries_name_the_parameter() {
    let app = app().await;
    app.put(
        "/v1/meter/meters/m",
        json!({"aggregation": "max", "dimensions": ["plan"]}),
    )
    .await;
    let base = "/v1/meter/meters/m/query?start_date=2025-01-01&end_date=2025-02-01";
    let cases = [
        (
            format!("{base}&group_by=region"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "group_by",
        ),
        (
            format!("{base}&group_by=plan,plan"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "group_by",
        ),
        (
            format!("{base}&filter.region=eu"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "filter.region",
        ),
        (
            format!("{base}&filter.=eu"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "filter.",
        ),
        (
            "/v1/meter/meters/m/query?start_date=2025-01-01".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "end_date",
        ),
        (
            "/v1/meter/meters/m/query?start_date=2025-02-01&end_date=2025-01-01".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "end_date",
        ),
        (
            format!("{base}&window_type=fortnightly"),
            StatusCode::BAD_REQUEST,
            "window_type",
        ),
        (
            format!("{base}&tz=Mars/Olympus"),
            StatusCode::BAD_REQUEST,
            "tz",
        ),
        (
            format!("{base}&colour=red"),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            format!("{base}&tenant_id=a&tenant_id=b"),
            StatusCode::BAD_REQUEST,
            "tenant_id",
        ),
    ];
    for (uri, expected, field) in cases {
        let (status, body) = app.get(&uri).await;
        assert_eq!(status, expected, "{uri}: {body}");
        assert!(
            body.to_string().contains(&format!("\"field\":\"{field}\"")),
            "{uri}: {body}"
        );
    }
    let (status, body) = app
        .get("/v1/meter/meters/Not-A-Key/query?start_date=2025-01-01&end_date=2025-02-01")
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND");
}

#[tokio::test]
async fn metadata_numbers_are_kept_exactly_or_refused() {
    let app = app().await;
    let (status, body) = app
        .put(
            "/v1/meter/meters/tokens",
            json!({"aggregation": "sum", "value": "metadata.tokens"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // More digits than a double holds: refused with the field, nothing stored.
    let (status, text) = app
        .post_text(
            "/v1/meter/events",
            r#"{"events": [
            {"tenant_id": "org", "resource": "ai", "feature": "t", "metadata": {"tokens": 1}},
            {"tenant_id": "org", "resource": "ai", "feature": "t",
             "metadata": {"tokens": 123456789012345.123456789}}]}"#,
        )
        .await;
    let body: Value = serde_json::from_str(&text).expect("json");
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "VALIDATION_ERROR",
    );
    assert_eq!(
        body["error"]["details"]["errors"][0]["field"],
        "events[1].metadata"
    );
    assert!(text.contains("123456789012345.123456789"), "{text}");
    assert_eq!(app.event_count().await, 0);
    // The same as a string, and doubles in their shortest form: summed exactly.
    let (status, text) = app
        .post_text(
            "/v1/meter/events",
            r#"{"events": [
            {"tenant_id": "org", "resource": "ai", "feature": "t",
             "timestamp": "2025-11-20T10:00:00Z",
             "metadata": {"tokens": "123456789012345.123456789"}},
            {"tenant_id": "org", "resource": "ai", "feature": "t",
             "timestamp": "2025-11-20T10:00:01Z", "metadata": {"tokens": 0.30000000000000004}},
            {"tenant_id": "org", "resource": "ai", "feature": "t",
             "timestamp": "2025-11-20T10:00:02Z", "metadata": {"tokens": 999999999999999}},
            {"tenant_id": "org", "resource": "ai", "feature": "t",
             "timestamp": "2025-11-20T10:00:03Z", "metadata": {"tokens": 0.5}}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    let (status, _, bytes) = common::respond(
        &app.router,
        common::build(
            Method::GET,
            "/v1/meter/meters/tokens/query?start_date=2025-11-20&end_date=2025-11-21",
            Some(ADMIN),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(bytes).expect("utf-8");
    // 123456789012345.123456789 + 999999999999999 + 0.5, exactly; 0.30000000000000004 is
    // stored as sent but has more than nine fractional digits, so the meter skips it.
    assert!(
        text.contains(r#""value":1123456789012344.623456789,"event_count":3"#),
        "{text}"
    );
    assert!(text.contains(r#""skipped_events":1"#), "{text}");
}
