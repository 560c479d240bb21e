//! Property tests over arbitrary input for the event decoding and validation path: no input
//! may panic, and whatever is accepted satisfies every rule.

use chrono::{DateTime, Utc};
use metering_core::{EventRules, NewEvent, ValidateRequest, ValidationErrors, validate_batch};
use proptest::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// `v` as raw JSON text, the way the REST layer hands bodies to the decoders.
fn raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("JSON")
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_764_000_000, 0).expect("valid")
}

/// Decodes a body the way the REST layer does: one event, or `{"events": [...]}`.
fn decode(body: &Value) -> Result<usize, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let items: Vec<(Option<usize>, String, &Value)> = match body.get("events") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Some(i), format!("events[{i}]"), v))
            .collect(),
        _ => vec![(None, String::new(), body)],
    };
    let mut decoded = Vec::new();
    for (index, path, v) in items {
        if let Some(e) = NewEvent::from_json(&raw(v), index, &path, &mut errors) {
            decoded.push(e);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    match validate_batch(decoded, &EventRules::default(), now()) {
        Ok(events) => {
            for e in &events {
                assert!(!e.quantity.is_zero());
                assert!(e.quantity <= metering_core::quantity::MAX_EVENT_QUANTITY);
                assert!(!e.tenant_id.as_str().is_empty() && e.tenant_id.as_str() != "*");
                assert!(e.timestamp <= now() + chrono::Duration::hours(1));
            }
            Ok(events.len())
        }
        Err(metering_core::Error::Validation(v)) => Err(v),
        Err(_) => Ok(0),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("0.1"),
            Just("1e400"),
            Just("-0"),
            Just("1.0000000001"),
            Just("2025-11-20T10:00:00Z"),
            Just("*"),
            Just(" "),
            Just("\u{0}"),
            Just("9999999999999999999999999999999999")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("tenant_id".to_owned()),
                    Just("resource".to_owned()),
                    Just("feature".to_owned()),
                    Just("quantity".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("metadata".to_owned()),
                    Just("id".to_owned()),
                    Just("events".to_owned()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            let _ = decode(&v);
            let _ = ValidateRequest::from_json(&raw(&v));
            let _ = metering_core::QuotaSpec::from_json(&raw(&v));
            let _ = metering_core::NewApiKey::from_json(&v);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let _ = decode(&v);
        let _ = decode(&serde_json::json!({"events": [v.clone(), v.clone()]}));
        let _ = ValidateRequest::from_json(&raw(&v));
        let _ = metering_core::QuotaSpec::from_json(&raw(&v));
        let _ = metering_core::NewApiKey::from_json(&v);
    }

    #[test]
    fn near_valid_events_are_accepted_or_reported(
        tenant in "\\PC{0,300}",
        quantity in prop_oneof![any::<f64>().prop_map(|f| serde_json::json!(f)), "[0-9.]{0,30}".prop_map(Value::String)],
        metadata_depth in 0usize..20,
    ) {
        let mut metadata = serde_json::json!(1);
        for _ in 0..metadata_depth {
            metadata = serde_json::json!({ "k": metadata });
        }
        let body = serde_json::json!({"tenant_id": tenant, "resource": "r", "feature": "f",
                                      "quantity": quantity, "metadata": metadata});
        match decode(&body) {
            Ok(n) => prop_assert_eq!(n, 1),
            Err(errors) => prop_assert!(!errors.errors().is_empty()),
        }
    }
}
