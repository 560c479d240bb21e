//! Meters: stored definitions of what to measure from events, and their exact answers.
//!
//! A [`Meter`] says which events count ([`MeterFilter`]), which value is aggregated
//! ([`ValuePath`]: the quantity or a metadata path), how ([`Aggregation`]), and which
//! top-level metadata keys queries may group by and filter on (its dimensions). A meter
//! applies to every stored event, past and future: its first answer already counts every
//! event, also while a store is still preparing rollups for it.
//!
//! # How answers are computed
//!
//! A backend answers [`Store::query_meter`](crate::Store::query_meter) with one
//! [`MeterAggregator`], fed the events of the query's time range (with its tenant, resource
//! and feature filters pushed into the store's indexes) and, where the backend keeps them,
//! folded cells of whole time buckets ([`rollup`]). The aggregator applies the meter's
//! filter, reads each value exactly ([`Amount`]), and keeps per window and group:
//!
//! - `sum`, `count`, `avg`: an exact `i128` sum of nanos and a count (`avg` rounds half to
//!   even at nine fractional digits only at the end);
//! - `min`, `max`: the extreme so far;
//! - `latest`: the value with the greatest `(timestamp, id)`;
//! - `unique_count`: the exact set of distinct values (numbers by value, strings by text),
//!   counted per window on its own because distinct counts do not add up.
//!
//! A cell ([`rollup::MeterCell`]) keeps all of these for one bucket and series, so cells
//! merge into windows exactly, `unique_count` included (a cell keeps its distinct values).
//! The memory store recounts the events; SQLite and PostgreSQL fold them into cells in the
//! background (see their `meter_rollup` modules; [`rollup::FoldPoint`] is how far). The conformance suite checks every answer
//! against a brute-force recount, with the rollups of a store in play.
//!
//! # Quotas on meters
//!
//! A quota may limit a tenant's value of a `sum`, `count` or `unique_count` meter per period
//! ([`crate::QuotaSpec::on_meter`]). A check tallies the tenant's events of the period
//! ([`MeterTally`], via [`Store::tally_meter`](crate::Store::tally_meter)) and judges what
//! an event would add ([`MeterLimit::judge`]); an atomic consume does both and the write
//! under one lock per tenant and meter ([`Store::consume_metered`](crate::Store::consume_metered)).
//! For `unique_count`, an event whose value is already counted in the period adds nothing
//! and is always allowed.
//!
//! # Values
//!
//! A value read from metadata must be a JSON number, or a decimal string in plain notation,
//! exactly representable with nine fractional digits, between -10^15 and 10^15 inclusive.
//! A matching event without such a value is not counted and is reported in
//! [`MeterReport::skipped_events`].

mod aggregate;
mod amount;
pub(crate) mod decode;
mod limit;
mod query;
pub mod rollup;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

pub use aggregate::{MeterAggregator, SeriesId};
pub use amount::Amount;
pub use limit::{
    MeterAddition, MeterJudgement, MeterLimit, MeterTally, check_quota_meter, meter_in_use,
    quotable,
};
pub use query::{MeterGroup, MeterQuery, MeterReport, MeterRow, RowGroup};

use crate::event::{Event, Feature, Resource};

/// The most dimensions a meter may have.
pub const MAX_DIMENSIONS: usize = 8;
/// The longest meter key, in characters.
pub const MAX_KEY_CHARS: usize = 64;

/// A meter's key: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "String", into = "String")]
pub struct MeterKey(String);

impl MeterKey {
    /// Checks and wraps a key.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong.
    pub fn new(key: impl Into<String>) -> Result<Self, String> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_KEY_CHARS {
            return Err(format!("must be 1 to {MAX_KEY_CHARS} characters"));
        }
        if !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("may contain only a-z, 0-9, `_` and `-`".to_owned());
        }
        Ok(MeterKey(key))
    }

    /// The key.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MeterKey {
    type Error = String;

    fn try_from(key: String) -> Result<Self, String> {
        MeterKey::new(key)
    }
}

impl From<MeterKey> for String {
    fn from(key: MeterKey) -> String {
        key.0
    }
}

