//! Brute-force recounts that the stores' answers are compared with.
//!
//! Written independently of [`metering_core::AggregateBuilder`]: a plain map from
//! (window start, dimensions) to totals, sorted at the end.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use metering_core::{AggregateQuery, AggregateRow, Event, Quantity};

/// The rows an aggregate over `events` must return.
#[must_use]
pub fn aggregate(events: &[Event], query: &AggregateQuery) -> Vec<AggregateRow> {
    type Key = (
        DateTime<Utc>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut groups: HashMap<Key, (DateTime<Utc>, Quantity, u64)> = HashMap::new();
    for e in events {
        if e.timestamp < query.start || e.timestamp >= query.end {
            continue;
        }
        if query.tenant_id.as_ref().is_some_and(|t| *t != e.tenant_id)
            || query.resource.as_ref().is_some_and(|r| *r != e.resource)
            || query.feature.as_ref().is_some_and(|f| *f != e.feature)
        {
            continue;
        }
        let w = query.window.granularity().window(e.timestamp, query.tz);
        assert!(w.start <= e.timestamp && e.timestamp < w.end);
        let g = query.group_by;
        let key = (
            w.start,
            g.tenant_id.then(|| e.tenant_id.to_string()),
            g.resource.then(|| e.resource.to_string()),
            g.feature.then(|| e.feature.to_string()),
        );
        let slot = groups.entry(key).or_insert((w.end, Quantity::ZERO, 0));
        slot.1 += e.quantity;
        slot.2 += 1;
    }
    let mut rows: Vec<_> = groups.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter()
        .map(|((start, t, r, f), (end, total, count))| AggregateRow {
            tenant_id: t.map(|t| metering_core::TenantId::new(t).expect("valid")),
            resource: r.map(|r| metering_core::Resource::new(r).expect("valid")),
            feature: f.map(|f| metering_core::Feature::new(f).expect("valid")),
            window_start: start,
            window_end: end,
            window_type: query.window,
            total_quantity: total,
            event_count: count,
        })
        .collect()
}
