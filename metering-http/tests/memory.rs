//! The server's memory stays bounded: the real binary on SQLite, a month of events over
//! 2,500 series with metadata, then 32 concurrent aggregates of 15,000 rows each. Its peak
//! resident memory (`VmHWM`, read from its own `/proc` entry) must stay under 150 MiB.

#![cfg(all(target_os = "linux", feature = "cli", feature = "sqlite"))]

mod binary;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const ADMIN: &str = "mk_memory_admin_secret_0123456789abcdef";
/// The bound, in KiB.
const LIMIT_KIB: u64 = 150 * 1024;

/// The peak resident memory of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM in /proc/<pid>/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_stays_under_150_mib_through_ingest_and_large_aggregates() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("memory.db").display());
    let (child, base) = binary::start(&db, ADMIN).await?;
    let pid = child.id().context("pid")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;

    // 60,000 events over the 30 days before a fixed end, 2,500 series, ~80 bytes of
    // metadata each, in batches of 1,000 from 4 writers.
    let end = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")?.to_utc();
    let start_at = end - chrono::Duration::days(30);
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                for b in 0..15u64 {
                    let events: Vec<Value> = (0..1_000u64)
                        .map(|i| {
                            let n = (w * 15 + b) * 1_000 + i;
                            let at = start_at + chrono::Duration::seconds(i64::try_from(n * 43 % 2_592_000).unwrap_or(0));
                            json!({
                                "tenant_id": format!("org_{:03}", n % 50),
                                "resource": format!("res_{}", n / 50 % 10),
                                "feature": format!("feat_{}", n / 500 % 5),
                                "quantity": 1 + n % 5,
                                "timestamp": at.to_rfc3339(),
                                "metadata": {"src": "bench", "run": "r1", "th": w, "seq": n, "user": format!("u{:03}", n % 1000)},
                            })
                        })
                        .collect();
                    let response = client
                        .post(format!("{base}/v1/meter/events"))
                        .header("x-api-key", ADMIN)
                        .json(&json!({ "events": events }))
                        .send()
                        .await?;
                    if response.status() != reqwest::StatusCode::CREATED {
                        bail!("ingest answered {}", response.status());
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }

    // 32 aggregates at once, each 30 days daily by tenant and resource.
    let uri = format!(
        "{base}/v1/meter/aggregates?window_type=daily&group_by=tenant_id,resource&start_date={}&end_date={}",
        start_at.to_rfc3339().replace('+', "%2B"),
        end.to_rfc3339().replace('+', "%2B"),
    );
    let readers: Vec<_> = (0..32)
        .map(|_| {
            let (client, uri) = (client.clone(), uri.clone());
            tokio::spawn(async move {
                let body = binary::get_json(&client, &uri, ADMIN).await?;
                let rows = body["aggregates"].as_array().map_or(0, Vec::len);
                Ok::<_, anyhow::Error>((rows, body["summary"]["total_events"].as_u64()))
            })
        })
        .collect();
    for reader in readers {
        let (rows, total) = reader.await??;
        assert_eq!(total, Some(60_000));
        assert!(rows > 14_000, "{rows} rows");
    }

    assert_under_limit(pid)
}

/// Prints the peak resident memory of process `pid` and fails when it reached the bound.
fn assert_under_limit(pid: u32) -> Result<()> {
    let peak = peak_rss_kib(pid)?;
    println!("peak RSS: {} MiB", peak / 1024);
    assert!(
        peak < LIMIT_KIB,
        "peak RSS {} MiB is over {} MiB",
        peak / 1024,
        LIMIT_KIB / 1024
    );
    Ok(())
}

/// Exporting a million stored events streams them: the server's peak memory stays under the same
/// bound, and every event arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_a_million_events_keeps_memory_under_150_mib() -> Result<()> {
    const EVENTS: u64 = 1_000_000;
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("export.db").display());
    // The store is filled with SQL inside SQLite, so the test spends its time on the export:
    // the schema first (opening the store migrates it), then a million rows in one statement.
    metering_store_sqlite::SqliteStore::connect(&db).await?;
    let path = dir.path().join("export.db");
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let conn = metering_store_sqlite::rusqlite::Connection::open(path)?;
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
             INSERT INTO events (id, tenant_id, resource, feature, qty_units, qty_nanos, ts,
                                 metadata, created_at)
             SELECT printf('e%07d', i), printf('org_%03d', i % 50), printf('res_%d', i / 50 % 10),
                    printf('feat_%d', i / 500 % 5), 1 + i % 5, (i % 3) * 250000000,
                    1790000000000000 + i * 1000000, printf('{\"user\":\"u%03d\"}', i % 1000),
                    1790000000000000 + i * 1000000
             FROM n",
            [EVENTS],
        )?;
        Ok(())
    })
    .await??;
    println!("filled in {:.1} s", started.elapsed().as_secs_f64());
    let (child, base) = binary::start(&db, ADMIN).await?;
    let pid = child.id().context("pid")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let before = peak_rss_kib(pid)?;

    for format in ["csv", "ndjson"] {
        let mut response = client
            .get(format!("{base}/v1/meter/events/export?format={format}"))
            .header("x-api-key", ADMIN)
            .send()
            .await?;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let (mut lines, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = response.chunk().await? {
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
        }
        let header = u64::from(format == "csv");
        assert_eq!(lines, EVENTS + header, "{format}: every event once");
        println!(
            "{format}: {} MiB exported, at {:.1} s",
            bytes / (1024 * 1024),
            started.elapsed().as_secs_f64()
        );
    }

    println!("peak RSS before the exports: {} MiB", before / 1024);
    assert_under_limit(pid)
}
