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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::DateTime;
use serde_json::Value;

use super::aggregate::{amount_of, dimension_text, distinct_of};
use super::{Aggregation, Amount, Meter, MeterGroup, MeterQuery};
use crate::event::Event;
use crate::rollup_plan::{BucketSizes, Piece, bucket_start, plan, window_starts_in};

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

/// The columns a SQL store reads of a stored cell to answer a query of `aggregation`, in
/// the order [`MeterCell::for_answer`] takes them: `event_count`, `skipped`, the value
/// (`sum`, `min`, `max` or `latest`), `latest_ts`, `latest_id` and `distinct_count`, as
/// both SQL stores name them. What the aggregation does not read is a constant instead
/// (null, or 0 for the distinct count), cast to the column's type when `typed`.
#[must_use]
pub fn answer_columns(aggregation: Aggregation, typed: bool) -> String {
    let (null_text, null_int, zero) = if typed {
        ("NULL::text", "NULL::bigint", "0::bigint")
    } else {
        ("NULL", "NULL", "0")
    };
    let value = match aggregation {
        Aggregation::Sum | Aggregation::Avg => "sum",
        Aggregation::Min => "min",
        Aggregation::Max => "max",
        Aggregation::Latest => "latest",
        Aggregation::Count | Aggregation::UniqueCount => null_text,
    };
    let latest = aggregation == Aggregation::Latest;
    format!(
        "event_count, skipped, {value}, {}, {}, {}",
        if latest { "latest_ts" } else { null_int },
        if latest { "latest_id" } else { null_text },
        if aggregation == Aggregation::UniqueCount {
            "distinct_count"
        } else {
            zero
        },
    )
}

impl MeterCell {
    /// A stored cell as an answer of `aggregation` reads it ([`answer_columns`]): its
    /// counts, its `value` (the sum, minimum, maximum or latest value, as the aggregation
    /// reads), and for `latest` the timestamp and id of the latest event.
    #[must_use]
    pub fn for_answer(
        aggregation: Aggregation,
        (count, skipped): (u64, u64),
        value: Option<Amount>,
        latest: Option<(i64, String)>,
    ) -> MeterCell {
        let mut cell = MeterCell {
            count,
            skipped,
            ..MeterCell::default()
        };
        match aggregation {
            Aggregation::Sum | Aggregation::Avg => cell.sum = value.unwrap_or_default().nanos(),
            Aggregation::Min => cell.min = value,
            Aggregation::Max => cell.max = value,
            Aggregation::Latest => {
                cell.latest = value
                    .zip(latest)
                    .map(|(value, (timestamp_micros, id))| Latest {
                        timestamp_micros,
                        id,
                        value,
                    });
            }
            Aggregation::Count | Aggregation::UniqueCount => {}
        }
        cell
    }

    /// Adds `other`'s events to this cell.
    pub fn merge(&mut self, other: &MeterCell) {
        self.merge_owned(other.clone());
    }

