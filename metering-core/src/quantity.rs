//! [`Quantity`]: an exact, non-negative decimal with nine fractional digits.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::json::JsonKind;

/// Number of nano-units in one unit: quantities carry nine fractional digits.
pub const NANOS_PER_UNIT: u128 = 1_000_000_000;

/// The largest quantity one event may carry: 10^15 units.
pub const MAX_EVENT_QUANTITY: Quantity = Quantity(1_000_000_000_000_000 * NANOS_PER_UNIT);

/// [`MAX_EVENT_QUANTITY`] as a power of ten.
pub const MAX_EVENT_QUANTITY_EXPONENT: usize = 15;

/// The largest quota limit or threshold usage: 10^27 units (a sum of many events; still far
/// inside what a quantity and the stores' `NUMERIC(39, 9)` hold).
pub const MAX_LIMIT: Quantity = Quantity(10u128.pow(27) * NANOS_PER_UNIT);

/// [`MAX_LIMIT`] as a power of ten.
pub const MAX_LIMIT_EXPONENT: usize = 27;

/// An exact, non-negative decimal quantity with at most nine fractional digits.
///
/// Stored as a count of nano-units (10^-9) in a `u128`, so sums never drift: a million
/// events of `0.1` add up to exactly `100000`. Event quantities are further bounded by
/// [`Quantity::validate_event`] (> 0 and at most 10^15).
///
/// # Serialization
///
/// A quantity is always a JSON number, written with its exact decimal text: `1` (not
/// `1.0`), `0.1`, `999999999999999.999999999`. Deserialization reads a number literal from
/// its text (never through an `f64`) and also accepts decimal strings (`"12.5"`); it is
/// made for JSON (`serde_json`), the format whose literal text it reads.
///
/// Write quantities with `serde_json::to_writer`, `to_vec` or `to_string` (or axum's
/// `Json`): `serde_json::to_value` and the `json!` macro hold numbers as `f64`, so a
/// quantity with more than 15 significant digits would be rounded there.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(u128);

