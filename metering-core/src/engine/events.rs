//! Recording events and reading them back: ingest, listing and aggregates.

use std::sync::Arc;

use crate::apikey::{Action, Principal};
use crate::error::{Error, Result};
use crate::event::{Event, NewEvent, validate_batch};
use futures::stream::{self, BoxStream, StreamExt as _};

use crate::query::{
    AggregateQuery, AggregateReport, EventFilter, EventPage, EventQuery, MAX_AGGREGATE_WINDOWS,
    MAX_PAGE, MAX_PAGE_SIZE, Paging,
};

use super::{IngestReceipt, Metering, spawn_to_completion};

impl Metering {
    /// Validates a batch whole and stores it, idempotently by event id.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] listing every bad event (nothing is written),
    /// [`Error::TooLarge`] for an oversized batch, or the store's error.
    pub async fn ingest(&self, events: Vec<NewEvent>) -> Result<IngestReceipt> {
        let events = validate_batch(events, &self.inner.rules, self.now())?;
        self.ingest_validated(events).await
    }

    /// Stores events that were already validated (see [`crate::validate_batch`]), in one
    /// transaction. Runs to completion even if the caller stops waiting, so a dropped
    /// request never leaves counters half-updated.
    ///
    /// # Errors
    ///
    /// The store's error; nothing was written then.
    pub async fn ingest_validated(&self, events: Vec<Event>) -> Result<IngestReceipt> {
        let (inserted, events) = match &self.inner.group {
            // Queued jobs run to completion in the worker even if this caller goes away.
            Some(group) if group.takes(events.len()) => group.submit(events).await?,
            _ => {
                let inner = Arc::clone(&self.inner);
                spawn_to_completion(async move { inner.insert_bracketed(events).await }).await?
            }
        };
        let processed = inserted.iter().filter(|i| **i).count();
        Ok(IngestReceipt {
            events_processed: processed,
            duplicates: inserted.len() - processed,
            event_ids: events.into_iter().map(|e| e.id).collect(),
        })
    }

    /// Stores validated events on behalf of `caller`: a key with role ingest or admin, and a
    /// tenant-scoped key only for its own tenant. See [`Metering::ingest_validated`].
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not write one of the events (nothing is
    /// written); the store's error.
    pub async fn ingest_as(&self, caller: &Principal, events: Vec<Event>) -> Result<IngestReceipt> {
        caller.authorize(Action::WriteEvents)?;
        for event in &events {
            caller.authorize_tenant(&event.tenant_id)?;
        }
        self.ingest_validated(events).await
    }

    /// Lists events on behalf of `caller`: a key with role read or admin; a tenant-scoped key
    /// sees only its own tenant's events, whatever the filter asked.
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not read, or asked for another tenant; see
    /// [`Metering::list_events`].
    pub async fn list_events_as(
        &self,
        caller: &Principal,
        mut query: EventQuery,
    ) -> Result<EventPage> {
        caller.authorize(Action::Read)?;
        query.filter.tenant_id = caller.scope_read(query.filter.tenant_id.take())?;
        self.list_events(&query).await
    }

    /// Sums usage on behalf of `caller`, with the tenant rules of
    /// [`Metering::list_events_as`].
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not read, or asked for another tenant; see
    /// [`Metering::aggregate`].
    pub async fn aggregate_as(
        &self,
        caller: &Principal,
        mut query: AggregateQuery,
    ) -> Result<AggregateReport> {
        caller.authorize(Action::Read)?;
        query.tenant_id = caller.scope_read(query.tenant_id.take())?;
        self.aggregate(&query).await
    }

    /// Every event `filter` selects, newest first, as a stream of pages of up to 1,000
    /// events read by cursor, so memory stays bounded whatever the store holds. Pages are
    /// read one after another: an event stored during the export appears in it when it
    /// sorts after the page being read.
    #[must_use]
    pub fn export(&self, filter: EventFilter) -> BoxStream<'static, Result<Vec<Event>>> {
        let engine = self.clone();
        // `None` once the last page was read.
        let start: Option<Option<crate::query::Cursor>> = Some(None);
        stream::unfold(start, move |state| {
            let (engine, filter) = (engine.clone(), filter.clone());
            async move {
                let after = state?;
                let query = EventQuery::new(
                    filter,
                    Paging::Cursor {
                        after,
                        page_size: MAX_PAGE_SIZE,
                    },
                );
                match engine.list_events(&query).await {
                    Ok(page) => {
                        let next = page.next_cursor.map(Some);
                        Some((Ok(page.events), next))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .filter(|page| std::future::ready(!matches!(page, Ok(events) if events.is_empty())))
        // Callers may poll again after the end (the first page is often read on its own).
        .fuse()
        .boxed()
    }

    /// [`Metering::export`] on behalf of `caller`, with the tenant rules of
    /// [`Metering::list_events_as`].
    ///
    /// # Errors
    ///
    /// [`Error::Forbidden`] when `caller` may not read, or asked for another tenant.
    pub fn export_as(
        &self,
        caller: &Principal,
        mut filter: EventFilter,
    ) -> Result<BoxStream<'static, Result<Vec<Event>>>> {
        caller.authorize(Action::Read)?;
        filter.tenant_id = caller.scope_read(filter.tenant_id.take())?;
        Ok(self.export(filter))
    }

    /// Lists events.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for a page size outside 1 to 1000 or a page outside 1 to
    /// [`MAX_PAGE`]; the store's error.
    pub async fn list_events(&self, query: &EventQuery) -> Result<EventPage> {
        let size = query.paging.page_size();
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(Error::invalid("page_size", "must be between 1 and 1000"));
        }
        if let Paging::Page { page, .. } = query.paging {
            if !(1..=MAX_PAGE).contains(&page) {
                return Err(Error::invalid("page", "must be between 1 and 2147483647"));
            }
        }
        if let (Some(s), Some(e)) = (query.filter.start, query.filter.end) {
            if e < s {
                return Err(Error::invalid("end_date", "must not be before start_date"));
            }
        }
        self.inner.store.list_events(query).await
    }

    /// Sums usage per window and group.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] when `end <= start`; the store's error.
    pub async fn aggregate(&self, query: &AggregateQuery) -> Result<AggregateReport> {
        if query.end <= query.start {
            return Err(Error::invalid("end_date", "must be after start_date"));
        }
        if query.windows_at_most() > MAX_AGGREGATE_WINDOWS {
            return Err(Error::invalid(
                "end_date",
                format!(
                    "the range spans more than {MAX_AGGREGATE_WINDOWS} {} windows; narrow it \
                     or choose a longer window_type",
                    query.window
                ),
            ));
        }
        let rows = self.inner.store.aggregate(query).await?;
        Ok(AggregateReport::from_rows(rows))
    }
}
