//! [`forward_store!`](crate::forward_store): `Store` decorators without forwarding by hand.

/// Implements [`Store`](crate::Store) for a decorator: the methods named after `forward:` go
/// to the store in the named field (`inner`, or `0` for a tuple struct), unchanged; the methods written out in the block are the
/// decorator's own. A method must be in exactly one of the two places (the compiler reports
/// a missing or repeated one).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use metering_core::{Event, InsertOutcome, MemoryStore, Result, Store};
///
/// /// Counts the events written through it.
/// #[derive(Debug, Default)]
/// struct Counting<S> {
///     inner: S,
///     written: AtomicUsize,
/// }
///
/// metering_core::forward_store! {
///     impl[S: Store] Store for Counting<S> => inner;
///     forward: [list_events, event, replacement_of, void_event, amend_event, aggregate, sum_usage, consume, tally_meter, consume_metered,
///               upsert_quota, list_quotas, quota,
///               quota_candidates, delete_quota, insert_api_key, api_key_by_hash,
///               list_api_keys, api_key, revoke_api_key, record_key_usage, put_meter,
///               list_meters, meter, delete_meter, query_meter, insert_webhook,
///               list_webhooks, webhook, delete_webhook, insert_events_watched,
///               record_alert, ended_alert_periods, list_deliveries, claim_deliveries,
///               finish_delivery, retry_delivery, delivery_counts, prune_alerts, health];
///
///     async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome> {
///         let outcome = self.inner.insert_events(events).await?;
///         self.written.fetch_add(events.len(), Ordering::Relaxed);
///         Ok(outcome)
///     }
/// }
///
/// let store: Arc<dyn Store> = Arc::new(Counting { inner: MemoryStore::new(), written: AtomicUsize::new(0) });
/// # let _ = store;
/// ```
#[macro_export]
macro_rules! forward_store {
    (
        impl $([$($generics:tt)*])? Store for $ty:ty => $inner:tt ;
        forward: [$($method:ident),* $(,)?] ;
        $($body:tt)*
    ) => {
        $crate::forward_store!(@munch [$($($generics)*)?] [$ty] [$inner] [$($method)*] [] $($body)*);
    };
    (@munch [$($generics:tt)*] [$ty:ty] $inner:tt [] [$($acc:tt)*] $($body:tt)*) => {
        #[$crate::__async_trait]
        impl<$($generics)*> $crate::Store for $ty {
            $($acc)*
            $($body)*
        }
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [insert_events $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn insert_events(&self, events: &[$crate::Event]) -> $crate::Result<$crate::InsertOutcome> {
                self.$($inner)+.insert_events(events).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_events $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_events(&self, query: &$crate::EventQuery) -> $crate::Result<$crate::EventPage> {
                self.$($inner)+.list_events(query).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [event $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn event(&self, id: &$crate::EventId) -> $crate::Result<::std::option::Option<$crate::Event>> {
                self.$($inner)+.event(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [replacement_of $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn replacement_of(&self, id: &$crate::EventId) -> $crate::Result<::std::option::Option<$crate::Event>> {
                self.$($inner)+.replacement_of(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [void_event $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn void_event(&self, id: &$crate::EventId, reason: ::std::option::Option<&str>, at: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<::std::option::Option<$crate::Event>> {
                self.$($inner)+.void_event(id, reason, at).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [amend_event $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn amend_event(&self, replacement: &$crate::Event, reason: ::std::option::Option<&str>, at: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<$crate::AmendOutcome> {
                self.$($inner)+.amend_event(replacement, reason, at).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [aggregate $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn aggregate(&self, query: &$crate::AggregateQuery) -> $crate::Result<::std::vec::Vec<$crate::AggregateRow>> {
                self.$($inner)+.aggregate(query).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [sum_usage $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn sum_usage(&self, scope: &$crate::UsageScope, window: $crate::Window) -> $crate::Result<$crate::Quantity> {
                self.$($inner)+.sum_usage(scope, window).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [consume $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn consume(&self, event: &$crate::Event, limit: &$crate::UsageLimit, watch: ::std::option::Option<&$crate::AlertWatch>) -> $crate::Result<$crate::ConsumeOutcome> {
                self.$($inner)+.consume(event, limit, watch).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [tally_meter $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn tally_meter(&self, limit: &$crate::MeterLimit) -> $crate::Result<$crate::MeterTally> {
                self.$($inner)+.tally_meter(limit).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [consume_metered $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn consume_metered(&self, event: &$crate::Event, limit: &$crate::MeterLimit, watch: ::std::option::Option<&$crate::AlertWatch>) -> $crate::Result<$crate::MeteredConsume> {
                self.$($inner)+.consume_metered(event, limit, watch).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [upsert_quota $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn upsert_quota(&self, spec: &$crate::QuotaSpec, now: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<$crate::Quota> {
                self.$($inner)+.upsert_quota(spec, now).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_quotas $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_quotas(&self, scope: ::std::option::Option<&$crate::QuotaScope>) -> $crate::Result<::std::vec::Vec<$crate::Quota>> {
                self.$($inner)+.list_quotas(scope).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [quota_candidates $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn quota_candidates(&self, tenant: &$crate::TenantId, feature: &$crate::Feature) -> $crate::Result<::std::vec::Vec<$crate::Quota>> {
                self.$($inner)+.quota_candidates(tenant, feature).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [delete_quota $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn delete_quota(&self, id: $crate::QuotaId) -> $crate::Result<()> {
                self.$($inner)+.delete_quota(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [insert_api_key $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn insert_api_key(&self, key: &$crate::ApiKey, hash: &$crate::KeyHash) -> $crate::Result<()> {
                self.$($inner)+.insert_api_key(key, hash).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [api_key_by_hash $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn api_key_by_hash(&self, hash: &$crate::KeyHash) -> $crate::Result<::std::option::Option<$crate::StoredApiKey>> {
                self.$($inner)+.api_key_by_hash(hash).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_api_keys $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_api_keys(&self) -> $crate::Result<::std::vec::Vec<$crate::ApiKey>> {
                self.$($inner)+.list_api_keys().await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [revoke_api_key $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn revoke_api_key(&self, id: $crate::ApiKeyId, at: $crate::__chrono::DateTime<$crate::__chrono::Utc>, last_admin: $crate::LastAdmin) -> $crate::Result<()> {
                self.$($inner)+.revoke_api_key(id, at, last_admin).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [record_key_usage $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn record_key_usage(&self, uses: &[($crate::ApiKeyId, $crate::__chrono::DateTime<$crate::__chrono::Utc>)]) -> $crate::Result<()> {
                self.$($inner)+.record_key_usage(uses).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [health $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn health(&self) -> $crate::Result<()> {
                self.$($inner)+.health().await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [quota $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn quota(&self, id: $crate::QuotaId) -> $crate::Result<::std::option::Option<$crate::Quota>> {
                self.$($inner)+.quota(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [api_key $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn api_key(&self, id: $crate::ApiKeyId) -> $crate::Result<::std::option::Option<$crate::ApiKey>> {
                self.$($inner)+.api_key(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [put_meter $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn put_meter(&self, key: &$crate::MeterKey, spec: &$crate::MeterSpec, now: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<$crate::Meter> {
                self.$($inner)+.put_meter(key, spec, now).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_meters $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_meters(&self) -> $crate::Result<::std::vec::Vec<$crate::Meter>> {
                self.$($inner)+.list_meters().await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [meter $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn meter(&self, key: &$crate::MeterKey) -> $crate::Result<::std::option::Option<$crate::Meter>> {
                self.$($inner)+.meter(key).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [delete_meter $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn delete_meter(&self, key: &$crate::MeterKey) -> $crate::Result<()> {
                self.$($inner)+.delete_meter(key).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [query_meter $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn query_meter(&self, meter: &$crate::Meter, query: &$crate::MeterQuery) -> $crate::Result<$crate::MeterReport> {
                self.$($inner)+.query_meter(meter, query).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [insert_webhook $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn insert_webhook(&self, webhook: &$crate::Webhook, secret: &$crate::WebhookSecret) -> $crate::Result<()> {
                self.$($inner)+.insert_webhook(webhook, secret).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_webhooks $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_webhooks(&self) -> $crate::Result<::std::vec::Vec<$crate::Webhook>> {
                self.$($inner)+.list_webhooks().await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [webhook $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn webhook(&self, id: $crate::WebhookId) -> $crate::Result<::std::option::Option<$crate::Webhook>> {
                self.$($inner)+.webhook(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [delete_webhook $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn delete_webhook(&self, id: $crate::WebhookId) -> $crate::Result<()> {
                self.$($inner)+.delete_webhook(id).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [insert_events_watched $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn insert_events_watched(&self, events: &[$crate::Event], watches: &[$crate::AlertWatch]) -> $crate::Result<$crate::InsertOutcome> {
                self.$($inner)+.insert_events_watched(events, watches).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [record_alert $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn record_alert(&self, watch: &$crate::AlertWatch, mark: $crate::AlertMark, usage: ::std::option::Option<$crate::Quantity>) -> $crate::Result<bool> {
                self.$($inner)+.record_alert(watch, mark, usage).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [ended_alert_periods $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn ended_alert_periods(&self, now: $crate::__chrono::DateTime<$crate::__chrono::Utc>, limit: usize) -> $crate::Result<::std::vec::Vec<$crate::AlertPeriod>> {
                self.$($inner)+.ended_alert_periods(now, limit).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [list_deliveries $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn list_deliveries(&self, webhook: $crate::WebhookId, limit: usize) -> $crate::Result<::std::vec::Vec<$crate::Delivery>> {
                self.$($inner)+.list_deliveries(webhook, limit).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [claim_deliveries $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn claim_deliveries(&self, now: $crate::__chrono::DateTime<$crate::__chrono::Utc>, lease_until: $crate::__chrono::DateTime<$crate::__chrono::Utc>, limit: usize) -> $crate::Result<::std::vec::Vec<$crate::DueDelivery>> {
                self.$($inner)+.claim_deliveries(now, lease_until, limit).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [finish_delivery $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn finish_delivery(&self, id: $crate::DeliveryId, attempt: $crate::Attempt, at: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<()> {
                self.$($inner)+.finish_delivery(id, attempt, at).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [retry_delivery $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn retry_delivery(&self, webhook: $crate::WebhookId, id: $crate::DeliveryId, now: $crate::__chrono::DateTime<$crate::__chrono::Utc>) -> $crate::Result<$crate::Delivery> {
                self.$($inner)+.retry_delivery(webhook, id, now).await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [delivery_counts $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn delivery_counts(&self) -> $crate::Result<$crate::DeliveryCounts> {
                self.$($inner)+.delivery_counts().await
            }
        ] $($body)*);
    };
    (@munch $gen:tt $ty:tt [$($inner:tt)+] [prune_alerts $($rest:ident)*] [$($acc:tt)*] $($body:tt)*) => {
        $crate::forward_store!(@munch $gen $ty [$($inner)+] [$($rest)*] [$($acc)*
            async fn prune_alerts(&self, before: $crate::__chrono::DateTime<$crate::__chrono::Utc>, limit: usize) -> $crate::Result<u64> {
                self.$($inner)+.prune_alerts(before, limit).await
            }
        ] $($body)*);
    };
}
