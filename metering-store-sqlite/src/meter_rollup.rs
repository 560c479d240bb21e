//! Meter rollups: folding events into per-meter cells, answering queries from them, and
//! keeping them exact through voids.
//!
//! Design (see migration 7):
//! - Ingest pays only for numbering its events (`seq`, one index seek per batch); it never
//!   touches a meter's cells, so ingest costs the same with any number of meters.
//! - A folder (the store's background task, or [`SqliteStore::fold_meters`]) folds events
//!   not yet folded into cells on the writer thread, a bounded batch per transaction,
//!   recording how far it got in the same transaction. A meter defined over a full store
//!   first backfills the events stored before it, in time order. Meters at the same point
//!   share one read of the events.
//! - Cells ([`LAYOUTS`], the `level` column) are per tenant and dimension values, by hour
//!   and by day; resource and feature are summed over (a meter's own filter on them is
//!   applied when folding). Days answer daily and longer windows in zones whose days start
//!   at 00:00 UTC; hours answer hourly windows and the days of other zones. `unique_count`
//!   meters keep only daily cells, as their distinct sets are the bulk of them. A query by
//!   day grouped by the tenant and every dimension reads each cell's number of distinct
//!   values instead of the values.
//! - Queries that group or filter by resource or feature recount the events of their range,
//!   as do queries of a meter whose backfill is still running. Cells per full series were
//!   measured: with 2,500 series and a 32-value dimension they outnumbered the events of a
//!   million-event store and tripled the time to fold, so they are not kept.
//! - A query reads whole cells where its windows allow ([`metering_core::rollup_plan`]),
//!   raw events at unaligned edges, and the events not folded yet (`seq` above the folded
//!   mark) inside the cell ranges, all in one read transaction, so its answer is exact at
//!   any point of the folding. While a meter's backfill runs, queries recount raw events.
//! - Every aggregation is kept exactly per cell: count, skipped, exact sum, min, max, latest
//!   and, for `unique_count`, the distinct values (`meter_distinct`).
//! - A void recomputes the affected hour and day cells of every meter from their events, in
//!   the void's transaction, so min, max, latest and distinct sets stay exact too.
//!
//! [`SqliteStore::fold_meters`]: crate::SqliteStore::fold_meters

use std::collections::{BTreeSet, HashMap};

use metering_core::meter::SeriesId;
use metering_core::meter::rollup::{
    DAY_MICROS, FoldPoint, FoldedCell, Latest, Layout, MeterCell, MeterFold, SeriesKey,
    SeriesShape, TENANT_LAYOUTS, Unfolded, answer_columns, buckets_are_windows, groups_every_key,
    query_pieces, tenant_cells_answer, tenant_layouts as layouts, tenant_levels as levels,
};
use metering_core::rollup_plan::{Piece, bucket_start};
use metering_core::{
    Aggregation, Amount, Event, Meter, MeterAggregator, MeterQuery, MeterReport, MeterSpec,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;

use crate::codec::{EVENT_COLUMNS, event_from_row, instant, micros};
use crate::error::{DbResult, SqliteError};
use crate::events;

/// The cells meters keep; the index is the `level` column.
const LAYOUTS: [Layout; 2] = TENANT_LAYOUTS;

/// The next `seq` to give an inserted event.
pub(crate) fn next_seq(conn: &Connection) -> DbResult<i64> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM events WHERE seq IS NOT NULL")?
        .query_row([], |r| r.get(0))?)
}

/// Starts folding `meter` from scratch (it is new or its spec changed): its cells are
/// dropped, and the backfill will fold every event stored so far.
pub(crate) fn reset(tx: &Connection, meter: &str) -> DbResult<()> {
    drop_cells(tx, meter)?;
    let start = FoldPoint::start(next_seq(tx)?);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO meter_folds
             (meter, below, backfill_ts, backfill_id, backfilled, folded_seq, corrections)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        meter,
        start.below,
        start.backfill_ts,
        start.backfill_id,
        start.backfilled,
        start.folded_seq,
        start.corrections
    ])?;
    Ok(())
}

