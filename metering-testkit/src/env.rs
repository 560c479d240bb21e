//! Finding the real servers the backend tests run against.
//!
//! - Variable unset: `None`, and a `SKIPPED` line is printed, so `cargo test` passes on a
//!   laptop with nothing installed.
//! - Variable set: the URL; a backend whose server then fails to answer must panic, never skip.

/// The PostgreSQL URL from `METERING_TEST_POSTGRES_URL`.
#[must_use]
pub fn postgres_url() -> Option<String> {
    read("METERING_TEST_POSTGRES_URL", "postgres")
}

/// The Redis URL from `METERING_TEST_REDIS_URL`.
#[must_use]
pub fn redis_url() -> Option<String> {
    read("METERING_TEST_REDIS_URL", "redis")
}

fn read(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("SKIPPED {what}: {var} not set");
            None
        }
    }
}

/// `url` with its secrets replaced by `***`, for panic messages.
pub use metering_core::redact_url as redact;
