//! HTTPS: the real server with `--tls-cert` and `--tls-key`, on a self-signed certificate
//! made here. A client that trusts the certificate talks to the API; one that does not,
//! and plain HTTP, get nowhere; a key that does not fit its certificate stops the server
//! at start with a message naming the files.

mod binary;

use anyhow::{Context, Result};
use reqwest::StatusCode;

const ADMIN: &str = "mk_tls_admin_00112233445566778899";
const BIN: &str = env!("CARGO_BIN_EXE_metering-server");

#[tokio::test]
async fn the_api_is_served_over_https() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    let store = format!("sqlite://{}", dir.path().join("tls.db").display());
    let (_server, base) = binary::start_with(
        &store,
        ADMIN,
        &[
            "--tls-cert",
            cert.to_str().context("path")?,
            "--tls-key",
            key.to_str().context("path")?,
        ],
    )
    .await?;
    assert!(base.starts_with("https://"), "{base}");

    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(made.cert.pem().as_bytes())?)
        .build()?;
    let health = trusting
        .get(format!("{base}/v1/meter/health"))
        .send()
        .await?;
    assert_eq!(health.status(), StatusCode::OK);
    let ingested = trusting
        .post(format!("{base}/v1/meter/events"))
        .header("x-api-key", ADMIN)
        .json(&serde_json::json!({"tenant_id": "org", "resource": "api", "feature": "call"}))
        .send()
        .await?;
    assert_eq!(ingested.status(), StatusCode::CREATED);
    let page: serde_json::Value = trusting
        .get(format!("{base}/v1/meter/events"))
        .header("x-api-key", ADMIN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(page["events"].as_array().map(Vec::len), Some(1));

    // A client that does not trust the certificate fails the handshake.
    let error = reqwest::get(format!("{base}/v1/meter/health"))
        .await
        .expect_err("an untrusted certificate");
    assert!(error.is_connect(), "{error}");
    // Plain HTTP on the same port is not answered as HTTP.
    let plain = base.replacen("https://", "http://", 1);
    let answer = reqwest::get(format!("{plain}/v1/meter/health")).await;
    assert!(
        answer
            .as_ref()
            .map_or(true, |a| a.status() != StatusCode::OK),
        "{answer:?}"
    );

    // A key that does not fit the certificate: no server, and a message naming the files.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let wrong_key = dir.path().join("other-key.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem())?;
    let failed = tokio::process::Command::new(BIN)
        .args(["--store", &store, "--quota-cache", "memory://", "serve"])
        .args(["--bind", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&wrong_key)
        .env("METERING_ADMIN_KEY", ADMIN)
        .output()
        .await?;
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(
        said.contains("other-key.pem") && said.contains("does not fit"),
        "{said}"
    );
    assert!(!said.contains("PRIVATE KEY"), "{said}");
    Ok(())
}
