//! Alert marks and the webhook outbox, written in the transaction of the write that reached
//! them (see `metering_core::alert`).

use chrono::{DateTime, Utc};
use metering_core::time::truncate_micros;
use metering_core::{
    AlertMark, AlertMeasure, AlertPeriod, AlertWatch, Delivery, DeliveryId, DeliveryStatus,
    Quantity, QuotaId, Result, TenantId, WebhookId, Window,
};
use sqlx::{PgConnection, PgPool, Row};

use crate::error::{PgError, db};

/// Takes the lock of each watch's quota and tenant, in one order, until the transaction
/// ends: writes that can reach the same marks run their checks one after another, each
/// seeing the events of those before (read committed).
pub(crate) async fn lock(conn: &mut PgConnection, watches: &[AlertWatch]) -> Result<()> {
    let mut keys: Vec<String> = watches
        .iter()
        .map(|w| {
            format!(
                "metering:alerts:{}\u{1f}{}",
                w.quota.id,
                w.tenant_id.as_str()
            )
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// A watch's usage, as `conn` (the write transaction) sees it.
pub(crate) async fn measure(conn: &mut PgConnection, watch: &AlertWatch) -> Result<Quantity> {
    match &watch.measure {
        AlertMeasure::Usage(scope) => crate::aggregate::sum_usage(conn, scope, watch.window).await,
        AlertMeasure::Meter(limit) => Ok(crate::meters::tally(conn, limit).await?.usage()),
    }
}

/// Locks the watches, measures each and places the marks its usage reached.
pub(crate) async fn watch_all(conn: &mut PgConnection, watches: &[AlertWatch]) -> Result<()> {
    lock(conn, watches).await?;
    for watch in watches {
        let usage = measure(conn, watch).await?;
        place(conn, watch, usage, watch.reached(usage, false)).await?;
    }
    Ok(())
}

/// Locks one watch, measures it (the consume's own event counted) and places the marks the
/// usage reached, with [`AlertMark::Exceeded`] when the consume was `refused`. The usage is
/// measured under the lock rather than taken from the consume's check: an ingest that does
/// not take the consume's lock may have committed since.
pub(crate) async fn watch_one(
    conn: &mut PgConnection,
    watch: &AlertWatch,
    refused: bool,
) -> Result<()> {
    lock(conn, std::slice::from_ref(watch)).await?;
    let usage = measure(conn, watch).await?;
    place(conn, watch, usage, watch.reached(usage, refused)).await?;
    Ok(())
}

/// Places each of `marks` not placed yet, writing its message with one pending delivery per
/// endpoint that receives its type; whether any was placed.
pub(crate) async fn place(
    conn: &mut PgConnection,
    watch: &AlertWatch,
    usage: Quantity,
    marks: Vec<AlertMark>,
) -> Result<bool> {
    let mut placed = false;
    for mark in marks {
        let new = sqlx::query(
            "INSERT INTO alert_marks (quota_id, tenant_id, period_start, mark, period_end, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(watch.quota.id.0)
        .bind(watch.tenant_id.as_str())
        .bind(watch.window.start)
        .bind(mark.key())
        .bind(watch.window.end)
        .bind(truncate_micros(watch.at))
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        if !new {
            continue;
        }
        placed = true;
        let message = mark.message(&watch.subject(usage), watch.at);
        let receivers: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE disabled_at IS NULL \
             AND $1 = ANY (string_to_array(events, ',')) ORDER BY id",
        )
        .bind(message.kind.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        if receivers.is_empty() {
            continue;
        }
        let ids: Vec<uuid::Uuid> = receivers.iter().map(|_| DeliveryId::generate().0).collect();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, message_id, type, payload, status, \
             created_at, next_attempt_at) \
             SELECT d, w, $3, $4, $5, 'pending', $6, $6 FROM unnest($1::uuid[], $2::uuid[]) AS t(d, w)",
        )
        .bind(ids)
        .bind(receivers)
        .bind(&message.id)
        .bind(message.kind.as_str())
        .bind(&message.body)
        .bind(message.created_at)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    }
    Ok(placed)
}

/// Periods with marks that ended at or before `now` without a reset, of quotas that still
/// exist, the earliest ending first.
pub(crate) async fn ended_periods(
    pool: &PgPool,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<AlertPeriod>> {
    let rows = sqlx::query(
        "SELECT m.quota_id, m.tenant_id, m.period_start, m.period_end FROM alert_marks m \
         WHERE m.period_end <= $1 \
           AND EXISTS (SELECT 1 FROM quotas q WHERE q.id = m.quota_id) \
           AND NOT EXISTS (SELECT 1 FROM alert_marks r WHERE r.quota_id = m.quota_id \
               AND r.tenant_id = m.tenant_id AND r.period_start = m.period_start \
               AND r.mark = 'reset') \
         GROUP BY m.quota_id, m.tenant_id, m.period_start, m.period_end \
         ORDER BY m.period_end, m.quota_id, m.tenant_id LIMIT $2",
    )
    .bind(now)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            Ok(AlertPeriod {
                quota_id: QuotaId(row.try_get("quota_id").map_err(db)?),
                tenant_id: TenantId::from_trusted(
                    row.try_get::<String, _>("tenant_id").map_err(db)?,
                ),
                window: Window {
                    start: row.try_get("period_start").map_err(db)?,
                    end: row.try_get("period_end").map_err(db)?,
                },
            })
        })
        .collect()
}

/// The latest deliveries to `webhook`, newest first.
pub(crate) async fn deliveries(
    pool: &PgPool,
    webhook: WebhookId,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(
        "SELECT id, message_id, type, status, attempts, last_status_code, created_at, \
         delivered_at, payload FROM webhook_deliveries WHERE webhook_id = $1 \
         ORDER BY seq DESC LIMIT $2",
    )
    .bind(webhook.0)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("type").map_err(db)?;
            let status: String = row.try_get("status").map_err(db)?;
            let attempts: i32 = row.try_get("attempts").map_err(db)?;
            let code: Option<i32> = row.try_get("last_status_code").map_err(db)?;
            Ok(Delivery {
                id: DeliveryId(row.try_get("id").map_err(db)?),
                webhook_id: webhook,
                message_id: row.try_get("message_id").map_err(db)?,
                kind: kind
                    .parse()
                    .map_err(|e| PgError::corrupt("delivery type", e))?,
                status: status
                    .parse::<DeliveryStatus>()
                    .map_err(|e| PgError::corrupt("delivery status", e))?,
                attempts: u32::try_from(attempts)
                    .map_err(|e| PgError::corrupt("delivery attempts", e))?,
                last_status_code: code
                    .map(u16::try_from)
                    .transpose()
                    .map_err(|e| PgError::corrupt("delivery status code", e))?,
                created_at: row.try_get("created_at").map_err(db)?,
                delivered_at: row.try_get("delivered_at").map_err(db)?,
                payload: row.try_get("payload").map_err(db)?,
            })
        })
        .collect()
}
