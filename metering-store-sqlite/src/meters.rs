//! Meters: definitions in `meters` (the spec as its JSON text), quota tallies recounted from
//! the events of the period, and consumes. Answers to queries come from the meter rollups
//! (`meter_rollup`).

use chrono::{DateTime, Utc};
use metering_core::meter::{meter_in_use, quotable};
use metering_core::{
    ConsumeOutcome, Meter, MeterAddition, MeterKey, MeterLimit, MeterSpec, MeterTally,
    MeteredConsume,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::value::RawValue;

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};
use crate::events;

pub(crate) fn meter_from_row(row: &Row<'_>) -> DbResult<Meter> {
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

/// Inserts or replaces a meter; a replaced one keeps its `created_at`. `conn` must be the
/// writer's transaction (the quota check and the write are one step).
pub(crate) fn put(
    conn: &Connection,
    key: &MeterKey,
    spec: &MeterSpec,
    now: DateTime<Utc>,
) -> DbResult<Meter> {
    if !quotable(spec.aggregation) && crate::quotas::meter_in_use(conn, key)? {
        return Err(meter_in_use(key).into());
    }
    let text = serde_json::to_string(spec).map_err(|e| SqliteError::Corrupt(e.to_string()))?;
    let unchanged = by_key(conn, key)?.is_some_and(|stored| stored.spec == *spec);
    if !unchanged {
        crate::meter_rollup::reset(conn, key.as_str())?;
    }
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

/// Deletes a meter; false when there was none. Refused while a quota names it.
pub(crate) fn delete(conn: &Connection, key: &MeterKey) -> DbResult<bool> {
    if crate::quotas::meter_in_use(conn, key)? {
        return Err(meter_in_use(key).into());
    }
    crate::meter_rollup::forget(conn, key.as_str())?;
    Ok(conn
        .prepare_cached("DELETE FROM meters WHERE key = ?1")?
        .execute([key.as_str()])?
        > 0)
}

/// The tenant's value of the meter in the limit's window.
pub(crate) fn tally(conn: &Connection, limit: &MeterLimit) -> DbResult<MeterTally> {
    let mut tally = limit.tally();
    events::scan(conn, &limit.event_filter(), |event| {
        tally.push(limit, event)
    })?;
    Ok(tally)
}

/// Inserts the single event of `rows` when the meter's value stays within the limit. `tx`
/// must hold the write lock from before the tally is read (`BEGIN IMMEDIATE`).
pub(crate) fn consume(
    tx: &rusqlite::Transaction<'_>,
    event: &metering_core::Event,
    rows: &[crate::codec::EventRow],
    limit: &MeterLimit,
) -> DbResult<MeteredConsume> {
    let judgement = limit.judge(&tally(tx, limit)?, MeterAddition::Event(event));
    let usage = judgement.usage;
    let outcome = if events::exists(tx, &rows[0].id)? {
        ConsumeOutcome::Duplicate { usage }
    } else if judgement.allowed {
        events::insert_rows(tx, rows)?;
        ConsumeOutcome::Admitted {
            usage_before: usage,
        }
    } else {
        ConsumeOutcome::Denied { usage }
    };
    Ok(MeteredConsume { outcome, judgement })
}
