//! Meters: definitions in `meters` (the spec as its JSON text; answers come from
//! [`crate::meter_rollup`]), and a tenant's value of a meter for a quota, recounted from
//! its events of the period through the same time and tenant indexes (and partition
//! pruning) as event listings.

use chrono::{DateTime, Utc};
use metering_core::meter::{meter_in_use, quotable};
use metering_core::time::truncate_micros;
use metering_core::{Meter, MeterKey, MeterLimit, MeterSpec, MeterTally, Result};
use serde_json::value::RawValue;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{PgError, db};
use crate::{events, meter_rollup};

const COLUMNS: &str = "key, spec::text AS spec, created_at, updated_at";

fn meter_from_row(row: &PgRow) -> Result<Meter> {
    let key: String = row.try_get("key").map_err(db)?;
    let spec: String = row.try_get("spec").map_err(db)?;
    let raw: Box<RawValue> =
        serde_json::from_str(&spec).map_err(|e| PgError::corrupt("meter spec", e))?;
    Ok(Meter {
        key: MeterKey::new(key).map_err(|e| PgError::corrupt("meter key", e))?,
        spec: MeterSpec::from_json(&raw).map_err(|e| PgError::corrupt("meter spec", e))?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

/// Inserts or replaces a meter; a replaced one keeps its `created_at`.
pub(crate) async fn put(
    pool: &PgPool,
    key: &MeterKey,
    spec: &MeterSpec,
    now: DateTime<Utc>,
) -> Result<Meter> {
    let text = serde_json::to_string(spec).map_err(|e| PgError::corrupt("meter spec", e))?;
    let mut tx = pool.begin().await.map_err(db)?;
    let old = by_key_locked(&mut tx, key, "FOR UPDATE").await?;
    if !quotable(spec.aggregation) && in_use(&mut tx, key).await? {
        return Err(meter_in_use(key));
    }
    let row = sqlx::query(&format!(
        "INSERT INTO meters (key, spec, created_at, updated_at) VALUES ($1, $2::json, $3, $3) \
         ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at \
         RETURNING {COLUMNS}"
    ))
    .bind(key.as_str())
    .bind(text)
    .bind(truncate_micros(now))
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?;
    let meter = meter_from_row(&row)?;
    if old.is_none_or(|old| old.spec != *spec) {
        meter_rollup::reset(&mut tx, key.as_str()).await?;
    }
    tx.commit().await.map_err(db)?;
    Ok(meter)
}

/// One meter, its row locked with `lock` (`FOR SHARE` or `FOR UPDATE`) until the end of
/// the transaction.
pub(crate) async fn by_key_locked(
    conn: &mut PgConnection,
    key: &MeterKey,
    lock: &str,
) -> Result<Option<Meter>> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM meters WHERE key = $1 {lock}"
    ))
    .bind(key.as_str())
    .fetch_optional(conn)
    .await
    .map_err(db)?
    .as_ref()
    .map(meter_from_row)
    .transpose()
}

/// Whether a quota names meter `key`.
async fn in_use(conn: &mut PgConnection, key: &MeterKey) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM quotas WHERE meter = $1)")
        .bind(key.as_str())
        .fetch_one(conn)
        .await
        .map_err(db)
}

/// Every meter, by key.
pub(crate) async fn list(pool: &PgPool) -> Result<Vec<Meter>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM meters ORDER BY key"))
        .fetch_all(pool)
        .await
        .map_err(db)?
        .iter()
        .map(meter_from_row)
        .collect()
}

/// One meter.
pub(crate) async fn by_key(pool: &PgPool, key: &MeterKey) -> Result<Option<Meter>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM meters WHERE key = $1"))
        .bind(key.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(meter_from_row)
        .transpose()
}

/// Deletes a meter; false when there was none. Refused while a quota names it.
pub(crate) async fn delete(pool: &PgPool, key: &MeterKey) -> Result<bool> {
    let mut tx = pool.begin().await.map_err(db)?;
    by_key_locked(&mut tx, key, "FOR UPDATE").await?;
    if in_use(&mut tx, key).await? {
        return Err(meter_in_use(key));
    }
    meter_rollup::drop_cells(&mut tx, key.as_str()).await?;
    let done = sqlx::query("DELETE FROM meters WHERE key = $1")
        .bind(key.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(done.rows_affected() > 0)
}

/// The tenant's value of the meter in the limit's window, read through `conn`.
pub(crate) async fn tally(conn: &mut PgConnection, limit: &MeterLimit) -> Result<MeterTally> {
    let mut tally = limit.tally();
    events::scan(conn, &limit.event_filter(), |event| {
        tally.push(limit, event)
    })
    .await?;
    Ok(tally)
}
