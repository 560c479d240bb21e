//! Guessing keys is slowed down per client address: the real server, over TCP, answers 429
//! with `Retry-After` once an address has used up its failed authentications, even for a
//! right key, while requests without a failed guess behind them go on.

mod binary;

use anyhow::Result;
use reqwest::StatusCode;

const ADMIN: &str = "mk_guard_admin_0123456789abcdef";

#[tokio::test]
async fn failed_authentications_are_limited_per_address() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("guard.db").display());
    let (_server, base) =
        binary::start_with(&store, ADMIN, &["--auth-failures-per-minute", "5"]).await?;
    let client = reqwest::Client::new();
    let keys = format!("{base}/v1/meter/api-keys");
    let call = |key: String| {
        let request = client.get(&keys).header("x-api-key", key);
        async move { request.send().await }
    };

    // The right key works as often as needed: only failures count.
    for _ in 0..10 {
        assert_eq!(call(ADMIN.to_owned()).await?.status(), StatusCode::OK);
    }
    // Five wrong guesses are answered 401; the sixth uses up the address's allowance.
    for i in 0..5 {
        let answer = call(format!("mk_guess_{i:032}")).await?;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = call("mk_guess_last".to_owned()).await?;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = blocked
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        (1..=12).contains(&retry),
        "one failure is due every 12 s: {retry}"
    );
    let body: serde_json::Value = blocked.json().await?;
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert!(
        !body.to_string().contains("mk_guess"),
        "the key is not echoed: {body}"
    );

    // While blocked, even the right key gets 429: a lucky guess is not told apart.
    let right = call(ADMIN.to_owned()).await?;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    // Endpoints without a key still answer, and the refusals are counted.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("metering_rate_limited_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("metering_rate_limited_total");
    assert!(refused >= 2.0, "{refused}");

    // After the delay the address may try again.
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(call(ADMIN.to_owned()).await?.status(), StatusCode::OK);
    Ok(())
}
