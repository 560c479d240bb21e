//! Quota alerts sent to a real receiver on 127.0.0.1: thresholds (percent and absolute) and
//! `quota.exceeded` once each, signed as Standard Webhooks (checked in Rust and with the
//! Python snippet of ENDPOINTS.md), retried until the receiver answers 200, an endpoint that
//! answers 410 disabled, pending messages sent after a SIGKILL and a restart, and one message
//! for a threshold crossed by concurrent ingest through two servers on one PostgreSQL store.

#![cfg(all(unix, feature = "cli", feature = "sqlite"))]

mod binary;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use metering_core::{Clock, MemoryStore, Metering, NewApiKey, Role, SystemClock, WebhookSecret};
use metering_http::{AppState, ServerConfig, WebhookConfig};
use serde_json::{Value, json};

const ADMIN: &str = "mk_alerts_admin_secret_0123456789abcdef";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    fn payload(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON payload")
    }
}

/// A webhook receiver: answers `status` (after failing the first `fail_first` requests with
/// 500) and keeps every request.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start(status: u16, fail_first: usize) -> (Receiver, String) {
        let receiver = Receiver::default();
        receiver.status.store(status, Ordering::SeqCst);
        receiver.fail_first.store(fail_first, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let addr = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, format!("http://{addr}/hooks"))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Requests per message id.
    fn per_message(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.got() {
            *counts.entry(r.id).or_default() += 1;
        }
        counts
    }

    /// Waits until `done` holds for what was received (at most 30 s).
    async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if done(&self.got()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("timed out waiting for {what}; got {:?}", self.got())
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.got.lock().expect("lock").push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        body: body.to_vec(),
    });
    let failing = receiver
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::from_u16(receiver.status.load(Ordering::SeqCst)).expect("a status")
}

/// Fast retries, so a test sees several attempts in a second or two.
fn fast() -> WebhookConfig {
    WebhookConfig::default()
        .with_retry(Duration::from_millis(100), Duration::from_millis(200))
        .with_poll_interval(Duration::from_millis(20))
        .with_timeout(Duration::from_secs(5))
}

/// A server on the memory store, in this process; its base URL.
async fn server() -> String {
    server_with(fast()).await
}

