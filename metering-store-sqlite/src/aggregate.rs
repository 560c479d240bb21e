//! Aggregates and usage sums, served from rollups with raw-event fragments at the edges.

use std::collections::HashMap;

use metering_core::rollup_plan::{Piece, plan, window_starts};
use metering_core::{
    AggregateBuilder, AggregateQuery, AggregateRow, EventFilter, Feature, Quantity, Resource,
    TenantId, UsageScope, Window,
};
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use crate::codec::{micros, nanos};
use crate::error::DbResult;
use crate::rollup::{DAY_MICROS, LEVELS, join};

/// The pieces that answer `query`: its range cut at its window starts, planned over the
/// rollup levels.
pub(crate) fn query_pieces(query: &AggregateQuery) -> Vec<Piece> {
    let cuts: Vec<i64> = window_starts(query)
        .into_iter()
        .skip(1)
        .map(micros)
        .collect();
    plan(micros(query.start), micros(query.end), &cuts, LEVELS)
}

/// Equality filters on the three dimensions.
#[derive(Debug, Default)]
struct Filters<'a> {
    tenant_id: Option<&'a str>,
    resource: Option<&'a str>,
    feature: Option<&'a str>,
}

impl Filters<'_> {
    /// The rollups table as a query with these filters reads it. SQLite prefers the
    /// (covering) primary key, which reads every series of each bucket; with a tenant, the
    /// tenant's own index range reads only its rows.
    fn rollups(&self) -> &'static str {
        if self.tenant_id.is_some() {
            "rollups INDEXED BY rollups_scope"
        } else {
            "rollups"
        }
    }

    /// The statement reading `piece` with these filters, and its arguments: `rollup` is the
    /// select list over the rollup rows of a bucket piece, `raw` over the events of a raw one.
    fn statement(&self, piece: Piece, rollup: &str, raw: &str) -> (String, Vec<Value>) {
        let (mut sql, mut args) = match piece {
            Piece::Buckets { level, start, end } => (
                format!(
                    "SELECT {rollup} FROM {} WHERE level = ? AND bucket >= ? AND bucket < ?",
                    self.rollups()
                ),
                vec![
                    Value::Integer(i64::try_from(level).expect("three levels")),
                    Value::Integer(start),
                    Value::Integer(end),
                ],
            ),
            Piece::Raw { start, end } => (
                format!("SELECT {raw} FROM events WHERE ts >= ? AND ts < ? AND voided_at IS NULL"),
                vec![Value::Integer(start), Value::Integer(end)],
            ),
        };
        self.append(&mut sql, &mut args);
        (sql, args)
    }

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
/// raw event of `pieces` that matches `filters`. Names are borrowed from SQLite's row buffer,
/// so a row costs no allocation.
fn scan<F>(conn: &Connection, pieces: &[Piece], filters: &Filters<'_>, mut row: F) -> DbResult<()>
where
    F: FnMut(i64, &str, &str, &str, u128, u64),
{
    for piece in pieces {
        let (sql, args) = filters.statement(
            *piece,
            "bucket, tenant_id, resource, feature, sum_hi, sum_lo, event_count",
            "ts, tenant_id, resource, feature, qty_units, qty_nanos, 1",
        );
        let raw = matches!(piece, Piece::Raw { .. });
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            let (a, b): (i64, i64) = (r.get(4)?, r.get(5)?);
            let sum = if raw { nanos(a, b) } else { join(a, b) };
            let count: i64 = r.get(6)?;
            row(
                r.get(0)?,
                r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?,
                r.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?,
                r.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?,
                sum,
                u64::try_from(count).unwrap_or(0),
            );
        }
    }
    Ok(())
}

/// Sums per window and group, keyed by interned names: a bucket row costs a few hash
/// lookups and no allocation. The rows are then built once per group by
/// [`AggregateBuilder`], so windowing and ordering stay those of every backend.
struct Accumulator<'q> {
    query: &'q AggregateQuery,
    names: HashMap<String, u32>,
    window: Option<Window>,
    sums: HashMap<(i64, u32, u32, u32), (u128, u64)>,
}

/// The interned id of a dimension that is not grouped.
const UNGROUPED: u32 = u32::MAX;

impl<'q> Accumulator<'q> {
    fn new(query: &'q AggregateQuery) -> Self {
        Accumulator {
            query,
            names: HashMap::new(),
            window: None,
            sums: HashMap::new(),
        }
    }

    fn intern(&mut self, grouped: bool, name: &str) -> u32 {
        if !grouped {
            return UNGROUPED;
        }
        if let Some(&id) = self.names.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        self.names.insert(name.to_owned(), id);
        id
    }

