//! Runs the real `metering-server` binary on a store URL, with the in-memory quota cache and a
//! known admin key, for the tests that need a process of its own (signals, memory).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_metering-server");

/// Starts the server on `store` with `admin` as its admin key and the environment's settings
/// for it cleared; returns the process and its base URL once it listens.
#[allow(dead_code)] // Not every test binary that includes this module starts it plainly.
pub(crate) async fn start(store: &str, admin: &str) -> Result<(Child, String)> {
    start_with(store, admin, &[]).await
}

/// [`start`] with more `serve` options.
pub(crate) async fn start_with(
    store: &str,
    admin: &str,
    serve_args: &[&str],
) -> Result<(Child, String)> {
    let mut child = Command::new(BIN)
        .args(["--store", store, "--quota-cache", "memory://"])
        .args(["serve", "--bind", "127.0.0.1:0"])
        .args(serve_args)
        .env_remove("METERING_STORE")
        .env_remove("DATABASE_URL")
        .env_remove("METERING_QUOTA_CACHE")
        .env_remove("REDIS_URL")
        .env_remove("METERING_CACHE_MIB")
        .env_remove("METERING_MAX_CONCURRENT_READS")
        .env_remove("METERING_AUTH_FAILURES_PER_MINUTE")
        .env("METERING_ADMIN_KEY", admin)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawning metering-server")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(address) = line.strip_prefix("metering-server listening on ") {
                return Ok::<_, anyhow::Error>(address.trim().to_owned());
            }
        }
        bail!("the server exited before listening")
    })
    .await
    .context("the server did not start in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, base))
}

/// GETs `url` with `key`; the answer must be a 2xx with a JSON body.
#[allow(dead_code)] // Not every test binary that includes this module reads JSON with it.
pub(crate) async fn get_json(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> Result<serde_json::Value> {
    Ok(client
        .get(url)
        .header("x-api-key", key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}
