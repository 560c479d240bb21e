//! An acknowledged batch survives the process being killed with SIGKILL.
//!
//! The test re-runs its own binary as a child that ingests batches in a loop and prints a
//! line for each acknowledged one; the parent kills it mid-ingest (several times, on the
//! same file), then opens the database and checks that every acknowledged event is stored
//! exactly once, that every batch is all there or not at all, and that the rollups agree
//! with the events.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use metering_core::{
    AggregateQuery, Event, EventFilter, EventId, EventQuery, Feature, GroupBy, Paging, Quantity,
    Resource, Store, TenantId, WindowType,
};
use metering_store_sqlite::{SqliteConfig, SqliteStore};

/// Set in the child: the database path.
const CHILD_DB: &str = "METERING_SQLITE_KILL_TEST_DB";
/// Set in the child: the number of its first batch.
const CHILD_FIRST_BATCH: &str = "METERING_SQLITE_KILL_TEST_FIRST";
const BATCH: usize = 500;
const BATCHES_PER_CHILD: u64 = 1_000_000;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_763_600_000, 0).expect("valid")
}

fn id(batch: u64, i: usize) -> String {
    format!("kill-{batch:08}-{i:04}")
}

/// The events of batch `batch`: spread over a few days, tenants, resources and fractions.
fn batch_events(batch: u64) -> Vec<Event> {
    let micros = |i: u64| i64::try_from(i).expect("small");
    (0..BATCH)
        .map(|i| {
            let n = batch * BATCH as u64 + i as u64;
            Event {
                id: EventId::new(id(batch, i)).expect("valid"),
                tenant_id: TenantId::new(format!("org-{}", n % 7)).expect("valid"),
                resource: Resource::new(["api", "storage"][i % 2]).expect("valid"),
                feature: Feature::new("calls").expect("valid"),
                quantity: Quantity::from_nanos(u128::from(n % 1000) * 1_000_000 + 1),
                timestamp: start()
                    + chrono::Duration::microseconds(micros(n * 7_919_117 % (3 * 86_400_000_000))),
                metadata: None,
                created_at: start(),
                amends: None,
                voided_at: None,
                void_reason: None,
            }
        })
        .collect()
}

/// The child: ingest forever, one line per acknowledged batch.
fn run_child(db: &str, first: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(db))
            .await
            .expect("the store opens");
        let mut out = std::io::stdout().lock();
        for batch in first..first + BATCHES_PER_CHILD {
            let outcome = store
                .insert_events(&batch_events(batch))
                .await
                .expect("insert");
            assert_eq!(outcome.inserted_count(), BATCH);
            writeln!(out, "ACK {batch}").expect("stdout");
            out.flush().expect("stdout");
        }
    });
}

/// The batch an output line acknowledges. The test harness may print its own text (such as
/// the test's name) before the first line, so the marker is searched, not expected first.
fn acknowledged(line: &str) -> Option<u64> {
    let (_, n) = line.rsplit_once("ACK ")?;
    Some(n.trim().parse().expect("a batch number"))
}

/// Runs a child from batch `first`, kills it after `acks` acknowledgements plus `delay`, and
/// returns every batch it acknowledged.
fn ingest_and_kill(db: &Path, first: u64, acks: usize, delay: Duration) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "killed_mid_ingest_keeps_every_acknowledged_batch",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, db)
        .env(CHILD_FIRST_BATCH, first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut acked = Vec::new();
    while acked.len() < acks {
        let line = lines
            .next()
            .expect("the child acknowledges batches")
            .expect("utf-8");
        if let Some(n) = acknowledged(&line) {
            acked.push(n);
        }
    }
    std::thread::sleep(delay);
    child.kill().expect("SIGKILL");
    child.wait().expect("the child is reaped");
    // Lines printed before the kill are acknowledgements too.
    for line in lines {
        if let Some(n) = acknowledged(&line.expect("utf-8")) {
            acked.push(n);
        }
    }
    acked
}

#[test]
fn killed_mid_ingest_keeps_every_acknowledged_batch() {
    if let Ok(db) = std::env::var(CHILD_DB) {
        let first = std::env::var(CHILD_FIRST_BATCH)
            .expect("first batch")
            .parse()
            .expect("a number");
        run_child(&db, first);
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = dir.path().join("kill.db");
    let mut acked = BTreeSet::new();
    for (round, delay_ms) in [3u64, 17, 41].into_iter().enumerate() {
        let first = (round as u64 + 1) * BATCHES_PER_CHILD;
        acked.extend(ingest_and_kill(
            &db,
            first,
            5 + round * 3,
            Duration::from_millis(delay_ms),
        ));
    }
    assert!(acked.len() >= 5 + 8 + 11);

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let store = SqliteStore::open(SqliteConfig::new(&db))
            .await
            .expect("the store reopens");
        let mut stored = Vec::new();
        let mut paging = Paging::Cursor {
            after: None,
            page_size: 1000,
        };
        loop {
            let page = store
                .list_events(&EventQuery::new(EventFilter::all(), paging))
                .await
                .expect("a page");
            stored.extend(page.events.iter().map(|e| e.id.as_str().to_owned()));
            match page.next_cursor {
                Some(c) => {
                    paging = Paging::Cursor {
                        after: Some(c),
                        page_size: 1000,
                    }
                }
                None => break,
            }
        }
        let ids: BTreeSet<&str> = stored.iter().map(String::as_str).collect();
        assert_eq!(ids.len(), stored.len(), "an event is stored twice");
        for batch in &acked {
            for i in 0..BATCH {
                assert!(
                    ids.contains(id(*batch, i).as_str()),
                    "acknowledged event {} is lost",
                    id(*batch, i)
                );
            }
        }
        // Every batch is all there or not at all (at most one unacknowledged, in-flight batch
        // per child may have committed just before its kill).
        let batches: BTreeSet<&str> = stored.iter().map(|s| &s[..13]).collect();
        let unacked: Vec<&&str> = batches
            .iter()
            .filter(|b| !acked.contains(&b[5..].parse::<u64>().expect("a batch number")))
            .collect();
        assert!(
            unacked.len() <= 3,
            "{unacked:?} stored but never acknowledged; acked {acked:?}"
        );
        assert_eq!(
            stored.len(),
            batches.len() * BATCH,
            "a batch is partly stored"
        );
        // The rollups committed with the events: an aggregate equals the recount.
        let query = AggregateQuery::new(
            WindowType::Daily,
            start(),
            start() + chrono::Duration::days(4),
        )
        .group_by(GroupBy::NONE);
        let rows = store.aggregate(&query).await.expect("an aggregate");
        let counted: u64 = rows.iter().map(|r| r.event_count).sum();
        assert_eq!(counted, stored.len() as u64);
    });
}