impl FromStr for MeterKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        MeterKey::new(s)
    }
}

/// How a meter combines the values of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The exact sum of the values.
    Sum,
    /// The number of matching events.
    Count,
    /// The number of distinct values (exact).
    UniqueCount,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The exact mean, rounded half to even to nine fractional digits.
    Avg,
    /// The value of the event with the greatest timestamp (ties: the greatest id).
    Latest,
}

impl Aggregation {
    /// Every aggregation, in the contract's order.
    pub const ALL: [Aggregation; 7] = [
        Aggregation::Sum,
        Aggregation::Count,
        Aggregation::UniqueCount,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::Avg,
        Aggregation::Latest,
    ];

    /// The name on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Sum => "sum",
            Aggregation::Count => "count",
            Aggregation::UniqueCount => "unique_count",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Avg => "avg",
            Aggregation::Latest => "latest",
        }
    }
}

impl FromStr for Aggregation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Aggregation::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown aggregation `{s}`; expected one of {}",
                    Aggregation::ALL.map(Aggregation::as_str).join(", ")
                )
            })
    }
}

/// Which value of an event a meter aggregates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum ValuePath {
    /// The event's `quantity`.
    #[default]
    Quantity,
    /// A path into the event's metadata: `metadata.usage.tokens` is `["usage", "tokens"]`.
    Metadata(Vec<String>),
}

impl ValuePath {
    /// The value at this path in `event`, or `None` when it is missing.
    #[must_use]
    pub fn read<'e>(&self, event: &'e Event) -> Option<PathValue<'e>> {
        match self {
            ValuePath::Quantity => Some(PathValue::Quantity(event.quantity.into())),
            ValuePath::Metadata(path) => {
                let mut keys = path.iter();
                let first = keys.next()?;
                let mut at = event.metadata.as_ref()?.get(first)?;
                for key in keys {
                    at = at.as_object()?.get(key)?;
                }
                Some(PathValue::Json(at))
            }
        }
    }
}

/// A value found at a [`ValuePath`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PathValue<'e> {
    /// The event's quantity.
    Quantity(Amount),
    /// A metadata value, as stored.
    Json(&'e Value),
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValuePath::Quantity => f.write_str("quantity"),
            ValuePath::Metadata(path) => write!(f, "metadata.{}", path.join(".")),
        }
    }
}

impl FromStr for ValuePath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "quantity" {
            return Ok(ValuePath::Quantity);
        }
        let Some(path) = s.strip_prefix("metadata.") else {
            return Err("must be `quantity` or `metadata.<key>[.<key>...]`".to_owned());
        };
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        if keys.iter().any(String::is_empty) {
            return Err("a metadata path may not have an empty key".to_owned());
        }
        Ok(ValuePath::Metadata(keys))
    }
}

impl Serialize for ValuePath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Which events a meter counts; every condition must hold. An empty list means any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeterFilter {
    /// Any of these resources.
    pub resource: Vec<Resource>,
    /// Any of these features.
    pub feature: Vec<Feature>,
    /// Top-level metadata key -> any of these JSON scalars (`null` matches a missing key).
    pub metadata: BTreeMap<String, Vec<Value>>,
}

impl MeterFilter {
    /// Whether `event` passes every condition.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        (self.resource.is_empty() || self.resource.contains(&event.resource))
            && (self.feature.is_empty() || self.feature.contains(&event.feature))
            && self.metadata.iter().all(|(key, allowed)| {
                let found = event.metadata.as_ref().and_then(|m| m.get(key));
                allowed.iter().any(|want| match (want, found) {
                    (Value::Null, None | Some(Value::Null)) => true,
                    (_, Some(have)) => json_scalar_eq(want, have),
                    (_, None) => false,
                })
            })
    }

    fn is_empty(&self) -> bool {
        self.resource.is_empty() && self.feature.is_empty() && self.metadata.is_empty()
    }
}

