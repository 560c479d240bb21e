//! Conversions between domain values and column values.

use chrono::{DateTime, Utc};
use metering_core::{Event, EventId, Feature, Metadata, Quantity, Resource, TenantId};
use rusqlite::Row;

use crate::error::{DbResult, SqliteError};

/// Microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The instant `micros` microseconds after the epoch.
pub(crate) fn instant(micros: i64) -> DateTime<Utc> {
    // Every stored value came from `micros()`, so it is in chrono's range.
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Nano-units from the split quantity columns (negative values never get stored).
pub(crate) fn nanos(units: i64, fraction: i64) -> u128 {
    Quantity::from_parts(
        u128::try_from(units).unwrap_or(0),
        u128::try_from(fraction).unwrap_or(0),
    )
    .nanos()
}

/// An event ready to bind: owned column values, computed off the writer thread.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) id: String,
    pub(crate) tenant_id: String,
    pub(crate) resource: String,
    pub(crate) feature: String,
    pub(crate) qty_units: i64,
    pub(crate) qty_nanos: i64,
    pub(crate) nanos: u128,
    pub(crate) ts: i64,
    pub(crate) metadata: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) amends: Option<String>,
}

impl EventRow {
    /// The columns of `event`.
    pub(crate) fn of(event: &Event) -> DbResult<Self> {
        let q = event.quantity;
        Ok(EventRow {
            id: event.id.as_str().to_owned(),
            tenant_id: event.tenant_id.as_str().to_owned(),
            resource: event.resource.as_str().to_owned(),
            feature: event.feature.as_str().to_owned(),
            // Event quantities are at most 10^15 units (validated), far below i64::MAX.
            qty_units: i64::try_from(q.units()).map_err(|_| {
                SqliteError::Corrupt(format!("quantity {q} is too large for an event"))
            })?,
            qty_nanos: i64::from(q.fraction_nanos()),
            nanos: q.nanos(),
            ts: micros(event.timestamp),
            metadata: event
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            created_at: micros(event.created_at),
            amends: event.amends.as_ref().map(|a| a.as_str().to_owned()),
        })
    }
}

/// The columns [`event_from_row`] reads, in order.
pub(crate) const EVENT_COLUMNS: &str = "id, tenant_id, resource, feature, qty_units, qty_nanos, ts, \
     metadata, created_at, amends, voided_at, void_reason";

/// Reads an event selected with [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row<'_>) -> DbResult<Event> {
    let metadata: Option<String> = row.get(7)?;
    let metadata = metadata
        .map(|text| serde_json::from_str::<Metadata>(&text))
        .transpose()?;
    Ok(Event {
        id: EventId::from_trusted(row.get(0)?),
        tenant_id: TenantId::from_trusted(row.get(1)?),
        resource: Resource::from_trusted(row.get(2)?),
        feature: Feature::from_trusted(row.get(3)?),
        quantity: Quantity::from_nanos(nanos(row.get(4)?, row.get(5)?)),
        timestamp: instant(row.get(6)?),
        metadata,
        created_at: instant(row.get(8)?),
        amends: row.get::<_, Option<String>>(9)?.map(EventId::from_trusted),
        voided_at: row.get::<_, Option<i64>>(10)?.map(instant),
        void_reason: row.get(11)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_quantities_round_trip() {
        let t = DateTime::from_timestamp_micros(-1_234_567).expect("valid");
        assert_eq!(instant(micros(t)), t);
        let q: Quantity = "123456789012345.000000007".parse().expect("valid");
        let units = i64::try_from(q.units()).expect("fits");
        assert_eq!(nanos(units, i64::from(q.fraction_nanos())), q.nanos());
    }
}
