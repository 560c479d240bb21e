//! [`RedisQuotaCache`]: the counter protocol of [`metering_core::cache`] on Redis.
//!
//! # How the protocol maps onto Redis
//!
//! Read the core docs first ([`metering_core::cache`]); this explains only what Redis adds.
//! Every protocol step is one Lua script (`lua/*.lua`, run by `EVALSHA`), so each step is
//! atomic across every process sharing the server. The key layout is in `keys.rs`.
//!
//! - **Busy marks.** `begin_ingest` adds one mark per stream to a sorted set (member: a mark
//!   id unique to this handle, score: its expiry by the server's clock) and bumps the stream's
//!   version; `end_ingest` adds the new events to the present counters (or, after a
//!   correction, deletes the stream's counter hash), removes one mark and bumps the version,
//!   in one script. Marks are a set, not a flag, because ingests of one
//!   stream overlap (several tasks, several processes); a stream is busy while it has a live
//!   mark. A handle removes its *oldest* mark of the stream (marks are interchangeable, and
//!   the oldest is the one whose `begin_ingest` is sure to have completed), so while any of its
//!   ingests is in flight the stream keeps at least one live mark.
//! - **Expiring marks.** A mark expires after [`RedisConfig::ingest_mark_ttl`], so a crashed
//!   process blocks rebuilds of its streams for that long at most. If `end_ingest` finds its
//!   mark gone (expired, evicted, flushed), a rebuild may have counted the ingest's events
//!   while the stream looked idle, so it drops the stream's counters instead of adding to them:
//!   never a double count.
//! - **Versions that never repeat.** Versions come from one sequence per prefix (starting at
//!   the server clock in microseconds whenever it is recreated), not from a per-stream counter,
//!   so a counter hash that is deleted (eviction, `DEL`, `FLUSHALL`, a restart) and recreated
//!   cannot hand a stale rebuild token a matching version. A missing hash means "no counters":
//!   the next check rebuilds from the store.
//! - **The epoch.** Counter hashes live under the current epoch (`P c:<epoch>:<stream>`); each
//!   script reads the epoch itself, so no process works with a stale one. A process whose
//!   `begin_ingest` or `end_ingest` failed may have committed events that no counter saw; its
//!   next successful call bumps the epoch first (in the same script), which drops every
//!   counter of every process at once, and it bumps once more one mark lifetime later for an
//!   ingest that was still committing (see `recovery.rs`). Marks live outside the epoch, so a
//!   bump never hides an ingest in flight from a rebuild.
//! - **Quantities** are two integer fields per counter (whole units and nano-units) added with
//!   `HINCRBY` (exact 64-bit integers in Redis, never Lua doubles); the nano field is carried
//!   into the units inside the script. A counter that would leave the safe integer range is
//!   dropped and not cached, and checks of it read the store.
//!
//! Why no event is lost or counted twice: a counter is created only by `finish_rebuild`, when
//! no mark is live and the version equals the token. Any ingest that had begun by the time the
//! store was read either ended before `begin_rebuild` (its events are in the store's sum, and it
//! touches no counter later) or changed the version or held a live mark (the rebuild is
//! refused). An ingest beginning after `finish_rebuild` adds its events in `end_ingest`,
//! exactly once, unless its mark vanished, in which case the counter is dropped. Deleting any
//! key only loses counters or versions, which the protocol treats as "absent" or "changed".
//!
//! Check-and-record (`consume`) is made atomic by the store (see `Store::consume`), bracketed
//! by the same `begin_ingest`/`end_ingest`, so Redis never has to admit requests itself.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use metering_core::{
    CounterKey, Error, Ingested, Quantity, QuotaCache, RebuildToken, Result, UsageStream,
    redact_url,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::config::RedisConfig;
use crate::error::RedisCacheError;
use crate::keys;
use crate::recovery::Recovery;
use crate::scripts::SCRIPTS;

/// A [`QuotaCache`] on Redis, shared by every process that uses the same server and key
/// prefix. A cheap `Clone` handle; clones share the connection.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct RedisQuotaCache {
    inner: Arc<Inner>,
}

struct Inner {
    connection: ConnectionManager,
    config: RedisConfig,
    /// Longest wait for one call: connecting plus answering.
    call_timeout: Duration,
    /// Unique to this handle: the first part of its mark ids.
    handle_id: u64,
    next_mark: AtomicU64,
    /// The marks this handle set and has not removed yet, oldest first, per stream.
    marks: Mutex<HashMap<String, VecDeque<String>>>,
    recovery: Recovery,
}

