//! Writing events: batch ingest in one statement (creating partitions on demand) and
//! `consume`; and listing them.

use std::collections::HashSet;

use metering_core::{
    AlertWatch, ConsumeOutcome, Event, EventFilter, EventId, EventPage, EventQuery, Feature,
    InsertOutcome, Metadata, MeterAddition, MeterJudgement, MeterLimit, Paging, Resource, Result,
    TenantId, UsageLimit,
};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{PgConnection, PgPool, QueryBuilder, Row};

use crate::aggregate::{self, push_filters, quantity, sum_usage};
use crate::error::{PgError, db, is_id_taken, is_missing_partition, is_retryable};
use crate::retention::{KnownPartitions, ensure_partitions, lock};

/// How often a batch is tried when a deadlock, a serialization failure, an id claimed by a
/// concurrent batch or a partition dropped under it gets in its way.
pub(crate) const ATTEMPTS: usize = 8;

/// The batch as rows, from one array parameter per column.
macro_rules! unnest_batch {
    () => {
        r"SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]::numeric[],
                     $6::timestamptz[], $7::text[]::json[], $8::timestamptz[])
    AS t(id, tenant_id, resource, feature, quantity, ts, metadata, created_at)"
    };
}

/// The batch statement: `$claim` defines `new_ids` (the ids claimed in `event_ids`, in id
/// order, so concurrent overlapping batches lock them in one order) and `fresh` (the events
/// whose id was new). Those events are written, and their sums per tenant, feature, resource
/// and 15-minute bucket are appended to `rollup_deltas` (one row per bucket of the batch),
/// which [`crate::PostgresStore::compact_rollups`] later folds into the rollups. `$answer`
/// selects what comes back.
macro_rules! insert_batch {
    ($claim:expr, $answer:expr) => {
        concat!(
            "WITH ",
            $claim,
            r",
new_events AS (
    INSERT INTO events (id, tenant_id, resource, feature, quantity, ts, metadata, created_at)
    SELECT id, tenant_id, resource, feature, quantity, ts, metadata, created_at FROM fresh
),
deltas AS (
    INSERT INTO rollup_deltas (tenant_id, feature, resource, bucket, quantity, events)
    SELECT tenant_id, feature, resource, date_bin('15 minutes', ts, TIMESTAMPTZ 'epoch'),
           sum(quantity), count(*)
    FROM fresh GROUP BY 1, 2, 3, 4
)
",
            $answer
        )
    };
}

/// For a batch whose ids are all new (the usual case: ids are unique, and a resent batch is
/// rare): plain inserts, no lookups, and no rows back (success means every id was new).
/// Fails whole with a unique violation on `event_ids` when one id is already stored (see
/// [`is_id_taken`]); then [`INSERT_SKIPPING_STORED`] runs instead.
const INSERT_ALL_NEW: &str = insert_batch!(
    concat!(
        "fresh AS MATERIALIZED (",
        unnest_batch!(),
        r"),
new_ids AS (
    INSERT INTO event_ids (id, ts) SELECT id, ts FROM fresh ORDER BY id RETURNING id
)"
    ),
    // Data-modifying CTEs run to completion whatever the main query reads.
    "SELECT id FROM new_ids LIMIT 0"
);

/// For a batch that may hold stored ids: claims only the ids not stored yet, and returns
/// them. Still a plain insert (cheaper than `ON CONFLICT`'s speculative one): a batch racing
/// another that claims one of its ids fails with a unique violation once that one commits,
/// and is retried, when the id is seen as stored.
const INSERT_SKIPPING_STORED: &str = insert_batch!(
    concat!(
        "input AS MATERIALIZED (",
        unnest_batch!(),
        r"),
new_ids AS (
    INSERT INTO event_ids (id, ts)
    SELECT id, ts FROM input i
    WHERE NOT EXISTS (SELECT 1 FROM event_ids e WHERE e.id = i.id)
    ORDER BY id
    RETURNING id
),
fresh AS MATERIALIZED (
    SELECT i.* FROM input i JOIN new_ids n ON n.id = i.id
)"
    ),
    "SELECT id FROM new_ids"
);

