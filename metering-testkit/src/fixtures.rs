//! Test data: namespaced names, events and a fixed clock.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use metering_core::{
    Event, EventId, Feature, ManualClock, Metering, MeteringBuilder, Quantity, QuotaCache,
    Resource, Store, TenantId,
};
use rand::Rng;

/// A random prefix that keeps one case's tenants apart from every other case's.
#[derive(Debug, Clone)]
pub struct Namespace(String);

impl Namespace {
    /// A fresh namespace.
    #[must_use]
    pub fn new() -> Self {
        Namespace(format!(
            "t{:012x}",
            rand::rng().random::<u64>() & 0xffff_ffff_ffff
        ))
    }

    /// The tenant `name` in this namespace.
    #[must_use]
    pub fn tenant(&self, name: &str) -> TenantId {
        TenantId::new(format!("{}-{name}", self.0)).expect("a valid tenant id")
    }

    /// An event id unique to this namespace.
    #[must_use]
    pub fn id(&self, name: &str) -> EventId {
        EventId::new(format!("{}-{name}", self.0)).expect("a valid event id")
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self::new()
    }
}

/// The instant every case treats as "now": 2025-11-20T10:30:00Z.
#[must_use]
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 11, 20, 10, 30, 0)
        .single()
        .expect("a valid instant")
}

/// Parses RFC 3339 text.
#[must_use]
pub fn at(text: &str) -> DateTime<Utc> {
    metering_core::time::parse_rfc3339(text).expect("a valid timestamp")
}

/// A resource name.
#[must_use]
pub fn resource(name: &str) -> Resource {
    Resource::new(name).expect("a valid resource")
}

/// A feature name.
#[must_use]
pub fn feature(name: &str) -> Feature {
    Feature::new(name).expect("a valid feature")
}

/// A quantity from decimal text.
#[must_use]
pub fn qty(text: &str) -> Quantity {
    text.parse().expect("a valid quantity")
}

/// A stored-form event.
#[must_use]
pub fn event(
    id: EventId,
    tenant: &TenantId,
    res: &str,
    feat: &str,
    quantity: Quantity,
    timestamp: DateTime<Utc>,
) -> Event {
    Event {
        id,
        tenant_id: tenant.clone(),
        resource: resource(res),
        feature: feature(feat),
        quantity,
        timestamp,
        metadata: None,
        created_at: now(),
        amends: None,
        voided_at: None,
        void_reason: None,
    }
}

/// `n` events of one unit for `tenant`, one minute apart ending just before `end`.
#[must_use]
pub fn series(
    ns: &Namespace,
    tenant: &TenantId,
    tag: &str,
    n: usize,
    end: DateTime<Utc>,
) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let minutes = i64::try_from(n - i).expect("small n");
            event(
                ns.id(&format!("{tag}-{i}")),
                tenant,
                "api",
                "search",
                Quantity::ONE,
                end - Duration::minutes(minutes),
            )
        })
        .collect()
}

/// An engine over `store` with a manual clock at [`now`].
#[must_use]
pub fn engine<S: Store + Clone>(store: &S) -> (Metering, Arc<ManualClock>) {
    engine_with(Metering::builder(store.clone()))
}

/// An engine over `store` and `cache` with a manual clock at [`now`].
#[must_use]
pub fn engine_with_cache<S: Store + Clone, C: QuotaCache + Clone>(
    store: &S,
    cache: &C,
) -> (Metering, Arc<ManualClock>) {
    engine_with(Metering::builder(store.clone()).quota_cache(cache.clone()))
}

fn engine_with(builder: MeteringBuilder) -> (Metering, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(now()));
    (builder.clock(clock.clone()).build(), clock)
}
