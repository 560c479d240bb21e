//! Timestamp helpers: RFC 3339 in and out, microsecond precision.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 date-time with any offset into UTC.
#[must_use]
pub fn parse_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parses an event timestamp: RFC 3339 with any offset, or a date-time without an offset
/// (`2025-11-20T10:31:00.123456`, as Python's `datetime.isoformat()` writes a naive UTC
/// time), which means UTC.
#[must_use]
pub fn parse_event_timestamp(text: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(text).or_else(|| {
        NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc())
    })
}

/// Parses a range bound of a query: RFC 3339 with any offset, or a plain date
/// (`2025-11-20`), which means midnight UTC.
#[must_use]
pub fn parse_range_bound(text: &str) -> Option<DateTime<Utc>> {
    parse_rfc3339(text).or_else(|| {
        NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
    })
}

/// Drops precision below a microsecond, the precision every store keeps.
#[must_use]
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Formats as RFC 3339 in UTC with a `Z` suffix and at most microsecond precision.
#[must_use]
pub fn format_rfc3339(t: DateTime<Utc>) -> String {
    truncate_micros(t).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Serde helpers writing [`format_rfc3339`] and reading any RFC 3339 text.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339 UTC.
    ///
    /// # Errors
    ///
    /// Whatever the serializer reports.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    /// Deserializes RFC 3339 text with any offset.
    ///
    /// # Errors
    ///
    /// When the text is not RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 date-time"))
    }

    /// The same for `Option<DateTime<Utc>>`.
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes `Some` as RFC 3339 UTC and `None` as null.
        ///
        /// # Errors
        ///
        /// Whatever the serializer reports.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format_rfc3339(*t)),
                None => s.serialize_none(),
            }
        }

        /// Deserializes RFC 3339 text or null.
        ///
        /// # Errors
        ///
        /// When the text is not RFC 3339.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => super::super::parse_rfc3339(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 date-time")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_micros_at_most() {
        let t = parse_rfc3339("2025-11-20T11:31:00.123456789+01:00").expect("valid");
        assert_eq!(format_rfc3339(t), "2025-11-20T10:31:00.123456Z");
        let t = parse_rfc3339("2025-11-20T10:31:00Z").expect("valid");
        assert_eq!(format_rfc3339(t), "2025-11-20T10:31:00Z");
        assert!(parse_rfc3339("2025-11-20").is_none());
    }

    #[test]
    fn event_timestamps_without_an_offset_are_utc() {
        for (text, utc) in [
            ("2026-12-02T07:45:00.123456", "2026-12-02T07:45:00.123456Z"),
            ("2026-12-02T07:45:00", "2026-12-02T07:45:00Z"),
            ("2026-12-02T07:45:00.5", "2026-12-02T07:45:00.500Z"),
            ("2026-12-02T08:45:00+01:00", "2026-12-02T07:45:00Z"),
        ] {
            let t = parse_event_timestamp(text).expect(text);
            assert_eq!(format_rfc3339(t), utc, "{text}");
        }
        for bad in [
            "2026-12-02",
            "2026-12-02 07:45",
            "07:45:00",
            "2026-13-02T07:45:00",
        ] {
            assert!(parse_event_timestamp(bad).is_none(), "{bad}");
        }
    }
}
