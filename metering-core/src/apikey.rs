//! API keys: random secrets stored only as hashes, with a role and an optional tenant scope.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::event::TenantId;

/// Prefix of every secret, so leaked keys are easy to recognise and scan for.
pub const SECRET_PREFIX: &str = "mk_";

/// An API key's identifier (not secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(pub uuid::Uuid);

impl ApiKeyId {
    /// A new id.
    #[must_use]
    pub fn generate() -> Self {
        ApiKeyId(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for ApiKeyId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(ApiKeyId)
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including keys and quotas.
    Admin,
    /// Write events and validate quotas.
    Ingest,
    /// Read events, aggregates and quotas.
    Read,
}

impl Role {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Ingest => "ingest",
            Role::Read => "read",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            _ => Err("must be one of admin, ingest, read".into()),
        }
    }
}

/// The SHA-256 of a secret: what stores keep instead of the secret.
///
/// A fast hash is right here: secrets carry 256 random bits, so there is nothing to brute-force.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a presented secret.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares in constant time.
    #[must_use]
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Lowercase hex, for stores that keep text.
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads lowercase hex.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(KeyHash(out))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

/// A stored API key, without its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Identifier.
    pub id: ApiKeyId,
    /// A name for people.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The one tenant it may see and write, if scoped.
    pub tenant_id: Option<TenantId>,
    /// The first characters of the secret, to tell keys apart.
    pub prefix: String,
    /// When it was made.
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    #[serde(with = "crate::time::rfc3339::option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (kept to within a minute or so).
    #[serde(with = "crate::time::rfc3339::option")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[serde(with = "crate::time::rfc3339::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key works at `now`.
    #[must_use]
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Whether revoking a key may leave the store without an active admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAdmin {
    /// Refuse to revoke the last active admin key ([`Error::Conflict`]): nobody could
    /// manage keys through the API afterwards.
    Keep,
    /// Revoke it anyway: recovery on the host, from the command line.
    Allow,
}

impl LastAdmin {
    /// The refusal when the key is the last active admin key.
    #[must_use]
    pub fn refusal() -> Error {
        Error::Conflict(
            "this is the last active admin key; create another admin key before revoking it".into(),
        )
    }
}

/// A request for a new key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", serde(deny_unknown_fields))]
#[non_exhaustive]
pub struct NewApiKey {
    /// A name for people: at most 255 characters, not all white space (it is trimmed).
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 255,
            pattern = r"[^\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
        )
    )]
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Scope it to one tenant.
    pub tenant_id: Option<TenantId>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    /// An unscoped key that never expires.
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        NewApiKey {
            name: name.into(),
            role,
            tenant_id: None,
            expires_at: None,
        }
    }

    /// Scopes it to a tenant.
    #[must_use]
    pub fn for_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Sets an expiry.
    #[must_use]
    pub fn expiring(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Decodes `{"name", "role", "tenant_id", "expires_at"}`, collecting every problem.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] listing each bad field.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        use serde_json::Value;
        let Value::Object(map) = value else {
            return Err(Error::invalid("body", "must be a JSON object"));
        };
        let mut errors = crate::error::ValidationErrors::new();
        let mut name = None;
        let mut role = None;
        let mut tenant_id = None;
        let mut expires_at = None;
        for (key, v) in map {
            match (key.as_str(), v) {
                ("name", Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => {
                    name = Some(s.trim().to_owned());
                }
                ("name", _) => errors.push(None, "name", "must be a string of 1 to 255 characters"),
                ("role", Value::String(s)) => {
                    role = s
                        .parse()
                        .map_err(|e: String| errors.push(None, "role", e))
                        .ok();
                }
                ("role", _) => errors.push(None, "role", "must be one of admin, ingest, read"),
                ("tenant_id", Value::Null) | ("expires_at", Value::Null) => {}
                ("tenant_id", Value::String(s)) => {
                    tenant_id = TenantId::new(s)
                        .map_err(|e| errors.push(None, "tenant_id", e.to_string()))
                        .ok();
                }
                ("tenant_id", _) => errors.push(None, "tenant_id", "must be a string or null"),
                ("expires_at", Value::String(s)) => match crate::time::parse_rfc3339(s) {
                    Some(t) => expires_at = Some(t),
                    None => errors.push(None, "expires_at", "must be an RFC 3339 date-time"),
                },
                ("expires_at", _) => {
                    errors.push(None, "expires_at", "must be an RFC 3339 date-time or null")
                }
                (other, _) => errors.push(None, other, "unknown field"),
            }
        }
        if !map.contains_key("name") {
            errors.push(None, "name", "is required");
        }
        if !map.contains_key("role") {
            errors.push(None, "role", "is required");
        }
        match (name, role) {
            (Some(name), Some(role)) if errors.is_empty() => Ok(NewApiKey {
                name,
                role,
                tenant_id,
                expires_at,
            }),
            _ => Err(Error::Validation(errors)),
        }
    }
}

