//! Connections, kept off the async runtime: one writer thread and a pool of readers.
//!
//! # Why a writer thread plus a reader pool
//!
//! SQLite admits one writer at a time per database file, whatever the number of connections;
//! several writing connections only take turns on the file lock, sleeping in the busy
//! handler. So every write (batch inserts, `consume`, quotas, keys) goes to **one dedicated
//! OS thread** that owns the write connection and takes closures from a channel:
//!
//! - writes are serialized in the process without lock contention or busy-wait sleeps, and
//!   the thread's prepared-statement cache stays warm;
//! - `consume` (sum the usage, then insert) is atomic within the process because nothing
//!   else writes between its two steps, and across processes because it runs in a
//!   `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before it reads;
//! - the async side only awaits a oneshot reply, so no tokio worker ever blocks on disk.
//!
//! Reads run on a **small pool of read connections** under
//! [`tokio::task::spawn_blocking`]: in WAL mode readers see a consistent snapshot and never
//! block the writer or each other, so aggregates and listings proceed while a batch commits.
//! A semaphore bounds the pool; each read runs in one deferred transaction so every
//! statement of a query sees the same snapshot. A connection goes back to the pool from the
//! blocking task itself, so a caller that gives up waiting never loses one.
//!
//! The alternative of `spawn_blocking` for writes too would need a mutex around the write
//! connection (a blocking thread parked per queued writer) for no gain; tokio-rusqlite style
//! "one thread per connection" for reads would serialize all reads on one connection.
//!
//! In-memory databases are private to one connection, so they have no readers: every call
//! goes to the writer thread.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Semaphore, oneshot};

use crate::config::SqliteConfig;
use crate::error::{DbResult, SqliteError};

/// Work for the writer thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Opens a connection with this crate's settings.
pub(crate) fn open(config: &SqliteConfig, writer: bool) -> DbResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = if config.is_in_memory() {
        Connection::open_in_memory()?
    } else {
        Connection::open_with_flags(&config.path, flags)?
    };
    conn.busy_timeout(config.busy_timeout)?;
    if writer {
        // WAL is a property of the file: set once by the writer, every later connection uses
        // it. (In-memory databases answer "memory" and keep their own journal.)
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    }
    conn.pragma_update(None, "synchronous", config.synchronous.as_pragma())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let readers = u32::try_from(config.readers.max(1)).unwrap_or(u32::MAX);
    let kib = if writer {
        config.cache_kib / 3 * 2
    } else {
        config.cache_kib / 3 / readers
    };
    conn.pragma_update(None, "cache_size", -i64::from(kib.max(1)))?;
    if !writer {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The handle of the writer thread; the thread ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread that owns `conn`.
    pub(crate) fn spawn(mut conn: Connection) -> DbResult<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("metering-sqlite-writer".into())
            .spawn(move || {
                for job in queue {
                    // A panicking job must not take the store down with it: its transaction
                    // rolls back when dropped, and its caller sees the reply channel closed.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                }
            })
            .map_err(|e| SqliteError::Task(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` on the write connection and waits for its result.
    pub(crate) async fn run<T, F>(&self, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| SqliteError::WriterGone)?;
        answer.await.map_err(|_| SqliteError::WriterGone)?
    }
}

/// Read connections and the permits that bound their use.
#[derive(Debug)]
pub(crate) struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    count: usize,
}

impl Readers {
    /// A pool of `count` connections to the database of `config`.
    pub(crate) fn open(config: &SqliteConfig, count: usize) -> DbResult<Self> {
        let idle = (0..count)
            .map(|_| open(config, false))
            .collect::<DbResult<Vec<_>>>()?;
        Ok(Readers {
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(count)),
            count,
        })
    }

    /// Whether the pool has no connections.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a read connection on a blocking thread.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> DbResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> DbResult<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| SqliteError::WriterGone)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A permit guarantees an idle connection.
            let Some(mut conn) = pool.lock().pop() else {
                return Err(SqliteError::Task("no idle read connection".into()));
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut conn)));
            pool.lock().push(conn);
            result.unwrap_or_else(|_| Err(SqliteError::Task("a read panicked".into())))
        })
        .await
        .map_err(|e| SqliteError::Task(e.to_string()))?
    }
}
