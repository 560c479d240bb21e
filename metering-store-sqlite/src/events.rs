//! Writing events (batch ingest with their rollups, and `consume`) and listing them.

use metering_core::{
    AmendOutcome, ConsumeOutcome, Event, EventFilter, EventPage, EventQuery, Paging, Quantity,
    UsageLimit,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use crate::aggregate;
use crate::codec::{EVENT_COLUMNS, EventRow, event_from_row, micros};
use crate::error::DbResult;
use crate::rollup::RollupDelta;

/// Inserts `rows` in `tx`, skipping ids already stored (or earlier in `rows`), and adds the
/// inserted ones to the rollups. Returns, per row, whether it was inserted.
pub(crate) fn insert_rows(tx: &Transaction<'_>, rows: &[EventRow]) -> DbResult<Vec<bool>> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (id, tenant_id, resource, feature, qty_units, qty_nanos, ts, metadata, created_at, amends, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO NOTHING",
    )?;
    // Numbered in commit order for the meter folder: `tx` holds the write lock.
    let first = crate::meter_rollup::next_seq(tx)?;
    let mut delta = RollupDelta::default();
    let mut inserted = Vec::with_capacity(rows.len());
    for (seq, row) in (first..).zip(rows) {
        let changed = stmt.execute(params![
            row.id,
            row.tenant_id,
            row.resource,
            row.feature,
            row.qty_units,
            row.qty_nanos,
            row.ts,
            row.metadata,
            row.created_at,
            row.amends,
            seq,
        ])?;
        let new = changed == 1;
        if new {
            delta.add(
                &row.tenant_id,
                &row.resource,
                &row.feature,
                row.ts,
                row.nanos,
            );
        }
        inserted.push(new);
    }
    drop(stmt);
    delta.apply(tx)?;
    Ok(inserted)
}

/// Whether an event with `id` is stored.
pub(crate) fn exists(conn: &Connection, id: &str) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM events WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Inserts the single event of `rows` in `tx` when it keeps the usage of `limit` within the
/// limit. `tx` must hold the write lock from before the sum is read (`BEGIN IMMEDIATE`).
pub(crate) fn consume(
    tx: &Transaction<'_>,
    rows: &[EventRow],
    limit: &UsageLimit,
) -> DbResult<ConsumeOutcome> {
    let usage = aggregate::sum_usage(tx, &limit.scope, limit.window)?;
    if exists(tx, &rows[0].id)? {
        return Ok(ConsumeOutcome::Duplicate { usage });
    }
    match usage.checked_add(Quantity::from_nanos(rows[0].nanos)) {
        Some(total) if total <= limit.limit => {
            insert_rows(tx, rows)?;
            Ok(ConsumeOutcome::Admitted {
                usage_before: usage,
            })
        }
        _ => Ok(ConsumeOutcome::Denied { usage }),
    }
}

/// The `WHERE` clause of `filter` and its arguments.
fn filter_sql(filter: &EventFilter) -> (Vec<&'static str>, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut args = Vec::new();
    if let Some(t) = &filter.tenant_id {
        clauses.push("tenant_id = ?");
        args.push(Value::Text(t.as_str().to_owned()));
    }
    if let Some(r) = &filter.resource {
        clauses.push("resource = ?");
        args.push(Value::Text(r.as_str().to_owned()));
    }
    if let Some(f) = &filter.feature {
        clauses.push("feature = ?");
        args.push(Value::Text(f.as_str().to_owned()));
    }
    if let Some(s) = filter.start {
        clauses.push("ts >= ?");
        args.push(Value::Integer(micros(s)));
    }
    if let Some(e) = filter.end {
        clauses.push("ts < ?");
        args.push(Value::Integer(micros(e)));
    }
    if !filter.include_voided {
        clauses.push("voided_at IS NULL");
    }
    (clauses, args)
}

fn where_sql(clauses: &[&str]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// The SQL and arguments of one page of `query`, newest first.
pub(crate) fn page_sql(query: &EventQuery) -> (String, Vec<Value>) {
    let (mut clauses, mut args) = filter_sql(&query.filter);
    let size = i64::from(query.paging.page_size());
    let mut offset = 0;
    match &query.paging {
        Paging::Page { page, .. } => {
            offset = i64::from(page.saturating_sub(1)).saturating_mul(size);
        }
        Paging::Cursor { after, .. } => {
            if let Some(c) = after {
                // A row-value comparison walks the (…, ts, id) index from the cursor on, so a
                // page costs the same at any depth.
                clauses.push("(ts, id) < (?, ?)");
                args.push(Value::Integer(micros(c.timestamp)));
                args.push(Value::Text(c.id.as_str().to_owned()));
            }
        }
    }
    args.push(Value::Integer(size));
    args.push(Value::Integer(offset));
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events{} ORDER BY ts DESC, id DESC LIMIT ? OFFSET ?",
        where_sql(&clauses)
    );
    (sql, args)
}

/// Calls `visit` with every event `filter` selects, in no particular order.
pub(crate) fn scan(
    conn: &Connection,
    filter: &EventFilter,
    mut visit: impl FnMut(&Event),
) -> DbResult<()> {
    let (clauses, args) = filter_sql(filter);
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events{}", where_sql(&clauses));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    while let Some(row) = rows.next()? {
        visit(&event_from_row(row)?);
    }
    Ok(())
}

