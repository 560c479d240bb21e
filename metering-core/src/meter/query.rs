//! Meter queries and their answers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{Aggregation, Amount, Meter, MeterKey};
use crate::error::ValidationErrors;
use crate::event::{Feature, Resource, TenantId};
use crate::query::EventFilter;
use crate::window::WindowType;

/// One key a meter query may group by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MeterGroup {
    /// The event's tenant.
    TenantId,
    /// The event's resource.
    Resource,
    /// The event's feature.
    Feature,
    /// One of the meter's dimensions (a top-level metadata key).
    Dimension(String),
}

impl MeterGroup {
    /// The name on the wire.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            MeterGroup::TenantId => "tenant_id",
            MeterGroup::Resource => "resource",
            MeterGroup::Feature => "feature",
            MeterGroup::Dimension(key) => key,
        }
    }

    /// Parses a comma-separated `group_by` list; an empty text is no grouping.
    #[must_use]
    pub fn parse_list(text: &str) -> Vec<MeterGroup> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse()
                    .unwrap_or_else(|never: std::convert::Infallible| match never {})
            })
            .collect()
    }
}

impl FromStr for MeterGroup {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tenant_id" => MeterGroup::TenantId,
            "resource" => MeterGroup::Resource,
            "feature" => MeterGroup::Feature,
            other => MeterGroup::Dimension(other.to_owned()),
        })
    }
}

impl fmt::Display for MeterGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A meter query: the meter's value per window and group over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeterQuery {
    /// First instant counted.
    pub start: DateTime<Utc>,
    /// First instant not counted.
    pub end: DateTime<Utc>,
    /// Window length; `None` is one window from `start` to `end`.
    pub window: Option<WindowType>,
    /// Zone of the window boundaries.
    pub tz: Tz,
    /// What rows are split by, in order.
    pub group_by: Vec<MeterGroup>,
    /// Only this tenant.
    pub tenant_id: Option<TenantId>,
    /// Only this resource.
    pub resource: Option<Resource>,
    /// Only this feature.
    pub feature: Option<Feature>,
    /// Dimension -> any of these values (as text).
    pub dimension_filters: BTreeMap<String, Vec<String>>,
}

impl MeterQuery {
    /// One window over `[start, end)` in UTC, no grouping, no filters.
    #[must_use]
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        MeterQuery {
            start,
            end,
            window: None,
            tz: Tz::UTC,
            group_by: Vec::new(),
            tenant_id: None,
            resource: None,
            feature: None,
            dimension_filters: BTreeMap::new(),
        }
    }

    /// Splits the range into calendar windows.
    #[must_use]
    pub fn window(mut self, window: WindowType) -> Self {
        self.window = Some(window);
        self
    }

    /// Sets the zone of the window boundaries.
    #[must_use]
    pub fn tz(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// Sets what rows are split by.
    #[must_use]
    pub fn group_by(mut self, groups: impl IntoIterator<Item = MeterGroup>) -> Self {
        self.group_by = groups.into_iter().collect();
        self
    }

    /// Restricts to a tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Keeps only events whose `dimension` has one of `values` (compared as text).
    #[must_use]
    pub fn filter(mut self, dimension: impl Into<String>, values: Vec<String>) -> Self {
        self.dimension_filters.insert(dimension.into(), values);
        self
    }

    /// The events a store must read for this query (time range and single-value filters);
    /// everything else is applied by the [`MeterAggregator`](super::MeterAggregator).
    #[must_use]
    pub fn event_filter(&self, meter: &Meter) -> EventFilter {
        let mut filter = EventFilter::all().between(Some(self.start), Some(self.end));
        filter.tenant_id.clone_from(&self.tenant_id);
        filter.resource = self
            .resource
            .clone()
            .or_else(|| single(&meter.spec.filter.resource));
        filter.feature = self
            .feature
            .clone()
            .or_else(|| single(&meter.spec.filter.feature));
        filter
    }

    /// Checks the query against `meter`: a non-empty range, group-by keys and dimension
    /// filters among the meter's dimensions, no key grouped twice.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Validation`] naming each bad parameter.
    pub fn check(&self, meter: &Meter) -> crate::Result<()> {
        let mut errors = ValidationErrors::new();
        if self.end <= self.start {
            errors.push(None, "end_date", "must be after start_date");
        }
        let dimensions = &meter.spec.dimensions;
        let known = || {
            if dimensions.is_empty() {
                "this meter has no dimensions".to_owned()
            } else {
                format!("the meter's dimensions are {}", dimensions.join(", "))
            }
        };
        for (i, group) in self.group_by.iter().enumerate() {
            if self.group_by[..i].contains(group) {
                errors.push(None, "group_by", format!("`{group}` is listed twice"));
            } else if let MeterGroup::Dimension(key) = group {
                if !dimensions.contains(key) {
                    errors.push(
                        None,
                        "group_by",
                        format!(
                            "`{key}` is not tenant_id, resource, feature or a dimension of \
                             this meter; {}",
                            known()
                        ),
                    );
                }
            }
        }
        for (key, values) in &self.dimension_filters {
            let field = format!("filter.{key}");
            if !dimensions.contains(key) {
                errors.push(
                    None,
                    field,
                    format!("not a dimension of this meter; {}", known()),
                );
            } else if values.is_empty() {
                errors.push(None, field, "needs a value");
            }
        }
        errors.into_result(())
    }
}