/// Why a decimal text is not a valid [`Quantity`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a plain decimal number.
    #[error("must be a decimal number")]
    NotANumber,
    /// Negative numbers are never quantities.
    #[error("must be > 0")]
    Negative,
    /// More than nine digits after the point.
    #[error("at most 9 fractional digits")]
    TooPrecise,
    /// Beyond what the type can hold.
    #[error("too large")]
    Overflow,
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);
    /// One unit.
    pub const ONE: Quantity = Quantity(NANOS_PER_UNIT);

    /// A quantity of `nanos` nano-units (10^-9).
    #[must_use]
    pub const fn from_nanos(nanos: u128) -> Self {
        Quantity(nanos)
    }

    /// A whole number of units.
    #[must_use]
    pub const fn from_units(units: u64) -> Self {
        Quantity(units as u128 * NANOS_PER_UNIT)
    }

    /// The quantity in nano-units.
    #[must_use]
    pub const fn nanos(self) -> u128 {
        self.0
    }

    /// The whole units (the part before the decimal point).
    #[must_use]
    pub const fn units(self) -> u128 {
        self.0 / NANOS_PER_UNIT
    }

    /// The fractional part in nano-units, `0..1_000_000_000`.
    #[must_use]
    pub const fn fraction_nanos(self) -> u32 {
        // Always < 10^9, so it fits a u32.
        #[allow(clippy::cast_possible_truncation)]
        let f = (self.0 % NANOS_PER_UNIT) as u32;
        f
    }

    /// Builds a quantity from whole units and a nano-unit fraction (`fraction_nanos` may exceed
    /// one unit; it is carried). This is how backends read back split columns or summed parts.
    #[must_use]
    pub const fn from_parts(units: u128, fraction_nanos: u128) -> Self {
        Quantity(units * NANOS_PER_UNIT + fraction_nanos)
    }

    /// Whether this is zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whether it has no fractional part.
    #[must_use]
    pub const fn is_whole(self) -> bool {
        self.0 % NANOS_PER_UNIT == 0
    }

    /// `self + rhs`, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, rhs: Quantity) -> Option<Quantity> {
        match self.0.checked_add(rhs.0) {
            Some(v) => Some(Quantity(v)),
            None => None,
        }
    }

    /// `self - rhs`, floored at zero.
    #[must_use]
    pub const fn saturating_sub(self, rhs: Quantity) -> Quantity {
        Quantity(self.0.saturating_sub(rhs.0))
    }

    /// `self + rhs`, capped at the largest value.
    #[must_use]
    pub const fn saturating_add(self, rhs: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(rhs.0))
    }

    /// Checks the rules for the quantity of one event: > 0 and at most 10^15.
    ///
    /// # Errors
    ///
    /// [`QuantityError::Negative`] for zero, [`QuantityError::Overflow`] above 10^15.
    pub fn validate_event(self) -> Result<Self, QuantityError> {
        if self.is_zero() {
            Err(QuantityError::Negative)
        } else if self > MAX_EVENT_QUANTITY {
            Err(QuantityError::Overflow)
        } else {
            Ok(self)
        }
    }

    /// The quantity as an `f64` (for display and metrics only; never for sums).
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_UNIT as f64
    }

    /// Percentage `self / of * 100`, floored, for alert thresholds; `None` when `of` is zero.
    #[must_use]
    pub fn percent_of(self, of: Quantity) -> Option<u128> {
        if of.is_zero() {
            return None;
        }
        Some(self.0.saturating_mul(100) / of.0)
    }

    /// Reads a quantity from raw JSON: a number literal, read from its text, or a decimal
    /// string in plain notation. `Ok(None)` for `null`.
    ///
    /// A literal is never passed through a binary float: `999999999999999.999999999` is
    /// read as written, and a literal with more than nine fractional digits (after
    /// dropping trailing zeros, and exponents applied) is refused, never rounded.
    ///
    /// # Errors
    ///
    /// [`QuantityError::NotANumber`] for any other JSON kind, and the errors of
    /// [`Quantity::from_json_number`] and of parsing a decimal string.
    ///
    /// # Examples
    ///
    /// ```
    /// use metering_core::Quantity;
    /// use serde_json::value::RawValue;
    ///
    /// let raw: &RawValue = serde_json::from_str("999999999999999.999999999").unwrap();
    /// let q = Quantity::from_json(raw).unwrap().unwrap();
    /// assert_eq!(q.to_string(), "999999999999999.999999999");
    /// let raw: &RawValue = serde_json::from_str("0.1000000000000000055511151231257827").unwrap();
    /// assert!(Quantity::from_json(raw).is_err());
    /// ```
    pub fn from_json(raw: &RawValue) -> Result<Option<Self>, QuantityError> {
        match JsonKind::of(raw) {
            JsonKind::Null => Ok(None),
            JsonKind::Number => Quantity::from_json_number(raw.get()).map(Some),
            JsonKind::String => match crate::json::string(raw) {
                Some(text) => text.parse().map(Some),
                None => Err(QuantityError::NotANumber),
            },
            _ => Err(QuantityError::NotANumber),
        }
    }

    /// Parses a JSON number literal (`-? int frac? exp?`, as RFC 8259 writes them) exactly.
    ///
    /// # Errors
    ///
    /// [`QuantityError::NotANumber`] for text that is not such a literal,
    /// [`QuantityError::Negative`] below zero, [`QuantityError::TooPrecise`] with more
    /// than nine fractional digits, [`QuantityError::Overflow`] beyond what the type holds.
    pub fn from_json_number(text: &str) -> Result<Self, QuantityError> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || (mantissa.contains('.') && !all_digits(frac)) {
            return Err(QuantityError::NotANumber);
        }
        let exponent: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.trim_start_matches(['+', '-']);
                if !all_digits(digits) || e.len() - digits.len() > 1 {
                    return Err(QuantityError::NotANumber);
                }
                // Any exponent past 10^6 moves a nonzero digit out of range either way.
                let magnitude = digits.trim_start_matches('0');
                let magnitude: i64 = if magnitude.len() > 7 {
                    10_000_000
                } else {
                    magnitude.parse().unwrap_or(0)
                };
                if e.starts_with('-') {
                    -magnitude
                } else {
                    magnitude
                }
            }
        };
        // The value is `digits` with the decimal point `point` digits from the left.
        let digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let leading = digits.iter().take_while(|&&d| d == b'0').count();
        let digits = &digits[leading..];
        let trailing = digits.iter().rev().take_while(|&&d| d == b'0').count();
        let digits = &digits[..digits.len() - trailing];
        if digits.is_empty() {
            return Ok(Quantity::ZERO);
        }
        if negative {
            return Err(QuantityError::Negative);
        }
        let len = i64::try_from(digits.len()).map_err(|_| QuantityError::Overflow)?;
        let int_len = i64::try_from(int.len()).map_err(|_| QuantityError::Overflow)?;
        let leading = i64::try_from(leading).map_err(|_| QuantityError::Overflow)?;
        let point = int_len - leading + exponent;
        // nanos = digits * 10^(point + 9 - len); a negative power would need more than nine
        // fractional digits.
        let scale = point + 9 - len;
        if scale < 0 {
            return Err(QuantityError::TooPrecise);
        }
        if len + scale > 39 {
            return Err(QuantityError::Overflow);
        }
        let scale = u32::try_from(scale).map_err(|_| QuantityError::Overflow)?;
        digits
            .iter()
            .try_fold(0u128, |acc, &d| {
                acc.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            })
            .and_then(|n| n.checked_mul(10u128.checked_pow(scale)?))
            .map(Quantity)
            .ok_or(QuantityError::Overflow)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    /// Parses plain decimal text: digits, an optional point and up to nine fractional digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix('-') {
            return if rest.parse::<Quantity>().is_ok() {
                Err(QuantityError::Negative)
            } else {
                Err(QuantityError::NotANumber)
            };
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() && frac.is_empty()
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (s.contains('.') && frac.is_empty())
        {
            return Err(QuantityError::NotANumber);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 9 {
            return Err(QuantityError::TooPrecise);
        }
        let int = int.trim_start_matches('0');
        if int.len() > 30 {
            return Err(QuantityError::Overflow);
        }
        let units: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| QuantityError::Overflow)?
        };
        let mut nanos: u128 = 0;
        for (i, b) in frac.bytes().enumerate() {
            let exp = u32::try_from(8 - i).map_err(|_| QuantityError::TooPrecise)?;
            nanos += u128::from(b - b'0') * 10u128.pow(exp);
        }
        units
            .checked_mul(NANOS_PER_UNIT)
            .and_then(|u| u.checked_add(nanos))
            .map(Quantity)
            .ok_or(QuantityError::Overflow)
    }
}

