//! [`MeteringClient`]: the three transports over one delivery core.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use metering_core::{Metering, NewEvent, QuotaDecision, ValidateRequest};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{ClientConfig, OverflowPolicy, TransportMode};
use crate::delivery::Core;
use crate::error::ClientError;
use crate::recorder::Recorder;
use crate::sink::{EmbeddedSink, Sink};
use crate::spill::SpillQueue;
use crate::stats::{ClientStats, Counters};
use crate::wire::Pending;
#[cfg(feature = "remote")]
use crate::worker::spawn_thread;
use crate::worker::{BatchQueue, Control, Push, run_batcher, run_replayer};

/// What [`MeteringClient::send`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// The sink acknowledged it (sync mode).
    Sent,
    /// The sink was unreachable (or older events wait to be replayed); the event waits in
    /// the spill queue and is replayed in order (sync mode).
    Spilled,
    /// Queued for the background task (batching and fire-and-forget modes).
    Queued,
}

/// What is left after [`MeteringClient::flush`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Events still in the spill queue because the sink did not answer; they are on disk
    /// and are replayed later (also by the next run of the application).
    pub pending_spill: u64,
    /// The counters after the flush.
    pub stats: ClientStats,
}

impl FlushReport {
    /// Whether every event reached the sink (or was rejected by it).
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.pending_spill == 0
    }
}

/// Sends usage events to a metering sink: a [`Metering`] engine in this process or a
/// `metering-server` over HTTP. A cheap handle: clones share one set of buffers, tasks and
/// counters. It is a [`Recorder`], so `set_recorder(client.clone())` routes `#[meter]` and
/// the middleware through it.
///
/// Every event gets its id (a UUIDv7) and timestamp when it is recorded, before the first
/// attempt, so retries and replays never count it twice and late deliveries land in the
/// window the usage happened in.
///
/// Call [`MeteringClient::shutdown`] before the application exits; events still in memory
/// are lost otherwise (spilled ones are not).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use metering_client::{ClientConfig, MeteringClient, NewEvent};
/// use metering_core::{MemoryStore, Metering};
///
/// let engine = Metering::builder(MemoryStore::new()).build();
/// let client = MeteringClient::embedded(engine, ClientConfig::default()).await?;
/// client.record(NewEvent::new("org_1", "billing", "invoice_generate"));
/// let report = client.shutdown().await;
/// assert_eq!(report.stats.sent, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MeteringClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    core: Arc<Core>,
    runtime: Handle,
    /// Batching mode: the queue the batcher empties, and its control channel.
    batcher: Option<(Arc<BatchQueue>, mpsc::Sender<Control>)>,
    /// Sync and fire-and-forget modes: one permit per event in flight (the memory cap).
    in_flight: Arc<Semaphore>,
    /// Sync and fire-and-forget modes: the deliveries spawned since the last flush.
    generation: std::sync::Mutex<Arc<Generation>>,
    closed: AtomicBool,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// A client on a thread of its own without a batcher: dropped with the client, which
    /// lets the thread finish the deliveries in flight and end.
    _stop: Option<oneshot::Sender<()>>,
    /// A client on a thread of its own: fires when the thread has ended.
    thread_end: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

/// Where a client does its background work.
#[derive(Debug, Clone, Copy)]
enum Background {
    /// On the runtime that built it: an embedded engine's store lives there.
    Caller,
    /// On a thread of its own (see [`spawn_thread`]).
    #[cfg(feature = "remote")]
    OwnThread,
}

/// Waits until none of the `max_buffered` permits of `in_flight` is held: no delivery is in
/// flight.
#[cfg(feature = "remote")]
async fn wait_idle(in_flight: &Semaphore, max_buffered: usize) {
    let mut left = max_buffered;
    while left > 0 {
        let n = u32::try_from(left).unwrap_or(u32::MAX);
        match in_flight.acquire_many(n).await {
            Ok(permits) => permits.forget(),
            Err(_) => return,
        }
        left -= n as usize;
    }
}

/// Deliveries spawned between two flushes; a flush waits for its generation to finish
/// while new events start the next one, so a busy application cannot starve a flush.
#[derive(Debug, Default)]
struct Generation {
    pending: AtomicUsize,
    done: Notify,
}

