use chrono::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::window::{WindowType, parse_tz};

mod properties;

const MIN: i64 = 60 * 1_000_000;
const QUARTER: i64 = 15 * MIN;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Quarters, hours and days.
const THREE: BucketSizes<'static> = BucketSizes::new(&[QUARTER, HOUR, DAY]);
/// Quarters and days.
const TWO: BucketSizes<'static> = BucketSizes::new(&[QUARTER, DAY]);

/// A proptest failure with the pieces in its message.
fn fail(why: &str, pieces: &[Piece]) -> TestCaseError {
    TestCaseError::fail(format!("{why}: {pieces:?}"))
}

/// (a) and (b): ascending, non-empty, contiguous pieces that cover `[start, end)` exactly, and
/// bucket pieces made of whole buckets of a level `sizes` has.
fn covers(
    pieces: &[Piece],
    start: i64,
    end: i64,
    sizes: BucketSizes<'_>,
) -> Result<(), TestCaseError> {
    if start >= end {
        return if pieces.is_empty() {
            Ok(())
        } else {
            Err(fail("an empty range has pieces", pieces))
        };
    }
    let mut at = start;
    for p in pieces {
        if p.start() != at || p.start() >= p.end() {
            return Err(fail("not contiguous", pieces));
        }
        if let Some(level) = p.level() {
            let size = sizes
                .get(level)
                .ok_or_else(|| fail("unknown level", pieces))?;
            if p.start().rem_euclid(size) != 0 || p.end().rem_euclid(size) != 0 {
                return Err(fail("bucket piece off its size", pieces));
            }
        }
        at = p.end();
    }
    if at == end {
        Ok(())
    } else {
        Err(fail("short of the end", pieces))
    }
}

/// The checks of [`covers`], as a plain assertion for unit tests.
fn check(start: i64, end: i64, cuts: &[i64], sizes: BucketSizes<'_>) -> Vec<Piece> {
    let pieces = plan(start, end, cuts, sizes);
    if let Err(e) = covers(&pieces, start, end, sizes) {
        panic!("{e}");
    }
    pieces
}

#[test]
fn aligned_days_are_day_buckets() {
    let pieces = check(3 * DAY, 5 * DAY, &[], THREE);
    assert_eq!(
        pieces,
        [Piece::Buckets {
            level: 2,
            start: 3 * DAY,
            end: 5 * DAY
        }]
    );
}

#[test]
fn an_offset_day_uses_hours() {
    // A New York winter day: 05:00Z to 05:00Z.
    let s = 10 * DAY + 5 * HOUR;
    let one = Piece::Buckets {
        level: 1,
        start: s,
        end: s + DAY,
    };
    assert_eq!(check(s, s + DAY, &[], THREE), [one]);
    // Two such days, cut per window, read as one range.
    assert_eq!(
        check(s, s + 2 * DAY, &[s + DAY], THREE),
        [Piece::Buckets {
            level: 1,
            start: s,
            end: s + 2 * DAY
        }]
    );
}

#[test]
fn quarter_offsets_and_raw_edges() {
    // Kathmandu (+05:45) day, queried from an unaligned start.
    let s = 20 * DAY - 5 * HOUR - 45 * MIN;
    let q = s + 7 * MIN + 3;
    let pieces = check(q, s + DAY, &[], THREE);
    assert_eq!(
        pieces[0],
        Piece::Raw {
            start: q,
            end: s + 15 * MIN
        }
    );
    let levels: Vec<Option<usize>> = pieces.iter().map(|p| p.level()).collect();
    assert!(levels.contains(&Some(0)));
    assert!(levels.contains(&Some(1)));
    assert!(!levels.contains(&Some(2)));
    // Local mean time offsets have seconds: both edges are raw.
    let lmt = 5 * DAY + 17 * MIN + 30 * 1_000_000;
    let pieces = check(lmt, lmt + DAY, &[], THREE);
    assert!(matches!(pieces.first(), Some(Piece::Raw { .. })));
    assert!(matches!(pieces.last(), Some(Piece::Raw { .. })));
}

#[test]
fn short_and_empty_ranges() {
    assert_eq!(check(5, 10, &[], THREE), [Piece::Raw { start: 5, end: 10 }]);
    assert_eq!(
        check(MIN, 20 * MIN, &[], THREE),
        [Piece::Raw {
            start: MIN,
            end: 20 * MIN
        }]
    );
    assert!(check(10, 10, &[], THREE).is_empty());
    assert!(check(10, 5, &[], THREE).is_empty());
    check(-DAY - 7, 3 * DAY + 11, &[], THREE);
    // No sizes at all: one raw read per run of windows.
    assert_eq!(
        check(-7, 3 * DAY, &[DAY], BucketSizes::new(&[])),
        [Piece::Raw {
            start: -7,
            end: 3 * DAY
        }]
    );
}

