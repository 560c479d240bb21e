//! Webhook endpoints, each with the signing secret the server signs its messages with.

use metering_core::{Webhook, WebhookId, WebhookSecret};
use rusqlite::{Connection, Row, params};

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};

const COLUMNS: &str = "id, url, events, description, created_at, disabled_at";

fn webhook_from_row(row: &Row<'_>) -> DbResult<Webhook> {
    let id: String = row.get(0)?;
    let events: String = row.get(2)?;
    let corrupt = |what: &str| SqliteError::Corrupt(format!("webhook {id}: {what}"));
    Ok(Webhook {
        id: id.parse().map_err(|_| corrupt("id"))?,
        url: row.get(1)?,
        events: Webhook::parse_events_text(&events).ok_or_else(|| corrupt("events"))?,
        description: row.get(3)?,
        created_at: instant(row.get(4)?),
        disabled_at: row.get::<_, Option<i64>>(5)?.map(instant),
    })
}

/// Stores a new endpoint (a taken id surfaces as a conflict).
pub(crate) fn insert(conn: &Connection, webhook: &Webhook, secret: &WebhookSecret) -> DbResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO webhooks ({COLUMNS}, secret) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        webhook.id.to_string(),
        webhook.url,
        webhook.events_text(),
        webhook.description,
        micros(webhook.created_at),
        webhook.disabled_at.map(micros),
        secret.as_str(),
    ])?;
    Ok(())
}

/// Every endpoint, oldest first.
pub(crate) fn list(conn: &Connection) -> DbResult<Vec<Webhook>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut hooks = Vec::new();
    while let Some(row) = rows.next()? {
        hooks.push(webhook_from_row(row)?);
    }
    Ok(hooks)
}

/// The endpoint with this id.
pub(crate) fn by_id(conn: &Connection, id: WebhookId) -> DbResult<Option<Webhook>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?1"))?;
    let mut rows = stmt.query([id.to_string()])?;
    rows.next()?.map(webhook_from_row).transpose()
}

/// Deletes an endpoint; whether there was one.
pub(crate) fn delete(conn: &Connection, id: WebhookId) -> DbResult<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM webhooks WHERE id = ?1")?
        .execute([id.to_string()])?;
    Ok(deleted > 0)
}
