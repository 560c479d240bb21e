//! Roles and tenant scoping: every endpoint against every kind of key.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, app, event};
use metering_core::Role;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Write,
    Validate,
    Read,
    Admin,
}

fn allowed(role: Role, needs: Needs) -> bool {
    match role {
        Role::Admin => true,
        Role::Ingest => matches!(needs, Needs::Write | Needs::Validate),
        Role::Read => needs == Needs::Read,
    }
}

/// (name, method, uri, body, what it needs, whether it touches another tenant than `org_a`)
type Probe = (
    &'static str,
    Method,
    &'static str,
    Option<Value>,
    Needs,
    bool,
);

fn requests() -> Vec<Probe> {
    let agg = "/v1/meter/aggregates?window_type=daily&start_date=2025-01-01&end_date=2030-01-01";
    let agg_b = "/v1/meter/aggregates?window_type=daily&start_date=2025-01-01&end_date=2030-01-01&tenant_id=org_b";
    vec![
        (
            "ingest own",
            Method::POST,
            "/v1/meter/events",
            Some(event("org_a")),
            Needs::Write,
            false,
        ),
        (
            "ingest other",
            Method::POST,
            "/v1/meter/events",
            Some(event("org_b")),
            Needs::Write,
            true,
        ),
        (
            "ingest mixed batch",
            Method::POST,
            "/v1/meter/events",
            Some(json!({"events": [event("org_a"), event("org_b")]})),
            Needs::Write,
            true,
        ),
        (
            "validate own",
            Method::POST,
            "/v1/meter/validate",
            Some(json!({"tenant_id": "org_a", "feature": "f"})),
            Needs::Validate,
            false,
        ),
        (
            "validate other",
            Method::POST,
            "/v1/meter/validate",
            Some(json!({"tenant_id": "org_b", "feature": "f"})),
            Needs::Validate,
            true,
        ),
        (
            "list events",
            Method::GET,
            "/v1/meter/events",
            None,
            Needs::Read,
            false,
        ),
        (
            "list other's events",
            Method::GET,
            "/v1/meter/events?tenant_id=org_b",
            None,
            Needs::Read,
            true,
        ),
        (
            "export events",
            Method::GET,
            // An empty range: the answer is an empty NDJSON file.
            "/v1/meter/events/export?start_date=2000-01-01&end_date=2000-01-02",
            None,
            Needs::Read,
            false,
        ),
        (
            "export other's events",
            Method::GET,
            "/v1/meter/events/export?tenant_id=org_b&start_date=2000-01-01&end_date=2000-01-02",
            None,
            Needs::Read,
            true,
        ),
        ("aggregates", Method::GET, agg, None, Needs::Read, false),
        (
            "other's aggregates",
            Method::GET,
            agg_b,
            None,
            Needs::Read,
            true,
        ),
        (
            "list quotas",
            Method::GET,
            "/v1/meter/quotas",
            None,
            Needs::Read,
            false,
        ),
        (
            "list other's quotas",
            Method::GET,
            "/v1/meter/quotas?tenant_id=org_b",
            None,
            Needs::Read,
            true,
        ),
        (
            "set own quota",
            Method::PUT,
            "/v1/meter/quotas",
            Some(json!({"tenant_id": "org_a", "feature": "f", "limit": 5, "period": "daily"})),
            Needs::Admin,
            false,
        ),
        (
            "set other's quota",
            Method::PUT,
            "/v1/meter/quotas",
            Some(json!({"tenant_id": "org_b", "feature": "f", "limit": 5, "period": "daily"})),
            Needs::Admin,
            true,
        ),
        (
            "set default quota",
            Method::PUT,
            "/v1/meter/quotas",
            Some(json!({"tenant_id": "*", "feature": "f", "limit": 5, "period": "daily"})),
            Needs::Admin,
            true,
        ),
        (
            "create own key",
            Method::POST,
            "/v1/meter/api-keys",
            Some(json!({"name": "k", "role": "read", "tenant_id": "org_a"})),
            Needs::Admin,
            false,
        ),
        (
            "create unscoped key",
            Method::POST,
            "/v1/meter/api-keys",
            Some(json!({"name": "k", "role": "read"})),
            Needs::Admin,
            true,
        ),
        (
            "define meter",
            Method::PUT,
            "/v1/meter/meters/calls",
            Some(json!({"aggregation": "count", "dimensions": ["plan"]})),
            Needs::Admin,
            true,
        ),
        (
            "list meters",
            Method::GET,
            "/v1/meter/meters",
            None,
            Needs::Read,
            false,
        ),
        (
            "get meter",
            Method::GET,
            "/v1/meter/meters/seen",
            None,
            Needs::Read,
            false,
        ),
        (
            "query meter",
            Method::GET,
            "/v1/meter/meters/seen/query?start_date=2025-01-01&end_date=2030-01-01",
            None,
            Needs::Read,
            false,
        ),
        (
            "query other's meter usage",
            Method::GET,
            "/v1/meter/meters/seen/query?start_date=2025-01-01&end_date=2030-01-01&tenant_id=org_b",
            None,
            Needs::Read,
            true,
        ),
        (
            "delete meter",
            Method::DELETE,
            "/v1/meter/meters/gone",
            None,
            Needs::Admin,
            true,
        ),
        (
            "list keys",
            Method::GET,
            "/v1/meter/api-keys",
            None,
            Needs::Admin,
            false,
        ),
    ]
}