/// The two batch statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// [`INSERT_ALL_NEW`].
    AllNew,
    /// [`INSERT_SKIPPING_STORED`].
    SkippingStored,
}

/// The ids a batch statement wrote.
pub(crate) enum Claimed {
    /// Every id of the batch.
    All,
    /// These.
    These(HashSet<String>),
}

impl Claimed {
    pub(crate) fn contains(&self, id: &str) -> bool {
        match self {
            Claimed::All => true,
            Claimed::These(ids) => ids.contains(id),
        }
    }
}

/// The batch with later duplicates of an id removed, and for each input event the index of
/// the unique event it stands for when it is the first of its id.
fn dedup(events: &[Event]) -> (Vec<&Event>, Vec<bool>) {
    let mut seen = HashSet::with_capacity(events.len());
    let mut unique = Vec::with_capacity(events.len());
    let mut first = Vec::with_capacity(events.len());
    for e in events {
        let is_first = seen.insert(e.id.as_str());
        if is_first {
            unique.push(e);
        }
        first.push(is_first);
    }
    (unique, first)
}

/// Runs the `claim` statement for `events` on `conn` and returns the ids that were new.
pub(crate) async fn write(
    conn: &mut PgConnection,
    claim: Claim,
    events: &[&Event],
) -> std::result::Result<Claimed, sqlx::Error> {
    let n = events.len();
    let (mut ids, mut tenants, mut resources, mut features) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut quantities, mut timestamps, mut metadata, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for e in events {
        ids.push(e.id.as_str());
        tenants.push(e.tenant_id.as_str());
        resources.push(e.resource.as_str());
        features.push(e.feature.as_str());
        quantities.push(e.quantity.to_string());
        timestamps.push(e.timestamp);
        metadata.push(
            e.metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|err| sqlx::Error::Encode(Box::new(err)))?,
        );
        created.push(e.created_at);
    }
    let statement = match claim {
        Claim::AllNew => INSERT_ALL_NEW,
        Claim::SkippingStored => INSERT_SKIPPING_STORED,
    };
    let rows: Vec<String> = sqlx::query_scalar(statement)
        .bind(ids)
        .bind(tenants)
        .bind(resources)
        .bind(features)
        .bind(quantities)
        .bind(timestamps)
        .bind(metadata)
        .bind(created)
        .fetch_all(&mut *conn)
        .await?;
    Ok(match claim {
        Claim::AllNew => Claimed::All,
        Claim::SkippingStored => Claimed::These(rows.into_iter().collect()),
    })
}

/// Stores `events`, each id at most once (an id already stored, or earlier in the batch, is
/// not written again); returns, per event, whether it was inserted. With `watches`, the
/// alert marks the events reach are placed in the same transaction (see [`crate::alerts`]).
pub(crate) async fn insert_batch(
    pool: &PgPool,
    partitions: &KnownPartitions,
    events: &[Event],
    watches: &[AlertWatch],
) -> Result<InsertOutcome> {
    if events.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let (unique, first) = dedup(events);
    let mut conn = pool.acquire().await.map_err(db)?;
    let mut attempt = 0;
    let mut claim = Claim::AllNew;
    let new = loop {
        attempt += 1;
        ensure_partitions(partitions, &mut conn, unique.iter().map(|e| e.timestamp)).await?;
        let written = if watches.is_empty() {
            // One statement, so one implicit transaction: no BEGIN and COMMIT round trips.
            write(&mut conn, claim, &unique)
                .await
                .map_err(ConsumeError::Db)
        } else {
            write_watched(&mut conn, claim, &unique, watches).await
        };
        match written {
            Ok(new) => break new,
            Err(ConsumeError::Db(e)) if attempt < ATTEMPTS && is_id_taken(&e) => {
                claim = Claim::SkippingStored;
            }
            Err(ConsumeError::Db(e)) if attempt < ATTEMPTS && is_missing_partition(&e) => {
                // Retention dropped a partition this handle believed in.
                lock(partitions).clear();
            }
            Err(ConsumeError::Db(e)) if attempt < ATTEMPTS && is_retryable(&e) => {}
            Err(ConsumeError::Db(e)) => return Err(db(e)),
            Err(ConsumeError::Core(e)) => return Err(e),
        }
    };
    let inserted = events
        .iter()
        .zip(first)
        .map(|(e, is_first)| is_first && new.contains(e.id.as_str()))
        .collect();
    Ok(InsertOutcome { inserted })
}

