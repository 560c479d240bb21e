//! Meter rollups, for backend implementers: what a meter's events of one time bucket and
//! one series add up to ([`MeterCell`]), folding events into cells ([`MeterFold`]), and
//! answering a query from cells plus raw events ([`MeterAggregator::push_cell`]).
//!
//! A cell is exact for every aggregation: it keeps the count, the exact sum, the minimum,
//! the maximum, the latest value (by timestamp, then id) and, for `unique_count`, the set
//! of distinct values, as canonical text. Cells of one series merge into coarser buckets
//! and into query windows without losing anything, so a backend can keep them per bucket
//! size and read whole buckets where a query's windows allow (see [`crate::rollup_plan`]).
//!
//! [`MeterAggregator::push_cell`]: super::MeterAggregator::push_cell

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::aggregate::{amount_of, dimension_text, distinct_of};
use super::{Aggregation, Amount, Meter};
use crate::event::Event;
use crate::rollup_plan::bucket_start;

/// The series a cell belongs to: the event's tenant, resource and feature, and its value of
/// each of the meter's dimensions in their order (`None` when missing or null).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The tenant.
    pub tenant_id: String,
    /// The resource.
    pub resource: String,
    /// The feature.
    pub feature: String,
    /// The value of each dimension, as text (see the meters contract).
    pub dimensions: Vec<Option<String>>,
}

impl SeriesKey {
    /// The series of `event` under `meter`.
    #[must_use]
    pub fn of(meter: &Meter, event: &Event) -> Self {
        SeriesKey {
            tenant_id: event.tenant_id.as_str().to_owned(),
            resource: event.resource.as_str().to_owned(),
            feature: event.feature.as_str().to_owned(),
            dimensions: meter
                .spec
                .dimensions
                .iter()
                .map(|key| dimension_text(event, key))
                .collect(),
        }
    }

    /// The dimension values as one JSON array (strings and nulls), for a key column.
    #[must_use]
    pub fn dimensions_json(&self) -> String {
        Value::Array(
            self.dimensions
                .iter()
                .map(|d| d.clone().map_or(Value::Null, Value::String))
                .collect(),
        )
        .to_string()
    }

    /// Reads dimension values written by [`SeriesKey::dimensions_json`]; `None` when the
    /// text is not such an array.
    #[must_use]
    pub fn parse_dimensions(text: &str) -> Option<Vec<Option<String>>> {
        let Value::Array(items) = serde_json::from_str(text).ok()? else {
            return None;
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Null => Some(None),
                Value::String(s) => Some(Some(s)),
                _ => None,
            })
            .collect()
    }
}

/// The latest value of a cell: the event with the greatest `(timestamp, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest {
    /// The event's timestamp, in microseconds since the Unix epoch.
    pub timestamp_micros: i64,
    /// The event's id (the tie-breaker).
    pub id: String,
    /// Its value.
    pub value: Amount,
}

/// What a meter's events of one bucket and one series add up to, exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterCell {
    /// Events counted: every matching event for `count`, those with a value otherwise.
    pub count: u64,
    /// Matching events without a usable value (`skipped_events`).
    pub skipped: u64,
    /// The exact sum of the values, in nano-units.
    pub sum: i128,
    /// The least value.
    pub min: Option<Amount>,
    /// The greatest value.
    pub max: Option<Amount>,
    /// The latest value.
    pub latest: Option<Latest>,
    /// The distinct values (`unique_count` only), as canonical text.
    pub distinct: BTreeSet<String>,
}

impl MeterCell {
    /// Adds `other`'s events to this cell.
    pub fn merge(&mut self, other: &MeterCell) {
        self.count += other.count;
        self.skipped += other.skipped;
        self.sum += other.sum;
        if let Some(m) = other.min {
            self.min = Some(self.min.map_or(m, |have| have.min(m)));
        }
        if let Some(m) = other.max {
            self.max = Some(self.max.map_or(m, |have| have.max(m)));
        }
        if let Some(l) = &other.latest {
            if self.latest.as_ref().is_none_or(|have| {
                (l.timestamp_micros, l.id.as_str()) > (have.timestamp_micros, have.id.as_str())
            }) {
                self.latest = Some(l.clone());
            }
        }
        self.distinct.extend(other.distinct.iter().cloned());
    }
}

/// What one event contributes to a meter, once it matches the meter's filter.
pub(crate) enum Contribution {
    /// Counted, without a value (`count`).
    Counted,
    /// Counted with this value.
    Value(Amount),
    /// Counted with this distinct value (`unique_count`).
    Distinct(String),
    /// Matched, but without a usable value.
    Skipped,
}

/// What `event` contributes to `meter`; `None` when it does not count or fails the filter.
pub(crate) fn contribution(meter: &Meter, event: &Event) -> Option<Contribution> {
    if !event.counts() || !meter.spec.filter.matches(event) {
        return None;
    }
    let spec = &meter.spec;
    Some(match spec.aggregation {
        Aggregation::Count => Contribution::Counted,
        Aggregation::UniqueCount => match spec.value.read(event).and_then(distinct_of) {
            Some(d) => Contribution::Distinct(d.key()),
            None => Contribution::Skipped,
        },
        _ => match spec.value.read(event).and_then(amount_of) {
            Some(a) => Contribution::Value(a),
            None => Contribution::Skipped,
        },
    })
}

