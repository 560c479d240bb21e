//! The remote sink against a mock server: batching, retries, rejections, spilling, replay.

#![cfg(all(feature = "remote", feature = "spill"))]

mod common;

use std::time::{Duration, Instant};

use common::{Mode, free_addr, start, start_on, start_on_own_thread};
use metering_client::{
    ClientConfig, ClientError, Delivery, MeteringClient, NewEvent, OverflowPolicy, TransportMode,
};
use metering_core::{Feature, Metadata, Quantity, TenantId, ValidateRequest};
use serde_json::json;

fn fast(url: &str) -> ClientConfig {
    ClientConfig::default()
        .with_api_url(url)
        .with_api_key("test-key")
        .with_retry_delays(Duration::from_millis(10), Duration::from_millis(50))
        .with_connect_timeout(Duration::from_millis(500))
        .with_request_timeout(Duration::from_secs(5))
}

fn event(tenant: &str, seq: usize) -> NewEvent {
    let mut metadata = Metadata::new();
    metadata.insert("seq".into(), json!(seq));
    NewEvent::new(tenant, "api", "call").with_metadata(metadata)
}

fn seqs(stored: &[serde_json::Value]) -> Vec<u64> {
    stored
        .iter()
        .filter_map(|e| e["metadata"]["seq"].as_u64())
        .collect()
}

#[tokio::test]
async fn batches_by_size_and_sends_ids_and_key() -> anyhow::Result<()> {
    let server = start().await?;
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_batch_size(10)
            .with_batch_interval(Duration::from_secs(3600)),
    )
    .await?;
    for i in 0..95 {
        client.record(event("org", i));
    }
    let report = client.flush().await;
    assert!(report.is_complete());
    assert_eq!(report.stats.sent, 95);
    assert_eq!(report.stats.buffered, 0);
    let attempts = server.attempts();
    let sizes: Vec<usize> = attempts.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 10, 10, 10, 10, 10, 10, 10, 5]);
    assert!(attempts.iter().flatten().all(|id| id.len() == 36), "UUIDs");
    let stored = server.stored();
    assert_eq!(seqs(&stored), (0..95).collect::<Vec<u64>>(), "in order");
    assert!(stored.iter().all(|e| e["timestamp"].is_string()));
    let keys = server.state.lock().expect("lock").api_keys.clone();
    assert!(keys.iter().all(|k| k.as_deref() == Some("test-key")));
    client.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_partial_batch_leaves_after_the_interval() -> anyhow::Result<()> {
    let server = start().await?;
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_batch_size(1000)
            .with_batch_interval(Duration::from_millis(50)),
    )
    .await?;
    for i in 0..3 {
        client.record(event("org", i));
    }
    assert_eq!(server.wait_for(3).await, 3, "sent without a flush");
    assert_eq!(server.attempts().len(), 1);
    client.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn retries_5xx_with_the_same_ids() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::Unavailable(2));
    let client =
        MeteringClient::connect(fast(&server.url()).with_mode(TransportMode::Sync)).await?;
    assert_eq!(client.send(event("org", 0)).await?, Delivery::Sent);
    let attempts = server.attempts();
    assert_eq!(attempts.len(), 3);
    assert!(
        attempts.iter().all(|a| *a == attempts[0]),
        "same id each time"
    );
    let stats = client.stats();
    assert_eq!((stats.sent, stats.retried, stats.spilled), (1, 2, 0));
    Ok(())
}

#[tokio::test]
async fn honours_retry_after_on_429() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::RateLimited(1));
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_mode(TransportMode::Sync)
            .with_retry_delays(Duration::from_millis(10), Duration::from_secs(5)),
    )
    .await?;
    let started = Instant::now();
    assert_eq!(client.send(event("org", 0)).await?, Delivery::Sent);
    // The retry waited for the server's Retry-After, not the 10 ms backoff.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.attempts().len(), 2);
    Ok(())
}

