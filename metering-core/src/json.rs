//! Reading JSON request bodies exactly.
//!
//! A [`JsonObject`] is a JSON object whose member values are still the text they were sent
//! as. Each decoder reads a member as the type its field wants, so a number literal reaches
//! [`Quantity::from_json`](crate::Quantity::from_json) as written and is never rounded
//! through a binary float on the way: `999999999999999.999999999` stays what it is, and
//! `0.1000000000000000055511151231257827` is refused rather than read as `0.1`.
//!
//! Reading a body this way also spares the allocations of a whole [`serde_json::Value`]
//! tree: member names and strings without escapes are borrowed from the body.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON object whose member values are raw JSON text, in the order they were sent.
///
/// # Examples
///
/// ```
/// use metering_core::json::{JsonKind, JsonObject};
///
/// let body = r#"{"quantity": 999999999999999.999999999, "tenant_id": "org_1"}"#;
/// let object = JsonObject::parse(body).expect("an object");
/// let raw = object.get("quantity").expect("present");
/// assert_eq!(JsonKind::of(raw), JsonKind::Number);
/// assert_eq!(raw.get(), "999999999999999.999999999");
/// ```
#[derive(Debug, Clone, Default)]
pub struct JsonObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// Why a text is not a JSON object.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The text is not JSON at all (the HTTP layer answers 400).
    #[error("not valid JSON: {0}")]
    Syntax(#[source] serde_json::Error),
    /// Valid JSON, but not an object (the HTTP layer answers 422).
    #[error("must be a JSON object")]
    NotAnObject,
}

/// The kind of a raw JSON value, told by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// A number literal.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonKind {
    /// The kind of `raw` (which serde_json has already checked to be valid JSON).
    #[must_use]
    pub fn of(raw: &RawValue) -> JsonKind {
        match raw.get().as_bytes().first() {
            Some(b'n') => JsonKind::Null,
            Some(b't' | b'f') => JsonKind::Bool,
            Some(b'"') => JsonKind::String,
            Some(b'[') => JsonKind::Array,
            Some(b'{') => JsonKind::Object,
            _ => JsonKind::Number,
        }
    }
}

impl<'a> JsonObject<'a> {
    /// Parses `text`, which must hold one JSON object.
    ///
    /// # Errors
    ///
    /// [`JsonError::Syntax`] when `text` is not JSON, [`JsonError::NotAnObject`] when it is
    /// JSON of another kind.
    pub fn parse(text: &'a str) -> Result<JsonObject<'a>, JsonError> {
        let raw: &'a RawValue = serde_json::from_str(text).map_err(JsonError::Syntax)?;
        JsonObject::from_raw(raw).ok_or(JsonError::NotAnObject)
    }

    /// Reads the members of `raw`, or `None` when it is not an object.
    #[must_use]
    pub fn from_raw(raw: &'a RawValue) -> Option<JsonObject<'a>> {
        if JsonKind::of(raw) != JsonKind::Object {
            return None;
        }
        // serde_json validated the whole text when it made `raw`, so this cannot fail.
        serde_json::from_str(raw.get()).ok()
    }

    /// The value of the first member named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// Whether a member is named `name`.
    #[must_use]
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The members, in the order they were sent.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.members
            .iter()
            .map(|(key, value)| (key.as_ref(), *value))
    }

    /// The number of members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the object has no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Names that appear more than once, each reported once, in the order their second
    /// occurrence was sent. JSON allows them, but a decoder that silently kept one of two
    /// quantities would change what it was given. Linear in the number of members, so a
    /// body of many members cannot make it slow.
    pub fn duplicate_keys(&self) -> impl Iterator<Item = &str> + '_ {
        let mut seen = HashSet::with_capacity(self.members.len());
        let mut reported = HashSet::new();
        self.members.iter().filter_map(move |(key, _)| {
            let key = key.as_ref();
            (!seen.insert(key) && reported.insert(key)).then_some(key)
        })
    }
}

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(MemberName(name)) = map.next_key()? {
                    members.push((name, map.next_value::<&'de RawValue>()?));
                }
                Ok(JsonObject { members })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A member name, borrowed from the text unless it holds escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(MemberName)
    }
}

/// Reads a string, borrowed when the text allows it.
struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The string `raw` holds, or `None` when it is not a string.
#[must_use]
pub fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if JsonKind::of(raw) != JsonKind::String {
        return None;
    }
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    deserializer.deserialize_str(StrVisitor).ok()
}

/// The elements of the array `raw` holds, or `None` when it is not an array.
#[must_use]
pub fn array(raw: &RawValue) -> Option<Vec<&RawValue>> {
    if JsonKind::of(raw) != JsonKind::Array {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The object `raw` holds (as event [`Metadata`](crate::Metadata)), or `None` when it is not
/// an object.
///
/// Numbers inside keep the precision of [`serde_json::Value`]: metadata is free-form and
/// stored as sent, not summed.
#[must_use]
pub fn metadata(raw: &RawValue) -> Option<serde_json::Map<String, serde_json::Value>> {
    if JsonKind::of(raw) != JsonKind::Object {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// Writes `value` as a JSON number whose text is exactly `text`, which must be a valid JSON
/// number literal. Through `serde_json`'s writer the literal is copied as it is.
pub(crate) fn serialize_number_text<S: serde::Serializer>(
    text: String,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
    raw.serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_stay_as_sent() {
        let object = JsonObject::parse(r#"{"a": 1.50, "b\u0020c": "x\"y", "d": [1, {"e": null}]}"#)
            .expect("an object");
        assert_eq!(object.len(), 3);
        assert_eq!(object.get("a").map(RawValue::get), Some("1.50"));
        let b = object.get("b c").expect("unescaped name");
        assert_eq!(string(b).as_deref(), Some("x\"y"));
        let d = array(object.get("d").expect("d")).expect("an array");
        assert_eq!(d.len(), 2);
        assert_eq!(JsonKind::of(d[1]), JsonKind::Object);
        assert!(string(d[0]).is_none());
    }

    #[test]
    fn syntax_and_kind_errors_differ() {
        assert!(matches!(
            JsonObject::parse("{\"a\": 1,}"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            JsonObject::parse("{\"a\": 1} x"),
            Err(JsonError::Syntax(_))
        ));
        assert!(matches!(
            JsonObject::parse("[1]"),
            Err(JsonError::NotAnObject)
        ));
        assert!(matches!(
            JsonObject::parse("12.5"),
            Err(JsonError::NotAnObject)
        ));
    }

    #[test]
    fn duplicates_are_reported_once() {
        let object = JsonObject::parse(r#"{"q": 1, "a": 2, "q": 3, "q": 4}"#).expect("object");
        assert_eq!(object.duplicate_keys().collect::<Vec<_>>(), ["q"]);
        assert_eq!(object.get("q").map(RawValue::get), Some("1"));
    }
}
