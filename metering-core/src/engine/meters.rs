//! Meters: definitions and queries.

use crate::apikey::{Action, Principal};
use crate::error::{Error, Result};
use crate::meter::{Meter, MeterKey, MeterQuery, MeterReport, MeterSpec};

use super::Metering;

impl Metering {
    /// Creates or replaces the meter `key`. It applies to every stored event at once.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a spec that breaks a rule (see [`MeterSpec::validate`]);
    /// the store's error.
    pub async fn define_meter(&self, key: &MeterKey, spec: &MeterSpec) -> Result<Meter> {
        spec.validate()?;
        let meter = self.inner.store.put_meter(key, spec, self.now()).await?;
        self.inner.alert_setup.forget();
        Ok(meter)
    }

    /// Every meter, ordered by key.
    ///
    /// # Errors
    ///
    /// The store's error.
    pub async fn list_meters(&self) -> Result<Vec<Meter>> {
        self.inner.store.list_meters().await
    }

    /// One meter.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such meter; the store's error.
    pub async fn meter(&self, key: &MeterKey) -> Result<Meter> {
        self.inner
            .store
            .meter(key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no meter `{key}`")))
    }

    /// Deletes a meter.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such meter; the store's error.
    pub async fn delete_meter(&self, key: &MeterKey) -> Result<()> {
        self.inner.store.delete_meter(key).await?;
        self.inner.alert_setup.forget();
        Ok(())
    }

    /// The meter's value per window and group.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an unknown meter; [`Error::Validation`] for a query the
    /// meter cannot answer (see [`MeterQuery::check`]); the store's error.
    pub async fn query_meter(&self, key: &MeterKey, query: &MeterQuery) -> Result<MeterReport> {
        let meter = self.meter(key).await?;
        query.check(&meter)?;
        self.inner.store.query_meter(&meter, query).await
    }

    /// [`Metering::define_meter`] for an admin key that is not scoped to a tenant (a meter
    /// measures every tenant).
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for any other key; see [`Metering::define_meter`].
    pub async fn define_meter_as(
        &self,
        caller: &Principal,
        key: &MeterKey,
        spec: &MeterSpec,
    ) -> Result<Meter> {
        authorize_meter_admin(caller)?;
        self.define_meter(key, spec).await
    }

    /// [`Metering::list_meters`] for a read or admin key.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for an ingest key; the store's error.
    pub async fn list_meters_as(&self, caller: &Principal) -> Result<Vec<Meter>> {
        caller.authorize(Action::Read)?;
        self.list_meters().await
    }

    /// [`Metering::meter`] for a read or admin key.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for an ingest key; see [`Metering::meter`].
    pub async fn meter_as(&self, caller: &Principal, key: &MeterKey) -> Result<Meter> {
        caller.authorize(Action::Read)?;
        self.meter(key).await
    }

    /// [`Metering::delete_meter`] for an admin key that is not scoped to a tenant.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for any other key; see [`Metering::delete_meter`].
    pub async fn delete_meter_as(&self, caller: &Principal, key: &MeterKey) -> Result<()> {
        authorize_meter_admin(caller)?;
        self.delete_meter(key).await
    }

    /// [`Metering::query_meter`] for a read or admin key; a tenant-scoped key sees only its
    /// own tenant, whatever the query asked.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for an ingest key or another tenant; see
    /// [`Metering::query_meter`].
    pub async fn query_meter_as(
        &self,
        caller: &Principal,
        key: &MeterKey,
        mut query: MeterQuery,
    ) -> Result<MeterReport> {
        caller.authorize(Action::Read)?;
        query.tenant_id = caller.scope_read(query.tenant_id.take())?;
        self.query_meter(key, &query).await
    }
}

/// Meters measure every tenant, so only an unscoped admin key may change them.
fn authorize_meter_admin(caller: &Principal) -> Result<()> {
    caller.authorize(Action::Admin)?;
    if caller.key.tenant_id.is_some() {
        return Err(Error::Forbidden(
            "a tenant-scoped key may not change meters, which measure every tenant".into(),
        ));
    }
    Ok(())
}
