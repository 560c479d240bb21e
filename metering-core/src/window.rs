//! Calendar windows in any IANA time zone: aggregate windows and quota periods.
//!
//! A window is half-open, `[start, end)`, and `end` is the next window's `start`.
//! Boundaries are local wall-clock times (midnight, the top of the hour, Monday, the 1st)
//! in the chosen zone, mapped to UTC instants:
//!
//! - a boundary that falls in a DST gap (the clocks jump over it) becomes the first
//!   instant after the jump, so the window that holds the jump is shorter;
//! - a boundary that happens twice (the clocks fall back over it) counts once, at its first
//!   occurrence, except for hourly windows, where both occurrences start a window so
//!   every hourly window lasts one real hour.

use std::fmt;
use std::str::FromStr;

use chrono::offset::LocalResult;
use chrono::{
    DateTime, Datelike, Days, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The calendar unit a window spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// One hour.
    Hour,
    /// One day, from local midnight.
    Day,
    /// One ISO week, from Monday local midnight.
    Week,
    /// One calendar month, from the 1st at local midnight.
    Month,
    /// One calendar year, from January 1st at local midnight.
    Year,
}

/// A half-open time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// First instant inside the window.
    #[serde(with = "crate::time::rfc3339")]
    pub start: DateTime<Utc>,
    /// First instant after the window; the next window's `start`.
    #[serde(with = "crate::time::rfc3339")]
    pub end: DateTime<Utc>,
}

impl Window {
    /// Whether `t` lies inside: `start <= t < end`.
    #[must_use]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

impl Granularity {
    /// The window of this granularity in `tz` that contains `t`.
    #[must_use]
    pub fn window(self, t: DateTime<Utc>, tz: Tz) -> Window {
        let local = t.with_timezone(&tz).naive_local();
        let first = self.truncate(local);
        let start = self.start_at_or_before(first, t, tz);
        let end = self.first_boundary_after(first, t, tz);
        Window { start, end }
    }

    /// The window right after `window` (whose `start` is `window.end`).
    #[must_use]
    pub fn next(self, window: Window, tz: Tz) -> Window {
        self.window(window.end, tz)
    }

    fn start_at_or_before(self, first: NaiveDateTime, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let mut boundary = first;
        // The local truncation of t nearly always resolves to an instant <= t; the loop only
        // steps back when a zone's history makes it resolve later.
        for _ in 0..4 {
            if let Some(start) = self
                .resolve(boundary, tz)
                .into_iter()
                .filter(|b| *b <= t)
                .max()
            {
                return start;
            }
            boundary = self.step(boundary, -1);
        }
        t
    }

    fn first_boundary_after(self, first: NaiveDateTime, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let mut boundary = first;
        for _ in 0..6 {
            if let Some(end) = self
                .resolve(boundary, tz)
                .into_iter()
                .filter(|b| *b > t)
                .min()
            {
                return end;
            }
            boundary = self.step(boundary, 1);
        }
        t + Duration::seconds(1)
    }

    /// The local wall-clock boundary at or before `local`.
    fn truncate(self, local: NaiveDateTime) -> NaiveDateTime {
        let date = local.date();
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight exists");
        match self {
            Granularity::Hour => date
                .and_hms_opt(local.hour(), 0, 0)
                .expect("the top of an existing hour exists"),
            Granularity::Day => midnight(date),
            Granularity::Week => {
                midnight(date - Days::new(u64::from(date.weekday().num_days_from_monday())))
            }
            Granularity::Month => midnight(date.with_day(1).expect("day 1 exists")),
            Granularity::Year => {
                midnight(NaiveDate::from_ymd_opt(date.year(), 1, 1).expect("January 1st exists"))
            }
        }
    }

    /// The local boundary `n` units after (or before, when negative) `boundary`.
    fn step(self, boundary: NaiveDateTime, n: i32) -> NaiveDateTime {
        let forward = n >= 0;
        let k = n.unsigned_abs();
        let shifted = match self {
            Granularity::Hour => Some(boundary + Duration::hours(i64::from(n))),
            Granularity::Day => {
                let d = Days::new(u64::from(k));
                if forward {
                    boundary.checked_add_days(d)
                } else {
                    boundary.checked_sub_days(d)
                }
            }
            Granularity::Week => {
                let d = Days::new(7 * u64::from(k));
                if forward {
                    boundary.checked_add_days(d)
                } else {
                    boundary.checked_sub_days(d)
                }
            }
            Granularity::Month | Granularity::Year => {
                let m = Months::new(if self == Granularity::Year { 12 * k } else { k });
                if forward {
                    boundary.checked_add_months(m)
                } else {
                    boundary.checked_sub_months(m)
                }
            }
        };
        shifted.unwrap_or(boundary)
    }

