//! In-memory backends: a real, concurrent-safe [`crate::Store`] and [`crate::QuotaCache`]
//! that keep everything in the process. They are the executable specification the
//! conformance suite is checked against, the default for tests, and fine for ephemeral
//! embedding. Nothing survives a restart.

mod cache;
mod store;

pub use cache::MemoryQuotaCache;
pub use store::MemoryStore;
