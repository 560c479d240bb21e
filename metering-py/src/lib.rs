//! The native half of the `metering` Python package: [`metering_client::MeteringClient`]
//! behind a small Python class, `metering._native.Client`.
//!
//! Python calls in, hands over an event and returns: batching, retries, the spill queue and
//! the HTTP requests run on Rust threads that never hold the GIL. Calls that wait (a sync
//! send, a quota check, a flush) release the GIL while they wait. The pure-Python layer
//! (`python/metering`) builds the original library's API on top: `MeteringClient`, the
//! `meter` decorator and the ASGI and Flask middleware.
//!
//! The crate is built by maturin (`pip install ./metering-py`) and tested from Python
//! (`metering-py/tests`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metering_client::{ClientConfig, ClientError, ClientStats, Delivery, MeteringClient};
use metering_core::{Metadata, Metering, NewEvent, Quantity, ValidateRequest};
use metering_store_sqlite::SqliteStore;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use tokio::runtime::Runtime;

create_exception!(
    _native,
    MeteringError,
    PyException,
    "A metering operation failed: bad settings, an unreachable server, a closed client."
);
create_exception!(
    _native,
    EventRejected,
    MeteringError,
    "The server (or the embedded store) refused an event as invalid; retrying cannot help."
);

/// The runtime the clients' waits and embedded stores run on, with the process it was made
/// in: a child forked after it was made gets a runtime of its own, since the parent's worker
/// threads do not exist there.
static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

fn runtime() -> PyResult<Arc<Runtime>> {
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    if let Some((owner, runtime)) = slot.as_ref()
        && *owner == pid
    {
        return Ok(Arc::clone(runtime));
    }
    if let Some((_, inherited)) = slot.take() {
        // Dropping it would wait for worker threads that were not copied by fork().
        std::mem::forget(inherited);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("metering-py")
        .enable_all()
        .build()
        .map_err(|error| MeteringError::new_err(format!("cannot start the runtime: {error}")))?;
    let runtime = Arc::new(runtime);
    *slot = Some((pid, Arc::clone(&runtime)));
    Ok(runtime)
}

fn client_error(error: &ClientError) -> PyErr {
    match error {
        ClientError::Rejected { message, .. } => EventRejected::new_err(message.clone()),
        other => MeteringError::new_err(other.to_string()),
    }
}

/// Reads a quantity: an `int`, a `float` (by its shortest decimal text, so `0.1` is exactly
/// 0.1), a decimal string or a `decimal.Decimal`.
fn quantity(value: &Bound<'_, PyAny>) -> PyResult<Quantity> {
    if value.is_instance_of::<PyBool>() {
        return Err(PyValueError::new_err(
            "quantity must be a number, not a bool",
        ));
    }
    if let Ok(int) = value.cast::<PyInt>() {
        return int.extract::<u64>().map(Quantity::from_units).map_err(|_| {
            PyValueError::new_err(format!("quantity must be > 0 and at most 10^15, got {int}"))
        });
    }
    let text: String = if value.is_instance_of::<PyFloat>() {
        let float: f64 = value.extract()?;
        if !float.is_finite() {
            return Err(PyValueError::new_err(format!(
                "quantity must be a finite number, got {float}"
            )));
        }
        // Rust prints the shortest text that reads back as the same float, never with an
        // exponent: 1e-05 is "0.00001".
        format!("{float}")
    } else if value.is_instance_of::<PyString>() {
        value.extract()?
    } else {
        // decimal.Decimal and other numbers: fixed-point text, no exponent.
        value
            .call_method1("__format__", ("f",))
            .and_then(|text| text.extract())
            .map_err(|_| {
                PyValueError::new_err(format!(
                    "quantity must be an int, float, Decimal or decimal string, got {}",
                    value.get_type()
                ))
            })?
    };
    text.trim()
        .parse::<Quantity>()
        .map_err(|error| PyValueError::new_err(format!("quantity {text:?}: {error}")))
}

/// One event, with its id and timestamp fixed now, so a retry or a fallback to the queue
/// can never count it twice or move it to another window.
fn event(
    tenant_id: String,
    resource: String,
    feature: String,
    amount: Option<&Bound<'_, PyAny>>,
    metadata: Option<&str>,
    timestamp: Option<&str>,
    id: Option<String>,
) -> PyResult<NewEvent> {
    let mut event = NewEvent::new(tenant_id, resource, feature);
    if let Some(amount) = amount {
        event.quantity = Some(quantity(amount)?);
    }
    if let Some(json) = metadata {
        let object: Metadata = serde_json::from_str(json).map_err(|error| {
            PyValueError::new_err(format!("metadata must be a JSON object: {error}"))
        })?;
        event.metadata = Some(object);
    }
    event.timestamp = Some(match timestamp {
        Some(text) => metering_core::time::parse_event_timestamp(text).ok_or_else(|| {
            PyValueError::new_err(format!(
                "timestamp {text:?} is not an ISO 8601 date-time (naive means UTC)"
            ))
        })?,
        None => metering_core::Clock::now(&metering_core::SystemClock),
    });
    event.id = Some(id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()));
    Ok(event)
}