    /// The instants at which the local boundary `local` happens in `tz`.
    fn resolve(self, local: NaiveDateTime, tz: Tz) -> Vec<DateTime<Utc>> {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
            LocalResult::Ambiguous(first, second) => {
                if self == Granularity::Hour {
                    vec![first.with_timezone(&Utc), second.with_timezone(&Utc)]
                } else {
                    vec![first.with_timezone(&Utc)]
                }
            }
            LocalResult::None => vec![first_instant_at_or_after(local, tz)],
        }
    }
}

/// The first instant whose local time in `tz` is at or after `local`, for a `local` inside
/// a DST gap: a binary search over the seconds around it (gaps last hours at most).
fn first_instant_at_or_after(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    let guess = local.and_utc().timestamp();
    let (mut lo, mut hi) = (guess - 30 * 3600, guess + 30 * 3600);
    let reached = |secs: i64| {
        DateTime::from_timestamp(secs, 0)
            .is_some_and(|u| u.with_timezone(&tz).naive_local() >= local)
    };
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    DateTime::from_timestamp(lo, 0).unwrap_or_else(|| local.and_utc())
}

macro_rules! window_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal => $gran:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in increasing length.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The calendar unit.
            #[must_use]
            pub fn granularity(self) -> Granularity {
                match self {
                    $($name::$variant => Granularity::$gran),+
                }
            }

            /// The window containing `t` in `tz`.
            #[must_use]
            pub fn window(self, t: DateTime<Utc>, tz: Tz) -> Window {
                self.granularity().window(t, tz)
            }

            /// The lowercase name used on the wire.
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

window_enum!(
    /// The window of an aggregate query.
    WindowType {
        /// Hours.
        Hourly = "hourly" => Hour,
        /// Days.
        Daily = "daily" => Day,
        /// ISO weeks, starting Monday.
        Weekly = "weekly" => Week,
        /// Calendar months.
        Monthly = "monthly" => Month,
    }
);

window_enum!(
    /// The period a quota's usage is counted over; usage resets at the end of each.
    QuotaPeriod {
        /// Hours.
        Hourly = "hourly" => Hour,
        /// Days.
        Daily = "daily" => Day,
        /// Calendar months.
        Monthly = "monthly" => Month,
        /// Calendar years.
        Yearly = "yearly" => Year,
    }
);

/// Parses an IANA time zone name such as `Europe/Paris` or `UTC`.
///
/// # Errors
///
/// A message naming the unknown zone.
pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("unknown IANA time zone `{name}`"))
}

