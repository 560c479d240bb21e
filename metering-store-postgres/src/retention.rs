//! Partition upkeep: monthly partitions ahead of need and on demand, and retention by whole
//! partitions.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use metering_core::{Error, Result};
use sqlx::{PgConnection, PgPool};

use crate::config::PostgresConfig;
use crate::error::db;
use crate::migrations::quote_ident;
use crate::rollup::LOCK_ROLLUPS;

/// First days (UTC) of the months whose partition is known to exist.
pub(crate) type KnownPartitions = Mutex<HashSet<DateTime<Utc>>>;

/// Locks the partition cache, surviving a poisoned lock (the set stays consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The first instant (UTC) of the month holding `t`.
pub(crate) fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(t)
}

/// Makes sure the monthly partitions holding `timestamps` exist.
pub(crate) async fn ensure_partitions(
    partitions: &KnownPartitions,
    conn: &mut PgConnection,
    timestamps: impl IntoIterator<Item = DateTime<Utc>>,
) -> Result<()> {
    let months: HashSet<DateTime<Utc>> = timestamps.into_iter().map(month_start).collect();
    let missing: Vec<DateTime<Utc>> = {
        let known = lock(partitions);
        months.into_iter().filter(|m| !known.contains(m)).collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT metering_ensure_partition(m) FROM unnest($1::timestamptz[]) AS m")
        .bind(&missing)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    lock(partitions).extend(missing);
    Ok(())
}

/// What [`PostgresStore::apply_retention`](crate::PostgresStore::apply_retention) removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionReport {
    /// The partitions dropped, e.g. `events_p202401`.
    pub dropped_partitions: Vec<String>,
    /// Every event before this instant is gone (the end of the newest dropped partition).
    pub dropped_before: Option<DateTime<Utc>>,
}

/// The month a partition name `events_pYYYYMM` covers, as `[start, end)`.
fn partition_range(name: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let digits = name.strip_prefix("events_p")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits.get(..4)?.parse().ok()?;
    let month: u32 = digits.get(4..)?.parse().ok()?;
    let start = NaiveDate::from_ymd_opt(year, month, 1)?;
    let end = start.checked_add_months(Months::new(1))?;
    Some((
        start.and_hms_opt(0, 0, 0)?.and_utc(),
        end.and_hms_opt(0, 0, 0)?.and_utc(),
    ))
}

/// Creates the partitions of the month of `now` and of `config.partitions_ahead` months
/// after it, and applies `config.retention` (if any) at `now`.
pub(crate) async fn maintain(
    pool: &PgPool,
    config: &PostgresConfig,
    partitions: &KnownPartitions,
    now: DateTime<Utc>,
) -> Result<RetentionReport> {
    let this_month = month_start(now);
    let months: Vec<DateTime<Utc>> = (0..=config.partitions_ahead)
        .filter_map(|k| this_month.checked_add_months(Months::new(k)))
        .collect();
    let mut conn = pool.acquire().await.map_err(db)?;
    ensure_partitions(partitions, &mut conn, months).await?;
    drop(conn);
    match config.retention {
        Some(keep) => {
            let keep = chrono::Duration::from_std(keep)
                .map_err(|e| Error::internal("retention too long", e))?;
            apply_retention(pool, partitions, now - keep).await
        }
        None => Ok(RetentionReport::default()),
    }
}

/// Drops every monthly partition that ends at or before `older_than`, with the ids, rollups
/// and rollup deltas of its events, in one transaction, and forgets it in `partitions`.
pub(crate) async fn apply_retention(
    pool: &PgPool,
    partitions: &KnownPartitions,
    older_than: DateTime<Utc>,
) -> Result<RetentionReport> {
    let mut tx = pool.begin().await.map_err(db)?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'events'::regclass",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    let mut report = RetentionReport::default();
    let mut doomed: Vec<(String, DateTime<Utc>)> = names
        .into_iter()
        .filter_map(|n| partition_range(&n).map(|(_, end)| (n, end)))
        .filter(|(_, end)| *end <= older_than)
        .collect();
    doomed.sort();
    for (name, end) in &doomed {
        // The name was read from the catalog and matched `events_pYYYYMM`; it is quoted.
        let sql = format!("DROP TABLE {}", quote_ident(name));
        sqlx::query(sql.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        report.dropped_partitions.push(name.clone());
        report.dropped_before = report.dropped_before.max(Some(*end));
    }
    if let Some(before) = report.dropped_before {
        // Not beside a compaction, which moves deltas into the rollups.
        sqlx::query(LOCK_ROLLUPS)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        for sql in [
            "DELETE FROM event_ids WHERE ts < $1",
            "DELETE FROM rollup_deltas WHERE bucket < $1",
            "DELETE FROM rollups_15m WHERE bucket < $1",
            "DELETE FROM rollups_1d WHERE bucket < $1",
        ] {
            sqlx::query(sql)
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        crate::meter_rollup::forget_before(&mut tx, before).await?;
    }
    tx.commit().await.map_err(db)?;
    if !doomed.is_empty() {
        let mut known = lock(partitions);
        for (name, _) in &doomed {
            if let Some((start, _)) = partition_range(name) {
                known.remove(&start);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_map_to_months() {
        let (start, end) = partition_range("events_p202412").expect("a partition");
        assert_eq!(start.to_rfc3339(), "2024-12-01T00:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert!(partition_range("events_p2024").is_none());
        assert!(partition_range("events_p202413").is_none());
        assert!(partition_range("other").is_none());
    }
}