#[tokio::test]
async fn gives_up_after_three_retries_without_a_spill_queue() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::Unavailable(100));
    let client =
        MeteringClient::connect(fast(&server.url()).with_mode(TransportMode::Sync)).await?;
    let result = client.send(event("org", 0)).await;
    assert!(
        matches!(result, Err(ClientError::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(server.attempts().len(), 4, "one attempt and three retries");
    let stats = client.stats();
    assert_eq!((stats.retried, stats.dropped), (3, 1));
    Ok(())
}

#[tokio::test]
async fn invalid_events_are_rejected_once_and_the_rest_delivered() -> anyhow::Result<()> {
    let server = start().await?;
    let client = MeteringClient::connect(fast(&server.url()).with_batch_size(5)).await?;
    for (i, tenant) in ["org", "bad", "org", "org", "bad"].into_iter().enumerate() {
        client.record(event(tenant, i));
    }
    let report = client.flush().await;
    assert_eq!(seqs(&server.stored()), [0, 2, 3]);
    assert_eq!(server.attempts().len(), 2, "no retry of the bad events");
    assert_eq!((report.stats.rejected, report.stats.retried), (2, 0));
    assert_eq!(report.stats.sent, 3);
    client.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_rejection_without_indices_is_narrowed_by_halving() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::InvalidWithoutIndex);
    let client = MeteringClient::connect(fast(&server.url()).with_batch_size(8)).await?;
    for i in 0..8 {
        client.record(event(if i == 5 { "bad" } else { "org" }, i));
    }
    let report = client.flush().await;
    assert_eq!(seqs(&server.stored()), [0, 1, 2, 3, 4, 6, 7]);
    assert_eq!(report.stats.rejected, 1);
    client.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn sync_mode_reports_a_rejection() -> anyhow::Result<()> {
    let server = start().await?;
    let client =
        MeteringClient::connect(fast(&server.url()).with_mode(TransportMode::Sync)).await?;
    let result = client.send(event("bad", 0)).await;
    let Err(ClientError::Rejected { errors, .. }) = result else {
        panic!("expected a rejection, got {result:?}");
    };
    assert_eq!(errors[0].field, "events[0].tenant_id");
    Ok(())
}

#[tokio::test]
async fn spills_while_unreachable_and_replays_in_order() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let addr = free_addr()?;
    let client = MeteringClient::connect(
        fast(&format!("http://{addr}"))
            .with_batch_size(10)
            .with_max_retries(1)
            .with_spill_path(dir.path().join("spill.db"))
            .with_replay_interval(Duration::from_millis(100)),
    )
    .await?;
    for i in 0..45 {
        client.record(event("org", i));
    }
    let report = client.flush().await;
    assert_eq!(report.pending_spill, 45, "{report:?}");
    assert_eq!(report.stats.spilled, 45);
    assert_eq!(report.stats.dropped, 0);

    let server = start_on(addr).await?;
    for i in 45..50 {
        client.record(event("org", i));
    }
    let report = client.flush().await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(seqs(&server.stored()), (0..50).collect::<Vec<u64>>());
    assert_eq!(report.stats.replayed, 50);
    client.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn replays_what_an_earlier_run_spilled() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("spill.db");
    let addr = free_addr()?;
    let config = fast(&format!("http://{addr}"))
        .with_max_retries(0)
        .with_spill_path(&path)
        .with_replay_interval(Duration::from_millis(100));
    let first = MeteringClient::connect(config.clone()).await?;
    for i in 0..20 {
        first.record(event("org", i));
    }
    let report = first.shutdown().await;
    assert_eq!(report.pending_spill, 20);
    drop(first);

    let server = start_on(addr).await?;
    let second = MeteringClient::connect(config).await?;
    assert_eq!(server.wait_for(20).await, 20, "replayed on start");
    assert_eq!(seqs(&server.stored()), (0..20).collect::<Vec<u64>>());
    second.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_full_buffer_drops_and_counts() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::Slow(Duration::from_millis(300)));
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_batch_size(5)
            .with_max_buffered(10)
            .with_overflow(OverflowPolicy::DropNewest),
    )
    .await?;
    for i in 0..100 {
        client.record(event("org", i));
    }
    let report = client.shutdown().await;
    assert!(report.stats.dropped > 0, "{report:?}");
    assert_eq!(report.stats.sent + report.stats.dropped, 100);
    assert_eq!(server.stored().len() as u64, report.stats.sent);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_blocks_when_asked() -> anyhow::Result<()> {
    let server = start().await?;
    server.set_mode(Mode::Slow(Duration::from_millis(20)));
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_batch_size(5)
            .with_max_buffered(10)
            .with_overflow(OverflowPolicy::Block),
    )
    .await?;
    for i in 0..60 {
        client.record(event("org", i));
    }
    for i in 60..80 {
        client.send(event("org", i)).await?;
    }
    let report = client.shutdown().await;
    assert_eq!(report.stats.dropped, 0);
    assert_eq!(seqs(&server.stored()), (0..80).collect::<Vec<u64>>());
    Ok(())
}