#[tokio::test]
async fn every_role_and_scope_on_every_endpoint() {
    let mut checked = 0;
    for role in [Role::Admin, Role::Ingest, Role::Read] {
        for scoped in [false, true] {
            let app = app().await;
            for meter in ["seen", "gone"] {
                let uri = format!("/v1/meter/meters/{meter}");
                let (status, _) = app.put(&uri, json!({"aggregation": "sum"})).await;
                assert_eq!(status, StatusCode::OK);
            }
            let key = app.key(role, scoped.then_some("org_a")).await;
            for (name, method, uri, body, needs, other_tenant) in requests() {
                let (status, _, answer) = app.call(method, uri, Some(&key), body).await;
                let expected_ok = allowed(role, needs) && !(scoped && other_tenant);
                if expected_ok {
                    assert!(
                        status.is_success(),
                        "{role:?} scoped={scoped} {name}: {status} {answer}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{role:?} scoped={scoped} {name}: {answer}"
                    );
                    assert_eq!(answer["error"]["code"], "FORBIDDEN");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * requests().len());
}

#[tokio::test]
async fn scoped_reads_see_only_their_tenant() {
    let app = app().await;
    let events = json!({"events": [event("org_a"), event("org_a"), event("org_b")]});
    assert_eq!(
        app.post("/v1/meter/events", events).await.0,
        StatusCode::CREATED
    );
    app.put(
        "/v1/meter/quotas",
        json!({"tenant_id": "org_b", "feature": "f", "limit": 5, "period": "daily"}),
    )
    .await;
    app.put(
        "/v1/meter/quotas",
        json!({"tenant_id": "org_a", "feature": "f", "limit": 5, "period": "daily"}),
    )
    .await;
    let key = app.key(Role::Read, Some("org_a")).await;

    let (_, _, body) = app
        .call(Method::GET, "/v1/meter/events", Some(&key), None)
        .await;
    assert_eq!(body["pagination"]["total"], 2, "{body}");
    assert!(
        body["events"]
            .as_array()
            .expect("events")
            .iter()
            .all(|e| e["tenant_id"] == "org_a")
    );

    let uri = "/v1/meter/aggregates?window_type=monthly&start_date=2025-01-01&end_date=2030-01-01&group_by=tenant_id";
    let (_, _, body) = app.call(Method::GET, uri, Some(&key), None).await;
    assert_eq!(body["summary"]["total_events"], 2, "{body}");

    let (_, _, body) = app
        .call(Method::GET, "/v1/meter/quotas", Some(&key), None)
        .await;
    let quotas = body["quotas"].as_array().expect("quotas");
    assert_eq!(quotas.len(), 1);
    assert_eq!(quotas[0]["tenant_id"], "org_a");

    // The admin sees everything.
    let (_, _, body) = app
        .call(Method::GET, "/v1/meter/events", Some(ADMIN), None)
        .await;
    assert_eq!(body["pagination"]["total"], 3);
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_revoked_through_the_api() {
    let app = app().await;
    let (_, keys) = app.get("/v1/meter/api-keys").await;
    let own = keys["api_keys"][0]["id"]
        .as_str()
        .expect("the admin key")
        .to_owned();
    let uri = format!("/v1/meter/api-keys/{own}");
    let (status, _, body) = app.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("create another admin key")),
        "{body}"
    );
    // Still works.
    assert_eq!(app.get("/v1/meter/api-keys").await.0, StatusCode::OK);
    // With a second admin, an admin may revoke its own key, and that key stops working.
    let second = app.key(Role::Admin, None).await;
    let (status, _, body) = app.call(Method::DELETE, &uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, _) = app
        .call(Method::GET, "/v1/meter/api-keys", Some(ADMIN), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The second is now the last one.
    let (_, _, keys) = app
        .call(Method::GET, "/v1/meter/api-keys", Some(&second), None)
        .await;
    let second_id = keys["api_keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["revoked_at"].is_null() && k["role"] == "admin")
        .and_then(|k| k["id"].as_str())
        .expect("the second admin")
        .to_owned();
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/meter/api-keys/{second_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}
