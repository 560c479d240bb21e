//! Aggregates and usage sums, read from the rollups (and the deltas not compacted yet) with
//! raw-event fragments at the edges.

use std::str::FromStr;

use chrono::{DateTime, DurationRound as _, Utc};
use metering_core::rollup_plan::{Piece, window_starts};
use metering_core::{
    AggregateBuilder, AggregateQuery, AggregateRow, EventFilter, Feature, Quantity, Resource,
    Result, TenantId, UsageScope, Window,
};
use sqlx::postgres::Postgres;
use sqlx::{PgConnection, PgPool, QueryBuilder, Row};

use crate::error::{PgError, db};
use crate::rollup::{Source, instant, plan};

/// Appends ` AND column = $n` for each equality filter that is set (also used by the event
/// listing).
pub(crate) fn push_filters(
    sql: &mut QueryBuilder<Postgres>,
    alias: &str,
    tenant: Option<&TenantId>,
    resource: Option<&Resource>,
    feature: Option<&Feature>,
) {
    if let Some(t) = tenant {
        sql.push(format_args!(" AND {alias}.tenant_id = "));
        sql.push_bind(t.as_str().to_owned());
    }
    if let Some(r) = resource {
        sql.push(format_args!(" AND {alias}.resource = "));
        sql.push_bind(r.as_str().to_owned());
    }
    if let Some(f) = feature {
        sql.push(format_args!(" AND {alias}.feature = "));
        sql.push_bind(f.as_str().to_owned());
    }
}

/// The time column and the event count of a row of a rollup table or of `rollup_deltas`.
const ROLLUP_COLUMNS: (&str, &str) = ("bucket", "x.events");

/// Appends a `UNION ALL` of one `SELECT` per source that has pieces (and one of the rollup
/// deltas when a rollup source has), each yielding `(at, tenant_id, resource, feature, q, n)`
/// where `at` is a bucket start or event time. Each piece's bounds are bound as values of
/// their own (`at >= $a AND at < $b`, or'ed), not joined from an array: the planner then
/// reads a few edge minutes through the time index instead of scanning the whole table.
fn push_sources(
    sql: &mut QueryBuilder<Postgres>,
    pieces: &[Piece],
    tenant: Option<&TenantId>,
    resource: Option<&Resource>,
    feature: Option<&Feature>,
) {
    let mut first = true;
    // `at` is the time column, `n` the event count of a row.
    let mut select =
        |sql: &mut QueryBuilder<Postgres>, table: &str, (at, n), sources: &[Source]| {
            let mut ranges = pieces
                .iter()
                .filter(|p| sources.contains(&Source::of(**p)))
                .peekable();
            if ranges.peek().is_none() {
                return;
            }
            if !first {
                sql.push(" UNION ALL ");
            }
            first = false;
            sql.push(format_args!(
            "SELECT x.{at} AS at, x.tenant_id, x.resource, x.feature, x.quantity AS q, {n} AS n \
             FROM {table} x WHERE ("
        ));
            for (i, piece) in ranges.enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push(format_args!("(x.{at} >= "));
                sql.push_bind(instant(piece.start()));
                sql.push(format_args!(" AND x.{at} < "));
                sql.push_bind(instant(piece.end()));
                sql.push(")");
            }
            sql.push(")");
            if table == "events" {
                sql.push(" AND x.voided_at IS NULL");
            }
            push_filters(sql, "x", tenant, resource, feature);
        };
    for source in [Source::Day, Source::Quarter, Source::Raw] {
        let columns = match source {
            Source::Raw => ("ts", "1::bigint"),
            Source::Quarter | Source::Day => ROLLUP_COLUMNS,
        };
        select(sql, source.table(), columns, &[source]);
    }
    // The deltas not compacted yet, 15-minute buckets: a bucket inside a day piece starts in
    // the same window as its day.
    select(
        sql,
        "rollup_deltas",
        ROLLUP_COLUMNS,
        &[Source::Day, Source::Quarter],
    );
    if first {
        // Nothing to read: an empty relation of the same shape.
        sql.push(
            "SELECT NULL::timestamptz AS at, NULL::text AS tenant_id, NULL::text AS resource, \
             NULL::text AS feature, NULL::numeric AS q, NULL::bigint AS n WHERE false",
        );
    }
}

/// A quantity read back as text.
pub(crate) fn quantity(text: &str) -> Result<Quantity> {
    Quantity::from_str(text).map_err(|e| PgError::corrupt("quantity", e).into())
}

/// The exact usage of `scope` in `window`, on `conn` (inside a transaction or not).
pub(crate) async fn sum_usage(
    conn: &mut PgConnection,
    scope: &UsageScope,
    window: Window,
) -> Result<Quantity> {
    let pieces = plan(window.start, window.end, &[]);
    let mut sql = QueryBuilder::new("SELECT COALESCE(sum(q), 0)::text FROM (");
    push_sources(
        &mut sql,
        &pieces,
        Some(&scope.tenant_id),
        scope.resource.as_ref(),
        Some(&scope.feature),
    );
    sql.push(") s");
    let text: String = sql
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    quantity(&text)
}

