//! Aggregates and usage sums equal the reference in-memory store's, including where rollups
//! cannot answer alone (historic offsets with seconds, unaligned ranges) and for sums beyond
//! 64 bits.

use chrono::{DateTime, Duration, Utc};
use metering_core::{
    AggregateQuery, Event, EventId, Feature, GroupBy, MemoryStore, Quantity, Resource, Store,
    TenantId, Tz, UsageScope, Window, WindowType,
};
use metering_store_sqlite::{SqliteConfig, SqliteStore};

fn store_dir() -> (tempfile::TempDir, SqliteConfig) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = SqliteConfig::new(dir.path().join("exact.db"));
    (dir, config)
}

fn event(i: u64, at: DateTime<Utc>, quantity: Quantity) -> Event {
    Event {
        id: EventId::new(format!("e-{i}")).expect("valid"),
        tenant_id: TenantId::new(format!("org-{}", i % 3)).expect("valid"),
        resource: Resource::new(["api", "db"][usize::from(i % 5 == 0)]).expect("valid"),
        feature: Feature::new(["read", "write"][usize::from(i % 7 == 0)]).expect("valid"),
        quantity,
        timestamp: at,
        metadata: None,
        created_at: at,
        amends: None,
        voided_at: None,
        void_reason: None,
    }
}

/// Pseudo-random events over `span` from `start`, with sub-second timestamps.
fn events(start: DateTime<Utc>, span: Duration, n: u64) -> Vec<Event> {
    let span = u64::try_from(span.num_microseconds().expect("small span")).expect("positive");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = i64::try_from(x % span).expect("small");
            let q = Quantity::from_nanos(u128::from(x % 5_000_000_000) + 1);
            event(i, start + Duration::microseconds(offset), q)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_equal_the_reference_in_every_zone_and_window() {
    let (_dir, config) = store_dir();
    let store = SqliteStore::open(config).await.expect("a store");
    let reference = MemoryStore::new();
    // Modern data, and 1890s data when many zones still kept local mean time (offsets with
    // seconds, so window boundaries fall inside 15-minute buckets).
    for start in [
        DateTime::from_timestamp(1_740_000_000, 0).expect("valid"),
        DateTime::from_timestamp(-2_500_000_000, 0).expect("valid"),
    ] {
        let batch = events(start, Duration::days(70), 4_000);
        store.insert_events(&batch).await.expect("an insert");
        reference.insert_events(&batch).await.expect("an insert");
        let zones = [
            "UTC",
            "America/New_York",
            "Asia/Kathmandu",
            "Europe/Amsterdam",
            "Asia/Kolkata",
            "Australia/Lord_Howe",
        ];
        for zone in zones {
            let tz: Tz = zone.parse().expect("a zone");
            for window in [
                WindowType::Hourly,
                WindowType::Daily,
                WindowType::Weekly,
                WindowType::Monthly,
            ] {
                for (from, to) in [
                    (Duration::zero(), Duration::days(70)),
                    (
                        Duration::microseconds(123_456_789),
                        Duration::days(40) + Duration::seconds(7),
                    ),
                ] {
                    let mut query = AggregateQuery::new(window, start + from, start + to)
                        .group_by(GroupBy::ALL)
                        .tz(tz);
                    if window == WindowType::Hourly {
                        query.end = query.start + Duration::days(3);
                    }
                    let got = store.aggregate(&query).await.expect("an aggregate");
                    let want = reference.aggregate(&query).await.expect("an aggregate");
                    assert_eq!(got, want, "{zone} {window} {from} {to}");
                    let filtered = query.clone().tenant(TenantId::new("org-1").expect("valid"));
                    let filtered = filtered.group_by(GroupBy::DEFAULT);
                    assert_eq!(
                        store.aggregate(&filtered).await.expect("an aggregate"),
                        reference.aggregate(&filtered).await.expect("an aggregate"),
                        "{zone} {window} filtered"
                    );
                }
            }
        }
        let scope = UsageScope {
            tenant_id: TenantId::new("org-2").expect("valid"),
            resource: None,
            feature: Feature::new("read").expect("valid"),
        };
        let window = Window {
            start: start + Duration::seconds(1_000_003),
            end: start + Duration::days(33) + Duration::microseconds(17),
        };
        assert_eq!(
            store.sum_usage(&scope, window).await.expect("a sum"),
            reference.sum_usage(&scope, window).await.expect("a sum"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_sums_beyond_64_bits_stay_exact() {
    let (_dir, config) = store_dir();
    let store = SqliteStore::open(config).await.expect("a store");
    let at = DateTime::from_timestamp(1_763_600_000, 0).expect("valid");
    let max = metering_core::quantity::MAX_EVENT_QUANTITY;
    // 10^4 events of 10^15 units in one 15-minute bucket: 10^19 units, beyond i64::MAX.
    let batch: Vec<Event> = (0..10_000u64)
        .map(|i| {
            let mut e = event(
                i,
                at + Duration::microseconds(i64::try_from(i).expect("small")),
                max,
            );
            e.tenant_id = TenantId::new("big").expect("valid");
            e.resource = Resource::new("api").expect("valid");
            e.feature = Feature::new("read").expect("valid");
            e
        })
        .collect();
    for chunk in batch.chunks(2_500) {
        store.insert_events(chunk).await.expect("an insert");
    }
    let expected = Quantity::from_nanos(max.nanos() * 10_000);
    let query = AggregateQuery::new(
        WindowType::Monthly,
        at - Duration::days(40),
        at + Duration::days(40),
    )
    .group_by(GroupBy::NONE);
    let rows = store.aggregate(&query).await.expect("an aggregate");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].total_quantity, expected);
    assert_eq!(rows[0].event_count, 10_000);
    let scope = UsageScope {
        tenant_id: TenantId::new("big").expect("valid"),
        resource: Some(Resource::new("api").expect("valid")),
        feature: Feature::new("read").expect("valid"),
    };
    let window = Window {
        start: at - Duration::days(400),
        end: at + Duration::days(1),
    };
    assert_eq!(
        store.sum_usage(&scope, window).await.expect("a sum"),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_databases_work_through_the_writer() {
    for url in ["sqlite::memory:", "sqlite://:memory:"] {
        let store = SqliteStore::connect(url).await.expect("an in-memory store");
        let at = DateTime::from_timestamp(1_763_600_000, 0).expect("valid");
        let batch = events(at, Duration::hours(5), 100);
        let outcome = store.insert_events(&batch).await.expect("an insert");
        assert_eq!(outcome.inserted_count(), 100);
        assert_eq!(
            store
                .insert_events(&batch)
                .await
                .expect("a retry")
                .duplicate_count(),
            100
        );
        store.health().await.expect("healthy");
        let query = AggregateQuery::new(
            WindowType::Daily,
            at - Duration::days(1),
            at + Duration::days(1),
        )
        .group_by(GroupBy::NONE);
        let rows = store.aggregate(&query).await.expect("an aggregate");
        assert_eq!(rows.iter().map(|r| r.event_count).sum::<u64>(), 100);
    }
}
