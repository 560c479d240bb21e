//! Alert marks and the webhook outbox, written in the transaction of the write that reached
//! them (see `metering_core::alert`).

use metering_core::{
    AlertMark, AlertMeasure, AlertPeriod, AlertWatch, Attempt, Delivery, DeliveryCounts,
    DeliveryId, DeliveryStatus, DueDelivery, Quantity, TenantId, WebhookId, WebhookSecret, Window,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};
use crate::{aggregate, meters};

/// A watch's usage, as `conn` (the write transaction) sees it.
pub(crate) fn measure(conn: &Connection, watch: &AlertWatch) -> DbResult<Quantity> {
    match &watch.measure {
        AlertMeasure::Usage(scope) => aggregate::sum_usage(conn, scope, watch.window),
        AlertMeasure::Meter(limit) => Ok(meters::tally(conn, limit)?.usage()),
    }
}

/// Measures each watch and places the marks its usage reached.
pub(crate) fn watch_all(conn: &Connection, watches: &[AlertWatch]) -> DbResult<()> {
    for watch in watches {
        let usage = measure(conn, watch)?;
        place(conn, watch, usage, watch.reached(usage, false))?;
    }
    Ok(())
}

/// Places each of `marks` not placed yet, writing its message with one pending delivery per
/// endpoint that receives its type; whether any was placed. `conn` holds the write lock.
pub(crate) fn place(
    conn: &Connection,
    watch: &AlertWatch,
    usage: Quantity,
    marks: Vec<AlertMark>,
) -> DbResult<bool> {
    let mut placed = false;
    for mark in marks {
        let new =
            conn.prepare_cached(
                "INSERT INTO alert_marks (quota_id, tenant_id, period_start, mark, period_end,
                     created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                watch.quota.id.to_string(),
                watch.tenant_id.as_str(),
                micros(watch.window.start),
                mark.key(),
                micros(watch.window.end),
                micros(watch.at),
            ])? == 1;
        if !new {
            continue;
        }
        placed = true;
        let message = mark.message(&watch.subject(usage), watch.at);
        let receivers: Vec<String> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id, events FROM webhooks WHERE disabled_at IS NULL ORDER BY id",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut ids = Vec::new();
            for row in rows {
                let (id, events) = row?;
                if events.split(',').any(|e| e == message.kind.as_str()) {
                    ids.push(id);
                }
            }
            ids
        };
        let mut insert = conn.prepare_cached(
            "INSERT INTO webhook_deliveries (id, webhook_id, message_id, type, payload, status,
                 created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
        )?;
        for webhook in receivers {
            insert.execute(params![
                DeliveryId::generate().to_string(),
                webhook,
                message.id,
                message.kind.as_str(),
                message.body,
                micros(message.created_at),
            ])?;
        }
    }
    Ok(placed)
}

/// Periods with marks that ended at or before `now` without a reset, of quotas that still
/// exist, the earliest ending first.
pub(crate) fn ended_periods(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> DbResult<Vec<AlertPeriod>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.quota_id, m.tenant_id, m.period_start, m.period_end
         FROM alert_marks m
         WHERE m.period_end <= ?1
           AND EXISTS (SELECT 1 FROM quotas q WHERE q.id = m.quota_id)
           AND NOT EXISTS (SELECT 1 FROM alert_marks r
                           WHERE r.quota_id = m.quota_id AND r.tenant_id = m.tenant_id
                             AND r.period_start = m.period_start AND r.mark = 'reset')
         GROUP BY m.quota_id, m.tenant_id, m.period_start
         ORDER BY m.period_end, m.quota_id, m.tenant_id
         LIMIT ?2",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![now, limit])?;
    let mut periods = Vec::new();
    while let Some(row) = rows.next()? {
        let quota: String = row.get(0)?;
        periods.push(AlertPeriod {
            quota_id: quota
                .parse()
                .map_err(|_| SqliteError::Corrupt(format!("alert mark quota `{quota}`")))?,
            tenant_id: TenantId::from_trusted(row.get::<_, String>(1)?),
            window: Window {
                start: instant(row.get(2)?),
                end: instant(row.get(3)?),
            },
        });
    }
    Ok(periods)
}

/// The columns [`delivery_from_row`] reads, on table alias `d`.
const DELIVERY_COLUMNS: &str = "d.id, d.message_id, d.type, d.status, d.attempts, \
     d.last_status_code, d.created_at, d.delivered_at, d.payload, d.webhook_id";

fn delivery_from_row(row: &rusqlite::Row<'_>) -> DbResult<Delivery> {
    let id: String = row.get(0)?;
    let corrupt = |what: &str| SqliteError::Corrupt(format!("delivery {id}: {what}"));
    let kind: String = row.get(2)?;
    let status: String = row.get(3)?;
    let webhook: String = row.get(9)?;
    Ok(Delivery {
        id: id.parse().map_err(|_| corrupt("id"))?,
        webhook_id: webhook.parse().map_err(|_| corrupt("webhook"))?,
        message_id: row.get(1)?,
        kind: kind.parse().map_err(|_| corrupt("type"))?,
        status: status
            .parse::<DeliveryStatus>()
            .map_err(|_| corrupt("status"))?,
        attempts: u32::try_from(row.get::<_, i64>(4)?).map_err(|_| corrupt("attempts"))?,
        last_status_code: row
            .get::<_, Option<i64>>(5)?
            .map(|c| u16::try_from(c).map_err(|_| corrupt("status code")))
            .transpose()?,
        created_at: instant(row.get(6)?),
        delivered_at: row.get::<_, Option<i64>>(7)?.map(instant),
        payload: row.get(8)?,
    })
}

