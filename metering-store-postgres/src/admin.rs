//! Quotas and API keys.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use metering_core::time::truncate_micros;
use metering_core::{
    ApiKey, ApiKeyId, Error, Feature, KeyHash, Quantity, Quota, QuotaId, QuotaPeriod, QuotaScope,
    QuotaSpec, Resource, Result, Role, StoredApiKey, TenantId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::error::{PgError, db};

const QUOTA_COLUMNS: &str = "id, tenant_id, resource, feature, quota_limit::text AS quota_limit, \
     period, alert_threshold, tz, created_at, updated_at";

fn get(e: sqlx::Error) -> Error {
    PgError::from(e).into()
}

fn quota_from_row(row: &PgRow) -> Result<Quota> {
    let tenant: String = row.try_get("tenant_id").map_err(get)?;
    let tenant_id = if tenant == "*" {
        QuotaScope::AllTenants
    } else {
        QuotaScope::Tenant(TenantId::from_trusted(tenant))
    };
    let resource: Option<String> = row.try_get("resource").map_err(get)?;
    let limit: String = row.try_get("quota_limit").map_err(get)?;
    let period: String = row.try_get("period").map_err(get)?;
    let threshold: i16 = row.try_get("alert_threshold").map_err(get)?;
    let tz: String = row.try_get("tz").map_err(get)?;
    let mut spec = QuotaSpec::new(
        tenant_id,
        Feature::from_trusted(row.try_get("feature").map_err(get)?),
        Quantity::from_str(&limit).map_err(|e| PgError::corrupt("quota limit", e))?,
        QuotaPeriod::from_str(&period).map_err(|e| PgError::corrupt("quota period", e))?,
    )
    .with_alert_threshold(
        u8::try_from(threshold).map_err(|e| PgError::corrupt("alert threshold", e))?,
    )
    .with_tz(metering_core::parse_tz(&tz).map_err(|e| PgError::corrupt("time zone", e))?);
    if let Some(r) = resource {
        spec = spec.with_resource(Resource::from_trusted(r));
    }
    Ok(Quota {
        id: QuotaId(row.try_get("id").map_err(get)?),
        spec,
        created_at: row.try_get("created_at").map_err(get)?,
        updated_at: row.try_get("updated_at").map_err(get)?,
    })
}

fn quotas_from_rows(rows: &[PgRow]) -> Result<Vec<Quota>> {
    let mut quotas = rows
        .iter()
        .map(quota_from_row)
        .collect::<Result<Vec<_>>>()?;
    // The same order as every store: `QuotaScope`'s order puts `*` first.
    quotas.sort_by(|a, b| {
        (&a.spec.tenant_id, &a.spec.resource, &a.spec.feature).cmp(&(
            &b.spec.tenant_id,
            &b.spec.resource,
            &b.spec.feature,
        ))
    });
    Ok(quotas)
}

pub(crate) async fn upsert_quota(
    pool: &PgPool,
    spec: &QuotaSpec,
    now: DateTime<Utc>,
) -> Result<Quota> {
    let now = truncate_micros(now);
    let sql = format!(
        "INSERT INTO quotas AS q (id, tenant_id, resource, feature, quota_limit, period, \
         alert_threshold, tz, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $9) \
         ON CONFLICT ON CONSTRAINT quotas_identity DO UPDATE SET \
         quota_limit = EXCLUDED.quota_limit, period = EXCLUDED.period, \
         alert_threshold = EXCLUDED.alert_threshold, tz = EXCLUDED.tz, \
         updated_at = EXCLUDED.updated_at \
         RETURNING {QUOTA_COLUMNS}"
    );
    let row = sqlx::query(sql.as_str())
        .bind(QuotaId::generate().0)
        .bind(spec.tenant_id.as_str())
        .bind(spec.resource.as_ref().map(Resource::as_str))
        .bind(spec.feature.as_str())
        .bind(spec.limit.to_string())
        .bind(spec.period.as_str())
        .bind(i16::from(spec.alert_threshold))
        .bind(spec.tz.name())
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(db)?;
    quota_from_row(&row)
}

pub(crate) async fn list_quotas(pool: &PgPool, scope: Option<&QuotaScope>) -> Result<Vec<Quota>> {
    let sql =
        format!("SELECT {QUOTA_COLUMNS} FROM quotas WHERE $1::text IS NULL OR tenant_id = $1");
    let rows = sqlx::query(sql.as_str())
        .bind(scope.map(QuotaScope::as_str))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    quotas_from_rows(&rows)
}

pub(crate) async fn quota_candidates(
    pool: &PgPool,
    tenant: &TenantId,
    feature: &Feature,
) -> Result<Vec<Quota>> {
    let sql =
        format!("SELECT {QUOTA_COLUMNS} FROM quotas WHERE feature = $1 AND tenant_id IN ($2, '*')");
    let rows = sqlx::query(sql.as_str())
        .bind(feature.as_str())
        .bind(tenant.as_str())
        .fetch_all(pool)
        .await
        .map_err(db)?;
    quotas_from_rows(&rows)
}

pub(crate) async fn quota(pool: &PgPool, id: QuotaId) -> Result<Option<Quota>> {
    let sql = format!("SELECT {QUOTA_COLUMNS} FROM quotas WHERE id = $1");
    let rows = sqlx::query(sql.as_str())
        .bind(id.0)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    Ok(quotas_from_rows(&rows)?.into_iter().next())
}

pub(crate) async fn delete_quota(pool: &PgPool, id: QuotaId) -> Result<()> {
    let done = sqlx::query("DELETE FROM quotas WHERE id = $1")
        .bind(id.0)
        .execute(pool)
        .await
        .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("quota {id}")));
    }
    Ok(())
}

const KEY_COLUMNS: &str =
    "id, name, role, tenant_id, prefix, hash, created_at, expires_at, last_used_at, revoked_at";

fn key_from_row(row: &PgRow) -> Result<StoredApiKey> {
    let role: String = row.try_get("role").map_err(get)?;
    let hash: Vec<u8> = row.try_get("hash").map_err(get)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| PgError::corrupt("key hash", "not 32 bytes"))?;
    let tenant: Option<String> = row.try_get("tenant_id").map_err(get)?;
    Ok(StoredApiKey {
        key: ApiKey {
            id: ApiKeyId(row.try_get("id").map_err(get)?),
            name: row.try_get("name").map_err(get)?,
            role: Role::from_str(&role).map_err(|e| PgError::corrupt("key role", e))?,
            tenant_id: tenant.map(TenantId::from_trusted),
            prefix: row.try_get("prefix").map_err(get)?,
            created_at: row.try_get("created_at").map_err(get)?,
            expires_at: row.try_get("expires_at").map_err(get)?,
            last_used_at: row.try_get("last_used_at").map_err(get)?,
            revoked_at: row.try_get("revoked_at").map_err(get)?,
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

pub(crate) async fn revoke_api_key(pool: &PgPool, id: ApiKeyId, at: DateTime<Utc>) -> Result<()> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(id.0)
            .bind(truncate_micros(at))
            .execute(pool)
            .await
            .map_err(db)?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("API key {id}")));
    }
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
