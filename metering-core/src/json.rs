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
/// Numbers inside are held as [`serde_json::Value`] holds them (64-bit integers, or doubles);
/// [`inexact_number`] finds a literal that would not survive that exactly.
#[must_use]
pub fn metadata(raw: &RawValue) -> Option<serde_json::Map<String, serde_json::Value>> {
    if JsonKind::of(raw) != JsonKind::Object {
        return None;
    }
    serde_json::from_str(raw.get()).ok()
}

/// The first number literal in the JSON text `raw` whose value [`serde_json::Value`] cannot
/// hold exactly: an integer outside the 64-bit range, or a decimal that is not the value of
/// the double it parses to (more precision than a double has, like
/// `123456789012345.123456789`). Shortest round-trip forms, as every JSON encoder writes
/// doubles (`0.30000000000000004`), are exact. `raw` must be valid JSON.
#[must_use]
pub fn inexact_number(raw: &str) -> Option<&str> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &raw[start..i];
                if !number_is_exact(literal) {
                    return Some(literal);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether the number literal's value is what `serde_json` keeps of it.
fn number_is_exact(literal: &str) -> bool {
    if !literal.contains(['.', 'e', 'E'])
        && (literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok())
    {
        return true;
    }
    let Ok(n) = serde_json::from_str::<serde_json::Number>(literal) else {
        return false;
    };
    // The value is read back from serde_json's own text of the double (as meters read it).
    n.as_f64().is_some_and(f64::is_finite)
        && decimal_value(literal) == decimal_value(&n.to_string())
}

/// The value of the JSON number literal `literal` when it is a whole number from 0 to 255,
/// however it is written (`53`, `53.0`, `5.3e1`): to JSON Schema, `integer` is a kind of
/// value, not of spelling, and encoders that hold every number as a double write `53.0`.
pub(crate) fn small_whole_number(literal: &str) -> Option<u8> {
    serde_json::from_str::<serde_json::Number>(literal).ok()?;
    match decimal_value(literal)? {
        (_, digits, _) if digits.is_empty() => Some(0),
        (false, digits, power) if (0..=2).contains(&power) => {
            let zeros = usize::try_from(power).ok()?;
            format!("{digits}{}", "0".repeat(zeros)).parse().ok()
        }
        _ => None,
    }
}

/// A decimal literal's value in a canonical form: sign, significant digits without leading or
/// trailing zeros, and the power of ten of the last digit. Zero has no sign or digits.
fn decimal_value(literal: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    let mut power = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let trimmed_end = digits.trim_end_matches('0');
    power = power.checked_add(i64::try_from(digits.len() - trimmed_end.len()).ok()?)?;
    let significant = trimmed_end.trim_start_matches('0');
    if significant.is_empty() {
        return Some((false, String::new(), 0));
    }
    Some((negative, significant.to_owned(), power))
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
    fn small_whole_numbers_in_any_spelling() {
        for (text, value) in [
            ("53", 53),
            ("53.0", 53),
            ("5.3e1", 53),
            ("100", 100),
            ("-0", 0),
        ] {
            assert_eq!(small_whole_number(text), Some(value), "{text}");
        }
        for text in ["53.5", "256", "1e3", "-1", "\"53\"", "true", "053"] {
            assert_eq!(small_whole_number(text), None, "{text}");
        }
    }

    #[test]
    fn numbers_a_double_cannot_hold_are_found() {
        for exact in [
            r#"{"a": 1, "b": -9223372036854775808, "c": 18446744073709551615}"#,
            r#"{"a": 0.30000000000000004, "b": 1.10, "c": 1e3, "d": -0.0, "e": 2.5E-3}"#,
            r#"{"a": "123456789012345.123456789", "b\"1.000000000000000001": [12.5]}"#,
            r#"{"a": 123456789012345.6, "b": 4.5e15, "c": 1.7976931348623157e308}"#,
        ] {
            assert_eq!(inexact_number(exact), None, "{exact}");
        }
        for (text, literal) in [
            (
                r#"{"a": 123456789012345.123456789}"#,
                "123456789012345.123456789",
            ),
            (
                r#"{"a": {"b": [1, 18446744073709551616]}}"#,
                "18446744073709551616",
            ),
            (
                r#"{"a": 0.1000000000000000055511}"#,
                "0.1000000000000000055511",
            ),
            (r#"{"a": 1e400}"#, "1e400"),
        ] {
            assert_eq!(inexact_number(text), Some(literal), "{text}");
        }
    }

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