impl fmt::Display for Quantity {
    /// Plain decimal text without trailing zeros: `1`, `0.1`, `12.000000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.units();
        let frac = self.fraction_nanos();
        if frac == 0 {
            return write!(f, "{units}");
        }
        // The nine fraction digits without trailing zeros, on the stack: answers format
        // tens of thousands of values.
        let mut digits = [b'0'; 9];
        let mut rest = frac;
        for d in digits.iter_mut().rev() {
            *d = b'0' + u8::try_from(rest % 10).expect("a digit");
            rest /= 10;
        }
        let end = digits.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1);
        let digits = std::str::from_utf8(&digits[..end]).expect("ASCII digits");
        write!(f, "{units}.{digits}")
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({self})")
    }
}

impl Add for Quantity {
    type Output = Quantity;

    /// Exact addition.
    ///
    /// # Panics
    ///
    /// On overflow beyond 3.4 * 10^29 units, which no sum of valid events reaches.
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity(
            self.0
                .checked_add(rhs.0)
                .expect("quantity sums stay far below u128::MAX nano-units"),
        )
    }
}

impl AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        *self = *self + rhs;
    }
}

impl Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Quantity> for Quantity {
    fn sum<I: Iterator<Item = &'a Quantity>>(iter: I) -> Quantity {
        iter.copied().sum()
    }
}

