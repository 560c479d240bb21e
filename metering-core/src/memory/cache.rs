use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::cache::{CounterKey, Ingested, QuotaCache, RebuildToken, UsageStream};
use crate::error::Result;
use crate::event::Resource;
use crate::quantity::Quantity;
use crate::window::Window;

/// A [`QuotaCache`] inside the process. Exact under the counter protocol; counters are not
/// shared with other processes, so each server instance keeps its own.
#[derive(Debug, Clone, Default)]
pub struct MemoryQuotaCache {
    state: Arc<Mutex<HashMap<UsageStream, StreamState>>>,
}

#[derive(Debug, Default)]
struct StreamState {
    /// Ingests begun and not yet ended.
    busy: u32,
    /// Bumped by every begin and end of an ingest.
    version: u64,
    counters: Vec<Counter>,
}

#[derive(Debug)]
struct Counter {
    resource: Option<Resource>,
    window: Window,
    usage: Quantity,
}

impl StreamState {
    fn find(&mut self, key: &CounterKey) -> Option<&mut Counter> {
        self.counters
            .iter_mut()
            .find(|c| c.window == key.window && c.resource == key.scope.resource)
    }
}

impl MemoryQuotaCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UsageStream, StreamState>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every counter.
    pub fn clear(&self) {
        for stream in self.lock().values_mut() {
            stream.counters.clear();
        }
    }
}

#[async_trait]
impl QuotaCache for MemoryQuotaCache {
    async fn usage(&self, key: &CounterKey) -> Result<Option<Quantity>> {
        Ok(self
            .lock()
            .get_mut(&key.stream())
            .and_then(|s| s.find(key))
            .map(|c| c.usage))
    }

    async fn begin_rebuild(&self, key: &CounterKey) -> Result<Option<RebuildToken>> {
        let mut state = self.lock();
        let stream = state.entry(key.stream()).or_default();
        Ok((stream.busy == 0).then_some(RebuildToken(stream.version)))
    }

    async fn finish_rebuild(
        &self,
        key: &CounterKey,
        token: RebuildToken,
        usage: Quantity,
    ) -> Result<bool> {
        let mut state = self.lock();
        let stream = state.entry(key.stream()).or_default();
        if stream.busy != 0 || stream.version != token.0 || stream.find(key).is_some() {
            return Ok(false);
        }
        // Windows that ended a whole window-length before this one starts are not asked for
        // any more (checks use the current window); dropping them bounds memory.
        stream
            .counters
            .retain(|c| c.window.end + (c.window.end - c.window.start) > key.window.start);
        stream.counters.push(Counter {
            resource: key.scope.resource.clone(),
            window: key.window,
            usage,
        });
        Ok(true)
    }

    async fn begin_ingest(&self, streams: &[UsageStream]) -> Result<()> {
        let mut state = self.lock();
        for s in streams {
            let stream = state.entry(s.clone()).or_default();
            stream.busy += 1;
            stream.version += 1;
        }
        Ok(())
    }

    async fn end_ingest(&self, streams: &[UsageStream], ingested: Ingested<'_>) -> Result<()> {
        let mut state = self.lock();
        if ingested.recount {
            for s in streams {
                if let Some(stream) = state.get_mut(s) {
                    stream.counters.clear();
                }
            }
        }
        for event in ingested.new_events() {
            let Some(stream) = state.get_mut(&UsageStream::of(event)) else {
                continue;
            };
            for c in &mut stream.counters {
                if c.window.contains(event.timestamp)
                    && c.resource.as_ref().is_none_or(|r| *r == event.resource)
                {
                    c.usage += event.quantity;
                }
            }
        }
        for s in streams {
            let stream = state.entry(s.clone()).or_default();
            stream.busy = stream.busy.saturating_sub(1);
            stream.version += 1;
        }
        Ok(())
    }

    async fn forget(&self, key: &CounterKey) -> Result<()> {
        if let Some(stream) = self.lock().get_mut(&key.stream()) {
            stream
                .counters
                .retain(|c| !(c.window == key.window && c.resource == key.scope.resource));
        }
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}
