//! [`MeterAggregator`]: one pass over events gives a meter's exact answer.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Aggregation, Amount, Meter, MeterGroup, MeterQuery, MeterReport, MeterRow, PathValue};
use crate::event::Event;
use crate::window::Window;

/// A group's value: its text, or `Null` for a missing or null dimension (sorted last).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum GroupValue {
    Text(String),
    Null,
}

/// A distinct value for `unique_count`: numbers by value, strings by text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Distinct {
    Number(Amount),
    /// A number outside the exact range, by its text.
    OtherNumber(String),
    Text(String),
    Bool(bool),
    /// An object or array, by its JSON text.
    Json(String),
}

#[derive(Debug, Default)]
struct Cell {
    window_end: Option<DateTime<Utc>>,
    count: u64,
    sum: i128,
    min: Option<Amount>,
    max: Option<Amount>,
    latest: Option<(DateTime<Utc>, String, Amount)>,
    distinct: HashSet<Distinct>,
}

/// Computes a meter's answer from the events of a query's range, in one pass, exactly.
///
/// A store reads the events [`MeterQuery::event_filter`] selects, in any order, and
/// [`push`](MeterAggregator::push)es each; the aggregator applies the rest of the meter's
/// and the query's filters itself, so a store that passes more events than needed is still
/// right. [`finish`](MeterAggregator::finish) sorts the rows as the contract says.
#[derive(Debug)]
pub struct MeterAggregator {
    meter: Meter,
    query: MeterQuery,
    cells: BTreeMap<(DateTime<Utc>, Vec<GroupValue>), Cell>,
    skipped: u64,
    last_window: Option<Window>,
}

impl MeterAggregator {
    /// An aggregator for `meter` answering `query`.
    #[must_use]
    pub fn new(meter: &Meter, query: &MeterQuery) -> Self {
        MeterAggregator {
            meter: meter.clone(),
            query: query.clone(),
            cells: BTreeMap::new(),
            skipped: 0,
            last_window: None,
        }
    }

    /// Counts `event` if it matches the meter and the query.
    pub fn push(&mut self, event: &Event) {
        let q = &self.query;
        if !event.counts()
            || event.timestamp < q.start
            || event.timestamp >= q.end
            || q.tenant_id.as_ref().is_some_and(|t| *t != event.tenant_id)
            || q.resource.as_ref().is_some_and(|r| *r != event.resource)
            || q.feature.as_ref().is_some_and(|f| *f != event.feature)
            || !self.meter.spec.filter.matches(event)
            || !q.dimension_filters.iter().all(|(key, wanted)| {
                dimension_text(event, key).is_some_and(|have| wanted.contains(&have))
            })
        {
            return;
        }
        let spec = &self.meter.spec;
        let (amount, distinct) = match spec.aggregation {
            Aggregation::Count => (None, None),
            Aggregation::UniqueCount => match spec.value.read(event).and_then(distinct_of) {
                Some(d) => (None, Some(d)),
                None => {
                    self.skipped += 1;
                    return;
                }
            },
            _ => match spec.value.read(event).and_then(amount_of) {
                Some(a) => (Some(a), None),
                None => {
                    self.skipped += 1;
                    return;
                }
            },
        };
        let window = match q.window {
            None => Window {
                start: q.start,
                end: q.end,
            },
            Some(window_type) => match self.last_window {
                Some(w) if w.contains(event.timestamp) => w,
                _ => {
                    let w = window_type.window(event.timestamp, q.tz);
                    self.last_window = Some(w);
                    w
                }
            },
        };
        let group = q
            .group_by
            .iter()
            .map(|g| {
                let text = match g {
                    MeterGroup::TenantId => Some(event.tenant_id.as_str().to_owned()),
                    MeterGroup::Resource => Some(event.resource.as_str().to_owned()),
                    MeterGroup::Feature => Some(event.feature.as_str().to_owned()),
                    MeterGroup::Dimension(key) => dimension_text(event, key),
                };
                text.map_or(GroupValue::Null, GroupValue::Text)
            })
            .collect();
        let cell = self.cells.entry((window.start, group)).or_default();
        cell.window_end = Some(window.end);
        cell.count += 1;
        if let Some(d) = distinct {
            cell.distinct.insert(d);
        }
        if let Some(a) = amount {
            cell.sum += a.nanos();
            cell.min = Some(cell.min.map_or(a, |m| m.min(a)));
            cell.max = Some(cell.max.map_or(a, |m| m.max(a)));
            let newer = cell.latest.as_ref().is_none_or(|(ts, id, _)| {
                (event.timestamp, event.id.as_str()) > (*ts, id.as_str())
            });
            if newer {
                cell.latest = Some((event.timestamp, event.id.as_str().to_owned(), a));
            }
        }
    }

    /// The answer: rows by window, then by each group key as text (`null` last).
    #[must_use]
    pub fn finish(self) -> MeterReport {
        let aggregation = self.meter.spec.aggregation;
        let names: Vec<String> = self
            .query
            .group_by
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect();
        let data = self
            .cells
            .into_iter()
            .map(|((window_start, group), cell)| {
                let value = match aggregation {
                    Aggregation::Sum => Amount::from_nanos(cell.sum),
                    Aggregation::Count => Amount::from_units(saturating_i64(cell.count)),
                    Aggregation::UniqueCount => {
                        Amount::from_units(saturating_i64(cell.distinct.len() as u64))
                    }
                    Aggregation::Min => cell.min.unwrap_or_default(),
                    Aggregation::Max => cell.max.unwrap_or_default(),
                    Aggregation::Avg => Amount::mean(cell.sum, cell.count).unwrap_or_default(),
                    Aggregation::Latest => cell.latest.map(|(_, _, a)| a).unwrap_or_default(),
                };
                MeterRow {
                    window_start,
                    window_end: cell.window_end.unwrap_or(window_start),
                    group: names
                        .iter()
                        .cloned()
                        .zip(group.into_iter().map(|g| match g {
                            GroupValue::Text(t) => Some(t),
                            GroupValue::Null => None,
                        }))
                        .collect(),
                    value,
                    event_count: cell.count,
                }
            })
            .collect();
        MeterReport {
            meter: self.meter.key,
            aggregation,
            window_type: self.query.window,
            tz: self.query.tz,
            data,
            skipped_events: self.skipped,
        }
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A dimension's value as text: a string as it is, a number or boolean as its JSON text,
/// an object or array as compact JSON; `None` when missing or null.
#[must_use]
pub(crate) fn dimension_text(event: &Event, key: &str) -> Option<String> {
    match event.metadata.as_ref()?.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

pub(super) fn amount_of(value: PathValue<'_>) -> Option<Amount> {
    match value {
        PathValue::Quantity(a) => Some(a),
        PathValue::Json(v) => Amount::from_metadata(v),
    }
}

pub(super) fn distinct_of(value: PathValue<'_>) -> Option<Distinct> {
    Some(match value {
        PathValue::Quantity(a) => Distinct::Number(a),
        PathValue::Json(Value::Null) => return None,
        PathValue::Json(v @ Value::Number(n)) => match Amount::from_metadata(v) {
            Some(a) => Distinct::Number(a),
            None => Distinct::OtherNumber(n.to_string()),
        },
        PathValue::Json(Value::String(s)) => Distinct::Text(s.clone()),
        PathValue::Json(Value::Bool(b)) => Distinct::Bool(*b),
        PathValue::Json(other) => Distinct::Json(other.to_string()),
    })
}
