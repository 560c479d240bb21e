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

/// `url` with any password replaced by `***`, for panic messages.
#[must_use]
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
