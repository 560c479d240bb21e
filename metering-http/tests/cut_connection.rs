//! A client connection cut mid-request, over TCP against the real server: a batch whose body
//! was never fully sent writes nothing, the server keeps serving, and the client's retry
//! (same ids) is stored exactly once. A connection cut after the request was sent, before
//! the answer was read, leaves the batch committed once; the retry is answered as duplicates.

mod binary;
mod raw_http;

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const ADMIN: &str = "mk_cut_admin_0123456789abcdef01";

fn batch(prefix: &str, n: usize) -> String {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}-{i}"), "tenant_id": "org", "resource": "api",
                   "feature": "call", "metadata": {"pad": "x".repeat(200)}})
        })
        .collect();
    json!({ "events": events }).to_string()
}

async fn count(client: &reqwest::Client, base: &str) -> Result<u64> {
    let page: Value = client
        .get(format!("{base}/v1/meter/events?page=1&page_size=1"))
        .header("x-api-key", ADMIN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    page["pagination"]["total"].as_u64().context("a total")
}

#[tokio::test]
async fn cut_connections_write_all_or_nothing_and_retries_count_once() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("cut.db").display());
    let (_server, base) = binary::start(&store, ADMIN).await?;
    let address = base.trim_start_matches("http://").to_owned();
    let client = reqwest::Client::new();

    // Cut mid-body: nothing of the batch is written.
    let body = batch("cut", 500);
    let stream = raw_http::post_events_partly(&address, ADMIN, &body, body.len() / 2).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        count(&client, &base).await?,
        0,
        "a half-sent batch writes nothing"
    );

    // The client retries the whole batch: stored once.
    let retry = client
        .post(format!("{base}/v1/meter/events"))
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(retry.status(), reqwest::StatusCode::CREATED);
    assert_eq!(count(&client, &base).await?, 500);

    // Cut after sending everything, before reading the answer: the batch commits once...
    let second = batch("sent", 300);
    let mut stream = raw_http::post_events_partly(&address, ADMIN, &second, second.len()).await?;
    // Wait for the first byte of the answer, then hang up without reading it.
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).await?;
    drop(stream);
    assert_eq!(count(&client, &base).await?, 800);
    // ...and the retry of a client that never saw the answer is all duplicates.
    let again: Value = client
        .post(format!("{base}/v1/meter/events"))
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(second)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(again["events_processed"], 0, "{again}");
    assert_eq!(again["duplicates"], 300, "{again}");
    assert_eq!(count(&client, &base).await?, 800);
    Ok(())
}
