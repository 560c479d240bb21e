//! Uses the custom [`CountingStore`] under the engine.
//!
//! Run with `cargo run -p example-custom-store`.

use example_custom_store::CountingStore;
use metering::{MemoryStore, Metering, NewEvent};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let store = CountingStore::new(MemoryStore::new());
    let engine = Metering::builder(store.clone()).build();
    let batch = (0..3)
        .map(|i| NewEvent::new("org_1", "api", "search").with_id(format!("req-{i}")))
        .collect();
    engine.ingest(batch).await?;
    engine
        .ingest(vec![
            NewEvent::new("org_1", "api", "search").with_id("req-0"),
        ])
        .await?;
    println!(
        "events written through the custom store: {}",
        store.written()
    );
    Ok(())
}
