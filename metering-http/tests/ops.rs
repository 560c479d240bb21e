//! Operations: group commit, `/metrics`, `/openapi.json` and `/docs`, request ids, the
//! per-key rate limit and the lookup cache. (What the logs contain: `tests/logs.rs`.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use metering_core::GroupCommitConfig;
use metering_core::{MemoryQuotaCache, MemoryStore, NewApiKey, Role, Store};
use metering_http::{AppState, ErrorCode, RateLimit, ServerConfig};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN: &str = "mk_ops_test_admin_secret_0123456789";

/// A router built the way the server builds it (timed memory backends, group commit).
async fn app(config: ServerConfig) -> (Router, AppState) {
    app_on(Arc::new(MemoryStore::new()), config).await
}

/// The same over `store`.
async fn app_on(store: Arc<dyn Store>, config: ServerConfig) -> (Router, AppState) {
    let state = AppState::from_backends(store, Arc::new(MemoryQuotaCache::new()), config);
    state
        .engine()
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("import the admin key");
    (metering_http::router(state.clone()), state)
}

async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    common::respond(router, common::build(method, uri, key, body)).await
}

/// `n` single-event POSTs at once (events `0..n`), in order of their events.
async fn post_concurrently(router: &Router, n: usize) -> Vec<(StatusCode, HeaderMap, Vec<u8>)> {
    let posts = (0..n).map(|i| {
        let router = router.clone();
        async move {
            send(
                &router,
                Method::POST,
                "/v1/meter/events",
                Some(ADMIN),
                Some(event(i)),
            )
            .await
        }
    });
    futures::future::join_all(posts).await
}

fn event(n: usize) -> Value {
    json!({"id": format!("ev-{n}"), "tenant_id": format!("org_{}", n % 3), "resource": "api", "feature": "call"})
}