impl From<u32> for Quantity {
    fn from(units: u32) -> Self {
        Quantity::from_units(u64::from(units))
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            if let Ok(units) = u64::try_from(self.units()) {
                return serializer.serialize_u64(units);
            }
        }
        crate::json::serialize_number_text(self.to_string(), serializer)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // The literal's own text, so nothing is rounded on the way in.
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        match Quantity::from_json(&raw) {
            Ok(Some(q)) => Ok(q),
            Ok(None) => Err(de::Error::invalid_type(
                de::Unexpected::Unit,
                &"a non-negative decimal number or decimal string",
            )),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
}

/// The OpenAPI schemas of a quantity: as written in answers (`Decimal`, the schema of
/// [`Quantity`]) and as accepted in requests ([`DecimalInput`]).
#[cfg(feature = "openapi")]
mod schema {
    use std::borrow::Cow;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::{PartialSchema, ToSchema};

    use super::Quantity;

    impl PartialSchema for Quantity {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .description(Some(
                    "An exact decimal, always a JSON number whose text is the exact value (`1`, \
                     `0.1`, `999999999999999.999999999`), with at most 9 fractional digits. It \
                     may carry more significant digits than a 64-bit float: read it with a \
                     decimal-exact JSON parser to keep every digit.",
                ))
                .examples([serde_json::json!(12.5)])
                .into()
        }
    }