/// Forgets `meter`'s cells and fold state (it was deleted).
pub(crate) fn forget(tx: &Connection, meter: &str) -> DbResult<()> {
    drop_cells(tx, meter)?;
    tx.prepare_cached("DELETE FROM meter_folds WHERE meter = ?1")?
        .execute([meter])?;
    Ok(())
}

fn drop_cells(tx: &Connection, meter: &str) -> DbResult<()> {
    tx.prepare_cached("DELETE FROM meter_cells WHERE meter = ?1")?
        .execute([meter])?;
    tx.prepare_cached("DELETE FROM meter_distinct WHERE meter = ?1")?
        .execute([meter])?;
    Ok(())
}

/// Every meter with its fold state.
fn folding(conn: &Connection) -> DbResult<Vec<(Meter, FoldPoint)>> {
    Ok(folding_specs(conn)?
        .into_iter()
        .map(|(meter, state, _)| (meter, state))
        .collect())
}

/// A meter, its fold state and its spec as stored.
type FoldingMeter = (Meter, FoldPoint, String);

/// Every meter with its fold state and its spec as stored.
fn folding_specs(conn: &Connection) -> DbResult<Vec<FoldingMeter>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.key, m.spec, m.created_at, m.updated_at,
                f.below, f.backfill_ts, f.backfill_id, f.backfilled, f.folded_seq, f.corrections
         FROM meters m JOIN meter_folds f ON f.meter = m.key ORDER BY m.key",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push((
            crate::meters::meter_from_row(row)?,
            state_from_row(row, 4)?,
            row.get(1)?,
        ));
    }
    Ok(out)
}

fn state_from_row(row: &rusqlite::Row<'_>, at: usize) -> DbResult<FoldPoint> {
    Ok(FoldPoint {
        below: row.get(at)?,
        backfill_ts: row.get(at + 1)?,
        backfill_id: row.get(at + 2)?,
        backfilled: row.get(at + 3)?,
        folded_seq: row.get(at + 4)?,
        corrections: row.get(at + 5)?,
    })
}

/// The fold state of `meter` when the stored meter is `meter` as given (a query for a meter
/// just replaced, or never stored, recounts).
fn state_of(conn: &Connection, meter: &Meter) -> DbResult<Option<FoldPoint>> {
    let found = conn
        .prepare_cached(
            "SELECT m.spec, f.below, f.backfill_ts, f.backfill_id, f.backfilled, f.folded_seq,
                    f.corrections
             FROM meters m JOIN meter_folds f ON f.meter = m.key WHERE m.key = ?1",
        )?
        .query_row([meter.key.as_str()], |row| {
            Ok((row.get::<_, String>(0)?, state_from_row(row, 1)))
        })
        .optional()?;
    let Some((spec, state)) = found else {
        return Ok(None);
    };
    let same = serde_json::from_str::<Box<RawValue>>(&spec)
        .ok()
        .and_then(|raw| MeterSpec::from_json(&raw).ok())
        .is_some_and(|stored| stored == meter.spec);
    if same { Ok(Some(state?)) } else { Ok(None) }
}

/// One meter's share of a [`FoldBatch`].
#[derive(Debug)]
pub(crate) struct FoldedMeter {
    meter: String,
    /// Its spec as stored when read: cells folded for one spec never reach another.
    spec: String,
    /// Its state when the events were read; the batch applies only if it is still so.
    from: FoldPoint,
    to: FoldPoint,
    /// `(level, cell)`.
    cells: Vec<(usize, FoldedCell)>,
}

/// Events folded from one read snapshot, to apply meter by meter on the writer.
#[derive(Debug, Default)]
pub(crate) struct FoldBatch {
    /// Per meter with something to write.
    pub(crate) meters: Vec<FoldedMeter>,
    /// Whether the read hit the budget (more events are waiting).
    pub(crate) more: bool,
}