impl Generation {
    fn finish_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }

    async fn wait(&self) {
        loop {
            let notified = self.done.notified();
            if self.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl fmt::Debug for MeteringClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeteringClient")
            .field("config", &self.inner.config)
            .field("sink", &self.inner.core.sink)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl MeteringClient {
    /// A client for the `metering-server` at `config.api_url`, authenticated with
    /// `config.api_key`. Must be called inside a tokio runtime. The background work
    /// (encoding and sending batches, retries, replaying the spill queue) runs on a thread
    /// of the client's own, named `metering-client`, so it takes no time from the
    /// application's runtime. The thread ends with [`MeteringClient::shutdown`] in batching
    /// mode, and in every mode once all handles are dropped and what it held is delivered.
    /// Events left in the spill queue by an earlier run are replayed.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for a missing or malformed URL or setting,
    /// [`ClientError::Spill`] when the spill queue cannot be opened.
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let sink = crate::sink::RemoteSink::new(&config)?;
        Self::with_sink(Arc::new(sink), config, Background::OwnThread).await
    }

    /// [`MeteringClient::connect`] with [`ClientConfig::from_env`].
    ///
    /// # Errors
    ///
    /// As [`ClientConfig::from_env`] and [`MeteringClient::connect`].
    #[cfg(feature = "remote")]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub async fn from_env() -> Result<Self, ClientError> {
        Self::connect(ClientConfig::from_env()?).await
    }

    /// A client writing through `engine` in this process (any store). `config.api_url` is
    /// ignored. Its background tasks run on the calling tokio runtime, where the store's
    /// connections live.
    ///
    /// # Errors
    ///
    /// [`ClientError::Config`] for a bad setting or outside a tokio runtime,
    /// [`ClientError::Spill`] when the spill queue cannot be opened.
    pub async fn embedded(engine: Metering, config: ClientConfig) -> Result<Self, ClientError> {
        Self::with_sink(
            Arc::new(EmbeddedSink::new(engine)),
            config,
            Background::Caller,
        )
        .await
    }

    async fn with_sink(
        sink: Arc<dyn Sink>,
        config: ClientConfig,
        place: Background,
    ) -> Result<Self, ClientError> {
        config.check()?;
        let caller = Handle::try_current().map_err(|_| {
            ClientError::Config("the metering client must be built inside a tokio runtime".into())
        })?;
        let spill = match &config.spill_path {
            Some(path) => Some(SpillQueue::open(path.clone()).await?),
            None => None,
        };
        let core = Arc::new(Core::new(sink, spill, &config));
        let in_flight = Arc::new(Semaphore::new(config.max_buffered));
        let mut tasks = Vec::new();
        let (batcher, batcher_task) = if config.mode == TransportMode::Batching {
            let queue = Arc::new(BatchQueue::new(config.batch_size, config.max_buffered));
            let (tx, rx) = mpsc::channel(8);
            let task = run_batcher(
                Arc::clone(&core),
                Arc::clone(&queue),
                rx,
                config.batch_interval,
            );
            (Some((queue, tx)), Some(task))
        } else {
            (None, None)
        };
        // The runtime the tasks run on; for a thread of the client's own, the sender that
        // stops it (without a batcher) and the receiver that tells it ended.
        let (runtime, stop, thread_end) = match place {
            Background::Caller => {
                if let Some(task) = batcher_task {
                    tasks.push(caller.spawn(task));
                }
                (caller, None, None)
            }
            // The thread runs the batcher until the client is dropped or shut down; without
            // one, until the client is dropped and the deliveries in flight are done.
            #[cfg(feature = "remote")]
            Background::OwnThread => {
                let (stop, started) = match batcher_task {
                    Some(task) => (None, spawn_thread(task).await),
                    None => {
                        let (stop, stopped) = oneshot::channel::<()>();
                        let in_flight = Arc::clone(&in_flight);
                        let max_buffered = config.max_buffered;
                        let started = spawn_thread(async move {
                            let _ = stopped.await;
                            wait_idle(&in_flight, max_buffered).await;
                        })
                        .await;
                        (Some(stop), started)
                    }
                };
                let (handle, end) = started.map_err(|error| {
                    ClientError::Config(format!("cannot start the metering-client thread: {error}"))
                })?;
                (handle, stop, Some(end))
            }
        };
        if core.spill.is_some() {
            if core.pending_spill() > 0 {
                tracing::info!(
                    events = core.pending_spill(),
                    "replaying metering events spilled by an earlier run"
                );
                core.replay_wake.notify_one();
            }
            tasks.push(runtime.spawn(run_replayer(Arc::clone(&core), config.replay_interval)));
        }
        Ok(MeteringClient {
            inner: Arc::new(Inner {
                in_flight,
                generation: std::sync::Mutex::new(Arc::default()),
                config,
                core,
                runtime,
                batcher,
                closed: AtomicBool::new(false),
                tasks: std::sync::Mutex::new(tasks),
                _stop: stop,
                thread_end: tokio::sync::Mutex::new(thread_end),
            }),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.inner
            .core
            .counters
            .snapshot(self.inner.core.pending_spill())
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        metering_core::Clock::now(&metering_core::SystemClock)
    }

    fn count_dropped(&self, why: &'static str) {
        Counters::add(&self.inner.core.counters.dropped, 1);
        tracing::debug!(why, "metering event dropped");
    }

    /// Takes one event without waiting: queued for the batcher, or handed to a spawned task
    /// in the other modes. When `max_buffered` events are already held, the
    /// [`OverflowPolicy`] decides (drop and count, or block). After
    /// [`MeteringClient::shutdown`] events are dropped and counted.
    pub fn record(&self, event: NewEvent) {
        if self.inner.closed.load(Ordering::Acquire) {
            self.count_dropped("client shut down");
            return;
        }
        self.enqueue(Pending::event(event, Self::now()));
    }

    /// [`MeteringClient::record`] for a request metered by
    /// [`MeteringLayer`](crate::middleware::MeteringLayer): the request stays in its
    /// compact form until the batch it ships in is encoded.
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    pub fn record_request(&self, request: crate::middleware::MeteredRequest) {
        if self.inner.closed.load(Ordering::Acquire) {
            self.count_dropped("client shut down");
            return;
        }
        self.enqueue(Pending::request(request));
    }

    /// Queues a stamped event for the batcher, or hands it to a spawned delivery.
    fn enqueue(&self, event: Pending) {
        let counters = &self.inner.core.counters;
        match &self.inner.batcher {
            Some((queue, _)) => {
                // Count first: the batcher may take the event before the push returns.
                Counters::add(&counters.buffered, 1);
                let queued = match queue.try_push(event) {
                    Push::Queued => true,
                    Push::Full(event) => match self.inner.config.overflow {
                        OverflowPolicy::DropNewest => false,
                        OverflowPolicy::Block => {
                            let queue = Arc::clone(queue);
                            self.block_on(async move { queue.push(event).await.is_ok() })
                                .unwrap_or(false)
                        }
                    },
                    Push::Closed(_) => false,
                };
                if !queued {
                    Counters::sub(&counters.buffered, 1);
                    self.count_dropped("buffer full or client shut down");
                }
            }
            None => {
                let permit = match Arc::clone(&self.inner.in_flight).try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => match self.inner.config.overflow {
                        OverflowPolicy::DropNewest => None,
                        OverflowPolicy::Block => {
                            let semaphore = Arc::clone(&self.inner.in_flight);
                            self.block_on(async move { semaphore.acquire_owned().await.ok() })
                                .flatten()
                        }
                    },
                };
                let Some(permit) = permit else {
                    self.count_dropped("buffer full");
                    return;
                };
                Counters::add(&counters.buffered, 1);
                let generation = {
                    let current = self.lock_generation();
                    // Counted under the lock, so a flush that swaps generations sees it.
                    current.pending.fetch_add(1, Ordering::AcqRel);
                    Arc::clone(&current)
                };
                let core = Arc::clone(&self.inner.core);
                self.inner.runtime.spawn(async move {
                    core.deliver(vec![event]).await;
                    Counters::sub(&core.counters.buffered, 1);
                    drop(permit);
                    generation.finish_one();
                });
            }
        }
    }

    fn lock_generation(&self) -> std::sync::MutexGuard<'_, Arc<Generation>> {
        // The guarded value is a counter handle; a panic elsewhere cannot corrupt it.
        self.inner
            .generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `future` to completion from synchronous code, where that cannot deadlock: on a
    /// multi-threaded runtime via `block_in_place`, outside any runtime directly. `None` on
    /// a current-thread runtime, whose only thread would be the one waiting.
    fn block_on<F: Future>(&self, future: F) -> Option<F::Output> {
        match Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
                Some(tokio::task::block_in_place(|| handle.block_on(future)))
            }
            Ok(_) => None,
            Err(_) => Some(self.inner.runtime.block_on(future)),
        }
    }

    /// Takes one event, waiting as the mode says: in [`TransportMode::Sync`] the write itself
    /// (with retries; spilled when the sink stays down); in the other modes only for room in
    /// the buffer (under [`OverflowPolicy::Block`]).
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] when the sink refused the event as invalid (sync mode),
    /// [`ClientError::Unavailable`] when it stayed unreachable and there is no spill queue
    /// (sync mode), [`ClientError::Closed`] after shutdown, and
    /// [`ClientError::Unavailable`] when the buffer is full under the drop policy.
    pub async fn send(&self, event: NewEvent) -> Result<Delivery, ClientError> {
        if self.inner.closed.load(Ordering::Acquire) {
            self.count_dropped("client shut down");
            return Err(ClientError::Closed);
        }
        let event = Pending::event(event, Self::now());
        let core = &self.inner.core;
        match (&self.inner.batcher, self.inner.config.mode) {
            (Some((queue, _)), _) => {
                Counters::add(&core.counters.buffered, 1);
                let queued = match self.inner.config.overflow {
                    OverflowPolicy::Block => queue.push(event).await.is_ok(),
                    OverflowPolicy::DropNewest => matches!(queue.try_push(event), Push::Queued),
                };
                if queued {
                    Ok(Delivery::Queued)
                } else {
                    Counters::sub(&core.counters.buffered, 1);
                    self.count_dropped("buffer full or closed");
                    Err(ClientError::Unavailable {
                        message: "the metering buffer is full".into(),
                        source: None,
                    })
                }
            }
            (None, TransportMode::Sync) => {
                let permit = Arc::clone(&self.inner.in_flight)
                    .acquire_owned()
                    .await
                    .map_err(|_| ClientError::Closed)?;
                Counters::add(&core.counters.buffered, 1);
                let report = core.deliver(vec![event]).await;
                Counters::sub(&core.counters.buffered, 1);
                drop(permit);
                if report.rejected_events > 0 {
                    let message = report
                        .rejected
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return Err(ClientError::Rejected {
                        message,
                        errors: report.rejected,
                    });
                }
                if report.dropped > 0 {
                    return Err(ClientError::Unavailable {
                        message: report
                            .failure
                            .unwrap_or_else(|| "the event could not be delivered".into()),
                        source: None,
                    });
                }
                Ok(if report.spilled > 0 {
                    Delivery::Spilled
                } else {
                    Delivery::Sent
                })
            }
            (None, _) => {
                if self.inner.config.overflow == OverflowPolicy::Block {
                    // Wait for room, then hand over without blocking.
                    let permit = Arc::clone(&self.inner.in_flight)
                        .acquire_owned()
                        .await
                        .map_err(|_| ClientError::Closed)?;
                    drop(permit);
                }
                self.enqueue(event);
                Ok(Delivery::Queued)
            }
        }
    }

    /// Checks a quota against the sink (the embedded engine, or `POST /v1/meter/validate`),
    /// consuming it when `request.consume` is set. Not buffered: this waits for the answer.
    ///
    /// # Errors
    ///
    /// [`ClientError::Rejected`] for an invalid request, [`ClientError::Unavailable`] when
    /// the sink cannot answer.
    pub async fn validate(&self, request: ValidateRequest) -> Result<QuotaDecision, ClientError> {
        self.inner.core.sink.validate(request).await
    }

    /// Delivers everything recorded before this call: the partial batch is sent, events in
    /// flight are awaited, and the spill queue is replayed (with retries). Events the sink
    /// still does not take stay in the spill queue (see [`FlushReport::pending_spill`]).
    pub async fn flush(&self) -> FlushReport {
        if let Some((_, control)) = &self.inner.batcher {
            let (reply, done) = oneshot::channel();
            if control.send(Control::Flush(reply)).await.is_ok() {
                let _ = done.await;
            }
        } else {
            let previous = std::mem::take(&mut *self.lock_generation());
            previous.wait().await;
        }
        let core = &self.inner.core;
        if core.pending_spill() > 0 {
            core.replay(core.retry.max_retries).await;
        }
        FlushReport {
            pending_spill: core.pending_spill(),
            stats: self.stats(),
        }
    }

    /// Flushes, then stops the background tasks. Later events are dropped and counted.
    /// Idempotent; every clone of the client is shut down.
    pub async fn shutdown(&self) -> FlushReport {
        self.inner.closed.store(true, Ordering::Release);
        if let Some((_, control)) = &self.inner.batcher {
            let (reply, done) = oneshot::channel();
            if control.send(Control::Shutdown(reply)).await.is_ok() {
                let _ = done.await;
            }
            // With the batcher done, a thread of the client's own ends: wait for it, so the
            // final flush's requests do not race its runtime shutting down.
            if let Some(end) = self.inner.thread_end.lock().await.take() {
                let _ = end.await;
            }
        }
        let report = self.flush().await;
        let tasks = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        report
    }
}

impl Recorder for MeteringClient {
    fn record(&self, event: NewEvent) {
        MeteringClient::record(self, event);
    }

    #[cfg(feature = "tower")]
    fn record_request(&self, request: crate::middleware::MeteredRequest) {
        MeteringClient::record_request(self, request);
    }
}
