//! Webhook endpoints: registration, listing and deletion, for unscoped admin keys only.

use crate::apikey::{Action, Principal};
use crate::error::{Error, Result};
use crate::webhook::{CreatedWebhook, NewWebhook, Webhook, WebhookId, WebhookSecret};

use super::Metering;

/// Checks `caller` may manage webhook endpoints: an admin key without a tenant scope
/// (endpoints receive every tenant's alerts).
pub(super) fn authorize(caller: &Principal) -> Result<()> {
    caller.authorize(Action::Admin)?;
    if caller.key.tenant_id.is_some() {
        return Err(Error::Forbidden(
            "webhook endpoints receive every tenant's alerts; a tenant-scoped key may not \
             manage them"
                .into(),
        ));
    }
    Ok(())
}

impl Metering {
    /// Registers an endpoint with a new signing secret, which the result holds and nothing
    /// shows again.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a bad URL, no event type or a long description; the
    /// store's error.
    pub async fn create_webhook(&self, new: NewWebhook) -> Result<CreatedWebhook> {
        let webhook = Webhook::register(new.validate()?, self.now());
        let secret = WebhookSecret::generate();
        self.inner.store.insert_webhook(&webhook, &secret).await?;
        self.inner.alert_setup.forget();
        Ok(CreatedWebhook { webhook, secret })
    }

    /// [`Metering::create_webhook`] on behalf of `caller`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] unless `caller` is an admin key without a tenant scope; see
    /// [`Metering::create_webhook`].
    pub async fn create_webhook_as(
        &self,
        caller: &Principal,
        new: NewWebhook,
    ) -> Result<CreatedWebhook> {
        authorize(caller)?;
        self.create_webhook(new).await
    }

    /// Every endpoint, oldest first, without secrets.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.inner.store.list_webhooks().await
    }

    /// [`Metering::list_webhooks`] on behalf of `caller`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] unless `caller` is an admin key without a tenant scope; the
    /// store's error.
    pub async fn list_webhooks_as(&self, caller: &Principal) -> Result<Vec<Webhook>> {
        authorize(caller)?;
        self.list_webhooks().await
    }

    /// Deletes an endpoint; it receives nothing more.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown id; the store's error.
    pub async fn delete_webhook(&self, id: WebhookId) -> Result<()> {
        self.inner.store.delete_webhook(id).await?;
        self.inner.alert_setup.forget();
        Ok(())
    }

    /// [`Metering::delete_webhook`] on behalf of `caller`.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] unless `caller` is an admin key without a tenant scope; see
    /// [`Metering::delete_webhook`].
    pub async fn delete_webhook_as(&self, caller: &Principal, id: WebhookId) -> Result<()> {
        authorize(caller)?;
        self.delete_webhook(id).await
    }
}
