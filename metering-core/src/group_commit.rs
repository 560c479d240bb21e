//! Group commit: many small concurrent ingests share one store transaction.
//!
//! Each ingest call puts its validated events on a bounded queue and waits. One worker task
//! takes the first waiting job, keeps taking jobs until the group holds `max_events` events or
//! `max_delay` has passed since the first, writes the whole group in one
//! [`Store::insert_events`](crate::Store::insert_events) call, and answers each caller with its
//! own share of the outcome. So every caller is still answered only after the commit that
//! holds its events ("2xx means committed"), while a transaction's fixed cost (an fsync on
//! SQLite) is paid once per group instead of once per request.
//!
//! The queue is bounded: when it is full an ingest fails at once with
//! [`Error::Unavailable`] (the REST layer answers 503 with
//! `Retry-After`), so memory stays bounded under overload.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::event::Event;

/// Group commit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCommitConfig {
    /// Commit a group once it holds this many events (default 2,000).
    pub max_events: usize,
    /// Commit a group at most this long after its first job arrived (default 2 ms).
    pub max_delay: Duration,
    /// Jobs waiting at most; beyond this ingests are refused as unavailable (default 10,000).
    pub queue_capacity: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        GroupCommitConfig {
            max_events: 2_000,
            max_delay: Duration::from_millis(2),
            queue_capacity: 10_000,
        }
    }
}

impl GroupCommitConfig {
    /// Sets the group size bound.
    #[must_use]
    pub fn with_max_events(mut self, events: usize) -> Self {
        self.max_events = events.max(1);
        self
    }

    /// Sets the delay bound.
    #[must_use]
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets the queue bound.
    #[must_use]
    pub fn with_queue_capacity(mut self, jobs: usize) -> Self {
        self.queue_capacity = jobs.max(1);
        self
    }
}

/// Which of a job's events were newly written.
pub(crate) type JobResult = Result<(Vec<bool>, Vec<Event>)>;

pub(crate) struct Job {
    pub(crate) events: Vec<Event>,
    pub(crate) reply: oneshot::Sender<JobResult>,
}

/// The sending side, held by the engine.
#[derive(Debug, Clone)]
pub(crate) struct GroupCommitter {
    jobs: mpsc::Sender<Job>,
    config: GroupCommitConfig,
}

/// Commits one group of events and reports which were inserted.
pub(crate) type CommitFn = Box<
    dyn Fn(Vec<Event>) -> futures_like::BoxFuture<Result<(Vec<bool>, Vec<Event>)>> + Send + Sync,
>;

pub(crate) mod futures_like {
    use std::future::Future;
    use std::pin::Pin;

    /// A boxed, sendable future.
    pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("events", &self.events.len())
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the worker on the current tokio runtime.
    pub(crate) fn start(config: GroupCommitConfig, commit: CommitFn) -> Self {
        let (jobs, receiver) = mpsc::channel(config.queue_capacity);
        tokio::spawn(run(receiver, config, commit));
        GroupCommitter { jobs, config }
    }

    /// Whether a batch of `len` events should go through the group (large ones go alone).
    pub(crate) fn takes(&self, len: usize) -> bool {
        len <= self.config.max_events
    }

    /// Queues a job and waits for its commit.
    pub(crate) async fn submit(&self, events: Vec<Event>) -> JobResult {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { events, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::Unavailable {
                    message: "the ingest queue is full; retry shortly".into(),
                    source: None,
                },
                mpsc::error::TrySendError::Closed(_) => Error::Unavailable {
                    message: "the engine is shutting down".into(),
                    source: None,
                },
            })?;
        answer.await.map_err(|_| Error::Internal {
            message: "the group commit worker stopped".into(),
            source: None,
        })?
    }
}

async fn run(mut receiver: mpsc::Receiver<Job>, config: GroupCommitConfig, commit: CommitFn) {
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + config.max_delay;
        let mut total = first.events.len();
        let mut group = vec![first];
        while total < config.max_events {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(job)) => {
                    total += job.events.len();
                    group.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let sizes: Vec<usize> = group.iter().map(|j| j.events.len()).collect();
        let mut replies = Vec::with_capacity(group.len());
        let mut events = Vec::with_capacity(total);
        for job in group {
            events.extend(job.events);
            replies.push(job.reply);
        }
        match commit(events).await {
            Ok((inserted, mut events)) => {
                // Hand each job its own slice, in order.
                let mut inserted = inserted.into_iter();
                let mut rest = events.drain(..);
                for (reply, size) in replies.into_iter().zip(sizes) {
                    let flags: Vec<bool> = inserted.by_ref().take(size).collect();
                    let own: Vec<Event> = rest.by_ref().take(size).collect();
                    let _ = reply.send(Ok((flags, own)));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(copy_error(&e)));
                }
            }
        }
    }
}

/// The same failure for every job of a failed group (causes are logged, not shared).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Unavailable { message, .. } => Error::Unavailable {
            message: message.clone(),
            source: None,
        },
        Error::Conflict(m) => Error::Conflict(m.clone()),
        Error::Validation(v) => Error::Validation(v.clone()),
        other => {
            tracing::error!(error = %other, cause = ?std::error::Error::source(other), "group commit failed");
            Error::Internal {
                message: other.to_string(),
                source: None,
            }
        }
    }
}
