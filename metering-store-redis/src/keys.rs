//! How streams and counters are named inside Redis.
//!
//! Layout under the prefix `P`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `P{<stream>}:b` | sorted set | ingest marks (member: mark id, score: expiry in ms) |
//! | `P{<stream>}:c` | hash | `v` (version) and the counters of one stream |
//!
//! `<stream>` is `<byte length of the tenant>:<tenant>:<feature>`: the length makes the
//! encoding unambiguous whatever the names contain (`:`, `|`, any Unicode; Redis keys are
//! binary safe). The braces are a Redis Cluster hash tag: both keys of a stream share
//! everything up to and including the first `}` after the first `{`, so they always land in
//! one hash slot, whatever the prefix or the names contain. A counter is two hash fields,
//! `u|<suffix>` (whole units) and `n|<suffix>` (nano-units), where `<suffix>` is
//! `<window start µs>|<window end µs>|<resource>` and `<resource>` is `*` for any resource or
//! `=` followed by its name.

use metering_core::{CounterKey, Quantity, UsageStream};

/// The two keys of one stream, in the order the scripts take them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct StreamKeys {
    /// The sorted set of ingest marks.
    pub(crate) marks: String,
    /// The hash of the version and the counters.
    pub(crate) counters: String,
}

impl StreamKeys {
    /// The keys of `stream` under `prefix`.
    pub(crate) fn new(prefix: &str, stream: &UsageStream) -> StreamKeys {
        let tenant = stream.tenant_id.as_str();
        let base = format!(
            "{prefix}{{{}:{tenant}:{}}}",
            tenant.len(),
            stream.feature.as_str()
        );
        StreamKeys {
            marks: format!("{base}:b"),
            counters: format!("{base}:c"),
        }
    }
}

/// `text` with Redis glob characters escaped, to match it literally in a `SCAN` pattern.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The field suffix naming one counter within its stream's hash.
pub(crate) fn counter(key: &CounterKey) -> String {
    let start = key.window.start.timestamp_micros();
    let end = key.window.end.timestamp_micros();
    match &key.scope.resource {
        None => format!("{start}|{end}|*"),
        Some(resource) => format!("{start}|{end}|={}", resource.as_str()),
    }
}

/// A quantity as the (units, nanos) texts the scripts add with `HINCRBY`.
pub(crate) fn parts(quantity: Quantity) -> (String, String) {
    (
        quantity.units().to_string(),
        quantity.fraction_nanos().to_string(),
    )
}

/// The largest counter kept in Redis, in whole units; bigger ones are not cached (the scripts
/// stop at the same bound, well inside the signed 64-bit range of `HINCRBY`).
pub(crate) const MAX_CACHED_UNITS: u128 = 4_000_000_000_000_000_000;

/// Reads a counter back from its two fields (nanos may exceed one unit; it is carried).
pub(crate) fn quantity(units: &str, nanos: &str) -> Option<Quantity> {
    let units: u128 = units.parse().ok()?;
    let nanos: u128 = nanos.parse().ok()?;
    Some(Quantity::from_parts(units, nanos))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use metering_core::{Feature, Resource, TenantId, UsageScope, Window};

    use super::*;

    fn key(tenant: &str, resource: Option<&str>) -> CounterKey {
        let start = Utc
            .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
            .single()
            .expect("valid");
        let end = Utc
            .with_ymd_and_hms(2025, 12, 1, 0, 0, 0)
            .single()
            .expect("valid");
        CounterKey {
            scope: UsageScope {
                tenant_id: TenantId::new(tenant).expect("valid"),
                resource: resource.map(|r| Resource::new(r).expect("valid")),
                feature: Feature::new("a:b").expect("valid"),
            },
            window: Window { start, end },
        }
    }

    #[test]
    fn names_are_unambiguous() {
        // "a:b" + "c" and "a" + "b:c" must not collide.
        let one = UsageStream {
            tenant_id: TenantId::new("a:b").expect("valid"),
            feature: Feature::new("c").expect("valid"),
        };
        let two = UsageStream {
            tenant_id: TenantId::new("a").expect("valid"),
            feature: Feature::new("b:c").expect("valid"),
        };
        assert_ne!(StreamKeys::new("p:", &one), StreamKeys::new("p:", &two));
        let keys = StreamKeys::new("p:", &key("ü:x", None).stream());
        assert_eq!(keys.marks, "p:{4:ü:x:a:b}:b");
        assert_eq!(keys.counters, "p:{4:ü:x:a:b}:c");
        assert_eq!(
            counter(&key("t", None)),
            "1761955200000000|1764547200000000|*"
        );
        assert_eq!(
            counter(&key("t", Some("|*"))),
            "1761955200000000|1764547200000000|=|*"
        );
    }

    #[test]
    fn a_streams_keys_share_one_hash_slot() {
        use redis::cluster_routing::Slot;
        for (prefix, tenant) in [
            ("metering:", "org_1"),
            ("a{b", "t"),
            ("a}b{", "t"),
            ("{x}", "t"),
            ("p:", "}{"),
            ("p:", "{}"),
        ] {
            let stream = UsageStream {
                tenant_id: TenantId::new(tenant).expect("valid"),
                feature: Feature::new("f").expect("valid"),
            };
            let keys = StreamKeys::new(prefix, &stream);
            assert_eq!(
                Slot::for_key(&keys.marks),
                Slot::for_key(&keys.counters),
                "{keys:?}"
            );
        }
        // Different tenants spread over the slots.
        let slots: std::collections::HashSet<_> = (0..50)
            .map(|i| {
                let stream = UsageStream {
                    tenant_id: TenantId::new(format!("org_{i}")).expect("valid"),
                    feature: Feature::new("f").expect("valid"),
                };
                Slot::for_key(StreamKeys::new("metering:", &stream).counters)
            })
            .collect();
        assert!(slots.len() > 40, "{}", slots.len());
    }

    #[test]
    fn glob_escapes_specials() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
        assert_eq!(glob_escape("metering:"), "metering:");
    }

    #[test]
    fn quantities_round_trip() {
        let q: Quantity = "12345678901234.000000001".parse().expect("valid");
        let (u, n) = parts(q);
        assert_eq!((u.as_str(), n.as_str()), ("12345678901234", "1"));
        assert_eq!(quantity(&u, &n), Some(q));
        assert_eq!(
            quantity("1", "1500000000"),
            Some("2.5".parse().expect("valid"))
        );
        assert_eq!(quantity("x", "0"), None);
    }
}
