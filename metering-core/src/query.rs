//! Event queries (filters, pages, cursors) and aggregate queries (windows, group-by).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventId, Feature, Resource, TenantId};
use crate::quantity::Quantity;
use crate::window::{Window, WindowType};

/// The largest page size of an event query.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The highest page number (2^31 - 1, the largest signed 32-bit integer, as the OpenAPI
/// document says).
pub const MAX_PAGE: u32 = 2_147_483_647;
/// The page size when none is given.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Which events a query selects. Ranges are half-open: `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventFilter {
    /// Only this tenant.
    pub tenant_id: Option<TenantId>,
    /// Only this resource.
    pub resource: Option<Resource>,
    /// Only this feature.
    pub feature: Option<Feature>,
    /// Only events at or after this instant.
    pub start: Option<DateTime<Utc>>,
    /// Only events before this instant.
    pub end: Option<DateTime<Utc>>,
    /// Voided events too (listings and exports only; nothing counts a voided event).
    pub include_voided: bool,
}

impl EventFilter {
    /// Everything.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Restricts to a tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Restricts to a resource.
    #[must_use]
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Restricts to a feature.
    #[must_use]
    pub fn feature(mut self, feature: Feature) -> Self {
        self.feature = Some(feature);
        self
    }

    /// Restricts to `[start, end)`; either side may be open.
    #[must_use]
    pub fn between(mut self, start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Self {
        self.start = start;
        self.end = end;
        self
    }

    /// Selects voided events too.
    #[must_use]
    pub fn including_voided(mut self) -> Self {
        self.include_voided = true;
        self
    }

    /// Whether `event` is selected.
    #[must_use]
    pub fn matches(&self, event: &Event) -> bool {
        self.tenant_id
            .as_ref()
            .is_none_or(|t| *t == event.tenant_id)
            && self.resource.as_ref().is_none_or(|r| *r == event.resource)
            && self.feature.as_ref().is_none_or(|f| *f == event.feature)
            && self.start.is_none_or(|s| event.timestamp >= s)
            && self.end.is_none_or(|e| event.timestamp < e)
            && (self.include_voided || event.counts())
    }
}

/// The most digits of a cursor's microseconds (10^18 µs is about 31,700 years, well
/// inside the range of a date-time).
pub const MAX_CURSOR_MICROS_DIGITS: usize = 18;

/// A position in the event order, handed out as an opaque string.
///
/// Events are ordered newest `timestamp` first, ties by `id` descending; a cursor names
/// the last event of a page, and the next page starts strictly after it.
///
/// Its text is `<micros>.<id>`: the timestamp in microseconds since the Unix epoch (an
/// optional `-` and 1 to [`MAX_CURSOR_MICROS_DIGITS`] digits), a dot, and the event id's
/// bytes in lowercase hexadecimal (each a printable ASCII character, 1 to 128 of them). Only
/// that form is read back, so the OpenAPI document can state it as a pattern.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// The timestamp of the last event returned.
    pub timestamp: DateTime<Utc>,
    /// The id of the last event returned.
    pub id: EventId,
}

impl Cursor {
    /// The cursor after `event`.
    #[must_use]
    pub fn after(event: &Event) -> Self {
        Cursor {
            timestamp: event.timestamp,
            id: event.id.clone(),
        }
    }

    /// Whether `event` comes after this cursor in the event order.
    #[must_use]
    pub fn precedes(&self, event: &Event) -> bool {
        (event.timestamp, &event.id) < (self.timestamp, &self.id)
    }

    /// The opaque text form.
    #[must_use]
    pub fn encode(&self) -> String {
        use fmt::Write as _;
        let mut text = format!("{}.", self.timestamp.timestamp_micros());
        for byte in self.id.as_str().bytes() {
            let _ = write!(text, "{byte:02x}");
        }
        text
    }

