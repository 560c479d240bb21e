//! Versioned schema migrations, embedded in the binary and applied on open.
//!
//! The schema version is SQLite's `PRAGMA user_version`. Each migration runs in one
//! `BEGIN IMMEDIATE` transaction together with the version bump, so a crash leaves the
//! database at the old version or the new one, and two processes opening the same file at
//! once apply each migration exactly once. A migration may have a Rust step after its SQL
//! (to fill a new table from existing rows).

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{DbResult, SqliteError};
use crate::rollup::RollupDelta;

/// One schema step.
struct Migration {
    /// The SQL, run as one batch.
    sql: &'static str,
    /// Work done after the SQL, in the same transaction.
    backfill: Option<fn(&Transaction<'_>) -> DbResult<()>>,
}

/// Every migration in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        sql: include_str!("../migrations/0001_init.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0002_rollups.sql"),
        backfill: Some(backfill_rollups),
    },
    Migration {
        sql: include_str!("../migrations/0003_rollups_by_tenant.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0004_meters.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0005_meter_quotas.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0006_corrections.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0007_meter_rollups.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0008_webhooks.sql"),
        backfill: None,
    },
    Migration {
        sql: include_str!("../migrations/0009_alert_retention.sql"),
        backfill: None,
    },
];

/// The schema version this build creates.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The stored schema version.
pub(crate) fn schema_version(conn: &Connection) -> DbResult<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// Applies every migration the database lacks; returns how many ran.
pub(crate) fn migrate(conn: &mut Connection) -> DbResult<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = schema_version(&tx)?;
    let applied = usize::try_from(found)
        .map_err(|_| SqliteError::Corrupt(format!("schema version {found}")))?;
    if applied > SCHEMA_VERSION {
        return Err(SqliteError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(migration.sql)?;
        if let Some(backfill) = migration.backfill {
            backfill(&tx)?;
        }
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).expect("few migrations"),
        )?;
        tracing::info!(version = i + 1, "applied SQLite migration");
    }
    tx.commit()?;
    Ok(SCHEMA_VERSION - applied)
}

/// Sums the events stored before rollups existed into them, a chunk at a time so memory
/// stays bounded on large databases.
fn backfill_rollups(tx: &Transaction<'_>) -> DbResult<()> {
    const CHUNK: i64 = 100_000;
    let mut stmt = tx.prepare(
        "SELECT tenant_id, resource, feature, ts, qty_units, qty_nanos, id FROM events
         WHERE (ts, id) > (?1, ?2) ORDER BY ts, id LIMIT ?3",
    )?;
    let (mut after_ts, mut after_id) = (i64::MIN, String::new());
    loop {
        let rows = stmt
            .query_map(rusqlite::params![after_ts, after_id, CHUNK], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    crate::codec::nanos(r.get(4)?, r.get(5)?),
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        (after_ts, after_id) = (last.3, last.5.clone());
        let mut delta = RollupDelta::default();
        for (tenant, resource, feature, ts, nanos, _) in &rows {
            delta.add(tenant, resource, feature, *ts, *nanos);
        }
        delta.apply(tx)?;
    }
}
