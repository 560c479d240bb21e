//! Meters over any event property: LLM tokens by model, monthly active users and peak
//! storage, defined after the events were recorded and answered exactly.
//!
//! ```sh
//! cargo run -p example-meters
//! ```

use chrono::{Duration, TimeZone, Utc};
use metering::{
    Aggregation, MemoryStore, MeterFilter, MeterGroup, MeterKey, MeterQuery, MeterSpec, Metering,
    NewEvent, Quantity, Resource, WindowType,
};
use serde_json::json;

fn metadata(value: serde_json::Value) -> metering::Metadata {
    value.as_object().cloned().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engine = Metering::builder(MemoryStore::new()).build();
    let start = Utc
        .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
        .single()
        .expect("a date");

    // A month of usage: token counts with the model in the metadata, user sign-ins, and
    // storage readings in gigabytes.
    let mut events = Vec::new();
    for day in 0..30 {
        let at = start + Duration::days(day) + Duration::hours(9);
        for (model, tokens) in [("gpt-4o", "1200"), ("o3", "350.5")] {
            events.push(
                NewEvent::new("org_1", "ai", "output_tokens")
                    .with_quantity(tokens.parse::<Quantity>()?)
                    .with_timestamp(at)
                    .with_metadata(metadata(json!({"model": model, "region": "eu"}))),
            );
        }
        let user = format!("user_{}", day % 7);
        events.push(
            NewEvent::new("org_1", "app", "sign_in")
                .with_timestamp(at)
                .with_metadata(metadata(json!({"user_id": user}))),
        );
        events.push(
            NewEvent::new("org_1", "storage", "storage_gb")
                .with_quantity(Quantity::from_units(u64::try_from(10 + day % 12)?))
                .with_timestamp(at),
        );
    }
    engine.ingest(events).await?;

    // Meters apply to every stored event, including those recorded before them.
    let tokens = MeterKey::new("llm_tokens").map_err(anyhow::Error::msg)?;
    engine
        .define_meter(
            &tokens,
            &MeterSpec::new(Aggregation::Sum)
                .named("LLM tokens by model")
                .filter(MeterFilter {
                    resource: vec![Resource::new("ai")?],
                    ..MeterFilter::default()
                })
                .dimensions(["model", "region"]),
        )
        .await?;
    let users = MeterKey::new("monthly_active_users").map_err(anyhow::Error::msg)?;
    engine
        .define_meter(
            &users,
            &MeterSpec::new(Aggregation::UniqueCount)
                .value("metadata.user_id".parse().map_err(anyhow::Error::msg)?),
        )
        .await?;
    let storage = MeterKey::new("peak_storage").map_err(anyhow::Error::msg)?;
    engine
        .define_meter(
            &storage,
            &MeterSpec::new(Aggregation::Max).filter(MeterFilter {
                resource: vec![Resource::new("storage")?],
                ..MeterFilter::default()
            }),
        )
        .await?;

    let month = MeterQuery::new(start, start + Duration::days(30));
    let by_model = month
        .clone()
        .group_by([MeterGroup::Dimension("model".into())]);
    for row in engine.query_meter(&tokens, &by_model).await?.data {
        println!(
            "tokens, {:?}: {} in {} events",
            row.group[0].1, row.value, row.event_count
        );
    }
    let active = engine
        .query_meter(&users, &month.clone().window(WindowType::Monthly))
        .await?;
    println!("monthly active users: {}", active.data[0].value);
    let peak = engine
        .query_meter(&storage, &month.window(WindowType::Weekly))
        .await?;
    for row in peak.data {
        println!(
            "peak storage, week of {}: {} GB",
            row.window_start.date_naive(),
            row.value
        );
    }
    Ok(())
}
