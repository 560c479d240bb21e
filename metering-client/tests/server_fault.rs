//! The fault test: 20,000 events in batching mode while the real `metering-server` is
//! killed (SIGKILL) and restarted twice. Afterwards the server holds exactly 20,000 events:
//! nothing lost (retries and the spill queue), nothing counted twice (client-side ids).
//!
//! The server binary is `METERING_SERVER_BIN` when set, else `metering-server` next to this
//! test's target directory (built by `cargo test --workspace`), else it is built with
//! `cargo build -p metering-http --bin metering-server` into a directory of its own. When
//! none of that works the test prints `SKIPPED` with the reason and passes.

#![cfg(all(feature = "remote", feature = "spill"))]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use metering_client::{ClientConfig, MeteringClient, NewEvent};
use serde_json::Value;

const ADMIN_KEY: &str = "fault-test-admin-key-0123456789abcdef";
const EVENTS: usize = 20_000;

/// Finds or builds the server binary; `Err` says why it is unavailable.
fn server_binary() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("METERING_SERVER_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // <target>/<profile>/deps/server_fault-<hash>
    if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
        let candidate =
            profile_dir.join(format!("metering-server{}", std::env::consts::EXE_SUFFIX));
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    // The outer cargo holds the lock on this target directory, so build into another one.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace directory")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map_or_else(|| workspace.join("target"), Path::to_path_buf)
        .join("fault-test-server");
    println!(
        "building metering-server into {} (this takes a while)",
        target.display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "metering-http", "--bin", "metering-server"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build -p metering-http --bin metering-server` failed: {status}"
        ));
    }
    let built = target
        .join("debug")
        .join(format!("metering-server{}", std::env::consts::EXE_SUFFIX));
    if built.is_file() {
        Ok(built)
    } else {
        Err(format!("no binary at {}", built.display()))
    }
}

struct Server {
    bin: PathBuf,
    store: String,
    addr: SocketAddr,
    child: Option<Child>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.bin)
            .args([
                "--store",
                &self.store,
                "serve",
                "--bind",
                &self.addr.to_string(),
            ])
            .env("METERING_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        self.child = Some(child);
        let http = reqwest::Client::new();
        for _ in 0..300 {
            let health = http
                .get(format!("{}/v1/meter/health", self.url()))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if let Some(child) = &mut self.child {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("metering-server exited at start: {status}");
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("metering-server did not become healthy in 30 s")
    }

    /// SIGKILL: no graceful shutdown, in-flight requests die with the process.
    fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

async fn get_json(url: &str) -> anyhow::Result<Value> {
    let response = reqwest::Client::new()
        .get(url)
        .header("X-API-Key", ADMIN_KEY)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "GET {url}: {status} {body}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_is_lost_or_doubled_while_the_server_is_killed_twice() -> anyhow::Result<()> {
    let bin = match tokio::task::spawn_blocking(server_binary).await? {
        Ok(bin) => bin,
        Err(reason) => {
            println!("SKIPPED server fault test: {reason}");
            return Ok(());
        }
    };
    let dir = tempfile::tempdir()?;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut server = Server {
        bin,
        store: format!("sqlite://{}", dir.path().join("m.db").display()),
        addr,
        child: None,
    };
    server.start().await?;

    let client = MeteringClient::connect(
        ClientConfig::default()
            .with_api_url(server.url())
            .with_api_key(ADMIN_KEY)
            .with_batch_size(500)
            .with_batch_interval(Duration::from_millis(50))
            .with_retry_delays(Duration::from_millis(50), Duration::from_millis(400))
            .with_request_timeout(Duration::from_secs(5))
            .with_connect_timeout(Duration::from_millis(500))
            .with_replay_interval(Duration::from_millis(200))
            .with_spill_path(dir.path().join("spill.db")),
    )
    .await?;

    // 20 rounds of 1,000 events, 100 ms apart. The server dies just before round 5 is
    // recorded, and a moment after round 12 is (while its batches are in flight), and
    // comes back half a second later each time: batches fail, are retried, spilled and
    // replayed.
    for round in 0..20 {
        if round == 5 {
            server.kill()?;
        }
        for i in 0..EVENTS / 20 {
            let tenant = format!("org_{:02}", (round * 1000 + i) % 20);
            client.record(NewEvent::new(tenant, "api", "call"));
        }
        if round == 12 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            server.kill()?;
        }
        if round == 5 || round == 12 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            server.start().await?;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let mut report = client.flush().await;
    for _ in 0..50 {
        if report.is_complete() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = client.flush().await;
    }
    let report = client.shutdown().await;
    println!("client counters after the faults: {:?}", report.stats);
    assert!(report.is_complete(), "{report:?}");
    // The faults were met: deliveries failed and were retried.
    assert!(report.stats.retried > 0, "{report:?}");
    assert_eq!(report.stats.dropped, 0);
    assert_eq!(report.stats.rejected, 0);

    let day = chrono::Duration::days(1);
    let now = metering_core::Clock::now(&metering_core::SystemClock);
    let format = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let aggregates = get_json(&format!(
        "{}/v1/meter/aggregates?window_type=daily&start_date={}&end_date={}&group_by=",
        server.url(),
        format(now - day),
        format(now + day)
    ))
    .await?;
    assert_eq!(
        aggregates["summary"]["total_events"].as_u64(),
        Some(EVENTS as u64),
        "{}",
        aggregates["summary"]
    );
    let listing = get_json(&format!("{}/v1/meter/events?page_size=1", server.url())).await?;
    assert_eq!(
        listing["pagination"]["total"].as_u64(),
        Some(EVENTS as u64),
        "{}",
        listing["pagination"]
    );
    Ok(())
}
