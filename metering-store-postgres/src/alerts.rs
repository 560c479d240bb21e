//! Alert marks and the webhook outbox, written in the transaction of the write that reached
//! them (see `metering_core::alert`).

use chrono::{DateTime, Utc};
use metering_core::time::truncate_micros;
use metering_core::{
    AlertMark, AlertMeasure, AlertPeriod, AlertWatch, Attempt, Delivery, DeliveryCounts,
    DeliveryId, DeliveryStatus, DueDelivery, Quantity, QuotaId, Result, TenantId, WebhookId,
    WebhookSecret, Window,
};
use sqlx::postgres::PgRow;
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
        measure_and_place(conn, watch, false).await?;
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
    measure_and_place(conn, watch, refused).await
}

/// Measures a locked watch and places the marks its usage reached.
async fn measure_and_place(
    conn: &mut PgConnection,
    watch: &AlertWatch,
    refused: bool,
) -> Result<()> {
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

/// The columns [`delivery_from_row`] reads, on table alias `d`.
const DELIVERY_COLUMNS: &str = "d.id, d.message_id, d.type, d.status, d.attempts, \
     d.last_status_code, d.created_at, d.delivered_at, d.payload, d.webhook_id";

fn delivery_from_row(row: &PgRow) -> Result<Delivery> {
    let kind: String = row.try_get("type").map_err(db)?;
    let status: String = row.try_get("status").map_err(db)?;
    let attempts: i32 = row.try_get("attempts").map_err(db)?;
    let code: Option<i32> = row.try_get("last_status_code").map_err(db)?;
    Ok(Delivery {
        id: DeliveryId(row.try_get("id").map_err(db)?),
        webhook_id: WebhookId(row.try_get("webhook_id").map_err(db)?),
        message_id: row.try_get("message_id").map_err(db)?,
        kind: kind
            .parse()
            .map_err(|e| PgError::corrupt("delivery type", e))?,
        status: status
            .parse::<DeliveryStatus>()
            .map_err(|e| PgError::corrupt("delivery status", e))?,
        attempts: u32::try_from(attempts).map_err(|e| PgError::corrupt("delivery attempts", e))?,
        last_status_code: code
            .map(u16::try_from)
            .transpose()
            .map_err(|e| PgError::corrupt("delivery status code", e))?,
        created_at: row.try_get("created_at").map_err(db)?,
        delivered_at: row.try_get("delivered_at").map_err(db)?,
        payload: row.try_get("payload").map_err(db)?,
    })
}

/// The latest deliveries to `webhook`, the last written first.
pub(crate) async fn deliveries(
    pool: &PgPool,
    webhook: WebhookId,
    limit: usize,
) -> Result<Vec<Delivery>> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = $1 \
         ORDER BY d.seq DESC LIMIT $2"
    ))
    .bind(webhook.0)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(delivery_from_row).collect()
}

/// Leases up to `limit` due deliveries to active endpoints until `lease_until`, oldest due
/// first; rows another claim holds are skipped, never waited for.
pub(crate) async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<DueDelivery>> {
    let rows = sqlx::query(&format!(
        "WITH due AS (SELECT d.id FROM webhook_deliveries d \
             JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.status = 'pending' AND d.next_attempt_at <= $1 \
               AND (d.lease_until IS NULL OR d.lease_until <= $1) AND w.disabled_at IS NULL \
             ORDER BY d.next_attempt_at, d.seq LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE webhook_deliveries d SET lease_until = $2 FROM due, webhooks w \
         WHERE d.id = due.id AND w.id = d.webhook_id \
         RETURNING {DELIVERY_COLUMNS}, w.url, w.secret"
    ))
    .bind(now)
    .bind(truncate_micros(lease_until))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let secret: String = row.try_get("secret").map_err(db)?;
            Ok(DueDelivery {
                delivery: delivery_from_row(row)?,
                url: row.try_get("url").map_err(db)?,
                secret: WebhookSecret::parse(&secret)
                    .map_err(|_| PgError::corrupt("webhook secret", "not a whsec_ secret"))?,
            })
        })
        .collect()
}

/// Records an attempt at a pending delivery (see `Store::finish_delivery`).
pub(crate) async fn finish(
    pool: &PgPool,
    id: DeliveryId,
    attempt: Attempt,
    at: DateTime<Utc>,
) -> Result<()> {
    let record = attempt.record(at);
    let mut tx = pool.begin().await.map_err(db)?;
    let webhook: Option<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, \
         last_status_code = $3, next_attempt_at = coalesce($4, next_attempt_at), \
         delivered_at = coalesce($5, delivered_at), lease_until = NULL \
         WHERE id = $1 AND status = 'pending' RETURNING webhook_id",
    )
    .bind(id.0)
    .bind(record.status.as_str())
    .bind(record.status_code.map(i32::from))
    .bind(record.next_attempt_at)
    .bind(record.delivered_at)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    if let (true, Some(webhook)) = (record.disables_endpoint, webhook) {
        sqlx::query("UPDATE webhooks SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL")
            .bind(webhook)
            .bind(truncate_micros(at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

/// Makes a delivery of `webhook` pending again, due at `now`; `None` when there is none.
pub(crate) async fn retry(
    pool: &PgPool,
    webhook: WebhookId,
    id: DeliveryId,
    now: DateTime<Utc>,
) -> Result<Option<Delivery>> {
    let row = sqlx::query(&format!(
        "UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = $3, \
         lease_until = NULL WHERE d.id = $1 AND d.webhook_id = $2 RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(id.0)
    .bind(webhook.0)
    .bind(truncate_micros(now))
    .fetch_optional(pool)
    .await
    .map_err(db)?;
    row.as_ref().map(delivery_from_row).transpose()
}

/// Deletes at most `limit` finished deliveries written before `before`, and at most `limit`
/// marks of periods that ended before it; how many rows in all.
pub(crate) async fn prune(pool: &PgPool, before: DateTime<Utc>, limit: usize) -> Result<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let deliveries = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id IN (
             SELECT id FROM webhook_deliveries
             WHERE status <> 'pending' AND created_at < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db)?;
    let marks = sqlx::query(
        "DELETE FROM alert_marks WHERE (quota_id, tenant_id, period_start, mark) IN (
             SELECT quota_id, tenant_id, period_start, mark FROM alert_marks
             WHERE period_end < $1 LIMIT $2)",
    )
    .bind(before)
    .bind(limit)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(deliveries.rows_affected() + marks.rows_affected())
}

/// How many deliveries are in each state.
pub(crate) async fn counts(pool: &PgPool) -> Result<DeliveryCounts> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
            .fetch_all(pool)
            .await
            .map_err(db)?;
    let mut counts = DeliveryCounts::default();
    for (status, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        match status.as_str() {
            "pending" => counts.pending = n,
            "delivered" => counts.delivered = n,
            _ => counts.failed += n,
        }
    }
    Ok(counts)
}
