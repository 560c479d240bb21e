//! `#[meter]`: meter plain functions with one attribute, into the embedded SQLite store.
//!
//! The functions below know nothing about where usage goes. `main` installs a
//! [`MeteringClient`] over a SQLite-backed engine as the process-wide recorder, calls them,
//! shuts the client down (which delivers every buffered event) and prints the usage per
//! tenant and feature.
//!
//! Run with `cargo run -p example-decorator`. The database is a temporary file, removed at
//! exit; set `METERING_EXAMPLE_DB=path/to/file.db` to keep it.

use chrono::Duration;
use metering::client::{ClientConfig, MeteringClient};
use metering::sqlite::SqliteStore;
use metering::{AggregateQuery, GroupBy, Metering, WindowType, meter};
use serde::Serialize;

/// One invoice per successful call; a failed call is not metered (it returns `Result`).
#[meter(resource = "billing", feature = "invoice_generate")]
fn generate_invoice(tenant_id: &str, lines: u32) -> Result<String, String> {
    if lines == 0 {
        return Err("an invoice needs at least one line".into());
    }
    Ok(format!("invoice for {tenant_id}: {lines} lines"))
}

#[derive(Debug, Serialize)]
struct Plan {
    name: &'static str,
    seats: u32,
}

/// Metered by the page, with metadata; the options are evaluated before the body runs, so
/// the body may consume its arguments.
#[meter(resource = "documents", feature = "pdf_export", quantity = pages,
        metadata(plan = plan, format = "A4"))]
async fn export_pdf(tenant_id: String, pages: u32, plan: Plan) -> Vec<u8> {
    tokio::task::yield_now().await;
    let _ = (tenant_id, plan);
    vec![0; usize::try_from(pages).unwrap_or(0) * 100]
}

struct SearchService {
    org: String,
}

impl SearchService {
    /// A method: the tenant comes from `self`; every call counts, `Err` included.
    #[meter(resource = "search", feature = "query", tenant = self.org.as_str(), on = "always")]
    fn query(&self, terms: &str) -> Result<usize, String> {
        if terms.is_empty() {
            return Err("empty query".into());
        }
        Ok(terms.split_whitespace().count())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = match std::env::var("METERING_EXAMPLE_DB") {
        Ok(path) => std::path::PathBuf::from(path),
        Err(_) => dir.path().join("decorator.db"),
    };
    let store = SqliteStore::connect(&format!("sqlite://{}", path.display())).await?;
    let engine = Metering::builder(store).build();
    let client = MeteringClient::embedded(engine.clone(), ClientConfig::default()).await?;
    metering::set_recorder(client.clone())?;

    for lines in [3, 0, 12] {
        match generate_invoice("org_acme", lines) {
            Ok(invoice) => println!("{invoice}"),
            Err(error) => println!("failed (not metered): {error}"),
        }
    }
    generate_invoice("org_globex", 1).map_err(anyhow::Error::msg)?;
    let plan = Plan {
        name: "pro",
        seats: 5,
    };
    let pdf = export_pdf("org_acme".into(), 7, plan).await;
    println!("exported {} bytes", pdf.len());
    let search = SearchService {
        org: "org_globex".into(),
    };
    println!("{:?} {:?}", search.query("rust metering"), search.query(""));

    let report = client.shutdown().await;
    println!(
        "\nclient: {} sent, {} rejected, {} dropped",
        report.stats.sent, report.stats.rejected, report.stats.dropped
    );

    let now = engine.now();
    let query = AggregateQuery::new(
        WindowType::Daily,
        now - Duration::days(1),
        now + Duration::hours(1),
    )
    .group_by(GroupBy::ALL);
    println!(
        "\n{:<12} {:<10} {:<18} {:>8} {:>6}",
        "tenant", "resource", "feature", "quantity", "calls"
    );
    for row in engine.aggregate(&query).await?.aggregates {
        println!(
            "{:<12} {:<10} {:<18} {:>8} {:>6}",
            row.tenant_id.as_ref().map_or("-", |t| t.as_str()),
            row.resource.as_ref().map_or("-", |r| r.as_str()),
            row.feature.as_ref().map_or("-", |f| f.as_str()),
            row.total_quantity.to_string(),
            row.event_count
        );
    }
    Ok(())
}
