//! The bodies of the meter endpoints. A definition is read by
//! [`MeterSpec::from_json`](crate::MeterSpec::from_json); a stored meter is written as a
//! [`Meter`], a query's answer as a [`MeterReport`](crate::MeterReport).
//!
//! With the `openapi` feature, the `*Schema` types here describe those JSON forms; they are
//! never built, only documented.

use serde::Serialize;

use crate::meter::Meter;

/// `200` of `GET /v1/meter/meters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeterList {
    /// Every meter, by key.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<MeterSchema>))]
    pub meters: Vec<Meter>,
}

#[cfg(feature = "openapi")]
pub use schemas::*;

#[cfg(feature = "openapi")]
mod schemas {
    use std::collections::BTreeMap;

    use crate::meter::{Aggregation, Amount};
    use crate::window::WindowType;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

    /// One name, or a non-empty list of names (any of them matches).
    #[derive(Debug)]
    pub struct NameOrList;

    impl utoipa::PartialSchema for NameOrList {
        fn schema() -> RefOr<Schema> {
            let name = || {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
            };
            OneOfBuilder::new()
                .item(name())
                .item(ArrayBuilder::new().items(name()).min_items(Some(1)))
                .description(Some("One name, or a list of names (any of them matches)"))
                .into()
        }
    }

    impl utoipa::ToSchema for NameOrList {}

    /// Which events a meter counts; every condition must hold.
    #[derive(Debug, utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct MeterFilterSchema {
        /// A resource or a list of resources.
        resource: Option<NameOrList>,
        /// A feature or a list of features.
        feature: Option<NameOrList>,
        /// Top-level metadata key -> a JSON scalar or a list of scalars (any of), compared as
        /// JSON values (`"1"` is not `1`); `null` matches a missing key.
        #[schema(value_type = Option<Object>)]
        metadata: Option<BTreeMap<String, serde_json::Value>>,
    }

    /// The body of `PUT /v1/meter/meters/{key}`.
    #[derive(Debug, utoipa::ToSchema)]
    #[allow(dead_code)]
    #[schema(example = json!({"name": "LLM tokens by model", "aggregation": "sum",
        "value": "quantity", "filter": {"resource": "ai", "feature": ["input_tokens", "output_tokens"]},
        "dimensions": ["model", "region"]}))]
    pub struct MeterDefinition {
        /// A name for people (at most 200 characters).
        name: Option<String>,
        /// How values are combined.
        aggregation: Aggregation,
        /// `quantity` (default) or `metadata.<key>[.<key>...]`; ignored by `count`;
        /// `unique_count` needs a metadata path.
        #[schema(pattern = r"^(quantity|metadata(\.[^.]+)+)$")]
        value: Option<String>,
        /// Which events count.
        filter: Option<MeterFilterSchema>,
        /// Top-level metadata keys queries may group by and filter on (at most 8).
        #[schema(max_items = 8)]
        dimensions: Option<Vec<String>>,
    }

    /// A stored meter: its key, its definition and when it was defined.
    #[derive(Debug, utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct MeterSchema {
        /// 1 to 64 characters of `a-z0-9_-`.
        key: String,
        /// A name for people.
        name: Option<String>,
        /// How values are combined.
        aggregation: Aggregation,
        /// The aggregated value.
        value: String,
        /// Which events count.
        filter: Option<MeterFilterSchema>,
        /// Keys queries may group by and filter on.
        dimensions: Vec<String>,
        /// When it was first defined (RFC 3339, UTC).
        created_at: String,
        /// When it was last defined (RFC 3339, UTC).
        updated_at: String,
    }

    /// One row of a meter's answer.
    #[derive(Debug, utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct MeterRowSchema {
        /// First instant of the window (RFC 3339, UTC).
        window_start: String,
        /// First instant of the next window.
        window_end: String,
        /// Each grouped key in requested order, with its value as text (`null`: missing).
        #[schema(value_type = Object)]
        group: BTreeMap<String, Option<String>>,
        /// The meter's value, exact.
        value: Amount,
        /// Events counted in this row.
        event_count: u64,
    }

    /// `200` of `GET /v1/meter/meters/{key}/query`.
    #[derive(Debug, utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct MeterReportSchema {
        /// The meter's key.
        meter: String,
        /// Its aggregation.
        aggregation: Aggregation,
        /// The window length; `null` for one window over the whole range.
        window_type: Option<WindowType>,
        /// The zone of the window boundaries.
        tz: String,
        /// Rows by window, then each group key as text, `null` last.
        data: Vec<MeterRowSchema>,
        /// Matching events without a usable value.
        skipped_events: u64,
    }
}
