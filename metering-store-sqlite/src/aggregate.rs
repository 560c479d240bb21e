//! Aggregates and usage sums, served from rollups with raw-event fragments at the edges.

use metering_core::{
    AggregateBuilder, AggregateQuery, AggregateRow, Feature, Quantity, Resource, TenantId,
    UsageScope, Window,
};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use crate::codec::{micros, nanos};
use crate::error::DbResult;
use crate::rollup::{Piece, decompose, join, merge};

/// The pieces that answer `query`: each window's part of `[start, end)`, decomposed, then
/// adjacent pieces joined.
pub(crate) fn query_pieces(query: &AggregateQuery) -> Vec<Piece> {
    let (start, end) = (micros(query.start), micros(query.end));
    let mut pieces = Vec::new();
    if start >= end {
        return pieces;
    }
    let granularity = query.window.granularity();
    let mut window = query.window.window(query.start, query.tz);
    loop {
        decompose(
            micros(window.start).max(start),
            micros(window.end).min(end),
            &mut pieces,
        );
        if window.end >= query.end || window.end <= window.start {
            break;
        }
        window = granularity.next(window, query.tz);
    }
    merge(pieces)
}

/// Equality filters on the three dimensions.
#[derive(Debug, Default)]
struct Filters<'a> {
    tenant_id: Option<&'a str>,
    resource: Option<&'a str>,
    feature: Option<&'a str>,
}

impl Filters<'_> {
    /// Appends ` AND column = ?` per filter, and its argument.
    fn append(&self, sql: &mut String, args: &mut Vec<Value>) {
        for (column, value) in [
            ("tenant_id", self.tenant_id),
            ("resource", self.resource),
            ("feature", self.feature),
        ] {
            if let Some(v) = value {
                sql.push_str(" AND ");
                sql.push_str(column);
                sql.push_str(" = ?");
                args.push(Value::Text(v.to_owned()));
            }
        }
    }
}

/// Calls `row(at, tenant, resource, feature, nano-units, count)` for every rollup row and
/// raw event of `pieces` that matches `filters`.
fn scan<F>(conn: &Connection, pieces: &[Piece], filters: &Filters<'_>, mut row: F) -> DbResult<()>
where
    F: FnMut(i64, String, String, String, u128, u64),
{
    for piece in pieces {
        let (mut sql, mut args) = match *piece {
            Piece::Buckets { level, start, end } => (
                String::from(
                    "SELECT bucket, tenant_id, resource, feature, sum_hi, sum_lo, event_count
                     FROM rollups WHERE level = ? AND bucket >= ? AND bucket < ?",
                ),
                vec![
                    Value::Integer(i64::try_from(level).expect("three levels")),
                    Value::Integer(start),
                    Value::Integer(end),
                ],
            ),
            Piece::Raw { start, end } => (
                String::from(
                    "SELECT ts, tenant_id, resource, feature, qty_units, qty_nanos, 1
                     FROM events WHERE ts >= ? AND ts < ?",
                ),
                vec![Value::Integer(start), Value::Integer(end)],
            ),
        };
        filters.append(&mut sql, &mut args);
        let raw = matches!(piece, Piece::Raw { .. });
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            let (a, b): (i64, i64) = (r.get(4)?, r.get(5)?);
            let sum = if raw { nanos(a, b) } else { join(a, b) };
            let count: i64 = r.get(6)?;
            row(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                sum,
                u64::try_from(count).unwrap_or(0),
            );
        }
    }
    Ok(())
}

/// The rows of `query`.
pub(crate) fn aggregate(conn: &Connection, query: &AggregateQuery) -> DbResult<Vec<AggregateRow>> {
    let pieces = query_pieces(query);
    let filters = Filters {
        tenant_id: query.tenant_id.as_ref().map(TenantId::as_str),
        resource: query.resource.as_ref().map(Resource::as_str),
        feature: query.feature.as_ref().map(Feature::as_str),
    };
    let mut builder = AggregateBuilder::new(query);
    scan(
        conn,
        &pieces,
        &filters,
        |at, tenant, resource, feature, sum, count| {
            builder.add(
                crate::codec::instant(at),
                &TenantId::from_trusted(tenant),
                &Resource::from_trusted(resource),
                &Feature::from_trusted(feature),
                Quantity::from_nanos(sum),
                count,
            );
        },
    )?;
    Ok(builder.finish())
}

/// The usage of `scope` in `window`, in nano-units.
pub(crate) fn sum_usage(
    conn: &Connection,
    scope: &UsageScope,
    window: Window,
) -> DbResult<Quantity> {
    let mut pieces = Vec::new();
    decompose(micros(window.start), micros(window.end), &mut pieces);
    let filters = Filters {
        tenant_id: Some(scope.tenant_id.as_str()),
        resource: scope.resource.as_ref().map(Resource::as_str),
        feature: Some(scope.feature.as_str()),
    };
    let mut total: u128 = 0;
    scan(conn, &pieces, &filters, |_, _, _, _, sum, _| {
        total = total.saturating_add(sum)
    })?;
    Ok(Quantity::from_nanos(total))
}
