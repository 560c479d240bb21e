//! `metering-server export`: events as NDJSON or CSV, straight from the store.

use std::io::Write as _;

use anyhow::Context as _;
use futures::StreamExt as _;
use metering_core::api::ExportFormat;
use metering_core::time::parse_range_bound;
use metering_core::{EventFilter, Feature, Metering, Resource, TenantId};

/// The `export` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// ndjson (one JSON event per line) or csv (with a header row).
    #[arg(long, default_value = "ndjson")]
    format: ExportFormat,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Only this feature.
    #[arg(long)]
    feature: Option<String>,
    /// Only events at or after this time (RFC 3339, or a date meaning midnight UTC).
    #[arg(long)]
    start: Option<String>,
    /// Only events before this time (RFC 3339, or a date meaning midnight UTC).
    #[arg(long)]
    end: Option<String>,
    /// Voided events too (CSV gains the columns amends, voided_at and void_reason).
    #[arg(long)]
    include_voided: bool,
    /// Write to this file instead of standard output.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
}

fn bound(flag: &str, value: Option<&str>) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|v| {
            parse_range_bound(v).with_context(|| {
                format!("--{flag} must be an RFC 3339 date-time or a date (2025-11-20), not {v:?}")
            })
        })
        .transpose()
}

/// Writes every matching event, newest first; returns how many.
pub(crate) async fn export(engine: &Metering, args: ExportArgs) -> anyhow::Result<()> {
    let mut filter = EventFilter::all().between(
        bound("start", args.start.as_deref())?,
        bound("end", args.end.as_deref())?,
    );
    filter.tenant_id = args
        .tenant
        .map(TenantId::new)
        .transpose()
        .context("--tenant")?;
    filter.resource = args
        .resource
        .map(Resource::new)
        .transpose()
        .context("--resource")?;
    filter.feature = args
        .feature
        .map(Feature::new)
        .transpose()
        .context("--feature")?;
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    filter.include_voided = args.include_voided;
    let corrections = filter.include_voided;
    out.write_all(&args.format.preamble(corrections))?;
    let mut pages = engine.export(filter);
    let mut count = 0usize;
    let mut chunk = Vec::new();
    while let Some(page) = pages.next().await {
        let events = page?;
        count += events.len();
        chunk.clear();
        args.format.write_events(&events, corrections, &mut chunk);
        out.write_all(&chunk)?;
    }
    out.flush()?;
    tracing::info!(events = count, format = %args.format, "exported");
    Ok(())
}
