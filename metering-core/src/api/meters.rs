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

    use crate::meter::decode::MAX_DIMENSION_CHARS;
    use crate::meter::{Aggregation, Amount, MAX_DIMENSIONS};
    use crate::query::Dimension;
    use crate::window::WindowType;

    use utoipa::openapi::schema::{
        AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType,
        Type,
    };
    use utoipa::openapi::{Ref, RefOr};

    /// A name (the schema named `name`), or a non-empty list of them (any of them matches).
    fn name_or_list(name: &str, description: &str) -> RefOr<Schema> {
        let name = || RefOr::Ref(Ref::from_schema_name(name));
        OneOfBuilder::new()
            .item(name())
            .item(ArrayBuilder::new().items(name()).min_items(Some(1)))
            .description(Some(description))
            .into()
    }

    /// One resource, or a non-empty list of resources (any of them matches).
    #[derive(Debug)]
    pub struct ResourceOrList;

    impl utoipa::PartialSchema for ResourceOrList {
        fn schema() -> RefOr<Schema> {
            name_or_list(
                "Resource",
                "One resource, or a list of resources (any of them matches)",
            )
        }
    }

    impl utoipa::ToSchema for ResourceOrList {}

    /// One feature, or a non-empty list of features (any of them matches).
    #[derive(Debug)]
    pub struct FeatureOrList;

    impl utoipa::PartialSchema for FeatureOrList {
        fn schema() -> RefOr<Schema> {
            name_or_list(
                "Feature",
                "One feature, or a list of features (any of them matches)",
            )
        }
    }

    impl utoipa::ToSchema for FeatureOrList {}

    /// A member the server reads past: any JSON value.
    #[derive(Debug)]
    pub struct Ignored;

    impl utoipa::PartialSchema for Ignored {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(SchemaType::Array(vec![
                    Type::String,
                    Type::Number,
                    Type::Boolean,
                    Type::Null,
                    Type::Array,
                    Type::Object,
                ]))
                .description(Some("Any JSON value; ignored"))
                .into()
        }
    }

    impl utoipa::ToSchema for Ignored {}

    /// The dimension filters of a meter query, as query parameters `filter.<dimension>=<value>`
    /// (an exploded form-style object, whose members are the parameters).
    #[derive(Debug)]
    pub struct DimensionFilters;

    impl utoipa::PartialSchema for DimensionFilters {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^filter\\..")),
                ))
                .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(
                    "`filter.<dimension>` -> a value the dimension must have",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for DimensionFilters {}

    /// A meter's dimensions: at most [`MAX_DIMENSIONS`] top-level metadata keys, each 1 to
    /// 128 characters, none twice, none an event field (`tenant_id`, `resource`, `feature`).
    #[derive(Debug)]
    pub struct Dimensions;

    impl utoipa::PartialSchema for Dimensions {
        fn schema() -> RefOr<Schema> {
            let fields = Dimension::ALL.map(Dimension::as_str).join("|");
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(MAX_DIMENSION_CHARS))
                        .pattern(Some(format!("^(?!(?:{fields})$)"))),
                )
                .max_items(Some(MAX_DIMENSIONS))
                .unique_items(true)
                .description(Some(
                    "Top-level metadata keys: each 1 to 128 characters, none twice, none of \
                     tenant_id, resource and feature",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for Dimensions {}

    /// A meter filter's metadata conditions: key (1 to 128 characters) -> a JSON scalar or a
    /// non-empty list of scalars.
    #[derive(Debug)]
    pub struct MetadataConditions;

    impl utoipa::PartialSchema for MetadataConditions {
        fn schema() -> RefOr<Schema> {
            let scalar = || {
                ObjectBuilder::new().schema_type(SchemaType::Array(vec![
                    Type::String,
                    Type::Number,
                    Type::Boolean,
                    Type::Null,
                ]))
            };
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property_names(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(MAX_DIMENSION_CHARS)),
                ))
                .additional_properties(Some(Schema::from(
                    OneOfBuilder::new()
                        .item(scalar())
                        .item(ArrayBuilder::new().items(scalar()).min_items(Some(1))),
                )))
                .description(Some(
                    "Metadata key -> a JSON scalar or a non-empty list of scalars (any of)",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for MetadataConditions {}

    /// Which events a meter counts; every condition must hold.
    #[derive(Debug, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    pub struct MeterFilterSchema {
        /// A resource or a list of resources.
        resource: Option<ResourceOrList>,
        /// A feature or a list of features.
        feature: Option<FeatureOrList>,
        /// Top-level metadata key (1 to 128 characters) -> a JSON scalar or a non-empty list
        /// of scalars (any of), compared as JSON values (`"1"` is not `1`); `null` matches a
        /// missing key.
        #[schema(value_type = Option<MetadataConditions>)]
        metadata: Option<BTreeMap<String, serde_json::Value>>,
    }

    /// The body of `PUT /v1/meter/meters/{key}`.
    #[derive(Debug, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    #[schema(example = json!({"name": "LLM tokens by model", "aggregation": "sum",
        "value": "quantity", "filter": {"resource": "ai", "feature": ["input_tokens", "output_tokens"]},
        "dimensions": ["model", "region"]}))]
    pub struct MeterDefinition {
        /// A name for people (at most 200 characters).
        #[schema(max_length = 200)]
        name: Option<String>,
        /// How values are combined.
        aggregation: Aggregation,
        /// `quantity` (default) or `metadata.<key>[.<key>...]`; ignored by `count`;
        /// `unique_count` needs a metadata path.
        #[schema(pattern = r"^(quantity|metadata(\.[^.]+)+)$")]
        value: Option<String>,
        /// Which events count.
        filter: Option<MeterFilterSchema>,
        /// Top-level metadata keys queries may group by and filter on: at most 8, each 1 to
        /// 128 characters, none twice, none of `tenant_id`, `resource` and `feature`.
        #[schema(value_type = Option<Dimensions>)]
        dimensions: Option<Vec<String>>,
        /// Ignored (a fetched meter can be sent back as it is).
        #[schema(value_type = Ignored, required = false)]
        key: Option<serde_json::Value>,
        /// Ignored.
        #[schema(value_type = Ignored, required = false)]
        created_at: Option<serde_json::Value>,
        /// Ignored.
        #[schema(value_type = Ignored, required = false)]
        updated_at: Option<serde_json::Value>,
    }

    /// The body of `PUT /v1/meter/meters/{key}` with its rule across fields: a
    /// `unique_count` meter counts distinct values of a metadata path, not quantities.
    #[derive(Debug)]
    pub struct MeterBody;

    impl utoipa::PartialSchema for MeterBody {
        fn schema() -> RefOr<Schema> {
            let counted = Aggregation::ALL
                .into_iter()
                .filter(|a| *a != Aggregation::UniqueCount)
                .map(|a| a.as_str());
            AllOfBuilder::new()
                .item(RefOr::Ref(Ref::from_schema_name(
                    <MeterDefinition as utoipa::ToSchema>::name(),
                )))
                .item(
                    AnyOfBuilder::new()
                        .item(
                            ObjectBuilder::new().property(
                                "aggregation",
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .enum_values(Some(counted)),
                            ),
                        )
                        .item(
                            ObjectBuilder::new()
                                .property(
                                    "value",
                                    ObjectBuilder::new()
                                        .schema_type(Type::String)
                                        .pattern(Some("^metadata\\.")),
                                )
                                .required("value"),
                        ),
                )
                .description(Some(
                    "A meter definition; `unique_count` needs a metadata path as `value`",
                ))
                .into()
        }
    }

    impl utoipa::ToSchema for MeterBody {
        fn name() -> std::borrow::Cow<'static, str> {
            std::borrow::Cow::Borrowed("MeterBody")
        }

        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            use utoipa::PartialSchema as _;
            schemas.push(("MeterDefinition".to_owned(), MeterDefinition::schema()));
            <MeterDefinition as utoipa::ToSchema>::schemas(schemas);
        }
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