    /// [`merge`](Self::merge), taking `other`'s latest id and distinct values instead of
    /// copying them.
    pub fn merge_owned(&mut self, other: MeterCell) {
        if *self == MeterCell::default() {
            *self = other;
            return;
        }
        self.count += other.count;
        self.skipped += other.skipped;
        self.sum += other.sum;
        if let Some(m) = other.min {
            self.min = Some(self.min.map_or(m, |have| have.min(m)));
        }
        if let Some(m) = other.max {
            self.max = Some(self.max.map_or(m, |have| have.max(m)));
        }
        if let Some(l) = other.latest {
            if self.latest.as_ref().is_none_or(|have| {
                (l.timestamp_micros, l.id.as_str()) > (have.timestamp_micros, have.id.as_str())
            }) {
                self.latest = Some(l);
            }
        }
        if self.distinct.is_empty() {
            self.distinct = other.distinct;
        } else {
            self.distinct.extend(other.distinct);
        }
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

/// Microseconds in an hour.
pub const HOUR_MICROS: i64 = 3_600 * 1_000_000;
/// Microseconds in a day.
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// The cells the bundled SQL stores keep: per tenant and dimension values, by hour (level 0)
/// and by day (level 1). Days answer daily and longer windows in zones whose days start at
/// 00:00 UTC; hours answer hourly windows and the days of other zones.
pub const TENANT_LAYOUTS: [Layout; 2] = [
    Layout {
        shape: SeriesShape::Tenant,
        size: HOUR_MICROS,
    },
    Layout {
        shape: SeriesShape::Tenant,
        size: DAY_MICROS,
    },
];

/// The levels (indexes into [`TENANT_LAYOUTS`]) a meter of `aggregation` keeps:
/// `unique_count` meters keep only days, as their distinct sets are the bulk of them.
#[must_use]
pub fn tenant_levels(aggregation: Aggregation) -> &'static [usize] {
    match aggregation {
        Aggregation::UniqueCount => &[1],
        _ => &[0, 1],
    }
}

/// The layouts of `levels` (indexes into [`TENANT_LAYOUTS`]), in order.
#[must_use]
pub fn tenant_layouts(levels: &[usize]) -> Vec<Layout> {
    levels.iter().map(|&l| TENANT_LAYOUTS[l]).collect()
}

/// Whether cells that sum over resource and feature can answer `query`: it neither groups
/// nor filters by either.
#[must_use]
pub fn tenant_cells_answer(query: &MeterQuery) -> bool {
    query.resource.is_none()
        && query.feature.is_none()
        && !query
            .group_by
            .iter()
            .any(|g| matches!(g, MeterGroup::Resource | MeterGroup::Feature))
}

/// Whether `query` groups by the tenant and every dimension of `meter`, so that each group
/// of a window is exactly one tenant cell.
#[must_use]
pub fn groups_every_key(meter: &Meter, query: &MeterQuery) -> bool {
    query.group_by.contains(&MeterGroup::TenantId)
        && meter
            .spec
            .dimensions
            .iter()
            .all(|d| query.group_by.contains(&MeterGroup::Dimension(d.clone())))
}

/// The pieces of `query`'s range, cut at its window boundaries, over cells of `sizes`
/// (microseconds, finest first; see [`crate::rollup_plan::plan`]).
#[must_use]
pub fn query_pieces(query: &MeterQuery, sizes: &[i64]) -> Vec<Piece> {
    let cuts: Vec<i64> = match query.window {
        Some(window) => window_starts_in(query.start, query.end, window, query.tz)
            .into_iter()
            .skip(1)
            .map(|t| t.timestamp_micros())
            .collect(),
        None => Vec::new(),
    };
    plan(
        query.start.timestamp_micros(),
        query.end.timestamp_micros(),
        &cuts,
        BucketSizes::new(sizes),
    )
}

/// Whether every bucket of `size` in `[start, end)` (microseconds) is a whole window of
/// `query`.
#[must_use]
pub fn buckets_are_windows(query: &MeterQuery, start: i64, end: i64, size: i64) -> bool {
    let Some(window) = query.window else {
        return start == query.start.timestamp_micros()
            && end == query.end.timestamp_micros()
            && end - start == size;
    };
    let mut bucket = start;
    while bucket < end {
        let Some(at) = DateTime::from_timestamp_micros(bucket) else {
            return false;
        };
        let w = window.window(at, query.tz);
        if w.start.timestamp_micros() != bucket || w.end.timestamp_micros() != bucket + size {
            return false;
        }
        bucket += size;
    }
    true
}

/// How far a store that numbers its events as they are stored (a sequence, or a
/// transaction id) has folded a meter.
///
/// Events numbered below `below` (and unnumbered ones, stored before numbering began) are
/// folded by a backfill in `(timestamp, id)` order; the others in number order, up to and
/// including `folded_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldPoint {
    /// Events numbered below this are folded by the backfill.
    pub below: i64,
    /// The backfill's position: the timestamp (microseconds) of the last event it read.
    pub backfill_ts: i64,
    /// The backfill's position: the id of the last event it read.
    pub backfill_id: String,
    /// Whether the backfill is done.
    pub backfilled: bool,
    /// Events numbered up to this (from `below`) are folded, once the backfill is done.
    pub folded_seq: i64,
    /// Bumped by every void: a batch folded from a snapshot older than a void is dropped.
    pub corrections: i64,
}

impl FoldPoint {
    /// A meter that has folded nothing yet; events numbered from `below` on are folded in
    /// number order after the backfill.
    #[must_use]
    pub fn start(below: i64) -> FoldPoint {
        FoldPoint {
            below,
            backfill_ts: i64::MIN,
            backfill_id: String::new(),
            backfilled: false,
            folded_seq: below - 1,
            corrections: 0,
        }
    }

    /// Whether both are at the same point of the events (one read serves both).
    #[must_use]
    pub fn same_point(&self, other: &FoldPoint) -> bool {
        (
            self.below,
            self.backfill_ts,
            &self.backfill_id,
            self.backfilled,
            self.folded_seq,
        ) == (
            other.below,
            other.backfill_ts,
            &other.backfill_id,
            other.backfilled,
            other.folded_seq,
        )
    }