impl MeterCell {
    /// Counts one contribution of the event `(timestamp, id)`.
    pub(crate) fn add(&mut self, contribution: Contribution, timestamp_micros: i64, id: &str) {
        match contribution {
            Contribution::Skipped => self.skipped += 1,
            Contribution::Counted => self.count += 1,
            Contribution::Distinct(d) => {
                self.count += 1;
                self.distinct.insert(d);
            }
            Contribution::Value(a) => {
                self.count += 1;
                self.sum += a.nanos();
                self.merge(&MeterCell {
                    min: Some(a),
                    max: Some(a),
                    latest: Some(Latest {
                        timestamp_micros,
                        id: id.to_owned(),
                        value: a,
                    }),
                    ..MeterCell::default()
                });
            }
        }
    }
}

/// Which parts of a series a kind of cell keeps apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeriesShape {
    /// Tenant, resource, feature and every dimension.
    Full,
    /// Tenant and every dimension; resource and feature are summed over (an empty text in
    /// [`SeriesKey`]). Far fewer cells, for the queries that neither group nor filter by
    /// resource or feature.
    Tenant,
}

impl SeriesShape {
    /// `series` as this shape keeps it.
    #[must_use]
    pub fn project(self, series: &SeriesKey) -> SeriesKey {
        match self {
            SeriesShape::Full => series.clone(),
            SeriesShape::Tenant => SeriesKey {
                tenant_id: series.tenant_id.clone(),
                resource: String::new(),
                feature: String::new(),
                dimensions: series.dimensions.clone(),
            },
        }
    }
}

/// A kind of cell a backend keeps: a series shape and a bucket size (microseconds, aligned
/// on the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    /// What the cells keep apart.
    pub shape: SeriesShape,
    /// The bucket size.
    pub size: i64,
}

/// Folds events into a meter's cells of every [`Layout`] a backend keeps.
///
/// Events are folded in memory; a backend writes the cells (merging them into stored
/// ones) in the transaction that records how far it has folded.
#[derive(Debug)]
pub struct MeterFold<'m> {
    meter: &'m Meter,
    layouts: &'m [Layout],
    finest: i64,
    cells: HashMap<(i64, SeriesKey), MeterCell>,
}

/// One cell of a fold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedCell {
    /// Index of its layout in the list the fold was made with.
    pub layout: usize,
    /// Start of the bucket, in microseconds since the Unix epoch.
    pub bucket: i64,
    /// The series, projected to the layout's shape.
    pub series: SeriesKey,
    /// What the folded events add up to.
    pub cell: MeterCell,
}

impl<'m> MeterFold<'m> {
    /// An empty fold for `meter` into cells of `layouts`.
    ///
    /// # Panics
    ///
    /// If `layouts` is empty, or a size is not a positive multiple of the smallest.
    #[must_use]
    pub fn new(meter: &'m Meter, layouts: &'m [Layout]) -> Self {
        let finest = layouts
            .iter()
            .map(|l| l.size)
            .min()
            .expect("a fold needs a layout");
        assert!(
            finest > 0 && layouts.iter().all(|l| l.size % finest == 0),
            "bucket sizes are multiples of the smallest"
        );
        MeterFold {
            meter,
            layouts,
            finest,
            cells: HashMap::new(),
        }
    }

    /// Counts `event` if it counts for the meter (not voided, passes its filter).
    pub fn push(&mut self, event: &Event) {
        let Some(contribution) = contribution(self.meter, event) else {
            return;
        };
        let ts = event.timestamp.timestamp_micros();
        self.cells
            .entry((
                bucket_start(ts, self.finest),
                SeriesKey::of(self.meter, event),
            ))
            .or_default()
            .add(contribution, ts, event.id.as_str());
    }

    /// The cells of every layout, in layout order, each sorted by bucket and series.
    #[must_use]
    pub fn into_cells(self) -> Vec<FoldedCell> {
        let mut out = Vec::new();
        for (layout, l) in self.layouts.iter().enumerate() {
            let mut cells: HashMap<(i64, SeriesKey), MeterCell> = HashMap::new();
            for ((bucket, series), cell) in &self.cells {
                cells
                    .entry((bucket_start(*bucket, l.size), l.shape.project(series)))
                    .or_default()
                    .merge(cell);
            }
            let mut sorted: Vec<_> = cells
                .into_iter()
                .map(|((bucket, series), cell)| FoldedCell {
                    layout,
                    bucket,
                    series,
                    cell,
                })
                .collect();
            sorted.sort_by(|a, b| (a.bucket, &a.series).cmp(&(b.bucket, &b.series)));
            out.extend(sorted);
        }
        out
    }
}
