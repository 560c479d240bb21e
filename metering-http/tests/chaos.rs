//! Chaos: two `metering-server` processes on one private PostgreSQL and one private Redis,
//! with clients ingesting batches (client ids, retried until acknowledged) and racing
//! consumes against small limits, while each instance is killed (SIGKILL) and restarted,
//! PostgreSQL restarts, Redis is killed for 5 s and comes back empty, and a connection is
//! cut mid-request. Afterwards every acknowledged event is stored exactly once, the store
//! holds exactly what was sent, aggregates equal a recount, no limit was exceeded, quota
//! usage (through the Redis counters) equals the store, and no server log holds a panic.
//! About a minute; prints how many requests failed over and how long each instance was
//! down.
#![cfg(all(feature = "postgres", feature = "redis"))]

mod raw_http;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use metering_testkit::private::{PrivatePostgres, PrivateRedis};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary: `METERING_SERVER_BIN` when set (the test command points it at the
/// release build), else the test build of it.
fn bin() -> String {
    std::env::var("METERING_SERVER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_metering-server").to_owned())
}
const ADMIN: &str = "mk_chaos_admin_0123456789abcdef0123";
const TENANTS: usize = 5;
const LIMIT: usize = 40;
const CHAOS: Duration = Duration::from_secs(45);

/// One server instance on a fixed port, restarted in place.
struct Instance {
    name: &'static str,
    port: u16,
    store: String,
    cache: String,
    logs: PathBuf,
    child: Option<Child>,
    started: usize,
}

impl Instance {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) -> Result<()> {
        self.started += 1;
        let log = std::fs::File::create(
            self.logs
                .join(format!("{}-{}.log", self.name, self.started)),
        )?;
        let mut child = Command::new(bin())
            .args([
                "--store",
                &self.store,
                "--quota-cache",
                &self.cache,
                "serve",
            ])
            .args(["--bind", &format!("127.0.0.1:{}", self.port)])
            .args(["--auth-failures-per-minute", "0"])
            .env("METERING_ADMIN_KEY", ADMIN)
            .env("RUST_LOG", "warn")
            .env_remove("METERING_STORE")
            .env_remove("DATABASE_URL")
            .env_remove("METERING_QUOTA_CACHE")
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("spawning metering-server")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("metering-server listening on ") {
                    return Ok(());
                }
            }
            bail!("{} exited before listening", self.name)
        })
        .await
        .context("the server did not start in time")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        Ok(())
    }

    async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.start_kill()?;
            child.wait().await?;
        }
        Ok(())
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Ids of acknowledged ingested events.
    acked: Mutex<BTreeSet<String>>,
    /// Ids of admitted consumes.
    admitted: Mutex<BTreeSet<String>>,
    /// Requests that failed (an error answer or no answer) and were retried.
    failovers: AtomicU64,
}

/// POSTs `body` to `path` until an instance answers 2xx with JSON, moving to the next
/// instance after each failure (counted); the answer.
async fn post_until_answered(
    client: &reqwest::Client,
    urls: &[String],
    target: &mut usize,
    path: &str,
    body: &Value,
    seen: &Seen,
) -> Value {
    loop {
        let answer = client
            .post(format!("{}{path}", urls[*target]))
            .header("x-api-key", ADMIN)
            .json(body)
            .send()
            .await;
        if let Ok(answer) = answer {
            if answer.status().is_success() {
                if let Ok(json) = answer.json::<Value>().await {
                    return json;
                }
            }
        }
        seen.failovers.fetch_add(1, Ordering::Relaxed);
        *target = (*target + 1) % urls.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn ingest_client(n: usize, urls: Vec<String>, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let client = client();
    let mut target = n % urls.len();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<String> = (0..20).map(|i| format!("c{n}-{seq}-{i}")).collect();
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"id": id, "tenant_id": format!("t{}", seq % TENANTS), "resource": "api",
                       "feature": "call", "quantity": "1.5", "metadata": {"client": n}})
            })
            .collect();
        let body = json!({ "events": events });
        post_until_answered(
            &client,
            &urls,
            &mut target,
            "/v1/meter/events",
            &body,
            &seen,
        )
        .await;
        seen.acked.lock().expect("lock").extend(ids);
        seq += 1;
    }
}