    /// Whether the stored event `(ts, id)` numbered `seq` is in the meter's cells.
    #[must_use]
    pub fn folded(&self, seq: Option<i64>, ts: i64, id: &str) -> bool {
        let old = seq.is_none_or(|s| s < self.below);
        if self.backfilled {
            old || seq.is_some_and(|s| s <= self.folded_seq)
        } else {
            old && (ts, id) <= (self.backfill_ts, self.backfill_id.as_str())
        }
    }
}

/// The events not folded yet that a query answered from tenant cells adds: those inside
/// the ranges it reads from cells (raw pieces are read on their own). For `unique_count`
/// it remembers the cells they fall in, whose distinct values the query then needs.
#[derive(Debug)]
pub struct Unfolded {
    /// `(level, start, end)` of each piece read from cells.
    covered: Vec<(usize, i64, i64)>,
    unique: bool,
    dirty: HashSet<(usize, i64, SeriesKey)>,
}

impl Unfolded {
    /// For a query of `meter` cut into `pieces` over the tenant `levels` it keeps (indexes
    /// into [`TENANT_LAYOUTS`], finest first, as the pieces' levels index them).
    #[must_use]
    pub fn new(meter: &Meter, pieces: &[Piece], levels: &[usize]) -> Unfolded {
        Unfolded {
            covered: pieces
                .iter()
                .filter_map(|p| p.level().map(|l| (levels[l], p.start(), p.end())))
                .collect(),
            unique: meter.spec.aggregation == Aggregation::UniqueCount,
            dirty: HashSet::new(),
        }
    }

    /// Whether no piece is read from cells (so no unfolded event needs reading).
    #[must_use]
    pub fn covers_nothing(&self) -> bool {
        self.covered.is_empty()
    }

    /// Whether an event at `timestamp_micros` falls in a piece read from cells.
    #[must_use]
    pub fn covers(&self, timestamp_micros: i64) -> bool {
        self.level_at(timestamp_micros).is_some()
    }

    fn level_at(&self, ts: i64) -> Option<usize> {
        self.covered
            .iter()
            .find(|&&(_, s, e)| s <= ts && ts < e)
            .map(|&(level, _, _)| level)
    }

    /// Counts the unfolded `event` of `meter` into `aggregator` if a piece read from cells
    /// holds it.
    pub fn push(&mut self, aggregator: &mut super::MeterAggregator, meter: &Meter, event: &Event) {
        let ts = event.timestamp.timestamp_micros();
        let Some(level) = self.level_at(ts) else {
            return;
        };
        if self.unique {
            let layout = TENANT_LAYOUTS[level];
            self.dirty.insert((
                level,
                bucket_start(ts, layout.size),
                layout.shape.project(&SeriesKey::of(meter, event)),
            ));
        }
        aggregator.push(event);
    }

    /// Whether an unfolded event fell in the cell of `level`, `bucket` and `series`.
    #[must_use]
    pub fn touched(&self, level: usize, bucket: i64, series: &SeriesKey) -> bool {
        self.dirty.contains(&(level, bucket, series.clone()))
    }
}

/// A store's writes of events (ingest, consumes, corrections) in flight and when the last
/// one ended, so its meter folder can let them go first: it folds in the pauses of the
/// writes, and only a short step when there is none.
#[derive(Debug)]
pub struct Writes {
    in_flight: AtomicUsize,
    /// Microseconds after `since` at which the last write ended.
    last_end: AtomicU64,
    since: Instant,
}

/// One write in flight, until dropped.
#[derive(Debug)]
#[must_use = "the write counts only while this guard lives"]
pub struct Writing<'a>(&'a Writes);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.last_end.store(self.0.now(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long without writes counts as a pause in them.
const QUIET_MICROS: u64 = 100_000;

impl Writes {
    /// No write yet.
    #[must_use]
    pub fn new() -> Writes {
        Writes {
            in_flight: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            since: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Counts a write until the returned guard is dropped.
    pub fn start(&self) -> Writing<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Writing(self)
    }

    /// Whether no write is in flight and none ended in the last 100 ms.
    #[must_use]
    pub fn quiet(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self
                .now()
                .saturating_sub(self.last_end.load(Ordering::Relaxed))
                >= QUIET_MICROS
    }

    /// Waits for a pause in the writes, but no longer than a second, so folding still
    /// advances under a steady write load; false when it gave up waiting.
    pub async fn idle(&self) -> bool {
        for _ in 0..100 {
            if self.quiet() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// How many events a fold step may take, out of `budget`, after waiting for a pause
    /// ([`idle`](Self::idle)): all of them after a pause, else a tenth, so the writes wait
    /// for little.
    pub async fn fold_budget(&self, budget: usize) -> usize {
        if self.idle().await {
            budget
        } else {
            (budget / 10).max(1)
        }
    }
}

impl Default for Writes {
    fn default() -> Self {
        Writes::new()
    }
}
