//! Partition upkeep: monthly partitions ahead of need, and retention by whole partitions.

use chrono::{DateTime, Months, NaiveDate, Utc};
use metering_core::{Error, Result};

use crate::compact::LOCK_ROLLUPS;
use crate::error::db;
use crate::ingest::month_start;
use crate::store::{PostgresStore, lock, quote_ident};

/// What [`PostgresStore::apply_retention`] removed.
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

impl PostgresStore {
    /// Routine upkeep at `now`: creates the partitions of this month and of the configured
    /// number of months ahead, and applies the configured retention (if any). Run it now and
    /// then (daily is plenty); [`PostgresStore::open`] runs it once.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<RetentionReport> {
        let this_month = month_start(now);
        let months: Vec<DateTime<Utc>> = (0..=self.config.partitions_ahead)
            .filter_map(|k| this_month.checked_add_months(Months::new(k)))
            .collect();
        let mut conn = self.pool.acquire().await.map_err(db)?;
        self.ensure_partitions(&mut conn, months).await?;
        drop(conn);
        match self.config.retention {
            Some(keep) => {
                let keep = chrono::Duration::from_std(keep)
                    .map_err(|e| Error::internal("retention too long", e))?;
                self.apply_retention(now - keep).await
            }
            None => Ok(RetentionReport::default()),
        }
    }

    /// Drops every monthly partition that ends at or before `older_than`, with the ids and
    /// rollups of the events it held, in one transaction. Events of a partial month are kept
    /// until their whole month is past `older_than`.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when the server cannot be reached.
    pub async fn apply_retention(&self, older_than: DateTime<Utc>) -> Result<RetentionReport> {
        let mut tx = self.pool.begin().await.map_err(db)?;
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
        }
        tx.commit().await.map_err(db)?;
        if !doomed.is_empty() {
            let mut known = lock(&self.partitions);
            for (name, _) in &doomed {
                if let Some((start, _)) = partition_range(name) {
                    known.remove(&start);
                }
            }
        }
        Ok(report)
    }
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
