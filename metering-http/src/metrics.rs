//! Prometheus metrics: one recorder per [`Metrics`] value, rendered at `GET /metrics`.
//!
//! Every server instance (every [`crate::AppState`]) owns its own
//! [`PrometheusRecorder`] and records into it directly through the [`metrics::Recorder`]
//! trait, instead of installing a process-wide recorder: tests and embedders can build
//! many routers in one process and each `/metrics` shows only its own traffic. The
//! `metrics` macros are therefore not used; [`Metrics`] has one method per measurement.
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `metering_http_requests_total` | counter | `method`, `route`, `status` | requests answered; `route` is the route template (`/v1/meter/quotas/{id}`), `unmatched` for paths no route serves |
//! | `metering_http_request_duration_seconds` | histogram | `method`, `route`, `status` | time to the response head |
//! | `metering_events_ingested_total` | counter | | events newly written by `POST /v1/meter/events` |
//! | `metering_events_duplicates_total` | counter | | events whose `id` was already stored |
//! | `metering_ingest_batch_events` | histogram | | events per accepted `POST /v1/meter/events` |
//! | `metering_commit_events` | histogram | | events per store insert transaction: a group commit of concurrent requests, or one large batch |
//! | `metering_quota_decisions_total` | counter | `outcome` (`allowed`, `denied`, `no_quota`), `consume` | `POST /v1/meter/validate` answers |
//! | `metering_rate_limited_total` | counter | | requests refused with 429 |
//! | `metering_overload_total` | counter | `reason` (`heavy_reads`) | requests refused with 503 because they waited the request timeout for a slot |
//! | `metering_store_duration_seconds` | histogram | `method`, `result` (`ok`, `error`) | each store call |
//! | `metering_cache_duration_seconds` | histogram | `method`, `result` | each quota cache call |
//! | `metering_webhook_attempts_total` | counter | `outcome` (`delivered`, `retry`, `failed`, `gone`) | attempts at sending an alert to a webhook endpoint |
//! | `metering_webhook_attempt_duration_seconds` | histogram | `outcome` | time from the request to its answer (or the timeout) |
//! | `metering_webhook_deliveries` | gauge | `status` (`pending`, `delivered`, `failed`) | deliveries in the store's outbox, read by the delivery loop every 10 s |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use metrics::{Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Size buckets, in events: 1 to 10,000.
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
];

/// The metrics of one server instance. Cheap to clone; clones share the registry.
///
/// # Examples
///
/// ```
/// let metrics = metering_http::Metrics::new();
/// metrics.record_ingest(3, 1);
/// assert!(metrics.render().contains("metering_events_ingested_total 2"));
/// ```
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a call succeeded, as a label value.
pub(crate) fn result_label<T, E>(result: &Result<T, E>) -> &'static str {
    if result.is_ok() { "ok" } else { "error" }
}

