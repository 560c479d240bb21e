//! A table of bad requests: each gets exactly the expected 4xx status and error code, never
//! a 500, and writes nothing.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN, app_with};
use metering_http::ServerConfig;
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

struct Case {
    name: &'static str,
    method: Method,
    uri: String,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    uri: &str,
    body: Value,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        uri: uri.to_owned(),
        content_type: JSON,
        body: body.to_string(),
        status,
        code,
    }
}

fn raw(
    name: &'static str,
    method: Method,
    uri: &str,
    content_type: Option<&'static str>,
    body: &str,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        name,
        method,
        uri: uri.to_owned(),
        content_type,
        body: body.to_owned(),
        status,
        code,
    }
}

fn get(name: &'static str, uri: &str, status: u16, code: &'static str) -> Case {
    raw(name, Method::GET, uri, None, "", status, code)
}

/// A valid event with one field replaced (or removed, for `Value::Null` on a required field).
fn ev(field: &str, value: Value) -> Value {
    let mut e =
        json!({"tenant_id": "org_001", "resource": "billing", "feature": "invoice_generate"});
    e[field] = value;
    e
}

fn without(field: &str) -> Value {
    let mut e = ev("quantity", json!(1));
    e.as_object_mut().map(|m| m.remove(field));
    e
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "x": v });
    }
    v
}

const EVENTS: &str = "/v1/meter/events";
const VALIDATE: &str = "/v1/meter/validate";
const QUOTAS: &str = "/v1/meter/quotas";
const KEYS: &str = "/v1/meter/api-keys";
const AGG: &str =
    "/v1/meter/aggregates?window_type=daily&start_date=2025-11-01&end_date=2025-12-01";

