//! OpenAPI schemas of the types whose JSON form is not what a derive would see: exact
//! decimals, validated names and ids, and the two shapes of an event body.

use std::borrow::Cow;

use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder};

use crate::apikey::ApiKeyId;
use crate::event::{
    EventId, Feature, MAX_EVENT_ID_LEN, MAX_NAME_CHARS, MAX_REASON_CHARS, NewEvent, Resource,
    TenantId,
};
use crate::quantity::LimitInput;
use crate::query::{Dimension, MAX_CURSOR_MICROS_DIGITS};
use crate::quota::{MeterCheck, QuotaId, QuotaScope, QuotaSpec, Threshold, ValidateRequest};
use crate::webhook::{DeliveryId, WebhookId};

/// The characters `str::trim` removes (Unicode `White_Space`, as `char::is_whitespace`), as
/// the inside of a regular expression's character class. The escapes read the same in
/// ECMA 262, Python and Rust patterns.
pub(crate) const WHITE_SPACE: &str =
    r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// The characters `char::is_control` matches (C0, DEL and C1), as the inside of a character
/// class.
pub(crate) const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// Whether a name pattern reserves `*` (tenants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameKind {
    /// A resource, a feature, or a quota's tenant (`*` allowed).
    Name,
    /// A tenant: `*` alone is reserved.
    Tenant,
}

/// The pattern of a name ([`TenantId`], [`Resource`], [`Feature`]): 1 to
/// [`MAX_NAME_CHARS`] characters after trimming white space, none of them a control
/// character; `blank` also admits a value that is empty after trimming.
pub(crate) fn name_pattern(kind: NameKind, blank: bool) -> String {
    let (ws, ctl) = (WHITE_SPACE, CONTROL);
    let inner = MAX_NAME_CHARS - 2;
    let single = match kind {
        NameKind::Name => format!("[^{ctl}{ws}]"),
        NameKind::Tenant => format!("[^{ctl}{ws}*]"),
    };
    let long = format!("[^{ctl}{ws}][^{ctl}]{{0,{inner}}}[^{ctl}{ws}]");
    let optional = if blank { "?" } else { "" };
    format!("^[{ws}]*(?:{single}|{long}){optional}[{ws}]*$")
}

fn name(description: &str, kind: NameKind, blank: bool) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length((!blank).then_some(1))
        .pattern(Some(name_pattern(kind, blank)))
        .description(Some(description))
        .into()
}

fn uuid(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(description))
        .into()
}

macro_rules! schema {
    ($type:ty, $name:literal, $schema:expr) => {
        impl PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $type {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

schema!(
    TenantId,
    "TenantId",
    name(
        "A tenant: 1 to 255 characters after trimming white space, no control characters, not `*`",
        NameKind::Tenant,
        false
    )
);
schema!(
    Resource,
    "Resource",
    name(
        "A module: 1 to 255 characters after trimming white space, no control characters",
        NameKind::Name,
        false
    )
);
schema!(
    Feature,
    "Feature",
    name(
        "A feature of a module: 1 to 255 characters after trimming white space, no control \
         characters",
        NameKind::Name,
        false
    )
);
schema!(
    EventId,
    "EventId",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_EVENT_ID_LEN))
        .pattern(Some(format!("^[\\u0020-\\u007e]{{1,{MAX_EVENT_ID_LEN}}}$")))
        .description(Some(
            "An event's idempotency key: 1 to 128 printable ASCII characters (a UUIDv7 when the \
             server made it)"
        ))
        .into()
);
schema!(
    QuotaScope,
    "QuotaScope",
    name(
        "A tenant, or `*` for the default quota of every tenant: 1 to 255 characters after \
         trimming white space, no control characters",
        NameKind::Name,
        false
    )
);

schema!(
    Threshold,
    "Threshold",
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .description(Some("A whole percentage of the limit, 1 to 100"))
                .property(
                    "percent",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1))
                        .maximum(Some(100)),
                )
                .required("percent")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false)
                )),
        )
        .item(
            ObjectBuilder::new()
                .description(Some("An absolute usage (> 0), in the quota's units"))
                .property(
                    "usage",
                    RefOr::Ref(Ref::from_schema_name(LimitInput::name()))
                )
                .required("usage")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false)
                )),
        )
        .description(Some(
            "A level of usage at which a quota sends a `quota.threshold` message, once per \
             tenant and period: `{\"percent\": 80}` or `{\"usage\": 1000}`"
        ))
        .into()
);

