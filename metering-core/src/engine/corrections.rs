//! Corrections: voiding and amending stored events, keeping the originals for audit.

use std::sync::Arc;

use crate::apikey::{Action, Principal};
use crate::cache::UsageStream;
use crate::error::{Error, Result, ValidationErrors};
use crate::event::{Amendment, Event, EventId};
use crate::store::AmendOutcome;

use super::{Metering, spawn_to_completion};

/// The longest amend chain [`Metering::event_history`] follows (a guard, not a limit anyone
/// meets: each link is a separate amend).
const MAX_CHAIN: usize = 10_000;

/// What [`Metering::amend_event`] recorded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Amended {
    /// The replacement, as stored.
    pub event: Event,
    /// True when a replacement with the requested id already amended the original (a
    /// retried amend): nothing changed.
    pub replayed: bool,
}

fn not_found(id: &EventId) -> Error {
    Error::NotFound(format!("event `{id}`"))
}

impl Metering {
    /// One stored event, voided or not.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no event has the id; the store's error.
    pub async fn event(&self, id: &EventId) -> Result<Event> {
        self.inner
            .store
            .event(id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// [`Metering::event`] for `caller` (a key that may `action`): a tenant-scoped key sees
    /// only its own tenant's events, and others are reported missing.
    async fn event_for(&self, caller: &Principal, action: Action, id: &EventId) -> Result<Event> {
        caller.authorize(action)?;
        let event = self.event(id).await?;
        match &caller.key.tenant_id {
            Some(own) if *own != event.tenant_id => Err(not_found(id)),
            _ => Ok(event),
        }
    }

    /// Voids an event: it stays stored, marked with the time and `reason`, and stops
    /// counting in aggregates, meters and quota usage (the quota cache recounts its stream).
    /// Voiding a voided event changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no event has the id; the store's error (nothing changed).
    pub async fn void_event(&self, id: &EventId, reason: Option<String>) -> Result<Event> {
        let event = self.event(id).await?;
        if !event.counts() {
            return Ok(event);
        }
        let inner = Arc::clone(&self.inner);
        let id = id.clone();
        let at = self.now();
        spawn_to_completion(async move {
            inner
                .correct(UsageStream::of(&event), |store| {
                    let id = id.clone();
                    async move { store.void_event(&id, reason.as_deref(), at).await }
                })
                .await?
                .ok_or_else(|| not_found(&id))
        })
        .await
    }

    /// [`Metering::void_event`] for `caller`: an admin key; a tenant-scoped one only for its
    /// own tenant's events.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for other roles; [`Error::NotFound`] also for another tenant's
    /// event; see [`Metering::void_event`].
    pub async fn void_event_as(
        &self,
        caller: &Principal,
        id: &EventId,
        reason: Option<String>,
    ) -> Result<Event> {
        self.event_for(caller, Action::Admin, id).await?;
        self.void_event(id, reason).await
    }

    /// Replaces an event by a corrected copy in one step: the original is voided (with the
    /// amendment's reason) and the replacement, which names it in `amends`, is stored.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no event has the id; [`Error::Validation`] for a corrected
    /// field that breaks an event rule; [`Error::Conflict`] when the original was voided
    /// already or the replacement's id belongs to another event; the store's error (nothing
    /// changed).
    pub async fn amend_event(&self, id: &EventId, amendment: Amendment) -> Result<Amended> {
        let original = self.event(id).await?;
        let reason = amendment.reason.clone();
        let mut errors = ValidationErrors::new();
        let replacement = amendment.replacement(&original, self.rules(), self.now(), &mut errors);
        let replacement = errors
            .into_result(replacement)?
            .ok_or_else(|| Error::Internal {
                message: "an invalid amend reported no problem".into(),
                source: None,
            })?;
        let inner = Arc::clone(&self.inner);
        let at = self.now();
        let outcome = spawn_to_completion(async move {
            let outcome = inner
                .correct(UsageStream::of(&original), |store| async move {
                    store.amend_event(&replacement, reason.as_deref(), at).await
                })
                .await?;
            if let AmendOutcome::Amended(event) = &outcome {
                inner.watch_correction(event).await;
            }
            Ok(outcome)
        })
        .await?;
        match outcome {
            AmendOutcome::Amended(event) => Ok(Amended {
                event,
                replayed: false,
            }),
            AmendOutcome::Replayed(event) => Ok(Amended {
                event,
                replayed: true,
            }),
            AmendOutcome::NotFound => Err(not_found(id)),
            AmendOutcome::OriginalVoided => Err(Error::Conflict(format!(
                "event `{id}` is voided; amend its replacement instead (see its history)"
            ))),
            AmendOutcome::IdTaken => Err(Error::Conflict(
                "the replacement's id belongs to another event; choose another id".into(),
            )),
        }
    }

    /// [`Metering::amend_event`] for `caller`, with the rules of [`Metering::void_event_as`].
    ///
    /// # Errors
    ///
    /// See [`Metering::void_event_as`] and [`Metering::amend_event`].
    pub async fn amend_event_as(
        &self,
        caller: &Principal,
        id: &EventId,
        amendment: Amendment,
    ) -> Result<Amended> {
        self.event_for(caller, Action::Admin, id).await?;
        self.amend_event(id, amendment).await
    }

    /// The whole correction chain through `id`, oldest first: the event it amends (and so
    /// on back), the event itself, and the replacements recorded by amends after it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no event has the id; the store's error.
    pub async fn event_history(&self, id: &EventId) -> Result<Vec<Event>> {
        let store = &self.inner.store;
        let event = self.event(id).await?;
        let mut before = Vec::new();
        let mut link = event.amends.clone();
        while let Some(previous) = link {
            if before.len() >= MAX_CHAIN {
                break;
            }
            let Some(e) = store.event(&previous).await? else {
                break;
            };
            link = e.amends.clone();
            before.push(e);
        }
        before.reverse();
        let mut chain = before;
        let mut next = event.id.clone();
        chain.push(event);
        while chain.len() < 2 * MAX_CHAIN {
            let Some(e) = store.replacement_of(&next).await? else {
                break;
            };
            next = e.id.clone();
            chain.push(e);
        }
        Ok(chain)
    }

    /// [`Metering::event_history`] for `caller`: a key with role read or admin; a
    /// tenant-scoped key only for its own tenant's events.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] for other roles; [`Error::NotFound`] also for another tenant's
    /// event; see [`Metering::event_history`].
    pub async fn event_history_as(&self, caller: &Principal, id: &EventId) -> Result<Vec<Event>> {
        self.event_for(caller, Action::Read, id).await?;
        self.event_history(id).await
    }
}