/// Serde support for a [`Tz`] as its IANA name.
pub mod tz_serde {
    use chrono_tz::Tz;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the zone's name.
    ///
    /// # Errors
    ///
    /// Whatever the serializer reports.
    pub fn serialize<S: Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(tz.name())
    }

    /// Reads a zone name.
    ///
    /// # Errors
    ///
    /// For an unknown zone.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
        super::parse_tz(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> DateTime<Utc> {
        parse_rfc3339(s).expect("valid timestamp")
    }

    fn tz(name: &str) -> Tz {
        parse_tz(name).expect("known zone")
    }

    #[test]
    fn utc_windows() {
        let at = t("2025-11-20T10:31:00Z");
        let w = WindowType::Hourly.window(at, Tz::UTC);
        assert_eq!(
            (w.start, w.end),
            (t("2025-11-20T10:00:00Z"), t("2025-11-20T11:00:00Z"))
        );
        let w = WindowType::Daily.window(at, Tz::UTC);
        assert_eq!(
            (w.start, w.end),
            (t("2025-11-20T00:00:00Z"), t("2025-11-21T00:00:00Z"))
        );
        let w = WindowType::Weekly.window(at, Tz::UTC);
        assert_eq!(
            (w.start, w.end),
            (t("2025-11-17T00:00:00Z"), t("2025-11-24T00:00:00Z"))
        );
        let w = WindowType::Monthly.window(at, Tz::UTC);
        assert_eq!(
            (w.start, w.end),
            (t("2025-11-01T00:00:00Z"), t("2025-12-01T00:00:00Z"))
        );
        let w = QuotaPeriod::Yearly.window(at, Tz::UTC);
        assert_eq!(
            (w.start, w.end),
            (t("2025-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn half_hour_and_quarter_hour_offsets() {
        let w = WindowType::Hourly.window(t("2025-11-20T10:31:00Z"), tz("Asia/Kolkata"));
        assert_eq!(w.start, t("2025-11-20T10:30:00Z"));
        let w = WindowType::Daily.window(t("2025-11-20T10:31:00Z"), tz("Asia/Kathmandu"));
        assert_eq!(
            (w.start, w.end),
            (t("2025-11-19T18:15:00Z"), t("2025-11-20T18:15:00Z"))
        );
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let ny = tz("America/New_York");
        let spring = WindowType::Daily.window(t("2025-03-09T12:00:00Z"), ny);
        assert_eq!(spring.end - spring.start, Duration::hours(23));
        let fall = WindowType::Daily.window(t("2025-11-02T12:00:00Z"), ny);
        assert_eq!(fall.end - fall.start, Duration::hours(25));
        assert_eq!(fall.start, t("2025-11-02T04:00:00Z"));
    }

    #[test]
    fn repeated_hour_gives_two_hourly_windows() {
        let ny = tz("America/New_York");
        // 01:30 EDT and 01:30 EST.
        let first = WindowType::Hourly.window(t("2025-11-02T05:30:00Z"), ny);
        let second = WindowType::Hourly.window(t("2025-11-02T06:30:00Z"), ny);
        assert_eq!(
            (first.start, first.end),
            (t("2025-11-02T05:00:00Z"), t("2025-11-02T06:00:00Z"))
        );
        assert_eq!(
            (second.start, second.end),
            (t("2025-11-02T06:00:00Z"), t("2025-11-02T07:00:00Z"))
        );
    }

    #[test]
    fn boundary_in_a_gap_moves_to_the_jump() {
        // Lord Howe moves from +10:30 to +11 at 02:00 local; 02:00-02:30 does not exist.
        let lh = tz("Australia/Lord_Howe");
        let w = WindowType::Hourly.window(t("2025-10-04T15:40:00Z"), lh); // 02:40 +11
        assert_eq!(w.start, t("2025-10-04T15:30:00Z"));
        assert_eq!(w.end, t("2025-10-04T16:00:00Z"));
        // A zone whose midnight is skipped: America/Santiago springs forward at 00:00.
        let scl = tz("America/Santiago");
        let w = WindowType::Daily.window(t("2025-09-07T12:00:00Z"), scl);
        assert_eq!(w.end - w.start, Duration::hours(23));
    }

    #[test]
    fn parse_names() {
        assert_eq!("weekly".parse::<WindowType>(), Ok(WindowType::Weekly));
        assert!("fortnightly".parse::<WindowType>().is_err());
        assert_eq!("yearly".parse::<QuotaPeriod>(), Ok(QuotaPeriod::Yearly));
        assert!(parse_tz("Mars/Olympus").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ZONES: &[&str] = &[
            "UTC",
            "America/New_York",
            "Europe/London",
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "America/Santiago",
            "Pacific/Chatham",
            "America/St_Johns",
            "Europe/Amsterdam",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// start <= t < end, the window is its own start's window, and end is the next start.
            #[test]
            fn windows_tile_time(
                secs in -2_500_000_000i64..4_000_000_000i64,
                zone in 0..ZONES.len(),
                g in 0usize..5,
            ) {
                let gran = [Granularity::Hour, Granularity::Day, Granularity::Week,
                            Granularity::Month, Granularity::Year][g];
                let tz = parse_tz(ZONES[zone]).expect("known zone");
                let t = DateTime::from_timestamp(secs, 0).expect("in range");
                let w = gran.window(t, tz);
                prop_assert!(w.start <= t && t < w.end, "{t} not in {w:?}");
                prop_assert_eq!(gran.window(w.start, tz), w);
                let next = gran.window(w.end, tz);
                prop_assert_eq!(next.start, w.end);
                prop_assert_eq!(gran.window(w.end - Duration::microseconds(1), tz), w);
            }
        }
    }
}
