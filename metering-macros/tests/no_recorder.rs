//! Without a recorder, `#[meter]` evaluates none of its options.

use std::sync::atomic::{AtomicU32, Ordering};

use metering::meter;

static EVALUATED: AtomicU32 = AtomicU32::new(0);

fn counted(n: u64) -> u64 {
    EVALUATED.fetch_add(1, Ordering::SeqCst);
    n
}

#[meter(resource = "billing", quantity = counted(n), metadata(n = counted(n)))]
fn work(tenant_id: &str, n: u64) -> u64 {
    n * 2
}

#[test]
fn nothing_is_evaluated_or_recorded() {
    assert!(metering::__private::installed_recorder().is_none());
    assert_eq!(work("org", 21), 42);
    assert_eq!(EVALUATED.load(Ordering::SeqCst), 0);
}