fn stats_dict<'py>(py: Python<'py>, stats: &ClientStats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("sent", stats.sent)?;
    dict.set_item("retried", stats.retried)?;
    dict.set_item("spilled", stats.spilled)?;
    dict.set_item("dropped", stats.dropped)?;
    dict.set_item("rejected", stats.rejected)?;
    dict.set_item("replayed", stats.replayed)?;
    dict.set_item("buffered", stats.buffered)?;
    dict.set_item("pending_spill", stats.pending_spill)?;
    Ok(dict)
}

/// A metering client: events go to a `metering-server` (an `http(s)://` URL) or to a SQLite
/// file in this process (a `sqlite:` URL).
#[pyclass(frozen, module = "metering._native")]
struct Client {
    runtime: Arc<Runtime>,
    /// Delivers in the configured mode: batching, fire-and-forget or sync.
    main: MeteringClient,
    /// Sends one event and waits for the answer, whatever the mode (the same client in sync
    /// mode). It has no spill queue: an event it cannot deliver goes to `main`.
    direct: MeteringClient,
}

#[pymethods]
impl Client {
    /// Connects (or opens the SQLite store) with the given settings; durations in
    /// milliseconds.
    #[new]
    #[pyo3(signature = (
        url, api_key, mode, batch_size, batch_interval_ms, max_retries, timeout_ms,
        spill_path=None, max_buffered=None
    ))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the keyword arguments of the Python constructor"
    )]
    fn new(
        py: Python<'_>,
        url: String,
        api_key: Option<String>,
        mode: &str,
        batch_size: usize,
        batch_interval_ms: u64,
        max_retries: u32,
        timeout_ms: u64,
        spill_path: Option<PathBuf>,
        max_buffered: Option<usize>,
    ) -> PyResult<Self> {
        let mut config = ClientConfig::default()
            .with_mode(mode.parse().map_err(|error| client_error(&error))?)
            .with_batch_size(batch_size)
            .with_batch_interval(Duration::from_millis(batch_interval_ms))
            .with_max_retries(max_retries)
            .with_request_timeout(Duration::from_millis(timeout_ms));
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        if let Some(events) = max_buffered {
            config = config.with_max_buffered(events);
        }
        let direct_config = config
            .clone()
            .with_mode(metering_client::TransportMode::Sync);
        if let Some(path) = spill_path {
            config = config.with_spill_path(path);
        }
        let runtime = runtime()?;
        let sync = config.mode == metering_client::TransportMode::Sync;
        let built = py.detach(|| {
            runtime.block_on(async {
                if url.starts_with("sqlite:") {
                    let store = SqliteStore::connect(&url)
                        .await
                        .map_err(|error| MeteringError::new_err(error.to_string()))?;
                    let engine = Metering::builder(store).build();
                    let main = MeteringClient::embedded(engine.clone(), config).await;
                    let main = main.map_err(|error| client_error(&error))?;
                    let direct = if sync {
                        main.clone()
                    } else {
                        MeteringClient::embedded(engine, direct_config)
                            .await
                            .map_err(|error| client_error(&error))?
                    };
                    Ok((main, direct))
                } else {
                    let main = MeteringClient::connect(config.with_api_url(url.clone()))
                        .await
                        .map_err(|error| client_error(&error))?;
                    let direct = if sync {
                        main.clone()
                    } else {
                        MeteringClient::connect(direct_config.with_api_url(url))
                            .await
                            .map_err(|error| client_error(&error))?
                    };
                    Ok::<_, PyErr>((main, direct))
                }
            })
        });
        let (main, direct) = built?;
        Ok(Client {
            runtime,
            main,
            direct,
        })
    }

    /// Hands one event over for delivery and returns at once (nothing waits for the
    /// network). Raises `ValueError` for a quantity, timestamp or metadata that cannot be
    /// read.
    #[pyo3(signature = (tenant_id, resource, feature, quantity=None, metadata=None, timestamp=None, id=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the keyword arguments of the Python method"
    )]
    fn record(
        &self,
        tenant_id: String,
        resource: String,
        feature: String,
        quantity: Option<&Bound<'_, PyAny>>,
        metadata: Option<&str>,
        timestamp: Option<&str>,
        id: Option<String>,
    ) -> PyResult<()> {
        let event = event(
            tenant_id, resource, feature, quantity, metadata, timestamp, id,
        )?;
        self.main.record(event);
        Ok(())
    }

    /// Sends one event now and waits (without the GIL): `True` once stored, `False` when the
    /// server stayed unreachable and the event went to the queue (and spill file) to be
    /// delivered later. Raises `EventRejected` when the event is invalid.
    #[pyo3(signature = (tenant_id, resource, feature, quantity=None, metadata=None, timestamp=None, id=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the keyword arguments of the Python method"
    )]
    fn send(
        &self,
        py: Python<'_>,
        tenant_id: String,
        resource: String,
        feature: String,
        quantity: Option<&Bound<'_, PyAny>>,
        metadata: Option<&str>,
        timestamp: Option<&str>,
        id: Option<String>,
    ) -> PyResult<bool> {
        let event = event(
            tenant_id, resource, feature, quantity, metadata, timestamp, id,
        )?;
        let outcome = py.detach(|| self.runtime.block_on(send(&self.direct, &self.main, event)));
        outcome.map_err(|error| client_error(&error))
    }

    /// [`Client::send`] without blocking: the outcome is passed to `done(value, error)`,
    /// called on `loop` with `loop.call_soon_threadsafe` (`error` is `None`, or the message
    /// of an `EventRejected`).
    #[pyo3(signature = (event_loop, done, tenant_id, resource, feature, quantity=None, metadata=None, timestamp=None, id=None))]
    #[expect(
        clippy::too_many_arguments,
        reason = "the keyword arguments of the Python method"
    )]
    fn send_soon(
        &self,
        event_loop: Py<PyAny>,
        done: Py<PyAny>,
        tenant_id: String,
        resource: String,
        feature: String,
        quantity: Option<&Bound<'_, PyAny>>,
        metadata: Option<&str>,
        timestamp: Option<&str>,
        id: Option<String>,
    ) -> PyResult<()> {
        let event = event(
            tenant_id, resource, feature, quantity, metadata, timestamp, id,
        )?;
        let (direct, main) = (self.direct.clone(), self.main.clone());
        self.runtime.spawn(async move {
            let outcome = send(&direct, &main, event).await;
            Python::attach(|py| {
                let (value, error) = match outcome {
                    Ok(sent) => (PyBool::new(py, sent).to_owned().into_any(), None),
                    Err(error) => (py.None().into_bound(py), Some(error.to_string())),
                };
                answer(py, &event_loop, &done, (value, error));
            });
        });
        Ok(())
    }

    /// Checks a quota (`POST /v1/meter/validate`, or the embedded engine) and returns the
    /// decision as JSON. `request` is the validate request as JSON. Waits without the GIL.
    fn validate(&self, py: Python<'_>, request: &str) -> PyResult<String> {
        let request = validate_request(request)?;
        let client = &self.main;
        py.detach(|| self.runtime.block_on(validate(client, request)))
    }

    /// [`Client::validate`] without blocking: `done(decision_json, error)` is called on
    /// `loop`.
    fn validate_soon(&self, event_loop: Py<PyAny>, done: Py<PyAny>, request: &str) -> PyResult<()> {
        let request = validate_request(request)?;
        let client = self.main.clone();
        self.runtime.spawn(async move {
            let outcome = validate(&client, request).await;
            Python::attach(|py| match outcome {
                Ok(json) => answer(py, &event_loop, &done, (json, None::<String>)),
                Err(error) => {
                    let message = error.value(py).to_string();
                    answer(py, &event_loop, &done, (None::<String>, Some(message)));
                }
            });
        });
        Ok(())
    }

    /// Delivers everything recorded so far (waiting at most `timeout` seconds when given)
    /// and returns the counters, with `pending_spill` the events still waiting on disk.
    #[pyo3(signature = (timeout=None))]
    fn flush<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyDict>> {
        let wait = timeout.map(Duration::from_secs_f64);
        let main = &self.main;
        py.detach(|| {
            self.runtime.block_on(async {
                match wait {
                    Some(wait) => {
                        let _ = tokio::time::timeout(wait, main.flush()).await;
                    }
                    None => {
                        main.flush().await;
                    }
                }
            });
        });
        self.stats(py)
    }

    /// Flushes, then stops the background work; later events are dropped (and counted).
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (main, direct) = (&self.main, &self.direct);
        py.detach(|| {
            self.runtime.block_on(async {
                main.shutdown().await;
                direct.shutdown().await;
            });
        });
        self.stats(py)
    }

    /// The counters, in events: sent, retried, spilled, dropped, rejected, replayed,
    /// buffered (in memory now) and pending_spill (on disk now). Sends made by `send` are
    /// counted too.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut stats = self.main.stats();
        if !self.direct_is_main() {
            let direct = self.direct.stats();
            stats.sent += direct.sent;
            stats.retried += direct.retried;
            stats.rejected += direct.rejected;
        }
        stats_dict(py, &stats)
    }
}

