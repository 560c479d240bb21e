//! The process-wide [`Recorder`]: where `#[meter]` and [`MeteringLayer`] send events.
//!
//! The pattern is the one of the `log` and `metrics` crates: a library records through
//! [`recorder()`] without knowing where events go, and the application installs one recorder
//! at start-up with [`set_recorder`]. Until one is installed, recording does nothing and costs
//! one atomic load and a branch ([`installed_recorder`] returns `None`), so instrumented
//! libraries are free to use in applications that do not meter.
//!
//! [`MeteringLayer`]: crate::middleware::MeteringLayer

use std::fmt;
use std::sync::OnceLock;

use metering_core::NewEvent;

#[cfg(feature = "tower")]
use crate::metered::MeteredRequest;

/// Receives usage events. Implementations must not block: [`Recorder::record`] is called on
/// the hot path of request handlers and metered functions.
///
/// [`MeteringClient`](crate::MeteringClient) is the recorder most applications install; a
/// test can install its own to collect events.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use metering_client::{Recorder, NewEvent};
///
/// #[derive(Debug, Default)]
/// struct Collect(Mutex<Vec<NewEvent>>);
///
/// impl Recorder for Collect {
///     fn record(&self, event: NewEvent) {
///         self.0.lock().expect("not poisoned").push(event);
///     }
/// }
/// ```
pub trait Recorder: Send + Sync + 'static {
    /// Takes one event. Must return quickly and never block on I/O; delivery happens
    /// elsewhere (a background task, a channel).
    fn record(&self, event: NewEvent);

    /// Takes one request metered by [`MeteringLayer`](crate::middleware::MeteringLayer).
    /// The default records [`MeteredRequest::into_event`]; a recorder on the hot path of
    /// every request can keep the compact form instead (as
    /// [`MeteringClient`](crate::MeteringClient) does, encoding it only when it ships).
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    fn record_request(&self, request: MeteredRequest) {
        self.record(request.into_event());
    }
}

impl<R: Recorder + ?Sized> Recorder for std::sync::Arc<R> {
    fn record(&self, event: NewEvent) {
        (**self).record(event);
    }

    #[cfg(feature = "tower")]
    fn record_request(&self, request: MeteredRequest) {
        (**self).record_request(request);
    }
}

impl<R: Recorder + ?Sized> Recorder for Box<R> {
    fn record(&self, event: NewEvent) {
        (**self).record(event);
    }

    #[cfg(feature = "tower")]
    fn record_request(&self, request: MeteredRequest) {
        (**self).record_request(request);
    }
}

/// A recorder that drops every event; what [`recorder()`] returns before one is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopRecorder;

impl Recorder for NoopRecorder {
    fn record(&self, _event: NewEvent) {}

    #[cfg(feature = "tower")]
    fn record_request(&self, _request: MeteredRequest) {}
}

static RECORDER: OnceLock<&'static dyn Recorder> = OnceLock::new();
static NOOP: NoopRecorder = NoopRecorder;

/// [`set_recorder`] was called after a recorder had already been installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a metering recorder is already installed")]
pub struct SetRecorderError(());

/// Installs the process-wide recorder. Call it once, at start-up, before metered code runs.
///
/// The recorder lives for the rest of the process (it is leaked, like the `log` crate's
/// logger); keep a clone of it (e.g. a [`MeteringClient`](crate::MeteringClient), which is a
/// cheap handle) to flush and shut it down.
///
/// # Errors
///
/// [`SetRecorderError`] when a recorder is already installed; the new one is dropped and the
/// installed one stays.
///
/// # Examples
///
/// ```
/// use metering_client::{set_recorder, NoopRecorder};
///
/// set_recorder(NoopRecorder).expect("first install");
/// assert!(set_recorder(NoopRecorder).is_err());
/// ```
pub fn set_recorder<R: Recorder>(recorder: R) -> Result<(), SetRecorderError> {
    let mut candidate = Some(recorder);
    RECORDER.get_or_init(|| {
        let recorder = candidate.take().expect("get_or_init runs the closure once");
        Box::leak(Box::new(recorder))
    });
    match candidate {
        None => Ok(()),
        Some(_) => Err(SetRecorderError(())),
    }
}

/// The installed recorder, or a [`NoopRecorder`] when none is.
#[must_use]
pub fn recorder() -> &'static dyn Recorder {
    installed_recorder().unwrap_or(&NOOP)
}

/// The installed recorder, or `None`: one atomic load. Metered code checks this first and
/// builds no event when it is `None`.
#[inline]
#[must_use]
pub fn installed_recorder() -> Option<&'static dyn Recorder> {
    RECORDER.get().copied()
}

/// Records `event` with the installed recorder (nothing happens when none is installed).
pub fn record(event: NewEvent) {
    if let Some(recorder) = installed_recorder() {
        recorder.record(event);
    }
}

impl fmt::Debug for dyn Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn Recorder")
    }
}