/// Whether two JSON scalars are equal as JSON values: numbers by value, strings by text,
/// and never a string and a number (`"1"` is not `1`).
fn json_scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            match (Amount::from_metadata(a), Amount::from_metadata(b)) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        _ => a == b,
    }
}

impl Serialize for MeterFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.resource.is_empty() {
            map.serialize_entry("resource", &self.resource)?;
        }
        if !self.feature.is_empty() {
            map.serialize_entry("feature", &self.feature)?;
        }
        if !self.metadata.is_empty() {
            map.serialize_entry("metadata", &self.metadata)?;
        }
        map.end()
    }
}

/// What a meter measures: everything of a definition but its key.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    /// A name for people; defaults to none.
    pub name: Option<String>,
    /// How values are combined.
    pub aggregation: Aggregation,
    /// Which value is aggregated (ignored by `count`).
    pub value: ValuePath,
    /// Which events count.
    pub filter: MeterFilter,
    /// Top-level metadata keys that queries may group by and filter on (at most 8).
    pub dimensions: Vec<String>,
}

impl MeterSpec {
    /// A meter of `aggregation` over the quantity of every event, without dimensions.
    #[must_use]
    pub fn new(aggregation: Aggregation) -> Self {
        MeterSpec {
            name: None,
            aggregation,
            value: ValuePath::Quantity,
            filter: MeterFilter::default(),
            dimensions: Vec::new(),
        }
    }

    /// Sets the name.
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the value path.
    #[must_use]
    pub fn value(mut self, value: ValuePath) -> Self {
        self.value = value;
        self
    }

    /// Sets the filter.
    #[must_use]
    pub fn filter(mut self, filter: MeterFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Sets the dimensions.
    #[must_use]
    pub fn dimensions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.dimensions = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the rules a decoded body is held to (see [`MeterSpec::from_json`]), for specs
    /// built in code.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] listing each broken rule with its field path.
    pub fn validate(&self) -> crate::Result<()> {
        let mut errors = crate::ValidationErrors::new();
        decode::check(self, &mut errors);
        errors.into_result(())
    }

    fn write_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        if let Some(name) = &self.name {
            map.serialize_entry("name", name)?;
        }
        map.serialize_entry("aggregation", &self.aggregation)?;
        map.serialize_entry("value", &self.value)?;
        if !self.filter.is_empty() {
            map.serialize_entry("filter", &self.filter)?;
        }
        map.serialize_entry("dimensions", &self.dimensions)
    }
}

impl Serialize for MeterSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        self.write_fields(&mut map)?;
        map.end()
    }
}

/// A stored meter.
#[derive(Debug, Clone, PartialEq)]
pub struct Meter {
    /// Its key.
    pub key: MeterKey,
    /// What it measures.
    pub spec: MeterSpec,
    /// When it was first defined.
    pub created_at: DateTime<Utc>,
    /// When it was last defined.
    pub updated_at: DateTime<Utc>,
}

impl Serialize for Meter {
    /// One flat object: `key`, the spec's fields, `created_at`, `updated_at`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("key", &self.key)?;
        self.spec.write_fields(&mut map)?;
        map.serialize_entry("created_at", &crate::time::format_rfc3339(self.created_at))?;
        map.serialize_entry("updated_at", &crate::time::format_rfc3339(self.updated_at))?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_contract() {
        assert!(MeterKey::new("llm_tokens-2").is_ok());
        assert!(MeterKey::new("a".repeat(64)).is_ok());
        for bad in ["", "Tokens", "a b", "a.b", "é"] {
            assert!(MeterKey::new(bad).is_err(), "{bad:?}");
        }
        assert!(MeterKey::new("a".repeat(65)).is_err());
    }

    #[test]
    fn value_paths_round_trip() {
        for text in ["quantity", "metadata.user_id", "metadata.usage.tokens"] {
            let path: ValuePath = text.parse().expect("valid");
            assert_eq!(path.to_string(), text);
        }
        for bad in [
            "metadata",
            "metadata.",
            "metadata.a..b",
            "meta.x",
            "quantity.x",
        ] {
            assert!(bad.parse::<ValuePath>().is_err(), "{bad:?}");
        }
    }
}
