//! Which streams' counters to drop after this process missed an ingest.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Tracks the counter hashes this process owes a drop.
///
/// An ingest whose `begin_ingest` or `end_ingest` failed may have committed events that no
/// counter saw, in the streams it touched. Before this process sends any further call, it
/// deletes those streams' counter hashes (they are rebuilt from the store). An ingest whose
/// `begin_ingest` failed may still be committing at that moment, though, and a counter rebuilt
/// before its commit would miss it; so the same hashes are deleted once more at least one
/// ingest-mark lifetime (the longest an ingest may take) after the failure.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// Whether `owed` may hold anything: keeps the usual call free of the lock.
    any: AtomicBool,
    owed: Mutex<Owed>,
}

#[derive(Debug, Default)]
struct Owed {
    /// Counter hashes to delete before the next call.
    now: HashSet<String>,
    /// Counter hashes to delete again once the time has come.
    later: HashMap<String, Instant>,
}

impl Recovery {
    /// Records a failed ingest step over these counter hashes.
    pub(crate) fn missed_ingest<'a>(
        &self,
        counters: impl IntoIterator<Item = &'a String>,
        longest_ingest: Duration,
    ) {
        let at = Instant::now() + longest_ingest;
        let mut owed = self.owed();
        for key in counters {
            owed.now.insert(key.clone());
            owed.later.insert(key.clone(), at);
        }
        self.any.store(true, Ordering::SeqCst);
    }

    /// The counter hashes to delete now (the caller owns them from here on and hands back
    /// those it could not delete with [`Recovery::not_dropped`]).
    pub(crate) fn take_due(&self) -> Vec<String> {
        if !self.any.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let mut owed = self.owed();
        let now = Instant::now();
        let Owed { now: due, later } = &mut *owed;
        later.retain(|key, at| {
            if *at <= now {
                due.insert(key.clone());
                false
            } else {
                true
            }
        });
        let keys: Vec<String> = due.drain().collect();
        if owed.later.is_empty() {
            self.any.store(false, Ordering::SeqCst);
        }
        keys
    }

    /// Hands back drops that failed; they are tried again before the next call.
    pub(crate) fn not_dropped(&self, keys: impl IntoIterator<Item = String>) {
        let mut owed = self.owed();
        owed.now.extend(keys);
        if !owed.now.is_empty() {
            self.any.store(true, Ordering::SeqCst);
        }
    }

    /// Whether any of `counters` still owes a drop that is due now.
    pub(crate) fn owes_now<'a>(&self, mut counters: impl Iterator<Item = &'a String>) -> bool {
        if !self.any.load(Ordering::SeqCst) {
            return false;
        }
        let owed = self.owed();
        counters.any(|key| owed.now.contains(key))
    }

    fn owed(&self) -> MutexGuard<'_, Owed> {
        self.owed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_once_now_and_once_later() {
        let r = Recovery::default();
        assert!(r.take_due().is_empty());
        let (a, b) = ("a".to_owned(), "b".to_owned());
        r.missed_ingest([&a, &b], Duration::from_millis(30));
        let mut due = r.take_due();
        due.sort();
        assert_eq!(due, ["a", "b"]);
        assert!(r.take_due().is_empty());
        r.not_dropped(["b".to_owned()]);
        assert!(r.owes_now([&b].into_iter()));
        assert!(!r.owes_now([&a].into_iter()));
        assert_eq!(r.take_due(), ["b"]);
        std::thread::sleep(Duration::from_millis(40));
        let mut due = r.take_due();
        due.sort();
        assert_eq!(due, ["a", "b"], "the late drops are due");
        assert!(r.take_due().is_empty());
        assert!(!r.any.load(Ordering::SeqCst));
    }
}
