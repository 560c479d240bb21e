//! Opening databases made by older (and newer) schema versions.

use chrono::{DateTime, Duration, Utc};
use metering_core::{
    AggregateQuery, Aggregation, Event, EventFilter, EventId, EventQuery, Feature, GroupBy,
    MeterGroup, MeterKey, MeterQuery, MeterSpec, Paging, Quantity, QuotaScope, Resource, Store,
    TenantId, WindowType,
};
use metering_store_sqlite::rusqlite::{Connection, params};
use metering_store_sqlite::{SCHEMA_VERSION, SqliteConfig, SqliteStore};

/// The layout of schema version 1, written out by hand as that version shipped it: events,
/// quotas and keys, no rollups.
const V1_LAYOUT: &str = "
CREATE TABLE events (
    id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, resource TEXT NOT NULL,
    feature TEXT NOT NULL, qty_units INTEGER NOT NULL CHECK (qty_units >= 0),
    qty_nanos INTEGER NOT NULL CHECK (qty_nanos BETWEEN 0 AND 999999999),
    ts INTEGER NOT NULL, metadata TEXT, created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_ts ON events (ts, id);
CREATE INDEX events_tenant_ts ON events (tenant_id, ts, id);
CREATE TABLE quotas (
    id TEXT NOT NULL PRIMARY KEY, tenant_id TEXT NOT NULL, resource TEXT NOT NULL,
    feature TEXT NOT NULL, limit_quantity TEXT NOT NULL, period TEXT NOT NULL,
    alert_threshold INTEGER NOT NULL, tz TEXT NOT NULL, created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, UNIQUE (tenant_id, feature, resource)
);
CREATE TABLE api_keys (
    id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, role TEXT NOT NULL, tenant_id TEXT,
    prefix TEXT NOT NULL, hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL,
    expires_at INTEGER, last_used_at INTEGER, revoked_at INTEGER
);
PRAGMA user_version = 1;
";

fn day0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_596_800, 0).expect("valid") // 2025-11-20T00:00:00Z
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_migrated_and_its_events_rolled_up() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("v1.db");
    // 300 events over three days, written the way version 1 wrote them, plus a quota.
    let mut expected = [(0u64, Quantity::ZERO); 3];
    {
        let conn = Connection::open(&path).expect("a new file");
        conn.execute_batch(V1_LAYOUT).expect("the v1 layout");
        conn.execute_batch("BEGIN").expect("a transaction");
        let mut insert = conn
            .prepare(
                "INSERT INTO events (id, tenant_id, resource, feature, qty_units, qty_nanos, ts, metadata, created_at)
                 VALUES (?1, 'org', 'api', 'search', ?2, ?3, ?4, ?5, ?4)",
            )
            .expect("an insert");
        for i in 0..300i64 {
            let ts = day0() + Duration::minutes(i * 14 + 3) + Duration::microseconds(i);
            let q = Quantity::from_parts(u128::try_from(i).expect("positive"), 250_000_000);
            let units = i64::try_from(q.units()).expect("small");
            insert
                .execute(params![
                    format!("old-{i}"),
                    units,
                    q.fraction_nanos(),
                    ts.timestamp_micros(),
                    (i == 0).then_some(r#"{"plan":"pro"}"#),
                ])
                .expect("an event");
            let day = usize::try_from((ts - day0()).num_days()).expect("within three days");
            expected[day].0 += 1;
            expected[day].1 += q;
        }
        drop(insert);
        conn.execute_batch("COMMIT").expect("a commit");
        conn.execute(
            "INSERT INTO quotas VALUES ('0190a0b0-0000-7000-8000-000000000001', '*', '', 'search',
             '1000.5', 'daily', 80, 'Europe/Paris', 0, 0)",
            [],
        )
        .expect("a quota");
    }

    let store = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .expect("the v1 database opens");
    let version =
        usize::try_from(store.schema_version().await.expect("a version")).expect("positive");
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(store.migrate().await.expect("idempotent"), 0);

    // The old events are there, and aggregates (read from the backfilled rollups) are exact.
    let page = store
        .list_events(&EventQuery::new(
            EventFilter::all(),
            Paging::Page {
                page: 1,
                page_size: 1000,
            },
        ))
        .await
        .expect("a listing");
    assert_eq!(page.total, Some(300));
    let first = page
        .events
        .iter()
        .find(|e| e.id.as_str() == "old-0")
        .expect("old-0");
    assert_eq!(
        first.metadata.as_ref().and_then(|m| m.get("plan")),
        Some(&"pro".into())
    );
    let query = AggregateQuery::new(WindowType::Daily, day0(), day0() + Duration::days(3))
        .group_by(GroupBy::NONE);
    let rows = store.aggregate(&query).await.expect("an aggregate");
    let got: Vec<(u64, Quantity)> = rows
        .iter()
        .map(|r| (r.event_count, r.total_quantity))
        .collect();
    assert_eq!(got, expected.to_vec());

    // The backfilled rows keep counting: a new event lands in the same buckets.
    let tenant = TenantId::new("org").expect("valid");
    let new = Event {
        id: EventId::new("new-0").expect("valid"),
        tenant_id: tenant.clone(),
        resource: Resource::new("api").expect("valid"),
        feature: Feature::new("search").expect("valid"),
        quantity: Quantity::ONE,
        timestamp: day0() + Duration::hours(1),
        metadata: None,
        created_at: day0(),
        amends: None,
        voided_at: None,
        void_reason: None,
    };
    store.insert_events(&[new]).await.expect("an insert");
    let rows = store.aggregate(&query).await.expect("an aggregate");
    assert_eq!(rows[0].event_count, expected[0].0 + 1);
    assert_eq!(rows[0].total_quantity, expected[0].1 + Quantity::ONE);

    let quotas = store.list_quotas(None).await.expect("quotas");
    assert_eq!(quotas.len(), 1);
    assert_eq!(quotas[0].spec.tenant_id, QuotaScope::AllTenants);
    assert_eq!(quotas[0].spec.resource, None);
    assert_eq!(quotas[0].spec.limit, "1000.5".parse().expect("valid"));
    assert_eq!(quotas[0].spec.tz.name(), "Europe/Paris");
    let candidates = store
        .quota_candidates(&tenant, &Feature::new("search").expect("valid"))
        .await
        .expect("candidates");
    assert_eq!(candidates, quotas);
}

