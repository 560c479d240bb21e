//! The background tasks: the batcher (batching mode) and the spill replayer.

use std::sync::Arc;
use std::time::Duration;

use metering_core::NewEvent;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};

use crate::delivery::Core;
use crate::stats::Counters;

/// A message to the batcher.
#[derive(Debug)]
pub(crate) enum Command {
    /// One event (stamped).
    Event(NewEvent),
    /// Deliver what is queued, then answer.
    Flush(oneshot::Sender<()>),
    /// Deliver what is queued, refuse new events, answer and stop.
    Shutdown(oneshot::Sender<()>),
}

async fn deliver(core: &Core, batch: &mut Vec<NewEvent>, batch_size: usize) {
    if batch.is_empty() {
        return;
    }
    let events = std::mem::replace(batch, Vec::with_capacity(batch_size));
    let n = events.len();
    core.deliver(events).await;
    Counters::sub(&core.counters.buffered, n);
}

/// Collects events into batches of `batch_size`, sending a partial batch once its oldest
/// event has waited `interval`. One batch is in flight at a time, so events reach the sink
/// in the order they were recorded; while it is in flight the channel (bounded by
/// `max_buffered`) absorbs new events.
pub(crate) async fn run_batcher(
    core: Arc<Core>,
    mut rx: mpsc::Receiver<Command>,
    batch_size: usize,
    interval: Duration,
) {
    let mut batch: Vec<NewEvent> = Vec::with_capacity(batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let command = match deadline {
            Some(at) => tokio::select! {
                command = rx.recv() => command,
                () = sleep_until(at) => {
                    deliver(&core, &mut batch, batch_size).await;
                    deadline = None;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match command {
            Some(Command::Event(event)) => {
                if batch.is_empty() {
                    deadline = Some(Instant::now() + interval);
                }
                batch.push(event);
                if batch.len() >= batch_size {
                    deliver(&core, &mut batch, batch_size).await;
                    deadline = None;
                }
            }
            Some(Command::Flush(reply)) => {
                deliver(&core, &mut batch, batch_size).await;
                deadline = None;
                let _ = reply.send(());
            }
            Some(Command::Shutdown(reply)) => {
                // No new events from here on; take what is already queued.
                rx.close();
                while let Some(command) = rx.recv().await {
                    match command {
                        Command::Event(event) => {
                            batch.push(event);
                            if batch.len() >= batch_size {
                                deliver(&core, &mut batch, batch_size).await;
                            }
                        }
                        Command::Flush(other) | Command::Shutdown(other) => {
                            let _ = other.send(());
                        }
                    }
                }
                deliver(&core, &mut batch, batch_size).await;
                let _ = reply.send(());
                return;
            }
            None => {
                deliver(&core, &mut batch, batch_size).await;
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