/// Reads up to `budget` events not yet folded (meters at the same point share one read) and
/// folds them in memory. Runs on a read snapshot, so the writer is not held meanwhile.
pub(crate) fn read_batch(conn: &Connection, budget: usize) -> DbResult<FoldBatch> {
    let budget = i64::try_from(budget.max(1)).unwrap_or(i64::MAX);
    let mut groups: Vec<(FoldPoint, Vec<FoldingMeter>)> = Vec::new();
    for (meter, state, spec) in folding_specs(conn)? {
        match groups.iter_mut().find(|(at, _)| at.same_point(&state)) {
            Some((_, meters)) => meters.push((meter, state, spec)),
            None => groups.push((state.clone(), vec![(meter, state, spec)])),
        }
    }
    let mut batch = FoldBatch::default();
    // Each group gets its share of the budget, so a meter defined while others backfill
    // starts at once.
    let share = budget / i64::try_from(groups.len().max(1)).unwrap_or(1);
    for (mut point, meters) in groups {
        let mut left = share.max(1);
        let layout_lists: Vec<Vec<Layout>> = meters
            .iter()
            .map(|(m, _, _)| layouts(levels(m.spec.aggregation)))
            .collect();
        let mut folds: Vec<MeterFold<'_>> = meters
            .iter()
            .zip(&layout_lists)
            .map(|((m, _, _), l)| MeterFold::new(m, l))
            .collect();
        let mut finished = false;
        let read = if point.backfilled {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS}, seq FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let mut rows = stmt.query(params![point.folded_seq, left])?;
            let mut read = 0;
            while let Some(row) = rows.next()? {
                let event = event_from_row(row)?;
                folds.iter_mut().for_each(|f| f.push(&event));
                point.folded_seq = row.get(12)?;
                read += 1;
            }
            read
        } else {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS}, seq FROM events INDEXED BY events_ts
                 WHERE (ts, id) > (?1, ?2) ORDER BY ts, id LIMIT ?3"
            ))?;
            let mut rows = stmt.query(params![point.backfill_ts, point.backfill_id, left])?;
            let mut read = 0;
            while let Some(row) = rows.next()? {
                let seq: Option<i64> = row.get(12)?;
                let event = event_from_row(row)?;
                if seq.is_none_or(|s| s < point.below) {
                    folds.iter_mut().for_each(|f| f.push(&event));
                }
                point.backfill_ts = micros(event.timestamp);
                point.backfill_id = event.id.as_str().to_owned();
                read += 1;
            }
            if read < left {
                point.backfilled = true;
                finished = true;
            }
            read
        };
        left -= read;
        if left == 0 {
            batch.more = true;
        }
        if read == 0 && !finished {
            continue;
        }
        for ((meter, from, spec), fold) in meters.iter().zip(folds) {
            let levels = levels(meter.spec.aggregation);
            let cells = fold
                .into_cells()
                .into_iter()
                .map(|cell| (levels[cell.layout], cell))
                .collect();
            let to = FoldPoint {
                corrections: from.corrections,
                ..point.clone()
            };
            let from = from.clone();
            batch.meters.push(FoldedMeter {
                meter: meter.key.as_str().to_owned(),
                spec: spec.clone(),
                from,
                to,
                cells,
            });
        }
    }
    Ok(batch)
}

