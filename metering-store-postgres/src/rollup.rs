//! Rollups: the levels this store keeps, where each piece of a planned range is read, and the
//! compaction that folds the deltas ingest appends into `rollups_15m` and `rollups_1d`.
//!
//! Rollups hold exact sums per UTC bucket of 15 minutes (`rollups_15m`) and of one day
//! (`rollups_1d`). Which parts of a range are read from which level, and which from the raw
//! events, is planned by [`metering_core::rollup_plan`]; this module maps its levels to tables.
//!
//! # Compaction
//!
//! Ingest writes each batch's 15-minute sums to `rollup_deltas`, a plain append. Compaction
//! moves them into the rollup tables in one statement: every read sees a delta either in
//! `rollup_deltas` or in the rollups, never in both and never in neither, so reads (which
//! add the deltas to the rollups) stay exact while it runs.

use std::time::Duration;

use chrono::{DateTime, Utc};
use metering_core::rollup_plan::{self, BucketSizes, Piece};
use sqlx::PgPool;

use crate::error::db;

/// Microseconds in 15 minutes.
const QUARTER_MICROS: i64 = 15 * 60 * 1_000_000;
/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// The bucket sizes of `rollups_15m` (level 0) and `rollups_1d` (level 1).
const LEVELS: BucketSizes<'static> = BucketSizes::new(&[QUARTER_MICROS, DAY_MICROS]);

/// Where a piece of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Source {
    /// The `events` table.
    Raw,
    /// `rollups_15m`.
    Quarter,
    /// `rollups_1d`.
    Day,
}

impl Source {
    /// Where `piece` is read from.
    pub(crate) fn of(piece: Piece) -> Source {
        match piece.level() {
            None => Source::Raw,
            Some(0) => Source::Quarter,
            // `LEVELS` has two sizes.
            Some(_) => Source::Day,
        }
    }

    /// The table this source reads.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Source::Raw => "events",
            Source::Quarter => "rollups_15m",
            Source::Day => "rollups_1d",
        }
    }
}

/// The pieces of `[start, end)` cut into windows at `cuts`, so that no bucket read crosses
/// one of them.
pub(crate) fn plan(start: DateTime<Utc>, end: DateTime<Utc>, cuts: &[DateTime<Utc>]) -> Vec<Piece> {
    let cuts: Vec<i64> = cuts.iter().map(DateTime::timestamp_micros).collect();
    rollup_plan::plan(
        start.timestamp_micros(),
        end.timestamp_micros(),
        &cuts,
        LEVELS,
    )
}

/// The instant of a bound of a planned piece.
pub(crate) fn instant(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("a piece bound lies inside the planned range")
}

/// The advisory lock key of rollup compaction in the current schema.
macro_rules! rollups_lock_key {
    () => {
        "hashtextextended('metering:rollups:' || current_schema(), 0)"
    };
}

/// Most deltas one statement moves, so that a backlog is worked off in bounded steps.
const STEP: i64 = 50_000;

/// One compaction step. The advisory lock (held to the end of the statement, its implicit
/// transaction) lets one store at a time compact a schema, and is also taken by retention
/// before it deletes rollups; a store that does not get it moves nothing. Rollup rows are
/// upserted in key order, each once. Returns how many deltas were moved.
const COMPACT: &str = concat!(
    "WITH turn AS (SELECT pg_try_advisory_xact_lock(",
    rollups_lock_key!(),
    r") AS ours),
moved AS (
    DELETE FROM rollup_deltas
    WHERE (SELECT ours FROM turn)
      AND ctid = ANY (ARRAY(SELECT ctid FROM rollup_deltas LIMIT $1))
    RETURNING tenant_id, feature, resource, bucket, quantity, events
),
quarters AS MATERIALIZED (
    SELECT tenant_id, feature, resource, bucket, sum(quantity) AS quantity,
           sum(events)::bigint AS events
    FROM moved GROUP BY 1, 2, 3, 4
),
quarter AS (
    INSERT INTO rollups_15m AS r (tenant_id, feature, resource, bucket, quantity, events)
    SELECT * FROM quarters ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, feature, resource, bucket) DO UPDATE
    SET quantity = r.quantity + EXCLUDED.quantity, events = r.events + EXCLUDED.events
),
day AS (
    INSERT INTO rollups_1d AS r (tenant_id, feature, resource, bucket, quantity, events)
    SELECT tenant_id, feature, resource, date_bin('1 day', bucket, TIMESTAMPTZ 'epoch'),
           sum(quantity), sum(events)
    FROM quarters GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, feature, resource, bucket) DO UPDATE
    SET quantity = r.quantity + EXCLUDED.quantity, events = r.events + EXCLUDED.events
)
SELECT count(*) FROM moved"
);

/// The advisory lock of [`COMPACT`], for a transaction that must not run beside it.
pub(crate) const LOCK_ROLLUPS: &str =
    concat!("SELECT pg_advisory_xact_lock(", rollups_lock_key!(), ")");

/// Runs compaction steps on `pool` until the deltas are (nearly) gone; returns how many moved.
pub(crate) async fn compact(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let moved: i64 = sqlx::query_scalar(COMPACT)
            .bind(STEP)
            .fetch_one(pool)
            .await?;
        total += u64::try_from(moved).unwrap_or(0);
        if moved < STEP {
            return Ok(total);
        }
    }
}

/// Vacuums `rollup_deltas` after a compaction moved rows out of it. Its rows live about a
/// second, and every read scans it: left to autovacuum (which visits a database once a
/// minute), a minute of a busy ingest's dead deltas stays in the table, and reads scanned
/// tens of megabytes of empty pages. Vacuumed after each compaction, the space is reused and
/// the empty tail cut off, so the table holds about one interval of deltas.
async fn vacuum_deltas(pool: &PgPool) -> Result<(), sqlx::Error> {
    // The simple protocol: VACUUM may not run in the implicit transaction of a prepared
    // statement's pipeline.
    sqlx::raw_sql("VACUUM rollup_deltas").execute(pool).await?;
    Ok(())
}

/// Stops the background compaction when the last handle of a store is dropped.
#[derive(Debug)]
pub(crate) struct Compactor(tokio::task::AbortHandle);

impl Compactor {
    /// Compacts the deltas of `pool` every `every` on a task of the current runtime, until
    /// the returned value is dropped or the pool is closed.
    pub(crate) fn spawn(pool: PgPool, every: Duration) -> Compactor {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                ticks.tick().await;
                if pool.is_closed() {
                    return;
                }
                let step = async {
                    if compact(&pool).await? > 0 {
                        vacuum_deltas(&pool).await?;
                    }
                    Ok::<_, sqlx::Error>(())
                };
                match step.await {
                    Ok(()) => failing = false,
                    // Once per outage, not every second: the next tick tries again.
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(error = %db(error), "rollup compaction failed; retrying");
                    }
                    Err(_) => {}
                }
            }
        });
        Compactor(task.abort_handle())
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.0.abort();
    }
}
