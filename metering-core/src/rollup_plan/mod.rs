//! Rollup range planning, for backend implementers.
//!
//! A backend that keeps exact sums per UTC bucket ("rollups", aligned on the Unix epoch)
//! answers a sum over a half-open range `[start, end)` by reading whole buckets where they fit
//! and the events themselves only where they do not. This module decides which is which; the
//! backend maps a level to its table and runs the reads. All instants are microseconds since
//! the Unix epoch (UTC), so planning is plain integer arithmetic.
//!
//! The range is first cut into windows (at `cuts`, the window starts inside the range), so
//! that every bucket a piece names lies wholly inside one window and can be summed into it by
//! its start. Each window is read from the coarsest bucket size that fits, with finer buckets
//! at its edges and raw-event fragments only where an edge is off the finest size. Adjacent
//! pieces of the same kind are then joined, so consecutive windows cost one read.
//!
//! A 15-minute finest size fits every modern IANA offset (all are multiples of 15 minutes);
//! windows of zones with older, odder offsets (local mean time with seconds) and unaligned
//! query bounds fall back to raw events around those instants only.
//!
//! ```
//! use metering_core::rollup_plan::{BucketSizes, Piece, plan};
//!
//! const QUARTER: i64 = 15 * 60 * 1_000_000;
//! const DAY: i64 = 96 * QUARTER;
//! const SIZES: BucketSizes<'static> = BucketSizes::new(&[QUARTER, DAY]);
//!
//! // From 00:07 on day 0 to the end of day 2, cut into days: raw minutes, quarters, two days.
//! let start = 7 * 60 * 1_000_000;
//! let cuts = [DAY, 2 * DAY];
//! assert_eq!(
//!     plan(start, 3 * DAY, &cuts, SIZES),
//!     [
//!         Piece::Raw { start, end: QUARTER },
//!         Piece::Buckets { level: 0, start: QUARTER, end: DAY },
//!         Piece::Buckets { level: 1, start: DAY, end: 3 * DAY },
//!     ]
//! );
//! ```

use chrono::{DateTime, Utc};

use chrono_tz::Tz;

use crate::query::AggregateQuery;
use crate::window::WindowType;

#[cfg(test)]
mod tests;

/// The bucket sizes a backend keeps, in microseconds, finest first; each is a multiple of the
/// one before, so buckets nest exactly. A level is an index into this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSizes<'a> {
    sizes: &'a [i64],
}

impl<'a> BucketSizes<'a> {
    /// Bucket sizes from `sizes`, finest first. An empty list means every read is raw.
    ///
    /// # Panics
    ///
    /// If a size is not positive, or is not a larger multiple of the size before it. Used to
    /// initialise a `const`, the check runs at compile time.
    #[must_use]
    pub const fn new(sizes: &'a [i64]) -> Self {
        let mut i = 0;
        while i < sizes.len() {
            assert!(sizes[i] > 0, "bucket sizes are positive");
            if i > 0 {
                assert!(
                    sizes[i] > sizes[i - 1] && sizes[i] % sizes[i - 1] == 0,
                    "each bucket size is a larger multiple of the one before"
                );
            }
            i += 1;
        }
        BucketSizes { sizes }
    }

    /// The sizes, finest first.
    #[must_use]
    pub const fn as_slice(self) -> &'a [i64] {
        self.sizes
    }

    /// The size of `level`, if the backend keeps that level.
    #[must_use]
    pub fn get(self, level: usize) -> Option<i64> {
        self.sizes.get(level).copied()
    }
}

/// One part `[start, end)` of a planned range, in microseconds, and where to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Read the events themselves, by timestamp.
    Raw {
        /// First microsecond.
        start: i64,
        /// First microsecond after.
        end: i64,
    },
    /// Read the rollup rows of `level` whose bucket starts in `[start, end)`; the range is a
    /// whole number of buckets of that level, and no bucket crosses a window cut.
    Buckets {
        /// Index into the [`BucketSizes`] the piece was planned with.
        level: usize,
        /// Start of the first bucket.
        start: i64,
        /// End of the last bucket.
        end: i64,
    },
}

impl Piece {
    /// First microsecond.
    #[must_use]
    pub const fn start(self) -> i64 {
        match self {
            Piece::Raw { start, .. } | Piece::Buckets { start, .. } => start,
        }
    }

    /// First microsecond after.
    #[must_use]
    pub const fn end(self) -> i64 {
        match self {
            Piece::Raw { end, .. } | Piece::Buckets { end, .. } => end,
        }
    }

