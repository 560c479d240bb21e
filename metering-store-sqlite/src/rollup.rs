//! Rollup buckets: how a batch updates them, and how a time range is cut into bucket reads
//! plus raw-event fragments so that every answer stays exact.
//!
//! Buckets come in three sizes that nest exactly and are aligned on the Unix epoch (UTC):
//! 15 minutes, one hour and one day. A 15-minute grid is fine enough for every modern IANA
//! offset (all are multiples of 15 minutes), so a window boundary of any zone falls on a
//! bucket boundary; where one does not (historic local mean time offsets with seconds, or a
//! query `start`/`end` that is not aligned), [`decompose`] leaves a raw fragment and the
//! events of that fragment are read one by one. Pieces are cut per window, so every bucket a
//! piece names lies wholly inside one window.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use crate::error::DbResult;

/// Microseconds in 15 minutes.
pub(crate) const QUARTER_MICROS: i64 = 15 * 60 * 1_000_000;
/// Microseconds in an hour.
pub(crate) const HOUR_MICROS: i64 = 60 * 60 * 1_000_000;
/// Microseconds in a day.
pub(crate) const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// Bucket sizes by level (the `level` column); each divides the next.
pub(crate) const LEVELS: [i64; 3] = [QUARTER_MICROS, HOUR_MICROS, DAY_MICROS];

/// The split of a sum of nano-units into two integers: `hi * 10^18 + lo`.
const LO_MODULUS: u128 = 1_000_000_000_000_000_000;

/// One part of a time range, `[start, end)` in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Read the events themselves.
    Raw {
        /// First microsecond.
        start: i64,
        /// First microsecond after.
        end: i64,
    },
    /// Read the rollup rows of `level` whose bucket starts in `[start, end)`; the range is a
    /// whole number of buckets.
    Buckets {
        /// Index into [`LEVELS`].
        level: usize,
        /// First bucket start.
        start: i64,
        /// End of the last bucket.
        end: i64,
    },
}

/// `t` rounded down to a multiple of `size` (also for instants before 1970).
pub(crate) fn floor(t: i64, size: i64) -> i64 {
    t - t.rem_euclid(size)
}

/// `t` rounded up to a multiple of `size`.
pub(crate) fn ceil(t: i64, size: i64) -> i64 {
    let f = floor(t, size);
    if f == t { t } else { f.saturating_add(size) }
}

/// Cuts `[start, end)` into raw fragments at unaligned edges and the coarsest whole buckets
/// in between, appending to `out`. Nothing is appended for an empty range.
pub(crate) fn decompose(start: i64, end: i64, out: &mut Vec<Piece>) {
    if start >= end {
        return;
    }
    let (mut lo, mut hi) = (ceil(start, LEVELS[0]), floor(end, LEVELS[0]));
    if lo >= hi {
        out.push(Piece::Raw { start, end });
        return;
    }
    let mut tail = Vec::new();
    if start < lo {
        out.push(Piece::Raw { start, end: lo });
    }
    if hi < end {
        tail.push(Piece::Raw { start: hi, end });
    }
    for level in 0..LEVELS.len() {
        if let Some(&next) = LEVELS.get(level + 1) {
            let (a, b) = (ceil(lo, next), floor(hi, next));
            if a < b {
                if lo < a {
                    out.push(Piece::Buckets {
                        level,
                        start: lo,
                        end: a,
                    });
                }
                if b < hi {
                    tail.push(Piece::Buckets {
                        level,
                        start: b,
                        end: hi,
                    });
                }
                lo = a;
                hi = b;
                continue;
            }
        }
        out.push(Piece::Buckets {
            level,
            start: lo,
            end: hi,
        });
        break;
    }
    out.extend(tail.into_iter().rev());
}

/// Joins adjacent pieces of the same kind, so consecutive windows cost one read. A bucket
/// still lies inside the window it was cut for, and an event inside its own timestamp's.
pub(crate) fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let joined = match (out.last_mut(), piece) {
            (Some(Piece::Raw { end, .. }), Piece::Raw { start, end: e }) if *end == start => {
                *end = e;
                true
            }
            (
                Some(Piece::Buckets { level: l, end, .. }),
                Piece::Buckets {
                    level,
                    start,
                    end: e,
                },
            ) if *l == level && *end == start => {
                *end = e;
                true
            }
            _ => false,
        };
        if !joined {
            out.push(piece);
        }
    }
    out
}

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
            .entry((tenant, resource, feature, floor(ts, QUARTER_MICROS)))
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
        for (level, &size) in LEVELS.iter().enumerate() {
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

type Sums<'a> = HashMap<(&'a str, &'a str, &'a str, i64), (u128, i64)>;

