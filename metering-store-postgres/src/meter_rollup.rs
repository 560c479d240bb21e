//! Meter rollups: folding events into per-meter cells, answering queries from them, and
//! keeping them exact through voids.
//!
//! Design (see the migration `meter_rollups`):
//! - Ingest pays only for stamping each event with its transaction's id (`xact`, a column
//!   default) and one more index entry; it never touches a meter's cells, so ingest costs
//!   the same with any number of meters.
//! - Transactions commit out of id order, so the folder reads, on a repeatable-read
//!   snapshot, only events whose `xact` is below the snapshot's `xmin` (the oldest
//!   transaction still running): no event with a smaller `xact` can commit later. It folds
//!   them in `xact` order, a bounded batch at a time, and writes each meter's cells in its
//!   own short transaction, with how far it got, only when the meter's fold state and spec
//!   are unchanged since the read. Meters at the same point share one read. Several stores
//!   on one schema may fold at once: the check makes a duplicate batch a no-op.
//! - A meter defined over a full store first backfills the events stored before it (with
//!   an `xact` below the `xmin` of its definition, or none) in `(ts, id)` order.
//! - Cells (core's [`TENANT_LAYOUTS`]) are per tenant and dimension values, by hour and by
//!   day; resource and feature are summed over. `unique_count` meters keep daily cells and
//!   their distinct values (`meter_distinct`). A query by day grouped by the tenant and
//!   every dimension reads each cell's number of distinct values instead of the values.
//! - A query reads, in one repeatable-read transaction, whole cells where its windows allow
//!   ([`metering_core::rollup_plan`]), raw events at unaligned edges, and the events not
//!   folded yet inside the cell ranges, so its answer is exact at any point of the folding.
//!   Queries that group or filter by resource or feature recount the events of their
//!   range, as do queries of a meter whose backfill is still running.
//! - A void recomputes, in its own transaction, the hour and day cells that held the event
//!   from the folded events still counting, so min, max, latest and distinct sets stay
//!   exact; it bumps every meter's `corrections`, so a batch read before it is dropped.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use metering_core::meter::SeriesId;
use metering_core::meter::rollup::Writes;
use metering_core::meter::rollup::{
    DAY_MICROS, FoldPoint, FoldedCell, Latest, MeterCell, MeterFold, SeriesKey, SeriesShape,
    TENANT_LAYOUTS, Unfolded, answer_columns, buckets_are_windows, groups_every_key, query_pieces,
    tenant_cells_answer, tenant_layouts, tenant_levels,
};
use metering_core::rollup_plan::{Piece, bucket_start};
use metering_core::{
    Aggregation, Amount, Event, Meter, MeterAggregator, MeterKey, MeterQuery, MeterReport,
    MeterSpec, Result,
};
use rustc_hash::FxHashMap;
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{PgError, db};
use crate::events::{self, EVENT_XACT_SELECT as EVENT_SELECT, event_from_row};

/// The earliest instant PostgreSQL's `timestamptz` holds that a backfill position is read
/// as (a new backfill starts at `i64::MIN`).
const EARLIEST_MICROS: i64 = -210_866_803_200_000_000;

/// The `xmin` of the current snapshot: every transaction with a smaller id has ended.
const XMIN: &str = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

/// The columns of a fold state, on table alias `f`, as [`point_from_row`] reads them.
const POINT_COLUMNS: &str =
    "f.below, f.backfill_ts, f.backfill_id, f.backfilled, f.folded_seq, f.corrections";

fn point_from_row(row: &PgRow) -> Result<FoldPoint> {
    Ok(FoldPoint {
        below: row.try_get("below").map_err(db)?,
        backfill_ts: row.try_get("backfill_ts").map_err(db)?,
        backfill_id: row.try_get("backfill_id").map_err(db)?,
        backfilled: row.try_get("backfilled").map_err(db)?,
        folded_seq: row.try_get("folded_seq").map_err(db)?,
        corrections: row.try_get("corrections").map_err(db)?,
    })
}

fn meter_of(key: &str, spec: &str) -> Result<(MeterKey, MeterSpec)> {
    let raw: Box<RawValue> =
        serde_json::from_str(spec).map_err(|e| PgError::corrupt("meter spec", e))?;
    Ok((
        MeterKey::new(key).map_err(|e| PgError::corrupt("meter key", e))?,
        MeterSpec::from_json(&raw).map_err(|e| PgError::corrupt("meter spec", e))?,
    ))
}

