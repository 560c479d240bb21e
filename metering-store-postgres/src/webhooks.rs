//! Webhook endpoints, each with the signing secret the server signs its messages with.

use metering_core::time::truncate_micros;
use metering_core::{Error, Result, Webhook, WebhookId, WebhookSecret};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::error::{PgError, db};

const COLUMNS: &str = "id, url, events, description, created_at, disabled_at";

fn webhook_from_row(row: &PgRow) -> Result<Webhook> {
    let events: String = row.try_get("events").map_err(db)?;
    Ok(Webhook {
        id: WebhookId(row.try_get("id").map_err(db)?),
        url: row.try_get("url").map_err(db)?,
        events: Webhook::parse_events_text(&events)
            .ok_or_else(|| PgError::corrupt("webhook events", &events))?,
        description: row.try_get("description").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        disabled_at: row.try_get("disabled_at").map_err(db)?,
    })
}

pub(crate) async fn insert(pool: &PgPool, webhook: &Webhook, secret: &WebhookSecret) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO webhooks ({COLUMNS}, secret) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(webhook.id.0)
    .bind(&webhook.url)
    .bind(webhook.events_text())
    .bind(webhook.description.as_deref())
    .bind(truncate_micros(webhook.created_at))
    .bind(webhook.disabled_at.map(truncate_micros))
    .bind(secret.as_str())
    .execute(pool)
    .await
    .map_err(|e| match db(e) {
        Error::Conflict(_) => Error::Conflict(format!("webhook {} exists already", webhook.id)),
        other => other,
    })?;
    Ok(())
}

pub(crate) async fn list(pool: &PgPool) -> Result<Vec<Webhook>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id"
    ))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(webhook_from_row).collect()
}

pub(crate) async fn by_id(pool: &PgPool, id: WebhookId) -> Result<Option<Webhook>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(webhook_from_row).transpose()
}

pub(crate) async fn delete(pool: &PgPool, id: WebhookId) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?
        .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound(format!("webhook {id}")));
    }
    Ok(())
}
