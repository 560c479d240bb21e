//! [`MeterAggregator`]: one pass over events gives a meter's exact answer.

use rustc_hash::FxHashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rollup::{Contribution, MeterCell, SeriesKey, contribution};
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

impl Distinct {
    /// The canonical text of the value: equal values, and only they, have equal keys.
    pub(super) fn key(&self) -> String {
        match self {
            Distinct::Number(a) => format!("n{}", a.nanos()),
            Distinct::OtherNumber(text) => format!("o{text}"),
            Distinct::Text(text) => format!("s{text}"),
            Distinct::Bool(b) => format!("b{b}"),
            Distinct::Json(text) => format!("j{text}"),
        }
    }
}

#[derive(Debug, Default)]
struct Cell {
    window_end: Option<DateTime<Utc>>,
    values: MeterCell,
    /// Distinct values counted by number only ([`MeterAggregator::push_distinct_total`]).
    distinct_total: u64,
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
    /// Slots by window start and group id, hashed with FxHash: answers can have tens of
    /// thousands of rows, and SipHash was a tenth of a query's time.
    cells: FxHashMap<(DateTime<Utc>, u32), Cell>,
    /// Group ids by group values; a group recurs in every window.
    group_ids: FxHashMap<Vec<GroupValue>, u32>,
    /// Group values by id.
    groups: Vec<Vec<GroupValue>>,
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
            cells: FxHashMap::default(),
            group_ids: FxHashMap::default(),
            groups: Vec::new(),
            skipped: 0,
            last_window: None,
        }
    }

    /// Counts `event` if it matches the meter and the query.
    pub fn push(&mut self, event: &Event) {
        let q = &self.query;
        if event.timestamp < q.start
            || event.timestamp >= q.end
            || q.tenant_id.as_ref().is_some_and(|t| *t != event.tenant_id)
            || q.resource.as_ref().is_some_and(|r| *r != event.resource)
            || q.feature.as_ref().is_some_and(|f| *f != event.feature)
            || !q.dimension_filters.iter().all(|(key, wanted)| {
                dimension_text(event, key).is_some_and(|have| wanted.contains(&have))
            })
        {
            return;
        }
        let Some(contribution) = contribution(&self.meter, event) else {
            return;
        };
        if matches!(contribution, Contribution::Skipped) {
            self.skipped += 1;
            return;
        }
        let window = window_of(q, &mut self.last_window, event.timestamp);
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
        let group = self.group_id(group);
        let cell = self.cells.entry((window.start, group)).or_default();
        cell.window_end = Some(window.end);
        cell.values.add(
            contribution,
            event.timestamp.timestamp_micros(),
            event.id.as_str(),
        );
    }

    /// Counts a folded cell of `series` whose bucket starts at `bucket_start`, if the series
    /// matches the query. The bucket must lie inside the query's range and inside one of its
    /// windows (as [`crate::rollup_plan::plan`] guarantees), and its events must be exactly
    /// those [`MeterFold`](super::rollup::MeterFold) counted for this meter.
    pub fn push_cell(&mut self, bucket_start: DateTime<Utc>, series: &SeriesKey, cell: &MeterCell) {
        // The slot's own `skipped` is never read (`slot` counts them once, in the report).
        if let Some(slot) = self.slot(bucket_start, series, cell) {
            slot.values.merge(cell);
        }
    }

    /// Counts a folded `unique_count` cell whose distinct values are `distinct` in number,
    /// without the values themselves (as [`push_cell`](Self::push_cell) otherwise).
    ///
    /// Only right when nothing else reaches the cell's window and group: its bucket is the
    /// whole window, the query groups by the tenant and every dimension (and by resource and
    /// feature unless the cell sums over them), and no event or other cell of that window
    /// and group is pushed.
    pub fn push_distinct_total(
        &mut self,
        bucket_start: DateTime<Utc>,
        series: &SeriesKey,
        cell: &MeterCell,
        distinct: u64,
    ) {
        if let Some(slot) = self.slot(bucket_start, series, cell) {
            slot.values.count += cell.count;
            slot.distinct_total += distinct;
        }
    }

    /// The window and group slot of a cell of `series` when it matches the query (its
    /// skipped events counted), else `None`.
    fn slot(
        &mut self,
        bucket_start: DateTime<Utc>,
        series: &SeriesKey,
        cell: &MeterCell,
    ) -> Option<&mut Cell> {
        let q = &self.query;
        let dimension = |key: &str| {
            self.meter
                .spec
                .dimensions
                .iter()
                .position(|d| d == key)
                .and_then(|i| series.dimensions.get(i).cloned().flatten())
        };
        if q.tenant_id
            .as_ref()
            .is_some_and(|t| t.as_str() != series.tenant_id)
            || q.resource
                .as_ref()
                .is_some_and(|r| r.as_str() != series.resource)
            || q.feature
                .as_ref()
                .is_some_and(|f| f.as_str() != series.feature)
            || !q
                .dimension_filters
                .iter()
                .all(|(key, wanted)| dimension(key).is_some_and(|have| wanted.contains(&have)))
        {
            return None;
        }
        self.skipped += cell.skipped;
        if cell.count == 0 {
            return None;
        }
        let group = q
            .group_by
            .iter()
            .map(|g| {
                let text = match g {
                    MeterGroup::TenantId => Some(series.tenant_id.clone()),
                    MeterGroup::Resource => Some(series.resource.clone()),
                    MeterGroup::Feature => Some(series.feature.clone()),
                    MeterGroup::Dimension(key) => dimension(key),
                };
                text.map_or(GroupValue::Null, GroupValue::Text)
            })
            .collect();
        let window = window_of(q, &mut self.last_window, bucket_start);
        let group = self.group_id(group);
        let slot = self.cells.entry((window.start, group)).or_default();
        slot.window_end = Some(window.end);
        Some(slot)
    }

    /// The id of `group`, given on its first sight.
    fn group_id(&mut self, group: Vec<GroupValue>) -> u32 {
        if let Some(&id) = self.group_ids.get(&group) {
            return id;
        }
        let id = u32::try_from(self.groups.len()).expect("fewer than 2^32 groups");
        self.groups.push(group.clone());
        self.group_ids.insert(group, id);
        id
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
        // Groups are ranked once (each group value as text, `null` last: `GroupValue`'s
        // order), so rows sort by window and rank, integers only.
        let mut order: Vec<u32> =
            (0..u32::try_from(self.groups.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by(|&a, &b| self.groups[a as usize].cmp(&self.groups[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &id) in order.iter().enumerate() {
            rank[id as usize] = u32::try_from(r).unwrap_or(u32::MAX);
        }
        let mut slots: Vec<_> = self.cells.into_iter().collect();
        slots.sort_unstable_by_key(|&((window_start, group), _)| {
            (window_start, rank[group as usize])
        });
        let groups = self.groups;
        let data: Vec<MeterRow> = slots
            .into_iter()
            .map(|((window_start, group), slot)| {
                let cell = slot.values;
                let value = match aggregation {
                    Aggregation::Sum => Amount::from_nanos(cell.sum),
                    Aggregation::Count => Amount::from_units(saturating_i64(cell.count)),
                    Aggregation::UniqueCount => Amount::from_units(saturating_i64(
                        cell.distinct.len() as u64 + slot.distinct_total,
                    )),
                    Aggregation::Min => cell.min.unwrap_or_default(),
                    Aggregation::Max => cell.max.unwrap_or_default(),
                    Aggregation::Avg => Amount::mean(cell.sum, cell.count).unwrap_or_default(),
                    Aggregation::Latest => cell.latest.map(|l| l.value).unwrap_or_default(),
                };
                MeterRow {
                    window_start,
                    window_end: slot.window_end.unwrap_or(window_start),
                    group: names
                        .iter()
                        .cloned()
                        .zip(groups[group as usize].iter().map(|g| match g {
                            GroupValue::Text(t) => Some(t.clone()),
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

/// The query's window holding `t` (the whole range without windows); `last` caches the
/// previous one, as events and cells mostly arrive in time order.
fn window_of(q: &MeterQuery, last: &mut Option<Window>, t: DateTime<Utc>) -> Window {
    match q.window {
        None => Window {
            start: q.start,
            end: q.end,
        },
        Some(window_type) => match *last {
            Some(w) if w.contains(t) => w,
            _ => {
                let w = window_type.window(t, q.tz);
                *last = Some(w);
                w
            }
        },
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