    /// The bucket level read, or `None` for raw events.
    #[must_use]
    pub const fn level(self) -> Option<usize> {
        match self {
            Piece::Raw { .. } => None,
            Piece::Buckets { level, .. } => Some(level),
        }
    }
}

/// The start of the bucket of `size` microseconds that holds `t`: `t` rounded down to a
/// multiple of `size`, also before 1970.
///
/// `size` must be positive, and `t` an instant a `DateTime<Utc>` can hold.
#[must_use]
pub fn bucket_start(t: i64, size: i64) -> i64 {
    t - t.rem_euclid(size)
}

/// `t` rounded up to a multiple of `size`.
fn bucket_end_from(t: i64, size: i64) -> i64 {
    let f = bucket_start(t, size);
    if f == t { t } else { f.saturating_add(size) }
}

/// The starts of the windows of `query` that meet `[query.start, query.end)`, in order: the
/// first is that of the window holding `query.start`, and the others are the cuts to pass to
/// [`plan`]. Empty when the range is.
#[must_use]
pub fn window_starts(query: &AggregateQuery) -> Vec<DateTime<Utc>> {
    window_starts_in(query.start, query.end, query.window, query.tz)
}

/// The starts of the windows of `window` in `tz` that meet `[start, end)`, in order, as
/// [`window_starts`] gives them for an aggregate query.
#[must_use]
pub fn window_starts_in(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    window: WindowType,
    tz: Tz,
) -> Vec<DateTime<Utc>> {
    let mut starts = Vec::new();
    if start >= end {
        return starts;
    }
    let granularity = window.granularity();
    let mut current = window.window(start, tz);
    loop {
        starts.push(current.start);
        if current.end >= end {
            break;
        }
        let next = granularity.next(current, tz);
        if next.start <= current.start {
            // Cannot happen with real zones; never loop forever on a broken one.
            break;
        }
        current = next;
    }
    starts
}

/// The pieces that answer `[start, end)` cut into windows at `cuts` (ascending; cuts outside
/// the range are ignored), in ascending order.
///
/// # Behavior
///
/// - The pieces are disjoint and half-open, and cover `[start, end)` exactly; an empty or
///   reversed range has none.
/// - A bucket piece is a whole number of buckets of its level, and none of its buckets crosses
///   a cut, so each bucket belongs to the window its start falls in.
/// - Each window is read from the coarsest size with a whole bucket inside it, finer sizes at
///   its edges, and raw events only where an edge (of the range or of a window) is off the
///   finest size.
/// - Adjacent pieces of the same kind (raw, or buckets of one level) are joined.
#[must_use]
pub fn plan(start: i64, end: i64, cuts: &[i64], sizes: BucketSizes<'_>) -> Vec<Piece> {
    merge(cut(start, end, cuts, sizes))
}

/// Each window's part of `[start, end)`, decomposed, before joining.
fn cut(start: i64, end: i64, cuts: &[i64], sizes: BucketSizes<'_>) -> Vec<Piece> {
    debug_assert!(cuts.is_sorted(), "cuts are ascending");
    let mut pieces = Vec::new();
    let mut from = start;
    for &at in cuts {
        if from < at && at < end {
            decompose(from, at, sizes, &mut pieces);
            from = at;
        }
    }
    decompose(from, end, sizes, &mut pieces);
    pieces
}

/// Cuts `[start, end)` into raw fragments at edges off the finest size and the coarsest whole
/// buckets in between, appending to `out` in ascending order. Nothing is appended for an
/// empty range.
fn decompose(start: i64, end: i64, sizes: BucketSizes<'_>, out: &mut Vec<Piece>) {
    if start >= end {
        return;
    }
    let Some(finest) = sizes.get(0) else {
        out.push(Piece::Raw { start, end });
        return;
    };
    let (mut lo, mut hi) = (bucket_end_from(start, finest), bucket_start(end, finest));
    if lo >= hi {
        out.push(Piece::Raw { start, end });
        return;
    }
    // The right-hand edges, outermost first; appended in reverse at the end.
    let mut tail = Vec::new();
    if start < lo {
        out.push(Piece::Raw { start, end: lo });
    }
    if hi < end {
        tail.push(Piece::Raw { start: hi, end });
    }
    for level in 0..sizes.as_slice().len() {
        if let Some(next) = sizes.get(level + 1) {
            let (a, b) = (bucket_end_from(lo, next), bucket_start(hi, next));
            if a < b {
                // A whole coarser bucket fits: this level only fills the edges.
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

/// Joins adjacent pieces of the same kind. A joined bucket piece still has each bucket inside
/// the window it was cut for, and an event lies in its own timestamp's window.
fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
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
