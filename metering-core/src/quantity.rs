//! [`Quantity`]: an exact, non-negative decimal with nine fractional digits.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of nano-units in one unit: quantities carry nine fractional digits.
pub const NANOS_PER_UNIT: u128 = 1_000_000_000;

/// The largest quantity one event may carry: 10^15 units.
pub const MAX_EVENT_QUANTITY: Quantity = Quantity(1_000_000_000_000_000 * NANOS_PER_UNIT);

/// Significant digits an `f64` carries without loss; a JSON number with more is refused
/// because the parser may already have rounded it (send a decimal string instead).
const F64_EXACT_DIGITS: usize = 15;

/// An exact, non-negative decimal quantity with at most nine fractional digits.
///
/// Stored as a count of nano-units (10^-9) in a `u128`, so sums never drift: a million
/// events of `0.1` add up to exactly `100000`. Event quantities are further bounded by
/// [`Quantity::validate_event`] (> 0 and at most 10^15).
///
/// # Serialization
///
/// Whole quantities serialize as JSON integers (`1`, not `1.0`). Fractional quantities
/// serialize as JSON numbers when an `f64` carries them exactly (up to 15 significant
/// digits), and as decimal strings (`"123456789012.123456789"`) otherwise, so nothing
/// is ever rounded. Deserialization accepts integers, numbers and decimal strings.
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
    /// A JSON number with more significant digits than a 64-bit float carries exactly.
    #[error("has more than 15 significant digits; send it as a decimal string")]
    Inexact,
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

    /// Parses the shortest decimal text of a float, refusing values an `f64` cannot
    /// have carried exactly.
    fn from_f64(value: f64) -> Result<Self, QuantityError> {
        if !value.is_finite() {
            return Err(QuantityError::NotANumber);
        }
        if value < 0.0 {
            return Err(QuantityError::Negative);
        }
        // Rust prints the shortest text that reads back as the same f64, never in exponent form.
        let text = value.to_string();
        let significant = text
            .trim_start_matches(['0', '.'])
            .chars()
            .filter(char::is_ascii_digit)
            .count();
        let trailing_zeros_of_integer = if text.contains('.') {
            0
        } else {
            text.len() - text.trim_end_matches('0').len()
        };
        if significant.saturating_sub(trailing_zeros_of_integer) > F64_EXACT_DIGITS {
            return Err(QuantityError::Inexact);
        }
        text.parse()
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
            write!(f, "{units}")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{units}.{}", digits.trim_end_matches('0'))
        }
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
            match u64::try_from(self.units()) {
                Ok(u) => serializer.serialize_u64(u),
                Err(_) => serializer.serialize_u128(self.units()),
            }
        } else {
            let text = self.to_string();
            match text.parse::<f64>() {
                // Only when the float reads back as the very same decimal.
                Ok(f) if f.to_string() == text => serializer.serialize_f64(f),
                _ => serializer.serialize_str(&text),
            }
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;

        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative decimal number or decimal string")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                u128::from(v)
                    .checked_mul(NANOS_PER_UNIT)
                    .map(Quantity)
                    .ok_or_else(|| E::custom(QuantityError::Overflow))
            }

            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Quantity, E> {
                v.checked_mul(NANOS_PER_UNIT)
                    .map(Quantity)
                    .ok_or_else(|| E::custom(QuantityError::Overflow))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(QuantityError::Negative)),
                }
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Quantity::from_f64(v).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                v.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(QuantityVisitor)
    }
}

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
        let q: Quantity = serde_json::from_str("\"123456789012.123456789\"").expect("json");
        assert_eq!(
            serde_json::to_string(&q).expect("json"),
            "\"123456789012.123456789\""
        );
        assert!(serde_json::from_str::<Quantity>("123456789012.123456789").is_err());
        assert!(serde_json::from_str::<Quantity>("0.0000000001").is_err());
        assert!(serde_json::from_str::<Quantity>("-1").is_err());
        let q: Quantity = serde_json::from_str("1e3").expect("json");
        assert_eq!(q, Quantity::from_units(1000));
        let q: Quantity = serde_json::from_str("1000000000000000").expect("json");
        assert_eq!(q.validate_event(), Ok(MAX_EVENT_QUANTITY));
        let q: Quantity = serde_json::from_str("1000000000000001").expect("json");
        assert_eq!(q.validate_event(), Err(QuantityError::Overflow));
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
