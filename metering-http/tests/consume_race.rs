//! 200 concurrent consume requests against a limit of 50 admit exactly 50.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_consumes_never_exceed_the_limit() {
    let app = app().await;
    let (status, _) = app
        .put(
            "/v1/meter/quotas",
            json!({"tenant_id": "org_race", "resource": "api", "feature": "call",
            "limit": 50, "period": "monthly"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body =
        json!({"tenant_id": "org_race", "resource": "api", "feature": "call", "consume": true});
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let (status, _, answer) = app
                    .call(Method::POST, "/v1/meter/validate", Some(ADMIN), Some(body))
                    .await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                answer["allowed"].as_bool().expect("allowed")
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("task") {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 50);
    assert_eq!(app.event_count().await, 50);
    let (_, answer) = app
        .post(
            "/v1/meter/validate",
            json!({"tenant_id": "org_race", "resource": "api", "feature": "call"}),
        )
        .await;
    assert_eq!(answer["current_usage"], 50);
    assert_eq!(answer["allowed"], false);
}