/// A freshly made key and its secret, which is never shown again.
#[derive(Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    /// The stored record.
    pub key: ApiKey,
    /// The secret to hand to the client.
    pub secret: String,
}

impl fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Makes a new secret (256 random bits) and its hash.
#[must_use]
pub fn generate_secret() -> (String, KeyHash) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = KeyHash::of(&secret);
    (secret, hash)
}

/// The visible prefix of a secret (its first 8 characters after the `mk_`).
#[must_use]
pub fn secret_prefix(secret: &str) -> String {
    secret.chars().take(SECRET_PREFIX.len() + 8).collect()
}

/// What an authenticated request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST events.
    WriteEvents,
    /// POST validate.
    Validate,
    /// GET events, aggregates and quotas.
    Read,
    /// Manage quotas and keys.
    Admin,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key that was presented.
    pub key: ApiKey,
}

impl Principal {
    /// Checks the key's role allows `action`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when it does not.
    pub fn authorize(&self, action: Action) -> Result<()> {
        let allowed = match self.key.role {
            Role::Admin => true,
            Role::Ingest => matches!(action, Action::WriteEvents | Action::Validate),
            Role::Read => action == Action::Read,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "a key with role `{}` may not do this",
                self.key.role.as_str()
            )))
        }
    }

    /// Checks the key may write for `tenant`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when the key is scoped to another tenant.
    pub fn authorize_tenant(&self, tenant: &TenantId) -> Result<()> {
        match &self.key.tenant_id {
            Some(own) if own != tenant => Err(Error::Forbidden(format!(
                "this key is scoped to tenant `{own}`"
            ))),
            _ => Ok(()),
        }
    }

    /// The tenant filter a read should use: the key's own tenant when scoped (an explicit
    /// other tenant is refused), else whatever was asked.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for a scoped key asking about another tenant.
    pub fn scope_read(&self, requested: Option<TenantId>) -> Result<Option<TenantId>> {
        match (&self.key.tenant_id, requested) {
            (Some(own), Some(asked)) if *own != asked => Err(Error::Forbidden(format!(
                "this key is scoped to tenant `{own}`"
            ))),
            (Some(own), _) => Ok(Some(own.clone())),
            (None, asked) => Ok(asked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_hash_and_compare() {
        let (secret, hash) = generate_secret();
        assert!(secret.starts_with(SECRET_PREFIX));
        assert!(secret.len() >= 40);
        assert!(KeyHash::of(&secret).matches(&hash));
        assert!(!KeyHash::of("mk_other").matches(&hash));
        assert_eq!(KeyHash::from_hex(&hash.to_hex()), Some(hash));
        let (other, _) = generate_secret();
        assert_ne!(secret, other);
    }

    fn principal(role: Role, tenant: Option<&str>) -> Principal {
        Principal {
            key: ApiKey {
                id: ApiKeyId::generate(),
                name: "k".into(),
                role,
                tenant_id: tenant.map(|t| TenantId::new(t).expect("t")),
                prefix: "mk_x".into(),
                created_at: DateTime::UNIX_EPOCH,
                expires_at: None,
                last_used_at: None,
                revoked_at: None,
            },
        }
    }

    #[test]
    fn roles_and_scopes() {
        let read = principal(Role::Read, Some("a"));
        assert!(read.authorize(Action::Read).is_ok());
        assert!(read.authorize(Action::WriteEvents).is_err());
        let ingest = principal(Role::Ingest, None);
        assert!(ingest.authorize(Action::Validate).is_ok());
        assert!(ingest.authorize(Action::Admin).is_err());
        let a = TenantId::new("a").expect("a");
        let b = TenantId::new("b").expect("b");
        assert!(read.authorize_tenant(&a).is_ok());
        assert!(read.authorize_tenant(&b).is_err());
        assert_eq!(read.scope_read(None).expect("ok"), Some(a.clone()));
        assert!(read.scope_read(Some(b)).is_err());
        assert_eq!(ingest.scope_read(None).expect("ok"), None);
    }
}
