//! What `#[meter]` records, with a collecting recorder installed.

use std::sync::{Mutex, OnceLock};

use metering::{NewEvent, Quantity, Recorder, meter};

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<NewEvent>>);

impl Recorder for Collect {
    fn record(&self, event: NewEvent) {
        self.0.lock().expect("not poisoned").push(event);
    }
}

static EVENTS: OnceLock<&'static Collect> = OnceLock::new();

/// Installs the collector once per test binary; tests tell their events apart by tenant.
fn events_of(tenant: &str) -> Vec<NewEvent> {
    let collect = EVENTS.get_or_init(|| {
        let collect: &'static Collect = Box::leak(Box::default());
        metering::set_recorder(Forward(collect)).expect("the only recorder");
        collect
    });
    collect
        .0
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|e| e.tenant_id == tenant)
        .cloned()
        .collect()
}

struct Forward(&'static Collect);

impl Recorder for Forward {
    fn record(&self, event: NewEvent) {
        self.0.record(event);
    }
}

#[meter(resource = "billing", feature = "invoice_generate")]
fn invoice(tenant_id: &str, fail: bool) -> Result<u32, String> {
    if fail {
        return Err("no".into());
    }
    Ok(7)
}

#[meter(resource = "billing", on = "always")]
fn invoice_always(tenant_id: String, fail: bool) -> Result<(), String> {
    if fail { Err(tenant_id) } else { Ok(()) }
}

#[meter(resource = "search", feature = "query", quantity = terms.len(), tenant = org,
        metadata(first = terms.first().cloned(), count = terms.len()))]
fn search(org: String, terms: Vec<String>) -> usize {
    // Moves the arguments: the options were evaluated before.
    let owned = terms;
    drop(org);
    owned.len()
}

#[meter(resource = "ai", feature = "tokens", quantity = 2.5)]
async fn complete(tenant_id: String, prompt: String) -> Result<String, std::io::Error> {
    tokio::task::yield_now().await;
    let upper = prompt.to_uppercase();
    let _parsed: u8 = "7".parse().map_err(std::io::Error::other)?;
    Ok(upper)
}

struct Service {
    org: String,
    calls: u32,
}

impl Service {
    #[meter(resource = "svc", feature = "read", tenant = self.org.as_str())]
    fn read(&self) -> u32 {
        self.calls
    }

    #[meter(resource = "svc", feature = "write", tenant = self.org.clone(), quantity = n)]
    async fn write(&mut self, n: u64) -> Result<u32, String> {
        self.calls += 1;
        if n == 0 {
            return Err("nothing".into());
        }
        Ok(self.calls)
    }

    #[meter(resource = "svc", feature = "consume", tenant = self.org.clone())]
    fn into_org(self) -> String {
        self.org
    }
}

#[test]
fn sync_results_are_metered_on_success_only() {
    events_of("t_sync");
    assert_eq!(invoice("t_sync", false), Ok(7));
    assert!(invoice("t_sync", true).is_err());
    let events = events_of("t_sync");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].resource, "billing");
    assert_eq!(events[0].feature, "invoice_generate");
    assert_eq!(events[0].quantity, Some(Quantity::ONE));
}

#[test]
fn on_always_meters_errors_too_and_feature_defaults_to_the_name() {
    events_of("t_always");
    invoice_always("t_always".into(), false).expect("ok");
    invoice_always("t_always".into(), true).expect_err("err");
    let events = events_of("t_always");
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.feature == "invoice_always"));
}

#[test]
fn options_are_evaluated_before_the_body_moves_the_arguments() {
    events_of("t_search");
    let n = search("t_search".into(), vec!["a".into(), "b".into(), "c".into()]);
    assert_eq!(n, 3);
    let events = events_of("t_search");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].quantity, Some(Quantity::from_units(3)));
    let metadata = events[0].metadata.as_ref().expect("metadata");
    assert_eq!(metadata["first"], "a");
    assert_eq!(metadata["count"], 3);
}

#[tokio::test]
async fn async_functions_and_fractional_quantities() {
    events_of("t_async");
    let out = complete("t_async".into(), "hi".into()).await.expect("ok");
    assert_eq!(out, "HI");
    let events = events_of("t_async");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].quantity, Some("2.5".parse().expect("a quantity")));
}

#[tokio::test]
async fn methods_with_every_receiver() {
    events_of("t_methods");
    let mut svc = Service {
        org: "t_methods".into(),
        calls: 0,
    };
    assert_eq!(svc.read(), 0);
    assert_eq!(svc.write(4).await, Ok(1));
    assert!(svc.write(0).await.is_err());
    assert_eq!(svc.into_org(), "t_methods");
    let events = events_of("t_methods");
    let features: Vec<_> = events.iter().map(|e| e.feature.as_str()).collect();
    assert_eq!(features, ["read", "write", "consume"]);
    assert_eq!(events[1].quantity, Some(Quantity::from_units(4)));
}
