//! No secret leaves the server: API keys (right or wrong), and the password in a database
//! URL, never appear in its logs, in `/metrics`, in error bodies or in the OpenAPI
//! document; also when the database cannot be reached. Runs the real binary on PostgreSQL
//! with a password in its URL (the test server trusts local connections, so any password
//! connects).
#![cfg(feature = "postgres")]

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_metering-server");
const ADMIN: &str = "mk_secrets_admin_a1b2c3d4e5f60718293a";
const PASSWORD: &str = "pw-Secret-7f3a9c";

/// `url` with [`PASSWORD`] as its password (and `postgres` as the user when it has none).
fn with_password(url: &str) -> Result<String> {
    let (scheme, rest) = url.split_once("://").context("a URL")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit('@').next().context("a host")?;
    let user = match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.split(':').next().unwrap_or("postgres"),
        None => "postgres",
    };
    Ok(format!("{scheme}://{user}:{PASSWORD}@{host}{path}"))
}

fn assert_clean(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} holds a secret ({secret}):\n{text}"
        );
    }
}

#[tokio::test]
async fn no_secret_in_logs_metrics_errors_or_the_openapi_document() -> Result<()> {
    let Some(pg) = metering_testkit::postgres_url() else {
        return Ok(());
    };
    let store = with_password(&pg)?;
    let schema = format!("mtest_secrets_{}", uuid::Uuid::now_v7().simple());
    let store = format!(
        "{store}{}schema={schema}",
        if store.contains('?') { "&" } else { "?" }
    );
    let mut child = Command::new(BIN)
        .args(["--store", &store, "--quota-cache", "memory://"])
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--auth-failures-per-minute",
            "0",
        ])
        .env("METERING_ADMIN_KEY", ADMIN)
        .env("RUST_LOG", "debug")
        .env_remove("METERING_STORE")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(address) = line.strip_prefix("metering-server listening on ") {
                return Ok::<_, anyhow::Error>(address.trim().to_owned());
            }
        }
        bail!("the server exited before listening")
    })
    .await??;
    let mut stderr = child.stderr.take().context("stderr")?;
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.map(|_| text)
    });

    let client = reqwest::Client::new();
    let v1 = format!("{base}/v1/meter");
    let created: serde_json::Value = client
        .post(format!("{v1}/api-keys"))
        .header("x-api-key", ADMIN)
        .json(&serde_json::json!({"name": "ingest", "role": "ingest"}))
        .send()
        .await?
        .json()
        .await?;
    let ingest = created["key"]
        .as_str()
        .context("the new secret")?
        .to_owned();
    let wrong = "mk_wrong_guess_0f1e2d3c4b5a69788796";
    let mut bodies = Vec::new();
    for (method, path, key, body) in [
        ("GET", "/events", wrong, None),
        ("GET", "/events", ingest.as_str(), None),
        ("POST", "/events", ingest.as_str(), Some("{not json")),
        (
            "POST",
            "/events",
            ingest.as_str(),
            Some(r#"{"tenant_id": ""}"#),
        ),
        (
            "POST",
            "/events",
            ingest.as_str(),
            Some(r#"{"tenant_id": "t", "resource": "r", "feature": "f"}"#),
        ),
        ("DELETE", "/api-keys/not-a-uuid", ADMIN, None),
        ("GET", "/nowhere", ADMIN, None),
        ("GET", "/health", ADMIN, None),
    ] {
        let mut request = client
            .request(method.parse()?, format!("{v1}{path}"))
            .header("authorization", format!("Bearer {key}"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let answer = request.send().await?;
        bodies.push(format!(
            "{method} {path}: {} {}",
            answer.status(),
            answer.text().await?
        ));
    }
    let secrets = [ADMIN, ingest.as_str(), &ingest[8..], wrong, PASSWORD];
    assert_clean("error bodies", &bodies.join("\n"), &secrets);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("metering_http_requests_total"),
        "{metrics}"
    );
    assert_clean("/metrics", &metrics, &secrets);
    let openapi = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await?
        .text()
        .await?;
    assert_clean("the OpenAPI document", &openapi, &secrets);

    child.start_kill()?;
    child.wait().await?;
    let logs = logs.await??;
    assert!(logs.contains("GET"), "debug logs were written:\n{logs}");
    assert_clean("the logs", &logs, &secrets);

    // A database that cannot be reached: the error names the URL without its password.
    let unreachable =
        format!("postgres://postgres:{PASSWORD}@127.0.0.1:1/test?acquire_timeout_secs=2");
    let failed = Command::new(BIN)
        .args(["--store", &unreachable, "migrate"])
        .env("RUST_LOG", "debug")
        .env_remove("METERING_STORE")
        .env_remove("DATABASE_URL")
        .output()
        .await?;
    assert!(!failed.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&failed.stdout),
        String::from_utf8_lossy(&failed.stderr)
    );
    assert!(
        said.contains("127.0.0.1"),
        "the failure names the server:\n{said}"
    );
    assert_clean("a connection failure", &said, &secrets);

    // Drop the schema through the test's own URL.
    let pool = metering_store_postgres::sqlx::PgPool::connect(&pg).await?;
    metering_store_postgres::sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&pool)
        .await?;
    Ok(())
}