/// Writes one meter's share of a batch in `tx`, unless the meter moved on since the read
/// (its spec replaced, deleted, folded by another process, or an event voided): then
/// nothing is written, and the next read folds again from the stored point. The fold of a
/// spec from a point depends on nothing else, so an equal state and spec mean equal cells.
pub(crate) fn apply(tx: &Transaction<'_>, folded: &FoldedMeter) -> DbResult<bool> {
    let now = tx
        .prepare_cached(
            "SELECT f.below, f.backfill_ts, f.backfill_id, f.backfilled, f.folded_seq,
                    f.corrections, m.spec
             FROM meter_folds f JOIN meters m ON m.key = f.meter WHERE f.meter = ?1",
        )?
        .query_row([&folded.meter], |row| {
            Ok((state_from_row(row, 0), row.get::<_, String>(6)?))
        })
        .optional()?;
    let Some((state, spec)) = now else {
        return Ok(false);
    };
    if state? != folded.from || spec != folded.spec {
        return Ok(false);
    }
    for (level, cell) in &folded.cells {
        merge_cell(tx, &folded.meter, *level, cell)?;
    }
    let to = &folded.to;
    tx.prepare_cached(
        "UPDATE meter_folds SET backfill_ts = ?2, backfill_id = ?3, backfilled = ?4,
             folded_seq = ?5 WHERE meter = ?1",
    )?
    .execute(params![
        folded.meter,
        to.backfill_ts,
        to.backfill_id,
        to.backfilled,
        to.folded_seq
    ])?;
    Ok(true)
}

fn amount_text(a: Amount) -> String {
    a.nanos().to_string()
}

fn amount_of(text: Option<String>) -> DbResult<Option<Amount>> {
    text.map(|t| {
        t.parse::<i128>()
            .map(Amount::from_nanos)
            .map_err(|_| SqliteError::Corrupt(format!("meter cell value `{t}`")))
    })
    .transpose()
}

/// A cell's primary key: meter, level, bucket, tenant, resource, feature, dimensions.
type CellKey = (String, i64, i64, String, String, String, String);

fn cell_key(meter: &str, level: usize, bucket: i64, series: &SeriesKey) -> CellKey {
    (
        meter.to_owned(),
        i64::try_from(level).expect("three levels"),
        bucket,
        series.tenant_id.clone(),
        series.resource.clone(),
        series.feature.clone(),
        series.dimensions_json(),
    )
}

const CELL_WHERE: &str = "meter = ?1 AND level = ?2 AND bucket = ?3 AND tenant_id = ?4
     AND resource = ?5 AND feature = ?6 AND dims = ?7";

/// The columns [`cell_from_row`] reads, in order.
const CELL_COLUMNS: &str =
    "event_count, skipped, sum, min, max, latest_ts, latest_id, latest, distinct_count";

/// Adds `cell` to the stored cell of `level`.
fn merge_cell(tx: &Transaction<'_>, meter: &str, level: usize, cell: &FoldedCell) -> DbResult<()> {
    let key = cell_key(meter, level, cell.bucket, &cell.series);
    let args = params![key.0, key.1, key.2, key.3, key.4, key.5, key.6];
    let stored = tx
        .prepare_cached(&format!(
            "SELECT {CELL_COLUMNS} FROM meter_cells WHERE {CELL_WHERE}"
        ))?
        .query_row(args, |row| Ok(cell_from_row(row, 0)))
        .optional()?
        .transpose()?;
    let (mut merged, mut distinct) = stored.unwrap_or_default();
    merged.merge(&cell.cell);
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO meter_distinct (meter, level, bucket, tenant_id, resource, feature, dims, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for value in &cell.cell.distinct {
        distinct += u64::try_from(insert.execute(params![
            key.0, key.1, key.2, key.3, key.4, key.5, key.6, value
        ])?)
        .unwrap_or(0);
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO meter_cells
             (meter, level, bucket, tenant_id, resource, feature, dims, event_count, skipped,
              sum, min, max, latest_ts, latest_id, latest, distinct_count)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        key.0,
        key.1,
        key.2,
        key.3,
        key.4,
        key.5,
        key.6,
        count(merged.count),
        count(merged.skipped),
        merged.sum.to_string(),
        merged.min.map(amount_text),
        merged.max.map(amount_text),
        merged.latest.as_ref().map(|l| l.timestamp_micros),
        merged.latest.as_ref().map(|l| l.id.clone()),
        merged.latest.as_ref().map(|l| amount_text(l.value)),
        count(distinct),
    ])?;
    Ok(())
}