/// Schema of a `tz` query parameter: an IANA zone name, or a blank value, which is the same
/// as leaving it out (UTC). Only a schema: the server reads it with
/// [`crate::window::parse_tz`].
#[derive(Debug, Clone, Copy)]
pub struct TimeZoneFilter;

schema!(
    TimeZoneFilter,
    "TimeZoneFilter",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(
            std::iter::once("").chain(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
        ))
        .description(Some(
            "An IANA time zone (`Europe/Paris`); blank or absent means UTC"
        ))
        .into()
);

/// Schema of a time zone in a body: an IANA zone name (`Europe/Paris`). Only a schema: the
/// server reads it with [`crate::window::parse_tz`].
#[derive(Debug, Clone, Copy)]
pub struct TimeZone;

schema!(
    TimeZone,
    "TimeZone",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
        .description(Some("An IANA time zone (`Europe/Paris`)"))
        .into()
);

/// Schema of the `tenant_id` query filter: a tenant, or a blank value, which is the same as
/// leaving the parameter out. Only a schema: the server reads it with [`TenantId::new`].
#[derive(Debug, Clone, Copy)]
pub struct TenantFilter;

/// Schema of the `resource` and `feature` query filters: a name, or a blank value, which is
/// the same as leaving the parameter out. Only a schema: the server reads them with
/// [`Resource::new`] and [`Feature::new`].
#[derive(Debug, Clone, Copy)]
pub struct NameFilter;

schema!(
    TenantFilter,
    "TenantFilter",
    name(
        "A tenant (1 to 255 characters after trimming white space, no control characters, \
         not `*`); a blank value is the same as none",
        NameKind::Tenant,
        true
    )
);
schema!(
    NameFilter,
    "NameFilter",
    name(
        "A resource or feature (1 to 255 characters after trimming white space, no control \
         characters); a blank value is the same as none",
        NameKind::Name,
        true
    )
);

/// Schema of a required range bound (`start_date`, `end_date`): an RFC 3339 date-time or a
/// date (midnight UTC). Only a schema: the server reads it with
/// [`crate::time::parse_range_bound`].
#[derive(Debug, Clone, Copy)]
pub struct RangeBound;

/// Schema of an optional range bound: [`RangeBound`], or a blank value, which is the same
/// as leaving the parameter out.
#[derive(Debug, Clone, Copy)]
pub struct RangeFilter;

fn range_bound(blank: bool) -> RefOr<Schema> {
    let mut one_of = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        );
    if blank {
        one_of = one_of.item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^[{WHITE_SPACE}]*$"))),
        );
    }
    one_of
        .description(Some(if blank {
            "An RFC 3339 date-time (`2025-11-20T10:31:00Z`) or a date (`2025-11-20`, midnight \
             UTC); a blank value is the same as none"
        } else {
            "An RFC 3339 date-time (`2025-11-20T10:31:00Z`) or a date (`2025-11-20`, midnight \
             UTC)"
        }))
        .into()
}

schema!(RangeBound, "RangeBound", range_bound(false));
schema!(RangeFilter, "RangeFilter", range_bound(true));
schema!(
    super::ErrorCode,
    "ErrorCode",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("The machine-readable error code"))
        .enum_values(Some(super::ErrorCode::ALL.iter().map(|c| c.as_str())))
        .into()
);
schema!(ApiKeyId, "ApiKeyId", uuid("An API key's id"));
schema!(QuotaId, "QuotaId", uuid("A quota's id"));
schema!(WebhookId, "WebhookId", uuid("A webhook endpoint's id"));
schema!(DeliveryId, "DeliveryId", uuid("A webhook delivery's id"));

