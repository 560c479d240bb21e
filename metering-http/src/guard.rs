//! [`AuthGuard`]: slows down guessing of API keys. Each client address may fail to
//! authenticate a limited number of times per minute; past that, every request from it
//! that presents a key is answered 429 (with `Retry-After`) without looking the key up, so
//! a right guess is no different from a wrong one until the address is let in again.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failed authentications per client address, and the addresses blocked for now.
pub(crate) struct AuthGuard {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

impl fmt::Debug for AuthGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthGuard")
            .field("addresses", &self.failures.len())
            .finish_non_exhaustive()
    }
}

/// Whole seconds to wait for `d`, rounded up (at least 1).
fn seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl AuthGuard {
    /// At most `per_minute` failed authentications per address: a bucket of that many,
    /// refilled evenly over a minute.
    pub(crate) fn new(per_minute: NonZeroU32) -> Self {
        AuthGuard {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: Mutex::default(),
        }
    }

    /// `Ok` when `address` may present a key now, else the seconds until it may.
    pub(crate) fn admit(&self, address: IpAddr) -> Result<(), u64> {
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        match blocked.get(&address) {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(seconds(wait)),
                _ => {
                    blocked.remove(&address);
                    Ok(())
                }
            },
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `address`; when it has no failures left, blocks
    /// it until the next one is due and returns the seconds to wait.
    pub(crate) fn failed(&self, address: IpAddr) -> Result<(), u64> {
        let Err(not_until) = self.failures.check_key(&address) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(PoisonError::into_inner);
        blocked.retain(|_, until| *until > now);
        blocked.insert(address, now + wait);
        drop(blocked);
        self.failures.retain_recent();
        Err(seconds(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_failures_and_others_are_not() {
        let guard = AuthGuard::new(NonZeroU32::new(3).expect("non-zero"));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert_eq!(guard.admit(a), Ok(()));
            assert_eq!(guard.failed(a), Ok(()));
        }
        let wait = guard.failed(a).expect_err("the fourth failure blocks");
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(guard.admit(a).is_err(), "blocked, whatever key it sends");
        assert_eq!(guard.admit(b), Ok(()), "another address is not");
        assert_eq!(guard.failed(b), Ok(()));
    }
}