    /// Reads the opaque text form, around which white space is ignored.
    ///
    /// # Errors
    ///
    /// When the text is not in the form [`Cursor::encode`] writes.
    pub fn decode(text: &str) -> Result<Self, String> {
        let invalid = || "is not a valid cursor".to_owned();
        let (micros, hex) = text.trim().split_once('.').ok_or_else(invalid)?;
        let digits = micros.strip_prefix('-').unwrap_or(micros);
        if digits.is_empty()
            || digits.len() > MAX_CURSOR_MICROS_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let timestamp = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
        if hex.len() % 2 != 0 {
            return Err(invalid());
        }
        let lower = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let id = hex
            .as_bytes()
            .chunks(2)
            .map(|pair| Some((lower(pair[0])? << 4) | lower(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(invalid)?;
        let id = String::from_utf8(id).map_err(|_| invalid())?;
        let id = EventId::new(id).map_err(|_| invalid())?;
        Ok(Cursor { timestamp, id })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

/// How a query is paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// Numbered pages (from 1); the store also counts the total.
    Page {
        /// Page number, from 1.
        page: u32,
        /// Events per page, 1 to 1000.
        page_size: u32,
    },
    /// Keyset paging: the page after `after` (the first page when `None`); costs the same at
    /// any depth, and no total is counted.
    Cursor {
        /// Where the previous page ended.
        after: Option<Cursor>,
        /// Events per page, 1 to 1000.
        page_size: u32,
    },
}

impl Paging {
    /// Events per page.
    #[must_use]
    pub fn page_size(&self) -> u32 {
        match self {
            Paging::Page { page_size, .. } | Paging::Cursor { page_size, .. } => *page_size,
        }
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging::Page {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// An event listing request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventQuery {
    /// Which events.
    pub filter: EventFilter,
    /// Which page.
    pub paging: Paging,
}

impl EventQuery {
    /// A query for `filter` with `paging`.
    #[must_use]
    pub fn new(filter: EventFilter, paging: Paging) -> Self {
        EventQuery { filter, paging }
    }
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// The events.
    pub events: Vec<Event>,
    /// How many events match the filter in all (numbered paging only).
    pub total: Option<u64>,
    /// Where the next page starts, when the page was full.
    pub next_cursor: Option<Cursor>,
}

impl EventPage {
    /// The page of `events` read for `paging`: the next cursor follows the last event when
    /// the page is full (a shorter page is the last one).
    #[must_use]
    pub fn new(events: Vec<Event>, total: Option<u64>, paging: &Paging) -> Self {
        let full = u32::try_from(events.len()).is_ok_and(|n| n == paging.page_size().max(1));
        let next_cursor = if full {
            events.last().map(Cursor::after)
        } else {
            None
        };
        EventPage {
            events,
            total,
            next_cursor,
        }
    }
}

/// A dimension events can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    /// `tenant_id`.
    TenantId,
    /// `resource`.
    Resource,
    /// `feature`.
    Feature,
}

impl Dimension {
    /// Every dimension, in the contract's order.
    pub const ALL: [Dimension; 3] = [Dimension::TenantId, Dimension::Resource, Dimension::Feature];

    /// The name on the wire (`tenant_id`, `resource`, `feature`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::TenantId => "tenant_id",
            Dimension::Resource => "resource",
            Dimension::Feature => "feature",
        }
    }
}

/// Which dimensions an aggregate groups by; none means one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupBy {
    /// Group by tenant.
    pub tenant_id: bool,
    /// Group by resource.
    pub resource: bool,
    /// Group by feature.
    pub feature: bool,
}

impl GroupBy {
    /// No grouping: one series.
    pub const NONE: GroupBy = GroupBy {
        tenant_id: false,
        resource: false,
        feature: false,
    };

    /// The contract's default, `resource,feature`.
    pub const DEFAULT: GroupBy = GroupBy {
        tenant_id: false,
        resource: true,
        feature: true,
    };

    /// Every dimension.
    pub const ALL: GroupBy = GroupBy {
        tenant_id: true,
        resource: true,
        feature: true,
    };

    /// Whether `dimension` is grouped.
    #[must_use]
    pub fn has(self, dimension: Dimension) -> bool {
        match dimension {
            Dimension::TenantId => self.tenant_id,
            Dimension::Resource => self.resource,
            Dimension::Feature => self.feature,
        }
    }
}

impl FromStr for GroupBy {
    type Err = String;

    /// Parses a comma-separated subset of `tenant_id,resource,feature`; empty means none.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut g = GroupBy::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let slot = match part {
                "tenant_id" => &mut g.tenant_id,
                "resource" => &mut g.resource,
                "feature" => &mut g.feature,
                other => {
                    return Err(format!(
                        "unknown dimension `{other}`; use a subset of tenant_id,resource,feature"
                    ));
                }
            };
            *slot = true;
        }
        Ok(g)
    }
}