/// Schema of an event body: one [`NewEvent`] or `{"events": [NewEvent, ...]}`. Only a
/// schema: [`decode_events`](super::decode_events) reads the body.
#[derive(Debug, Clone, Copy)]
pub struct IngestBody;

impl PartialSchema for IngestBody {
    fn schema() -> RefOr<Schema> {
        let event = || RefOr::Ref(Ref::from_schema_name(NewEvent::name()));
        let batch = ObjectBuilder::new()
            .schema_type(Type::Object)
            .title(Some("EventBatch"))
            .description(Some(
                "A batch, validated whole: 1 to 10,000 events (configurable)",
            ))
            .property(
                "events",
                ArrayBuilder::new().items(event()).min_items(Some(1)),
            )
            .required("events")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        OneOfBuilder::new()
            .item(event())
            .item(batch)
            .description(Some("One event, or a batch"))
            .into()
    }
}

impl ToSchema for IngestBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("IngestBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((NewEvent::name().into_owned(), NewEvent::schema()));
        NewEvent::schemas(schemas);
    }
}

/// Schema of a validate body: a feature check ([`ValidateRequest`]) or, when it names a
/// `meter`, a meter quota check ([`MeterCheck`]). Only a schema: the server reads the body
/// with [`ValidateRequest::from_json`] or [`MeterCheck::from_json`].
#[derive(Debug, Clone, Copy)]
pub struct ValidateBody;

impl PartialSchema for ValidateBody {
    fn schema() -> RefOr<Schema> {
        // `consume: true` needs what the recorded event is made of: a feature check's
        // `resource`, a meter check's `event`.
        let consumed = |field: &str, schema_type: Type| {
            AnyOfBuilder::new()
                .item(
                    ObjectBuilder::new().property(
                        "consume",
                        ObjectBuilder::new()
                            .schema_type(SchemaType::Array(vec![Type::Boolean, Type::Null]))
                            .enum_values(Some([
                                serde_json::Value::Bool(false),
                                serde_json::Value::Null,
                            ])),
                    ),
                )
                .item(
                    ObjectBuilder::new()
                        .property(field, ObjectBuilder::new().schema_type(schema_type))
                        .required(field),
                )
        };
        let feature_check = AllOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(ValidateRequest::name())))
            .item(consumed("resource", Type::String))
            .description(Some(
                "A feature quota check; with `consume: true`, the `resource` of the event to \
                 record",
            ));
        let meter_check = AllOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(MeterCheck::name())))
            .item(consumed("event", Type::Object))
            .description(Some(
                "A meter quota check; with `consume: true`, the `event` to record",
            ));
        OneOfBuilder::new()
            .item(feature_check)
            .item(meter_check)
            .description(Some(
                "A feature quota check, or a meter quota check (a body with `meter`)",
            ))
            .into()
    }
}

impl ToSchema for ValidateBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ValidateBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, schema) in [
            (ValidateRequest::name(), ValidateRequest::schema()),
            (MeterCheck::name(), MeterCheck::schema()),
        ] {
            schemas.push((name.into_owned(), schema));
        }
        ValidateRequest::schemas(schemas);
        MeterCheck::schemas(schemas);
    }
}

/// The control characters a reason may not hold: those of [`CONTROL`] but tab, line feed
/// and carriage return, as the inside of a character class.
pub(crate) const REASON_CONTROL: &str = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f";

/// Schema of a void or amend `reason`: at most [`MAX_REASON_CHARS`] characters, no control
/// characters but line breaks and tabs. Only a schema: the server reads it with the
/// decoders of [`crate::Amendment`] and [`crate::void_reason`].
#[derive(Debug, Clone, Copy)]
pub struct Reason;

schema!(
    Reason,
    "Reason",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_REASON_CHARS))
        .pattern(Some(format!("^[^{REASON_CONTROL}]*$")))
        .description(Some(
            "Why, kept with the corrected event: at most 1000 characters, no control \
             characters but line breaks and tabs"
        ))
        .into()
);