/// Reads [`CELL_COLUMNS`] starting at column `at`: the cell (without its distinct values)
/// and its number of distinct values.
fn cell_from_row(row: &rusqlite::Row<'_>, at: usize) -> DbResult<(MeterCell, u64)> {
    let sum: String = row.get(at + 2)?;
    let latest = match (
        row.get::<_, Option<i64>>(at + 5)?,
        row.get::<_, Option<String>>(at + 6)?,
        amount_of(row.get(at + 7)?)?,
    ) {
        (Some(timestamp_micros), Some(id), Some(value)) => Some(Latest {
            timestamp_micros,
            id,
            value,
        }),
        _ => None,
    };
    let cell = MeterCell {
        count: u64::try_from(row.get::<_, i64>(at)?).unwrap_or(0),
        skipped: u64::try_from(row.get::<_, i64>(at + 1)?).unwrap_or(0),
        sum: sum
            .parse()
            .map_err(|_| SqliteError::Corrupt(format!("meter cell sum `{sum}`")))?,
        min: amount_of(row.get(at + 3)?)?,
        max: amount_of(row.get(at + 4)?)?,
        latest,
        distinct: BTreeSet::new(),
    };
    Ok((cell, u64::try_from(row.get::<_, i64>(at + 8)?).unwrap_or(0)))
}

/// A cell as an answer of `aggregation` reads it: [`answer_columns`] from column `at`, and
/// its number of distinct values. Texts are read in place: a query reads tens of
/// thousands of cells.
fn answer_cell_from_row(
    row: &rusqlite::Row<'_>,
    at: usize,
    aggregation: Aggregation,
) -> DbResult<(MeterCell, u64)> {
    let number =
        |i: usize| -> DbResult<u64> { Ok(u64::try_from(row.get::<_, i64>(at + i)?).unwrap_or(0)) };
    let value = match row.get_ref(at + 2)?.as_str_or_null()? {
        Some(text) => {
            Some(Amount::from_nanos(text.parse::<i128>().map_err(|_| {
                SqliteError::Corrupt(format!("meter cell value `{text}`"))
            })?))
        }
        None => None,
    };
    let latest = match row.get::<_, Option<i64>>(at + 3)? {
        Some(ts) => row.get::<_, Option<String>>(at + 4)?.map(|id| (ts, id)),
        None => None,
    };
    let cell = MeterCell::for_answer(aggregation, (number(0)?, number(1)?), value, latest);
    Ok((cell, number(5)?))
}

