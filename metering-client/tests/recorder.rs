//! The client as the process-wide recorder, fed by `#[meter]` (through `crate = ...`, for
//! users of metering-client without the facade).

use metering_client::{ClientConfig, MeteringClient, set_recorder};
use metering_core::{AggregateQuery, GroupBy, MemoryStore, Metering, Quantity, WindowType};
use metering_macros::meter;

#[meter(crate = metering_client, resource = "reports", feature = "export", quantity = rows)]
async fn export(tenant_id: &str, rows: u32) -> Result<u32, String> {
    Ok(rows)
}

#[tokio::test]
async fn metered_functions_reach_the_engine() -> anyhow::Result<()> {
    let engine = Metering::builder(MemoryStore::new()).build();
    let client = MeteringClient::embedded(engine.clone(), ClientConfig::default()).await?;
    set_recorder(client.clone())?;
    for rows in 1..=4 {
        export("org_1", rows).await.map_err(anyhow::Error::msg)?;
    }
    let report = client.shutdown().await;
    assert_eq!(report.stats.sent, 4);
    let now = engine.now();
    let query = AggregateQuery::new(
        WindowType::Daily,
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(1),
    )
    .group_by(GroupBy::NONE);
    let summary = engine.aggregate(&query).await?.summary;
    assert_eq!(summary.total_events, 4);
    assert_eq!(summary.total_quantity, Quantity::from_units(10));
    Ok(())
}
