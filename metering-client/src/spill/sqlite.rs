//! The spill queue in a SQLite file: one row per event, in arrival order.
//!
//! Every append is one transaction committed with `synchronous = FULL`, so a batch reported
//! as spilled survives a crash of the process or the machine. rusqlite is synchronous; every
//! call runs under `spawn_blocking`, never on the async threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metering_core::NewEvent;
use rusqlite::{Connection, params};

use crate::error::ClientError;
use crate::wire::{self, Pending};

/// A handle to the queue; clones share one connection.
#[derive(Debug, Clone)]
pub(crate) struct SpillQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Mutex<Connection>,
    /// Rows in the table; kept in memory so the hot path never asks SQLite.
    len: AtomicU64,
    path: PathBuf,
}

fn spill_error(message: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ClientError {
    let message = message.into();
    move |e| ClientError::Spill {
        message,
        source: Some(Box::new(e)),
    }
}

impl SpillQueue {
    /// Opens (or creates) the queue at `path`; rows left by an earlier run are kept.
    pub(crate) async fn open(path: PathBuf) -> Result<Self, ClientError> {
        let opened = path.clone();
        let (conn, len) = tokio::task::spawn_blocking(move || -> Result<_, ClientError> {
            if let Some(dir) = opened.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| ClientError::Spill {
                    message: format!("cannot create {}", dir.display()),
                    source: Some(Box::new(e)),
                })?;
            }
            let conn = Connection::open(&opened)
                .map_err(spill_error(format!("cannot open {}", opened.display())))?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA busy_timeout = 5000;
                 CREATE TABLE IF NOT EXISTS spilled_events (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     event TEXT NOT NULL
                 );",
            )
            .map_err(spill_error("cannot prepare the spill table"))?;
            let len: i64 = conn
                .query_row("SELECT COUNT(*) FROM spilled_events", [], |r| r.get(0))
                .map_err(spill_error("cannot count spilled events"))?;
            Ok((conn, u64::try_from(len).unwrap_or(0)))
        })
        .await
        .map_err(|e| ClientError::Spill {
            message: "the spill task failed".into(),
            source: Some(Box::new(e)),
        })??;
        Ok(SpillQueue {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                len: AtomicU64::new(len),
                path,
            }),
        })
    }

    /// Events waiting in the queue.
    pub(crate) fn len(&self) -> u64 {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Runs `work` on the connection, on a blocking thread. It is given the count of
    /// queued events too, to change it with the table: the task finishes even when the
    /// caller stops waiting for it (a client's runtime shutting down), and the count must
    /// still match what is on disk.
    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection, &AtomicU64) -> Result<T, ClientError> + Send + 'static,
    ) -> Result<T, ClientError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction half-applied
            // (SQLite rolls it back), so the connection stays usable.
            let mut conn = inner.conn.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut conn, &inner.len)
        })
        .await
        .map_err(|e| ClientError::Spill {
            message: "the spill task failed".into(),
            source: Some(Box::new(e)),
        })?
    }

    /// Appends `events` after everything already queued, in one durable transaction.
    pub(crate) async fn append(&self, events: &[Pending]) -> Result<(), ClientError> {
        let rows: Vec<String> = events.iter().map(Pending::to_json).collect();
        let n = rows.len() as u64;
        let path = self.inner.path.display().to_string();
        self.with_conn(move |conn, len| {
            let tx = conn
                .transaction()
                .map_err(spill_error(format!("cannot write to {path}")))?;
            {
                let mut insert = tx
                    .prepare_cached("INSERT INTO spilled_events (event) VALUES (?1)")
                    .map_err(spill_error("cannot prepare the spill insert"))?;
                for row in &rows {
                    insert
                        .execute(params![row])
                        .map_err(spill_error(format!("cannot write to {path}")))?;
                }
            }
            tx.commit()
                .map_err(spill_error(format!("cannot commit to {path}")))?;
            len.fetch_add(n, Ordering::AcqRel);
            Ok(())
        })
        .await
    }

    /// The oldest `limit` events with their sequence numbers. Rows that no longer decode
    /// (written by an incompatible version, or damaged) are logged and removed.
    pub(crate) async fn peek(&self, limit: usize) -> Result<Vec<(i64, NewEvent)>, ClientError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let (events, corrupt) = self
            .with_conn(move |conn, len| {
                let mut select = conn
                    .prepare_cached("SELECT seq, event FROM spilled_events ORDER BY seq LIMIT ?1")
                    .map_err(spill_error("cannot read spilled events"))?;
                let rows = select
                    .query_map(params![limit], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(spill_error("cannot read spilled events"))?;
                let mut events = Vec::new();
                let mut corrupt = Vec::new();
                for row in rows {
                    let (seq, json) = row.map_err(spill_error("cannot read spilled events"))?;
                    match wire::decode(&json) {
                        Some(event) => events.push((seq, event)),
                        None => corrupt.push((seq, json)),
                    }
                }
                drop(select);
                for (seq, _) in &corrupt {
                    conn.execute("DELETE FROM spilled_events WHERE seq = ?1", params![seq])
                        .map_err(spill_error("cannot remove a corrupt spilled event"))?;
                    len.fetch_sub(1, Ordering::AcqRel);
                }
                Ok((events, corrupt))
            })
            .await?;
        for (seq, json) in &corrupt {
            tracing::error!(seq, event = %json, "dropping a spilled event that does not decode");
        }
        Ok(events)
    }

    /// Removes every event up to and including `seq` (after they were delivered).
    pub(crate) async fn remove_through(&self, seq: i64) -> Result<(), ClientError> {
        self.with_conn(move |conn, len| {
            let removed = conn
                .execute("DELETE FROM spilled_events WHERE seq <= ?1", params![seq])
                .map_err(spill_error("cannot remove delivered events"))?;
            len.fetch_sub(removed as u64, Ordering::AcqRel);
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_order_and_survives_reopening() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("spill.db");
        let queue = SpillQueue::open(path.clone()).await.expect("opens");
        let events: Vec<Pending> = (0..5)
            .map(|i| Pending::Event(NewEvent::new("org", "r", "f").with_id(format!("e{i}"))))
            .collect();
        queue.append(&events[..3]).await.expect("appends");
        queue.append(&events[3..]).await.expect("appends");
        assert_eq!(queue.len(), 5);
        let head = queue.peek(2).await.expect("reads");
        let ids: Vec<_> = head.iter().map(|(_, e)| e.id.clone()).collect();
        assert_eq!(ids, [Some("e0".to_owned()), Some("e1".to_owned())]);
        queue.remove_through(head[1].0).await.expect("removes");
        drop(queue);

        let reopened = SpillQueue::open(path).await.expect("reopens");
        assert_eq!(reopened.len(), 3);
        let rest = reopened.peek(10).await.expect("reads");
        let ids: Vec<_> = rest.iter().filter_map(|(_, e)| e.id.clone()).collect();
        assert_eq!(ids, ["e2", "e3", "e4"]);
    }

    /// Polls `work` once (its blocking task starts), then stops waiting for it.
    fn abandon(work: impl std::future::Future<Output = Result<(), ClientError>>) {
        let mut work = std::pin::pin!(work);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(
            work.as_mut().poll(&mut cx).is_pending(),
            "the work was done at once"
        );
    }

    /// Waits until the table holds `rows` events; returns their sequence numbers.
    async fn wait_for_rows(queue: &SpillQueue, rows: usize) -> Vec<i64> {
        for _ in 0..500 {
            let head = queue.peek(100).await.expect("reads");
            if head.len() == rows {
                return head.into_iter().map(|(seq, _)| seq).collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the table never held {rows} events");
    }

    /// A client's runtime can shut down while it waits for the queue: the count still
    /// follows what is on disk, or pending events would be reported that are not there.
    #[tokio::test]
    async fn the_count_follows_the_table_when_nobody_waits() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let queue = SpillQueue::open(dir.path().join("spill.db"))
            .await
            .expect("opens");
        let events: Vec<Pending> = (0..4)
            .map(|i| Pending::Event(NewEvent::new("org", "r", "f").with_id(format!("e{i}"))))
            .collect();
        abandon(queue.append(&events));
        let seqs = wait_for_rows(&queue, 4).await;
        assert_eq!(queue.len(), 4);
        abandon(queue.remove_through(seqs[2]));
        wait_for_rows(&queue, 1).await;
        assert_eq!(queue.len(), 1);
    }
}