/// The value of a metric line (`name{labels} value`) whose name and labels start as given.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_posts_share_commits_and_are_all_stored() {
    let config = ServerConfig::default().with_group_commit(Some(GroupCommitConfig::new(
        1_000,
        Duration::from_millis(20),
        1_000,
    )));
    // Groups form where a commit has a cost: on the embedded SQLite store each one waits for
    // an fsync, and the requests that arrive meanwhile make the next group. (A commit to the
    // memory store is over before the next request arrives; groups of one are right there.)
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("ops.db").display());
    let store = metering_store_sqlite::SqliteStore::connect(&url)
        .await
        .expect("the store opens");
    let (router, state) = app_on(Arc::new(store), config).await;
    let n = 64;
    let statuses: Vec<StatusCode> = post_concurrently(&router, n)
        .await
        .into_iter()
        .map(|(status, _, _)| status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );

    let (status, _, body) = send(
        &router,
        Method::GET,
        "/v1/meter/events?page_size=1000",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_slice(&body).expect("json");
    let mut ids: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..n).map(|i| format!("ev-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);

    let text = state.metrics().render();
    let commits = metric(&text, "metering_commit_events_count").expect("commit count");
    let events = metric(&text, "metering_commit_events_sum").expect("commit sum");
    assert_eq!(events, 64.0, "{text}");
    assert!(
        commits < 64.0,
        "no group held more than one request: {text}"
    );
    assert_eq!(
        metric(&text, "metering_events_ingested_total"),
        Some(64.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_cover_requests_ingests_quotas_and_store_calls() {
    let (router, _) = app(ServerConfig::default()).await;
    let batch = json!({"events": [event(1), event(2), event(1)]});
    let (status, _, _) = send(
        &router,
        Method::POST,
        "/v1/meter/events",
        Some(ADMIN),
        Some(batch),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let check = json!({"tenant_id": "org_1", "resource": "api", "feature": "call"});
    send(
        &router,
        Method::POST,
        "/v1/meter/validate",
        Some(ADMIN),
        Some(check),
    )
    .await;
    let quota = json!({"tenant_id": "org_1", "resource": null, "feature": "call", "limit": 1, "period": "monthly"});
    let (status, _, body) = send(
        &router,
        Method::PUT,
        "/v1/meter/quotas",
        Some(ADMIN),
        Some(quota),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let over = json!({"tenant_id": "org_1", "resource": "api", "feature": "call", "quantity": 5});
    send(
        &router,
        Method::POST,
        "/v1/meter/validate",
        Some(ADMIN),
        Some(over),
    )
    .await;
    let id = "0193a1b2-0000-7000-8000-000000000000";
    send(
        &router,
        Method::DELETE,
        &format!("/v1/meter/quotas/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    send(&router, Method::GET, "/v1/nowhere", None, None).await;

    let (status, headers, body) = send(&router, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body).expect("utf-8");
    let expect = [
        (
            r#"metering_http_requests_total{method="POST",route="/v1/meter/events",status="201"}"#,
            1.0,
        ),
        (
            r#"metering_http_requests_total{method="DELETE",route="/v1/meter/quotas/{id}",status="404"}"#,
            1.0,
        ),
        (
            r#"metering_http_requests_total{method="GET",route="unmatched",status="404"}"#,
            1.0,
        ),
        (
            r#"metering_http_request_duration_seconds_count{method="POST",route="/v1/meter/validate",status="200"}"#,
            2.0,
        ),
        ("metering_events_ingested_total", 2.0),
        ("metering_events_duplicates_total", 1.0),
        ("metering_ingest_batch_events_sum", 3.0),
        (
            r#"metering_quota_decisions_total{outcome="no_quota",consume="false"}"#,
            1.0,
        ),
        (
            r#"metering_quota_decisions_total{outcome="denied",consume="false"}"#,
            1.0,
        ),
        (
            r#"metering_store_duration_seconds_count{method="insert_events",result="ok"}"#,
            1.0,
        ),
        (
            r#"metering_store_duration_seconds_count{method="delete_quota",result="error"}"#,
            1.0,
        ),
    ];
    for (line, value) in expect {
        assert_eq!(metric(&text, line), Some(value), "{line} in\n{text}");
    }
    assert!(
        text.contains("metering_cache_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("# HELP metering_commit_events"), "{text}");
}

/// Every route the router serves, as `METHOD path` in OpenAPI form.
const ROUTES: &[&str] = &[
    "POST /v1/meter/events",
    "POST /v1/meter/events/batch",
    "GET /v1/meter/events",
    "GET /v1/meter/events/export",
    "POST /v1/meter/events/{id}/void",
    "POST /v1/meter/events/{id}/amend",
    "GET /v1/meter/events/{id}/history",
    "GET /v1/meter/aggregates",
    "POST /v1/meter/validate",
    "PUT /v1/meter/quotas",
    "GET /v1/meter/quotas",
    "DELETE /v1/meter/quotas/{id}",
    "POST /v1/meter/api-keys",
    "GET /v1/meter/api-keys",
    "DELETE /v1/meter/api-keys/{id}",
    "PUT /v1/meter/meters/{key}",
    "GET /v1/meter/meters",
    "GET /v1/meter/meters/{key}",
    "DELETE /v1/meter/meters/{key}",
    "GET /v1/meter/meters/{key}/query",
    "POST /v1/meter/webhooks",
    "GET /v1/meter/webhooks",
    "DELETE /v1/meter/webhooks/{id}",
    "GET /v1/meter/webhooks/{id}/deliveries",
    "POST /v1/meter/webhooks/{id}/deliveries/{delivery_id}/retry",
    "GET /v1/meter/health",
    "GET /metrics",
];

#[tokio::test]
async fn openapi_documents_every_route_schema_and_error() {
    let (router, _) = app(ServerConfig::default()).await;
    let (status, _, body) = send(&router, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    // It reads back as an OpenAPI document.
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_slice(&body).expect("an OpenAPI 3 document");

    let mut documented = Vec::new();
    for (path, item) in &parsed.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
            ("PATCH", &item.patch),
        ] {
            if op.is_some() {
                documented.push(format!("{method} {path}"));
            }
        }
    }
    documented.sort();
    // Every reference names a schema the document holds.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("an unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} names no schema"
        );
    }
    let mut routes: Vec<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    routes.sort();
    assert_eq!(documented, routes);

    // Each listed route really is served (not 404 / 405) by the router.
    for route in ROUTES {
        let (method, path) = route.split_once(' ').expect("METHOD path");
        let path = path
            .replace("{id}", "0193a1b2-0000-7000-8000-000000000000")
            .replace("{delivery_id}", "0193a1b2-0000-7000-8000-000000000000")
            .replace("{key}", "some_meter");
        let (status, _, _) =
            send(&router, method.parse().expect("method"), &path, None, None).await;
        assert!(
            status != StatusCode::NOT_FOUND || path.ends_with("000"),
            "{route} answered 404"
        );
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{route}");
    }

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["type"], "apiKey");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let codes: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
        .iter()
        .map(|v| v.as_str().expect("code"))
        .collect();
    let all: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(codes, all);
    for schema in [
        "ErrorEnvelope",
        "NewEvent",
        "IngestReceipt",
        "EventPage",
        "AggregateReport",
        "QuotaDecision",
        "Quota",
        "CreatedApiKey",
        "Health",
        "MeterDefinition",
        "MeterSchema",
        "MeterList",
        "MeterReportSchema",
        "Amount",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    // Authenticated endpoints list the shared errors; health needs no key.
    let ingest = &doc["paths"]["/v1/meter/events"]["post"];
    for status in [
        "201", "400", "401", "403", "413", "422", "429", "500", "503",
    ] {
        assert!(
            ingest["responses"][status].is_object(),
            "POST /v1/meter/events lacks {status}"
        );
    }
    assert!(doc["paths"]["/v1/meter/health"]["get"]["security"].is_null());
    assert!(doc["paths"]["/v1/meter/health"]["get"]["responses"]["401"].is_null());

    // The rules the server enforces are stated: quantity bounds and precision, names,
    // closed request bodies, required range bounds.
    let schemas = &doc["components"]["schemas"];
    let number = &schemas["DecimalInput"]["oneOf"][0];
    assert_eq!(number["exclusiveMinimum"], json!(0));
    assert_eq!(number["maximum"].as_f64(), Some(1e15));
    assert_eq!(number["multipleOf"].as_f64(), Some(1e-9));
    let text = schemas["DecimalInput"]["oneOf"][1]["pattern"]
        .as_str()
        .expect("decimal string pattern");
    let text = regex::Regex::new(text).expect("pattern compiles");
    for ok in [
        "1",
        "0.5",
        ".000000001",
        "+12.50",
        "1000000000000000",
        "007.1000000000",
    ] {
        assert!(text.is_match(ok), "{ok}");
    }
    for bad in [
        "0",
        "0.0",
        "1000000000000000.1",
        "1.0000000001",
        "-1",
        "1e3",
        "5.",
        "",
    ] {
        assert!(!text.is_match(bad), "{bad}");
    }
    for name in ["TenantId", "Resource", "Feature"] {
        let pattern = schemas[name]["pattern"].as_str().expect("name pattern");
        let pattern = regex::Regex::new(pattern).expect("pattern compiles");
        assert!(pattern.is_match(" a b "), "{name}");
        assert!(!pattern.is_match("a\u{1}b"), "{name}");
        assert!(!pattern.is_match("  "), "{name}");
        assert!(pattern.is_match(&"x".repeat(255)), "{name}");
        assert!(!pattern.is_match(&"x".repeat(256)), "{name}");
    }
    for closed in [
        "NewEvent",
        "NewApiKey",
        "QuotaSpec",
        "ValidateRequest",
        "MeterCheck",
        "AmendRequest",
        "VoidRequest",
        "NewWebhook",
    ] {
        assert_eq!(
            schemas[closed]["additionalProperties"],
            json!(false),
            "{closed}"
        );
    }
    let aggregates = doc["paths"]["/v1/meter/aggregates"]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    for required in ["window_type", "start_date", "end_date"] {
        assert!(
            aggregates
                .iter()
                .any(|p| p["name"] == required && p["required"] == json!(true)),
            "{required}"
        );
    }
    for closed in ["MeterDefinition", "MeterFilterSchema"] {
        assert_eq!(
            schemas[closed]["additionalProperties"],
            json!(false),
            "{closed}"
        );
    }

    // `group_by`: a comma-separated subset of the three dimensions, blank for one series.
    let pattern = |name: &str| {
        let text = schemas[name]["pattern"].as_str().expect("pattern");
        regex::Regex::new(text).expect("pattern compiles")
    };
    let group_by = pattern("GroupBy");
    for ok in [
        "",
        " ",
        "tenant_id",
        "resource, feature",
        "feature,,feature ",
        ",",
    ] {
        assert!(group_by.is_match(ok), "{ok:?}");
    }
    for bad in ["model", "tenant", "resource feature", "resource,x"] {
        assert!(!group_by.is_match(bad), "{bad:?}");
    }

    // A reason: no control characters but line breaks and tabs, at most 1000 characters.
    let reason = pattern("Reason");
    assert!(reason.is_match("typo\r\n\tfixed"));
    assert!(!reason.is_match("a\u{0}b") && !reason.is_match("\u{85}"));
    assert_eq!(schemas["Reason"]["maxLength"], json!(1000));

    // A quota names exactly one of `feature` and `meter`; thresholds are never repeated.
    let quota = &schemas["QuotaBody"]["allOf"];
    assert_eq!(quota[0]["$ref"], json!("#/components/schemas/QuotaSpec"));
    assert_eq!(quota[1]["oneOf"].as_array().map(Vec::len), Some(2));
    assert_eq!(schemas["ThresholdList"]["uniqueItems"], json!(true));
    let dimensions = &schemas["Dimensions"];
    assert_eq!(dimensions["uniqueItems"], json!(true));
    assert_eq!(dimensions["maxItems"], json!(8));
    assert_eq!(dimensions["items"]["maxLength"], json!(128));

    // The cursor a page hands out matches the documented pattern.
    for n in 0..2 {
        let (status, _, _) = send(
            &router,
            Method::POST,
            "/v1/meter/events",
            Some(ADMIN),
            Some(event(n)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _, body) = send(
        &router,
        Method::GET,
        "/v1/meter/events?page_size=1&cursor=",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let page: Value = serde_json::from_slice(&body).expect("json");
    let cursor = page["next_cursor"].as_str().expect("a next cursor");
    assert!(pattern("Cursor").is_match(cursor), "{cursor}");
    for (bad, encoded) in [
        ("abc", "abc"),
        ("1.6", "1.6"),
        ("1.7f", "1.7f"),
        ("+1.61", "%2B1.61"),
    ] {
        assert!(!pattern("Cursor").is_match(bad), "{bad}");
        let (status, _, _) = send(
            &router,
            Method::GET,
            &format!("/v1/meter/events?cursor={encoded}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn docs_page_loads_only_from_the_server() {
    let (router, _) = app(ServerConfig::default()).await;
    let (status, headers, _) = send(&router, Method::GET, "/docs", None, None).await;
    assert!(
        status.is_success() || status.is_redirection(),
        "/docs answered {status} {headers:?}"
    );
    let (status, _, body) = send(&router, Method::GET, "/docs/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let html = String::from_utf8(body).expect("utf-8");
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().expect("quoted");
            assert!(!target.contains("//"), "external asset {target} in\n{html}");
            assets.push(target.trim_start_matches("./").to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    assert!(assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for asset in &assets {
        let (status, _, body) =
            send(&router, Method::GET, &format!("/docs/{asset}"), None, None).await;
        assert_eq!(status, StatusCode::OK, "/docs/{asset}");
        assert!(!body.is_empty(), "/docs/{asset} is empty");
        let text = String::from_utf8_lossy(&body);
        if asset.ends_with("initializer.js") {
            assert!(text.contains("/openapi.json"), "{text}");
        }
    }
}

#[tokio::test]
async fn request_ids_are_generated_or_echoed() {
    let (router, _) = app(ServerConfig::default()).await;
    let (_, headers, _) = send(&router, Method::GET, "/v1/meter/health", None, None).await;
    let generated = headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(generated.len(), 36, "{generated}");
    let request = Request::get("/v1/meter/events")
        .header("x-request-id", "client-chosen-42")
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn rate_limit_answers_429_per_key() {
    let config = ServerConfig::default().with_rate_limit(Some(RateLimit::new(1, 2)));
    let (router, state) = app(config).await;
    let other = state
        .engine()
        .create_api_key(NewApiKey::new("other", Role::Read))
        .await
        .expect("key")
        .secret;
    let path = "/v1/meter/quotas";
    assert_eq!(
        send(&router, Method::GET, path, Some(ADMIN), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, Method::GET, path, Some(ADMIN), None).await.0,
        StatusCode::OK
    );
    let (status, headers, body) = send(&router, Method::GET, path, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Another key has its own bucket; requests without a key are not counted.
    assert_eq!(
        send(&router, Method::GET, path, Some(&other), None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&router, Method::GET, "/v1/meter/health", None, None)
            .await
            .0,
        StatusCode::OK
    );
    let text = state.metrics().render();
    assert_eq!(
        metric(&text, "metering_rate_limited_total"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_is_off_by_default() {
    let (router, _) = app(ServerConfig::default()).await;
    for _ in 0..50 {
        assert_eq!(
            send(&router, Method::GET, "/v1/meter/quotas", Some(ADMIN), None)
                .await
                .0,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_full_ingest_queue_answers_503_with_retry_after() {
    // One waiting request at most, and groups that wait long: the third concurrent
    // request finds the queue full.
    let config = ServerConfig::default().with_group_commit(Some(GroupCommitConfig::new(
        1_000,
        Duration::from_millis(300),
        1,
    )));
    let (router, _) = app(config).await;
    let answers = post_concurrently(&router, 8).await;
    let full: Vec<_> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !full.is_empty(),
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    for (_, headers, body) in full {
        assert!(headers.contains_key("retry-after"));
        let body: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(body["error"]["code"], "UNAVAILABLE");
    }
    assert!(
        answers
            .iter()
            .all(|(s, _, _)| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE)
    );
}

/// A store whose aggregates wait until the test opens the gate.
#[derive(Debug)]
struct GatedAggregates {
    inner: MemoryStore,
    gate: Arc<tokio::sync::Semaphore>,
}

metering_core::forward_store! {
    impl Store for GatedAggregates => inner;
    forward: [insert_events, list_events, event, replacement_of, void_event, amend_event, sum_usage, consume,
        tally_meter,
        consume_metered, upsert_quota, list_quotas, quota,
              quota_candidates, delete_quota, insert_api_key, api_key_by_hash, list_api_keys,
              api_key, revoke_api_key, record_key_usage, put_meter, list_meters, meter, delete_meter,
        query_meter, insert_webhook, list_webhooks, webhook, delete_webhook, insert_events_watched, record_alert, ended_alert_periods, list_deliveries, claim_deliveries, finish_delivery, retry_delivery, delivery_counts, prune_alerts, health];

    async fn aggregate(
        &self,
        query: &metering_core::AggregateQuery,
    ) -> metering_core::Result<Vec<metering_core::AggregateRow>> {
        let _open = self.gate.acquire().await.expect("the gate stays open");
        self.inner.aggregate(query).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_reads_wait_for_a_slot_then_answer_503_while_ingest_goes_on() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let store = GatedAggregates {
        inner: MemoryStore::new(),
        gate: Arc::clone(&gate),
    };
    let config = ServerConfig::default()
        .with_max_concurrent_reads(1)
        .with_request_timeout(Duration::from_millis(300));
    let (router, state) = app_on(Arc::new(store), config).await;
    let uri = "/v1/meter/aggregates?window_type=daily&start_date=2025-01-01&end_date=2025-01-02";
    // The first aggregate takes the only slot and waits at the gate.
    let first = {
        let router = router.clone();
        tokio::spawn(async move { send(&router, Method::GET, uri, Some(ADMIN), None).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The second waits the request timeout for the slot, then gets 503 with Retry-After.
    let (status, headers, body) = send(&router, Method::GET, uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers["retry-after"], "1");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    // Ingest does not queue behind heavy reads.
    let (status, _, _) = send(
        &router,
        Method::POST,
        "/v1/meter/events",
        Some(ADMIN),
        Some(event(1)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let text = state.metrics().render();
    assert_eq!(
        metric(&text, "metering_overload_total{reason=\"heavy_reads\"}"),
        Some(1.0),
        "{text}"
    );
    // Once the gate opens, the first answers and the slot is free again.
    gate.add_permits(10);
    assert_eq!(first.await.expect("task").0, StatusCode::OK);
    let (status, _, _) = send(&router, Method::GET, uri, Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn cached_lookups_see_local_writes_at_once_and_remote_ones_within_the_ttl() {
    let store: Arc<dyn metering_core::Store> = Arc::new(MemoryStore::new());
    let config = ServerConfig::default().with_lookup_cache_ttl(Duration::from_millis(300));
    let a = AppState::from_backends(
        store.clone(),
        Arc::new(MemoryQuotaCache::new()),
        config.clone(),
    );
    let b = AppState::from_backends(store, Arc::new(MemoryQuotaCache::new()), config);
    a.engine()
        .import_api_key(NewApiKey::new("admin", Role::Admin), ADMIN)
        .await
        .expect("admin");
    let (ra, rb) = (metering_http::router(a.clone()), metering_http::router(b));
    let key = a
        .engine()
        .create_api_key(NewApiKey::new("reader", Role::Read))
        .await
        .expect("key");
    let path = "/v1/meter/quotas";
    assert_eq!(
        send(&ra, Method::GET, path, Some(&key.secret), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&rb, Method::GET, path, Some(&key.secret), None)
            .await
            .0,
        StatusCode::OK
    );

    // A quota set through A applies to A's next check at once.
    let check = json!({"tenant_id": "t", "resource": "r", "feature": "f", "quantity": 5});
    let (_, _, body) = send(
        &ra,
        Method::POST,
        "/v1/meter/validate",
        Some(ADMIN),
        Some(check.clone()),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["allowed"],
        true
    );
    let quota =
        json!({"tenant_id": "t", "resource": null, "feature": "f", "limit": 1, "period": "daily"});
    assert_eq!(
        send(&ra, Method::PUT, path, Some(ADMIN), Some(quota))
            .await
            .0,
        StatusCode::OK
    );
    let (_, _, body) = send(
        &ra,
        Method::POST,
        "/v1/meter/validate",
        Some(ADMIN),
        Some(check),
    )
    .await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json")["allowed"],
        false
    );

    // Revoked through A: refused by A at once, by B once its entry is older than the TTL.
    let (status, _, _) = send(
        &ra,
        Method::DELETE,
        &format!("/v1/meter/api-keys/{}", key.key.id),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&ra, Method::GET, path, Some(&key.secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        send(&rb, Method::GET, path, Some(&key.secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
}
