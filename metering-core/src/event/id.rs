//! [`EventId`]: the idempotency key of an event.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest event id, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;

/// An event's idempotency key: 1 to 128 printable ASCII characters, chosen by the client,
/// or a UUIDv7 made by [`EventId::generate`] when the client sends none.
///
/// An id is unique in a store for as long as the event is retained; a second event with
/// the same id is a duplicate and is not counted again (the first write wins).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

/// Why an event id is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventIdError {
    /// Empty.
    #[error("must not be empty")]
    Empty,
    /// Longer than 128 characters.
    #[error("must be at most 128 characters")]
    TooLong,
    /// Contains a character outside printable ASCII (space to `~`).
    #[error("must be printable ASCII")]
    NotPrintable,
}

impl EventId {
    /// Validates a client-chosen id.
    ///
    /// # Errors
    ///
    /// An [`EventIdError`] saying which rule `raw` breaks.
    pub fn new(raw: impl Into<String>) -> Result<Self, EventIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(EventIdError::Empty);
        }
        if raw.len() > MAX_EVENT_ID_LEN {
            return Err(EventIdError::TooLong);
        }
        if !raw.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Err(EventIdError::NotPrintable);
        }
        Ok(EventId(raw))
    }

    /// A new UUIDv7 id: time-ordered, so stores index it cheaply.
    #[must_use]
    pub fn generate() -> Self {
        EventId(uuid::Uuid::now_v7().to_string())
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an id read back from a store, which validated it on the way in.
    #[must_use]
    pub fn from_trusted(id: String) -> Self {
        EventId(id)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EventId::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(EventId::new("req-123 retry").is_ok());
        assert_eq!(EventId::new(""), Err(EventIdError::Empty));
        assert_eq!(EventId::new("x".repeat(129)), Err(EventIdError::TooLong));
        assert_eq!(EventId::new("tab\there"), Err(EventIdError::NotPrintable));
        assert_eq!(EventId::new("é"), Err(EventIdError::NotPrintable));
        let a = EventId::generate();
        let b = EventId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
    }
}
