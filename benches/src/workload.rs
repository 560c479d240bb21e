//! The realistic workload the load benchmarks send, shared by `metering-load` (over HTTP)
//! and `metering-fill` (straight into a store).

use serde_json::{Value, json};

/// A cheap deterministic mix of `n` (splitmix64), so every run sends the same events.
#[must_use]
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Event `n` of a run: 50 tenants x 10 resources x 5 features (2,500 series), integer
/// quantities 1-5, and about 80 bytes of metadata with 5 keys (`th`: 32 values, `user`:
/// 1,000 values, `seq`: unique). No id and no timestamp; `r` is the event's random word.
#[must_use]
pub fn realistic(n: u64, r: u64) -> Value {
    json!({
        "tenant_id": format!("org_{:03}", r % 50),
        "resource": format!("res_{}", (r / 50) % 10),
        "feature": format!("feat_{}", (r / 500) % 5),
        "quantity": 1 + (r / 2_500) % 5,
        "metadata": {"src": "bench", "run": "r1", "th": n % 32, "seq": n, "user": format!("u{:03}", (r >> 20) % 1000)},
    })
}

/// How many seconds before now a backfill event `r` happened: uniform over `spread_days`.
#[must_use]
pub fn backfill_age_secs(r: u64, spread_days: i64) -> u64 {
    let spread = u64::try_from(spread_days.max(1) * 86_400).unwrap_or(86_400);
    mix(r) % spread
}
