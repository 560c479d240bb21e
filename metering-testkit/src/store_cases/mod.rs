//! The store conformance cases: one public async function per documented behavior of
//! [`Store`] (and of the engine over it). Each takes a fresh store.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{Duration, TimeZone, Utc};
use chrono_tz::Tz;
use metering_core::{
    AggregateQuery, ApiKeyId, ConsumeOutcome, Cursor, Error, Event, EventFilter, EventQuery,
    GroupBy, MemoryQuotaCache, Metering, NewApiKey, NewEvent, Paging, Quantity, QuotaPeriod,
    QuotaScope, QuotaSpec, Role, Store, TenantId, UsageLimit, UsageScope, ValidateRequest, Window,
    WindowType,
};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

use crate::fixtures::{Namespace, at, engine, event, feature, now, qty, resource, series};
use crate::recount;

mod aggregate;
mod alerts;
mod api_keys;
mod consume;
mod corrections;
mod events;
mod meter_quotas;
mod meters;
mod quotas;
mod webhooks;

pub use aggregate::*;
pub use alerts::*;
pub use api_keys::*;
pub use consume::*;
pub use corrections::*;
pub use events::*;
pub use meter_quotas::*;
pub use meters::*;
pub use quotas::*;
pub use webhooks::*;

const GROUPINGS: [&str; 8] = [
    "",
    "tenant_id",
    "resource",
    "feature",
    "tenant_id,resource",
    "tenant_id,feature",
    "resource,feature",
    "tenant_id,resource,feature",
];

async fn list_all<S: Store>(store: &S, filter: EventFilter) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_events(&EventQuery::new(
                filter.clone(),
                Paging::Cursor {
                    after: after.clone(),
                    page_size: 1000,
                },
            ))
            .await
            .expect("list events");
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => return out,
        }
    }
}

fn tenant_filter(t: &TenantId) -> EventFilter {
    EventFilter::all().tenant(t.clone())
}
