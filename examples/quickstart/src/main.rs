//! Quickstart: embed the metering engine, record usage, aggregate it and enforce a quota.
//!
//! Uses the in-memory store, so it needs nothing installed and keeps nothing.
//!
//! Run with `cargo run -p example-quickstart`.

use chrono::Duration;
use metering::{
    AggregateQuery, Feature, MemoryStore, Metering, NewEvent, Quantity, QuotaPeriod, QuotaScope,
    QuotaSpec, Resource, TenantId, ValidateRequest, WindowType,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let engine = Metering::builder(MemoryStore::new()).build();
    let now = engine.now();

    // 1. Record usage: a batch is validated whole and stored idempotently by event id.
    let mut batch = Vec::new();
    for (tenant, feature, quantity, hours_ago) in [
        ("org_acme", "invoice_generate", "1", 30),
        ("org_acme", "invoice_generate", "1", 2),
        ("org_acme", "pdf_export", "2.5", 1),
        ("org_globex", "invoice_generate", "1", 1),
    ] {
        batch.push(
            NewEvent::new(tenant, "billing", feature)
                .with_quantity(quantity.parse()?)
                .with_timestamp(now - Duration::hours(hours_ago)),
        );
    }
    batch.push(NewEvent::new("org_acme", "billing", "invoice_generate").with_id("req-42"));
    batch.push(NewEvent::new("org_acme", "billing", "invoice_generate").with_id("req-42"));
    let receipt = engine.ingest(batch).await?;
    println!(
        "ingested: {} new, {} duplicate",
        receipt.events_processed, receipt.duplicates
    );

    // 2. Aggregate: daily usage per tenant and feature over the last two days (UTC windows;
    //    `.tz(...)` takes any IANA zone).
    let query = AggregateQuery::new(
        WindowType::Daily,
        now - Duration::days(2),
        now + Duration::minutes(1),
    )
    .group_by("tenant_id,feature".parse().map_err(anyhow::Error::msg)?);
    let report = engine.aggregate(&query).await?;
    for row in &report.aggregates {
        println!(
            "{} {:>8} {:<18} quantity {:>4} events {}",
            row.window_start.format("%Y-%m-%d"),
            row.tenant_id.as_ref().map_or("-", |t| t.as_str()),
            row.feature.as_ref().map_or("-", |f| f.as_str()),
            row.total_quantity,
            row.event_count,
        );
    }
    println!(
        "total: quantity {} over {} events",
        report.summary.total_quantity, report.summary.total_events
    );

    // 3. Quotas: acme may generate 4 invoices a month; check, then consume atomically.
    let acme = TenantId::new("org_acme")?;
    let invoices = Feature::new("invoice_generate")?;
    engine
        .upsert_quota(QuotaSpec::new(
            QuotaScope::Tenant(acme.clone()),
            invoices.clone(),
            Quantity::from_units(4),
            QuotaPeriod::Monthly,
        ))
        .await?;
    let check = engine
        .validate(ValidateRequest::new(acme.clone(), invoices.clone()))
        .await?;
    println!(
        "check: allowed={} usage={} remaining={} resets at {}",
        check.allowed,
        check.current_usage,
        check.remaining.unwrap_or_default(),
        check.reset_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
    );
    for attempt in 1..=3 {
        let consume = ValidateRequest::new(acme.clone(), invoices.clone())
            .with_resource(Resource::new("billing")?)
            .consuming();
        let decision = engine.validate(consume).await?;
        println!(
            "consume #{attempt}: allowed={} usage={} alert={} {}",
            decision.allowed,
            decision.current_usage,
            decision.alert,
            decision.message.unwrap_or_default()
        );
    }
    Ok(())
}