/// The meter's answer: from its cells when it is folded, else recounted from the events.
pub(crate) fn query(conn: &Connection, meter: &Meter, query: &MeterQuery) -> DbResult<MeterReport> {
    let mut aggregator = MeterAggregator::new(meter, query);
    // Cells sum over resource and feature: a query by either recounts, as does one of a
    // meter whose backfill is still running.
    let state = if tenant_cells_answer(query) {
        state_of(conn, meter)?.filter(|s| s.backfilled)
    } else {
        None
    };
    let Some(state) = state else {
        events::scan(conn, &query.event_filter(meter), |event| {
            aggregator.push(event);
        })?;
        return Ok(aggregator.finish());
    };
    // The levels kept, finest first (as LAYOUTS lists them).
    let shape_levels = levels(meter.spec.aggregation);
    let sizes: Vec<i64> = shape_levels.iter().map(|&l| LAYOUTS[l].size).collect();
    let pieces = query_pieces(query, &sizes);
    let unique = meter.spec.aggregation == Aggregation::UniqueCount;

    // Events not folded yet, inside the ranges read from cells.
    let mut unfolded = Unfolded::new(meter, &pieces, shape_levels);
    if !unfolded.covers_nothing() {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE seq > ?1 AND voided_at IS NULL"
        ))?;
        let mut rows = stmt.query([state.folded_seq])?;
        while let Some(row) = rows.next()? {
            // Only events in a piece read from cells are decoded.
            if unfolded.covers(row.get(6)?) {
                unfolded.push(&mut aggregator, meter, &event_from_row(row)?);
            }
        }
    }

    // Whether each (window, group) of the answer is exactly one cell: then a cell's number
    // of distinct values is its answer, and the values need not be read.
    let groups_every_key = groups_every_key(meter, query);
    for piece in &pieces {
        match *piece {
            Piece::Raw { start, end } => {
                let mut raw = query.event_filter(meter);
                raw.start = Some(instant(start));
                raw.end = Some(instant(end));
                events::scan(conn, &raw, |event| aggregator.push(event))?;
            }
            Piece::Buckets { level, start, end } => {
                let level = shape_levels[level];
                let size = LAYOUTS[level].size;
                let one_cell_each =
                    unique && groups_every_key && buckets_are_windows(query, start, end, size);
                read_cells(
                    conn,
                    meter,
                    query,
                    &mut aggregator,
                    (level, start, end),
                    unique && !one_cell_each,
                    |aggregator, bucket, id, mut cell, distinct| {
                        let at = instant(bucket);
                        if !one_cell_each {
                            aggregator.push_series_cell(at, id, cell);
                        } else if unfolded.touched(level, bucket, aggregator.series(id)) {
                            let series = aggregator.series(id);
                            cell.distinct = distinct_values(conn, meter, level, bucket, series)?;
                            aggregator.push_series_cell(at, id, cell);
                        } else {
                            aggregator.push_series_distinct_total(at, id, &cell, distinct);
                        }
                        Ok(())
                    },
                )?;
            }
        }
    }
    Ok(aggregator.finish())
}

/// One stored cell's distinct values.
fn distinct_values(
    conn: &Connection,
    meter: &Meter,
    level: usize,
    bucket: i64,
    series: &SeriesKey,
) -> DbResult<BTreeSet<String>> {
    let key = cell_key(meter.key.as_str(), level, bucket, series);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT value FROM meter_distinct WHERE {CELL_WHERE}"
    ))?;
    let values = stmt
        .query_map(
            params![key.0, key.1, key.2, key.3, key.4, key.5, key.6],
            |r| r.get::<_, String>(0),
        )?
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(values)
}

/// Streams the stored cells of `level` with a bucket in `[start, end)` (with their
/// distinct values when `with_distinct`), narrowed by the query's tenant, resource and
/// feature, to `each` with their bucket, series (interned in `aggregator`) and number of
/// distinct values. Cells carry only what the meter's answer reads.
fn read_cells(
    conn: &Connection,
    meter: &Meter,
    query: &MeterQuery,
    aggregator: &mut MeterAggregator,
    (level, start, end): (usize, i64, i64),
    with_distinct: bool,
    mut each: impl FnMut(&mut MeterAggregator, i64, SeriesId, MeterCell, u64) -> DbResult<()>,
) -> DbResult<()> {
    let level = i64::try_from(level).expect("three levels");
    let tenant = query.tenant_id.as_ref().map(|t| t.as_str());
    let resource = query.resource.as_ref().map(|r| r.as_str());
    let feature = query.feature.as_ref().map(|f| f.as_str());
    let narrow = "meter = ?1 AND level = ?2 AND bucket >= ?3 AND bucket < ?4
                  AND (?5 IS NULL OR tenant_id = ?5) AND (?6 IS NULL OR resource = ?6)
                  AND (?7 IS NULL OR feature = ?7)";
    let args = params![
        meter.key.as_str(),
        level,
        start,
        end,
        tenant,
        resource,
        feature
    ];
    // The row's series, interned: tens of thousands of cells share a few thousand.
    let series_of = |aggregator: &mut MeterAggregator, row: &rusqlite::Row<'_>| {
        let text = |i: usize| -> DbResult<&str> { Ok(row.get_ref(i)?.as_str()?) };
        let dims = text(4)?;
        aggregator
            .cell_series(text(1)?, text(2)?, text(3)?, dims)
            .ok_or_else(|| SqliteError::Corrupt(format!("meter cell dimensions `{dims}`")))
    };
    let mut distinct: FxHashMap<(i64, SeriesId), BTreeSet<String>> = FxHashMap::default();
    if with_distinct {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT bucket, tenant_id, resource, feature, dims, value
             FROM meter_distinct WHERE {narrow}"
        ))?;
        let mut rows = stmt.query(args)?;
        while let Some(row) = rows.next()? {
            let id = series_of(aggregator, row)?;
            distinct
                .entry((row.get(0)?, id))
                .or_default()
                .insert(row.get(5)?);
        }
    }
    let aggregation = meter.spec.aggregation;
    let columns = answer_columns(aggregation, false);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT bucket, tenant_id, resource, feature, dims, {columns}
         FROM meter_cells WHERE {narrow}"
    ))?;
    let mut rows = stmt.query(args)?;
    while let Some(row) = rows.next()? {
        let bucket: i64 = row.get(0)?;
        let id = series_of(aggregator, row)?;
        let (mut cell, count) = answer_cell_from_row(row, 5, aggregation)?;
        if with_distinct {
            cell.distinct = distinct.remove(&(bucket, id)).unwrap_or_default();
        }
        each(aggregator, bucket, id, cell, count)?;
    }
    Ok(())
}

