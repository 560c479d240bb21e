//! Property tests of the HTTP body path: arbitrary bytes and arbitrary JSON sent to every
//! endpoint that reads a body never panic and never answer 500; every refusal is the
//! error envelope with a 4xx status.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use serde_json::Value;

const BODY_ENDPOINTS: &[(&str, &str)] = &[
    ("POST", "/v1/meter/events"),
    ("POST", "/v1/meter/events/batch"),
    ("POST", "/v1/meter/validate"),
    ("PUT", "/v1/meter/quotas"),
    ("POST", "/v1/meter/api-keys"),
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Sends `body` to every body endpoint and checks the answers.
async fn check(app: &common::App, body: Vec<u8>) -> Result<(), TestCaseError> {
    for (method, path) in BODY_ENDPOINTS {
        let request = Request::builder()
            .method(method.parse::<Method>().expect("method"))
            .uri(*path)
            .header("x-api-key", common::ADMIN)
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .expect("request");
        let (status, _, bytes) = common::respond(&app.router, request).await;
        prop_assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path} answered 500 to {:?}",
            String::from_utf8_lossy(&body)
        );
        prop_assert!(status.as_u16() < 500, "{method} {path} answered {status}");
        if status.is_client_error() {
            let json: Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {bytes:?}")))?;
            prop_assert!(json["error"]["code"].is_string(), "{json}");
            prop_assert!(json["error"]["message"].is_string(), "{json}");
        }
    }
    Ok(())
}

/// Any JSON value, biased towards the fields the decoders look at.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2025-11-20T10:31:00Z"),
            Just("monthly"),
            Just("*"),
            Just("1e400"),
            Just("0.0000000001"),
            Just("admin"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    let keys = prop_oneof![
        Just("events"),
        Just("id"),
        Just("tenant_id"),
        Just("resource"),
        Just("feature"),
        Just("quantity"),
        Just("timestamp"),
        Just("metadata"),
        Just("consume"),
        Just("period"),
        Just("limit"),
        Just("alert_threshold"),
        Just("tz"),
        Just("name"),
        Just("role"),
        Just("expires_at"),
        Just("x"),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..8).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_fail_the_server(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let rt = runtime();
        rt.block_on(async {
            let app = common::app().await;
            check(&app, body).await
        })?;
    }

    #[test]
    fn arbitrary_json_never_fails_the_server(value in json_value()) {
        let rt = runtime();
        rt.block_on(async {
            let app = common::app().await;
            check(&app, value.to_string().into_bytes()).await
        })?;
    }

    #[test]
    fn arbitrary_events_never_fail_the_server(
        events in prop::collection::vec(json_value(), 0..5),
        batch in any::<bool>(),
    ) {
        let body = if batch {
            serde_json::json!({"events": events})
        } else {
            events.into_iter().next().unwrap_or(Value::Null)
        };
        let rt = runtime();
        rt.block_on(async {
            let app = common::app().await;
            check(&app, body.to_string().into_bytes()).await
        })?;
    }
}
