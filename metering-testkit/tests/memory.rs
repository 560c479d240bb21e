//! The conformance suites on the in-memory backends: the reference every backend matches.

use metering_core::{MemoryQuotaCache, MemoryStore};

async fn store() -> Option<MemoryStore> {
    Some(MemoryStore::new())
}

async fn cache() -> Option<MemoryQuotaCache> {
    Some(MemoryQuotaCache::new())
}

mod store {
    metering_testkit::store_conformance!(super::store);
}

mod cache {
    metering_testkit::cache_conformance!(super::cache);
}