/// Recomputes, for every meter, the cells that held `event` (just voided in `tx`) from the
/// events of its day that are folded and still count.
pub(crate) fn unfold(tx: &Transaction<'_>, event: &Event) -> DbResult<()> {
    tx.prepare_cached("UPDATE meter_folds SET corrections = corrections + 1")?
        .execute([])?;
    let ts = micros(event.timestamp);
    let day = bucket_start(ts, DAY_MICROS);
    for (meter, state) in folding(tx)? {
        if !meter.spec.filter.matches(event) {
            continue;
        }
        let series = SeriesKey::of(&meter, event);
        let by_tenant = SeriesShape::Tenant.project(&series);
        let levels = levels(meter.spec.aggregation);
        let layouts = layouts(levels);
        let mut fold = MeterFold::new(&meter, &layouts);
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS}, seq FROM events INDEXED BY events_tenant_ts
             WHERE tenant_id = ?1 AND ts >= ?2 AND ts < ?3 AND voided_at IS NULL"
        ))?;
        let mut rows = stmt.query(params![event.tenant_id.as_str(), day, day + DAY_MICROS])?;
        while let Some(row) = rows.next()? {
            let seq: Option<i64> = row.get(12)?;
            let other = event_from_row(row)?;
            if state.folded(seq, micros(other.timestamp), other.id.as_str())
                && SeriesShape::Tenant.project(&SeriesKey::of(&meter, &other)) == by_tenant
            {
                fold.push(&other);
            }
        }
        let mut rebuilt: HashMap<(usize, i64, SeriesKey), FoldedCell> = fold
            .into_cells()
            .into_iter()
            .map(|cell| ((cell.layout, cell.bucket, cell.series.clone()), cell))
            .collect();
        for (i, (&level, layout)) in levels.iter().zip(&layouts).enumerate() {
            let bucket = bucket_start(ts, layout.size);
            let projected = layout.shape.project(&series);
            let key = cell_key(meter.key.as_str(), level, bucket, &projected);
            let args = params![key.0, key.1, key.2, key.3, key.4, key.5, key.6];
            tx.prepare_cached(&format!("DELETE FROM meter_cells WHERE {CELL_WHERE}"))?
                .execute(args)?;
            tx.prepare_cached(&format!("DELETE FROM meter_distinct WHERE {CELL_WHERE}"))?
                .execute(args)?;
            if let Some(cell) = rebuilt.remove(&(i, bucket, projected)) {
                merge_cell(tx, meter.key.as_str(), level, &cell)?;
            }
        }
    }
    Ok(())
}
