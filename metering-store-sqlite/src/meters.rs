//! Meters: definitions in `meters` (the spec as its JSON text), and answers recounted from
//! the events of the queried range by core's `MeterAggregator`, read through the same time
//! and tenant indexes as event listings.

use chrono::{DateTime, Utc};
use metering_core::{Meter, MeterAggregator, MeterKey, MeterQuery, MeterReport, MeterSpec};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};
use crate::events;

fn meter_from_row(row: &Row<'_>) -> DbResult<Meter> {
    let key: String = row.get(0)?;
    let spec: String = row.get(1)?;
    let corrupt = || SqliteError::Corrupt(format!("meter `{key}`"));
    let raw: Box<RawValue> = serde_json::from_str(&spec).map_err(|_| corrupt())?;
    Ok(Meter {
        key: MeterKey::new(key.clone()).map_err(|_| corrupt())?,
        spec: MeterSpec::from_json(&raw).map_err(|_| corrupt())?,
        created_at: instant(row.get(2)?),
        updated_at: instant(row.get(3)?),
    })
}

/// Inserts or replaces a meter; a replaced one keeps its `created_at`.
pub(crate) fn put(
    conn: &Connection,
    key: &MeterKey,
    spec: &MeterSpec,
    now: DateTime<Utc>,
) -> DbResult<Meter> {
    let text = serde_json::to_string(spec).map_err(|e| SqliteError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO meters (key, spec, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at
         RETURNING key, spec, created_at, updated_at",
    )?
    .query_row(params![key.as_str(), text, micros(now)], |row| {
        Ok(meter_from_row(row))
    })?
}

/// Every meter, by key.
pub(crate) fn list(conn: &Connection) -> DbResult<Vec<Meter>> {
    let mut stmt =
        conn.prepare_cached("SELECT key, spec, created_at, updated_at FROM meters ORDER BY key")?;
    let mut rows = stmt.query([])?;
    let mut meters = Vec::new();
    while let Some(row) = rows.next()? {
        meters.push(meter_from_row(row)?);
    }
    Ok(meters)
}

/// One meter.
pub(crate) fn by_key(conn: &Connection, key: &MeterKey) -> DbResult<Option<Meter>> {
    conn.prepare_cached("SELECT key, spec, created_at, updated_at FROM meters WHERE key = ?1")?
        .query_row([key.as_str()], |row| Ok(meter_from_row(row)))
        .optional()?
        .transpose()
}

/// Deletes a meter; false when there was none.
pub(crate) fn delete(conn: &Connection, key: &MeterKey) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM meters WHERE key = ?1")?
        .execute([key.as_str()])?
        > 0)
}

/// The meter's answer, recounted from the events of the range.
pub(crate) fn query(conn: &Connection, meter: &Meter, query: &MeterQuery) -> DbResult<MeterReport> {
    let mut aggregator = MeterAggregator::new(meter, query);
    events::scan(conn, &query.event_filter(meter), |event| {
        aggregator.push(event)
    })?;
    Ok(aggregator.finish())
}
