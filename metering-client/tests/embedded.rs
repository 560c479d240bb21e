//! The embedded sink: a `Metering` engine in this process.

use std::time::Duration;

use metering_client::{
    ClientConfig, ClientError, Delivery, MeteringClient, NewEvent, TransportMode,
};
use metering_core::{AggregateQuery, GroupBy, MemoryStore, Metering, WindowType};

async fn total_events(engine: &Metering) -> anyhow::Result<u64> {
    let now = engine.now();
    let query = AggregateQuery::new(
        WindowType::Daily,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(1),
    )
    .group_by(GroupBy::NONE);
    Ok(engine.aggregate(&query).await?.summary.total_events)
}

#[tokio::test]
async fn batches_into_the_engine() -> anyhow::Result<()> {
    let engine = Metering::builder(MemoryStore::new()).build();
    let client = MeteringClient::embedded(
        engine.clone(),
        ClientConfig::default()
            .with_batch_size(30)
            .with_batch_interval(Duration::from_secs(3600)),
    )
    .await?;
    for _ in 0..100 {
        client.record(NewEvent::new("org", "api", "call"));
    }
    client.record(NewEvent::new("", "api", "call")); // invalid: rejected, not retried
    let report = client.shutdown().await;
    assert_eq!(report.stats.sent, 100);
    assert_eq!(report.stats.rejected, 1);
    assert_eq!(report.stats.retried, 0);
    assert_eq!(total_events(&engine).await?, 100);
    Ok(())
}

#[tokio::test]
async fn sync_mode_awaits_the_write() -> anyhow::Result<()> {
    let engine = Metering::builder(MemoryStore::new()).build();
    let client = MeteringClient::embedded(
        engine.clone(),
        ClientConfig::default().with_mode(TransportMode::Sync),
    )
    .await?;
    assert_eq!(
        client.send(NewEvent::new("org", "api", "call")).await?,
        Delivery::Sent
    );
    assert_eq!(total_events(&engine).await?, 1);
    let rejected = client.send(NewEvent::new("org", "", "call")).await;
    assert!(
        matches!(rejected, Err(ClientError::Rejected { .. })),
        "{rejected:?}"
    );
    Ok(())
}
