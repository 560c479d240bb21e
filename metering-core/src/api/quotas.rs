//! The body of `GET /v1/meter/quotas`. A quota check answers with a
//! [`QuotaDecision`](crate::QuotaDecision), and `PUT /v1/meter/quotas` with a
//! [`Quota`].

use serde::{Deserialize, Serialize};

use crate::quota::Quota;

/// `200` of `GET /v1/meter/quotas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaList {
    /// The quotas.
    pub quotas: Vec<Quota>,
}
