//! [`MeterAggregator`]: one pass over events gives a meter's exact answer.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::rollup::{Contribution, MeterCell, SeriesKey, contribution};
use super::{
    Aggregation, Amount, Meter, MeterGroup, MeterQuery, MeterReport, MeterRow, PathValue, RowGroup,
};
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

/// One row of the answer while it is being summed: its window and group, and what its
/// events add up to.
#[derive(Debug)]
struct Slot {
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    group: u32,
    values: MeterCell,
    /// Distinct values counted by number only ([`MeterAggregator::push_distinct_total`]).
    distinct_total: u64,
}

/// A series of stored cells, interned by [`MeterAggregator::cell_series`]: its parsed key,
/// and its group id when it matches the query's filters.
#[derive(Debug)]
struct CellSeries {
    key: SeriesKey,
    group: Option<u32>,
}

/// The id of a series of stored cells, given by [`MeterAggregator::cell_series`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesId(u32);

/// Computes a meter's answer from the events of a query's range, in one pass, exactly.
///
/// A store reads the events [`MeterQuery::event_filter`] selects, in any order, and
/// [`push`](MeterAggregator::push)es each; the aggregator applies the rest of the meter's
/// and the query's filters itself, so a store that passes more events than needed is still
/// right. [`finish`](MeterAggregator::finish) sorts the rows as the contract says.
///
/// A store answering from folded cells pushes them with [`push_cell`](Self::push_cell), or,
/// when it reads many cells of few series, interns each series' stored texts once with
/// [`cell_series`](Self::cell_series) and pushes by id with
/// [`push_series_cell`](Self::push_series_cell).
#[derive(Debug)]
pub struct MeterAggregator {
    meter: Meter,
    query: MeterQuery,
    /// Slot positions by window start and group id, hashed with FxHash: answers can have
    /// tens of thousands of rows, and SipHash was a tenth of a query's time.
    index: FxHashMap<(DateTime<Utc>, u32), u32>,
    /// The slots, in the order they were first seen (moved only when sorted, by position).
    slots: Vec<Slot>,
    /// Group ids by group values; a group recurs in every window.
    group_ids: FxHashMap<Vec<GroupValue>, u32>,
    /// Group values by id.
    groups: Vec<Vec<GroupValue>>,
    /// Interned cell series by their stored texts (see [`Self::series_text`]).
    series_ids: FxHashMap<String, u32>,
    series: Vec<CellSeries>,
    /// Scratch for a series' stored texts.
    series_text: String,
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
            index: FxHashMap::default(),
            slots: Vec::new(),
            group_ids: FxHashMap::default(),
            groups: Vec::new(),
            series_ids: FxHashMap::default(),
            series: Vec::new(),
            series_text: String::new(),
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
        let slot = self.slot(event.timestamp, group);
        slot.values.add(
            contribution,
            event.timestamp.timestamp_micros(),
            event.id.as_str(),
        );
    }

    /// Counts a folded cell of `series` whose bucket starts at `bucket_start`, if the series
    /// matches the query. The bucket must lie inside the query's range and inside one of its
    /// windows (as [`crate::rollup_plan::plan`] guarantees), and its events must be exactly
    /// those [`MeterFold`](super::rollup::MeterFold) counted for this meter.
    ///
    /// The simple form for a backend that keeps few cells; the SQL stores intern each
    /// series once ([`MeterAggregator::cell_series`]) and push by id
    /// ([`MeterAggregator::push_series_cell`]), which answers the same.
    pub fn push_cell(&mut self, bucket_start: DateTime<Utc>, series: &SeriesKey, cell: &MeterCell) {
        if let Some(group) = self.group_of_series(series) {
            self.push_group_cell(bucket_start, group, cell.clone());
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
        if let Some(group) = self.group_of_series(series) {
            self.push_group_distinct_total(bucket_start, group, cell, distinct);
        }
    }

    /// The id of the series whose cells are stored with these texts (`dimensions` as
    /// [`SeriesKey::dimensions_json`] writes them), parsed and matched against the query
    /// once however many of its cells are read; `None` when `dimensions` is not such a text.
    pub fn cell_series(
        &mut self,
        tenant_id: &str,
        resource: &str,
        feature: &str,
        dimensions: &str,
    ) -> Option<SeriesId> {
        let text = &mut self.series_text;
        text.clear();
        for part in [tenant_id, resource, feature] {
            text.push_str(part);
            text.push('\0');
        }
        text.push_str(dimensions);
        if let Some(&id) = self.series_ids.get(text.as_str()) {
            return Some(SeriesId(id));
        }
        let key = SeriesKey {
            tenant_id: tenant_id.to_owned(),
            resource: resource.to_owned(),
            feature: feature.to_owned(),
            dimensions: SeriesKey::parse_dimensions(dimensions)?,
        };
        let group = self.group_of_series(&key);
        let id = u32::try_from(self.series.len()).expect("fewer than 2^32 series");
        self.series.push(CellSeries { key, group });
        self.series_ids.insert(self.series_text.clone(), id);
        Some(SeriesId(id))
    }

    /// The series `id` stands for.
    #[must_use]
    pub fn series(&self, id: SeriesId) -> &SeriesKey {
        &self.series[id.0 as usize].key
    }

    /// [`push_cell`](Self::push_cell) for a cell of the interned series `id`.
    pub fn push_series_cell(&mut self, bucket_start: DateTime<Utc>, id: SeriesId, cell: MeterCell) {
        if let Some(group) = self.series[id.0 as usize].group {
            self.push_group_cell(bucket_start, group, cell);
        }
    }

    /// [`push_distinct_total`](Self::push_distinct_total) for a cell of the interned series
    /// `id`.
    pub fn push_series_distinct_total(
        &mut self,
        bucket_start: DateTime<Utc>,
        id: SeriesId,
        cell: &MeterCell,
        distinct: u64,
    ) {
        if let Some(group) = self.series[id.0 as usize].group {
            self.push_group_distinct_total(bucket_start, group, cell, distinct);
        }
    }

    fn push_group_cell(&mut self, bucket_start: DateTime<Utc>, group: u32, cell: MeterCell) {
        // The slot's own `skipped` is never read (`skipped` counts them once, in the report).
        self.skipped += cell.skipped;
        if cell.count > 0 {
            self.slot(bucket_start, group).values.merge_owned(cell);
        }
    }

    fn push_group_distinct_total(
        &mut self,
        bucket_start: DateTime<Utc>,
        group: u32,
        cell: &MeterCell,
        distinct: u64,
    ) {
        self.skipped += cell.skipped;
        if cell.count > 0 {
            let slot = self.slot(bucket_start, group);
            slot.values.count += cell.count;
            slot.distinct_total += distinct;
        }
    }

    /// The group id of `series`' cells when the series matches the query, else `None`.
    fn group_of_series(&mut self, series: &SeriesKey) -> Option<u32> {
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
        Some(self.group_id(group))
    }

    /// The slot of the window holding `at` and of `group`, made on first use.
    fn slot(&mut self, at: DateTime<Utc>, group: u32) -> &mut Slot {
        let window = window_of(&self.query, &mut self.last_window, at);
        let slots = &mut self.slots;
        let i = *self.index.entry((window.start, group)).or_insert_with(|| {
            slots.push(Slot {
                window_start: window.start,
                window_end: window.end,
                group,
                values: MeterCell::default(),
                distinct_total: 0,
            });
            u32::try_from(slots.len() - 1).expect("fewer than 2^32 rows")
        });
        &mut self.slots[i as usize]
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
        // order), so rows sort by window and rank, integers only, and slots move once.
        let mut order: Vec<u32> =
            (0..u32::try_from(self.groups.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by(|&a, &b| self.groups[a as usize].cmp(&self.groups[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &id) in order.iter().enumerate() {
            rank[id as usize] = u32::try_from(r).unwrap_or(u32::MAX);
        }
        let mut sorted: Vec<(DateTime<Utc>, u32, u32)> = self
            .slots
            .iter()
            .zip(0u32..)
            .map(|(slot, i)| (slot.window_start, rank[slot.group as usize], i))
            .collect();
        sorted.sort_unstable();
        // Each group's keys and values, made once and shared by its rows.
        let groups: Vec<RowGroup> = self
            .groups
            .into_iter()
            .map(|values| {
                names
                    .iter()
                    .cloned()
                    .zip(values.into_iter().map(|g| match g {
                        GroupValue::Text(t) => Some(t),
                        GroupValue::Null => None,
                    }))
                    .collect()
            })
            .collect();
        let mut slots: Vec<Option<Slot>> = self.slots.into_iter().map(Some).collect();
        let data: Vec<MeterRow> = sorted
            .into_iter()
            .filter_map(|(_, _, i)| slots[i as usize].take())
            .map(|slot| {
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
                    window_start: slot.window_start,
                    window_end: slot.window_end,
                    group: Arc::clone(&groups[slot.group as usize]),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::event::TenantId;
    use crate::meter::MeterKey;
    use crate::meter::MeterSpec;
    use crate::window::WindowType;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn cell(count: u64, skipped: u64, value: i64, latest_id: &str) -> MeterCell {
        let value = Amount::from_units(value);
        MeterCell {
            count,
            skipped,
            sum: value.nanos() * i128::from(count),
            min: Some(value),
            max: Some(value),
            latest: Some(super::super::rollup::Latest {
                timestamp_micros: i64::try_from(count).unwrap(),
                id: latest_id.to_owned(),
                value,
            }),
            distinct: std::collections::BTreeSet::new(),
        }
    }

    /// Interned series answer as their keys do: the same rows, filters and skipped counts,
    /// whichever order the cells come in; a text that is not a dimensions array is refused.
    #[test]
    fn interned_series_answer_as_their_keys() {
        for aggregation in [Aggregation::Sum, Aggregation::Max, Aggregation::Latest] {
            let mut spec = MeterSpec::new(aggregation);
            spec.dimensions = vec!["th".to_owned()];
            let meter = Meter {
                key: MeterKey::new("m").unwrap(),
                spec,
                created_at: at(1, 0),
                updated_at: at(1, 0),
            };
            let mut query = MeterQuery::new(at(1, 0), at(4, 0))
                .window(WindowType::Daily)
                .group_by([MeterGroup::Dimension("th".to_owned())]);
            query.tenant_id = Some(TenantId::new("org_1").unwrap());
            let cells = [
                ("org_1", r#"["a"]"#, at(1, 3), cell(2, 1, 5, "e1")),
                ("org_1", r#"[null]"#, at(1, 4), cell(1, 0, 7, "e2")),
                ("org_2", r#"["a"]"#, at(1, 5), cell(4, 2, 9, "e3")),
                ("org_1", r#"["a"]"#, at(2, 6), cell(3, 0, 1, "e4")),
                ("org_1", r#"["a"]"#, at(1, 9), cell(1, 0, 8, "e5")),
                ("org_1", r#"["b"]"#, at(1, 9), cell(0, 3, 0, "e6")),
            ];
            let mut by_key = MeterAggregator::new(&meter, &query);
            let mut by_id = MeterAggregator::new(&meter, &query);
            for (tenant, dims, bucket, cell) in &cells {
                let series = SeriesKey {
                    tenant_id: (*tenant).to_owned(),
                    resource: String::new(),
                    feature: String::new(),
                    dimensions: SeriesKey::parse_dimensions(dims).unwrap(),
                };
                by_key.push_cell(*bucket, &series, cell);
                let id = by_id.cell_series(tenant, "", "", dims).unwrap();
                assert_eq!(by_id.series(id), &series);
                by_id.push_series_cell(*bucket, id, cell.clone());
            }
            assert_eq!(by_id.cell_series("org_1", "", "", "{}"), None);
            let (by_key, by_id) = (by_key.finish(), by_id.finish());
            assert_eq!(by_id, by_key, "{aggregation:?}");
            // org_2 is filtered out; the empty cell of `b` adds only its skipped events.
            assert_eq!(by_id.skipped_events, 4);
            let rows: Vec<_> = by_id
                .data
                .iter()
                .map(|r| (r.window_start, r.group[0].1.clone(), r.event_count))
                .collect();
            assert_eq!(
                rows,
                [
                    (at(1, 0), Some("a".to_owned()), 3),
                    (at(1, 0), None, 1),
                    (at(2, 0), Some("a".to_owned()), 3),
                ]
            );
        }
    }
}
