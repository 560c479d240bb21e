//! [`RedisQuotaCache`]: the counter protocol of [`metering_core::cache`] on Redis.
//!
//! # How the protocol maps onto Redis
//!
//! Read the core docs first ([`metering_core::cache`]); this explains only what Redis adds.
//! Every protocol step is one Lua script (`lua/*.lua`, run by `EVALSHA`) per stream, or one
//! for all streams of a call on a standalone server, so each step is atomic across every
//! process sharing the server. Every script names its keys (`KEYS`), and a stream's two keys
//! share a hash tag, so on a Redis Cluster each call touches one hash slot. The key layout is
//! in `keys.rs`.
//!
//! - **Busy marks.** `begin_ingest` adds one mark per stream to a sorted set (member: a mark
//!   id unique to this handle, score: its expiry by the server's clock) and sets a new
//!   version; `end_ingest` adds the new events to the present counters (or, after a
//!   correction, deletes the stream's counter hash), removes one mark and sets a new version,
//!   in one script. Marks are a set, not a flag, because ingests of one
//!   stream overlap (several tasks, several processes); a stream is busy while it has a live
//!   mark. A handle removes its *oldest* mark of the stream (marks are interchangeable, and
//!   the oldest is the one whose `begin_ingest` is sure to have completed), so while any of its
//!   ingests is in flight the stream keeps at least one live mark.
//! - **Expiring marks.** A mark expires after [`RedisConfig::ingest_mark_ttl`], so a crashed
//!   process blocks rebuilds of its streams for that long at most. An expired mark belongs to
//!   an ingest that did not end in time, whose events may be committed but not counted, so the
//!   first script to find it expired drops the stream's counters. If `end_ingest` finds its
//!   mark gone (expired, evicted, flushed), a rebuild may have counted the ingest's events
//!   while the stream looked idle, so it drops the stream's counters instead of adding to them:
//!   never a double count.
//! - **Versions that never repeat.** A version is a random 64-bit number chosen by the caller,
//!   so a counter hash that is deleted (eviction, `DEL`, `FLUSHALL`, a restart, a failover
//!   that lost the last writes) and recreated cannot hand a stale rebuild token a matching
//!   version. A missing hash means "no counters": the next check rebuilds from the store.
//! - **Missed ingests.** A process whose `begin_ingest` or `end_ingest` failed may have
//!   committed events that no counter saw, in the streams that call touched. Before its next
//!   call it deletes those streams' counter hashes, and it deletes them once more one mark
//!   lifetime later, for an ingest that was still committing (see `recovery.rs`). Until the
//!   first delete succeeds, its calls on those streams fail (checks read the store).
//! - **Replicas.** Redis replicates asynchronously, so a primary that dies can take
//!   acknowledged writes with it. With [`RedisConfig::wait_replicas`] (on by default for a
//!   cluster), `end_ingest` counts only once `WAIT` confirms that many replicas hold it; a
//!   replica promoted in a failover then holds every counted event, and an unconfirmed
//!   `end_ingest` is a missed ingest (above). Lost marks and versions are safe: a lost mark
//!   makes `end_ingest` drop the counters, and a lost version only refuses a rebuild.
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
use futures::future::try_join_all;
use metering_core::{
    CounterKey, Error, Ingested, Quantity, QuotaCache, RebuildToken, Result, UsageStream,
    redact_url,
};
use redis::{FromRedisValue, Script, ScriptInvocation};

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::error::RedisCacheError;
use crate::keys::{self, StreamKeys};
use crate::recovery::Recovery;
use crate::scripts::SCRIPTS;

/// A [`QuotaCache`] on Redis, shared by every process that uses the same server (or
/// cluster) and key prefix. A cheap `Clone` handle; clones share the connection.
///
/// See the [crate docs](crate) for an example.
#[derive(Clone)]
pub struct RedisQuotaCache {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    config: RedisConfig,
    /// Replicas that must confirm an `end_ingest` before it counts.
    wait_replicas: u32,
    /// Longest wait for one call: connecting plus answering.
    call_timeout: Duration,
    /// Unique to this handle: the first part of its mark ids.
    handle_id: u64,
    next_mark: AtomicU64,
    /// The marks this handle set and has not removed yet, oldest first, per counter hash.
    marks: Mutex<HashMap<String, VecDeque<String>>>,
    recovery: Recovery,
}

