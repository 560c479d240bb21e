//! Corrections: looking events up by id, voiding them and amending them.
//!
//! A void marks the event's row and appends a negative delta (its quantity, one event) to
//! `rollup_deltas` in the same transaction, so rollups, usage sums and listing totals drop it
//! exactly as ingest added it; raw reads skip voided rows. In the same transaction it
//! recomputes the meter cells that held the event (see [`crate::meter_rollup::unfold`]). Corrections of one event are
//! serialized by its row lock (`FOR UPDATE`).

use chrono::{DateTime, Utc};
use metering_core::{AmendOutcome, Event, EventId, Result};
use sqlx::{PgConnection, PgPool};

use crate::error::db;
use crate::events::{Claim, EVENT_SELECT, event_from_row, write};
use crate::retention::{KnownPartitions, ensure_partitions};

/// The event with `id`, voided or not; locked for the transaction when `lock`.
async fn load(conn: &mut PgConnection, id: &str, lock: bool) -> Result<Option<Event>> {
    // The id's timestamp first, so the event is read from its own partition only.
    let ts: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT ts FROM event_ids WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
    let Some(ts) = ts else {
        return Ok(None);
    };
    let lock = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!(
        "{EVENT_SELECT} WHERE e.id = $1 AND e.ts = $2{lock}"
    ))
    .bind(id)
    .bind(ts)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db)?;
    row.as_ref().map(event_from_row).transpose()
}

/// One stored event, voided or not.
pub(crate) async fn by_id(pool: &PgPool, id: &EventId) -> Result<Option<Event>> {
    let mut conn = pool.acquire().await.map_err(db)?;
    load(&mut conn, id.as_str(), false).await
}

/// The event an amend of `id` recorded.
pub(crate) async fn replacement_of(pool: &PgPool, id: &EventId) -> Result<Option<Event>> {
    let row = sqlx::query(&format!("{EVENT_SELECT} WHERE e.amends = $1 LIMIT 1"))
        .bind(id.as_str())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(event_from_row).transpose()
}

/// Voids the counting, locked `event` and takes it out of the rollups.
async fn void_counting(
    conn: &mut PgConnection,
    event: &Event,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE events SET voided_at = $3, void_reason = $4 WHERE id = $1 AND ts = $2")
        .bind(event.id.as_str())
        .bind(event.timestamp)
        .bind(at)
        .bind(reason)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    sqlx::query(
        "INSERT INTO rollup_deltas (tenant_id, feature, resource, bucket, quantity, events)
         VALUES ($1, $2, $3, date_bin('15 minutes', $4::timestamptz, TIMESTAMPTZ 'epoch'),
                 -($5::text::numeric), -1)",
    )
    .bind(event.tenant_id.as_str())
    .bind(event.feature.as_str())
    .bind(event.resource.as_str())
    .bind(event.timestamp)
    .bind(event.quantity.to_string())
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    crate::meter_rollup::unfold(conn, event).await
}

/// Voids the event `id` unless it is voided already; the event as stored afterwards.
pub(crate) async fn void(
    pool: &PgPool,
    id: &EventId,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Option<Event>> {
    let mut tx = pool.begin().await.map_err(db)?;
    let Some(event) = load(&mut tx, id.as_str(), true).await? else {
        return Ok(None);
    };
    if !event.counts() {
        return Ok(Some(event));
    }
    void_counting(&mut tx, &event, reason, at).await?;
    let voided = load(&mut tx, id.as_str(), false).await?;
    tx.commit().await.map_err(db)?;
    Ok(voided)
}

/// Voids `replacement.amends` and inserts the replacement, in one transaction.
pub(crate) async fn amend(
    pool: &PgPool,
    partitions: &KnownPartitions,
    replacement: &Event,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> Result<AmendOutcome> {
    let original = replacement.amends.as_ref().map_or("", EventId::as_str);
    let mut conn = pool.acquire().await.map_err(db)?;
    ensure_partitions(partitions, &mut conn, [replacement.timestamp]).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(db)?;
    // The original's lock first: a concurrent amend of it has committed (or not started) by
    // the time the replacement's id is looked up.
    let event = load(&mut tx, original, true).await?;
    if let Some(stored) = load(&mut tx, replacement.id.as_str(), false).await? {
        return Ok(
            if stored.amends.as_ref().map(EventId::as_str) == Some(original) {
                AmendOutcome::Replayed(stored)
            } else {
                AmendOutcome::IdTaken
            },
        );
    }
    let Some(event) = event else {
        return Ok(AmendOutcome::NotFound);
    };
    if !event.counts() {
        return Ok(AmendOutcome::OriginalVoided);
    }
    void_counting(&mut tx, &event, reason, at).await?;
    let new = write(&mut tx, Claim::SkippingStored, &[replacement])
        .await
        .map_err(db)?;
    if !new.contains(replacement.id.as_str()) {
        // An ingest claimed the id after our look-up; the transaction rolls back.
        return Ok(AmendOutcome::IdTaken);
    }
    sqlx::query("UPDATE events SET amends = $3 WHERE id = $1 AND ts = $2")
        .bind(replacement.id.as_str())
        .bind(replacement.timestamp)
        .bind(original)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(AmendOutcome::Amended(replacement.clone()))
}