/// The pattern of an event listing's `cursor` ([`crate::Cursor::encode`]): the
/// microseconds, a dot and the id's bytes (printable ASCII) in lowercase hexadecimal;
/// white space around it is ignored, and a blank value is the same as none.
pub(crate) fn cursor_pattern() -> String {
    let ws = WHITE_SPACE;
    format!(
        "^[{ws}]*(?:-?[0-9]{{1,{MAX_CURSOR_MICROS_DIGITS}}}\\.(?:[2-6][0-9a-f]|7[0-9a-e]){{1,{MAX_EVENT_ID_LEN}}})?[{ws}]*$"
    )
}

/// Schema of the `cursor` query parameter of the event listing. Only a schema: the server
/// reads it with [`crate::Cursor::decode`].
#[derive(Debug, Clone, Copy)]
pub struct CursorFilter;

schema!(
    CursorFilter,
    "Cursor",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(cursor_pattern()))
        .description(Some(
            "`next_cursor` of the previous page; a blank value is the same as none"
        ))
        .into()
);

/// The pattern of an aggregate's `group_by`: a comma-separated list of `tenant_id`,
/// `resource` and `feature` (in any order, repeats allowed), white space around each
/// ignored, empty entries skipped; a blank value is one series.
pub(crate) fn group_by_pattern() -> String {
    let ws = WHITE_SPACE;
    let names = Dimension::ALL.map(Dimension::as_str).join("|");
    let entry = format!("[{ws}]*(?:{names})?[{ws}]*");
    format!("^{entry}(?:,{entry})*$")
}

/// Schema of the `group_by` query parameter of `GET /v1/meter/aggregates`. Only a schema:
/// the server reads it as a [`crate::GroupBy`].
#[derive(Debug, Clone, Copy)]
pub struct GroupByFilter;

schema!(
    GroupByFilter,
    "GroupBy",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(group_by_pattern()))
        .description(Some(
            "A comma-separated subset of tenant_id, resource and feature; a blank value is \
             one series"
        ))
        .into()
);

/// Schema of a quota body: a [`QuotaSpec`] that names exactly one of `feature` and
/// `meter`, and no `resource` with a `meter`. Only a schema: the server reads the body with
/// [`QuotaSpec::from_json`].
#[derive(Debug, Clone, Copy)]
pub struct QuotaBody;

impl PartialSchema for QuotaBody {
    fn schema() -> RefOr<Schema> {
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let feature = ObjectBuilder::new()
            .title(Some("FeatureQuota"))
            .description(Some("A limit on the usage of a feature"))
            .property(
                "feature",
                RefOr::Ref(Ref::from_schema_name(Feature::name())),
            )
            .property("meter", null())
            .required("feature");
        let meter = ObjectBuilder::new()
            .title(Some("MeterQuota"))
            .description(Some(
                "A limit on a meter's value: no `feature`, no `resource`",
            ))
            .property("meter", ObjectBuilder::new().schema_type(Type::String))
            .property("feature", null())
            .property("resource", null())
            .required("meter");
        AllOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(QuotaSpec::name())))
            .item(OneOfBuilder::new().item(feature).item(meter))
            .description(Some(
                "A quota: exactly one of `feature` and `meter`, and no `resource` with a \
                 `meter`",
            ))
            .into()
    }
}

impl ToSchema for QuotaBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("QuotaBody")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((QuotaSpec::name().into_owned(), QuotaSpec::schema()));
        QuotaSpec::schemas(schemas);
        schemas.push((Feature::name().into_owned(), Feature::schema()));
    }
}

/// Schema of a quota's `thresholds`: at most 16 [`Threshold`]s, none twice. Only a schema:
/// the server reads them with [`QuotaSpec::from_json`].
#[derive(Debug, Clone, Copy)]
pub struct ThresholdList;

schema!(
    ThresholdList,
    "ThresholdList",
    ArrayBuilder::new()
        .items(RefOr::Ref(Ref::from_schema_name(Threshold::name())))
        .max_items(Some(crate::quota::MAX_THRESHOLDS))
        .unique_items(true)
        .description(Some("At most 16 thresholds, none twice"))
        .into()
);
