//! API keys: stored with the hash of their secret, never the secret.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use metering_core::time::truncate_micros;
use metering_core::{
    ApiKey, ApiKeyId, Error, KeyHash, LastAdmin, Result, Role, StoredApiKey, TenantId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::error::{PgError, db};

const KEY_COLUMNS: &str =
    "id, name, role, tenant_id, prefix, hash, created_at, expires_at, last_used_at, revoked_at";

fn key_from_row(row: &PgRow) -> Result<StoredApiKey> {
    let role: String = row.try_get("role").map_err(db)?;
    let hash: Vec<u8> = row.try_get("hash").map_err(db)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| PgError::corrupt("key hash", "not 32 bytes"))?;
    let tenant: Option<String> = row.try_get("tenant_id").map_err(db)?;
    Ok(StoredApiKey {
        key: ApiKey {
            id: ApiKeyId(row.try_get("id").map_err(db)?),
            name: row.try_get("name").map_err(db)?,
            role: Role::from_str(&role).map_err(|e| PgError::corrupt("key role", e))?,
            tenant_id: tenant.map(TenantId::from_trusted),
            prefix: row.try_get("prefix").map_err(db)?,
            created_at: row.try_get("created_at").map_err(db)?,
            expires_at: row.try_get("expires_at").map_err(db)?,
            last_used_at: row.try_get("last_used_at").map_err(db)?,
            revoked_at: row.try_get("revoked_at").map_err(db)?,
        },
        hash: KeyHash(hash),
    })
}

pub(crate) async fn insert_api_key(pool: &PgPool, key: &ApiKey, hash: &KeyHash) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, name, role, tenant_id, prefix, hash, created_at, expires_at, \
         last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(key.id.0)
    .bind(&key.name)
    .bind(key.role.as_str())
    .bind(key.tenant_id.as_ref().map(TenantId::as_str))
    .bind(&key.prefix)
    .bind(hash.0.as_slice())
    .bind(truncate_micros(key.created_at))
    .bind(key.expires_at.map(truncate_micros))
    .bind(key.last_used_at.map(truncate_micros))
    .bind(key.revoked_at.map(truncate_micros))
    .execute(pool)
    .await
    .map_err(|e| match db(e) {
        Error::Conflict(_) => Error::Conflict("an API key with this id or secret exists".into()),
        other => other,
    })?;
    Ok(())
}

pub(crate) async fn api_key_by_hash(pool: &PgPool, hash: &KeyHash) -> Result<Option<StoredApiKey>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE hash = $1");
    let row = sqlx::query(sql.as_str())
        .bind(hash.0.as_slice())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.as_ref().map(key_from_row).transpose()
}

pub(crate) async fn list_api_keys(pool: &PgPool) -> Result<Vec<ApiKey>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY seq");
    let rows = sqlx::query(sql.as_str())
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter()
        .map(|r| key_from_row(r).map(|k| k.key))
        .collect()
}

pub(crate) async fn api_key(pool: &PgPool, id: ApiKeyId) -> Result<Option<ApiKey>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1");
    let row = sqlx::query(sql.as_str())
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.as_ref().map(key_from_row).transpose()?.map(|k| k.key))
}

/// Marks a key revoked (the first revocation time stays), keeping the last active admin key
/// under [`LastAdmin::Keep`]. The active admin keys are locked (`FOR UPDATE`) before the
/// check, so concurrent revocations from any process are serialized and cannot both pass.
pub(crate) async fn revoke_api_key(
    pool: &PgPool,
    id: ApiKeyId,
    at: DateTime<Utc>,
    last_admin: LastAdmin,
) -> Result<()> {
    let at = truncate_micros(at);
    let mut tx = pool.begin().await.map_err(db)?;
    let admins: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $1) ORDER BY id FOR UPDATE",
    )
    .bind(at)
    .fetch_all(&mut *tx)
    .await
    .map_err(db)?;
    if last_admin == LastAdmin::Keep && admins == [id.0] {
        return Err(LastAdmin::refusal());
    }
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id.0)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("API key {id}")));
    }
    tx.commit().await.map_err(db)?;
    Ok(())
}

pub(crate) async fn record_key_usage(
    pool: &PgPool,
    uses: &[(ApiKeyId, DateTime<Utc>)],
) -> Result<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = uses.iter().map(|(id, _)| id.0).collect();
    let ats: Vec<DateTime<Utc>> = uses.iter().map(|(_, at)| truncate_micros(*at)).collect();
    sqlx::query(
        "UPDATE api_keys k SET last_used_at = GREATEST(k.last_used_at, u.at) \
         FROM (SELECT id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(id, at) \
               GROUP BY id) u \
         WHERE k.id = u.id",
    )
    .bind(ids)
    .bind(ats)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(())
}
