//! Decoding a meter definition from JSON text, with a field path for every problem.

use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Aggregation, MAX_DIMENSIONS, MeterFilter, MeterSpec, ValuePath};
use crate::error::ValidationErrors;
use crate::event::{Feature, Resource, report_duplicates};
use crate::json::JsonObject;

/// The longest meter name, in characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// The longest dimension or metadata filter key, in characters.
pub(crate) const MAX_DIMENSION_CHARS: usize = 128;

impl MeterSpec {
    /// Decodes a meter definition (the body of `PUT /v1/meter/meters/{key}`), collecting
    /// every problem with its field path. `key`, `created_at` and `updated_at`, as a `GET`
    /// returns them, are accepted and ignored, so a fetched meter can be sent back.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each bad field; nothing is returned then.
    pub fn from_json(raw: &RawValue) -> crate::Result<Self> {
        let map = JsonObject::from_raw(raw)
            .ok_or_else(|| crate::Error::invalid("body", "must be a JSON object"))?;
        let mut errors = ValidationErrors::new();
        report_duplicates(&map, None, &str::to_owned, &mut errors);
        let mut spec = MeterSpec::new(Aggregation::Sum);
        let mut aggregation = None;
        for (key, raw) in map.iter() {
            let value: Value = match serde_json::from_str(raw.get()) {
                Ok(v) => v,
                Err(_) => {
                    errors.push(None, key, "is not valid JSON");
                    continue;
                }
            };
            match key {
                "name" => match value {
                    Value::Null => {}
                    Value::String(s) => spec.name = Some(s),
                    _ => errors.push(None, "name", "must be a string"),
                },
                "aggregation" => match value {
                    Value::String(s) => match s.parse::<Aggregation>() {
                        Ok(a) => aggregation = Some(a),
                        Err(e) => errors.push(None, "aggregation", e),
                    },
                    _ => errors.push(None, "aggregation", "must be a string"),
                },
                "value" => match value {
                    Value::Null => {}
                    Value::String(s) => match s.parse::<ValuePath>() {
                        Ok(path) => spec.value = path,
                        Err(e) => errors.push(None, "value", e),
                    },
                    _ => errors.push(None, "value", "must be a string"),
                },
                "filter" => spec.filter = filter(&value, &mut errors),
                "dimensions" => match value {
                    Value::Null => {}
                    Value::Array(items) => {
                        for (i, item) in items.into_iter().enumerate() {
                            match item {
                                Value::String(s) => spec.dimensions.push(s),
                                _ => errors.push(
                                    None,
                                    format!("dimensions[{i}]"),
                                    "must be a string",
                                ),
                            }
                        }
                    }
                    _ => errors.push(None, "dimensions", "must be a list of metadata keys"),
                },
                "key" | "created_at" | "updated_at" => {}
                _ => errors.push(None, key, "unknown field"),
            }
        }
        match aggregation {
            Some(a) => spec.aggregation = a,
            None if !map.contains_key("aggregation") => {
                errors.push(None, "aggregation", "is required");
            }
            None => {}
        }
        if errors.is_empty() {
            check(&spec, &mut errors);
        }
        errors.into_result(spec)
    }
}

/// Reads `filter`: `resource` and `feature` as a string or a list, `metadata` as key ->
/// scalar or list of scalars.
fn filter(value: &Value, errors: &mut ValidationErrors) -> MeterFilter {
    let mut filter = MeterFilter::default();
    let object = match value {
        Value::Null => return filter,
        Value::Object(object) => object,
        _ => {
            errors.push(None, "filter", "must be an object");
            return filter;
        }
    };
    for (key, value) in object {
        let field = format!("filter.{key}");
        match key.as_str() {
            "resource" => {
                filter.resource = names(value, &field, errors, |s| Resource::new(s));
            }
            "feature" => filter.feature = names(value, &field, errors, |s| Feature::new(s)),
            "metadata" => match value {
                Value::Null => {}
                Value::Object(conditions) => {
                    let mut metadata = BTreeMap::new();
                    for (name, allowed) in conditions {
                        let field = format!("filter.metadata.{name}");
                        check_key(name, &field, errors);
                        let allowed = match allowed {
                            Value::Array(items) if items.is_empty() => {
                                errors.push(None, &field, "must not be an empty list");
                                continue;
                            }
                            Value::Array(items) => items.clone(),
                            scalar => vec![scalar.clone()],
                        };
                        for (i, item) in allowed.iter().enumerate() {
                            if matches!(item, Value::Array(_) | Value::Object(_)) {
                                errors.push(
                                    None,
                                    format!("{field}[{i}]"),
                                    "must be a JSON scalar (string, number, boolean or null)",
                                );
                            }
                        }
                        metadata.insert(name.clone(), allowed);
                    }
                    filter.metadata = metadata;
                }
                _ => errors.push(None, field, "must be an object of key -> value(s)"),
            },
            _ => errors.push(
                None,
                field,
                "unknown field; expected resource, feature or metadata",
            ),
        }
    }
    filter
}

