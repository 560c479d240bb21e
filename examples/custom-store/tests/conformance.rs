//! The whole conformance suite, run unchanged on the custom store.

use example_custom_store::CountingStore;
use metering::MemoryStore;

async fn setup() -> Option<CountingStore> {
    Some(CountingStore::new(MemoryStore::new()))
}

metering_testkit::store_conformance!(setup);