/// One attempt of [`insert_batch`] with watches: the events and the marks in one transaction.
async fn write_watched(
    conn: &mut PgConnection,
    claim: Claim,
    events: &[&Event],
    watches: &[AlertWatch],
) -> std::result::Result<Claimed, ConsumeError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let new = write(&mut tx, claim, events).await?;
    crate::alerts::watch_all(&mut tx, watches).await?;
    tx.commit().await?;
    Ok(new)
}

/// What a consume is held to: a feature's usage or a meter's value.
#[derive(Clone, Copy)]
pub(crate) enum ConsumeLimit<'a> {
    /// The sum of quantities of a scope.
    Usage(&'a UsageLimit),
    /// A tenant's value of a meter.
    Meter(&'a MeterLimit),
}

/// Stores `event` only when it keeps `limit` within the limit, atomically across every
/// store sharing the database; with the judgement behind it (the usage, what the event
/// adds, whether that is allowed).
pub(crate) async fn consume(
    pool: &PgPool,
    partitions: &KnownPartitions,
    event: &Event,
    limit: ConsumeLimit<'_>,
    watch: Option<&AlertWatch>,
) -> Result<(ConsumeOutcome, MeterJudgement)> {
    let mut conn = pool.acquire().await.map_err(db)?;
    ensure_partitions(partitions, &mut conn, [event.timestamp]).await?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match consume_in_tx(&mut conn, event, limit, watch).await {
            Ok(outcome) => return Ok(outcome),
            Err(ConsumeError::Db(e)) if attempt < ATTEMPTS && is_missing_partition(&e) => {
                lock(partitions).clear();
                ensure_partitions(partitions, &mut conn, [event.timestamp]).await?;
            }
            Err(ConsumeError::Db(e)) if attempt < ATTEMPTS && is_retryable(&e) => {}
            Err(ConsumeError::Db(e)) => return Err(db(e)),
            Err(ConsumeError::Core(e)) => return Err(e),
        }
    }
}

/// One consume attempt: lock the scope, sum (or tally), and write only within the limit.
async fn consume_in_tx(
    conn: &mut PgConnection,
    event: &Event,
    limit: ConsumeLimit<'_>,
    watch: Option<&AlertWatch>,
) -> std::result::Result<(ConsumeOutcome, MeterJudgement), ConsumeError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // Every consume that can count the same events takes the same lock: the key of a usage
    // limit leaves out the resource, because a scope without one counts every resource.
    let key = match limit {
        ConsumeLimit::Usage(l) => format!(
            "metering:consume:{}\u{1f}{}",
            l.scope.tenant_id.as_str(),
            l.scope.feature.as_str()
        ),
        ConsumeLimit::Meter(l) => format!(
            "metering:consume-meter:{}\u{1f}{}",
            l.tenant_id.as_str(),
            l.meter.key.as_str()
        ),
    };
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    // Read committed: each statement below sees every transaction that committed before
    // we got the lock.
    let judgement = match limit {
        ConsumeLimit::Usage(l) => {
            let usage = sum_usage(&mut tx, &l.scope, l.window).await?;
            MeterJudgement {
                usage,
                added: event.quantity,
                allowed: usage
                    .checked_add(event.quantity)
                    .is_some_and(|total| total <= l.limit),
            }
        }
        ConsumeLimit::Meter(l) => {
            let tally = crate::meters::tally(&mut tx, l).await?;
            l.judge(&tally, MeterAddition::Event(event))
        }
    };
    let usage = judgement.usage;
    let duplicate: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_ids WHERE id = $1)")
            .bind(event.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
    if duplicate {
        return Ok((ConsumeOutcome::Duplicate { usage }, judgement));
    }
    if !judgement.allowed {
        if let Some(watch) = watch {
            crate::alerts::watch_one(&mut tx, watch, true).await?;
            tx.commit().await?;
        }
        return Ok((ConsumeOutcome::Denied { usage }, judgement));
    }
    let new = write(&mut tx, Claim::SkippingStored, &[event]).await?;
    if let Some(watch) = watch
        && new.contains(event.id.as_str())
    {
        crate::alerts::watch_one(&mut tx, watch, false).await?;
    }
    tx.commit().await?;
    let outcome = if new.contains(event.id.as_str()) {
        ConsumeOutcome::Admitted {
            usage_before: usage,
        }
    } else {
        // A plain insert of the same id won the race after our check.
        ConsumeOutcome::Duplicate { usage }
    };
    Ok((outcome, judgement))
}