/// A name or a non-empty list of names, each checked by `parse`.
fn names<T, E: ToString>(
    value: &Value,
    field: &str,
    errors: &mut ValidationErrors,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Vec<T> {
    let mut one = |item: &Value, field: String| match item {
        Value::String(s) => parse(s)
            .map_err(|e| errors.push(None, field, e.to_string()))
            .ok(),
        _ => {
            errors.push(None, field, "must be a string");
            None
        }
    };
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) if items.is_empty() => {
            errors.push(None, field, "must not be an empty list");
            Vec::new()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| one(item, format!("{field}[{i}]")))
            .collect(),
        item => one(item, field.to_owned()).into_iter().collect(),
    }
}

fn check_key(key: &str, field: &str, errors: &mut ValidationErrors) {
    if key.is_empty() || key.chars().count() > MAX_DIMENSION_CHARS {
        errors.push(
            None,
            field,
            format!("a key must be 1 to {MAX_DIMENSION_CHARS} characters"),
        );
    }
}

/// The rules across fields, for decoded and hand-built specs alike.
pub(super) fn check(spec: &MeterSpec, errors: &mut ValidationErrors) {
    if let Some(name) = &spec.name {
        if name.chars().count() > MAX_NAME_CHARS {
            errors.push(
                None,
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            );
        }
    }
    if spec.aggregation == Aggregation::UniqueCount && spec.value == ValuePath::Quantity {
        errors.push(
            None,
            "value",
            "unique_count needs a metadata path (`metadata.<key>`)",
        );
    }
    if let ValuePath::Metadata(path) = &spec.value {
        if path.is_empty() || path.iter().any(String::is_empty) {
            errors.push(None, "value", "a metadata path may not have an empty key");
        }
    }
    if spec.dimensions.len() > MAX_DIMENSIONS {
        errors.push(
            None,
            "dimensions",
            format!(
                "at most {MAX_DIMENSIONS} dimensions (got {})",
                spec.dimensions.len()
            ),
        );
    }
    for (i, key) in spec.dimensions.iter().enumerate() {
        let field = format!("dimensions[{i}]");
        check_key(key, &field, errors);
        if spec.dimensions[..i].contains(key) {
            errors.push(None, field, "is listed twice");
        } else if matches!(key.as_str(), "tenant_id" | "resource" | "feature") {
            errors.push(
                None,
                field,
                "names an event field; group by it without declaring it",
            );
        }
    }
    for (key, allowed) in &spec.filter.metadata {
        if allowed.is_empty() {
            errors.push(
                None,
                format!("filter.metadata.{key}"),
                "must not be an empty list",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> crate::Result<MeterSpec> {
        let raw: Box<RawValue> = serde_json::from_str(text).expect("JSON");
        MeterSpec::from_json(&raw)
    }

    fn fields(text: &str) -> Vec<String> {
        match decode(text) {
            Err(crate::Error::Validation(errors)) => {
                errors.errors().iter().map(|e| e.field.clone()).collect()
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_contract_example_decodes_and_serializes_back() {
        let text = r#"{"name": "LLM tokens by model", "aggregation": "sum", "value": "quantity",
            "filter": {"resource": "ai", "feature": ["input_tokens", "output_tokens"],
                       "metadata": {"region": "eu", "model": ["gpt-4o", "o3"]}},
            "dimensions": ["model", "region"]}"#;
        let spec = decode(text).expect("valid");
        assert_eq!(spec.aggregation, Aggregation::Sum);
        assert_eq!(spec.filter.feature.len(), 2);
        assert_eq!(spec.filter.metadata["region"], vec![Value::from("eu")]);
        let back = serde_json::to_string(&spec).expect("serializes");
        let raw: Box<RawValue> = serde_json::from_str(&back).expect("JSON");
        assert_eq!(MeterSpec::from_json(&raw).expect("round trip"), spec);
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(fields(r#"{"aggregation": "median"}"#), ["aggregation"]);
        assert_eq!(fields(r"{}"), ["aggregation"]);
        assert_eq!(fields(r#"{"aggregation": "unique_count"}"#), ["value"]);
        assert_eq!(
            fields(r#"{"aggregation": "sum", "value": "metadata..x"}"#),
            ["value"]
        );
        assert_eq!(
            fields(
                r#"{"aggregation": "sum", "dimensions": ["a","b","c","d","e","f","g","h","i"]}"#
            ),
            ["dimensions"]
        );
        assert_eq!(
            fields(r#"{"aggregation": "sum", "dimensions": ["a", "a", 3]}"#),
            ["dimensions[2]"]
        );
        assert_eq!(
            fields(r#"{"aggregation": "sum", "dimensions": ["a", "a"]}"#),
            ["dimensions[1]"]
        );
        assert_eq!(
            fields(r#"{"aggregation": "sum", "filter": {"feature": ["ok", ""], "plan": 1}}"#),
            ["filter.feature[1]", "filter.plan"]
        );
        assert_eq!(
            fields(r#"{"aggregation": "sum", "filter": {"metadata": {"a": [[1]], "b": []}}}"#),
            ["filter.metadata.a[0]", "filter.metadata.b"]
        );
        assert_eq!(fields(r#"{"aggregation": "sum", "colour": 1}"#), ["colour"]);
        assert_eq!(
            fields(r#"{"aggregation": "sum", "aggregation": "max"}"#),
            ["aggregation"]
        );
    }
}