impl Client {
    fn direct_is_main(&self) -> bool {
        self.main.config().mode == metering_client::TransportMode::Sync
    }
}

/// Sends on `direct`; an event it could not deliver is handed to `main` (retried and
/// spilled there) under the same id, so it is stored once.
async fn send(
    direct: &MeteringClient,
    main: &MeteringClient,
    event: NewEvent,
) -> Result<bool, ClientError> {
    match direct.send(event.clone()).await {
        Ok(Delivery::Sent) => Ok(true),
        Ok(_) => Ok(false),
        Err(rejected @ ClientError::Rejected { .. }) => Err(rejected),
        Err(error) => {
            tracing::debug!(%error, "metering event not delivered now; queued to be retried");
            main.record(event);
            Ok(false)
        }
    }
}

fn validate_request(json: &str) -> PyResult<ValidateRequest> {
    let raw = serde_json::value::RawValue::from_string(json.to_owned())
        .map_err(|error| PyValueError::new_err(format!("invalid quota check: {error}")))?;
    ValidateRequest::from_json(&raw)
        .map_err(|error| PyValueError::new_err(format!("invalid quota check: {error}")))
}

async fn validate(client: &MeteringClient, request: ValidateRequest) -> PyResult<String> {
    let decision = client
        .validate(request)
        .await
        .map_err(|error| client_error(&error))?;
    serde_json::to_string(&decision).map_err(|error| MeteringError::new_err(error.to_string()))
}