/// The same sums over buckets of `size`.
fn coarsen<'a>(finer: &Sums<'a>, size: i64) -> Sums<'a> {
    let mut coarser = Sums::with_capacity(finer.len());
    for (key, sum) in finer {
        let slot = coarser
            .entry((key.0, key.1, key.2, floor(key.3, size)))
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

    const MIN: i64 = 60 * 1_000_000;

    /// Every microsecond of the range is covered exactly once, bucket pieces are whole
    /// buckets of their level, and raw pieces never span a whole quarter.
    fn check(start: i64, end: i64) -> Vec<Piece> {
        let mut pieces = Vec::new();
        decompose(start, end, &mut pieces);
        let mut at = start;
        for p in &pieces {
            match *p {
                Piece::Raw { start: s, end: e } => {
                    assert_eq!(s, at, "{pieces:?}");
                    assert!(s < e);
                    assert!(
                        ceil(s, QUARTER_MICROS) >= floor(e, QUARTER_MICROS)
                            || s == start
                            || e == end
                    );
                    at = e;
                }
                Piece::Buckets {
                    level,
                    start: s,
                    end: e,
                } => {
                    assert_eq!(s, at, "{pieces:?}");
                    assert!(s < e);
                    assert_eq!(s % LEVELS[level], 0);
                    assert_eq!(e % LEVELS[level], 0);
                    at = e;
                }
            }
        }
        if start < end {
            assert_eq!(at, end, "{pieces:?}");
        } else {
            assert!(pieces.is_empty());
        }
        pieces
    }

    #[test]
    fn aligned_days_are_day_buckets() {
        let pieces = check(3 * DAY_MICROS, 5 * DAY_MICROS);
        assert_eq!(
            pieces,
            [Piece::Buckets {
                level: 2,
                start: 3 * DAY_MICROS,
                end: 5 * DAY_MICROS
            }]
        );
    }

    #[test]
    fn an_offset_day_uses_hours() {
        // A New York winter day: 05:00Z to 05:00Z.
        let s = 10 * DAY_MICROS + 5 * HOUR_MICROS;
        let pieces = check(s, s + DAY_MICROS);
        assert_eq!(
            pieces,
            [Piece::Buckets {
                level: 1,
                start: s,
                end: s + DAY_MICROS
            }]
        );
        // Two such days, cut per window, read as one range.
        let mut both = pieces.clone();
        decompose(s + DAY_MICROS, s + 2 * DAY_MICROS, &mut both);
        assert_eq!(
            merge(both),
            [Piece::Buckets {
                level: 1,
                start: s,
                end: s + 2 * DAY_MICROS
            }]
        );
    }

    #[test]
    fn quarter_offsets_and_raw_edges() {
        // Kathmandu (+05:45) day, queried from an unaligned start.
        let s = 20 * DAY_MICROS - 5 * HOUR_MICROS - 45 * MIN;
        let q = s + 7 * MIN + 3;
        let pieces = check(q, s + DAY_MICROS);
        assert_eq!(
            pieces[0],
            Piece::Raw {
                start: q,
                end: s + 15 * MIN
            }
        );
        assert!(
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Buckets { level: 0, .. }))
        );
        assert!(
            pieces
                .iter()
                .any(|p| matches!(p, Piece::Buckets { level: 1, .. }))
        );
        assert!(
            !pieces
                .iter()
                .any(|p| matches!(p, Piece::Buckets { level: 2, .. }))
        );
        // Local mean time offsets have seconds: both edges are raw.
        let lmt = 5 * DAY_MICROS + 17 * MIN + 30 * 1_000_000;
        let pieces = check(lmt, lmt + DAY_MICROS);
        assert!(matches!(pieces.first(), Some(Piece::Raw { .. })));
        assert!(matches!(pieces.last(), Some(Piece::Raw { .. })));
    }

    #[test]
    fn short_and_empty_ranges() {
        assert_eq!(check(5, 10), [Piece::Raw { start: 5, end: 10 }]);
        assert_eq!(
            check(MIN, 20 * MIN),
            [Piece::Raw {
                start: MIN,
                end: 20 * MIN
            }]
        );
        check(10, 10);
        check(10, 5);
        check(-DAY_MICROS - 7, 3 * DAY_MICROS + 11);
    }

    #[test]
    fn decomposition_covers_many_ranges_exactly() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i64::try_from(seed % (40 * 24 * 60)).expect("small") * MIN / 4
                + i64::try_from(seed % 3).expect("small") * 7
        };
        for _ in 0..2_000 {
            let (a, b) = (next(), next());
            check(a.min(b) - 10 * DAY_MICROS, a.max(b));
        }
    }

    #[test]
    fn floor_and_ceil_before_the_epoch() {
        assert_eq!(floor(-1, QUARTER_MICROS), -QUARTER_MICROS);
        assert_eq!(ceil(-1, QUARTER_MICROS), 0);
        assert_eq!(ceil(0, QUARTER_MICROS), 0);
    }

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