/// Starts folding `key` from scratch (it is new or its spec changed), in `conn`'s
/// transaction: its cells are dropped, and the backfill will fold every event stored so far.
pub(crate) async fn reset(conn: &mut PgConnection, key: &str) -> Result<()> {
    drop_cells(conn, key).await?;
    // Any start point is right (events below it are backfilled, the rest folded after):
    // joining a meter that has not started yet lets both share one read of the events.
    let below: i64 = sqlx::query_scalar(&format!(
        "SELECT coalesce(
             (SELECT below FROM meter_folds WHERE meter <> $1 AND NOT backfilled
                AND backfill_ts = $2 AND backfill_id = '' LIMIT 1),
             ({XMIN}))"
    ))
    .bind(key)
    .bind(FoldPoint::start(0).backfill_ts)
    .fetch_one(&mut *conn)
    .await
    .map_err(db)?;
    let start = FoldPoint::start(below);
    sqlx::query(
        "INSERT INTO meter_folds
             (meter, below, backfill_ts, backfill_id, backfilled, folded_seq, corrections)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (meter) DO UPDATE SET below = excluded.below,
             backfill_ts = excluded.backfill_ts, backfill_id = excluded.backfill_id,
             backfilled = excluded.backfilled, folded_seq = excluded.folded_seq,
             corrections = meter_folds.corrections + 1",
    )
    .bind(key)
    .bind(start.below)
    .bind(start.backfill_ts)
    .bind(&start.backfill_id)
    .bind(start.backfilled)
    .bind(start.folded_seq)
    .bind(start.corrections)
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// Drops the cells of meter `key` (deleted, or redefined), in `conn`'s transaction. Its
/// fold state goes with the meter's row. The fold row is locked first, as the folder and
/// voids lock it before they touch cells, so none of them waits for another in a cycle.
pub(crate) async fn drop_cells(conn: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query("SELECT 1 FROM meter_folds WHERE meter = $1 FOR UPDATE")
        .bind(key)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    for table in ["meter_cells", "meter_distinct"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE meter = $1"))
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// A meter with its fold state and its spec as stored.
struct Folding {
    meter: Meter,
    point: FoldPoint,
    spec: String,
}

/// Every meter with its fold state.
async fn folding(conn: &mut PgConnection) -> Result<Vec<Folding>> {
    let rows = sqlx::query(&format!(
        "SELECT m.key, m.spec::text AS spec, m.created_at, m.updated_at, {POINT_COLUMNS}
         FROM meters m JOIN meter_folds f ON f.meter = m.key ORDER BY m.key"
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get("key").map_err(db)?;
            let spec: String = row.try_get("spec").map_err(db)?;
            let (key, parsed) = meter_of(&key, &spec)?;
            Ok(Folding {
                meter: Meter {
                    key,
                    spec: parsed,
                    created_at: row.try_get("created_at").map_err(db)?,
                    updated_at: row.try_get("updated_at").map_err(db)?,
                },
                point: point_from_row(row)?,
                spec,
            })
        })
        .collect()
}

/// The fold state of `meter` when the stored meter is `meter` as given (a query for a meter
/// just replaced, or never stored, recounts).
async fn point_of(conn: &mut PgConnection, meter: &Meter) -> Result<Option<FoldPoint>> {
    let row = sqlx::query(&format!(
        "SELECT m.spec::text AS spec, {POINT_COLUMNS}
         FROM meters m JOIN meter_folds f ON f.meter = m.key WHERE m.key = $1"
    ))
    .bind(meter.key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let spec: String = row.try_get("spec").map_err(db)?;
    let same = meter_of(meter.key.as_str(), &spec).is_ok_and(|(_, stored)| stored == meter.spec);
    if same {
        Ok(Some(point_from_row(&row)?))
    } else {
        Ok(None)
    }
}

/// One meter's share of a [`FoldBatch`].
#[derive(Debug)]
struct FoldedMeter {
    meter: String,
    /// Its spec as stored when read: cells folded for one spec never reach another.
    spec: String,
    /// Its state when the events were read; the batch applies only if it is still so.
    from: FoldPoint,
    to: FoldPoint,
    /// `(level, cell)`.
    cells: Vec<(usize, FoldedCell)>,
}

/// Events folded from one read snapshot, to apply meter by meter.
#[derive(Debug, Default)]
struct FoldBatch {
    meters: Vec<FoldedMeter>,
    /// Whether the read hit the budget (more events are waiting).
    more: bool,
}

/// The timestamp of a backfill position, as PostgreSQL holds it.
fn position(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros.max(EARLIEST_MICROS))
        .expect("clamped into PostgreSQL's range")
}

/// Reads up to `budget` events not yet folded (meters at the same point share one read) and
/// folds them in memory, on one repeatable-read snapshot.
async fn read_batch(pool: &PgPool, budget: usize) -> Result<FoldBatch> {
    let mut conn = pool.acquire().await.map_err(db)?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // Every read here walks an index in its order (`xact`, or `ts, id`) for a bounded
    // batch; on a table without statistics the planner may otherwise sort all of it.
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let xmin: i64 = sqlx::query_scalar(XMIN)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let mut groups: Vec<(FoldPoint, Vec<Folding>)> = Vec::new();
    for f in folding(&mut tx).await? {
        match groups.iter_mut().find(|(at, _)| at.same_point(&f.point)) {
            Some((_, meters)) => meters.push(f),
            None => groups.push((f.point.clone(), vec![f])),
        }
    }
    let budget = i64::try_from(budget.max(1)).unwrap_or(i64::MAX);
    // Each group gets its share of the budget, so a meter defined while others backfill
    // starts at once.
    let share = (budget / i64::try_from(groups.len().max(1)).unwrap_or(1)).max(1);
    let mut batch = FoldBatch::default();
    for (mut point, meters) in groups {
        let layout_lists: Vec<_> = meters
            .iter()
            .map(|f| tenant_layouts(tenant_levels(f.meter.spec.aggregation)))
            .collect();
        let mut folds: Vec<MeterFold<'_>> = meters
            .iter()
            .zip(&layout_lists)
            .map(|(f, l)| MeterFold::new(&f.meter, l))
            .collect();
        if point.backfilled {
            if point.folded_seq + 1 >= xmin {
                continue;
            }
            let rows = sqlx::query(&format!(
                "{EVENT_SELECT} WHERE e.xact > $1 AND e.xact < $2 ORDER BY e.xact LIMIT $3"
            ))
            .bind(point.folded_seq)
            .bind(xmin)
            .bind(share)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= share;
            let xacts: Vec<i64> = rows
                .iter()
                .map(|r| r.try_get("xact"))
                .collect::<std::result::Result<_, _>>()
                .map_err(db)?;
            // A transaction's events are folded together: when the batch ends inside one,
            // the rest of it is read now if it is the only one, else left for next time.
            let (rows, upto) = match (full, xacts.first(), xacts.last()) {
                (true, Some(&first), Some(&last)) if first == last => {
                    let whole = sqlx::query(&format!("{EVENT_SELECT} WHERE e.xact = $1"))
                        .bind(last)
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(db)?;
                    (whole, last)
                }
                (true, Some(_), Some(&last)) => {
                    let keep = xacts.iter().take_while(|&&x| x < last).count();
                    let mut rows = rows;
                    rows.truncate(keep);
                    (rows, last - 1)
                }
                // Nothing new: the state stays, rather than a write per idle step.
                _ if rows.is_empty() => continue,
                _ => (rows, xmin - 1),
            };
            for row in &rows {
                let event = event_from_row(row)?;
                folds.iter_mut().for_each(|f| f.push(&event));
            }
            batch.more |= full;
            point.folded_seq = upto;
        } else {
            let rows = sqlx::query(&format!(
                "{EVENT_SELECT} WHERE (e.ts, e.id) > ($1, $2) ORDER BY e.ts, e.id LIMIT $3"
            ))
            .bind(position(point.backfill_ts))
            .bind(&point.backfill_id)
            .bind(share)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?;
            for row in &rows {
                let xact: Option<i64> = row.try_get("xact").map_err(db)?;
                let event = event_from_row(row)?;
                if xact.is_none_or(|x| x < point.below) {
                    folds.iter_mut().for_each(|f| f.push(&event));
                }
                point.backfill_ts = event.timestamp.timestamp_micros();
                point.backfill_id = event.id.as_str().to_owned();
            }
            if i64::try_from(rows.len()).unwrap_or(i64::MAX) < share {
                point.backfilled = true;
            } else {
                batch.more = true;
            }
        }
        for (f, fold) in meters.iter().zip(folds) {
            let levels = tenant_levels(f.meter.spec.aggregation);
            let cells = fold
                .into_cells()
                .into_iter()
                .map(|cell| (levels[cell.layout], cell))
                .collect();
            batch.meters.push(FoldedMeter {
                meter: f.meter.key.as_str().to_owned(),
                spec: f.spec.clone(),
                from: f.point.clone(),
                to: FoldPoint {
                    corrections: f.point.corrections,
                    ..point.clone()
                },
                cells,
            });
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(batch)
}

/// Writes one meter's share of a batch in its own transaction, unless the meter moved on
/// since the read (its spec replaced, deleted, folded by another store, or an event
/// voided): then nothing is written, and the next read folds again from the stored point.
async fn apply(pool: &PgPool, folded: &FoldedMeter) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db)?;
    let now = sqlx::query(&format!(
        "SELECT m.spec::text AS spec, {POINT_COLUMNS}
         FROM meter_folds f JOIN meters m ON m.key = f.meter WHERE f.meter = $1
         FOR UPDATE OF f"
    ))
    .bind(&folded.meter)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(row) = now else {
        return Ok(false);
    };
    let spec: String = row.try_get("spec").map_err(db)?;
    if point_from_row(&row)? != folded.from || spec != folded.spec {
        return Ok(false);
    }
    merge_cells(&mut tx, &folded.meter, &folded.cells).await?;
    let to = &folded.to;
    sqlx::query(
        "UPDATE meter_folds SET backfill_ts = $2, backfill_id = $3, backfilled = $4,
             folded_seq = $5 WHERE meter = $1",
    )
    .bind(&folded.meter)
    .bind(to.backfill_ts)
    .bind(&to.backfill_id)
    .bind(to.backfilled)
    .bind(to.folded_seq)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(true)
}

/// Folds up to `budget` events per meter group into the cells; returns whether more are
/// waiting. With `writes`, the read and each meter's write first wait for a pause in this
/// process's writes ([`Writes::idle`]), so ingest goes first; without one in a second,
/// the step is a tenth of `budget`.
pub(crate) async fn fold(pool: &PgPool, budget: usize, writes: Option<&Writes>) -> Result<bool> {
    let budget = match writes {
        Some(writes) => writes.fold_budget(budget).await,
        None => budget,
    };
    let batch = read_batch(pool, budget).await?;
    for meter in &batch.meters {
        if let Some(writes) = writes {
            writes.idle().await;
        }
        apply(pool, meter).await?;
    }
    Ok(batch.more)
}

/// A cell's key within a meter: level, bucket, tenant, dimensions.
type CellKey = (i16, i64, String, String);

fn cell_key(level: usize, bucket: i64, series: &SeriesKey) -> CellKey {
    (
        i16::try_from(level).expect("two levels"),
        bucket,
        series.tenant_id.clone(),
        series.dimensions_json(),
    )
}

/// The columns [`cell_from_row`] reads, in its order.
const CELL_COLUMNS: &str =
    "event_count, skipped, sum, min, max, latest_ts, latest_id, latest, distinct_count";

fn amount_of(text: Option<String>) -> Result<Option<Amount>> {
    text.map(|t| {
        t.parse::<i128>()
            .map(Amount::from_nanos)
            .map_err(|e| PgError::corrupt("meter cell value", e).into())
    })
    .transpose()
}

/// A stored cell (without its distinct values) and its number of distinct values.
fn cell_from_row(row: &PgRow, at: usize) -> Result<(MeterCell, u64)> {
    // By position: a query reads tens of thousands of cells, and a lookup by name per
    // column was a measurable part of it.
    let text = |i: usize| -> Result<Option<String>> { row.try_get(at + i).map_err(db) };
    let number = |i: usize| -> Result<u64> {
        Ok(u64::try_from(row.try_get::<i64, _>(at + i).map_err(db)?).unwrap_or(0))
    };
    let latest = match (
        row.try_get::<Option<i64>, _>(at + 5).map_err(db)?,
        text(6)?,
        amount_of(text(7)?)?,
    ) {
        (Some(timestamp_micros), Some(id), Some(value)) => Some(Latest {
            timestamp_micros,
            id,
            value,
        }),
        _ => None,
    };
    let sum: String = row.try_get(at + 2).map_err(db)?;
    let cell = MeterCell {
        count: number(0)?,
        skipped: number(1)?,
        sum: sum
            .parse()
            .map_err(|e| PgError::corrupt("meter cell sum", e))?,
        min: amount_of(text(3)?)?,
        max: amount_of(text(4)?)?,
        latest,
        distinct: BTreeSet::new(),
    };
    Ok((cell, number(8)?))
}

/// A cell as an answer of `aggregation` reads it: [`answer_columns`] from column `at`, and
/// its number of distinct values. Unchecked reads of the columns' known types, texts in
/// place: a query reads tens of thousands of cells, and sqlx's type checks were a tenth of
/// its time.
fn answer_cell_from_row(
    row: &PgRow,
    at: usize,
    aggregation: Aggregation,
) -> Result<(MeterCell, u64)> {
    let number = |i: usize| -> Result<u64> {
        Ok(u64::try_from(row.try_get_unchecked::<i64, _>(at + i).map_err(db)?).unwrap_or(0))
    };
    let value = match row
        .try_get_unchecked::<Option<&str>, _>(at + 2)
        .map_err(db)?
    {
        Some(text) => Some(Amount::from_nanos(
            text.parse::<i128>()
                .map_err(|e| PgError::corrupt("meter cell value", e))?,
        )),
        None => None,
    };
    let latest = match row
        .try_get_unchecked::<Option<i64>, _>(at + 3)
        .map_err(db)?
    {
        Some(ts) => row
            .try_get_unchecked::<Option<String>, _>(at + 4)
            .map_err(db)?
            .map(|id| (ts, id)),
        None => None,
    };
    let cell = MeterCell::for_answer(aggregation, (number(0)?, number(1)?), value, latest);
    Ok((cell, number(5)?))
}

/// Merges `cells` into the stored cells of `meter`, in `conn`'s transaction (which holds the
/// meter's fold row): new distinct values first (counting those not stored yet), then the
/// stored cells read, merged and written back, each statement over arrays.
async fn merge_cells(
    conn: &mut PgConnection,
    meter: &str,
    cells: &[(usize, FoldedCell)],
) -> Result<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let keys: Vec<CellKey> = cells
        .iter()
        .map(|(level, c)| cell_key(*level, c.bucket, &c.series))
        .collect();
    let mut added: HashMap<CellKey, u64> = HashMap::new();
    let distinct: Vec<(&CellKey, &String)> = keys
        .iter()
        .zip(cells)
        .flat_map(|(key, (_, c))| c.cell.distinct.iter().map(move |v| (key, v)))
        .collect();
    if !distinct.is_empty() {
        let rows = sqlx::query(
            "INSERT INTO meter_distinct (meter, level, bucket, tenant_id, dims, value)
             SELECT $1, * FROM UNNEST($2::smallint[], $3::bigint[], $4::text[], $5::text[],
                                      $6::text[])
             ORDER BY 1, 2, 3, 4, 5
             ON CONFLICT DO NOTHING
             RETURNING level, bucket, tenant_id, dims",
        )
        .bind(meter)
        .bind(distinct.iter().map(|(k, _)| k.0).collect::<Vec<_>>())
        .bind(distinct.iter().map(|(k, _)| k.1).collect::<Vec<_>>())
        .bind(
            distinct
                .iter()
                .map(|(k, _)| k.2.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            distinct
                .iter()
                .map(|(k, _)| k.3.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(distinct.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        for row in rows {
            let key: CellKey = (
                row.try_get("level").map_err(db)?,
                row.try_get("bucket").map_err(db)?,
                row.try_get("tenant_id").map_err(db)?,
                row.try_get("dims").map_err(db)?,
            );
            *added.entry(key).or_default() += 1;
        }
    }
    // One primary-key lookup per key (LATERAL), never a scan of all the meter's cells.
    let rows = sqlx::query(&format!(
        "SELECT c.level, c.bucket, c.tenant_id, c.dims, {CELL_COLUMNS}
         FROM UNNEST($2::smallint[], $3::bigint[], $4::text[], $5::text[])
              AS k(level, bucket, tenant_id, dims)
         CROSS JOIN LATERAL (
             SELECT * FROM meter_cells c
             WHERE c.meter = $1 AND c.level = k.level AND c.bucket = k.bucket
               AND c.tenant_id = k.tenant_id AND c.dims = k.dims
         ) c"
    ))
    .bind(meter)
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2.as_str()).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.3.as_str()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(db)?;
    let mut stored: HashMap<CellKey, (MeterCell, u64)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let key: CellKey = (
            row.try_get("level").map_err(db)?,
            row.try_get("bucket").map_err(db)?,
            row.try_get("tenant_id").map_err(db)?,
            row.try_get("dims").map_err(db)?,
        );
        stored.insert(key, cell_from_row(row, 4)?);
    }
    let mut merged: Vec<(&CellKey, MeterCell, u64)> = Vec::with_capacity(cells.len());
    for (key, (_, folded)) in keys.iter().zip(cells) {
        let (mut cell, mut distinct) = stored.remove(key).unwrap_or_default();
        cell.merge(&folded.cell);
        distinct += added.get(key).copied().unwrap_or(0);
        merged.push((key, cell, distinct));
    }
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let text = |a: Option<Amount>| a.map(|a| a.nanos().to_string());
    sqlx::query(
        "INSERT INTO meter_cells AS c (meter, level, bucket, tenant_id, dims, event_count,
             skipped, sum, min, max, latest_ts, latest_id, latest, distinct_count)
         SELECT $1, level, bucket, tenant_id, dims, event_count, skipped, sum, min, max,
                latest_ts, latest_id, latest, distinct_count
         FROM UNNEST($2::smallint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                     $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[],
                     $12::text[], $13::text[], $14::bigint[])
              AS t(level, bucket, tenant_id, dims, event_count, skipped, sum, min, max,
                   latest_ts, latest_id, latest, distinct_count)
         ORDER BY 2, 3, 4, 5
         ON CONFLICT (meter, level, bucket, tenant_id, dims) DO UPDATE SET
             event_count = excluded.event_count, skipped = excluded.skipped,
             sum = excluded.sum, min = excluded.min, max = excluded.max,
             latest_ts = excluded.latest_ts, latest_id = excluded.latest_id,
             latest = excluded.latest, distinct_count = excluded.distinct_count",
    )
    .bind(meter)
    .bind(merged.iter().map(|m| m.0.0).collect::<Vec<_>>())
    .bind(merged.iter().map(|m| m.0.1).collect::<Vec<_>>())
    .bind(merged.iter().map(|m| m.0.2.as_str()).collect::<Vec<_>>())
    .bind(merged.iter().map(|m| m.0.3.as_str()).collect::<Vec<_>>())
    .bind(merged.iter().map(|m| count(m.1.count)).collect::<Vec<_>>())
    .bind(
        merged
            .iter()
            .map(|m| count(m.1.skipped))
            .collect::<Vec<_>>(),
    )
    .bind(
        merged
            .iter()
            .map(|m| m.1.sum.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(merged.iter().map(|m| text(m.1.min)).collect::<Vec<_>>())
    .bind(merged.iter().map(|m| text(m.1.max)).collect::<Vec<_>>())
    .bind(
        merged
            .iter()
            .map(|m| m.1.latest.as_ref().map(|l| l.timestamp_micros))
            .collect::<Vec<_>>(),
    )
    .bind(
        merged
            .iter()
            .map(|m| m.1.latest.as_ref().map(|l| l.id.clone()))
            .collect::<Vec<_>>(),
    )
    .bind(
        merged
            .iter()
            .map(|m| text(m.1.latest.as_ref().map(|l| l.value)))
            .collect::<Vec<_>>(),
    )
    .bind(merged.iter().map(|m| count(m.2)).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(())
}

/// The meter's answer: from its cells when it is folded, else recounted from the events.
pub(crate) async fn query(pool: &PgPool, meter: &Meter, query: &MeterQuery) -> Result<MeterReport> {
    let mut aggregator = MeterAggregator::new(meter, query);
    let mut conn = pool.acquire().await.map_err(db)?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    // Cells sum over resource and feature: a query by either recounts, as does one of a
    // meter whose backfill is still running.
    let point = if tenant_cells_answer(query) {
        point_of(&mut tx, meter).await?.filter(|p| p.backfilled)
    } else {
        None
    };
    let Some(point) = point else {
        events::scan(&mut tx, &query.event_filter(meter), |event| {
            aggregator.push(event);
        })
        .await?;
        tx.commit().await.map_err(db)?;
        return Ok(aggregator.finish());
    };
    // Every read from here on is a range of an index (unfolded events by `xact`, cells by
    // key, edges by time); on tables without statistics (autovacuum off, or just after a
    // large backfill) the planner may otherwise scan them whole.
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    let levels = tenant_levels(meter.spec.aggregation);
    let sizes: Vec<i64> = levels.iter().map(|&l| TENANT_LAYOUTS[l].size).collect();
    let pieces = query_pieces(query, &sizes);
    let unique = meter.spec.aggregation == Aggregation::UniqueCount;
    // Events not folded yet, inside the ranges read from cells.
    let mut unfolded = Unfolded::new(meter, &pieces, levels);
    if !unfolded.covers_nothing() {
        // By `xact` alone, through its index: the unfolded events are few, but a condition
        // on the time or the tenant lets the planner pick those indexes and walk every
        // event of the range. Times are matched below, tenants by the aggregator. Streamed:
        // a folder far behind leaves many.
        use futures::TryStreamExt as _;
        let sql = format!("{EVENT_SELECT} WHERE e.xact > $1 AND e.voided_at IS NULL");
        let mut rows = sqlx::query(&sql).bind(point.folded_seq).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await.map_err(db)? {
            unfolded.push(&mut aggregator, meter, &event_from_row(&row)?);
        }
    }

    let groups_every_key = groups_every_key(meter, query);
    for piece in &pieces {
        match *piece {
            Piece::Raw { start, end } => {
                let mut raw = query.event_filter(meter);
                raw.start = Some(position(start));
                raw.end = Some(position(end));
                events::scan(&mut tx, &raw, |event| aggregator.push(event)).await?;
            }
            Piece::Buckets { level, start, end } => {
                let level = levels[level];
                let size = TENANT_LAYOUTS[level].size;
                let one_cell_each =
                    unique && groups_every_key && buckets_are_windows(query, start, end, size);
                // Cells whose distinct values must be read, once the cells' stream ends.
                let mut touched = Vec::new();
                read_cells(
                    &mut tx,
                    meter,
                    query,
                    &mut aggregator,
                    (level, (start, end)),
                    unique && !one_cell_each,
                    |aggregator, bucket, id, cell, distinct| {
                        let at = position(bucket);
                        if !one_cell_each {
                            aggregator.push_series_cell(at, id, cell);
                        } else if unfolded.touched(level, bucket, aggregator.series(id)) {
                            touched.push((bucket, id, cell));
                        } else {
                            aggregator.push_series_distinct_total(at, id, &cell, distinct);
                        }
                    },
                )
                .await?;
                for (bucket, id, mut cell) in touched {
                    let series = aggregator.series(id);
                    cell.distinct = distinct_values(&mut tx, meter, level, bucket, series).await?;
                    aggregator.push_series_cell(position(bucket), id, cell);
                }
            }
        }
    }
    tx.commit().await.map_err(db)?;
    Ok(aggregator.finish())
}

/// One stored cell's distinct values.
async fn distinct_values(
    conn: &mut PgConnection,
    meter: &Meter,
    level: usize,
    bucket: i64,
    series: &SeriesKey,
) -> Result<BTreeSet<String>> {
    let key = cell_key(level, bucket, series);
    let values: Vec<String> = sqlx::query_scalar(
        "SELECT value FROM meter_distinct
         WHERE meter = $1 AND level = $2 AND bucket = $3 AND tenant_id = $4 AND dims = $5",
    )
    .bind(meter.key.as_str())
    .bind(key.0)
    .bind(key.1)
    .bind(&key.2)
    .bind(&key.3)
    .fetch_all(conn)
    .await
    .map_err(db)?;
    Ok(values.into_iter().collect())
}

/// `sql` with the parameters of [`read_cells`]' narrowing bound.
fn narrow_query<'q>(
    sql: &'q str,
    meter: &'q str,
    level: i16,
    range: (i64, i64),
    tenant: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(meter)
        .bind(level)
        .bind(range.0)
        .bind(range.1)
        .bind(tenant)
}

/// Streams the stored cells of `level` with a bucket in `range`, of the query's tenant if it
/// names one (with their distinct values when `with_distinct`), to `each` with their
/// bucket, series (interned in `aggregator`) and number of distinct values. Streamed, so
/// the server sums cells while PostgreSQL still sends them.
async fn read_cells(
    conn: &mut PgConnection,
    meter: &Meter,
    query: &MeterQuery,
    aggregator: &mut MeterAggregator,
    (level, range): (usize, (i64, i64)),
    with_distinct: bool,
    mut each: impl FnMut(&mut MeterAggregator, i64, SeriesId, MeterCell, u64),
) -> Result<()> {
    use futures::TryStreamExt as _;
    let level = i16::try_from(level).expect("two levels");
    let tenant = query.tenant_id.as_ref().map(|t| t.as_str());
    let narrow = "meter = $1 AND level = $2 AND bucket >= $3 AND bucket < $4
                  AND ($5::text IS NULL OR tenant_id = $5)";
    let aggregation = meter.spec.aggregation;
    let columns = answer_columns(aggregation, true);
    let cells_sql =
        format!("SELECT bucket, tenant_id, dims, {columns} FROM meter_cells WHERE {narrow}");
    let distinct_sql =
        format!("SELECT bucket, tenant_id, dims, value FROM meter_distinct WHERE {narrow}");
    // Cells and distinct values are narrowed alike.
    let narrowed = |sql| narrow_query(sql, meter.key.as_str(), level, range, tenant);
    // The row's series, interned: tens of thousands of cells share a few thousand.
    // Unchecked reads, as in `answer_cell_from_row`: the schema fixes these types.
    let series_of = |aggregator: &mut MeterAggregator, row: &PgRow| -> Result<SeriesId> {
        let tenant_id: &str = row.try_get_unchecked(1).map_err(db)?;
        let dims: &str = row.try_get_unchecked(2).map_err(db)?;
        aggregator
            .cell_series(tenant_id, "", "", dims)
            .ok_or_else(|| PgError::corrupt("meter cell dimensions", dims.to_owned()).into())
    };
    let mut distinct: FxHashMap<(i64, SeriesId), BTreeSet<String>> = FxHashMap::default();
    if with_distinct {
        let mut rows = narrowed(&distinct_sql).fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(db)? {
            let id = series_of(aggregator, &row)?;
            distinct
                .entry((row.try_get(0).map_err(db)?, id))
                .or_default()
                .insert(row.try_get(3).map_err(db)?);
        }
    }
    let mut rows = narrowed(&cells_sql).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await.map_err(db)? {
        let bucket: i64 = row.try_get_unchecked(0).map_err(db)?;
        let id = series_of(aggregator, &row)?;
        let (mut cell, count) = answer_cell_from_row(&row, 3, aggregation)?;
        if with_distinct {
            cell.distinct = distinct.remove(&(bucket, id)).unwrap_or_default();
        }
        each(aggregator, bucket, id, cell, count);
    }
    Ok(())
}

/// Recomputes, for every meter whose cells hold `event` (just voided in `conn`'s
/// transaction), the cells that held it, from the events of its day that are folded and
/// still count. Every meter's `corrections` is bumped first, which also locks the fold
/// rows against a concurrent write of the folder.
pub(crate) async fn unfold(conn: &mut PgConnection, event: &Event) -> Result<()> {
    // Locked in key order, so two voids never wait for each other in a cycle.
    sqlx::query(
        "UPDATE meter_folds SET corrections = corrections + 1
         WHERE meter IN (SELECT meter FROM meter_folds ORDER BY meter FOR UPDATE)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let xact: Option<i64> = sqlx::query_scalar("SELECT xact FROM events WHERE id = $1 AND ts = $2")
        .bind(event.id.as_str())
        .bind(event.timestamp)
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    let ts = event.timestamp.timestamp_micros();
    let day = bucket_start(ts, DAY_MICROS);
    for f in folding(conn).await? {
        let meter = &f.meter;
        if !meter.spec.filter.matches(event) || !f.point.folded(xact, ts, event.id.as_str()) {
            continue;
        }
        let series = SeriesKey::of(meter, event);
        let by_tenant = SeriesShape::Tenant.project(&series);
        let levels = tenant_levels(meter.spec.aggregation);
        let layouts = tenant_layouts(levels);
        let mut fold = MeterFold::new(meter, &layouts);
        let rows = sqlx::query(&format!(
            "{EVENT_SELECT} WHERE e.tenant_id = $1 AND e.ts >= $2 AND e.ts < $3
               AND e.voided_at IS NULL"
        ))
        .bind(event.tenant_id.as_str())
        .bind(position(day))
        .bind(position(day + DAY_MICROS))
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        for row in &rows {
            let xact: Option<i64> = row.try_get("xact").map_err(db)?;
            let other = event_from_row(row)?;
            if f.point
                .folded(xact, other.timestamp.timestamp_micros(), other.id.as_str())
                && SeriesShape::Tenant.project(&SeriesKey::of(meter, &other)) == by_tenant
            {
                fold.push(&other);
            }
        }
        let mut rebuilt: HashMap<(usize, i64), FoldedCell> = fold
            .into_cells()
            .into_iter()
            .filter(|c| c.series == by_tenant)
            .map(|cell| ((cell.layout, cell.bucket), cell))
            .collect();
        let mut cells = Vec::new();
        for (i, (&level, layout)) in levels.iter().zip(&layouts).enumerate() {
            let bucket = bucket_start(ts, layout.size);
            let key = cell_key(level, bucket, &by_tenant);
            for table in ["meter_cells", "meter_distinct"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE meter = $1 AND level = $2 AND bucket = $3
                       AND tenant_id = $4 AND dims = $5"
                ))
                .bind(meter.key.as_str())
                .bind(key.0)
                .bind(key.1)
                .bind(&key.2)
                .bind(&key.3)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            }
            if let Some(cell) = rebuilt.remove(&(i, bucket)) {
                cells.push((level, cell));
            }
        }
        merge_cells(conn, meter.key.as_str(), &cells).await?;
    }
    Ok(())
}

/// Deletes the cells of buckets before `older_than` (retention dropped their events), in
/// `conn`'s transaction.
pub(crate) async fn forget_before(
    conn: &mut PgConnection,
    older_than: DateTime<Utc>,
) -> Result<()> {
    for table in ["meter_cells", "meter_distinct"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE bucket < $1"))
            .bind(older_than.timestamp_micros())
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Stops the background folder when the last handle of a store is dropped.
#[derive(Debug)]
pub(crate) struct Folder(tokio::task::AbortHandle);

impl Folder {
    /// Folds meters of `pool` every `every` (at once again while a backlog remains), `batch`
    /// events per meter group a step, letting `writes` go first, until dropped or the pool
    /// is closed.
    pub(crate) fn spawn(
        pool: PgPool,
        every: Duration,
        batch: usize,
        writes: Arc<Writes>,
    ) -> Folder {
        let task = tokio::spawn(async move {
            let mut failing = false;
            loop {
                if pool.is_closed() {
                    return;
                }
                match fold(&pool, batch, Some(&writes)).await {
                    Ok(true) => {
                        failing = false;
                        continue;
                    }
                    Ok(false) => failing = false,
                    // Once per outage: the next tick tries again.
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "meter folding failed; retrying");
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(every).await;
            }
        });
        Folder(task.abort_handle())
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        self.0.abort();
    }
}