/// How many events `filter` selects, counted row by row.
fn count_all(conn: &Connection, filter: &EventFilter) -> DbResult<u64> {
    let (clauses, args) = filter_sql(filter);
    let sql = format!("SELECT count(*) FROM events{}", where_sql(&clauses));
    let count: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(args), |r| r.get(0))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// One stored event, voided or not.
pub(crate) fn by_id(conn: &Connection, id: &str) -> DbResult<Option<Event>> {
    by_column(conn, "id", id)
}

/// The event an amend of `id` recorded.
pub(crate) fn replacement_of(conn: &Connection, id: &str) -> DbResult<Option<Event>> {
    by_column(conn, "amends", id)
}

fn by_column(conn: &Connection, column: &str, value: &str) -> DbResult<Option<Event>> {
    conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE {column} = ?1"
    ))?
    .query_row([value], |row| Ok(event_from_row(row)))
    .optional()?
    .transpose()
}

/// Voids the counting event `event` in `tx` and takes it out of the rollups.
fn void_counting(
    tx: &Transaction<'_>,
    event: &Event,
    reason: Option<&str>,
    at: i64,
) -> DbResult<()> {
    tx.prepare_cached("UPDATE events SET voided_at = ?2, void_reason = ?3 WHERE id = ?1")?
        .execute(params![event.id.as_str(), at, reason])?;
    RollupDelta::subtract(tx, event)?;
    crate::meter_rollup::unfold(tx, event)
}

/// Voids the event `id` unless it is voided already; the event as stored afterwards.
pub(crate) fn void(
    tx: &Transaction<'_>,
    id: &str,
    reason: Option<&str>,
    at: i64,
) -> DbResult<Option<Event>> {
    let Some(event) = by_id(tx, id)? else {
        return Ok(None);
    };
    if !event.counts() {
        return Ok(Some(event));
    }
    void_counting(tx, &event, reason, at)?;
    by_id(tx, id)
}

/// Voids `replacement.amends` and inserts the replacement (`rows` are its columns).
pub(crate) fn amend(
    tx: &Transaction<'_>,
    replacement: &Event,
    rows: &[EventRow],
    reason: Option<&str>,
    at: i64,
) -> DbResult<AmendOutcome> {
    let original = replacement.amends.as_ref().map_or("", |a| a.as_str());
    if let Some(stored) = by_id(tx, replacement.id.as_str())? {
        return Ok(
            if stored.amends.as_ref().map(|a| a.as_str()) == Some(original) {
                AmendOutcome::Replayed(stored)
            } else {
                AmendOutcome::IdTaken
            },
        );
    }
    let Some(event) = by_id(tx, original)? else {
        return Ok(AmendOutcome::NotFound);
    };
    if !event.counts() {
        return Ok(AmendOutcome::OriginalVoided);
    }
    void_counting(tx, &event, reason, at)?;
    insert_rows(tx, rows)?;
    Ok(AmendOutcome::Amended(replacement.clone()))
}

/// One page of events.
pub(crate) fn list(conn: &Connection, query: &EventQuery) -> DbResult<EventPage> {
    let (sql, args) = page_sql(query);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut events = Vec::new();
    while let Some(row) = rows.next()? {
        events.push(event_from_row(row)?);
    }
    let total = match query.paging {
        // The rollups count only events that count; voided ones are counted one by one.
        Paging::Page { .. } if query.filter.include_voided => Some(count_all(conn, &query.filter)?),
        Paging::Page { .. } => Some(aggregate::count_events(conn, &query.filter)?),
        Paging::Cursor { .. } => None,
    };
    Ok(EventPage::new(events, total, &query.paging))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use metering_core::{Cursor, EventId, Resource, TenantId};

    use super::*;

    fn plan(conn: &Connection, query: &EventQuery) -> String {
        let (sql, args) = page_sql(query);
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("valid SQL");
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(3))
            .expect("a plan");
        rows.map(|r| r.expect("a plan row"))
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Every listing shape walks an index in the listing order: no sort, and a cursor seeks
    /// instead of scanning from the top.
    #[test]
    fn listings_use_indexes_in_order() {
        let mut conn = Connection::open_in_memory().expect("in-memory database");
        crate::migrations::migrate(&mut conn).expect("migrations");
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid");
        let cursor = Cursor {
            timestamp: at,
            id: EventId::new("e-1").expect("valid"),
        };
        let tenant = TenantId::new("org").expect("valid");
        let filters = [
            EventFilter::all(),
            EventFilter::all().tenant(tenant.clone()),
            EventFilter::all()
                .tenant(tenant)
                .resource(Resource::new("api").expect("valid")),
            EventFilter::all().between(Some(at), None),
        ];
        for filter in filters {
            let tenant = filter.tenant_id.is_some();
            for paging in [
                Paging::Page {
                    page: 3,
                    page_size: 50,
                },
                Paging::Cursor {
                    after: Some(cursor.clone()),
                    page_size: 50,
                },
            ] {
                let seek = matches!(paging, Paging::Cursor { .. });
                let p = plan(&conn, &EventQuery::new(filter.clone(), paging));
                let index = if tenant {
                    "events_tenant_ts"
                } else {
                    "events_ts"
                };
                assert!(p.contains(index), "{p}");
                assert!(!p.contains("TEMP B-TREE"), "{p}");
                if seek {
                    assert!(p.contains("(ts,id)<(?,?)"), "{p}");
                }
            }
        }
    }
}
