//! Quotas: identity `(tenant_id, resource, feature, meter)`, `*` for every tenant, `''` for
//! any resource, for no feature (a meter quota) and for no meter (a feature quota).

use chrono::{DateTime, Utc};
use metering_core::meter::check_quota_meter;
use metering_core::{
    Feature, MeterKey, Quota, QuotaId, QuotaPeriod, QuotaScope, QuotaSpec, Resource, TenantId,
    Threshold,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::codec::{instant, micros};
use crate::error::{DbResult, SqliteError};

const COLUMNS: &str = "id, tenant_id, resource, feature, limit_quantity, period, alert_threshold, tz, created_at, updated_at, meter, thresholds";

fn corrupt(what: &str, value: &str) -> SqliteError {
    SqliteError::Corrupt(format!("quota {what} `{value}`"))
}

fn quota_from_row(row: &Row<'_>) -> DbResult<Quota> {
    let id: String = row.get(0)?;
    let tenant: String = row.get(1)?;
    let resource: String = row.get(2)?;
    let limit: String = row.get(4)?;
    let period: String = row.get(5)?;
    let threshold: i64 = row.get(6)?;
    let tz: String = row.get(7)?;
    let scope = if tenant == "*" {
        QuotaScope::AllTenants
    } else {
        QuotaScope::Tenant(TenantId::from_trusted(tenant))
    };
    let feature: String = row.get(3)?;
    let meter: String = row.get(10)?;
    let limit = limit.parse().map_err(|_| corrupt("limit", &limit))?;
    let period = period
        .parse::<QuotaPeriod>()
        .map_err(|_| corrupt("period", &period))?;
    let spec = if meter.is_empty() {
        QuotaSpec::new(scope, Feature::from_trusted(feature), limit, period)
    } else {
        let key = MeterKey::new(meter.clone()).map_err(|_| corrupt("meter", &meter))?;
        QuotaSpec::on_meter(scope, key, limit, period)
    };
    let mut spec = spec
        .with_alert_threshold(
            u8::try_from(threshold).map_err(|_| corrupt("threshold", &threshold.to_string()))?,
        )
        .with_tz(metering_core::parse_tz(&tz).map_err(|_| corrupt("tz", &tz))?);
    if !resource.is_empty() {
        spec = spec.with_resource(Resource::from_trusted(resource));
    }
    // Null on quotas stored before thresholds: `alert_threshold` is their one threshold.
    if let Some(text) = row.get::<_, Option<String>>(11)? {
        spec = spec.with_thresholds(
            Threshold::parse_list(&text).map_err(|_| corrupt("thresholds", &text))?,
        );
    }
    Ok(Quota {
        id: id.parse().map_err(|_| corrupt("id", &id))?,
        spec,
        created_at: instant(row.get(8)?),
        updated_at: instant(row.get(9)?),
    })
}

/// Inserts or replaces the quota of `spec`'s identity; a replaced one keeps id and
/// `created_at`.
///
/// A meter quota is written only while its meter can carry one; `conn` must be the writer's
/// transaction, so no meter change can come between the check and the write.
pub(crate) fn upsert(conn: &Connection, spec: &QuotaSpec, now: DateTime<Utc>) -> DbResult<Quota> {
    if let Some(key) = &spec.meter {
        let stored = crate::meters::by_key(conn, key)?;
        check_quota_meter(key, stored.as_ref().map(|m| &m.spec))?;
    }
    let now = micros(now);
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO quotas ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11)
         ON CONFLICT (tenant_id, feature, resource, meter) DO UPDATE SET
             limit_quantity = excluded.limit_quantity, period = excluded.period,
             alert_threshold = excluded.alert_threshold, tz = excluded.tz,
             updated_at = excluded.updated_at, thresholds = excluded.thresholds
         RETURNING {COLUMNS}"
    ))?;
    let mut rows = stmt.query(params![
        QuotaId::generate().to_string(),
        spec.tenant_id.as_str(),
        spec.resource.as_ref().map_or("", Resource::as_str),
        spec.feature.as_ref().map_or("", Feature::as_str),
        spec.limit.to_string(),
        spec.period.as_str(),
        spec.alert_threshold,
        spec.tz.name(),
        now,
        spec.meter.as_ref().map_or("", MeterKey::as_str),
        Threshold::list_text(&spec.thresholds),
    ])?;
    let row = rows
        .next()?
        .ok_or_else(|| SqliteError::Corrupt("the quota upsert returned no row".into()))?;
    quota_from_row(row)
}

fn collect(conn: &Connection, sql: &str, args: &[&str]) -> DbResult<Vec<Quota>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut quotas = Vec::new();
    while let Some(row) = rows.next()? {
        quotas.push(quota_from_row(row)?);
    }
    // The contract's order (tenants with `*` first, no resource first) is the domain types'
    // order, which SQL collation cannot express for every name: sort here.
    metering_core::sort_quotas(&mut quotas);
    Ok(quotas)
}

/// All quotas, or those of one scope.
pub(crate) fn list(conn: &Connection, scope: Option<&QuotaScope>) -> DbResult<Vec<Quota>> {
    match scope {
        None => collect(conn, &format!("SELECT {COLUMNS} FROM quotas"), &[]),
        Some(s) => collect(
            conn,
            &format!("SELECT {COLUMNS} FROM quotas WHERE tenant_id = ?1"),
            &[s.as_str()],
        ),
    }
}

/// The quota with this id.
pub(crate) fn by_id(conn: &Connection, id: QuotaId) -> DbResult<Option<Quota>> {
    let id = id.to_string();
    Ok(collect(
        conn,
        &format!("SELECT {COLUMNS} FROM quotas WHERE id = ?1"),
        &[id.as_str()],
    )?
    .into_iter()
    .next())
}

/// The quotas that may govern `tenant`'s use of `feature`.
pub(crate) fn candidates(
    conn: &Connection,
    tenant: &TenantId,
    feature: &Feature,
) -> DbResult<Vec<Quota>> {
    collect(
        conn,
        &format!("SELECT {COLUMNS} FROM quotas WHERE feature = ?1 AND tenant_id IN (?2, '*')"),
        &[feature.as_str(), tenant.as_str()],
    )
}

/// Whether a quota names meter `key`.
pub(crate) fn meter_in_use(conn: &Connection, key: &MeterKey) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM quotas WHERE meter = ?1 LIMIT 1")?
        .query_row([key.as_str()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Deletes a quota; false when there was none.
pub(crate) fn delete(conn: &Connection, id: QuotaId) -> DbResult<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM quotas WHERE id = ?1")?
        .execute([id.to_string()])?
        == 1)
}