fn cases() -> Vec<Case> {
    use Method as M;
    let quota = json!({"tenant_id": "org_001", "feature": "f", "limit": 10, "period": "monthly"});
    let with = |base: &Value, field: &str, value: Value| {
        let mut v = base.clone();
        v[field] = value;
        v
    };
    vec![
        // Unreadable bodies: 400.
        raw(
            "malformed JSON",
            M::POST,
            EVENTS,
            JSON,
            "{not json",
            400,
            "BAD_REQUEST",
        ),
        raw("empty body", M::POST, EVENTS, JSON, "", 400, "BAD_REQUEST"),
        raw(
            "trailing garbage",
            M::POST,
            EVENTS,
            JSON,
            "{} x",
            400,
            "BAD_REQUEST",
        ),
        raw(
            "text/plain",
            M::POST,
            EVENTS,
            Some("text/plain"),
            &ev("quantity", json!(1)).to_string(),
            400,
            "BAD_REQUEST",
        ),
        raw(
            "no content type",
            M::POST,
            EVENTS,
            None,
            &ev("quantity", json!(1)).to_string(),
            400,
            "BAD_REQUEST",
        ),
        raw(
            "form content type",
            M::POST,
            VALIDATE,
            Some("application/x-www-form-urlencoded"),
            "tenant_id=a",
            400,
            "BAD_REQUEST",
        ),
        raw(
            "quota not JSON",
            M::PUT,
            QUOTAS,
            JSON,
            "limit=5",
            400,
            "BAD_REQUEST",
        ),
        // Events breaking rules: 422.
        case(
            "top-level array",
            M::POST,
            EVENTS,
            json!([ev("quantity", json!(1))]),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "top-level string",
            M::POST,
            EVENTS,
            json!("event"),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "empty object",
            M::POST,
            EVENTS,
            json!({}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "missing tenant_id",
            M::POST,
            EVENTS,
            without("tenant_id"),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "missing feature",
            M::POST,
            EVENTS,
            without("feature"),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "empty tenant_id",
            M::POST,
            EVENTS,
            ev("tenant_id", json!("")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "blank tenant_id",
            M::POST,
            EVENTS,
            ev("tenant_id", json!("   ")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "tenant_id of 256 chars",
            M::POST,
            EVENTS,
            ev("tenant_id", json!("t".repeat(256))),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "control char in tenant_id",
            M::POST,
            EVENTS,
            ev("tenant_id", json!("org\u{7}1")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "numeric tenant_id",
            M::POST,
            EVENTS,
            ev("tenant_id", json!(5)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "null resource",
            M::POST,
            EVENTS,
            ev("resource", Value::Null),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "zero quantity",
            M::POST,
            EVENTS,
            ev("quantity", json!(0)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "negative quantity",
            M::POST,
            EVENTS,
            ev("quantity", json!(-1)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "text quantity",
            M::POST,
            EVENTS,
            ev("quantity", json!("lots")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quantity over 10^15",
            M::POST,
            EVENTS,
            ev("quantity", json!(1e16)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quantity with 10 decimals",
            M::POST,
            EVENTS,
            ev("quantity", json!("0.0000000001")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "boolean quantity",
            M::POST,
            EVENTS,
            ev("quantity", json!(true)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "unreadable timestamp",
            M::POST,
            EVENTS,
            ev("timestamp", json!("yesterday")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "timestamp far in the future",
            M::POST,
            EVENTS,
            ev("timestamp", json!("2999-01-01T00:00:00Z")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "numeric timestamp",
            M::POST,
            EVENTS,
            ev("timestamp", json!(1_700_000_000)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata array",
            M::POST,
            EVENTS,
            ev("metadata", json!(["a"])),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata over 16 KiB",
            M::POST,
            EVENTS,
            ev("metadata", json!({"x": "y".repeat(17 * 1024)})),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata 17 levels deep",
            M::POST,
            EVENTS,
            ev("metadata", nested(17)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "empty id",
            M::POST,
            EVENTS,
            ev("id", json!("")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "id of 129 chars",
            M::POST,
            EVENTS,
            ev("id", json!("i".repeat(129))),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "non-ASCII id",
            M::POST,
            EVENTS,
            ev("id", json!("événement")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "unknown field",
            M::POST,
            EVENTS,
            ev("quantiy", json!(2)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "empty batch",
            M::POST,
            EVENTS,
            json!({"events": []}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "events not an array",
            M::POST,
            EVENTS,
            json!({"events": "many"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "batch of numbers",
            M::POST,
            EVENTS,
            json!({"events": [1, 2]}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "one bad event in a batch",
            M::POST,
            EVENTS,
            json!({"events": [ev("quantity", json!(1)), ev("quantity", json!(0))]}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "batch with an extra field",
            M::POST,
            EVENTS,
            json!({"events": [ev("quantity", json!(1))], "extra": 1}),
            422,
            "VALIDATION_ERROR",
        ),
        // Limits: 413.
        case(
            "batch over the event limit",
            M::POST,
            EVENTS,
            json!({"events": vec![ev("quantity", json!(1)); 6]}),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "body over the byte limit",
            M::POST,
            EVENTS,
            ev("metadata", json!({"x": "y".repeat(70 * 1024)})),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        // Validate.
        case(
            "validate empty",
            M::POST,
            VALIDATE,
            json!({}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "validate zero quantity",
            M::POST,
            VALIDATE,
            json!({"tenant_id": "a", "feature": "f", "quantity": 0}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "validate consume not a bool",
            M::POST,
            VALIDATE,
            json!({"tenant_id": "a", "feature": "f", "consume": "yes"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "validate weekly period",
            M::POST,
            VALIDATE,
            json!({"tenant_id": "a", "feature": "f", "period": "weekly"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "consume without resource",
            M::POST,
            VALIDATE,
            json!({"tenant_id": "a", "feature": "f", "consume": true}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "validate unknown field",
            M::POST,
            VALIDATE,
            json!({"tenant_id": "a", "feature": "f", "amount": 2}),
            422,
            "VALIDATION_ERROR",
        ),
        // Quotas.
        case(
            "quota limit 0",
            M::PUT,
            QUOTAS,
            with(&quota, "limit", json!(0)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quota threshold 101",
            M::PUT,
            QUOTAS,
            with(&quota, "alert_threshold", json!(101)),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quota weekly period",
            M::PUT,
            QUOTAS,
            with(&quota, "period", json!("weekly")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quota unknown zone",
            M::PUT,
            QUOTAS,
            with(&quota, "tz", json!("Mars/Olympus")),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "quota without feature",
            M::PUT,
            QUOTAS,
            json!({"tenant_id": "a", "limit": 1, "period": "daily"}),
            422,
            "VALIDATION_ERROR",
        ),
        raw(
            "delete a quota with a bad id",
            M::DELETE,
            "/v1/meter/quotas/42",
            None,
            "",
            404,
            "NOT_FOUND",
        ),
        // API keys.
        case(
            "key with an unknown role",
            M::POST,
            KEYS,
            json!({"name": "k", "role": "superuser"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "key with an empty name",
            M::POST,
            KEYS,
            json!({"name": "", "role": "read"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "key expiring in the past",
            M::POST,
            KEYS,
            json!({"name": "k", "role": "read", "expires_at": "2001-01-01T00:00:00Z"}),
            422,
            "VALIDATION_ERROR",
        ),
        case(
            "key with an unreadable expiry",
            M::POST,
            KEYS,
            json!({"name": "k", "role": "read", "expires_at": "tomorrow"}),
            422,
            "VALIDATION_ERROR",
        ),
        raw(
            "revoke a key with a bad id",
            M::DELETE,
            "/v1/meter/api-keys/xyz",
            None,
            "",
            404,
            "NOT_FOUND",
        ),
        // Query strings.
        get("page 0", "/v1/meter/events?page=0", 422, "VALIDATION_ERROR"),
        get(
            "page over the documented 2^31 - 1",
            "/v1/meter/events?page=2147483648",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "page_size 0",
            "/v1/meter/events?page_size=0",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "page_size 1001",
            "/v1/meter/events?page_size=1001",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "page not a number",
            "/v1/meter/events?page=two",
            400,
            "BAD_REQUEST",
        ),
        get(
            "negative page_size",
            "/v1/meter/events?page_size=-5",
            400,
            "BAD_REQUEST",
        ),
        get(
            "garbage cursor",
            "/v1/meter/events?cursor=garbage!",
            400,
            "BAD_REQUEST",
        ),
        get(
            "unknown parameter",
            "/v1/meter/events?colour=blue",
            400,
            "BAD_REQUEST",
        ),
        get(
            "repeated parameter",
            "/v1/meter/events?page=1&page=2",
            400,
            "BAD_REQUEST",
        ),
        get(
            "unreadable start_date",
            "/v1/meter/events?start_date=yesterday",
            400,
            "BAD_REQUEST",
        ),
        get(
            "end before start",
            "/v1/meter/events?start_date=2025-11-02&end_date=2025-11-01",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "control char in a filter",
            "/v1/meter/events?tenant_id=a%07b",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "missing window_type",
            "/v1/meter/aggregates?start_date=2025-11-01&end_date=2025-12-01",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "unknown window_type",
            "/v1/meter/aggregates?window_type=fortnightly&start_date=2025-11-01&end_date=2025-12-01",
            400,
            "BAD_REQUEST",
        ),
        get(
            "missing end_date",
            "/v1/meter/aggregates?window_type=daily&start_date=2025-11-01",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "empty aggregate range",
            "/v1/meter/aggregates?window_type=daily&start_date=2025-11-01&end_date=2025-11-01",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "an aggregate range of over 100,000 windows",
            "/v1/meter/aggregates?window_type=hourly&start_date=0001-01-01&end_date=9999-12-31",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "unknown group_by dimension",
            &format!("{AGG}&group_by=colour"),
            400,
            "BAD_REQUEST",
        ),
        get(
            "unknown tz",
            &format!("{AGG}&tz=Nowhere/City"),
            400,
            "BAD_REQUEST",
        ),
        get(
            "unknown aggregate parameter",
            &format!("{AGG}&window=daily"),
            400,
            "BAD_REQUEST",
        ),
        get(
            "quota listing with a bad tenant",
            "/v1/meter/quotas?tenant_id=%00",
            422,
            "VALIDATION_ERROR",
        ),
        get(
            "quota listing with an unknown parameter",
            "/v1/meter/quotas?feature=f",
            400,
            "BAD_REQUEST",
        ),
        get(
            "key listing with a parameter",
            "/v1/meter/api-keys?all=1",
            400,
            "BAD_REQUEST",
        ),
        // Paths and methods.
        get("unknown path", "/v1/meter/event", 404, "NOT_FOUND"),
        get("unknown version", "/v2/meter/events", 404, "NOT_FOUND"),
        raw(
            "wrong method",
            M::PUT,
            EVENTS,
            JSON,
            "{}",
            405,
            "METHOD_NOT_ALLOWED",
        ),
        raw(
            "GET on validate",
            M::GET,
            VALIDATE,
            None,
            "",
            405,
            "METHOD_NOT_ALLOWED",
        ),
    ]
}

#[tokio::test]
async fn every_bad_input_is_refused_exactly_and_writes_nothing() {
    let app = app_with(
        ServerConfig::default()
            .with_body_limit(64 * 1024)
            .with_max_batch_events(5),
    )
    .await;
    // Something to count, so "nothing written" is checked against a non-empty store.
    let (status, _) = app.post(EVENTS, ev("quantity", json!(1))).await;
    assert_eq!(status, StatusCode::CREATED);
    let cases = cases();
    assert!(cases.len() >= 40, "the table has {} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let events = app.event_count().await;
        let records = app.record_count().await;
        let mut request = Request::builder()
            .method(case.method.clone())
            .uri(case.uri.as_str())
            .header("x-api-key", ADMIN);
        if let Some(ct) = case.content_type {
            request = request.header("content-type", ct);
        }
        let request = request
            .body(Body::from(case.body.clone()))
            .expect("request");
        let (status, _, body) = app.send(request).await;
        if status.as_u16() != case.status || body["error"]["code"] != case.code {
            failures.push(format!(
                "{}: expected {} {}, got {} {}",
                case.name, case.status, case.code, status, body
            ));
        }
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}", case.name);
        assert!(
            body["error"]["message"].is_string(),
            "{}: envelope {body}",
            case.name
        );
        assert_eq!(
            app.event_count().await,
            events,
            "{} wrote events",
            case.name
        );
        assert_eq!(
            app.record_count().await,
            records,
            "{} wrote quotas or keys",
            case.name
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