#[test]
fn bucket_bounds_before_the_epoch() {
    assert_eq!(bucket_start(-1, QUARTER), -QUARTER);
    assert_eq!(bucket_end_from(-1, QUARTER), 0);
    assert_eq!(bucket_end_from(0, QUARTER), 0);
}

/// 2025-03-`d` `h`:`m`:`s` UTC, in microseconds.
fn t(d: u32, h: u32, m: u32, s: u32) -> i64 {
    Utc.with_ymd_and_hms(2025, 3, d, h, m, s)
        .single()
        .expect("valid")
        .timestamp_micros()
}

#[test]
fn daily_utc_windows_use_day_buckets_inside() {
    let (start, end) = (t(1, 10, 7, 3), t(5, 13, 50, 0));
    let cuts = [t(2, 0, 0, 0), t(3, 0, 0, 0), t(4, 0, 0, 0), t(5, 0, 0, 0)];
    let pieces = check(start, end, &cuts, TWO);
    let levels: Vec<Option<usize>> = pieces.iter().map(|p| p.level()).collect();
    assert_eq!(levels, [None, Some(0), Some(1), Some(0), None]);
    assert_eq!(pieces[2].start(), t(2, 0, 0, 0));
    assert_eq!(pieces[2].end(), t(5, 0, 0, 0));
}

#[test]
fn half_hour_offsets_use_quarter_buckets() {
    let (start, end) = (t(1, 0, 0, 0), t(3, 0, 0, 0));
    let cuts = [t(1, 18, 30, 0), t(2, 18, 30, 0)];
    let pieces = check(start, end, &cuts, TWO);
    assert_eq!(
        pieces,
        [Piece::Buckets {
            level: 0,
            start,
            end
        }]
    );
}

#[test]
fn odd_offsets_read_raw_events_only_around_the_cut() {
    let (start, end) = (t(1, 0, 0, 0), t(3, 0, 0, 0));
    let cut = t(1, 23, 40, 28);
    assert_eq!(
        check(start, end, &[cut], TWO),
        [
            Piece::Buckets {
                level: 0,
                start,
                end: t(1, 23, 30, 0)
            },
            Piece::Raw {
                start: t(1, 23, 30, 0),
                end: t(1, 23, 45, 0)
            },
            Piece::Buckets {
                level: 0,
                start: t(1, 23, 45, 0),
                end: t(2, 0, 0, 0)
            },
            Piece::Buckets {
                level: 1,
                start: t(2, 0, 0, 0),
                end
            },
        ]
    );
}

#[test]
fn tiny_ranges_are_raw() {
    let start = t(1, 0, 1, 0);
    assert_eq!(
        check(start, start + 5 * MIN, &[], TWO),
        [Piece::Raw {
            start,
            end: start + 5 * MIN
        }]
    );
}

#[test]
fn merge_joins_only_touching_pieces_of_one_kind() {
    let raw = |start, end| Piece::Raw { start, end };
    let quarters = |start, end| Piece::Buckets {
        level: 0,
        start,
        end,
    };
    let pieces = vec![
        raw(0, 5),
        raw(5, 9),
        raw(10, 12),
        quarters(12, 20),
        Piece::Buckets {
            level: 1,
            start: 20,
            end: 40,
        },
        quarters(40, 50),
        quarters(50, 60),
    ];
    assert_eq!(
        merge(pieces),
        [
            raw(0, 9),
            raw(10, 12),
            quarters(12, 20),
            Piece::Buckets {
                level: 1,
                start: 20,
                end: 40
            },
            quarters(40, 60),
        ]
    );
}

#[test]
fn window_starts_walk_the_windows_of_the_range() {
    let tz = parse_tz("Asia/Kolkata").expect("known zone");
    let at = |d, h, m| {
        Utc.with_ymd_and_hms(2025, 3, d, h, m, 0)
            .single()
            .expect("valid")
    };
    // Kolkata midnight is 18:30 UTC the day before.
    let query = AggregateQuery::new(WindowType::Daily, at(1, 10, 0), at(3, 18, 30)).tz(tz);
    assert_eq!(
        window_starts(&query),
        [
            Utc.with_ymd_and_hms(2025, 2, 28, 18, 30, 0)
                .single()
                .expect("valid"),
            at(1, 18, 30),
            at(2, 18, 30)
        ]
    );
    let empty = AggregateQuery::new(WindowType::Daily, at(2, 0, 0), at(2, 0, 0));
    assert!(window_starts(&empty).is_empty());
}

#[test]
#[should_panic(expected = "larger multiple")]
fn sizes_must_nest() {
    let _ = BucketSizes::new(&[QUARTER, HOUR + 1]);
}
