//! The bodies of `POST /v1/meter/webhooks` and `GET /v1/meter/webhooks`.

use serde::{Deserialize, Serialize};

use crate::webhook::{CreatedWebhook, Delivery, Webhook};

/// `201` of `POST /v1/meter/webhooks`: the endpoint's record and, this once, its signing
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CreatedWebhook))]
pub struct CreatedWebhookBody {
    /// The stored record.
    #[serde(flatten)]
    pub record: Webhook,
    /// The signing secret (`whsec_` and base64); store it now, it cannot be shown again.
    pub secret: String,
}

impl From<CreatedWebhook> for CreatedWebhookBody {
    fn from(created: CreatedWebhook) -> Self {
        CreatedWebhookBody {
            record: created.webhook,
            secret: created.secret.as_str().to_owned(),
        }
    }
}

/// `200` of `GET /v1/meter/webhooks`: endpoints without their secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookList {
    /// The endpoints, oldest first.
    pub webhooks: Vec<Webhook>,
}

/// `200` of `GET /v1/meter/webhooks/{id}/deliveries`: the latest deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryList {
    /// The deliveries.
    pub deliveries: Vec<Delivery>,
}
