//! [`Amount`]: the exact signed decimal a meter measures.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::quantity::Quantity;

/// Billionths in one unit.
const NANOS: i128 = 1_000_000_000;

/// The largest magnitude a metered value may have: 10^15, in nanos.
const MAX_NANOS: i128 = 1_000_000_000_000_000 * NANOS;

/// An exact signed decimal with nine fractional digits: a value read from an event, or a
/// meter's answer (a sum, a count, an extreme, an average rounded half to even).
///
/// Written as a JSON number whose text is the exact value (`-12.5`, `3`, `0.000000001`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// The amount of `nanos` billionths.
    #[must_use]
    pub const fn from_nanos(nanos: i128) -> Self {
        Amount(nanos)
    }

    /// A whole number.
    #[must_use]
    pub const fn from_units(units: i64) -> Self {
        Amount(units as i128 * NANOS)
    }

    /// The value in billionths.
    #[must_use]
    pub const fn nanos(self) -> i128 {
        self.0
    }

    /// Reads a value from event metadata: a JSON number, or a decimal string in plain
    /// notation (`-12.5`), exactly representable with nine fractional digits and between
    /// -10^15 and 10^15 inclusive. Anything else is `None`.
    #[must_use]
    pub fn from_metadata(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    return Self::bounded(i128::from(i) * NANOS);
                }
                if let Some(u) = n.as_u64() {
                    return Self::bounded(i128::from(u) * NANOS);
                }
                Self::from_literal(&n.to_string())
            }
            Value::String(s) => Self::from_plain(s),
            _ => None,
        }
    }

    /// Parses a JSON number literal exactly.
    fn from_literal(text: &str) -> Option<Self> {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let q = Quantity::from_json_number(magnitude).ok()?;
        Self::signed(negative, q)
    }

    /// Parses plain decimal text: an optional `-`, digits, an optional point and digits.
    fn from_plain(text: &str) -> Option<Self> {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = magnitude.split_once('.').unwrap_or((magnitude, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || !digits(int) || !digits(frac) || magnitude.ends_with('.') {
            return None;
        }
        let q: Quantity = magnitude.parse().ok()?;
        Self::signed(negative, q)
    }

    fn signed(negative: bool, q: Quantity) -> Option<Self> {
        let nanos = i128::try_from(q.nanos()).ok()?;
        Self::bounded(if negative { -nanos } else { nanos })
    }

    fn bounded(nanos: i128) -> Option<Self> {
        (-MAX_NANOS..=MAX_NANOS)
            .contains(&nanos)
            .then_some(Amount(nanos))
    }

    /// The mean of `count` values summing to `sum` nanos, rounded half to even to nine
    /// fractional digits; `None` when `count` is zero.
    #[must_use]
    pub fn mean(sum: i128, count: u64) -> Option<Self> {
        if count == 0 {
            return None;
        }
        let count = i128::from(count);
        let (q, r) = (sum.div_euclid(count), sum.rem_euclid(count));
        let rounded = match (2 * r).cmp(&count) {
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal if q % 2 != 0 => q + 1,
            _ => q,
        };
        Some(Amount(rounded))
    }
}

impl fmt::Display for Amount {
    /// Plain decimal text without trailing zeros: `-1`, `0.1`, `12.000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            f.write_str("-")?;
        }
        fmt::Display::fmt(&Quantity::from_nanos(self.0.unsigned_abs()), f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Quantity> for Amount {
    fn from(q: Quantity) -> Self {
        // Event quantities are at most 10^15, far inside i128.
        Amount(i128::try_from(q.nanos()).unwrap_or(i128::MAX))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 % NANOS == 0 {
            if let Ok(units) = i64::try_from(self.0 / NANOS) {
                return serializer.serialize_i64(units);
            }
        }
        crate::json::serialize_number_text(self.to_string(), serializer)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "An exact decimal with at most nine fractional digits, written as a JSON number",
            ))
            .examples([serde_json::json!(-12.5)])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Amount {}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_numbers_and_plain_decimal_strings() {
        let read = |v: Value| Amount::from_metadata(&v).map(|a| a.to_string());
        assert_eq!(read(json!(3)), Some("3".into()));
        assert_eq!(read(json!(-2.5)), Some("-2.5".into()));
        assert_eq!(read(json!(1.0)), Some("1".into()));
        assert_eq!(read(json!("-0.000000001")), Some("-0.000000001".into()));
        assert_eq!(
            read(json!("999999999999999.999999999")),
            Some("999999999999999.999999999".into())
        );
        assert_eq!(
            read(json!("1000000000000000")),
            Some("1000000000000000".into())
        );
        assert_eq!(read(json!("1000000000000000.000000001")), None);
        assert_eq!(read(json!(1e16)), None);
        assert_eq!(read(json!("0.0000000001")), None);
        assert_eq!(read(json!("1e3")), None);
        assert_eq!(read(json!(" 1")), None);
        assert_eq!(read(json!("+1")), None);
        assert_eq!(read(json!("1.")), None);
        assert_eq!(read(json!(".5")), None);
        assert_eq!(read(json!("")), None);
        assert_eq!(read(json!(true)), None);
        assert_eq!(read(json!(null)), None);
        assert_eq!(read(json!([1])), None);
    }

    #[test]
    fn means_round_half_to_even() {
        let mean = |sum: i128, n| Amount::mean(sum, n).map(Amount::nanos);
        assert_eq!(mean(5, 2), Some(2));
        assert_eq!(mean(7, 2), Some(4));
        assert_eq!(mean(-5, 2), Some(-2));
        assert_eq!(mean(-7, 2), Some(-4));
        assert_eq!(mean(10, 3), Some(3));
        assert_eq!(mean(11, 3), Some(4));
        assert_eq!(mean(-11, 3), Some(-4));
        assert_eq!(mean(1, 0), None);
    }

    #[test]
    fn writes_exact_json_numbers() {
        let text = |a: Amount| serde_json::to_string(&a).expect("serializes");
        assert_eq!(text(Amount::from_units(-3)), "-3");
        assert_eq!(text(Amount::from_nanos(-1)), "-0.000000001");
        assert_eq!(
            text(Amount::from_nanos(999_999_999_999_999_999_999_999)),
            "999999999999999.999999999"
        );
    }
}