/// An aggregate request: events in `[start, end)` summed per window and group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AggregateQuery {
    /// Window length.
    pub window: WindowType,
    /// First instant counted.
    pub start: DateTime<Utc>,
    /// First instant not counted.
    pub end: DateTime<Utc>,
    /// Grouped dimensions.
    pub group_by: GroupBy,
    /// Only this tenant.
    pub tenant_id: Option<TenantId>,
    /// Only this resource.
    pub resource: Option<Resource>,
    /// Only this feature.
    pub feature: Option<Feature>,
    /// Zone of the window boundaries.
    pub tz: Tz,
}

/// The most windows one aggregate query may span: over 11 years of hourly windows, 270 of
/// daily ones. A longer range is refused before anything is read, since planning it takes
/// time and memory in proportion to its windows whatever the store holds.
pub const MAX_AGGREGATE_WINDOWS: i64 = 100_000;

impl AggregateQuery {
    /// At least the number of windows the query spans: its range over the shortest length
    /// its window can have (23 hours for a day that skips an hour, 28 days for a month).
    #[must_use]
    pub fn windows_at_most(&self) -> i64 {
        let shortest_hours = match self.window {
            WindowType::Hourly => 1,
            WindowType::Daily => 23,
            WindowType::Weekly => 7 * 24 - 1,
            WindowType::Monthly => 28 * 24 - 1,
        };
        (self.end - self.start).num_hours() / shortest_hours + 1
    }

    /// Daily... windows of `window` over `[start, end)` in UTC, grouped by `resource,feature`.
    #[must_use]
    pub fn new(window: WindowType, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        AggregateQuery {
            window,
            start,
            end,
            group_by: GroupBy::DEFAULT,
            tenant_id: None,
            resource: None,
            feature: None,
            tz: Tz::UTC,
        }
    }

    /// Sets the grouping.
    #[must_use]
    pub fn group_by(mut self, group_by: GroupBy) -> Self {
        self.group_by = group_by;
        self
    }

    /// Restricts to a tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Restricts to a resource.
    #[must_use]
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Restricts to a feature.
    #[must_use]
    pub fn feature(mut self, feature: Feature) -> Self {
        self.feature = Some(feature);
        self
    }

    /// Sets the zone of window boundaries.
    #[must_use]
    pub fn tz(mut self, tz: Tz) -> Self {
        self.tz = tz;
        self
    }

    /// The event filter equivalent to this query's range and filters.
    #[must_use]
    pub fn filter(&self) -> EventFilter {
        EventFilter {
            tenant_id: self.tenant_id.clone(),
            resource: self.resource.clone(),
            feature: self.feature.clone(),
            start: Some(self.start),
            end: Some(self.end),
            include_voided: false,
        }
    }
}

/// One aggregate row: the usage of one group in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregateRow {
    /// The tenant, when grouped by tenant.
    pub tenant_id: Option<TenantId>,
    /// The resource, when grouped by resource.
    pub resource: Option<Resource>,
    /// The feature, when grouped by feature.
    pub feature: Option<Feature>,
    /// Start of the window (inclusive).
    #[serde(with = "crate::time::rfc3339")]
    pub window_start: DateTime<Utc>,
    /// End of the window (exclusive; the next window's start).
    #[serde(with = "crate::time::rfc3339")]
    pub window_end: DateTime<Utc>,
    /// The window type.
    pub window_type: WindowType,
    /// Exact sum of quantities.
    pub total_quantity: Quantity,
    /// Number of events.
    pub event_count: u64,
}

/// Totals over all rows of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregateSummary {
    /// Exact sum of quantities.
    pub total_quantity: Quantity,
    /// Number of events.
    pub total_events: u64,
}

/// The answer to an [`AggregateQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AggregateReport {
    /// Rows ordered by `window_start`, then the grouped dimensions; empty windows are absent.
    pub aggregates: Vec<AggregateRow>,
    /// Totals.
    pub summary: AggregateSummary,
}

impl AggregateReport {
    /// A report over `rows`, with its summary.
    #[must_use]
    pub fn from_rows(aggregates: Vec<AggregateRow>) -> Self {
        let summary = AggregateSummary {
            total_quantity: aggregates.iter().map(|r| r.total_quantity).sum(),
            total_events: aggregates.iter().map(|r| r.event_count).sum(),
        };
        AggregateReport {
            aggregates,
            summary,
        }
    }
}

type GroupKey = (
    DateTime<Utc>,
    Option<TenantId>,
    Option<Resource>,
    Option<Feature>,
);

