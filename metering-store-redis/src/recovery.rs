//! When to bump the namespace epoch after this process missed an ingest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Tracks the epoch bumps this process owes.
///
/// An ingest whose `begin_ingest` or `end_ingest` failed may have committed events that no
/// counter saw. The next successful script call bumps the epoch (every counter is dropped and
/// rebuilt from the store). An ingest whose `begin_ingest` failed may still be committing at
/// that moment, though, and a counter rebuilt before its commit would miss it; so a second bump
/// follows on the first call at least one ingest-mark lifetime (the longest an ingest may take)
/// after the last failure.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    bump_now: AtomicBool,
    has_late_bump: AtomicBool,
    late_bump_at: Mutex<Option<Instant>>,
}

impl Recovery {
    /// Records a failed ingest step.
    pub(crate) fn missed_ingest(&self, longest_ingest: Duration) {
        *self.late() = Some(Instant::now() + longest_ingest);
        self.has_late_bump.store(true, Ordering::SeqCst);
        self.bump_now.store(true, Ordering::SeqCst);
    }

    /// Whether the next call must bump the epoch; the caller owns the bump from now on and
    /// hands it back with [`Recovery::bump_failed`] if its call fails.
    pub(crate) fn take_bump(&self) -> bool {
        let mut bump = self.bump_now.swap(false, Ordering::SeqCst);
        if self.has_late_bump.load(Ordering::SeqCst) {
            let mut late = self.late();
            if late.is_some_and(|at| Instant::now() >= at) {
                *late = None;
                self.has_late_bump.store(false, Ordering::SeqCst);
                bump = true;
            }
        }
        bump
    }

    /// The call that owned a bump failed; the next one bumps instead.
    pub(crate) fn bump_failed(&self) {
        self.bump_now.store(true, Ordering::SeqCst);
    }

    fn late(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.late_bump_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_once_now_and_once_later() {
        let r = Recovery::default();
        assert!(!r.take_bump());
        r.missed_ingest(Duration::from_millis(30));
        assert!(r.take_bump());
        assert!(!r.take_bump());
        r.bump_failed();
        assert!(r.take_bump());
        std::thread::sleep(Duration::from_millis(40));
        assert!(r.take_bump(), "the late bump is due");
        assert!(!r.take_bump());
    }
}