/// A consume attempt's failure: a driver error (maybe retried) or a classified one.
enum ConsumeError {
    Db(sqlx::Error),
    Core(metering_core::Error),
}

impl From<sqlx::Error> for ConsumeError {
    fn from(e: sqlx::Error) -> Self {
        ConsumeError::Db(e)
    }
}

impl From<metering_core::Error> for ConsumeError {
    fn from(e: metering_core::Error) -> Self {
        ConsumeError::Core(e)
    }
}

/// The columns [`event_from_row`] reads, on table alias `e`.
macro_rules! event_columns {
    () => {
        "e.id, e.tenant_id, e.resource, e.feature, e.quantity::text AS quantity, e.ts, \
         e.metadata::text AS metadata, e.created_at, e.amends, e.voided_at, e.void_reason"
    };
}

/// The select list [`event_from_row`] reads, on table alias `e`.
pub(crate) const EVENT_SELECT: &str = concat!("SELECT ", event_columns!(), " FROM events e");

/// [`EVENT_SELECT`] with the id of the transaction that wrote each event (`xact`).
pub(crate) const EVENT_XACT_SELECT: &str =
    concat!("SELECT ", event_columns!(), ", e.xact FROM events e");

pub(crate) fn event_from_row(row: &PgRow) -> Result<Event> {
    let get = |e: sqlx::Error| Into::<metering_core::Error>::into(PgError::from(e));
    let metadata: Option<String> = row.try_get("metadata").map_err(get)?;
    let metadata = match metadata {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Metadata>(&text).map_err(|e| PgError::corrupt("metadata", e))?,
        ),
    };
    let q: String = row.try_get("quantity").map_err(get)?;
    Ok(Event {
        id: EventId::from_trusted(row.try_get("id").map_err(get)?),
        tenant_id: TenantId::from_trusted(row.try_get("tenant_id").map_err(get)?),
        resource: Resource::from_trusted(row.try_get("resource").map_err(get)?),
        feature: Feature::from_trusted(row.try_get("feature").map_err(get)?),
        quantity: quantity(&q)?,
        timestamp: row.try_get("ts").map_err(get)?,
        metadata,
        created_at: row.try_get("created_at").map_err(get)?,
        amends: row
            .try_get::<Option<String>, _>("amends")
            .map_err(get)?
            .map(EventId::from_trusted),
        voided_at: row.try_get("voided_at").map_err(get)?,
        void_reason: row.try_get("void_reason").map_err(get)?,
    })
}

/// ` WHERE ...` for an event filter, on table alias `e`.
fn push_event_filter(sql: &mut QueryBuilder<Postgres>, filter: &EventFilter) {
    sql.push(" WHERE true");
    push_filters(
        sql,
        "e",
        filter.tenant_id.as_ref(),
        filter.resource.as_ref(),
        filter.feature.as_ref(),
    );
    if let Some(start) = filter.start {
        sql.push(" AND e.ts >= ");
        sql.push_bind(start);
    }
    if let Some(end) = filter.end {
        sql.push(" AND e.ts < ");
        sql.push_bind(end);
    }
    if !filter.include_voided {
        sql.push(" AND e.voided_at IS NULL");
    }
}