#[tokio::test]
async fn fire_and_forget_delivers_everything_by_flush() -> anyhow::Result<()> {
    let server = start().await?;
    let client =
        MeteringClient::connect(fast(&server.url()).with_mode(TransportMode::FireAndForget))
            .await?;
    for i in 0..20 {
        client.record(event("org", i));
    }
    let report = client.flush().await;
    assert_eq!(report.stats.sent, 20);
    assert_eq!(server.stored().len(), 20);
    assert_eq!(server.attempts().len(), 20, "one request per event");
    Ok(())
}

/// The client ships from a thread of its own: batches leave while the application's only
/// thread is blocked, which a batcher spawned on the application's runtime could not do.
#[tokio::test(flavor = "current_thread")]
async fn batches_leave_while_the_application_thread_is_busy() -> anyhow::Result<()> {
    let server = start_on_own_thread();
    let client = MeteringClient::connect(
        fast(&server.url())
            .with_batch_size(10)
            .with_batch_interval(Duration::from_secs(3600)),
    )
    .await?;
    for i in 0..10 {
        client.record(event("org", i));
    }
    // Block this runtime's only thread, without yielding to it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stored().len() < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(seqs(&server.stored()), (0..10).collect::<Vec<u64>>());
    client.shutdown().await;
    Ok(())
}

/// Dropping every handle of a client (without `shutdown`) lets its thread deliver what was
/// recorded, in both background modes, before it ends.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_client_delivers_what_it_holds() -> anyhow::Result<()> {
    for mode in [TransportMode::Batching, TransportMode::FireAndForget] {
        let server = start_on_own_thread();
        server.set_mode(Mode::Slow(Duration::from_millis(200)));
        let client = MeteringClient::connect(
            fast(&server.url())
                .with_mode(mode)
                .with_batch_interval(Duration::from_secs(3600)),
        )
        .await?;
        for i in 0..20 {
            client.record(event("org", i));
        }
        drop(client);
        let mut stored = server.wait_for(20).await;
        assert_eq!(stored, 20, "{mode:?}");
        // Nothing more arrives later either.
        tokio::time::sleep(Duration::from_millis(300)).await;
        stored = server.stored().len();
        assert_eq!(stored, 20, "{mode:?}");
    }
    Ok(())
}

#[tokio::test]
async fn after_shutdown_events_are_dropped_and_counted() -> anyhow::Result<()> {
    let server = start().await?;
    let client = MeteringClient::connect(fast(&server.url())).await?;
    client.record(event("org", 0));
    let report = client.shutdown().await;
    assert_eq!(report.stats.sent, 1);
    client.record(event("org", 1));
    assert!(matches!(
        client.send(event("org", 2)).await,
        Err(ClientError::Closed)
    ));
    assert_eq!(client.stats().dropped, 2);
    assert_eq!(server.stored().len(), 1);
    Ok(())
}

#[tokio::test]
async fn validates_quotas_remotely() -> anyhow::Result<()> {
    let server = start().await?;
    let client = MeteringClient::connect(fast(&server.url())).await?;
    let request = ValidateRequest::new(TenantId::new("org")?, Feature::new("call")?);
    assert!(client.validate(request.clone()).await?.allowed);
    let decision = client
        .validate(request.with_quantity(Quantity::from_units(6)))
        .await?;
    assert!(!decision.allowed);
    assert_eq!(decision.limit, Some(Quantity::from_units(5)));
    Ok(())
}
