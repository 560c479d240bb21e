//! Graceful shutdown of the real binary: SIGTERM during a stream of concurrent single-event
//! ingests on SQLite. Every acknowledged (2xx) event must be stored after a restart, and the
//! process must exit 0.

#![cfg(all(unix, feature = "cli", feature = "sqlite"))]

mod binary;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;

const ADMIN: &str = "mk_shutdown_admin_secret_0123456789abcdef";

/// Every stored event id, walking the cursor pages.
async fn stored_ids(client: &reqwest::Client, base: &str) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/meter/events?page_size=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = binary::get_json(client, &url, ADMIN).await?;
        for event in page["events"].as_array().context("events")? {
            ids.insert(event["id"].as_str().context("id")?.to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(ids),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_ingest_keeps_every_acknowledged_event() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("shutdown.db").display());
    let (mut child, base) = binary::start(&db, ADMIN).await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let client = client.clone();
            let base = base.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut failures = 0_u32;
                // Bounded: at most 5,000 requests per writer, and it stops on the flag or
                // after the server goes away.
                for n in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let id = format!("w{w}-{n}");
                    let body = json!({"id": id, "tenant_id": format!("org_{w}"), "resource": "api", "feature": "call"});
                    match client
                        .post(format!("{base}/v1/meter/events"))
                        .header("x-api-key", ADMIN)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => acknowledged.push(id),
                        Ok(_) | Err(_) => {
                            failures += 1;
                            if failures > 20 {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let pid = child.id().context("the server's pid")?;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .context("the server did not stop within 30 s of SIGTERM")??;
    stop.store(true, Ordering::Relaxed);
    assert!(exit.success(), "exit status {exit}");

    let mut acknowledged = BTreeSet::new();
    for writer in writers {
        acknowledged.extend(writer.await?);
    }
    assert!(
        acknowledged.len() > 100,
        "too few events were acknowledged to test anything: {}",
        acknowledged.len()
    );

    let (restarted, base) = binary::start(&db, ADMIN).await?;
    let stored = stored_ids(&client, &base).await?;
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events were lost, e.g. {:?}",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
    drop(restarted);
    Ok(())
}
