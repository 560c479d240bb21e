//! API keys: creation, listing, revocation, authentication and roles.

use std::collections::HashMap;
use std::sync::PoisonError;

use chrono::{DateTime, Utc};

use crate::apikey::{
    Action, ApiKey, ApiKeyId, CreatedApiKey, KeyHash, LastAdmin, NewApiKey, Principal,
    generate_secret, secret_prefix,
};
use crate::error::{Error, Result};

use super::Metering;

impl Metering {
    /// Makes a new API key; the secret in the result is never available again.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an empty name or an expiry in the past; the store's error.
    pub async fn create_api_key(&self, new: NewApiKey) -> Result<CreatedApiKey> {
        let (secret, hash) = generate_secret();
        self.store_api_key(new, secret, hash).await
    }

    /// Makes a key on behalf of `caller`: an admin key; a tenant-scoped one only keys scoped
    /// to its own tenant.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; see [`Metering::create_api_key`].
    pub async fn create_api_key_as(
        &self,
        caller: &Principal,
        new: NewApiKey,
    ) -> Result<CreatedApiKey> {
        caller.authorize(Action::Admin)?;
        if caller.key.tenant_id.is_some() {
            match &new.tenant_id {
                Some(t) => caller.authorize_tenant(t)?,
                None => {
                    return Err(Error::Forbidden(
                        "a tenant-scoped key may only create keys for its own tenant".into(),
                    ));
                }
            }
        }
        self.create_api_key(new).await
    }

    /// Stores a key whose secret the operator chose (e.g. from `METERING_ADMIN_KEY`).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a secret shorter than 24 characters; see
    /// [`Metering::create_api_key`].
    pub async fn import_api_key(&self, new: NewApiKey, secret: &str) -> Result<CreatedApiKey> {
        if secret.chars().count() < 24 || secret.chars().any(char::is_whitespace) {
            return Err(Error::invalid(
                "key",
                "must be at least 24 characters without white space",
            ));
        }
        let hash = KeyHash::of(secret);
        self.store_api_key(new, secret.to_owned(), hash).await
    }

    async fn store_api_key(
        &self,
        new: NewApiKey,
        secret: String,
        hash: KeyHash,
    ) -> Result<CreatedApiKey> {
        let now = crate::time::truncate_micros(self.now());
        if new.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        if new.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let key = ApiKey {
            id: ApiKeyId::generate(),
            name: new.name.trim().to_owned(),
            role: new.role,
            tenant_id: new.tenant_id,
            prefix: secret_prefix(&secret),
            created_at: now,
            expires_at: new.expires_at.map(crate::time::truncate_micros),
            last_used_at: None,
            revoked_at: None,
        };
        self.inner.store.insert_api_key(&key, &hash).await?;
        Ok(CreatedApiKey { key, secret })
    }

    /// Lists keys without secrets, with `last_used_at` including uses not yet flushed.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
        let mut keys = self.inner.store.list_api_keys().await?;
        let pending = self.lock_key_uses().clone();
        for key in &mut keys {
            if let Some(at) = pending.get(&key.id) {
                key.last_used_at = Some(key.last_used_at.map_or(*at, |l| l.max(*at)));
            }
        }
        Ok(keys)
    }

    /// Lists keys on behalf of `caller`: an admin key; a tenant-scoped one sees only the keys
    /// of its own tenant.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; the store's error.
    pub async fn list_api_keys_as(&self, caller: &Principal) -> Result<Vec<ApiKey>> {
        caller.authorize(Action::Admin)?;
        let mut keys = self.list_api_keys().await?;
        if let Some(own) = &caller.key.tenant_id {
            keys.retain(|k| k.tenant_id.as_ref() == Some(own));
        }
        Ok(keys)
    }

    /// Revokes a key; it stops working at once. The last active admin key is kept unless
    /// `last_admin` is [`LastAdmin::Allow`].
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; [`Error::Conflict`] for the last active admin
    /// key under [`LastAdmin::Keep`]; the store's error.
    pub async fn revoke_api_key(&self, id: ApiKeyId, last_admin: LastAdmin) -> Result<()> {
        self.inner
            .store
            .revoke_api_key(id, self.now(), last_admin)
            .await
    }

    /// Revokes a key on behalf of `caller`: an admin key; a tenant-scoped one only for keys
    /// of its own tenant, never unscoped keys. The last active admin key is never revoked
    /// this way, so the API always has an admin (the caller may revoke its own key while
    /// another admin key is active).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not; [`Error::NotFound`] for an unknown id;
    /// [`Error::Conflict`] for the last active admin key; the store's error.
    pub async fn revoke_api_key_as(&self, caller: &Principal, id: ApiKeyId) -> Result<()> {
        caller.authorize(Action::Admin)?;
        if caller.key.tenant_id.is_some() {
            let key = self
                .inner
                .store
                .api_key(id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("API key `{id}`")))?;
            match &key.tenant_id {
                Some(t) => caller.authorize_tenant(t)?,
                None => {
                    return Err(Error::Forbidden(
                        "a tenant-scoped key may not revoke unscoped keys".into(),
                    ));
                }
            }
        }
        self.revoke_api_key(id, LastAdmin::Keep).await
    }

    /// Authenticates a presented secret.
    ///
    /// The use is remembered in memory and written by [`Metering::flush_key_usage`], so a
    /// request costs no database write.
    ///
    /// # Errors
    ///
    /// [`Error::Unauthenticated`] for an unknown, revoked or expired key; the store's error.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal> {
        let hash = KeyHash::of(secret.trim());
        let stored = self
            .inner
            .store
            .api_key_by_hash(&hash)
            .await?
            .filter(|s| s.hash.matches(&hash))
            .ok_or_else(|| Error::Unauthenticated("unknown API key".into()))?;
        let now = self.now();
        if stored.key.revoked_at.is_some() {
            return Err(Error::Unauthenticated("API key revoked".into()));
        }
        if !stored.key.is_active(now) {
            return Err(Error::Unauthenticated("API key expired".into()));
        }
        self.lock_key_uses().insert(stored.key.id, now);
        Ok(Principal { key: stored.key })
    }

    /// Authenticates and checks the role in one call.
    ///
    /// # Errors
    ///
    /// See [`Metering::authenticate`] and [`Principal::authorize`].
    pub async fn authorize(&self, secret: &str, action: Action) -> Result<Principal> {
        let principal = self.authenticate(secret).await?;
        principal.authorize(action)?;
        Ok(principal)
    }

    /// Writes remembered key uses to the store. Call it every few seconds.
    ///
    /// # Errors
    ///
    /// The store's error; the uses are kept for the next call.
    pub async fn flush_key_usage(&self) -> Result<()> {
        let uses: Vec<_> = self.lock_key_uses().drain().collect();
        if uses.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.inner.store.record_key_usage(&uses).await {
            let mut pending = self.lock_key_uses();
            for (id, at) in uses {
                pending.entry(id).or_insert(at);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether any key exists (the server makes an admin key on first start otherwise).
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn has_api_keys(&self) -> Result<bool> {
        Ok(!self.inner.store.list_api_keys().await?.is_empty())
    }

    fn lock_key_uses(&self) -> std::sync::MutexGuard<'_, HashMap<ApiKeyId, DateTime<Utc>>> {
        self.inner
            .key_uses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
