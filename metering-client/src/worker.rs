//! The background tasks: the batcher (batching mode) and the spill replayer, and the
//! thread of its own a remote client runs them on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{MissedTickBehavior, sleep};

use crate::delivery::Core;
use crate::stats::Counters;
use crate::wire::Pending;

/// Starts a thread named `metering-client` with a current-thread runtime of its own, which
/// runs `main` to completion, and with it the tasks spawned on the returned handle; the
/// thread ends when `main` does, dropping the other tasks and the runtime, and then the
/// returned receiver fires.
///
/// A remote client does its background work there (encoding batches, HTTP, retries,
/// replays), so it takes no time from the application's runtime, whatever its flavour:
/// on a current-thread runtime the batcher would otherwise share the application's only
/// thread.
#[cfg(feature = "remote")]
pub(crate) async fn spawn_thread(
    main: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(tokio::runtime::Handle, oneshot::Receiver<()>)> {
    let (started, handle) = oneshot::channel();
    let (ended, end) = oneshot::channel();
    std::thread::Builder::new()
        .name("metering-client".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started.send(Err(error));
                    return;
                }
            };
            if started.send(Ok(runtime.handle().clone())).is_ok() {
                runtime.block_on(main);
            }
            // The HTTP connections this runtime served close with it: whoever sends next
            // (a final flush from the application) must not pick one of them.
            drop(runtime);
            let _ = ended.send(());
        })?;
    let handle = handle
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("the metering-client thread exited")))?;
    Ok((handle, end))
}

/// A request to the batcher.
#[derive(Debug)]
pub(crate) enum Control {
    /// Deliver what is queued, then answer.
    Flush(oneshot::Sender<()>),
    /// Refuse new events, deliver what is queued, answer and stop.
    Shutdown(oneshot::Sender<()>),
}

/// What [`BatchQueue::try_push`] did.
#[derive(Debug)]
pub(crate) enum Push {
    Queued,
    /// The queue holds `capacity` events; the event is handed back.
    Full(Pending),
    /// The client is shut down; the event is handed back.
    Closed(Pending),
}

/// Queued events in chunks of `batch_size`: pushing never moves earlier events (a single
/// growing vector would be copied on every reallocation), and each chunk is a batch.
#[derive(Debug, Default)]
struct Chunks {
    full: Vec<Vec<Pending>>,
    current: Vec<Pending>,
    len: usize,
}

/// The buffer between the application and the batcher: chunks behind a mutex that the
/// batcher empties in one swap. Recording locks it for a push (uncontended, tens of
/// nanoseconds) and wakes the batcher only when a full batch is waiting, so the hot path
/// makes no system call; a channel would wake the background task for every event.
#[derive(Debug)]
pub(crate) struct BatchQueue {
    events: Mutex<Chunks>,
    closed: AtomicBool,
    batch_size: usize,
    capacity: usize,
    /// A full batch is waiting.
    ready: Notify,
    /// The batcher took events: there is room again.
    space: Notify,
}

impl BatchQueue {
    pub(crate) fn new(batch_size: usize, capacity: usize) -> Self {
        BatchQueue {
            events: Mutex::new(Chunks::default()),
            closed: AtomicBool::new(false),
            batch_size,
            capacity,
            ready: Notify::new(),
            space: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Chunks> {
        // Pushing and swapping vectors cannot leave them inconsistent, even after a panic.
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `event` unless the queue is full or closed.
    pub(crate) fn try_push(&self, event: Pending) -> Push {
        let mut chunks = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Push::Closed(event);
        }
        if chunks.len >= self.capacity {
            return Push::Full(event);
        }
        if chunks.current.capacity() == 0 {
            chunks.current.reserve_exact(self.batch_size);
        }
        chunks.current.push(event);
        chunks.len += 1;
        let filled = chunks.current.len() >= self.batch_size;
        if filled {
            let chunk = std::mem::take(&mut chunks.current);
            chunks.full.push(chunk);
        }
        drop(chunks);
        if filled {
            self.ready.notify_one();
        }
        Push::Queued
    }

    /// Queues `event`, waiting for room; hands it back when the queue is closed.
    pub(crate) async fn push(&self, mut event: Pending) -> Result<(), Pending> {
        loop {
            // Registered before the attempt, so room made in between is not missed.
            let room = self.space.notified();
            match self.try_push(event) {
                Push::Queued => return Ok(()),
                Push::Closed(back) => return Err(back),
                Push::Full(back) => {
                    event = back;
                    room.await;
                }
            }
        }
    }

    /// Takes the full batches, and with [`Drain::All`] the partial one too, oldest first.
    fn take(&self, which: Drain) -> Vec<Vec<Pending>> {
        let mut chunks = self.lock();
        let mut taken = std::mem::take(&mut chunks.full);
        if which == Drain::All && !chunks.current.is_empty() {
            taken.push(std::mem::take(&mut chunks.current));
        }
        chunks.len -= taken.iter().map(Vec::len).sum::<usize>();
        drop(chunks);
        if !taken.is_empty() {
            self.space.notify_waiters();
        }
        taken
    }

    fn close(&self) {
        let _guard = self.lock();
        self.closed.store(true, Ordering::Release);
    }
}

/// Which queued events [`drain`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Only full batches; a partial one waits for the next tick.
    FullBatches,
    /// Everything, the last batch possibly partial.
    All,
}

/// Delivers queued events batch by batch until none (or, with [`Drain::FullBatches`], no
/// full batch) is left.
async fn drain(core: &Core, queue: &BatchQueue, which: Drain) {
    loop {
        let batches = queue.take(which);
        if batches.is_empty() {
            return;
        }
        for batch in batches {
            let n = batch.len();
            core.deliver(batch).await;
            Counters::sub(&core.counters.buffered, n);
        }
    }
}

/// Sends batches of `batch_size` as soon as they fill up, and whatever is queued every
/// `interval`. One batch is in flight at a time, so events reach the sink in the order they
/// were recorded; meanwhile the queue (bounded by `max_buffered`) absorbs new events.
pub(crate) async fn run_batcher(
    core: Arc<Core>,
    queue: Arc<BatchQueue>,
    mut control: mpsc::Receiver<Control>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let request = tokio::select! {
            () = queue.ready.notified() => Err(Drain::FullBatches),
            _ = tick.tick() => Err(Drain::All),
            request = control.recv() => Ok(request),
        };
        let request = match request {
            Err(which) => {
                drain(&core, &queue, which).await;
                continue;
            }
            Ok(request) => request,
        };
        match request {
            Some(Control::Flush(reply)) => {
                drain(&core, &queue, Drain::All).await;
                let _ = reply.send(());
            }
            Some(Control::Shutdown(reply)) => {
                queue.close();
                drain(&core, &queue, Drain::All).await;
                let _ = reply.send(());
                return;
            }
            None => {
                queue.close();
                drain(&core, &queue, Drain::All).await;
                return;
            }
        }
    }
}

/// Replays the spill queue whenever something is spilled and every `interval` while it is
/// not empty. Each pass makes one attempt per batch (no retries): while the sink is down
/// that is one cheap probe per interval.
pub(crate) async fn run_replayer(core: Arc<Core>, interval: Duration) {
    loop {
        tokio::select! {
            () = core.replay_wake.notified() => {}
            () = sleep(interval) => {}
        }
        if core.pending_spill() == 0 {
            continue;
        }
        if !core.replay(0).await {
            // The sink is still down: wait a full interval before probing again, however
            // often new batches are spilled meanwhile.
            sleep(interval).await;
        }
    }
}
