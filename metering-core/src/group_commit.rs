//! Group commit: many small concurrent ingests share one store transaction.
//!
//! Each ingest call puts its validated events on a bounded queue and waits. One worker task
//! takes every waiting job (up to `max_events` events), writes them in one
//! [`Store::insert_events`](crate::Store::insert_events) call, and answers each caller with its
//! own share of the outcome. It never waits on a timer for a group to fill: while one group
//! commits, the next one gathers in the queue, so groups grow with the load and the store's
//! fixed cost per transaction is paid once per group. Before committing, the worker lets
//! tasks that are about to submit run and takes what they queued, for as long as that keeps
//! bringing jobs and at most `max_delay`. Every caller is still answered only after the commit
//! that holds its events ("2xx means committed").
//!
//! The queue is bounded: when it is full an ingest fails at once with
//! [`Error::Unavailable`] (the REST layer answers 503 with
//! `Retry-After`), so memory stays bounded under overload.

use futures::future::BoxFuture;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::event::Event;

/// Group commit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GroupCommitConfig {
    /// Commit a group once it holds this many events (default 2,000).
    pub max_events: usize,
    /// Gather a group for at most this long after its first job arrived, while jobs keep
    /// arriving (default 2 ms); a group whose queue has gone quiet commits at once.
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
    /// Settings with these bounds (`max_events` and `queue_capacity` raised to at least 1).
    #[must_use]
    pub fn new(max_events: usize, max_delay: Duration, queue_capacity: usize) -> Self {
        GroupCommitConfig::default()
            .with_max_events(max_events)
            .with_max_delay(max_delay)
            .with_queue_capacity(queue_capacity)
    }

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
pub(crate) type CommitFn =
    Box<dyn Fn(Vec<Event>) -> BoxFuture<'static, Result<(Vec<bool>, Vec<Event>)>> + Send + Sync>;

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
        let opened = tokio::time::Instant::now();
        let mut total = first.events.len();
        let mut group = vec![first];
        // Take what is queued (it waited through the previous commit), then let the tasks
        // that are about to submit run and look again, while that keeps bringing jobs.
        // Nothing waits on a timer: when the store is busy, jobs pile up during its commit
        // and form the next group; when it is idle, a lone job commits at once.
        for look in 0.. {
            let before = group.len();
            while total < config.max_events {
                match receiver.try_recv() {
                    Ok(job) => {
                        total += job.events.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            // The first look always yields once: the submitters may not have run yet.
            let grew = group.len() > before || look == 0;
            if total >= config.max_events || !grew || opened.elapsed() >= config.max_delay {
                break;
            }
            tokio::task::yield_now().await;
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
