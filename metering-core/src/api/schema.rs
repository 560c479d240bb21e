//! OpenAPI schemas of the types whose JSON form is not what a derive would see: exact
//! decimals, validated names and ids, and the two shapes of an event body.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::apikey::ApiKeyId;
use crate::event::{EventId, Feature, NewEvent, Resource, TenantId};
use crate::quota::{MeterCheck, QuotaId, QuotaScope, ValidateRequest};
use crate::webhook::{DeliveryId, WebhookId};

fn string(description: &str, max_length: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_length))
        .description(Some(description))
        .into()
}

fn uuid(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Uuid,
        )))
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
    string(
        "A tenant: 1 to 255 characters after trimming white space, no control characters, not `*`",
        255
    )
);
schema!(
    Resource,
    "Resource",
    string(
        "A module: 1 to 255 characters after trimming white space, no control characters",
        255
    )
);
schema!(
    Feature,
    "Feature",
    string(
        "A feature of a module: 1 to 255 characters after trimming white space, no control \
         characters",
        255
    )
);
schema!(
    EventId,
    "EventId",
    string(
        "An event's idempotency key: 1 to 128 printable ASCII characters (a UUIDv7 when the \
         server made it)",
        128
    )
);
schema!(
    QuotaScope,
    "QuotaScope",
    string(
        "A tenant, or `*` for the default quota of every tenant",
        255
    )
);
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
            .required("events");
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
        OneOfBuilder::new()
            .item(RefOr::Ref(Ref::from_schema_name(ValidateRequest::name())))
            .item(RefOr::Ref(Ref::from_schema_name(MeterCheck::name())))
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