/// Calls `visit` with every event `filter` selects, in no particular order, streaming the
/// rows so memory stays bounded whatever the range holds.
pub(crate) async fn scan(
    conn: &mut PgConnection,
    filter: &EventFilter,
    mut visit: impl FnMut(&Event) + Send,
) -> Result<()> {
    use futures::TryStreamExt as _;
    let mut sql = QueryBuilder::new(EVENT_SELECT);
    push_event_filter(&mut sql, filter);
    let mut rows = sql.build().fetch(conn);
    while let Some(row) = rows.try_next().await.map_err(db)? {
        visit(&event_from_row(&row)?);
    }
    Ok(())
}

/// One page of events, newest first.
pub(crate) async fn list_events(pool: &PgPool, query: &EventQuery) -> Result<EventPage> {
    let filter = &query.filter;
    let size = query.paging.page_size().max(1);
    let mut sql = QueryBuilder::new(EVENT_SELECT);
    push_event_filter(&mut sql, filter);
    let mut offset = 0i64;
    if let Paging::Cursor { after: Some(c), .. } = &query.paging {
        sql.push(" AND (e.ts, e.id) < (");
        sql.push_bind(c.timestamp);
        sql.push(", ");
        sql.push_bind(c.id.as_str().to_owned());
        // The plain bound lets the planner skip partitions newer than the cursor.
        sql.push(") AND e.ts <= ");
        sql.push_bind(c.timestamp);
    }
    if let Paging::Page { page, .. } = &query.paging {
        offset = i64::from(page.saturating_sub(1)) * i64::from(size);
    }
    sql.push(" ORDER BY e.ts DESC, e.id DESC LIMIT ");
    sql.push_bind(i64::from(size));
    if offset > 0 {
        sql.push(" OFFSET ");
        sql.push_bind(offset);
    }
    // One connection for the page and its total: each acquire checks the connection first.
    let mut conn = pool.acquire().await.map_err(db)?;
    let rows = sql.build().fetch_all(&mut *conn).await.map_err(db)?;
    let events = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let total = match &query.paging {
        // The rollups count only events that count; voided ones are counted one by one.
        Paging::Page { .. } if filter.include_voided => {
            let mut sql = QueryBuilder::new("SELECT count(*) FROM events e");
            push_event_filter(&mut sql, filter);
            let n: i64 = sql
                .build_query_scalar()
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
            Some(u64::try_from(n).unwrap_or(0))
        }
        Paging::Page { .. } => Some(aggregate::count_events(&mut conn, filter).await?),
        Paging::Cursor { .. } => None,
    };
    Ok(EventPage::new(events, total, &query.paging))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::month_start;
    use chrono::{DateTime, TimeZone, Utc};
    use metering_core::{EventRules, NewEvent};

    /// Months touched by a batch, for tests.
    fn months(events: &[Event]) -> std::collections::HashMap<DateTime<Utc>, usize> {
        let mut m = std::collections::HashMap::new();
        for e in events {
            *m.entry(month_start(e.timestamp)).or_insert(0) += 1;
        }
        m
    }

    fn event(id: &str, at: DateTime<Utc>) -> Event {
        metering_core::validate_batch(
            vec![NewEvent::new("t", "r", "f").with_id(id).with_timestamp(at)],
            &EventRules::default(),
            at,
        )
        .expect("valid")
        .remove(0)
    }

    #[test]
    fn later_duplicates_are_dropped() {
        let at = Utc
            .with_ymd_and_hms(2025, 1, 31, 23, 0, 0)
            .single()
            .expect("valid");
        let events = [event("a", at), event("b", at), event("a", at)];
        let (unique, first) = dedup(&events);
        assert_eq!(unique.len(), 2);
        assert_eq!(first, [true, true, false]);
    }

    #[test]
    fn months_start_at_utc_midnight_of_the_first() {
        let at = Utc
            .with_ymd_and_hms(2024, 2, 29, 23, 59, 59)
            .single()
            .expect("valid");
        let start = Utc
            .with_ymd_and_hms(2024, 2, 1, 0, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(month_start(at), start);
        let m = months(&[event("a", at), event("b", start)]);
        assert_eq!(m.get(&start), Some(&2));
    }
}