/// How many events match `filter`, counted from the rollups (and the deltas not compacted
/// yet) with raw events read only in the fragments at the range's edges: the cost follows the
/// series and buckets in the range, not the events. An open end of the range is closed on the
/// UTC day boundary beyond the oldest or newest stored event (of the tenant, when the filter
/// names one).
pub(crate) async fn count_events(conn: &mut PgConnection, filter: &EventFilter) -> Result<u64> {
    let (start, end) = match (filter.start, filter.end) {
        (Some(start), Some(end)) => (start, end),
        (start, end) => {
            let mut sql = QueryBuilder::new("SELECT min(e.ts), max(e.ts) FROM events e WHERE true");
            push_filters(&mut sql, "e", filter.tenant_id.as_ref(), None, None);
            let (oldest, newest): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sql
                .build_query_as()
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            let (Some(oldest), Some(newest)) = (oldest, newest) else {
                return Ok(0);
            };
            // Open ends close on the UTC day boundary beyond the stored events: no event lies
            // in between, so that side is read from whole days only, and today (where live
            // traffic lands) from its bucket, not from the raw events.
            let day = chrono::TimeDelta::days(1);
            (
                start.unwrap_or_else(|| oldest.duration_trunc(day).unwrap_or(oldest)),
                end.unwrap_or_else(|| {
                    newest
                        .duration_trunc(day)
                        .map_or(newest + chrono::Duration::microseconds(1), |d| d + day)
                }),
            )
        }
    };
    if start >= end {
        return Ok(0);
    }
    let pieces = plan(start, end, &[]);
    let mut sql = QueryBuilder::new("SELECT COALESCE(sum(n), 0)::bigint FROM (");
    push_sources(
        &mut sql,
        &pieces,
        filter.tenant_id.as_ref(),
        filter.resource.as_ref(),
        filter.feature.as_ref(),
    );
    sql.push(") s");
    let count: i64 = sql
        .build_query_scalar()
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(crate) async fn aggregate_rows(
    pool: &PgPool,
    query: &AggregateQuery,
) -> Result<Vec<AggregateRow>> {
    if query.start >= query.end {
        return Ok(Vec::new());
    }
    // Window starts from the one holding `start` up to the last before `end`.
    let starts = window_starts(query);
    let cuts: Vec<DateTime<Utc>> = starts.iter().skip(1).copied().collect();
    let pieces = plan(query.start, query.end, &cuts);
    let g = query.group_by;
    let dim = |on: bool, name: &str| {
        if on {
            format!("s.{name}")
        } else {
            format!("NULL::text AS {name}")
        }
    };
    let mut sql = QueryBuilder::new("SELECT width_bucket(s.at, ");
    sql.push_bind(starts.clone());
    sql.push(format_args!(
        "::timestamptz[]) AS w, {}, {}, {}, sum(s.q)::text AS q, sum(s.n)::bigint AS n FROM (",
        dim(g.tenant_id, "tenant_id"),
        dim(g.resource, "resource"),
        dim(g.feature, "feature"),
    ));
    push_sources(
        &mut sql,
        &pieces,
        query.tenant_id.as_ref(),
        query.resource.as_ref(),
        query.feature.as_ref(),
    );
    // A group whose events were all voided is left with a zero count: no row, as if none
    // had been written.
    sql.push(") s GROUP BY 1, 2, 3, 4 HAVING sum(s.n) > 0");
    let rows = sql.build().fetch_all(pool).await.map_err(db)?;
    let get = |e: sqlx::Error| Into::<metering_core::Error>::into(PgError::from(e));
    let mut parts = Vec::with_capacity(rows.len());
    for row in rows {
        let w: i32 = row.try_get("w").map_err(get)?;
        let at = usize::try_from(w)
            .ok()
            .and_then(|w| w.checked_sub(1))
            .and_then(|i| starts.get(i))
            .copied()
            .ok_or_else(|| PgError::corrupt("window index", w))?;
        let tenant: Option<String> = row.try_get("tenant_id").map_err(get)?;
        let resource: Option<String> = row.try_get("resource").map_err(get)?;
        let feature: Option<String> = row.try_get("feature").map_err(get)?;
        let q: String = row.try_get("q").map_err(get)?;
        let n: i64 = row.try_get("n").map_err(get)?;
        parts.push((
            at,
            tenant,
            resource,
            feature,
            quantity(&q)?,
            u64::try_from(n).unwrap_or(0),
        ));
    }
    // In window order, so the builder finds each row's window without recomputing it.
    parts.sort_unstable_by_key(|p| p.0);
    let mut builder = AggregateBuilder::new(query);
    for (at, tenant, resource, feature, q, n) in parts {
        builder.add(
            at,
            &TenantId::from_trusted(tenant.unwrap_or_default()),
            &Resource::from_trusted(resource.unwrap_or_default()),
            &Feature::from_trusted(feature.unwrap_or_default()),
            q,
            n,
        );
    }
    Ok(builder.finish())
}
