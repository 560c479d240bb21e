//! Query-string parsing shared by the GET endpoints.
//!
//! Two kinds of problem are kept apart, as the contract's error table asks: a parameter that
//! cannot be read (an unknown name, a repeated name, a value that is not a number, a date,
//! a cursor or one of the listed words) is a 400 `BAD_REQUEST`; a readable value that breaks
//! a rule (a missing required parameter, an invalid tenant name, a page size out of range)
//! is a 422 `VALIDATION_ERROR`. Every problem is listed in `details.errors`.

use chrono::{DateTime, Utc};
use metering_core::{Error, ValidationErrors};

use crate::error::ApiError;

/// The parameters of one request, checked against the names an endpoint accepts.
#[derive(Debug)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
    unreadable: ValidationErrors,
    invalid: ValidationErrors,
}

impl Params {
    /// Records unknown and repeated names as unreadable.
    pub(crate) fn new(pairs: Vec<(String, String)>, accepted: &[&str]) -> Self {
        let mut unreadable = ValidationErrors::new();
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !accepted.contains(&name.as_str()) {
                unreadable.push(
                    None,
                    name.clone(),
                    format!("unknown query parameter; accepted: {}", accepted.join(", ")),
                );
            } else if pairs[..i].iter().any(|(n, _)| n == name) {
                unreadable.push(None, name.clone(), "given more than once");
            }
        }
        Params {
            pairs,
            unreadable,
            invalid: ValidationErrors::new(),
        }
    }

    /// The raw value, if present.
    pub(crate) fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value, treating an empty one as absent.
    fn non_empty(&self, name: &str) -> Option<&str> {
        self.raw(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Reads a value whose syntax `read` checks; a failure is unreadable (400).
    pub(crate) fn read<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.non_empty(name)?.to_owned();
        read(&raw)
            .map_err(|message| self.unreadable.push(None, name, message))
            .ok()
    }

    /// Reads a value whose rules `check` enforces; a failure is invalid (422).
    pub(crate) fn check<T, E: ToString>(
        &mut self,
        name: &str,
        check: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = self.non_empty(name)?.to_owned();
        check(&raw)
            .map_err(|e| self.invalid.push(None, name, e.to_string()))
            .ok()
    }

    /// Reads a required value; absence is invalid (422).
    pub(crate) fn required<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.non_empty(name).is_none() {
            self.invalid.push(None, name, "is required");
            return None;
        }
        self.read(name, read)
    }

    /// Records a broken rule (422).
    pub(crate) fn reject(&mut self, name: &str, message: &str) {
        self.invalid.push(None, name, message);
    }

    /// 400 when anything was unreadable, else 422 when any rule was broken.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if !self.unreadable.is_empty() {
            return Err(ApiError::bad_request_fields(&self.unreadable));
        }
        if !self.invalid.is_empty() {
            return Err(Error::Validation(self.invalid).into());
        }
        Ok(())
    }
}

/// Reads an RFC 3339 date-time, or a plain date (midnight UTC).
///
/// A `+` offset sent unencoded arrives as a space; it is read back as `+`.
pub(crate) fn date_time(raw: &str) -> Result<DateTime<Utc>, String> {
    metering_core::time::parse_range_bound(&raw.replace(' ', "+")).ok_or_else(|| {
        "must be an RFC 3339 date-time (e.g. 2025-11-20T10:31:00Z) or a date (2025-11-20)"
            .to_owned()
    })
}

/// Reads `true` or `false`.
pub(crate) fn boolean(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

/// Reads a positive integer.
pub(crate) fn number(raw: &str) -> Result<u32, String> {
    raw.parse::<u32>()
        .map_err(|_| "must be a whole number".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn unknown_and_repeated_names_are_unreadable() {
        let p = Params::new(pairs(&[("a", "1"), ("b", "2"), ("a", "3")]), &["a"]);
        let err = p.finish().expect_err("bad");
        assert_eq!(err.code().as_str(), "BAD_REQUEST");
    }

    #[test]
    fn dates_accept_offsets_spaces_and_plain_dates() {
        let t = date_time("2025-11-20T11:00:00 01:00").expect("offset");
        assert_eq!(t, date_time("2025-11-20T10:00:00Z").expect("utc"));
        assert_eq!(
            date_time("2025-11-20").expect("date"),
            date_time("2025-11-20T00:00:00Z").expect("utc")
        );
        assert!(date_time("yesterday").is_err());
    }
}