async fn consume_client(n: usize, urls: Vec<String>, stop: Arc<AtomicBool>, seen: Arc<Seen>) {
    let client = client();
    let mut target = n % urls.len();
    let mut seq = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("q{n}-{seq}");
        let body = json!({"tenant_id": format!("t{}", seq % TENANTS), "resource": "api",
                          "feature": "limited", "consume": true, "id": id});
        let decision = post_until_answered(
            &client,
            &urls,
            &mut target,
            "/v1/meter/validate",
            &body,
            &seen,
        )
        .await;
        if decision["allowed"] == json!(true) {
            seen.admitted.lock().expect("lock").insert(id);
        }
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `url` is healthy; how long that took.
async fn until_healthy(url: &str) -> Duration {
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        let answer = client.get(format!("{url}/v1/meter/health")).send().await;
        if answer.is_ok_and(|a| a.status().is_success()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{url} stayed down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a batch's head and half its body, then hangs up.
async fn cut_mid_request(url: &str) -> Result<()> {
    let address = url.trim_start_matches("http://");
    let body = json!({"events": (0..50).map(|i| json!({"id": format!("cut-{i}"),
        "tenant_id": "t0", "resource": "api", "feature": "call"})).collect::<Vec<_>>()})
    .to_string();
    drop(raw_http::post_events_partly(address, ADMIN, &body, body.len() / 2).await?);
    Ok(())
}

async fn all_events(url: &str) -> Result<Vec<Value>> {
    let client = reqwest::Client::new();
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut uri = format!("{url}/v1/meter/events?page_size=1000");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(uri)
            .header("x-api-key", ADMIN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        events.extend(page["events"].as_array().context("events")?.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(events),
        }
    }
}

/// Exact decimal text of `nanos` billionths.
fn decimal(nanos: u128) -> String {
    let (units, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if frac == 0 {
        units.to_string()
    } else {
        format!("{units}.{frac:09}")
            .trim_end_matches('0')
            .to_owned()
    }
}

fn nanos(value: &Value) -> u128 {
    let text = value.to_string();
    let text = text.trim_matches('"');
    let (units, frac) = text.split_once('.').unwrap_or((text, ""));
    units.parse::<u128>().expect("units") * 1_000_000_000
        + format!("{frac:0<9}").parse::<u128>().expect("fraction")
}

fn panics_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("logs").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if text.contains("panicked") {
            found.push(format!("{}:\n{text}", entry.path().display()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_under_chaos_lose_and_double_nothing() -> Result<()> {
    let (Some(pg), Some(mut redis)) = (PrivatePostgres::start(), PrivateRedis::start()) else {
        return Ok(());
    };
    let logs = tempfile::tempdir()?;
    let free_port = || -> Result<u16> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port())
    };
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        instances.push(Instance {
            name,
            port: free_port()?,
            store: format!("{}?acquire_timeout_secs=3", pg.url()),
            cache: redis.url(),
            logs: logs.path().to_owned(),
            child: None,
            started: 0,
        });
    }
    for instance in &mut instances {
        instance.start().await?;
    }
    let urls: Vec<String> = instances.iter().map(Instance::url).collect();
    let admin = reqwest::Client::new();
    for t in 0..TENANTS {
        let answer = admin
            .put(format!("{}/v1/meter/quotas", urls[0]))
            .header("x-api-key", ADMIN)
            .json(
                &json!({"tenant_id": format!("t{t}"), "feature": "limited", "limit": LIMIT,
                          "period": "monthly"}),
            )
            .send()
            .await?;
        assert!(
            answer.status().is_success(),
            "quota: {}",
            answer.text().await?
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Seen::default());
    let mut clients = Vec::new();
    for n in 0..4 {
        clients.push(tokio::spawn(ingest_client(
            n,
            urls.clone(),
            stop.clone(),
            seen.clone(),
        )));
    }
    for n in 0..2 {
        clients.push(tokio::spawn(consume_client(
            n,
            urls.clone(),
            stop.clone(),
            seen.clone(),
        )));
    }

    let began = Instant::now();
    let at = |secs: u64| async move {
        let due = began + Duration::from_secs(secs);
        tokio::time::sleep_until(due.into()).await;
    };
    let mut downtime = BTreeMap::new();
    for (i, secs) in [(0usize, 4u64), (1, 12)] {
        at(secs).await;
        let killed = Instant::now();
        instances[i].kill().await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        instances[i].start().await?;
        until_healthy(&urls[i]).await;
        downtime.insert(instances[i].name, killed.elapsed());
    }
    at(20).await;
    let pg_restart = Instant::now();
    let pg = tokio::task::spawn_blocking(move || {
        pg.pg_ctl(&["-m", "fast", "restart"]);
        pg
    })
    .await?;
    let pg_restart = pg_restart.elapsed();
    at(28).await;
    redis.kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.start_again();
    at(38).await;
    cut_mid_request(&urls[0]).await?;
    at(CHAOS.as_secs()).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .context("a client kept failing after the chaos ended")??;
    }

    // Every acknowledged event is stored, exactly once, and nothing else.
    let events = all_events(&urls[1]).await?;
    let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), distinct.len(), "an event is stored twice");
    let acked = seen.acked.lock().expect("lock").clone();
    let admitted = seen.admitted.lock().expect("lock").clone();
    let stored_ingest: BTreeSet<String> = distinct
        .iter()
        .filter(|id| id.starts_with('c'))
        .map(|id| (*id).to_owned())
        .collect();
    let stored_consumes: BTreeSet<String> = distinct
        .iter()
        .filter(|id| id.starts_with('q'))
        .map(|id| (*id).to_owned())
        .collect();
    assert_eq!(
        stored_ingest, acked,
        "the store holds exactly the acknowledged batches"
    );
    assert_eq!(
        stored_consumes, admitted,
        "the store holds exactly the admitted consumes"
    );

    // No limit was exceeded; aggregates and quota usage equal a recount.
    let mut recount: BTreeMap<(String, String), (u128, u64)> = BTreeMap::new();
    for e in &events {
        let key = (
            e["tenant_id"].as_str().context("tenant")?.to_owned(),
            e["feature"].as_str().context("feature")?.to_owned(),
        );
        let cell = recount.entry(key).or_default();
        cell.0 += nanos(&e["quantity"]);
        cell.1 += 1;
    }
    let aggregates: Value = admin
        .get(format!(
            "{}/v1/meter/aggregates?window_type=monthly&start_date=2000-01-01&end_date=2100-01-01&group_by=tenant_id,feature",
            urls[0]
        ))
        .header("x-api-key", ADMIN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut summed: BTreeMap<(String, String), (u128, u64)> = BTreeMap::new();
    for row in aggregates["aggregates"].as_array().context("rows")? {
        let key = (
            row["tenant_id"].as_str().context("tenant")?.to_owned(),
            row["feature"].as_str().context("feature")?.to_owned(),
        );
        let cell = summed.entry(key).or_default();
        cell.0 += nanos(&row["total_quantity"]);
        cell.1 += row["event_count"].as_u64().context("count")?;
    }
    assert_eq!(summed, recount, "aggregates equal a recount");
    for t in 0..TENANTS {
        let tenant = format!("t{t}");
        let used = recount
            .get(&(tenant.clone(), "limited".to_owned()))
            .map_or(0, |c| c.1);
        assert!(
            used <= LIMIT as u64,
            "{tenant}: {used} consumed over the limit {LIMIT}"
        );
        for url in &urls {
            let d: Value = admin
                .post(format!("{url}/v1/meter/validate"))
                .header("x-api-key", ADMIN)
                .json(&json!({"tenant_id": tenant, "feature": "limited"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            assert_eq!(
                d["current_usage"].to_string(),
                decimal(u128::from(used) * 1_000_000_000),
                "{tenant} through {url}: quota usage equals the store"
            );
        }
    }
    let panics = panics_in(logs.path());
    assert!(
        panics.is_empty(),
        "a server panicked:\n{}",
        panics.join("\n")
    );
    println!(
        "chaos ({} build): {} events and {} consumes stored; {} requests failed over; down: {}; \
         PostgreSQL restart took {:.1} s",
        if std::env::var_os("METERING_SERVER_BIN").is_some() {
            "given"
        } else {
            "test"
        },
        stored_ingest.len(),
        stored_consumes.len(),
        seen.failovers.load(Ordering::Relaxed),
        downtime
            .iter()
            .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        pg_restart.as_secs_f64()
    );
    drop(pg);
    Ok(())
}
