//! Validated names: [`TenantId`], [`Resource`] and [`Feature`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The longest name, in characters, after trimming.
pub const MAX_NAME_CHARS: usize = 255;

/// Why a name is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty after trimming.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`MAX_NAME_CHARS`].
    #[error("must be at most 255 characters")]
    TooLong,
    /// Contains a control character.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// `*` is reserved for quotas that apply to every tenant.
    #[error("`*` is reserved")]
    Reserved,
}

fn check_name(raw: &str) -> Result<&str, NameError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if trimmed.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    Ok(trimmed)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $reserve_star:expr) => {
        $(#[$doc])*
        ///
        /// 1 to 255 characters after trimming white space, no control characters.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and trims `raw`.
            ///
            /// # Errors
            ///
            /// A [`NameError`] saying which rule `raw` breaks.
            pub fn new(raw: impl AsRef<str>) -> Result<Self, NameError> {
                let name = check_name(raw.as_ref())?;
                if $reserve_star && name == "*" {
                    return Err(NameError::Reserved);
                }
                Ok($name(name.to_owned()))
            }

            /// The name.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a name read back from a store, which validated it on the way in.
            #[must_use]
            pub fn from_trusted(name: String) -> Self {
                $name(name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;

            fn try_from(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                $name::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// Who used something: the customer (organisation, account) that is metered.
    ///
    /// `*` is reserved (it names every tenant in a quota).
    TenantId,
    true
);
name_type!(
    /// The module or product area that was used, e.g. `billing`.
    Resource,
    false
);
name_type!(
    /// The feature or API within a resource, e.g. `invoice_generate`.
    Feature,
    false
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(TenantId::new("  org_1 ").expect("valid").as_str(), "org_1");
        assert_eq!(TenantId::new("   "), Err(NameError::Empty));
        assert_eq!(TenantId::new("*"), Err(NameError::Reserved));
        assert!(Resource::new("*").is_ok());
        assert_eq!(Feature::new("a\u{0}b"), Err(NameError::ControlCharacter));
        assert!(Feature::new("é".repeat(255)).is_ok());
        assert_eq!(Feature::new("é".repeat(256)), Err(NameError::TooLong));
        assert!(Feature::new("'; DROP TABLE events; --").is_ok());
    }
}