/// The latest deliveries to `webhook`, the last written first.
pub(crate) fn deliveries(
    conn: &Connection,
    webhook: WebhookId,
    limit: usize,
) -> DbResult<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.webhook_id = ?1
         ORDER BY d.rowid DESC LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![webhook.to_string(), limit])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(delivery_from_row(row)?);
    }
    Ok(out)
}

/// Whether any pending delivery is due at `now` (leased or not).
pub(crate) fn any_due(conn: &Connection, now: i64) -> DbResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries
                            WHERE status = 'pending' AND next_attempt_at <= ?1)",
        )?
        .query_row([now], |r| r.get(0))?)
}

/// Leases up to `limit` due deliveries to active endpoints until `lease_until`, oldest due
/// first. `conn` holds the write lock, so no other claim sees them unleased.
pub(crate) fn claim(
    conn: &Connection,
    now: i64,
    lease_until: i64,
    limit: usize,
) -> DbResult<Vec<DueDelivery>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS}, w.url, w.secret
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
           AND (d.lease_until IS NULL OR d.lease_until <= ?1) AND w.disabled_at IS NULL
         ORDER BY d.next_attempt_at, d.rowid LIMIT ?2"
    ))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![now, limit])?;
    let mut due = Vec::new();
    while let Some(row) = rows.next()? {
        let secret: String = row.get(11)?;
        due.push(DueDelivery {
            delivery: delivery_from_row(row)?,
            url: row.get(10)?,
            secret: WebhookSecret::parse(&secret)
                .map_err(|_| SqliteError::Corrupt("a webhook secret".into()))?,
        });
    }
    let mut lease =
        conn.prepare_cached("UPDATE webhook_deliveries SET lease_until = ?2 WHERE id = ?1")?;
    for d in &due {
        lease.execute(params![d.delivery.id.to_string(), lease_until])?;
    }
    Ok(due)
}

/// Records an attempt at a pending delivery (see `Store::finish_delivery`).
pub(crate) fn finish(conn: &Connection, id: DeliveryId, attempt: Attempt, at: i64) -> DbResult<()> {
    let record = attempt.record(instant(at));
    let webhook: Option<String> = conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = ?2,
                 last_status_code = ?3, next_attempt_at = coalesce(?4, next_attempt_at),
                 delivered_at = coalesce(?5, delivered_at), lease_until = NULL
             WHERE id = ?1 AND status = 'pending' RETURNING webhook_id",
        )?
        .query_row(
            params![
                id.to_string(),
                record.status.as_str(),
                record.status_code,
                record.next_attempt_at.map(micros),
                record.delivered_at.map(micros),
            ],
            |r| r.get(0),
        )
        .optional()?;
    if let (true, Some(webhook)) = (record.disables_endpoint, webhook) {
        conn.prepare_cached(
            "UPDATE webhooks SET disabled_at = ?2 WHERE id = ?1 AND disabled_at IS NULL",
        )?
        .execute(params![webhook, at])?;
    }
    Ok(())
}

/// Makes a delivery of `webhook` pending again, due at `now`; `None` when there is none.
pub(crate) fn retry(
    conn: &Connection,
    webhook: WebhookId,
    id: DeliveryId,
    now: i64,
) -> DbResult<Option<Delivery>> {
    let changed = conn
        .prepare_cached(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?3,
                 lease_until = NULL
             WHERE id = ?1 AND webhook_id = ?2",
        )?
        .execute(params![id.to_string(), webhook.to_string(), now])?;
    if changed == 0 {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE d.id = ?1"
    ))?;
    let mut rows = stmt.query([id.to_string()])?;
    rows.next()?.map(delivery_from_row).transpose()
}

/// Deletes at most `limit` finished deliveries written before `before`, and at most `limit`
/// marks of periods that ended before it; how many rows in all.
pub(crate) fn prune(conn: &Connection, before: i64, limit: usize) -> DbResult<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let deliveries = conn.execute(
        "DELETE FROM webhook_deliveries WHERE rowid IN (
             SELECT rowid FROM webhook_deliveries
             WHERE status <> 'pending' AND created_at < ?1 LIMIT ?2)",
        params![before, limit],
    )?;
    let marks = conn.execute(
        "DELETE FROM alert_marks WHERE (quota_id, tenant_id, period_start, mark) IN (
             SELECT quota_id, tenant_id, period_start, mark FROM alert_marks
             WHERE period_end < ?1 LIMIT ?2)",
        params![before, limit],
    )?;
    Ok(u64::try_from(deliveries + marks).unwrap_or(u64::MAX))
}

/// How many deliveries are in each state.
pub(crate) fn counts(conn: &Connection) -> DbResult<DeliveryCounts> {
    let mut stmt =
        conn.prepare_cached("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")?;
    let mut rows = stmt.query([])?;
    let mut counts = DeliveryCounts::default();
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let n = u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0);
        match status.as_str() {
            "pending" => counts.pending = n,
            "delivered" => counts.delivered = n,
            _ => counts.failed += n,
        }
    }
    Ok(counts)
}
