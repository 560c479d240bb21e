//! The [`QuotaCache`] trait: live usage counters that make quota checks cheap.
//!
//! # The counter protocol
//!
//! A counter holds the exact usage of one [`UsageScope`] in one quota window. Counters are
//! an optimisation only: the store is the truth, and a missing counter is rebuilt from it.
//! The hard part is rebuilding while events are being ingested, without losing or double
//! counting any. Every ingest into a *stream* (one tenant's use of one feature) is bracketed:
//!
//! 1. [`QuotaCache::begin_ingest`] marks the stream busy and bumps its version;
//! 2. the store commits the events;
//! 3. [`QuotaCache::end_ingest`] adds the new events to the stream's present counters whose
//!    window and resource they fall in, clears the busy mark and bumps the version again.
//!
//! A rebuild asks [`QuotaCache::begin_rebuild`] for a token (refused while the stream is
//! busy), reads the usage from the store, and hands it to [`QuotaCache::finish_rebuild`],
//! which stores it only if the stream's version still equals the token. So every ingest
//! either ended before the rebuild began (its events are in the store's sum) or touched the
//! version during the rebuild (the rebuilt value is thrown away and the caller uses the
//! store's answer directly). Ingests that begin after the counter exists bump it in step 3.
//!
//! A correction (a void or an amend) takes usage away, which a counter cannot follow by
//! adding. It is bracketed the same way, and its `end_ingest` gets [`Ingested::RECOUNT`]: the
//! stream's counters are dropped instead of added to, whatever the outcome, so the next check
//! rebuilds them from the store (a rebuild begun before the correction is refused by the
//! version, as above).
//!
//! A shared cache (Redis) that failed a `begin_ingest` or `end_ingest` may have missed
//! events, so it must drop its counters before serving any again once it is reachable.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::{Event, Feature, TenantId};
use crate::quantity::Quantity;
use crate::quota::UsageScope;
use crate::window::Window;

/// One tenant's use of one feature: the unit that ingests mark busy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageStream {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The feature.
    pub feature: Feature,
}

impl UsageStream {
    /// The stream of an event.
    #[must_use]
    pub fn of(event: &Event) -> Self {
        UsageStream {
            tenant_id: event.tenant_id.clone(),
            feature: event.feature.clone(),
        }
    }

    /// The distinct streams of a batch, sorted.
    #[must_use]
    pub fn of_batch(events: &[Event]) -> Vec<Self> {
        let mut streams: Vec<_> = events.iter().map(Self::of).collect();
        streams.sort();
        streams.dedup();
        streams
    }
}

/// Names one counter: a scope's usage in one window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CounterKey {
    /// Whose usage.
    pub scope: UsageScope,
    /// Which window.
    pub window: Window,
}

impl CounterKey {
    /// The stream the counter belongs to.
    #[must_use]
    pub fn stream(&self) -> UsageStream {
        UsageStream {
            tenant_id: self.scope.tenant_id.clone(),
            feature: self.scope.feature.clone(),
        }
    }

    /// Whether `event` counts towards this counter.
    #[must_use]
    pub fn counts(&self, event: &Event) -> bool {
        self.window.contains(event.timestamp)
            && self
                .scope
                .counts(&event.tenant_id, &event.resource, &event.feature)
    }
}

/// Permission to store a rebuilt counter, valid while the stream is untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildToken(pub u64);

/// The events of a committed batch and which of them were new.
#[derive(Debug, Clone, Copy)]
pub struct Ingested<'a> {
    /// The batch.
    pub events: &'a [Event],
    /// `inserted[i]` tells whether `events[i]` was newly written (duplicates are not counted).
    pub inserted: &'a [bool],
    /// The write also took usage away (a void or an amend), so the streams' counters are
    /// dropped, to be rebuilt from the store, instead of added to.
    pub recount: bool,
}

impl<'a> Ingested<'a> {
    /// Nothing was written (the commit failed); only the busy marks are cleared.
    pub const NONE: Ingested<'static> = Ingested {
        events: &[],
        inserted: &[],
        recount: false,
    };

    /// A correction was written (or may have been): every counter of the streams is dropped.
    pub const RECOUNT: Ingested<'static> = Ingested {
        events: &[],
        inserted: &[],
        recount: true,
    };

    /// The newly written events.
    pub fn new_events(&self) -> impl Iterator<Item = &'a Event> + 'a {
        let inserted = self.inserted;
        self.events
            .iter()
            .zip(inserted.iter())
            .filter(|(_, new)| **new)
            .map(|(e, _)| e)
    }
}

/// Live usage counters; see the [module docs](self) for the protocol.
#[async_trait]
pub trait QuotaCache: Send + Sync + Debug + 'static {
    /// The counter's value, if present.
    ///
    /// # Behavior
    ///
    /// A present counter equals the store's usage of its scope in its window, counting every
    /// event whose ingest has ended.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn usage(&self, key: &CounterKey) -> Result<Option<Quantity>>;

    /// Starts a rebuild of a missing counter; `None` while its stream has an ingest in flight.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn begin_rebuild(&self, key: &CounterKey) -> Result<Option<RebuildToken>>;

    /// Stores a rebuilt counter, unless the stream changed since `token` was issued or the
    /// counter appeared meanwhile. Returns whether it was stored.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn finish_rebuild(
        &self,
        key: &CounterKey,
        token: RebuildToken,
        usage: Quantity,
    ) -> Result<bool>;

    /// Marks streams busy before their events are committed.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn begin_ingest(&self, streams: &[UsageStream]) -> Result<()>;

    /// After the commit (or its failure): adds the new events to the present counters they
    /// count towards and clears the busy marks set by the matching `begin_ingest`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn end_ingest(&self, streams: &[UsageStream], ingested: Ingested<'_>) -> Result<()>;

    /// Drops a counter; the next check rebuilds it from the store. Safe at any time.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when the cache cannot be reached.
    async fn forget(&self, key: &CounterKey) -> Result<()>;

    /// Checks the cache answers.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Unavailable`] when it does not.
    async fn health(&self) -> Result<()>;
}
