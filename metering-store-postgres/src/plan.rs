//! Splitting a time range into pieces read from rollups and pieces read from raw events.
//!
//! Rollups hold exact sums per UTC bucket of 15 minutes and of one day. A range
//! `[start, end)` that is cut into windows (at `cuts`) is read from the coarsest bucket size on
//! which every cut falls, so that each bucket lies inside one window; the edges of the range
//! that are not on that size's boundaries are read from finer buckets, and only what is off a
//! 15-minute boundary from the raw events. Every time zone of today has an offset that is a
//! multiple of 15 minutes; windows of zones with older, odder offsets fall back to raw events.

use chrono::{DateTime, Utc};

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
    /// The table this source reads.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Source::Raw => "events",
            Source::Quarter => "rollups_15m",
            Source::Day => "rollups_1d",
        }
    }

    /// The bucket length in microseconds (`None` for raw events).
    fn bucket_micros(self) -> Option<i64> {
        match self {
            Source::Raw => None,
            Source::Quarter => Some(15 * 60 * 1_000_000),
            Source::Day => Some(86_400 * 1_000_000),
        }
    }

    /// The next finer source.
    fn finer(self) -> Source {
        match self {
            Source::Day => Source::Quarter,
            Source::Quarter | Source::Raw => Source::Raw,
        }
    }
}

/// A half-open part `[start, end)` of a range and where to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    /// Where to read it.
    pub(crate) source: Source,
    /// First instant.
    pub(crate) start: DateTime<Utc>,
    /// First instant after.
    pub(crate) end: DateTime<Utc>,
}

fn aligned(t: DateTime<Utc>, micros: i64) -> bool {
    t.timestamp_micros().rem_euclid(micros) == 0
}

fn from_micros(m: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or(fallback)
}

fn floor_to(t: DateTime<Utc>, micros: i64) -> DateTime<Utc> {
    let m = t.timestamp_micros();
    from_micros(m - m.rem_euclid(micros), t)
}

fn ceil_to(t: DateTime<Utc>, micros: i64) -> DateTime<Utc> {
    let floor = floor_to(t, micros);
    if floor == t {
        t
    } else {
        from_micros(floor.timestamp_micros().saturating_add(micros), t)
    }
}

/// The pieces of `[start, end)` such that no bucket read crosses one of `cuts`.
pub(crate) fn plan(start: DateTime<Utc>, end: DateTime<Utc>, cuts: &[DateTime<Utc>]) -> Vec<Piece> {
    let top = [Source::Day, Source::Quarter]
        .into_iter()
        .find(|s| {
            let micros = s.bucket_micros().expect("rollup sources have buckets");
            cuts.iter().all(|c| aligned(*c, micros))
        })
        .unwrap_or(Source::Raw);
    let mut pieces = Vec::new();
    split(start, end, top, &mut pieces);
    pieces
}

fn split(start: DateTime<Utc>, end: DateTime<Utc>, source: Source, out: &mut Vec<Piece>) {
    if start >= end {
        return;
    }
    let Some(micros) = source.bucket_micros() else {
        out.push(Piece { source, start, end });
        return;
    };
    let lo = ceil_to(start, micros);
    let hi = floor_to(end, micros);
    if lo >= hi {
        split(start, end, source.finer(), out);
        return;
    }
    split(start, lo, source.finer(), out);
    out.push(Piece {
        source,
        start: lo,
        end: hi,
    });
    split(hi, end, source.finer(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn t(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, m, s)
            .single()
            .expect("valid")
    }

    fn covers_exactly(pieces: &[Piece], start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut at = start;
        for p in pieces {
            assert_eq!(p.start, at, "{pieces:?}");
            assert!(p.start < p.end);
            if let Some(m) = p.source.bucket_micros() {
                assert!(aligned(p.start, m) && aligned(p.end, m), "{p:?}");
            }
            at = p.end;
        }
        assert_eq!(at, end);
    }

    #[test]
    fn daily_utc_windows_use_day_buckets_inside() {
        let (start, end) = (t(1, 10, 7, 3), t(5, 13, 50, 0));
        let cuts = [t(2, 0, 0, 0), t(3, 0, 0, 0), t(4, 0, 0, 0), t(5, 0, 0, 0)];
        let pieces = plan(start, end, &cuts);
        covers_exactly(&pieces, start, end);
        let sources: Vec<Source> = pieces.iter().map(|p| p.source).collect();
        assert_eq!(
            sources,
            [
                Source::Raw,
                Source::Quarter,
                Source::Day,
                Source::Quarter,
                Source::Raw
            ]
        );
        assert_eq!(pieces[2].start, t(2, 0, 0, 0));
        assert_eq!(pieces[2].end, t(5, 0, 0, 0));
    }

    #[test]
    fn half_hour_offsets_use_quarter_buckets() {
        let (start, end) = (t(1, 0, 0, 0), t(3, 0, 0, 0));
        let cuts = [t(1, 18, 30, 0), t(2, 18, 30, 0)];
        let pieces = plan(start, end, &cuts);
        covers_exactly(&pieces, start, end);
        assert!(pieces.iter().all(|p| p.source == Source::Quarter));
    }

    #[test]
    fn odd_offsets_fall_back_to_raw_events() {
        let (start, end) = (t(1, 0, 0, 0), t(3, 0, 0, 0));
        let cuts = [t(1, 23, 40, 28)];
        assert_eq!(
            plan(start, end, &cuts),
            [Piece {
                source: Source::Raw,
                start,
                end
            }]
        );
    }

    #[test]
    fn tiny_ranges_are_raw_and_empty_ranges_empty() {
        let start = t(1, 0, 1, 0);
        let pieces = plan(start, start + Duration::minutes(5), &[]);
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].source, Source::Raw);
        assert!(plan(start, start, &[]).is_empty());
    }
}
