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

/// The rows and skipped count a meter query over `events` must return.
///
/// Written independently of [`metering_core::MeterAggregator`]: each group keeps the list of
/// its values and the aggregation is computed from the list at the end. Values are read
/// with [`Amount::from_metadata`](metering_core::Amount::from_metadata), whose rules are
/// unit-tested in core.
#[must_use]
pub fn meter(
    events: &[Event],
    meter: &metering_core::Meter,
    query: &metering_core::MeterQuery,
) -> (Vec<metering_core::MeterRow>, u64) {
    use metering_core::{Aggregation, Amount, MeterGroup, MeterRow, ValuePath};
    use serde_json::Value;

    fn text(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
    fn dim(e: &Event, key: &str) -> Option<String> {
        e.metadata.as_ref().and_then(|m| m.get(key)).and_then(text)
    }
    fn at_path<'e>(e: &'e Event, path: &[String]) -> Option<&'e Value> {
        let mut v = e.metadata.as_ref()?.get(path.first()?)?;
        for k in &path[1..] {
            v = v.get(k)?;
        }
        Some(v)
    }
    fn same(a: &Value, b: &Value) -> bool {
        match (Amount::from_metadata(a), Amount::from_metadata(b)) {
            (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
            _ => a == b,
        }
    }

    let spec = &meter.spec;
    let mut skipped = 0u64;
    type Values = Vec<(DateTime<Utc>, String, Value)>;
    type Key = (DateTime<Utc>, Vec<Option<String>>);
    let mut groups: HashMap<Key, (DateTime<Utc>, Values)> = HashMap::new();
    for e in events {
        let meta = |k: &str| e.metadata.as_ref().and_then(|m| m.get(k));
        let passes = e.timestamp >= query.start
            && e.timestamp < query.end
            && query.tenant_id.as_ref().is_none_or(|t| *t == e.tenant_id)
            && query.resource.as_ref().is_none_or(|r| *r == e.resource)
            && query.feature.as_ref().is_none_or(|f| *f == e.feature)
            && (spec.filter.resource.is_empty() || spec.filter.resource.contains(&e.resource))
            && (spec.filter.feature.is_empty() || spec.filter.feature.contains(&e.feature))
            && spec.filter.metadata.iter().all(|(k, wanted)| {
                wanted.iter().any(|w| match meta(k) {
                    None | Some(Value::Null) => w.is_null(),
                    Some(have) => same(w, have),
                })
            })
            && query
                .dimension_filters
                .iter()
                .all(|(k, wanted)| dim(e, k).is_some_and(|v| wanted.contains(&v)));
        if !passes {
            continue;
        }
        let value = match (&spec.value, spec.aggregation) {
            (_, Aggregation::Count) => Value::Null,
            (ValuePath::Quantity, _) => Value::String(e.quantity.to_string()),
            (ValuePath::Metadata(path), _) => match at_path(e, path) {
                Some(v) => v.clone(),
                None => {
                    skipped += 1;
                    continue;
                }
            },
        };
        let usable = match spec.aggregation {
            Aggregation::Count => true,
            Aggregation::UniqueCount => !value.is_null(),
            _ => Amount::from_metadata(&value).is_some(),
        };
        if !usable {
            skipped += 1;
            continue;
        }
        let (ws, we) = match query.window {
            None => (query.start, query.end),
            Some(w) => {
                let w = w.granularity().window(e.timestamp, query.tz);
                (w.start, w.end)
            }
        };
        let key: Vec<Option<String>> = query
            .group_by
            .iter()
            .map(|g| match g {
                MeterGroup::TenantId => Some(e.tenant_id.to_string()),
                MeterGroup::Resource => Some(e.resource.to_string()),
                MeterGroup::Feature => Some(e.feature.to_string()),
                MeterGroup::Dimension(k) => dim(e, k),
            })
            .collect();
        groups.entry((ws, key)).or_insert((we, Vec::new())).1.push((
            e.timestamp,
            e.id.to_string(),
            value,
        ));
    }
    let mut rows: Vec<MeterRow> = groups
        .into_iter()
        .map(|((ws, key), (we, values))| {
            let amounts: Vec<i128> = values
                .iter()
                .filter_map(|(_, _, v)| Amount::from_metadata(v))
                .map(Amount::nanos)
                .collect();
            let n = values.len() as u64;
            let value = match spec.aggregation {
                Aggregation::Sum => Amount::from_nanos(amounts.iter().sum()),
                Aggregation::Count => Amount::from_nanos(i128::from(n) * 1_000_000_000),
                Aggregation::UniqueCount => {
                    let mut distinct: Vec<&Value> = Vec::new();
                    for (_, _, v) in &values {
                        if !distinct.iter().any(|d| same(d, v)) {
                            distinct.push(v);
                        }
                    }
                    Amount::from_nanos(distinct.len() as i128 * 1_000_000_000)
                }
                Aggregation::Min => Amount::from_nanos(*amounts.iter().min().expect("values")),
                Aggregation::Max => Amount::from_nanos(*amounts.iter().max().expect("values")),
                Aggregation::Avg => {
                    let sum: i128 = amounts.iter().sum();
                    let count = i128::from(n);
                    // Round half to even: compare twice the remainder with the divisor.
                    let (mut q, r) = (sum / count, sum % count);
                    let twice = 2 * r.abs();
                    let away = if sum < 0 { -1 } else { 1 };
                    if twice > count || (twice == count && q % 2 != 0) {
                        q += away;
                    }
                    Amount::from_nanos(q)
                }
                Aggregation::Latest => {
                    let (_, _, v) = values
                        .iter()
                        .max_by(|a, b| (a.0, a.1.as_bytes()).cmp(&(b.0, b.1.as_bytes())))
                        .expect("values");
                    Amount::from_metadata(v).expect("usable")
                }
            };
            MeterRow {
                window_start: ws,
                window_end: we,
                group: query
                    .group_by
                    .iter()
                    .map(|g| g.as_str().to_owned())
                    .zip(key)
                    .collect(),
                value,
                event_count: n,
            }
        })
        .collect();
    // By window, then each key as text, null last.
    rows.sort_by(|a, b| {
        a.window_start.cmp(&b.window_start).then_with(|| {
            let key = |r: &MeterRow| {
                r.group
                    .iter()
                    .map(|(_, v)| (v.is_none(), v.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        })
    });
    (rows, skipped)
}