fn single<T: Clone>(list: &[T]) -> Option<T> {
    match list {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// One row of a meter's answer: a window and a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRow {
    /// First instant of the window.
    pub window_start: DateTime<Utc>,
    /// First instant of the next window.
    pub window_end: DateTime<Utc>,
    /// The grouped keys in requested order, each with its value (`None`: missing or null);
    /// shared by the rows of one group.
    pub group: RowGroup,
    /// The meter's value for this window and group.
    pub value: Amount,
    /// Events counted in it.
    pub event_count: u64,
}

impl Serialize for MeterRow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RowWithTimes {
            row: self,
            window_start: &crate::time::format_rfc3339(self.window_start),
            window_end: &crate::time::format_rfc3339(self.window_end),
        }
        .serialize(serializer)
    }
}

/// A row with its window's bounds already formatted: the rows of an answer share few
/// windows, so [`Rows`] formats each once.
struct RowWithTimes<'a> {
    row: &'a MeterRow,
    window_start: &'a str,
    window_end: &'a str,
}

impl Serialize for RowWithTimes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Group<'a>(&'a [(String, Option<String>)]);
        impl Serialize for Group<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("window_start", self.window_start)?;
        map.serialize_entry("window_end", self.window_end)?;
        map.serialize_entry("group", &Group(&self.row.group))?;
        map.serialize_entry("value", &self.row.value)?;
        map.serialize_entry("event_count", &self.row.event_count)?;
        map.end()
    }
}

/// An answer's rows, each window's bounds formatted once.
struct Rows<'a>(&'a [MeterRow]);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        let mut window: Option<(DateTime<Utc>, DateTime<Utc>, String, String)> = None;
        for row in self.0 {
            let (_, _, start, end) = match &window {
                Some((s, e, _, _)) if *s == row.window_start && *e == row.window_end => {
                    window.as_ref().expect("matched")
                }
                _ => window.insert((
                    row.window_start,
                    row.window_end,
                    crate::time::format_rfc3339(row.window_start),
                    crate::time::format_rfc3339(row.window_end),
                )),
            };
            seq.serialize_element(&RowWithTimes {
                row,
                window_start: start,
                window_end: end,
            })?;
        }
        seq.end()
    }
}

/// The grouped keys of a [`MeterRow`] in requested order, each with its value (`None`:
/// missing or null).
pub type RowGroup = Arc<[(String, Option<String>)]>;

/// A meter's answer to a [`MeterQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterReport {
    /// The meter's key.
    pub meter: MeterKey,
    /// Its aggregation.
    pub aggregation: Aggregation,
    /// The window length, `None` for one window over the whole range.
    pub window_type: Option<WindowType>,
    /// The zone of the window boundaries.
    pub tz: Tz,
    /// Rows ordered by window, then each group key as text, `null` last.
    pub data: Vec<MeterRow>,
    /// Matching events without a usable value (missing, null, not numeric, out of range).
    pub skipped_events: u64,
}

impl Serialize for MeterReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("meter", &self.meter)?;
        map.serialize_entry("aggregation", &self.aggregation)?;
        map.serialize_entry("window_type", &self.window_type)?;
        map.serialize_entry("tz", self.tz.name())?;
        map.serialize_entry("data", &Rows(&self.data))?;
        map.serialize_entry("skipped_events", &self.skipped_events)?;
        map.end()
    }
}