/// Calls `done(*args)` on the event loop; a loop that is already closed is left alone (its
/// future can no longer be awaited).
fn answer<'py>(
    py: Python<'py>,
    event_loop: &Py<PyAny>,
    done: &Py<PyAny>,
    args: (impl IntoPyObject<'py>, impl IntoPyObject<'py>),
) {
    let event_loop = event_loop.bind(py);
    if event_loop
        .call_method0("is_closed")
        .and_then(|closed| closed.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let scheduled = event_loop.call_method1("call_soon_threadsafe", (done, args.0, args.1));
    if let Err(error) = scheduled {
        tracing::debug!(%error, "could not hand a metering result to its event loop");
    }
}

/// The native module of the `metering` package.
#[pymodule(name = "_native")]
mod native {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::{Client, EventRejected, MeteringError};

    /// Sends the client's log messages (info and above) to Python's `logging`, under
    /// `metering.` (`metering.metering_client.delivery`, ...). Loggers and their levels are
    /// looked up once, so configure logging before the first client is made.
    #[pymodule_init]
    fn init(module: &Bound<'_, PyModule>) -> PyResult<()> {
        let logger = pyo3_log::Logger::new(module.py(), pyo3_log::Caching::LoggersAndLevels)?
            .filter(log::LevelFilter::Info)
            .set_prefix("metering");
        // Another extension in the process may have installed its bridge first; its
        // messages and ours then go through that one.
        let _ = logger.install();
        Ok(())
    }
}
