//! Support for the code `#[meter]` expands to. Not a public API: names here may change in
//! any release. The expansion reaches it as `::metering::__private` (through the facade) or
//! `<crate = path>::__private`.

use metering_core::{Metadata, NewEvent, Quantity};

pub use crate::recorder::{Recorder, installed_recorder};
pub use metering_core::Metadata as MetadataMap;
pub use serde_json;

/// Values usable as `quantity = ...` in `#[meter]`: unsigned and signed integers, floats
/// and [`Quantity`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a metered quantity",
    label = "`quantity` must be an integer, a float or a `metering::Quantity`",
    note = "convert it first, e.g. `quantity = items.len()` or `quantity = Quantity::from_units(n)`"
)]
pub trait IntoQuantity {
    /// The quantity, or `None` when it is not representable (negative, not finite, more
    /// than nine fractional digits); the call is then not metered and a warning is logged.
    fn into_quantity(self) -> Option<Quantity>;
}

impl IntoQuantity for Quantity {
    fn into_quantity(self) -> Option<Quantity> {
        Some(self)
    }
}

impl IntoQuantity for &Quantity {
    fn into_quantity(self) -> Option<Quantity> {
        Some(*self)
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl IntoQuantity for $t {
            fn into_quantity(self) -> Option<Quantity> {
                u64::try_from(self).ok().map(Quantity::from_units)
            }
        }
    )*};
}
unsigned!(u8, u16, u32, u64, u128, usize);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl IntoQuantity for $t {
            fn into_quantity(self) -> Option<Quantity> {
                u64::try_from(self).ok().map(Quantity::from_units)
            }
        }
    )*};
}
signed!(i8, i16, i32, i64, i128, isize);

impl IntoQuantity for f64 {
    fn into_quantity(self) -> Option<Quantity> {
        if !self.is_finite() || self < 0.0 {
            return None;
        }
        // The shortest decimal that round-trips; more than 9 fractional digits is refused.
        format!("{self}").parse().ok()
    }
}

impl IntoQuantity for f32 {
    fn into_quantity(self) -> Option<Quantity> {
        if !self.is_finite() || self < 0.0 {
            return None;
        }
        format!("{self}").parse().ok()
    }
}

/// Converts a `quantity` expression (monomorphised per type, so a literal costs nothing).
#[inline]
pub fn quantity<Q: IntoQuantity>(quantity: Q) -> Option<Quantity> {
    quantity.into_quantity()
}

/// Values usable as the tenant of `#[meter]`: anything that is `AsRef<str>` (`String`,
/// `&str`, `Cow<str>`, ...).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a tenant id",
    label = "the tenant must implement `AsRef<str>`",
    note = "pass a `String` or `&str`, e.g. `tenant = user.org_id.as_str()`"
)]
pub trait TenantRef {
    /// The tenant id as a string slice.
    fn tenant_str(&self) -> &str;
}

impl<T: AsRef<str> + ?Sized> TenantRef for T {
    fn tenant_str(&self) -> &str {
        self.as_ref()
    }
}

/// Copies the tenant out of the expression before the body runs.
#[inline]
pub fn tenant<T: TenantRef + ?Sized>(tenant: &T) -> String {
    tenant.tenant_str().to_owned()
}

/// A metadata value: anything `serde::Serialize`. A value that fails to serialize is
/// recorded as `null`.
#[inline]
pub fn metadata_value<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Whether a metered call succeeded, for `on = "success"`.
#[diagnostic::on_unimplemented(
    message = "`on = \"success\"` needs a function returning `Result`, not `{Self}`",
    label = "this return type has no notion of success",
    note = "use `on = \"always\"` to meter every call"
)]
pub trait Outcome {
    /// `true` when the call should be metered under `on = "success"`.
    fn is_success(&self) -> bool;
}

impl<T, E> Outcome for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
}

/// The values computed before the body ran.
#[derive(Debug)]
pub struct Pending {
    /// Where to send the event.
    pub recorder: &'static dyn Recorder,
    /// The tenant.
    pub tenant: String,
    /// The quantity, `None` when the expression was not representable.
    pub quantity: Option<Quantity>,
    /// Metadata entries.
    pub metadata: Option<Metadata>,
}

impl Pending {
    /// Sends the event.
    pub fn record(self, resource: &'static str, feature: &'static str) {
        let Some(quantity) = self.quantity else {
            tracing::warn!(
                resource,
                feature,
                tenant = %self.tenant,
                "#[meter]: the quantity is not a valid metering quantity; call not metered"
            );
            return;
        };
        let mut event = NewEvent::new(self.tenant, resource, feature).with_quantity(quantity);
        event.metadata = self.metadata;
        self.recorder.record(event);
    }
}