/// What a failed call means for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing: the counters stay right.
    Read,
    /// An ingest may have been missed: the streams' counters must be dropped.
    Ingest,
    /// As `Ingest`, and the call must reach the replicas before it counts.
    Commit,
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
    /// Opens a cache on the server (or cluster) in `config`.
    ///
    /// The connection is made lazily and re-made automatically: when Redis is unreachable,
    /// opening still succeeds (logging a warning), every call fails fast with
    /// [`Error::Unavailable`] and the engine serves checks from the store until Redis answers.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a URL the driver cannot parse.
    pub async fn open(config: RedisConfig) -> Result<RedisQuotaCache> {
        let connection = Connection::open(&config).map_err(|e| {
            Error::invalid(
                "redis.url",
                format!("not a valid redis URL ({}): {e}", redact_url(&config.url)),
            )
        })?;
        let wait_replicas = config
            .wait_replicas
            .unwrap_or(u32::from(connection.is_cluster()));
        let cache = RedisQuotaCache {
            inner: Arc::new(Inner {
                connection,
                wait_replicas,
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

    /// Drops every counter under this key prefix, for every process: checks rebuild them from
    /// the store. Use it after the store was changed behind the engine's back (a restored
    /// backup, events deleted by hand). It walks the keys with `SCAN` (on every primary of a
    /// cluster), so it takes time in proportion to the keys on the server.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when Redis (or a node of the cluster) cannot be reached.
    pub async fn drop_all_counters(&self) -> Result<()> {
        let pattern = format!(
            "{}{{*}}:c",
            keys::glob_escape(&self.inner.config.key_prefix)
        );
        let mut connection = self.inner.connection.clone();
        connection
            .drop_matching(&pattern)
            .await
            .map_err(|e| RedisCacheError::Redis(e).into())
    }

    fn keys(&self, stream: &UsageStream) -> StreamKeys {
        StreamKeys::new(&self.inner.config.key_prefix, stream)
    }

    /// A script call with the arguments every script takes (see `lua/prelude.lua`).
    fn invocation(&self, script: &'static Script) -> ScriptInvocation<'static> {
        let config = &self.inner.config;
        let mut call = script.prepare_invoke();
        call.arg(millis(config.ingest_mark_ttl))
            .arg(millis(config.ingest_mark_ttl.max(STATE_TTL)));
        call
    }

    /// One script call over one stream.
    async fn run_one<T: FromRedisValue>(
        &self,
        script: &'static Script,
        keys: &StreamKeys,
        args: impl FnOnce(&mut ScriptInvocation<'static>),
    ) -> Result<T> {
        let mut call = self.invocation(script);
        call.key(&keys.marks).key(&keys.counters);
        args(&mut call);
        let mut answers = self
            .run(
                vec![(call, keys.counters.clone())],
                std::slice::from_ref(keys),
                Step::Read,
            )
            .await?;
        Ok(answers.remove(0))
    }

    /// Runs calls (concurrently, over the multiplexed connection) within the call timeout,
    /// after the drops this process owes. Each call comes with a key of its hash slot;
    /// `touched` are the streams they cover.
    async fn run<T: FromRedisValue>(
        &self,
        calls: Vec<(ScriptInvocation<'static>, String)>,
        touched: &[StreamKeys],
        step: Step,
    ) -> Result<Vec<T>> {
        let inner = &self.inner;
        let work = async {
            self.settle(touched).await?;
            let wait = step == Step::Commit && inner.wait_replicas > 0;
            try_join_all(calls.iter().map(|(call, slot_key)| async move {
                let mut connection = inner.connection.clone();
                let answer: T = connection.invoke(call).await?;
                if wait {
                    let wait_ms = millis(inner.config.response_timeout) / 2;
                    let confirmed = connection
                        .wait(slot_key, inner.wait_replicas, wait_ms)
                        .await?;
                    if confirmed < i64::from(inner.wait_replicas) {
                        return Err(RedisCacheError::NotReplicated {
                            confirmed,
                            wanted: inner.wait_replicas,
                        });
                    }
                }
                Ok(answer)
            }))
            .await
        };
        let result = match tokio::time::timeout(inner.call_timeout, work).await {
            Ok(Ok(answers)) => return Ok(answers),
            Ok(Err(e)) => e,
            Err(_) => RedisCacheError::Timeout(inner.call_timeout),
        };
        if step != Step::Read {
            inner.recovery.missed_ingest(
                touched.iter().map(|k| &k.counters),
                inner.config.ingest_mark_ttl,
            );
        }
        Err(result.into())
    }

    /// Deletes the counter hashes this process owes a drop; refuses a call on a stream whose
    /// drop is still owed.
    async fn settle(&self, touched: &[StreamKeys]) -> std::result::Result<(), RedisCacheError> {
        let recovery = &self.inner.recovery;
        let due = recovery.take_due();
        if !due.is_empty() {
            let mut connection = self.inner.connection.clone();
            match connection.del(&due).await {
                Ok(()) => tracing::info!(
                    streams = due.len(),
                    "dropped the quota counters of streams whose ingest the cache missed"
                ),
                Err(e) => {
                    recovery.not_dropped(due);
                    if recovery.owes_now(touched.iter().map(|k| &k.counters)) {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }

    fn marks(&self) -> MutexGuard<'_, HashMap<String, VecDeque<String>>> {
        self.inner
            .marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The calls of a multi-stream step: one for all streams on a standalone server, one per
    /// stream on a cluster (different streams live in different hash slots).
    fn calls_for(
        &self,
        script: &'static Script,
        keys: &[StreamKeys],
        mut args: impl FnMut(usize, &mut ScriptInvocation<'static>),
    ) -> Vec<(ScriptInvocation<'static>, String)> {
        let per_call = if self.inner.connection.is_cluster() {
            1
        } else {
            keys.len().max(1)
        };
        let mut calls = Vec::new();
        for (chunk, group) in keys.chunks(per_call).enumerate() {
            let mut call = self.invocation(script);
            for (i, k) in group.iter().enumerate() {
                call.key(&k.marks).key(&k.counters);
                args(chunk * per_call + i, &mut call);
            }
            calls.push((call, group[0].counters.clone()));
        }
        calls
    }
}

/// The least lifetime of a stream's counter hash: long enough to outlive any rebuild, so a
/// version is not lost in the middle of one (losing it only refuses that rebuild).
const STATE_TTL: Duration = Duration::from_secs(600);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A fresh version (see "Versions that never repeat" above).
fn new_version() -> String {
    rand::random::<u64>().to_string()
}

#[async_trait]
impl QuotaCache for RedisQuotaCache {
    async fn usage(&self, key: &CounterKey) -> Result<Option<Quantity>> {
        let stream = self.keys(&key.stream());
        let parts: Option<(String, String)> = self
            .run_one(&SCRIPTS.usage, &stream, |call| {
                call.arg(keys::counter(key));
            })
            .await?;
        parts
            .map(|(units, nanos)| {
                keys::quantity(&units, &nanos).ok_or_else(|| {
                    RedisCacheError::Protocol(format!("counter {units}/{nanos}")).into()
                })
            })
            .transpose()
    }

    async fn begin_rebuild(&self, key: &CounterKey) -> Result<Option<RebuildToken>> {
        let stream = self.keys(&key.stream());
        let version: Option<String> = self
            .run_one(&SCRIPTS.begin_rebuild, &stream, |call| {
                call.arg(new_version());
            })
            .await?;
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
        let stream = self.keys(&key.stream());
        let stored: i64 = self
            .run_one(&SCRIPTS.finish_rebuild, &stream, |call| {
                call.arg(keys::counter(key))
                    .arg(token.0)
                    .arg(units)
                    .arg(nanos)
                    .arg(key.window.end.timestamp_millis());
            })
            .await?;
        Ok(stored == 1)
    }

    async fn begin_ingest(&self, streams: &[UsageStream]) -> Result<()> {
        if streams.is_empty() {
            return Ok(());
        }
        let keys: Vec<StreamKeys> = streams.iter().map(|s| self.keys(s)).collect();
        let marks: Vec<String> = keys
            .iter()
            .map(|_| {
                let n = self.inner.next_mark.fetch_add(1, Ordering::Relaxed);
                format!("{:016x}-{n:x}", self.inner.handle_id)
            })
            .collect();
        let calls = self.calls_for(&SCRIPTS.begin_ingest, &keys, |i, call| {
            call.arg(&marks[i]).arg(new_version());
        });
        let _: Vec<i64> = self.run(calls, &keys, Step::Ingest).await?;
        // Only now are the marks surely set; `end_ingest` may remove them from here on.
        let mut pending = self.marks();
        for (k, mark) in keys.into_iter().zip(marks) {
            pending.entry(k.counters).or_default().push_back(mark);
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
        let keys: Vec<StreamKeys> = streams.iter().map(|s| self.keys(s)).collect();
        let marks: Vec<String> = {
            let mut pending = self.marks();
            keys.iter()
                .map(|k| {
                    let Some(queue) = pending.get_mut(&k.counters) else {
                        return String::new();
                    };
                    let mark = queue.pop_front().unwrap_or_default();
                    if queue.is_empty() {
                        pending.remove(&k.counters);
                    }
                    mark
                })
                .collect()
        };
        let calls = self.calls_for(&SCRIPTS.end_ingest, &keys, |i, call| {
            call.arg(&marks[i]).arg(new_version());
            if ingested.recount {
                // A negative count: drop the stream's counters (a correction took usage away).
                call.arg(-1);
                return;
            }
            let new = events.get(&streams[i]).map_or(&[][..], Vec::as_slice);
            call.arg(new.len());
            for event in new {
                let (units, nanos) = keys::parts(event.quantity);
                call.arg(event.timestamp.timestamp_micros())
                    .arg(event.resource.as_str())
                    .arg(units)
                    .arg(nanos);
            }
        });
        let _: Vec<i64> = self.run(calls, &keys, Step::Commit).await?;
        Ok(())
    }

    async fn forget(&self, key: &CounterKey) -> Result<()> {
        let stream = self.keys(&key.stream());
        let _: i64 = self
            .run_one(&SCRIPTS.forget, &stream, |call| {
                call.arg(keys::counter(key));
            })
            .await?;
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        let inner = &self.inner;
        let mut connection = inner.connection.clone();
        let work = async {
            connection.ping().await?;
            // Owed drops go out as soon as Redis answers, not only with the next check.
            self.settle(&[]).await
        };
        match tokio::time::timeout(inner.call_timeout, work).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(RedisCacheError::Timeout(inner.call_timeout).into()),
        }
    }
}
