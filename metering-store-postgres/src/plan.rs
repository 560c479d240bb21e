//! The rollup levels this store keeps, and where each piece of a planned range is read.
//!
//! Rollups hold exact sums per UTC bucket of 15 minutes (`rollups_15m`) and of one day
//! (`rollups_1d`). Which parts of a range are read from which level, and which from the raw
//! events, is planned by [`metering_core::rollup_plan`]; this module maps its levels to tables.

use chrono::{DateTime, Utc};
use metering_core::rollup_plan::{self, BucketSizes, Piece};

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
