//! Quotas: identity `(tenant_id, resource, feature, meter)`, `*` for every tenant, `NULL` for
//! any resource; a feature quota has no meter, a meter quota no feature and no resource.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use metering_core::meter::check_quota_meter;
use metering_core::time::truncate_micros;
use metering_core::{
    Error, Feature, MeterKey, Quantity, Quota, QuotaId, QuotaPeriod, QuotaScope, QuotaSpec,
    Resource, Result, TenantId, Threshold,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::error::{PgError, db};

const QUOTA_COLUMNS: &str = "id, tenant_id, resource, feature, quota_limit::text AS quota_limit, \
     period, alert_threshold, tz, created_at, updated_at, meter, thresholds";

fn quota_from_row(row: &PgRow) -> Result<Quota> {
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let tenant_id = if tenant == "*" {
        QuotaScope::AllTenants
    } else {
        QuotaScope::Tenant(TenantId::from_trusted(tenant))
    };
    let resource: Option<String> = row.try_get("resource").map_err(db)?;
    let limit: String = row.try_get("quota_limit").map_err(db)?;
    let period: String = row.try_get("period").map_err(db)?;
    let threshold: i16 = row.try_get("alert_threshold").map_err(db)?;
    let tz: String = row.try_get("tz").map_err(db)?;
    let feature: Option<String> = row.try_get("feature").map_err(db)?;
    let meter: Option<String> = row.try_get("meter").map_err(db)?;
    let limit = Quantity::from_str(&limit).map_err(|e| PgError::corrupt("quota limit", e))?;
    let period = QuotaPeriod::from_str(&period).map_err(|e| PgError::corrupt("quota period", e))?;
    let spec = match (feature, meter) {
        (Some(feature), None) => {
            QuotaSpec::new(tenant_id, Feature::from_trusted(feature), limit, period)
        }
        (None, Some(meter)) => QuotaSpec::on_meter(
            tenant_id,
            MeterKey::new(meter).map_err(|e| PgError::corrupt("quota meter", e))?,
            limit,
            period,
        ),
        _ => return Err(PgError::corrupt("quota", "both or neither of feature and meter").into()),
    };
    let mut spec = spec
        .with_alert_threshold(
            u8::try_from(threshold).map_err(|e| PgError::corrupt("alert threshold", e))?,
        )
        .with_tz(metering_core::parse_tz(&tz).map_err(|e| PgError::corrupt("time zone", e))?);
    if let Some(r) = resource {
        spec = spec.with_resource(Resource::from_trusted(r));
    }
    // Null on quotas stored before thresholds: `alert_threshold` is their one threshold.
    let thresholds: Option<String> = row.try_get("thresholds").map_err(db)?;
    if let Some(text) = thresholds {
        spec = spec.with_thresholds(
            Threshold::parse_list(&text).map_err(|e| PgError::corrupt("quota thresholds", e))?,
        );
    }
    Ok(Quota {
        id: QuotaId(row.try_get("id").map_err(db)?),
        spec,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

fn quotas_from_rows(rows: &[PgRow]) -> Result<Vec<Quota>> {
    let mut quotas = rows
        .iter()
        .map(quota_from_row)
        .collect::<Result<Vec<_>>>()?;
    // The same order as every store: `QuotaScope`'s order puts `*` first.
    metering_core::sort_quotas(&mut quotas);
    Ok(quotas)
}

pub(crate) async fn upsert_quota(
    pool: &PgPool,
    spec: &QuotaSpec,
    now: DateTime<Utc>,
) -> Result<Quota> {
    let now = truncate_micros(now);
    let mut tx = pool.begin().await.map_err(db)?;
    if let Some(key) = &spec.meter {
        // The share lock keeps the meter as checked until the quota is written: a
        // concurrent delete or redefinition waits, then sees the quota.
        let stored = crate::meters::by_key_locked(&mut tx, key, "FOR SHARE").await?;
        check_quota_meter(key, stored.as_ref().map(|m| &m.spec))?;
    }
    let sql = format!(
        "INSERT INTO quotas AS q (id, tenant_id, resource, feature, quota_limit, period, \
         alert_threshold, tz, created_at, updated_at, meter, thresholds) \
         VALUES ($1, $2, $3, $4, $5::numeric, $6, $7, $8, $9, $9, $10, $11) \
         ON CONFLICT ON CONSTRAINT quotas_identity DO UPDATE SET \
         quota_limit = EXCLUDED.quota_limit, period = EXCLUDED.period, \
         alert_threshold = EXCLUDED.alert_threshold, tz = EXCLUDED.tz, \
         updated_at = EXCLUDED.updated_at, thresholds = EXCLUDED.thresholds \
         RETURNING {QUOTA_COLUMNS}"
    );
    let row = sqlx::query(sql.as_str())
        .bind(QuotaId::generate().0)
        .bind(spec.tenant_id.as_str())
        .bind(spec.resource.as_ref().map(Resource::as_str))
        .bind(spec.feature.as_ref().map(Feature::as_str))
        .bind(spec.limit.to_string())
        .bind(spec.period.as_str())
        .bind(i16::from(spec.alert_threshold))
        .bind(spec.tz.name())
        .bind(now)
        .bind(spec.meter.as_ref().map(MeterKey::as_str))
        .bind(Threshold::list_text(&spec.thresholds))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
    let quota = quota_from_row(&row)?;
    tx.commit().await.map_err(db)?;
    Ok(quota)
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