impl Metrics {
    /// A new, empty registry.
    #[must_use]
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), SIZE_BUCKETS))
            .expect("the bucket lists are constant and not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics {
            inner: Arc::new(Inner { recorder, handle }),
        };
        metrics.describe();
        metrics
    }

    fn describe(&self) {
        let r = &self.inner.recorder;
        let describe_counter = |name: &'static str, text: &'static str| {
            r.describe_counter(name.into(), None, SharedString::from(text));
        };
        let describe_histogram = |name: &'static str, unit: Unit, text: &'static str| {
            r.describe_histogram(name.into(), Some(unit), SharedString::from(text));
        };
        describe_counter(
            "metering_http_requests_total",
            "HTTP requests answered, by method, route template and status",
        );
        describe_histogram(
            "metering_http_request_duration_seconds",
            Unit::Seconds,
            "HTTP request latency, by method, route template and status",
        );
        describe_counter(
            "metering_events_ingested_total",
            "Events newly written by POST /v1/meter/events",
        );
        describe_counter(
            "metering_events_duplicates_total",
            "Events whose id was already stored (not written again)",
        );
        describe_histogram(
            "metering_ingest_batch_events",
            Unit::Count,
            "Events per accepted POST /v1/meter/events",
        );
        describe_histogram(
            "metering_commit_events",
            Unit::Count,
            "Events per store insert transaction (a group commit, or one large batch)",
        );
        describe_counter(
            "metering_quota_decisions_total",
            "Quota checks answered, by outcome (allowed, denied, no_quota) and consume",
        );
        describe_counter(
            "metering_overload_total",
            "Requests refused with 503 after waiting the request timeout for a slot",
        );
        describe_counter(
            "metering_rate_limited_total",
            "Requests refused with 429 by the per-key rate limit",
        );
        describe_histogram(
            "metering_store_duration_seconds",
            Unit::Seconds,
            "Store call latency, by method and result",
        );
        describe_histogram(
            "metering_cache_duration_seconds",
            Unit::Seconds,
            "Quota cache call latency, by method and result",
        );
    }

    /// The registry in the Prometheus text format.
    #[must_use]
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Records one answered HTTP request.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = vec![
            Label::new("method", method.to_owned()),
            Label::new("route", route.to_owned()),
            Label::new("status", status.to_string()),
        ];
        self.counter("metering_http_requests_total", labels.clone())
            .increment(1);
        self.histogram("metering_http_request_duration_seconds", labels)
            .record(elapsed);
    }

    /// Records an accepted ingest request of `events` events, `duplicates` of which were
    /// already stored.
    pub fn record_ingest(&self, events: usize, duplicates: usize) {
        let new = events.saturating_sub(duplicates);
        self.counter("metering_events_ingested_total", Vec::new())
            .increment(u64::try_from(new).unwrap_or(u64::MAX));
        self.counter("metering_events_duplicates_total", Vec::new())
            .increment(u64::try_from(duplicates).unwrap_or(u64::MAX));
        self.histogram("metering_ingest_batch_events", Vec::new())
            .record(count(events));
    }

    /// Records one store insert transaction of `events` events.
    pub fn record_commit(&self, events: usize) {
        self.histogram("metering_commit_events", Vec::new())
            .record(count(events));
    }

    /// Records a quota decision: `outcome` is `allowed`, `denied` or `no_quota`.
    pub fn record_quota_decision(&self, outcome: &'static str, consume: bool) {
        self.counter(
            "metering_quota_decisions_total",
            vec![
                Label::new("outcome", outcome),
                Label::new("consume", if consume { "true" } else { "false" }),
            ],
        )
        .increment(1);
    }

    /// Records a request refused with 503 after waiting the request timeout for a slot of
    /// kind `reason`.
    pub fn record_overload(&self, reason: &'static str) {
        self.counter(
            "metering_overload_total",
            vec![Label::new("reason", reason)],
        )
        .increment(1);
    }

    /// Records a request refused by the rate limit.
    pub fn record_rate_limited(&self) {
        self.counter("metering_rate_limited_total", Vec::new())
            .increment(1);
    }

    /// Records one attempt at a webhook delivery: `outcome` is `delivered`, `retry`,
    /// `failed` or `gone`.
    pub fn record_webhook_attempt(&self, outcome: &'static str, elapsed: Duration) {
        let labels = vec![Label::new("outcome", outcome)];
        self.counter("metering_webhook_attempts_total", labels.clone())
            .increment(1);
        self.histogram("metering_webhook_attempt_duration_seconds", labels)
            .record(elapsed);
    }

    /// Records how many deliveries the outbox holds in each state.
    pub fn record_webhook_deliveries(&self, counts: metering_core::DeliveryCounts) {
        for (status, n) in [
            ("pending", counts.pending),
            ("delivered", counts.delivered),
            ("failed", counts.failed),
        ] {
            #[allow(clippy::cast_precision_loss)]
            self.inner
                .recorder
                .register_gauge(
                    &Key::from_parts(
                        "metering_webhook_deliveries",
                        vec![Label::new("status", status)],
                    ),
                    &METADATA,
                )
                .set(n as f64);
        }
    }

    /// Records a store call.
    pub fn record_store_call(&self, method: &'static str, result: &'static str, elapsed: Duration) {
        self.histogram(
            "metering_store_duration_seconds",
            vec![Label::new("method", method), Label::new("result", result)],
        )
        .record(elapsed);
    }

    /// Records a quota cache call.
    pub fn record_cache_call(&self, method: &'static str, result: &'static str, elapsed: Duration) {
        self.histogram(
            "metering_cache_duration_seconds",
            vec![Label::new("method", method), Label::new("result", result)],
        )
        .record(elapsed);
    }
}

/// A count as a histogram sample (exact below 2^53, which any batch is).
#[allow(clippy::cast_precision_loss)]
fn count(n: usize) -> f64 {
    n as f64
}