/// Whether a failed call may have missed an ingest (then the counters must be dropped).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Read,
    Ingest,
}

impl fmt::Debug for RedisQuotaCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQuotaCache")
            .field("url", &redact_url(&self.inner.config.url))
            .field("key_prefix", &self.inner.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisQuotaCache {
    /// Opens a cache on the server in `config`.
    ///
    /// The connection is made lazily and re-made automatically: when Redis is unreachable,
    /// opening still succeeds (logging a warning), every call fails fast with
    /// [`Error::Unavailable`] and the engine serves checks from the store until Redis answers.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL the driver cannot parse.
    pub async fn open(config: RedisConfig) -> Result<RedisQuotaCache> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            Error::invalid(
                "redis.url",
                format!("not a valid redis URL ({}): {e}", redact_url(&config.url)),
            )
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            // One attempt per call: a caller waits at most one timeout, then falls back.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| Error::invalid("redis.url", format!("unusable redis config: {e}")))?;
        let cache = RedisQuotaCache {
            inner: Arc::new(Inner {
                connection,
                call_timeout: config.connect_timeout + config.response_timeout,
                handle_id: rand::random(),
                next_mark: AtomicU64::new(0),
                marks: Mutex::new(HashMap::new()),
                recovery: Recovery::default(),
                config,
            }),
        };
        if let Err(e) = cache.health().await {
            tracing::warn!(
                url = %redact_url(&cache.inner.config.url),
                error = %e,
                "redis is unreachable; quota checks read the store until it answers"
            );
        }
        Ok(cache)
    }

    /// Opens a cache on `url` with the default settings (key prefix `metering:`).
    ///
    /// # Errors
    ///
    /// See [`RedisQuotaCache::open`].
    pub async fn connect(url: &str) -> Result<RedisQuotaCache> {
        Self::open(RedisConfig::default().with_url(url)).await
    }

    /// The settings this cache was opened with.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// Drops every counter under this key prefix, in every process, by bumping the epoch.
    /// Checks rebuild them from the store. Use it after the store was changed behind the
    /// engine's back (a restored backup, events deleted by hand).
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when Redis cannot be reached.
    pub async fn drop_all_counters(&self) -> Result<()> {
        let mut call = SCRIPTS.health.prepare_invoke();
        self.common_args(&mut call, true);
        let _epoch: String = self.run(&call, true, Step::Read).await?;
        Ok(())
    }

    /// Adds the arguments every script takes (see `lua/prelude.lua`).
    fn common_args(&self, call: &mut ScriptInvocation<'_>, bump: bool) {
        let config = &self.inner.config;
        call.arg(&config.key_prefix)
            .arg(if bump { "1" } else { "0" })
            .arg(millis(config.ingest_mark_ttl))
            .arg(millis(config.ingest_mark_ttl.max(STATE_TTL)));
    }

    /// Starts a call of `script`, owning the epoch bump this process may owe.
    fn prepare(&self, script: &'static Script) -> (ScriptInvocation<'static>, bool) {
        let bump = self.inner.recovery.take_bump();
        let mut call = script.prepare_invoke();
        self.common_args(&mut call, bump);
        (call, bump)
    }

    /// Runs a prepared call within the call timeout.
    async fn run<T: FromRedisValue>(
        &self,
        call: &ScriptInvocation<'_>,
        bump: bool,
        step: Step,
    ) -> Result<T> {
        let mut connection = self.inner.connection.clone();
        let result = match tokio::time::timeout(
            self.inner.call_timeout,
            call.invoke_async::<T>(&mut connection),
        )
        .await
        {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => RedisCacheError::Redis(e),
            Err(_) => RedisCacheError::Timeout(self.inner.call_timeout),
        };
        if bump {
            self.inner.recovery.bump_failed();
        }
        if step == Step::Ingest {
            self.inner
                .recovery
                .missed_ingest(self.inner.config.ingest_mark_ttl);
        }
        Err(result.into())
    }

    fn marks(&self) -> MutexGuard<'_, HashMap<String, VecDeque<String>>> {
        self.inner
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The least lifetime of a stream's counter hash: long enough to outlive any rebuild, so a
/// version is not lost in the middle of one (losing it only refuses that rebuild).
const STATE_TTL: Duration = Duration::from_secs(600);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl QuotaCache for RedisQuotaCache {
    async fn usage(&self, key: &CounterKey) -> Result<Option<Quantity>> {
        let (mut call, bump) = self.prepare(&SCRIPTS.usage);
        call.arg(keys::stream(&key.stream()))
            .arg(keys::counter(key));
        let parts: Option<(String, String)> = self.run(&call, bump, Step::Read).await?;
        parts
            .map(|(units, nanos)| {
                keys::quantity(&units, &nanos).ok_or_else(|| {
                    RedisCacheError::Protocol(format!("counter {units}/{nanos}")).into()
                })
            })
            .transpose()
    }

    async fn begin_rebuild(&self, key: &CounterKey) -> Result<Option<RebuildToken>> {
        let (mut call, bump) = self.prepare(&SCRIPTS.begin_rebuild);
        call.arg(keys::stream(&key.stream()));
        let version: Option<String> = self.run(&call, bump, Step::Read).await?;
        version
            .map(|v| {
                v.parse()
                    .map(RebuildToken)
                    .map_err(|_| RedisCacheError::Protocol(format!("version {v}")).into())
            })
            .transpose()
    }

    async fn finish_rebuild(
        &self,
        key: &CounterKey,
        token: RebuildToken,
        usage: Quantity,
    ) -> Result<bool> {
        if usage.units() > keys::MAX_CACHED_UNITS {
            // Too large for exact integer arithmetic in Redis: checks read the store instead.
            return Ok(false);
        }
        let (units, nanos) = keys::parts(usage);
        let (mut call, bump) = self.prepare(&SCRIPTS.finish_rebuild);
        call.arg(keys::stream(&key.stream()))
            .arg(keys::counter(key))
            .arg(token.0)
            .arg(units)
            .arg(nanos)
            .arg(key.window.end.timestamp_millis());
        let stored: i64 = self.run(&call, bump, Step::Read).await?;
        Ok(stored == 1)
    }

    async fn begin_ingest(&self, streams: &[UsageStream]) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let (mut call, bump) = self.prepare(&SCRIPTS.begin_ingest);
        let mut marks = Vec::with_capacity(streams.len());
        for stream in streams {
            let n = self.inner.next_mark.fetch_add(1, Ordering::Relaxed);
            let mark = format!("{:016x}-{n:x}", self.inner.handle_id);
            let stream = keys::stream(stream);
            call.arg(&stream).arg(&mark);
            marks.push((stream, mark));
        }
        let _: i64 = self.run(&call, bump, Step::Ingest).await?;
        // Only now are the marks surely set; `end_ingest` may remove them from here on.
        let mut pending = self.marks();
        for (stream, mark) in marks {
            pending.entry(stream).or_default().push_back(mark);
        }
        Ok(())
    }

    async fn end_ingest(&self, streams: &[UsageStream], ingested: Ingested<'_>) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let mut events: HashMap<UsageStream, Vec<_>> = HashMap::new();
        for event in ingested.new_events() {
            events
                .entry(UsageStream::of(event))
                .or_default()
                .push(event);
        }
        let named: Vec<String> = streams.iter().map(keys::stream).collect();
        let marks: Vec<String> = {
            let mut pending = self.marks();
            named
                .iter()
                .map(|stream| {
                    let Some(queue) = pending.get_mut(stream) else {
                        return String::new();
                    };
                    let mark = queue.pop_front().unwrap_or_default();
                    if queue.is_empty() {
                        pending.remove(stream);
                    }
                    mark
                })
                .collect()
        };
        let (mut call, bump) = self.prepare(&SCRIPTS.end_ingest);
        call.arg(streams.len());
        for ((stream, name), mark) in streams.iter().zip(&named).zip(&marks) {
            let new = events.get(stream).map_or(&[][..], Vec::as_slice);
            call.arg(name).arg(mark);
            if ingested.recount {
                // A negative count: drop the stream's counters (a correction took usage away).
                call.arg(-1);
                continue;
            }
            call.arg(new.len());
            for event in new {
                let (units, nanos) = keys::parts(event.quantity);
                call.arg(event.timestamp.timestamp_micros())
                    .arg(event.resource.as_str())
                    .arg(units)
                    .arg(nanos);
            }
        }
        let _: i64 = self.run(&call, bump, Step::Ingest).await?;
        Ok(())
    }

    async fn forget(&self, key: &CounterKey) -> Result<()> {
        let (mut call, bump) = self.prepare(&SCRIPTS.forget);
        call.arg(keys::stream(&key.stream()))
            .arg(keys::counter(key));
        let _: i64 = self.run(&call, bump, Step::Read).await?;
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        let (call, bump) = self.prepare(&SCRIPTS.health);
        let _epoch: String = self.run(&call, bump, Step::Read).await?;
        Ok(())
    }
}
