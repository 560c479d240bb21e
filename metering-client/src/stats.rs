//! Counters of what the client did with the events it was given.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's counters, all in events (not requests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Held in memory now: queued for the background task or being sent.
    pub buffered: u64,
    /// Acknowledged by the sink (including duplicates it had already stored, and events
    /// replayed from the spill queue).
    pub sent: u64,
    /// Resent after a failed attempt; one event retried twice counts two.
    pub retried: u64,
    /// Written to the spill queue because the sink stayed unreachable.
    pub spilled: u64,
    /// Delivered from the spill queue.
    pub replayed: u64,
    /// Waiting in the spill queue now.
    pub pending_spill: u64,
    /// Lost: the buffer was full under the drop policy, the client was shut down, or the
    /// sink was unreachable with no spill queue configured.
    pub dropped: u64,
    /// Refused by the sink as invalid (logged with the event); never retried.
    pub rejected: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) buffered: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) spilled: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: usize) {
        counter.fetch_sub(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pending_spill: u64) -> ClientStats {
        ClientStats {
            buffered: self.buffered.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            spilled: self.spilled.load(Ordering::Relaxed),
            replayed: self.replayed.load(Ordering::Relaxed),
            pending_spill,
            dropped: self.dropped.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}
