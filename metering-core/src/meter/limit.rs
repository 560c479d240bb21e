//! Meter quotas: a tenant's value of a meter in one quota period ([`MeterTally`]) and the
//! decision for a check or a consume against a limit ([`MeterLimit`]).

use std::collections::HashSet;

use super::aggregate::{Distinct, amount_of, distinct_of};
use super::{Aggregation, Amount, Meter, MeterKey, MeterQuery, MeterSpec};
use crate::error::{Error, Result};
use crate::event::{Event, TenantId};
use crate::quantity::Quantity;
use crate::query::EventFilter;
use crate::window::Window;

/// Whether a meter's aggregation can carry a quota: `sum`, `count` and `unique_count` grow
/// with usage; `min`, `max`, `avg` and `latest` do not.
#[must_use]
pub fn quotable(aggregation: Aggregation) -> bool {
    matches!(
        aggregation,
        Aggregation::Sum | Aggregation::Count | Aggregation::UniqueCount
    )
}

/// Checks, in the store's transaction, that a quota may name meter `key` as stored
/// (`stored` is `None` when there is no such meter).
///
/// # Errors
///
/// [`Error::NotFound`] for an unknown meter; [`Error::Validation`] under `meter` for one
/// whose aggregation cannot carry a quota.
pub fn check_quota_meter(key: &MeterKey, stored: Option<&MeterSpec>) -> Result<()> {
    match stored {
        None => Err(Error::NotFound(format!("no meter `{key}`"))),
        Some(spec) if !quotable(spec.aggregation) => Err(Error::invalid(
            "meter",
            format!(
                "meter `{key}` aggregates with `{}`; a quota needs `sum`, `count` or `unique_count`",
                spec.aggregation.as_str()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// The error for deleting meter `key`, or replacing it with an aggregation that cannot
/// carry a quota, while a quota names it.
#[must_use]
pub fn meter_in_use(key: &MeterKey) -> Error {
    Error::Conflict(format!(
        "meter `{key}` is used by a quota; delete the quota first, or keep a `sum`, `count` \
         or `unique_count` aggregation"
    ))
}

/// A limit on a tenant's value of a meter within a window: what
/// [`crate::Store::consume_metered`] enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterLimit {
    /// The meter (its definition when the check began).
    pub meter: Meter,
    /// Whose value.
    pub tenant_id: TenantId,
    /// Over which window (the quota's current period).
    pub window: Window,
    /// At most this much.
    pub limit: Quantity,
}

impl MeterLimit {
    /// The events a store must read (at least) to tally the meter: the tenant's in the
    /// window, narrowed to the meter's resource or feature when it names only one.
    #[must_use]
    pub fn event_filter(&self) -> EventFilter {
        MeterQuery::new(self.window.start, self.window.end)
            .tenant(self.tenant_id.clone())
            .event_filter(&self.meter)
    }

    /// An empty tally for this limit.
    #[must_use]
    pub fn tally(&self) -> MeterTally {
        MeterTally {
            aggregation: self.meter.spec.aggregation,
            sum: 0,
            count: 0,
            distinct: HashSet::new(),
        }
    }

    /// Whether the meter counts `event` in this limit's tally: the tenant, the window and
    /// the meter's filter match.
    #[must_use]
    pub fn covers(&self, event: &Event) -> bool {
        event.counts()
            && event.tenant_id == self.tenant_id
            && self.window.contains(event.timestamp)
            && self.meter.spec.filter.matches(event)
    }

    /// Checks that a consumed `event` is one the meter counts in this period, with a value
    /// it can read.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] under `event` saying what does not match.
    pub fn check_event(&self, event: &Event) -> Result<()> {
        if !self.window.contains(event.timestamp) {
            return Err(Error::invalid(
                "event.timestamp",
                "must fall in the quota's current period",
            ));
        }
        self.check_event_matches(event)
    }

    /// [`MeterLimit::check_event`] without the period: the meter's filter matches `event`
    /// and it has a value the meter can read.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] under `event` saying what does not match.
    pub fn check_event_matches(&self, event: &Event) -> Result<()> {
        if !self.meter.spec.filter.matches(event) {
            return Err(Error::invalid(
                "event",
                format!("does not match the filter of meter `{}`", self.meter.key),
            ));
        }
        if self.tally().contribution(&self.meter, event).is_none() {
            return Err(Error::invalid(
                "event",
                format!(
                    "has no value at `{}` that meter `{}` can count",
                    self.meter.spec.value, self.meter.key
                ),
            ));
        }
        Ok(())
    }

    /// The decision on `adding` to the value in `tally` against this limit.
    #[must_use]
    pub fn judge(&self, tally: &MeterTally, adding: MeterAddition<'_>) -> MeterJudgement {
        let usage = tally.value();
        let reported = tally.usage();
        let (added, already_counted) = match adding {
            MeterAddition::Event(event) => match tally.contribution(&self.meter, event) {
                Some(Contribution::Amount(a)) => (a, false),
                Some(Contribution::Distinct(d)) if tally.distinct.contains(&d) => {
                    (Amount::ZERO, true)
                }
                Some(Contribution::Distinct(_) | Contribution::One) => {
                    (Amount::from_units(1), false)
                }
                None => (Amount::ZERO, false),
            },
            MeterAddition::Requested(quantity) => match self.meter.spec.aggregation {
                Aggregation::Sum => (Amount::from(quantity), false),
                Aggregation::Count => (Amount::from_units(1), false),
                _ => (Amount::ZERO, false),
            },
        };
        let limit = i128::try_from(self.limit.nanos()).unwrap_or(i128::MAX);
        let allowed = already_counted || usage.nanos().saturating_add(added.nanos()) <= limit;
        MeterJudgement {
            usage: reported,
            added: clamp(added),
            allowed,
        }
    }
}

/// What a check would add to a meter's value.
#[derive(Debug, Clone, Copy)]
pub enum MeterAddition<'e> {
    /// This event's contribution: its value (`sum`), 1 (`count`), or its distinct value
    /// (`unique_count`: 1, or nothing when already counted).
    Event(&'e Event),
    /// No event: the quantity for `sum`, 1 for `count`, nothing for `unique_count`.
    Requested(Quantity),
}

/// The decision on a meter quota check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeterJudgement {
    /// The tenant's value of the meter in the period before the check (floored at 0).
    pub usage: Quantity,
    /// What the check adds (floored at 0).
    pub added: Quantity,
    /// Whether `usage + added <= limit`, or the event's distinct value is counted already.
    pub allowed: bool,
}

/// A tenant's value of a `sum`, `count` or `unique_count` meter in one period, built from
/// the events a store reads for [`MeterLimit::event_filter`].
#[derive(Debug, Clone)]
pub struct MeterTally {
    aggregation: Aggregation,
    sum: i128,
    count: u64,
    distinct: HashSet<Distinct>,
}

enum Contribution {
    One,
    Amount(Amount),
    Distinct(Distinct),
}

impl MeterTally {
    /// Counts `event` when the limit covers it and it has a value the meter can read.
    pub fn push(&mut self, limit: &MeterLimit, event: &Event) {
        if !limit.covers(event) {
            return;
        }
        match self.contribution(&limit.meter, event) {
            Some(Contribution::One) => self.count += 1,
            Some(Contribution::Amount(a)) => self.sum += a.nanos(),
            Some(Contribution::Distinct(d)) => {
                self.distinct.insert(d);
            }
            None => {}
        }
    }

    /// The value as a usage: negative sums count as no usage.
    #[must_use]
    pub fn usage(&self) -> Quantity {
        clamp(self.value())
    }

    /// The meter's value: the exact sum, the count, or the number of distinct values.
    #[must_use]
    pub fn value(&self) -> Amount {
        match self.aggregation {
            Aggregation::Count => Amount::from_units(i64::try_from(self.count).unwrap_or(i64::MAX)),
            Aggregation::UniqueCount => {
                Amount::from_units(i64::try_from(self.distinct.len()).unwrap_or(i64::MAX))
            }
            _ => Amount::from_nanos(self.sum),
        }
    }

    fn contribution(&self, meter: &Meter, event: &Event) -> Option<Contribution> {
        let value = || meter.spec.value.read(event);
        match self.aggregation {
            Aggregation::Count => Some(Contribution::One),
            Aggregation::UniqueCount => value().and_then(distinct_of).map(Contribution::Distinct),
            _ => value().and_then(amount_of).map(Contribution::Amount),
        }
    }
}

/// A meter value as a usage: negative sums count as no usage.
fn clamp(amount: Amount) -> Quantity {
    Quantity::from_nanos(u128::try_from(amount.nanos()).unwrap_or(0))
}
