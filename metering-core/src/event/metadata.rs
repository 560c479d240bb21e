//! Limits on event metadata.

use std::io;

use serde_json::{Map, Value};

/// Free-form event metadata: a JSON object.
pub type Metadata = Map<String, Value>;

/// Counts bytes written, so the serialized size is known without allocating it.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The length of `metadata` serialized as compact JSON, in bytes.
#[must_use]
pub fn serialized_len(metadata: &Metadata) -> usize {
    let mut counter = ByteCounter(0);
    // Writing a Map of Values to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, metadata);
    counter.0
}

/// The nesting depth of a JSON value: a scalar is 0, `{}` and `[]` are 1, `{"a": {}}` is 2.
#[must_use]
pub fn depth(value: &Value) -> usize {
    // Iterative, so hostile input cannot overflow the stack.
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Object(map) => {
                deepest = deepest.max(d + 1);
                stack.extend(map.values().map(|c| (c, d + 1)));
            }
            Value::Array(items) => {
                deepest = deepest.max(d + 1);
                stack.extend(items.iter().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_and_size() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!({"a": {"b": [1]}})), 3);
        let Value::Object(m) = json!({"a": "b"}) else {
            unreachable!()
        };
        assert_eq!(serialized_len(&m), 9);
    }
}