    /// Adds a bucket (`at` its start, the bucket wholly inside one window) or an event.
    fn add(&mut self, at: i64, tenant: &str, resource: &str, feature: &str, sum: u128, count: u64) {
        let instant = crate::codec::instant(at);
        let window = match self.window {
            Some(w) if w.contains(instant) => w,
            _ => {
                let w = self.query.window.window(instant, self.query.tz);
                self.window = Some(w);
                w
            }
        };
        let g = self.query.group_by;
        let key = (
            micros(window.start),
            self.intern(g.tenant_id, tenant),
            self.intern(g.resource, resource),
            self.intern(g.feature, feature),
        );
        let slot = self.sums.entry(key).or_insert((0, 0));
        slot.0 += sum;
        slot.1 += count;
    }

    fn finish(self) -> Vec<AggregateRow> {
        let mut names = vec![String::new(); self.names.len()];
        for (name, id) in self.names {
            names[usize::try_from(id).expect("fits")] = name;
        }
        let name = |id: u32| {
            names
                .get(usize::try_from(id).unwrap_or(usize::MAX))
                .cloned()
                .unwrap_or_default()
        };
        let mut builder = AggregateBuilder::new(self.query);
        for ((start, t, r, f), (sum, count)) in self.sums {
            // Ungrouped dimensions are ignored by the builder; any name will do.
            builder.add(
                crate::codec::instant(start),
                &TenantId::from_trusted(name(t)),
                &Resource::from_trusted(name(r)),
                &Feature::from_trusted(name(f)),
                Quantity::from_nanos(sum),
                count,
            );
        }
        builder.finish()
    }
}

/// The rows of `query`.
pub(crate) fn aggregate(conn: &Connection, query: &AggregateQuery) -> DbResult<Vec<AggregateRow>> {
    let pieces = query_pieces(query);
    let filters = Filters {
        tenant_id: query.tenant_id.as_ref().map(TenantId::as_str),
        resource: query.resource.as_ref().map(Resource::as_str),
        feature: query.feature.as_ref().map(Feature::as_str),
    };
    let mut sums = Accumulator::new(query);
    scan(
        conn,
        &pieces,
        &filters,
        |at, tenant, resource, feature, sum, count| {
            sums.add(at, tenant, resource, feature, sum, count);
        },
    )?;
    Ok(sums.finish())
}

/// The usage of `scope` in `window`, in nano-units.
pub(crate) fn sum_usage(
    conn: &Connection,
    scope: &UsageScope,
    window: Window,
) -> DbResult<Quantity> {
    let pieces = plan(micros(window.start), micros(window.end), &[], LEVELS);
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

/// How many events match `filter`, counted from the rollups with raw events read only in the
/// fragments at the range's edges: the cost follows the series and buckets in the range, not
/// the events. An open end of the range is closed on the UTC day boundary beyond the oldest
/// or newest stored event (of the tenant, when the filter names one), found in one index
/// probe: no event lies between it and the data, so that side is read from whole days only,
/// and today, where live traffic lands, is counted from its bucket too.
pub(crate) fn count_events(conn: &Connection, filter: &EventFilter) -> DbResult<u64> {
    let tenant = filter.tenant_id.as_ref().map(TenantId::as_str);
    let edge = |function: &str| -> DbResult<Option<i64>> {
        let sql = match tenant {
            Some(_) => format!("SELECT {function}(ts) FROM events WHERE tenant_id = ?1"),
            None => format!("SELECT {function}(ts) FROM events"),
        };
        let mut stmt = conn.prepare_cached(&sql)?;
        Ok(match tenant {
            Some(t) => stmt.query_row([t], |r| r.get(0))?,
            None => stmt.query_row([], |r| r.get(0))?,
        })
    };
    let start = match filter.start {
        Some(s) => micros(s),
        None => match edge("min")? {
            Some(oldest) => oldest.div_euclid(DAY_MICROS) * DAY_MICROS,
            None => return Ok(0),
        },
    };
    let end = match filter.end {
        Some(e) => micros(e),
        None => match edge("max")? {
            Some(newest) => (newest.div_euclid(DAY_MICROS) + 1) * DAY_MICROS,
            None => return Ok(0),
        },
    };
    let filters = Filters {
        tenant_id: tenant,
        resource: filter.resource.as_ref().map(Resource::as_str),
        feature: filter.feature.as_ref().map(Feature::as_str),
    };
    let mut total: u64 = 0;
    for piece in plan(start, end, &[], LEVELS) {
        let (sql, args) = filters.statement(piece, "COALESCE(sum(event_count), 0)", "count(*)");
        let count: i64 = conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(args), |r| r.get(0))?;
        total = total.saturating_add(u64::try_from(count).unwrap_or(0));
    }
    Ok(total)
}
