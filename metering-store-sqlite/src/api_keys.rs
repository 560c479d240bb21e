//! API keys: stored with the hash of their secret, never the secret.

use chrono::{DateTime, Utc};
use metering_core::{ApiKey, ApiKeyId, KeyHash, LastAdmin, Role, StoredApiKey, TenantId};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};

const COLUMNS: &str =
    "id, name, role, tenant_id, prefix, hash, created_at, expires_at, last_used_at, revoked_at";

fn key_from_row(row: &Row<'_>) -> DbResult<StoredApiKey> {
    let id: String = row.get(0)?;
    let role: String = row.get(2)?;
    let hash: Vec<u8> = row.get(5)?;
    let corrupt = |what: &str| SqliteError::Corrupt(format!("API key {id}: {what}"));
    let key = ApiKey {
        id: id.parse().map_err(|_| corrupt("id"))?,
        name: row.get(1)?,
        role: role.parse::<Role>().map_err(|_| corrupt("role"))?,
        tenant_id: row.get::<_, Option<String>>(3)?.map(TenantId::from_trusted),
        prefix: row.get(4)?,
        created_at: instant(row.get(6)?),
        expires_at: row.get::<_, Option<i64>>(7)?.map(instant),
        last_used_at: row.get::<_, Option<i64>>(8)?.map(instant),
        revoked_at: row.get::<_, Option<i64>>(9)?.map(instant),
    };
    let hash = KeyHash(hash.try_into().map_err(|_| corrupt("hash"))?);
    Ok(StoredApiKey { key, hash })
}

/// Stores a new key (a unique violation on id or hash surfaces as a conflict).
pub(crate) fn insert(conn: &Connection, key: &ApiKey, hash: &KeyHash) -> DbResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO api_keys ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        key.id.to_string(),
        key.name,
        key.role.as_str(),
        key.tenant_id.as_ref().map(TenantId::as_str),
        key.prefix,
        hash.0.as_slice(),
        micros(key.created_at),
        key.expires_at.map(micros),
        key.last_used_at.map(micros),
        key.revoked_at.map(micros),
    ])?;
    Ok(())
}

/// The key whose secret hashes to `hash`.
pub(crate) fn by_hash(conn: &Connection, hash: &KeyHash) -> DbResult<Option<StoredApiKey>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1"))?;
    let mut rows = stmt.query([hash.0.as_slice()])?;
    rows.next()?.map(key_from_row).transpose()
}

/// The key with this id.
pub(crate) fn by_id(conn: &Connection, id: ApiKeyId) -> DbResult<Option<ApiKey>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))?;
    let mut rows = stmt.query([id.to_string()])?;
    Ok(rows.next()?.map(key_from_row).transpose()?.map(|k| k.key))
}

/// Every key, oldest first.
pub(crate) fn list(conn: &Connection) -> DbResult<Vec<ApiKey>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY rowid"))?;
    let mut rows = stmt.query([])?;
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        keys.push(key_from_row(row)?.key);
    }
    Ok(keys)
}

/// What [`revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// The key is revoked (now, or it was already).
    Done,
    /// There is no such key.
    NotFound,
    /// The key is the last active admin key and was kept.
    LastAdmin,
}

/// Marks a key revoked (the first revocation time stays), keeping the last active admin key
/// under [`LastAdmin::Keep`]. Runs inside the caller's write transaction, so the check and
/// the write are one step.
pub(crate) fn revoke(
    conn: &Connection,
    id: ApiKeyId,
    at: DateTime<Utc>,
    last_admin: LastAdmin,
) -> DbResult<Revoked> {
    let (id, at) = (id.to_string(), micros(at));
    // Active admin keys at `at`: the target's own state and whether another one exists.
    let active_admin =
        "role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)";
    let (target_is_admin, other_admin): (bool, bool) = conn
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = ?1 AND {active_admin}),
                    EXISTS (SELECT 1 FROM api_keys WHERE id != ?1 AND {active_admin})"
        ))?
        .query_row(params![id, at], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if last_admin == LastAdmin::Keep && target_is_admin && !other_admin {
        return Ok(Revoked::LastAdmin);
    }
    let found = conn
        .prepare_cached(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1 RETURNING 1",
        )?
        .query_row(params![id, at], |_| Ok(()))
        .optional()?;
    Ok(if found.is_some() {
        Revoked::Done
    } else {
        Revoked::NotFound
    })
}

/// Records last-use times; later times win.
pub(crate) fn record_usage(conn: &Connection, uses: &[(ApiKeyId, DateTime<Utc>)]) -> DbResult<()> {
    let mut stmt = conn.prepare_cached(
        "UPDATE api_keys SET last_used_at = max(coalesce(last_used_at, ?2), ?2) WHERE id = ?1",
    )?;
    for (id, at) in uses {
        stmt.execute(params![id.to_string(), micros(*at)])?;
    }
    Ok(())
}