/// Builds aggregate rows from events or from pre-summed parts (rollup buckets), placing each
/// in its window and group. Stores use it so windowing and ordering live in one place.
#[derive(Debug)]
pub struct AggregateBuilder<'q> {
    query: &'q AggregateQuery,
    last_window: Option<Window>,
    groups: BTreeMap<GroupKey, (DateTime<Utc>, Quantity, u64)>,
}

impl<'q> AggregateBuilder<'q> {
    /// An empty builder for `query`.
    #[must_use]
    pub fn new(query: &'q AggregateQuery) -> Self {
        AggregateBuilder {
            query,
            last_window: None,
            groups: BTreeMap::new(),
        }
    }

    /// Adds `count` events summing to `quantity` at instant `at` (an event timestamp, or the
    /// start of a bucket that lies wholly inside one window).
    pub fn add(
        &mut self,
        at: DateTime<Utc>,
        tenant_id: &TenantId,
        resource: &Resource,
        feature: &Feature,
        quantity: Quantity,
        count: u64,
    ) {
        let window = match self.last_window {
            Some(w) if w.contains(at) => w,
            _ => {
                let w = self.query.window.window(at, self.query.tz);
                self.last_window = Some(w);
                w
            }
        };
        let g = self.query.group_by;
        let key = (
            window.start,
            g.tenant_id.then(|| tenant_id.clone()),
            g.resource.then(|| resource.clone()),
            g.feature.then(|| feature.clone()),
        );
        let slot = self
            .groups
            .entry(key)
            .or_insert((window.end, Quantity::ZERO, 0));
        slot.1 += quantity;
        slot.2 += count;
    }

    /// Adds one event (the caller has already checked it matches the query).
    pub fn add_event(&mut self, event: &Event) {
        self.add(
            event.timestamp,
            &event.tenant_id,
            &event.resource,
            &event.feature,
            event.quantity,
            1,
        );
    }

    /// The rows, in contract order.
    #[must_use]
    pub fn finish(self) -> Vec<AggregateRow> {
        let window_type = self.query.window;
        self.groups
            .into_iter()
            .map(
                |((window_start, tenant_id, resource, feature), (window_end, total, count))| {
                    AggregateRow {
                        tenant_id,
                        resource,
                        feature,
                        window_start,
                        window_end,
                        window_type,
                        total_quantity: total,
                        event_count: count,
                    }
                },
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_at_most_bounds_the_windows_of_a_range() {
        let at = |s: &str| crate::time::parse_range_bound(s).expect("a date");
        let q = |w, start, end| AggregateQuery::new(w, at(start), at(end));
        assert_eq!(
            q(WindowType::Hourly, "2025-11-01", "2025-11-02").windows_at_most(),
            25
        );
        assert!(q(WindowType::Daily, "2025-11-01", "2025-12-01").windows_at_most() >= 30);
        // 10 years of hours fit, 12 do not; a thousand years of months fit.
        assert!(
            q(WindowType::Hourly, "2015-01-01", "2025-01-01").windows_at_most()
                <= MAX_AGGREGATE_WINDOWS
        );
        assert!(
            q(WindowType::Hourly, "2013-01-01", "2025-01-01").windows_at_most()
                > MAX_AGGREGATE_WINDOWS
        );
        assert!(
            q(WindowType::Monthly, "1500-01-01", "2500-01-01").windows_at_most()
                <= MAX_AGGREGATE_WINDOWS
        );
    }

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            timestamp: DateTime::from_timestamp_micros(1_732_000_000_123_456).expect("valid"),
            id: EventId::new("a:b:c").expect("valid"),
        };
        assert_eq!(c.encode(), "1732000000123456.613a623a63");
        assert_eq!(Cursor::decode(&c.encode()), Ok(c.clone()));
        assert_eq!(Cursor::decode(" 1732000000123456.613a623a63\n"), Ok(c));
        for bad in [
            "",
            "garbage!",
            "1.",
            ".61",
            "+1.61",
            "1.6",
            "1.6A",
            "1.7f",
            "1234567890123456789.61",
            "-.61",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
        assert!(Cursor::decode(&format!("-1.{}", "61".repeat(128))).is_ok());
        assert!(Cursor::decode(&format!("1.{}", "61".repeat(129))).is_err());
    }

    #[test]
    fn group_by_parsing() {
        assert_eq!("".parse::<GroupBy>(), Ok(GroupBy::NONE));
        assert_eq!(
            "tenant_id, feature".parse::<GroupBy>(),
            Ok(GroupBy {
                tenant_id: true,
                resource: false,
                feature: true
            })
        );
        assert!("tenant".parse::<GroupBy>().is_err());
    }
}
