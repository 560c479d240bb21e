//! Rollup buckets: their sizes, and how a batch updates them.
//!
//! Buckets come in three sizes that nest exactly and are aligned on the Unix epoch (UTC):
//! 15 minutes, one hour and one day; the `level` column is the index into [`LEVELS`]. How a
//! time range is cut into bucket reads plus raw-event fragments is planned by
//! [`metering_core::rollup_plan`].

use std::collections::HashMap;

use metering_core::rollup_plan::{BucketSizes, bucket_start};
use rusqlite::{Transaction, params};

use metering_core::Event;

use crate::error::{DbResult, SqliteError};

/// Microseconds in 15 minutes.
pub(crate) const QUARTER_MICROS: i64 = 15 * 60 * 1_000_000;
/// Microseconds in an hour.
pub(crate) const HOUR_MICROS: i64 = 60 * 60 * 1_000_000;
/// Microseconds in a day.
pub(crate) const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// Bucket sizes by level (the `level` column); each divides the next.
pub(crate) const LEVELS: BucketSizes<'static> =
    BucketSizes::new(&[QUARTER_MICROS, HOUR_MICROS, DAY_MICROS]);

/// The split of a sum of nano-units into two integers: `hi * 10^18 + lo`.
const LO_MODULUS: u128 = 1_000_000_000_000_000_000;

/// Sums of the events a batch inserted, per bucket of every level.
#[derive(Debug, Default)]
pub(crate) struct RollupDelta<'a> {
    /// `(tenant, resource, feature, quarter start)` → (nano-units, events).
    quarters: Sums<'a>,
}

impl<'a> RollupDelta<'a> {
    /// Counts one inserted event.
    pub(crate) fn add(
        &mut self,
        tenant: &'a str,
        resource: &'a str,
        feature: &'a str,
        ts: i64,
        nanos: u128,
    ) {
        let slot = self
            .quarters
            .entry((tenant, resource, feature, bucket_start(ts, QUARTER_MICROS)))
            .or_insert((0, 0));
        slot.0 += nanos;
        slot.1 += 1;
    }

    /// Adds the sums to the stored buckets of every level: one statement per distinct bucket.
    pub(crate) fn apply(&self, tx: &Transaction<'_>) -> DbResult<()> {
        if self.quarters.is_empty() {
            return Ok(());
        }
        // Nearly every batch lands in buckets that exist already (a quarter holds many
        // batches), so try the one-seek UPDATE first and INSERT only a new bucket. The
        // writer thread holds the write lock, so nothing can create the row in between.
        let mut update = tx.prepare_cached(
            "UPDATE rollups SET
                 sum_lo = (sum_lo + ?7) % 1000000000000000000,
                 sum_hi = sum_hi + ?6 + (sum_lo + ?7) / 1000000000000000000,
                 event_count = event_count + ?8
             WHERE level = ?1 AND bucket = ?2 AND tenant_id = ?3 AND resource = ?4 AND feature = ?5",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO rollups (level, bucket, tenant_id, resource, feature, sum_hi, sum_lo, event_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        let mut upsert = |level: usize, key: &(&str, &str, &str, i64), sum: &(u128, i64)| {
            let (hi, lo) = split(sum.0);
            let level = i64::try_from(level).expect("three levels");
            let args = params![level, key.3, key.0, key.1, key.2, hi, lo, sum.1];
            if update.execute(args)? == 0 {
                insert.execute(args)?;
            }
            Ok::<_, rusqlite::Error>(())
        };
        let mut sums = self.quarters.clone();
        for (level, &size) in LEVELS.as_slice().iter().enumerate() {
            if level > 0 {
                sums = coarsen(&sums, size);
            }
            for (key, sum) in &sums {
                upsert(level, key, sum)?;
            }
        }
        Ok(())
    }
}

impl RollupDelta<'_> {
    /// Takes one stored event out of its bucket of every level (it was voided); a bucket left
    /// with no event is deleted, as if the event had never been written.
    pub(crate) fn subtract(tx: &Transaction<'_>, event: &Event) -> DbResult<()> {
        let (hi, lo) = split(event.quantity.nanos());
        let ts = event.timestamp.timestamp_micros();
        // Every expression of an UPDATE reads the row as it was, so the borrow from `sum_hi`
        // is decided on the old `sum_lo`.
        let mut update = tx.prepare_cached(
            "UPDATE rollups SET
                 sum_hi = sum_hi - ?6 - (CASE WHEN sum_lo >= ?7 THEN 0 ELSE 1 END),
                 sum_lo = CASE WHEN sum_lo >= ?7 THEN sum_lo - ?7 ELSE sum_lo - ?7 + 1000000000000000000 END,
                 event_count = event_count - 1
             WHERE level = ?1 AND bucket = ?2 AND tenant_id = ?3 AND resource = ?4 AND feature = ?5",
        )?;
        let mut empty = tx.prepare_cached(
            "DELETE FROM rollups WHERE level = ?1 AND bucket = ?2 AND tenant_id = ?3
                 AND resource = ?4 AND feature = ?5 AND event_count <= 0",
        )?;
        for (level, &size) in LEVELS.as_slice().iter().enumerate() {
            let level = i64::try_from(level).expect("three levels");
            let bucket = bucket_start(ts, size);
            let key = params![
                level,
                bucket,
                event.tenant_id.as_str(),
                event.resource.as_str(),
                event.feature.as_str()
            ];
            if update.execute(params![
                level,
                bucket,
                event.tenant_id.as_str(),
                event.resource.as_str(),
                event.feature.as_str(),
                hi,
                lo
            ])? != 1
            {
                return Err(SqliteError::Corrupt(format!(
                    "no rollup holds event `{}`",
                    event.id
                )));
            }
            empty.execute(key)?;
        }
        Ok(())
    }
}

type Sums<'a> = HashMap<(&'a str, &'a str, &'a str, i64), (u128, i64)>;

/// The same sums over buckets of `size`.
fn coarsen<'a>(finer: &Sums<'a>, size: i64) -> Sums<'a> {
    let mut coarser = Sums::with_capacity(finer.len());
    for (key, sum) in finer {
        let slot = coarser
            .entry((key.0, key.1, key.2, bucket_start(key.3, size)))
            .or_insert((0, 0));
        slot.0 += sum.0;
        slot.1 += sum.1;
    }
    coarser
}

/// Splits nano-units into the `(sum_hi, sum_lo)` columns.
pub(crate) fn split(nanos: u128) -> (i64, i64) {
    let hi = i64::try_from(nanos / LO_MODULUS).unwrap_or(i64::MAX);
    let lo = i64::try_from(nanos % LO_MODULUS).expect("below 10^18");
    (hi, lo)
}

/// Joins the `(sum_hi, sum_lo)` columns into nano-units.
pub(crate) fn join(hi: i64, lo: i64) -> u128 {
    u128::try_from(hi).unwrap_or(0) * LO_MODULUS + u128::try_from(lo).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_split_and_join() {
        for n in [
            0u128,
            1,
            LO_MODULUS - 1,
            LO_MODULUS,
            7 * LO_MODULUS + 5,
            u128::from(u64::MAX) * 1000,
        ] {
            let (hi, lo) = split(n);
            assert_eq!(join(hi, lo), n);
        }
    }
}
