//! The bodies of `POST /v1/meter/api-keys` and `GET /v1/meter/api-keys`.

use serde::{Deserialize, Serialize};

use crate::apikey::{ApiKey, CreatedApiKey};

/// `201` of `POST /v1/meter/api-keys`: the key's record and, this once, its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CreatedApiKey))]
pub struct CreatedApiKeyBody {
    /// The stored record.
    #[serde(flatten)]
    pub record: ApiKey,
    /// The secret; store it now, it cannot be shown again.
    pub key: String,
}

impl From<CreatedApiKey> for CreatedApiKeyBody {
    fn from(created: CreatedApiKey) -> Self {
        CreatedApiKeyBody {
            record: created.key,
            key: created.secret,
        }
    }
}

/// `200` of `GET /v1/meter/api-keys`: keys without their secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyList {
    /// The keys.
    pub api_keys: Vec<ApiKey>,
}