/// A meter defined before meter rollups existed (schema version 6) is folded after the
/// upgrade, and answers the same before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_of_a_version_6_database_are_folded() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("v6.db");
    let config = SqliteConfig::new(&path).with_meter_fold_interval(None);
    let key = MeterKey::new("tokens").expect("valid");
    let tenant = TenantId::new("org").expect("valid");
    {
        let store = SqliteStore::open(config.clone())
            .await
            .expect("a new store");
        let events: Vec<Event> = (0..200u64)
            .map(|i| {
                let mut metadata = serde_json::Map::new();
                let model = ["a", "b", "c"][usize::try_from(i % 3).expect("small")];
                metadata.insert("model".into(), model.into());
                Event {
                    id: EventId::new(format!("e-{i}")).expect("valid"),
                    tenant_id: tenant.clone(),
                    resource: Resource::new("ai").expect("valid"),
                    feature: Feature::new("tokens").expect("valid"),
                    quantity: Quantity::from_units(i + 1),
                    timestamp: day0() + Duration::minutes(i64::try_from(i * 17).expect("small")),
                    metadata: Some(metadata),
                    created_at: day0(),
                    amends: None,
                    voided_at: None,
                    void_reason: None,
                }
            })
            .collect();
        store.insert_events(&events).await.expect("insert");
        store
            .put_meter(
                &key,
                &MeterSpec::new(Aggregation::Sum).dimensions(["model"]),
                day0(),
            )
            .await
            .expect("a meter");
    }
    // Take the file back to version 6, as that version left it.
    {
        let conn = Connection::open(&path).expect("the file");
        conn.execute_batch(
            "DROP TABLE webhook_deliveries; DROP TABLE alert_marks; DROP TABLE webhooks;
             ALTER TABLE quotas DROP COLUMN thresholds;
             DROP INDEX events_seq; ALTER TABLE events DROP COLUMN seq;
             DROP TABLE meter_folds; DROP TABLE meter_cells; DROP TABLE meter_distinct;
             PRAGMA user_version = 6;",
        )
        .expect("version 6");
    }
    let store = SqliteStore::open(config).await.expect("the upgrade");
    let meter = store.meter(&key).await.expect("read").expect("the meter");
    let query = MeterQuery::new(day0(), day0() + Duration::days(3))
        .window(WindowType::Daily)
        .group_by([MeterGroup::Dimension("model".into())]);
    let before = store.query_meter(&meter, &query).await.expect("a query");
    let total: u64 = before.data.iter().map(|r| r.event_count).sum();
    assert_eq!(total, 200);
    while store.fold_meters(64).await.expect("a fold") {}
    let conn = Connection::open(&path).expect("the file");
    let (backfilled, cells): (bool, i64) = conn
        .query_row(
            "SELECT (SELECT backfilled FROM meter_folds WHERE meter = 'tokens'),
                    (SELECT count(*) FROM meter_cells WHERE meter = 'tokens')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the fold state");
    assert!(backfilled && cells > 0, "{backfilled} {cells}");
    assert_eq!(
        store.query_meter(&meter, &query).await.expect("a query"),
        before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("future.db");
    {
        let store = SqliteStore::open(SqliteConfig::new(&path))
            .await
            .expect("a new database");
        drop(store);
        let conn = Connection::open(&path).expect("the file");
        conn.pragma_update(None, "user_version", 999)
            .expect("a bump");
    }
    let err = SqliteStore::open(SqliteConfig::new(&path))
        .await
        .expect_err("a newer schema must not be used");
    assert!(
        matches!(err, metering_core::Error::Internal { .. }),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("999"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_and_migrates_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("again.db").display());
    let store = SqliteStore::connect(&url).await.expect("a new database");
    let tenant = TenantId::new("org").expect("valid");
    let spec = metering_core::QuotaSpec::new(
        QuotaScope::Tenant(tenant),
        Feature::new("search").expect("valid"),
        Quantity::from_units(10),
        metering_core::QuotaPeriod::Monthly,
    );
    let quota = store.upsert_quota(&spec, day0()).await.expect("a quota");
    drop(store);
    let store = SqliteStore::connect(&url).await.expect("the same database");
    assert_eq!(store.migrate().await.expect("nothing to do"), 0);
    assert_eq!(store.list_quotas(None).await.expect("quotas"), vec![quota]);
}