    impl ToSchema for Quantity {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("Decimal")
        }
    }

    /// The pattern of a decimal string above 0 and at most `10^max_exponent`, with at most
    /// nine fractional digits (trailing zeros do not count), in the forms
    /// [`Quantity::from_str`] reads: white space around it, an optional `+`, leading zeros,
    /// an optional integer part (`.5`).
    pub(crate) fn positive_decimal_pattern(max_exponent: usize) -> String {
        let ws = crate::api::WHITE_SPACE;
        let below = format!(
            r"0*[1-9][0-9]{{0,{}}}(?:\.[0-9]{{1,9}}0*)?",
            max_exponent - 1
        );
        let max = format!(r"0*1{}(?:\.0+)?", "0".repeat(max_exponent));
        // Below 1: a nonzero digit among the first nine fractional ones, zeros after.
        let fractions: Vec<String> = (0..9)
            .map(|zeros| format!("{}[1-9][0-9]{{0,{}}}", "0".repeat(zeros), 8 - zeros))
            .collect();
        let fraction = format!(r"0*\.(?:{})0*", fractions.join("|"));
        format!("^[{ws}]*\\+?(?:{below}|{max}|{fraction})[{ws}]*$")
    }

    /// A request decimal above 0 and at most `10^max_exponent`, with at most nine
    /// fractional digits: a number or a decimal string.
    fn positive_decimal(max_exponent: usize, description: &str) -> RefOr<Schema> {
        let max = 10f64.powi(i32::try_from(max_exponent).unwrap_or(i32::MAX));
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .exclusive_minimum(Some(0))
                    .maximum(Some(max))
                    .multiple_of(Some(1e-9)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(positive_decimal_pattern(max_exponent))),
            )
            .description(Some(description))
            .examples([serde_json::json!(1)])
            .into()
    }

    /// The schema of an event quantity in a request: a number literal or a decimal string,
    /// read exactly, above 0 and at most 10^15. Only a schema: requests are read by the
    /// domain decoders.
    #[derive(Debug, Clone, Copy)]
    pub struct DecimalInput;

    impl PartialSchema for DecimalInput {
        fn schema() -> RefOr<Schema> {
            positive_decimal(
                super::MAX_EVENT_QUANTITY_EXPONENT,
                "An exact decimal above 0 and at most 10^15: a JSON number, read from its \
                 literal text (never through a float), or a decimal string in plain notation \
                 (`\"12.5\"`). At most 9 fractional digits (trailing zeros do not count); more \
                 is refused with 422, never rounded.",
            )
        }
    }

    impl ToSchema for DecimalInput {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("DecimalInput")
        }
    }

    /// The schema of a quota limit or threshold usage in a request: like [`DecimalInput`],
    /// above 0 and at most 10^27.
    #[derive(Debug, Clone, Copy)]
    pub struct LimitInput;

    impl PartialSchema for LimitInput {
        fn schema() -> RefOr<Schema> {
            positive_decimal(
                super::MAX_LIMIT_EXPONENT,
                "An exact decimal above 0 and at most 10^27: a JSON number, read from its \
                 literal text (never through a float), or a decimal string in plain notation \
                 (`\"12.5\"`). At most 9 fractional digits (trailing zeros do not count).",
            )
        }
    }

    impl ToSchema for LimitInput {
        fn name() -> Cow<'static, str> {
            Cow::Borrowed("LimitInput")
        }
    }
}

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub use schema::{DecimalInput, LimitInput};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_decimals() {
        for (text, shown) in [
            ("1", "1"),
            ("0.1", "0.1"),
            ("1.000000001", "1.000000001"),
            ("0010.500", "10.5"),
            ("1000000000000000", "1000000000000000"),
            (".5", "0.5"),
        ] {
            let q: Quantity = text.parse().expect(text);
            assert_eq!(q.to_string(), shown);
        }
        assert_eq!(
            "1.0000000001".parse::<Quantity>(),
            Err(QuantityError::TooPrecise)
        );
        assert_eq!("-1".parse::<Quantity>(), Err(QuantityError::Negative));
        assert_eq!("abc".parse::<Quantity>(), Err(QuantityError::NotANumber));
        assert_eq!("1.".parse::<Quantity>(), Err(QuantityError::NotANumber));
        assert_eq!("".parse::<Quantity>(), Err(QuantityError::NotANumber));
        assert_eq!("1e5".parse::<Quantity>(), Err(QuantityError::NotANumber));
    }

    #[test]
    fn a_million_tenths_sum_exactly() {
        let tenth: Quantity = "0.1".parse().expect("valid");
        let total: Quantity = std::iter::repeat_n(tenth, 1_000_000).sum();
        assert_eq!(total, Quantity::from_units(100_000));
        assert_eq!(serde_json::to_string(&total).expect("json"), "100000");
    }

    #[test]
    fn json_round_trip() {
        let q: Quantity = serde_json::from_str("0.1").expect("json");
        assert_eq!(q.nanos(), 100_000_000);
        assert_eq!(serde_json::to_string(&q).expect("json"), "0.1");
        let q: Quantity = serde_json::from_str("42").expect("json");
        assert_eq!(serde_json::to_string(&q).expect("json"), "42");
        // Always a number, with the exact text, whatever an f64 could carry.
        let q: Quantity = serde_json::from_str("\"123456789012.123456789\"").expect("json");
        assert_eq!(
            serde_json::to_string(&q).expect("json"),
            "123456789012.123456789"
        );
        let q: Quantity = serde_json::from_str("999999999999999.999999999").expect("json");
        assert_eq!(q.to_string(), "999999999999999.999999999");
        assert_eq!(
            serde_json::to_string(&q).expect("json"),
            "999999999999999.999999999"
        );
        assert!(serde_json::from_str::<Quantity>("0.1000000000000000055511151231257827").is_err());
        assert!(serde_json::from_str::<Quantity>("0.0000000001").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<Quantity>("null").is_err());
        let q: Quantity = serde_json::from_str("1e3").expect("json");
        assert_eq!(q, Quantity::from_units(1000));
        let q: Quantity = serde_json::from_str("1000000000000000").expect("json");
        assert_eq!(q.validate_event(), Ok(MAX_EVENT_QUANTITY));
        let q: Quantity = serde_json::from_str("1000000000000001").expect("json");
        assert_eq!(q.validate_event(), Err(QuantityError::Overflow));
        // Through a serde_json::Value too (as far as the Value kept it).
        let q: Quantity = serde_json::from_value(serde_json::json!(2.5)).expect("json");
        assert_eq!(q.to_string(), "2.5");
    }

    #[test]
    fn number_literals_are_read_exactly() {
        for (text, exact) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.000000001", "0.000000001"),
            ("1.5E-3", "0.0015"),
            ("15e-4", "0.0015"),
            ("2.50e+2", "250"),
            ("0.00000000100", "0.000000001"),
            ("123e-9", "0.000000123"),
            ("0e999999999999", "0"),
        ] {
            let q = Quantity::from_json_number(text).expect(text);
            assert_eq!(q.to_string(), exact, "{text}");
        }
        for (text, error) in [
            ("1e-10", QuantityError::TooPrecise),
            ("1e99999999999", QuantityError::Overflow),
            ("1e-99999999999", QuantityError::TooPrecise),
            ("1e40", QuantityError::Overflow),
            ("-0.5", QuantityError::Negative),
            ("1.", QuantityError::NotANumber),
            (".5", QuantityError::NotANumber),
            ("1e", QuantityError::NotANumber),
            ("1e+-2", QuantityError::NotANumber),
            ("0x10", QuantityError::NotANumber),
        ] {
            assert_eq!(Quantity::from_json_number(text), Err(error), "{text}");
        }
    }

    proptest::proptest! {
        /// Any quantity an event may carry reads back exactly from the number literals that
        /// write it: plain, with trailing zeros, or with an exponent.
        #[test]
        fn literals_round_trip(units in 0u64..=1_000_000_000_000_000, nanos in 0u32..1_000_000_000,
                               digits in 0usize..=9, shift in 0i32..=20) {
            let nanos = nanos / 10u32.pow(u32::try_from(9 - digits).expect("small"))
                * 10u32.pow(u32::try_from(9 - digits).expect("small"));
            let q = Quantity::from_parts(u128::from(units), u128::from(nanos));
            let text = q.to_string();
            proptest::prop_assert_eq!(Quantity::from_json_number(&text), Ok(q));
            proptest::prop_assert_eq!(serde_json::to_string(&q).expect("json"), text.clone());
            let back: Quantity = serde_json::from_str(&serde_json::to_string(&q).expect("json"))
                .expect("json");
            proptest::prop_assert_eq!(back, q);
            let padded = if text.contains('.') { format!("{text}000") } else { format!("{text}.000") };
            proptest::prop_assert_eq!(Quantity::from_json_number(&padded), Ok(q));
            // The same value as digits * 10^-shift.
            let nanos_text = q.nanos().to_string();
            let scaled = format!("{nanos_text}e-9");
            proptest::prop_assert_eq!(Quantity::from_json_number(&scaled), Ok(q));
            let shifted = format!("{nanos_text}0{}e-{}", "0".repeat(usize::try_from(shift).expect("small")), 10 + shift);
            proptest::prop_assert_eq!(Quantity::from_json_number(&shifted), Ok(q));
        }
    }

    #[test]
    fn event_rules() {
        assert_eq!(
            Quantity::ZERO.validate_event(),
            Err(QuantityError::Negative)
        );
        assert!(Quantity::ONE.validate_event().is_ok());
    }
}
