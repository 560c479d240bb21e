//! `serve --demo`: a month of realistic sample usage for an empty store.
//!
//! 50 tenants of very different sizes (a few big customers, a long tail), each using a few
//! resources; usage follows a daily rhythm (busy working hours, quiet nights) and a weekly
//! one (quiet weekends). A handful of quotas sit near, at and over their limits so the
//! dashboard has alerts to show. The data is generated from a fixed seed.

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc, Weekday};
use metering_core::quantity::NANOS_PER_UNIT;
use metering_core::{
    EventFilter, EventQuery, Feature, MeterKey, MeterSpec, Metering, NewEvent, Paging, Quantity,
    QuotaPeriod, QuotaScope, QuotaSpec, Resource, TenantId, ValidateRequest,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const TENANTS: usize = 50;
const DAYS: i64 = 30;
const CHUNK: usize = 5_000;
/// Scales every rate of [`CATALOG`]; 2.0 gives about 160,000 events.
const RATE_SCALE: f64 = 2.0;

/// How a feature's quantity is drawn.
#[derive(Debug, Clone, Copy)]
enum Amount {
    One,
    Units(u64, u64),
    /// Hundredths, e.g. gigabytes with two decimals.
    Hundredths(u64, u64),
}

/// (resource, feature, events per hour for an average tenant at an average hour, amount)
const CATALOG: &[(&str, &str, f64, Amount)] = &[
    ("billing", "invoice_generate", 0.12, Amount::One),
    ("billing", "invoice_send", 0.10, Amount::One),
    ("api", "api_call", 0.9, Amount::Units(1, 40)),
    ("api", "webhook_delivery", 0.25, Amount::Units(1, 5)),
    ("reports", "report_export", 0.08, Amount::One),
    ("reports", "dashboard_view", 0.45, Amount::One),
    ("storage", "storage_gb", 0.05, Amount::Hundredths(1, 500)),
    ("ai", "tokens", 0.3, Amount::Units(200, 6_000)),
    ("messaging", "email_send", 0.2, Amount::Units(1, 20)),
    ("messaging", "sms_send", 0.06, Amount::One),
];

const OPTIONAL_RESOURCES: &[&str] = &["reports", "storage", "ai", "messaging"];

const NAMES: &[&str] = &[
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "oscorp",
    "gringotts",
    "monarch",
    "vandelay",
    "pied_piper",
    "dunder",
    "sterling",
    "prestige",
];

fn tenant_name(i: usize) -> String {
    let base = NAMES[i % NAMES.len()];
    format!("org_{:03}_{base}", i + 1)
}

/// Busy working hours, quiet nights (UTC).
fn hour_factor(hour: u32) -> f64 {
    match hour {
        0..=5 => 0.25,
        6..=7 => 0.8,
        8..=11 => 2.6,
        12..=13 => 2.0,
        14..=17 => 2.8,
        18..=20 => 1.1,
        _ => 0.5,
    }
}

fn weekday_factor(day: Weekday) -> f64 {
    match day {
        Weekday::Sat => 0.35,
        Weekday::Sun => 0.25,
        Weekday::Mon => 1.1,
        _ => 1.0,
    }
}

/// `rate` rounded randomly to a whole count (its expectation is `rate`), without casts.
fn draw_count(rng: &mut StdRng, mut rate: f64) -> u32 {
    let mut n = 0;
    while rate >= 1.0 {
        n += 1;
        rate -= 1.0;
    }
    if rng.random::<f64>() < rate {
        n += 1;
    }
    n
}

fn draw_amount(rng: &mut StdRng, amount: Amount) -> Quantity {
    match amount {
        Amount::One => Quantity::ONE,
        Amount::Units(lo, hi) => Quantity::from_units(rng.random_range(lo..=hi)),
        Amount::Hundredths(lo, hi) => {
            Quantity::from_nanos(u128::from(rng.random_range(lo..=hi)) * (NANOS_PER_UNIT / 100))
        }
    }
}

struct Tenant {
    id: String,
    weight: f64,
    features: Vec<usize>,
}

fn tenants(rng: &mut StdRng) -> Vec<Tenant> {
    let mut list = Vec::with_capacity(TENANTS);
    let mut total = 0.0;
    let mut rank = 1.0_f64;
    for i in 0..TENANTS {
        // A Zipf-like spread: the first tenants are much bigger than the tail.
        let weight = (1.0 / rank.powf(0.9)) * (0.8 + 0.4 * rng.random::<f64>());
        rank += 1.0;
        total += weight;
        let mut resources = vec!["billing", "api"];
        for r in OPTIONAL_RESOURCES {
            if rng.random::<f64>() < 0.55 {
                resources.push(r);
            }
        }
        let features = CATALOG
            .iter()
            .enumerate()
            .filter(|(_, (r, ..))| resources.contains(r))
            .map(|(i, _)| i)
            .collect();
        list.push(Tenant {
            id: tenant_name(i),
            weight,
            features,
        });
    }
    // Normalise so the average weight is 1.
    let mean = total / 50.0; // TENANTS, as a float without a cast
    for t in &mut list {
        t.weight /= mean;
    }
    list
}

/// Loads the sample when the store holds no events; otherwise leaves it alone.
pub(crate) async fn load_if_empty(engine: &Metering) -> anyhow::Result<()> {
    let probe = EventQuery::new(
        EventFilter::all(),
        Paging::Page {
            page: 1,
            page_size: 1,
        },
    );
    if !engine.list_events(&probe).await?.events.is_empty() {
        tracing::info!("--demo: the store already holds events; not loading the sample");
        return Ok(());
    }
    let started = std::time::Instant::now();
    let now = engine.now();
    let mut rng = StdRng::seed_from_u64(0x6d65_7465_7269_6e67);
    let tenants = tenants(&mut rng);
    let first_hour = (now - Duration::days(DAYS))
        .duration_trunc(Duration::hours(1))
        .context("rounding the start hour")?;

    let mut batch = Vec::with_capacity(CHUNK);
    let mut total = 0_usize;
    let mut hour = first_hour;
    while hour < now {
        let rhythm = hour_factor(hour.hour()) * weekday_factor(hour.weekday());
        for tenant in &tenants {
            for &f in &tenant.features {
                let (resource, feature, rate, amount) = CATALOG[f];
                let noise = 0.7 + 0.6 * rng.random::<f64>();
                let count =
                    draw_count(&mut rng, RATE_SCALE * rate * tenant.weight * rhythm * noise);
                for _ in 0..count {
                    let at = hour + Duration::seconds(rng.random_range(0..3600));
                    if at >= now {
                        continue;
                    }
                    let mut event = NewEvent::new(tenant.id.as_str(), resource, feature)
                        .with_quantity(draw_amount(&mut rng, amount))
                        .with_timestamp(at);
                    let mut metadata = serde_json::Map::new();
                    if rng.random::<f64>() < 0.3 {
                        let user = rng.random_range(1..=40);
                        metadata.insert("user".into(), json!(format!("u_{user:03}")));
                        metadata.insert("source".into(), json!("demo"));
                    }
                    if feature == "tokens" {
                        // Taken from the time, so the random draws (and the data) stay as
                        // they were before models were added.
                        let model = ["gpt-4o", "o3", "claude"][at.second() as usize % 3];
                        let region = ["eu", "us"][at.minute() as usize % 2];
                        metadata.insert("model".into(), json!(model));
                        metadata.insert("region".into(), json!(region));
                    }
                    if !metadata.is_empty() {
                        event = event.with_metadata(metadata);
                    }
                    batch.push(event);
                    if batch.len() == CHUNK {
                        total += flush(engine, &mut batch).await?;
                    }
                }
            }
        }
        hour += Duration::hours(1);
    }
    total += flush(engine, &mut batch).await?;
    let mut quotas = set_quotas(engine, &tenants, now).await?;
    let meters = define_meters(engine).await?;
    // A quota on a meter: at most 50 active users per tenant and month.
    engine
        .upsert_quota(QuotaSpec::on_meter(
            QuotaScope::AllTenants,
            MeterKey::new("active_users").map_err(anyhow::Error::msg)?,
            Quantity::from_units(50),
            QuotaPeriod::Monthly,
        ))
        .await?;
    quotas += 1;
    println!(
        "Demo data loaded: {TENANTS} tenants, {total} events over {DAYS} days, {quotas} quotas, {meters} meters ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn flush(engine: &Metering, batch: &mut Vec<NewEvent>) -> anyhow::Result<usize> {
    if batch.is_empty() {
        return Ok(0);
    }
    let receipt = engine
        .ingest(std::mem::take(batch))
        .await
        .context("loading demo events")?;
    Ok(receipt.events_processed)
}

/// `usage * percent / 100` in whole units, at least one.
fn scaled(usage: Quantity, percent: u128) -> Quantity {
    let units = (usage.nanos() * percent / 100 / NANOS_PER_UNIT).max(1);
    Quantity::from_nanos(units * NANOS_PER_UNIT)
}

async fn usage(
    engine: &Metering,
    tenant: &str,
    resource: Option<&str>,
    feature: &str,
    period: QuotaPeriod,
) -> anyhow::Result<Quantity> {
    let mut request = ValidateRequest::new(TenantId::new(tenant)?, Feature::new(feature)?);
    if let Some(r) = resource {
        request = request.with_resource(Resource::new(r)?);
    }
    request.period = Some(period);
    Ok(engine.validate(request).await?.current_usage)
}

/// Quotas near, at and over their limits for the biggest tenants, and defaults for all.
async fn set_quotas(
    engine: &Metering,
    tenants: &[Tenant],
    _now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    // (tenant index, resource, feature, period, limit as percent of current usage)
    let plan: &[(usize, Option<&str>, &str, QuotaPeriod, u128)] = &[
        (0, Some("api"), "api_call", QuotaPeriod::Monthly, 85), // over
        (1, Some("api"), "api_call", QuotaPeriod::Monthly, 104), // near (alert)
        (2, None, "invoice_generate", QuotaPeriod::Monthly, 100), // exactly at the limit
        (3, Some("api"), "api_call", QuotaPeriod::Daily, 110),  // near, resets daily
        (4, None, "webhook_delivery", QuotaPeriod::Monthly, 300), // comfortable
        (5, Some("api"), "api_call", QuotaPeriod::Hourly, 95),  // over this hour
        (6, Some("billing"), "invoice_send", QuotaPeriod::Yearly, 500), // comfortable
    ];
    let mut count = 0;
    for &(index, resource, feature, period, percent) in plan {
        let tenant = &tenants[index].id;
        let used = usage(engine, tenant, resource, feature, period).await?;
        let mut spec = QuotaSpec::new(
            QuotaScope::Tenant(TenantId::new(tenant)?),
            Feature::new(feature)?,
            scaled(used, percent),
            period,
        );
        if let Some(r) = resource {
            spec = spec.with_resource(Resource::new(r)?);
        }
        engine.upsert_quota(spec).await?;
        count += 1;
    }
    // Defaults for every tenant: generous, so most tenants are comfortably inside.
    for (feature, limit, period) in [
        ("invoice_generate", 500_u64, QuotaPeriod::Monthly),
        ("api_call", 400_000, QuotaPeriod::Monthly),
        ("sms_send", 300, QuotaPeriod::Monthly),
    ] {
        let spec = QuotaSpec::new(
            QuotaScope::AllTenants,
            Feature::new(feature)?,
            Quantity::from_units(limit),
            period,
        )
        .with_alert_threshold(90);
        engine.upsert_quota(spec).await?;
        count += 1;
    }
    Ok(count)
}

/// The sample meters: LLM tokens by model and region, monthly active users, peak storage
/// and API calls.
async fn define_meters(engine: &Metering) -> anyhow::Result<usize> {
    let meters = [
        (
            "llm_tokens",
            json!({"name": "LLM tokens by model", "aggregation": "sum",
                   "filter": {"resource": "ai", "feature": "tokens"},
                   "dimensions": ["model", "region"]}),
        ),
        (
            "active_users",
            json!({"name": "Active users", "aggregation": "unique_count",
                   "value": "metadata.user", "dimensions": ["source"]}),
        ),
        (
            "peak_storage",
            json!({"name": "Peak storage (GB)", "aggregation": "max",
                   "filter": {"resource": "storage", "feature": "storage_gb"}}),
        ),
        (
            "api_calls",
            json!({"name": "API calls", "aggregation": "count",
                   "filter": {"resource": "api", "feature": "api_call"}}),
        ),
    ];
    for (key, body) in &meters {
        let raw = serde_json::value::to_raw_value(body)?;
        let spec = MeterSpec::from_json(&raw).context("a demo meter")?;
        engine
            .define_meter(&MeterKey::new(*key).map_err(anyhow::Error::msg)?, &spec)
            .await?;
    }
    Ok(meters.len())
}