/// [`server`] with these webhook settings.
async fn server_with(webhooks: WebhookConfig) -> String {
    let engine = Metering::builder(MemoryStore::new()).build();
    engine
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("admin key");
    let state = AppState::new(engine, ServerConfig::default().with_webhooks(webhooks));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let addr: SocketAddr = listener.local_addr().expect("an address");
    tokio::spawn(metering_http::serve(
        listener,
        state,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> Result<(u16, Value)> {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url).header("x-api-key", ADMIN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?
    };
    Ok((status, value))
}

async fn post(base: &str, path: &str, body: Value) -> Result<Value> {
    let (status, answer) =
        call(reqwest::Method::POST, &format!("{base}{path}"), Some(body)).await?;
    if !(200..300).contains(&status) {
        bail!("POST {path}: {status} {answer}");
    }
    Ok(answer)
}

async fn put(base: &str, path: &str, body: Value) -> Result<Value> {
    let (status, answer) = call(reqwest::Method::PUT, &format!("{base}{path}"), Some(body)).await?;
    if status != 200 {
        bail!("PUT {path}: {status} {answer}");
    }
    Ok(answer)
}

async fn get(base: &str, path: &str) -> Result<Value> {
    let (status, answer) = call(reqwest::Method::GET, &format!("{base}{path}"), None).await?;
    if status != 200 {
        bail!("GET {path}: {status} {answer}");
    }
    Ok(answer)
}

/// Registers `url`; the endpoint's id and secret.
async fn register(base: &str, url: &str) -> Result<(String, WebhookSecret)> {
    let created = post(base, "/v1/meter/webhooks", json!({"url": url})).await?;
    let secret = WebhookSecret::parse(created["secret"].as_str().context("secret")?)?;
    Ok((created["id"].as_str().context("id")?.to_owned(), secret))
}

async fn ingest(base: &str, tenant: &str, quantity: &str) -> Result<()> {
    let body = format!(
        r#"{{"tenant_id": "{tenant}", "resource": "api", "feature": "calls", "quantity": {quantity}}}"#
    );
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/meter/events"))
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    if response.status() != 201 {
        bail!("ingest: {} {}", response.status(), response.text().await?);
    }
    Ok(())
}

/// Checks a request's signature with the Python snippet of ENDPOINTS.md.
fn python_verifies(secret: &WebhookSecret, r: &Received) -> Result<bool> {
    let reference = include_str!("../ENDPOINTS.md");
    let start = reference
        .find("```python\n")
        .context("the Python snippet")?
        + "```python\n".len();
    let end = start + reference[start..].find("```").context("its end")?;
    assert!(
        include_str!("../../README.md").contains(&reference[start..end]),
        "the README shows the same snippet"
    );
    let script = format!(
        "{}\nimport sys\nheaders = {{'webhook-id': sys.argv[2], 'webhook-timestamp': sys.argv[3], \
         'webhook-signature': sys.argv[4]}}\nprint(verify(sys.argv[1], headers, sys.stdin.buffer.read()))\n",
        &reference[start..end]
    );
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            &script,
            secret.as_str(),
            &r.id,
            &r.timestamp.to_string(),
            &r.signature,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("python3 (install it to run this test)")?;
    use std::io::Write as _;
    child.stdin.take().context("stdin")?.write_all(&r.body)?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_and_refusals_are_sent_once_signed_and_retried() -> Result<()> {
    let base = server().await;
    // The first two requests fail: the first message needs three attempts.
    let (receiver, url) = Receiver::start(200, 2).await;
    let (hook, secret) = register(&base, &url).await?;
    put(
        &base,
        "/v1/meter/quotas",
        json!({"tenant_id": "org_1", "feature": "calls",
        "limit": 100, "period": "monthly", "thresholds": [{"percent": 50}, {"usage": 80}]}),
    )
    .await?;
    ingest(&base, "org_1", "50").await?;
    receiver
        .wait_for("the 50% threshold after retries", |got| got.len() >= 3)
        .await?;
    ingest(&base, "org_1", "30").await?;
    ingest(&base, "org_1", "10").await?;
    let refused = post(
        &base,
        "/v1/meter/validate",
        json!({"tenant_id": "org_1",
        "feature": "calls", "quantity": 11}),
    )
    .await?;
    assert_eq!(refused["allowed"], false, "{refused}");
    post(
        &base,
        "/v1/meter/validate",
        json!({"tenant_id": "org_1", "feature": "calls",
        "quantity": 12}),
    )
    .await?;
    receiver
        .wait_for("three messages", |got| {
            let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
            ids.len() >= 3
        })
        .await?;
    // Anything repeated would arrive within a few polls.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let per_message = receiver.per_message();
    assert_eq!(per_message.len(), 3, "{per_message:?}");
    let got = receiver.got();
    let first = &got[0];
    assert_eq!(per_message[&first.id], 3, "failed twice, then delivered");
    assert!(
        per_message.values().filter(|n| **n == 1).count() == 2,
        "{per_message:?}"
    );
    let mut seen = Vec::new();
    for r in &got {
        assert!(
            secret.verify(&r.id, r.timestamp, &r.body, &r.signature, SystemClock.now()),
            "signature of {}",
            r.id
        );
        let payload = r.payload();
        assert_eq!(payload["id"], r.id.as_str());
        let keys: Vec<&str> = payload
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["data", "id", "timestamp", "type"]);
        let text = String::from_utf8_lossy(&r.body);
        assert!(!text.contains("whsec_") && !text.contains(ADMIN) && !text.contains("mk_"));
        if !seen.contains(&r.id) {
            seen.push(r.id.clone());
            let data = &payload["data"];
            assert_eq!(data["tenant_id"], "org_1");
            assert_eq!(data["feature"], "calls");
            assert_eq!(data["limit"], 100);
        }
    }
    assert!(
        python_verifies(&secret, first)?,
        "the Python snippet accepts the signature"
    );
    let mut tampered = first.clone();
    tampered.body.push(b' ');
    assert!(
        !python_verifies(&secret, &tampered)?,
        "and refuses a changed body"
    );

    // In any order: the endpoint receives up to four messages at once.
    let mut summary: Vec<String> = seen
        .iter()
        .map(|id| {
            let p = got.iter().find(|r| &r.id == id).expect("sent").payload();
            json!([p["type"], p["data"]["threshold"], p["data"]["usage"]]).to_string()
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        [
            r#"["quota.exceeded",null,90]"#,
            r#"["quota.threshold",{"percent":50},50]"#,
            r#"["quota.threshold",{"usage":80},80]"#,
        ]
    );

    let listed = get(&base, &format!("/v1/meter/webhooks/{hook}/deliveries")).await?;
    let deliveries = listed["deliveries"].as_array().context("deliveries")?;
    assert_eq!(deliveries.len(), 3, "{listed}");
    for d in deliveries {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["last_status_code"], 200);
        assert!(d["delivered_at"].is_string());
        assert!(d.get("payload").is_none());
    }
    let oldest = &deliveries[2];
    assert_eq!(oldest["message_id"], first.id.as_str());
    assert_eq!(oldest["attempts"], 3);

    // A manual retry sends the same message again.
    let retried = post(
        &base,
        &format!(
            "/v1/meter/webhooks/{hook}/deliveries/{}/retry",
            oldest["id"].as_str().context("id")?
        ),
        json!({}),
    )
    .await?;
    assert_eq!(retried["status"], "pending");
    receiver
        .wait_for("the retried message", |got| {
            got.iter().filter(|r| r.id == first.id).count() == 4
        })
        .await?;
    let (status, _) = call(
        reqwest::Method::POST,
        &format!(
            "{base}/v1/meter/webhooks/{hook}/deliveries/0193a1b2-0000-7000-8000-000000000000/retry"
        ),
        None,
    )
    .await?;
    assert_eq!(status, 404);

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(r#"metering_webhook_attempts_total{outcome="delivered"} 4"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"metering_webhook_attempts_total{outcome="retry"} 2"#));
    Ok(())
}

/// The delivery loop deletes finished deliveries once they are older than the retention;
/// pending ones stay, however old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deliveries_are_deleted_after_the_retention() -> Result<()> {
    let base = server_with(
        fast()
            .with_retention(Some(Duration::from_secs(1)))
            .with_prune_interval(Duration::from_millis(100))
            .with_retry(Duration::from_secs(60), Duration::from_secs(60)),
    )
    .await;
    let (live, live_url) = Receiver::start(200, 0).await;
    let (down, down_url) = Receiver::start(503, 0).await;
    let (live_hook, _) = register(&base, &live_url).await?;
    let (down_hook, _) = register(&base, &down_url).await?;
    put(
        &base,
        "/v1/meter/quotas",
        json!({"tenant_id": "*", "feature": "calls", "limit": 10,
        "period": "daily", "thresholds": [{"percent": 10}]}),
    )
    .await?;
    ingest(&base, "org_a", "1").await?;
    live.wait_for("the message", |got| got.len() == 1).await?;
    down.wait_for("one attempt", |got| got.len() == 1).await?;
    let deliveries = |hook: String| {
        let base = base.clone();
        async move {
            let listed = get(&base, &format!("/v1/meter/webhooks/{hook}/deliveries")).await?;
            let statuses: Vec<String> = listed["deliveries"]
                .as_array()
                .context("deliveries")?
                .iter()
                .map(|d| d["status"].as_str().unwrap_or_default().to_owned())
                .collect();
            anyhow::Ok(statuses)
        }
    };
    let started = Instant::now();
    while !deliveries(live_hook.clone()).await?.is_empty() {
        if started.elapsed() > Duration::from_secs(15) {
            bail!("the delivered message was not deleted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        deliveries(down_hook.clone()).await?,
        ["pending"],
        "a pending delivery stays"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_answers_410_is_disabled() -> Result<()> {
    let base = server().await;
    let (gone, gone_url) = Receiver::start(410, 0).await;
    let (live, live_url) = Receiver::start(200, 0).await;
    let (gone_hook, _) = register(&base, &gone_url).await?;
    register(&base, &live_url).await?;
    put(
        &base,
        "/v1/meter/quotas",
        json!({"tenant_id": "*", "feature": "calls", "limit": 10,
        "period": "daily", "thresholds": [{"percent": 10}, {"percent": 20}]}),
    )
    .await?;
    ingest(&base, "org_a", "1").await?;
    gone.wait_for("one attempt", |got| !got.is_empty()).await?;
    live.wait_for("the first message", |got| !got.is_empty())
        .await?;
    let started = Instant::now();
    loop {
        let hooks = get(&base, "/v1/meter/webhooks").await?;
        let disabled = hooks["webhooks"]
            .as_array()
            .context("webhooks")?
            .iter()
            .any(|h| h["id"] == gone_hook.as_str() && h["disabled_at"].is_string());
        if disabled {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the endpoint was not disabled: {hooks}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ingest(&base, "org_a", "1").await?;
    live.wait_for("the second message", |got| got.len() == 2)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.got().len(), 1, "a disabled endpoint gets nothing more");
    let listed = get(&base, &format!("/v1/meter/webhooks/{gone_hook}/deliveries")).await?;
    assert_eq!(listed["deliveries"][0]["status"], "failed", "{listed}");
    assert_eq!(listed["deliveries"][0]["last_status_code"], 410);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_messages_are_sent_after_sigkill_and_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("alerts.db").display());
    // A delivery in flight at the kill stays leased for 2 x 1 s + 2 s.
    let fast = [
        "--webhook-retry-base-ms",
        "100",
        "--webhook-retry-max-ms",
        "200",
        "--webhook-poll-ms",
        "20",
        "--webhook-timeout-ms",
        "1000",
    ];
    let (mut child, base) = binary::start_with(&db, ADMIN, &fast).await?;
    // Down at first: every attempt fails, so the messages stay pending.
    let (receiver, url) = Receiver::start(503, 0).await;
    register(&base, &url).await?;
    put(
        &base,
        "/v1/meter/quotas",
        json!({"tenant_id": "org_k", "feature": "calls",
        "limit": 10, "period": "monthly", "thresholds": [{"percent": 50}, {"usage": 7}]}),
    )
    .await?;
    ingest(&base, "org_k", "5").await?;
    ingest(&base, "org_k", "5").await?;
    receiver
        .wait_for("failed attempts at all three", |got| {
            let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
            ids.len() == 3
        })
        .await?;
    child.kill().await?; // SIGKILL
    child.wait().await?;
    receiver.status.store(200, Ordering::SeqCst);
    let before = receiver.got().len();

    let (mut child, base) = binary::start_with(&db, ADMIN, &fast).await?;
    receiver
        .wait_for("each message delivered after the restart", |got| {
            let delivered: std::collections::BTreeSet<&str> =
                got[before..].iter().map(|r| r.id.as_str()).collect();
            delivered.len() == 3
        })
        .await?;
    let hooks = get(&base, "/v1/meter/webhooks").await?;
    let hook = hooks["webhooks"][0]["id"]
        .as_str()
        .context("hook")?
        .to_owned();
    let started = Instant::now();
    loop {
        let listed = get(&base, &format!("/v1/meter/webhooks/{hook}/deliveries")).await?;
        let deliveries = listed["deliveries"].as_array().context("deliveries")?;
        assert_eq!(deliveries.len(), 3, "{listed}");
        if deliveries.iter().all(|d| d["status"] == "delivered") {
            assert!(deliveries.iter().all(|d| d["attempts"].as_u64() >= Some(2)));
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("not all delivered: {listed}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().await?;
    Ok(())
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_postgres_send_a_crossed_threshold_once() -> Result<()> {
    let Some(pg) = metering_testkit::postgres_url() else {
        return Ok(());
    };
    let schema = format!("alerts_{}", uuid::Uuid::now_v7().simple());
    let sep = if pg.contains('?') { '&' } else { '?' };
    let store = format!("{pg}{sep}schema={schema}");
    let fast = ["--webhook-poll-ms", "20", "--lookup-cache-ms", "0"];
    let (mut a, base_a) = binary::start_with(&store, ADMIN, &fast).await?;
    let (mut b, base_b) = binary::start_with(&store, ADMIN, &fast).await?;
    let (receiver, url) = Receiver::start(200, 0).await;
    let (hook, _) = register(&base_a, &url).await?;
    put(
        &base_a,
        "/v1/meter/quotas",
        json!({"tenant_id": "org_pg", "feature": "calls",
        "limit": 1000, "period": "monthly", "thresholds": [{"percent": 50}, {"usage": 900}]}),
    )
    .await?;
    // Both servers must know of the endpoint before the race.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let base = if i % 2 == 0 {
            base_a.clone()
        } else {
            base_b.clone()
        };
        tasks.push(tokio::spawn(
            async move { ingest(&base, "org_pg", "5").await },
        ));
    }
    for task in tasks {
        task.await??;
    }
    receiver
        .wait_for("two thresholds and the limit", |got| got.len() >= 3)
        .await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let per_message = receiver.per_message();
    let kinds: Vec<(Value, Value)> = per_message
        .keys()
        .map(|id| {
            let p = receiver
                .got()
                .into_iter()
                .find(|r| &r.id == id)
                .expect("sent")
                .payload();
            (p["type"].clone(), p["data"]["threshold"].clone())
        })
        .collect();
    assert_eq!(per_message.len(), 3, "{per_message:?} {kinds:?}");
    assert!(per_message.values().all(|n| *n == 1), "{per_message:?}");
    let listed = get(&base_b, &format!("/v1/meter/webhooks/{hook}/deliveries")).await?;
    assert_eq!(
        listed["deliveries"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    a.kill().await?;
    b.kill().await?;
    let pool = metering_store_postgres::sqlx::PgPool::connect(&pg).await?;
    metering_store_postgres::sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&pool)
        .await?;
    Ok(())
}
